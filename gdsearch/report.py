"""Learning-rate reports: headless matplotlib figures in one self-contained HTML or Markdown file.

A report has a summary up top (per comparison group: best lr, the measured critical bracket,
the predicted stability limit 2/λ_max, how many trials diverged), then SSE curves per learning
rate, final SSE against learning rate on log-log axes with the diverged region shaded and the
predicted limit marked (the U-shaped curve of the seed notebook), epochs to tolerance against
learning rate, and the tables.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from gdsearch import analysis, mlp, stability
from gdsearch.errors import InputError
from gdsearch.spec import parse_job

if TYPE_CHECKING:
    from gdsearch.store import Results

FORMATS = ("html", "md")


def _label(key: tuple[Any, ...], columns: list[str]) -> str:
    parts = []
    for column, value in zip(columns, key, strict=True):
        if column == "hidden":
            parts.append(f"hidden {value or 'none (linear)'}")
        elif column == "init_scale" and not (isinstance(value, float) and math.isnan(value)):
            parts.append(f"scale {value:g}")
        elif column == "batch_size" and value:
            parts.append(f"batch {value}")
        elif column in ("init", "activation"):
            parts.append(str(value))
    return ", ".join(parts)


def predicted_limits(results: Results) -> dict[str, float]:
    """2/λ_max per group label at the first replicate's initial weights; {} if the job's data
    cannot be loaded from where the result set says it came from."""
    job_text = results.manifest.get("job_source") or ""
    job_path = results.manifest.get("job_file") or "job.toml"
    if not job_text:
        copy = Path(results.path) / "job.toml"
        job_text = copy.read_text() if copy.is_file() else ""
    if not job_text:
        return {}
    try:
        spec = parse_job(job_text, job_path)
        X, Y = spec.load_data()
    except InputError:
        return {}
    columns = analysis.GROUP
    limits: dict[str, float] = {}
    for trial in sorted(spec.trials(), key=lambda t: t.seed):
        row = {"init": trial.init, "hidden": trial.hidden_label, "activation": trial.activation,
               "init_scale": np.nan if trial.init_scale is None else trial.init_scale,
               "batch_size": trial.batch_size}  # fmt: skip
        label = _label(tuple(row[c] for c in columns), columns)
        if label in limits:
            continue
        if not trial.hidden:
            limits[label] = stability.linear_lr_limit(X, spec.grad_scale)
            continue
        sizes = mlp.layer_sizes(X.shape[1], trial.hidden, Y.shape[1])
        params = mlp.init_params(sizes, trial.init, trial.init_seed(), trial.init_scale)
        limits[label] = stability.lr_limit(params, X, Y, trial.activation, spec.grad_scale)
    return limits


def _groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    columns = [c for c in analysis.GROUP if c in frame.columns]
    return [(_label(k, columns), g) for k, g in frame.groupby(columns, dropna=False, sort=True)]


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def figure_curves(results: Results) -> bytes:
    """Median SSE per epoch (over seeds) for each lr, one panel per group, log SSE axis."""
    merged = results.history.merge(results.trials, on="trial_id")
    groups = _groups(merged)
    norm = LogNorm(
        results.trials["lr"].min(),
        max(results.trials["lr"].max(), 1.0001 * results.trials["lr"].min()),
    )
    fig, axes = _grid(len(groups))
    for ax, (label, frame) in zip(axes.flat, groups, strict=False):
        curves = frame.groupby(["lr", "epoch"])["sse"].median().unstack("lr")
        for lr in curves.columns:
            ax.plot(curves.index, curves[lr], color=plt.cm.viridis(norm(lr)), linewidth=1)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("SSE (median over seeds)")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="learning rate")
    return _png(fig)


def figure_final_vs_lr(
    table: pd.DataFrame, brackets: pd.DataFrame, limits: dict[str, float]
) -> bytes:
    """Final SSE against lr (log-log) with quartiles, diverged region shaded, predicted limit."""
    groups = _groups(table)
    bracket_by = {label: frame.iloc[0] for label, frame in _groups(brackets)}
    fig, axes = _grid(len(groups))
    for ax, (label, frame) in zip(axes.flat, groups, strict=False):
        ax.plot(frame["lr"], frame["median_final_sse"], marker="o", color="C0", label="median")
        ax.fill_between(frame["lr"], frame["q25_final_sse"], frame["q75_final_sse"], alpha=0.25)
        edge = bracket_by[label]["lr_diverged"] if label in bracket_by else np.nan
        if np.isfinite(edge):
            ax.axvspan(edge, frame["lr"].max() * 1.5, color="C3", alpha=0.12, label="diverged")
        if label in limits:
            ax.axvline(limits[label], color="k", linestyle="--", label="2/λ_max at init")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final SSE")
        ax.legend(fontsize=7)
    return _png(fig)


def figure_epochs_to_tolerance(table: pd.DataFrame) -> bytes:
    """Median epochs to reach the group's best within tolerance, against lr."""
    groups = _groups(table)
    fig, axes = _grid(len(groups))
    for ax, (label, frame) in zip(axes.flat, groups, strict=False):
        ax.plot(frame["lr"], frame["median_epochs_to_tolerance"], marker="o")
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("epochs to within 5% of best")
    return _png(fig)


def summary_table(
    table: pd.DataFrame, brackets: pd.DataFrame, limits: dict[str, float]
) -> pd.DataFrame:
    """Per group: best lr, measured bracket, predicted limit, diverged / trials."""
    rows = []
    bracket_by = {label: frame.iloc[0] for label, frame in _groups(brackets)}
    for label, frame in _groups(table):
        best = frame.loc[frame["best"], "lr"]
        bracket = bracket_by.get(label)
        rows.append({
            "group": label,
            "best lr": float(best.iloc[0]) if len(best) else np.nan,
            "largest lr that converged": np.nan if bracket is None else bracket["lr_converged"],
            "smallest lr that diverged": np.nan if bracket is None else bracket["lr_diverged"],
            "predicted limit 2/λ_max": limits.get(label, np.nan),
            "diverged": f"{round((frame['diverged_fraction'] * frame['trials']).sum())}"
                        f" / {int(frame['trials'].sum())}",
        })  # fmt: skip
    return pd.DataFrame(rows)


def build(results: Results, out: Path, fmt: str = "html") -> Path:
    """Write the report for a result set; returns the file written.

    Args:
        results: a loaded result set.
        out: the report file (``.html`` or ``.md``); Markdown's PNGs go beside it.
        fmt: ``"html"`` (one self-contained file) or ``"md"`` (Markdown and PNG files).
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: must be one of {', '.join(FORMATS)}, but got {fmt!r}")
    if results.trials.empty:
        raise InputError(f"{results.path}: no trials stored yet, nothing to report")
    table = analysis.convergence_table(results)
    brackets = analysis.critical_lr(results)
    limits = predicted_limits(results)
    summary = summary_table(table, brackets, limits)
    figures = {
        "curves": ("SSE curves per learning rate", figure_curves(results)),
        "final_vs_lr": (
            "Final SSE against learning rate",
            figure_final_vs_lr(table, brackets, limits),
        ),
        "epochs_to_tolerance": ("Epochs to tolerance", figure_epochs_to_tolerance(table)),
    }
    name = results.manifest.get("name", Path(results.path).name)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        out.write_text(_html(name, summary, table, figures))
    else:
        out.write_text(_markdown(name, summary, table, figures, out))
    return out


def _html(name: str, summary: pd.DataFrame, table: pd.DataFrame, figures: dict[str, Any]) -> str:
    images = "\n".join(
        f'<h2>{html.escape(title)}</h2>\n<img alt="{key}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for key, (title, png) in figures.items()
    )
    per_lr = (
        f"<h2>Per learning rate</h2>\n{table.to_html(index=False, float_format='{:.4g}'.format)}\n"
        if not table.empty
        else ""
    )
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
             "padding:2px 6px}img{max-width:100%}")  # fmt: skip
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(name)}'
        f"</title><style>{style}</style></head><body>\n<h1>gdsearch report: {html.escape(name)}"
        f"</h1>\n<h2>Summary</h2>\n{summary.to_html(index=False, float_format='{:.4g}'.format)}\n"
        f"{images}\n{per_lr}</body></html>\n"
    )


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]  # fmt: skip
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def _markdown(name: str, summary: pd.DataFrame, table: pd.DataFrame, figures: dict[str, Any],
              out: Path) -> str:  # fmt: skip
    parts = [f"# gdsearch report: {name}", "", "## Summary", "", _markdown_table(summary), ""]
    for key, (title, png) in figures.items():
        image = out.with_name(f"{out.stem}_{key}.png")
        image.write_bytes(png)
        parts += [f"## {title}", "", f"![{title}]({image.name})", ""]
    parts += ["## Per learning rate", "", _markdown_table(table), ""]
    return "\n".join(parts)


def compare(all_results: list[Results], out: Path) -> Path:
    """Write one self-contained HTML file putting two or more result sets on the same axes.

    Final SSE against learning rate, and the SSE curve of each group's best learning rate, for
    every group of every result set, with the summaries stacked in one table.
    """
    if len(all_results) < 2:
        raise InputError("compare: give two or more result sets")
    fig_u, ax_u = plt.subplots(figsize=(8, 5), layout="constrained")
    fig_c, ax_c = plt.subplots(figsize=(8, 5), layout="constrained")
    summaries = []
    for index, results in enumerate(all_results):
        name = results.manifest.get("name", Path(results.path).name)
        table = analysis.convergence_table(results)
        brackets = analysis.critical_lr(results)
        summary = summary_table(table, brackets, predicted_limits(results))
        summaries.append(summary.assign(results=name))
        histories = dict(_groups(results.history.merge(results.trials, on="trial_id")))
        for offset, (label, frame) in enumerate(_groups(table)):
            color, line = f"C{index}", ["-", "--", ":", "-."][offset % 4]
            ax_u.plot(frame["lr"], frame["median_final_sse"], marker="o", color=color,
                      linestyle=line, label=f"{name}: {label}")  # fmt: skip
            best = frame.loc[frame["best"], "lr"]
            if len(best):
                group = histories[label]
                curve = group[group["lr"] == best.iloc[0]].groupby("epoch")["sse"].median()
                ax_c.plot(curve.index + 1, curve.to_numpy(), color=color, linestyle=line,
                          label=f"{name}: {label}, lr {best.iloc[0]:.3g}")  # fmt: skip
    ax_u.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final SSE (median)")
    ax_c.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="SSE (median), best lr")
    for ax in (ax_u, ax_c):
        ax.legend(fontsize=7)
    figures = {
        "final_vs_lr": ("Final SSE against learning rate", _png(fig_u)),
        "best_curves": ("SSE curve of each group's best learning rate", _png(fig_c)),
    }
    combined = pd.concat(summaries, ignore_index=True)
    combined = combined[["results", *[c for c in combined.columns if c != "results"]]]
    names = " vs ".join(s["results"].iloc[0] for s in summaries)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_html(names, combined, pd.DataFrame(), figures))
    return out
