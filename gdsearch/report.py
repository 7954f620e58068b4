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
from gdsearch.spec import JobSpec, parse_job

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


def _job_and_data(results: Results) -> tuple[JobSpec, np.ndarray, np.ndarray] | None:
    """The result set's job and data, loaded from where it says they came from; None if not."""
    job_text = results.manifest.get("job_source") or ""
    job_path = results.manifest.get("job_file") or "job.toml"
    if not job_text:
        copy = Path(results.path) / "job.toml"
        job_text = copy.read_text() if copy.is_file() else ""
    if not job_text:
        return None
    try:
        spec = parse_job(job_text, job_path)
        X, Y = spec.load_data()
    except InputError:
        return None
    return spec, X, Y


def predicted_limits(results: Results) -> dict[str, float]:
    """2/λ_max per group label at the first replicate's initial weights; {} if the job's data
    cannot be loaded from where the result set says it came from."""
    loaded = _job_and_data(results)
    if loaded is None:
        return {}
    spec, X, Y = loaded
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


FACET_COLUMNS = ("init", "init_scale")
"""A group's facet column: its init scheme; the rest (architecture, activation, batch) sets the
row. One init or one architecture only: the panels wrap, three to a row."""


def _panels(
    groups: list[tuple[str, pd.DataFrame]],
) -> tuple[plt.Figure, np.ndarray, list[tuple[str, pd.DataFrame, plt.Axes]]]:
    """One panel per group: a facet grid (rows by architecture, columns by init) where both
    vary, else a wrapped row of panels. Returns the figure, all axes, and each group's axes."""

    def facet_keys(frame: pd.DataFrame) -> tuple[str, str]:
        first = frame.iloc[0]
        columns = [c for c in analysis.GROUP if c in frame.columns]
        col = tuple(first[c] for c in columns if c in FACET_COLUMNS)
        row = tuple(first[c] for c in columns if c not in FACET_COLUMNS)
        return repr(row), repr(col)

    keys = [facet_keys(frame) for _, frame in groups]
    rows = list(dict.fromkeys(r for r, _ in keys))
    cols = list(dict.fromkeys(c for _, c in keys))
    if len(rows) > 1 and len(cols) > 1:
        places = [(rows.index(r), cols.index(c)) for r, c in keys]
        n_rows, n_cols = len(rows), len(cols)
    else:
        n_cols = min(len(groups), 3)
        n_rows = math.ceil(len(groups) / n_cols)
        places = [divmod(i, n_cols) for i in range(len(groups))]
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(5.2 * n_cols, 3.8 * n_rows), squeeze=False, layout="constrained"
    )
    used = set(places)
    for r in range(n_rows):
        for c in range(n_cols):
            axes[r, c].set_visible((r, c) in used)
    panels = [
        (label, frame, axes[place]) for (label, frame), place in zip(groups, places, strict=True)
    ]
    return fig, axes, panels


def _lr_norm(lrs: pd.Series) -> LogNorm:
    return LogNorm(lrs.min(), max(lrs.max(), 1.0001 * lrs.min()))


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def figure_curves(results: Results) -> bytes:
    """Median SSE per epoch (over seeds) for each lr, one panel per group, log SSE axis."""
    merged = results.history.merge(results.trials, on="trial_id")
    norm = _lr_norm(results.trials["lr"])
    fig, axes, panels = _panels(_groups(merged))
    for label, frame, ax in panels:
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
    bracket_by = {label: frame.iloc[0] for label, frame in _groups(brackets)}
    fig, _, panels = _panels(_groups(table))
    for label, frame, ax in panels:
        ax.plot(frame["lr"], frame["median_final_sse"], marker="o", color="C0", label="median")
        ax.fill_between(frame["lr"], frame["q25_final_sse"], frame["q75_final_sse"], alpha=0.25)
        edge = bracket_by[label]["lr_diverged"] if label in bracket_by else np.nan
        if np.isfinite(edge):
            ax.axvspan(edge, frame["lr"].max() * 1.5, color="C3", alpha=0.12, label="diverged")
        if label in limits:
            ax.axvline(limits[label], color="k", linestyle="--", label="2/λ_max at init")
        pruned = frame.loc[frame["pruned_fraction"] > 0, "lr"]
        if len(pruned):  # their SSE is from a rung, not the end: marked on the axis only
            ax.plot(pruned, np.full(len(pruned), 0.03), "x", color="0.4",
                    transform=ax.get_xaxis_transform(), label="some seeds pruned")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final SSE")
        ax.legend(fontsize=7)
    return _png(fig)


def figure_epochs_to_tolerance(table: pd.DataFrame) -> bytes:
    """Median epochs to reach the group's best within tolerance, against lr."""
    fig, _, panels = _panels(_groups(table))
    for label, frame, ax in panels:
        ax.plot(frame["lr"], frame["median_epochs_to_tolerance"], marker="o")
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("epochs to within 5% of best")
    return _png(fig)


PATH_EPOCHS = 2000
"""The linear-model pictures draw at most this many steps of each gradient-descent path."""


def figure_linear(results: Results) -> bytes | None:
    """The seed notebook's pictures for a linear model of one input and one output.

    SSE against the weight with the bias fixed at its least-squares value; that curve's
    derivative; and each learning rate's gradient-descent path (first replicate, up to
    ``PATH_EPOCHS`` steps, ending where the trial diverged) on the contours of SSE over (w, b).
    None when the result set has no such model or its data cannot be loaded.
    """
    linear = results.trials[results.trials["hidden"] == ""]
    loaded = _job_and_data(results)
    if linear.empty or loaded is None:
        return None
    spec, X, Y = loaded
    if X.shape[1] != 1 or Y.shape[1] != 1:
        return None
    first = next(t for t in sorted(spec.trials(), key=lambda t: t.seed) if not t.hidden)
    ((W, b),) = mlp.init_params([1, 1], first.init, first.init_seed(), first.init_scale)
    start = np.array([W[0, 0], b[0]])
    runs = linear[(linear["init"] == first.init) & (linear["seed"] == first.seed)]
    runs = runs.sort_values("lr")
    lengths = (
        results.history[results.history["trial_id"].isin(runs["trial_id"])]
        .groupby("trial_id")["epoch"]
        .size()
    )
    x, y = X[:, 0], Y[:, 0]
    A = np.column_stack([x, np.ones_like(x)])
    best = np.linalg.lstsq(A, y, rcond=None)[0]
    reach = np.maximum(1.5 * np.abs(start - best), 0.5 * np.abs(best) + 1e-3)
    w = np.linspace(best[0] - reach[0], best[0] + reach[0], 201)
    bias = np.linspace(best[1] - reach[1], best[1] + reach[1], 201)
    residual = y[None, :] - (w[:, None] * x[None, :] + best[1])
    fig, (ax_sse, ax_grad, ax_path) = plt.subplots(1, 3, figsize=(16, 4.4), layout="constrained")
    ax_sse.plot(w, (residual**2).sum(axis=1))
    ax_sse.set(
        xlabel="weight w", ylabel="SSE", title=f"SSE against w, bias fixed at {best[1]:.3g}"
    )
    ax_grad.plot(w, -2.0 * residual @ x, color="C1")
    ax_grad.axhline(0.0, color="0.6", linewidth=0.8)
    ax_grad.set(xlabel="weight w", ylabel="dSSE/dw", title="its derivative")
    for ax in (ax_sse, ax_grad):
        ax.axvline(best[0], color="0.6", linestyle=":", linewidth=0.8)
    ww, bb = np.meshgrid(w, bias)
    surface = ((y[None, None, :] - (ww[..., None] * x + bb[..., None])) ** 2).sum(axis=-1)
    ax_path.contour(ww, bb, surface, levels=np.geomspace(surface.min(), surface.max(), 14),
                    colors="0.7", linewidths=0.6)  # fmt: skip
    steps = min(int(spec.epochs), PATH_EPOCHS)
    paths = stability.linear_gd_path(X, y, start, runs["lr"].to_numpy(), steps, spec.grad_scale)
    norm = _lr_norm(runs["lr"])
    lows, highs = np.array([w[0], bias[0]]), np.array([w[-1], bias[-1]])
    drawn = list(zip(paths, runs["lr"], runs["trial_id"], runs["status"], strict=True))
    for path, lr, trial_id, status in reversed(drawn):  # small rates on top
        end = min(steps, int(lengths.get(trial_id, steps + 1)) - 1)
        outside = ~np.all((path[: end + 1] >= lows) & (path[: end + 1] <= highs), axis=1)
        if outside.any():  # stop one step past the window's edge
            end = int(np.argmax(outside))
        ax_path.plot(path[: end + 1, 0], path[: end + 1, 1], color=plt.cm.viridis(norm(lr)),
                     linewidth=0.8 if status == "diverged" else 1.2, marker=".", markersize=2,
                     linestyle="--" if status == "diverged" else "-")  # fmt: skip
    ax_path.plot(*start, "ko", label="start")
    ax_path.plot(*best, "r*", markersize=10, label="least squares")
    ax_path.set(xlim=(w[0], w[-1]), ylim=(bias[0], bias[-1]), xlabel="weight w", ylabel="bias b",
                title=f"gradient descent, first {steps} epochs (dashed: diverged)")  # fmt: skip
    ax_path.legend(fontsize=7)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax_path,
                 label="learning rate")  # fmt: skip
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
            "pruned": round((frame["pruned_fraction"] * frame["trials"]).sum()),
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
    linear = figure_linear(results)
    if linear is not None:
        figures["linear"] = (
            "The linear model: SSE, its derivative, gradient-descent paths",
            linear,
        )
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
