"""Learning-rate reports: the figures as PNGs in one self-contained HTML or Markdown file.

A report has a summary up top (per comparison group: best lr, the measured critical bracket,
the predicted stability limit for the group's update rule, how many trials diverged), then SSE
curves per learning rate, final SSE against learning rate with the diverged region shaded, the
predicted limit marked and the best rate or the tie for best shown (the U-shaped curve of the
seed notebook), epochs to tolerance against learning rate, and the tables.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gdsearch.analysis import convergence as analysis
from gdsearch.analysis.comparison import GROUP
from gdsearch.errors import InputError
from gdsearch.mlp.stopping import Status
from gdsearch.report.figures import (
    figure_curves,
    figure_edge_ratio,
    figure_epochs_to_tolerance,
    figure_final_vs_lr,
    figure_held_out,
    figure_linear,
    figure_sharpness,
)
from gdsearch.report.landscapes import (
    figure_landscape_lines,
    figure_landscape_paths,
    figure_sharpest,
)
from gdsearch.report.panels import groups, new_figure, png
from gdsearch.report.range_test import figure_range_test, range_table
from gdsearch.report.scales import final_view
from gdsearch.report.theory import explanation, predicted_limits
from gdsearch.results.manifest import mixed_numerics, numerics_counts

if TYPE_CHECKING:
    from gdsearch.results.resultset import Results

FORMATS = ("html", "md")
RANGE_TITLE = (
    "The learning-rate range test (fast.ai's lr_find; medians over seeds) beside the grid"
)


def summary_table(
    table: pd.DataFrame,
    brackets: pd.DataFrame,
    limits: dict[str, float],
    metrics: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per group: best lr, measured bracket, predicted limit, diverged / trials; and, given the
    trial metrics, how far the bracket sits from the prediction and which mechanism explains
    it (:func:`gdsearch.report.theory.explanation`), and whether divergence was monotone."""
    rows = []
    bracket_by = {label: frame.iloc[0] for label, frame in groups(brackets)}
    metrics_by = dict(groups(metrics)) if metrics is not None else {}
    measured = metrics is not None and "edge_ratio_init" in metrics.columns
    for label, frame in groups(table):
        bracket = bracket_by.get(label)
        lo = np.nan if bracket is None else bracket["lr_converged"]
        hi = np.nan if bracket is None else bracket["lr_diverged"]
        limit = limits.get(label, np.nan)
        row = {
            "group": label,
            "best lr": best_lr(frame),
            "largest lr that converged": lo,
            "smallest lr that diverged": hi,
            "predicted limit": limit,
            "diverged": f"{round((frame['diverged_fraction'] * frame['trials']).sum())}"
            f" / {int(frame['trials'].sum())}",
            "pruned": round((frame["pruned_fraction"] * frame["trials"]).sum()),
        }
        if metrics is not None:
            ratio = math.sqrt(lo * hi) / limit if lo > 0 and hi > 0 and limit > 0 else np.nan
            why = explanation(ratio, metrics_by.get(label, pd.DataFrame()), measured)
            if bracket is not None and not bracket["monotone"]:
                above = float(bracket["lr_converged_above"])
                why = f"not monotone: {above:.4g} converged above {hi:.4g}, which diverged; {why}"
            row["measured / predicted"] = ratio
            row["why"] = why.rstrip("; ")
        rows.append(row)
    return pd.DataFrame(rows)


def best_lr(frame: pd.DataFrame) -> str:
    """A group's best lr from its rows of the convergence table: the rate, or the tie of
    rates within tolerance of the lowest final SSE (none named), or "" where every rate
    diverged."""
    best = frame.loc[frame["best"], "lr"].sort_values()
    if len(best) == 1:
        return f"{best.iloc[0]:.4g}"
    if len(best) > 1:
        return f"tie: {len(best)} rates, {best.iloc[0]:.4g} to {best.iloc[-1]:.4g}"
    return ""


def build(results: Results, out: Path, fmt: str = "html", rank_by: str | None = None) -> Path:
    """Write the report for a result set; returns the file written.

    Args:
        results: a loaded result set.
        out: the report file (``.html`` or ``.md``); Markdown's PNGs go beside it.
        fmt: ``"html"`` (one self-contained file) or ``"md"`` (Markdown and PNG files).
        rank_by: what picks each group's best lr (``analysis.RANK_BY``); by default the
            held-out final SSE where the job held data out, else the final SSE.
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: must be one of {', '.join(FORMATS)}, but got {fmt!r}")
    if results.trials.empty:
        raise InputError(f"{results.path}: no trials stored yet, nothing to report")
    metrics = analysis.trial_metrics(results)
    table = analysis.convergence_table(results, metrics=metrics, rank_by=rank_by)
    brackets = analysis.critical_lr(results)
    limits = predicted_limits(results)
    summary = summary_table(table, brackets, limits, metrics)
    figures = {
        "curves": ("SSE curves per learning rate", png(figure_curves(results))),
        "final_vs_lr": (
            "Final SSE against learning rate",
            png(figure_final_vs_lr(results, table=table, brackets=brackets, limits=limits)),
        ),
        "epochs_to_tolerance": (
            "Epochs to tolerance",
            png(figure_epochs_to_tolerance(results, table=table)),
        ),
    }
    held_out = figure_held_out(results, table=table)
    if held_out is not None:
        ranked = rank_by or analysis.default_rank(metrics)
        figures["held_out"] = (
            f"Training against held-out error (best lr by {analysis.RANK_BY[ranked]})",
            png(held_out),
        )
    if len(results.sharpness.merge(results.trials[results.trials["status"] != Status.DIVERGED])):
        figures["sharpness"] = (
            "Sharpness during training, each rate's edge dotted (2/lr for plain descent)",
            png(figure_sharpness(results)),
        )
        figures["edge_ratio"] = (
            "The edge ratio during training (lr·λ/2 for plain descent)",
            png(figure_edge_ratio(results)),
        )
    drawn = {
        "landscape_paths": (
            "Loss landscapes: each drawn trial's descent on the SSE over the plane of its path",
            figure_landscape_paths(results),
        ),
        "landscape_lines": (
            "The SSE on the line from each trial's initial (α = 0) to its final weights (α = 1)",
            figure_landscape_lines(results),
        ),
        "landscape_sharpest": (
            "The loss along each trial's sharpest direction, beside the parabola of curvature "
            "2/lr (dashed): inside it, descent at that rate is at or over the edge of stability",
            figure_sharpest(results),
        ),
    }
    for key, (caption, figure) in drawn.items():
        if figure is not None:  # the sharpest profile: none where every drawn trial diverged
            figures[key] = (caption, png(figure))
    extra: dict[str, pd.DataFrame] = {}
    ranged = range_table(results, summary)
    swept = figure_range_test(results, summary)
    if ranged is not None and swept is not None:
        extra[RANGE_TITLE] = ranged
        figures["range_test"] = (
            "The range test's sweeps: the smoothed SSE against each step's rate, fast.ai's "
            "valley suggestion (dotted), the grid's best lr and critical bracket (red)",
            png(swept),
        )
    linear = figure_linear(results)
    if linear is not None:
        figures["linear"] = (
            "The linear model: SSE, its derivative, gradient-descent paths",
            png(linear),
        )
    name = results.manifest.get("name", Path(results.path).name)
    warning = mixed_numerics(numerics_counts(results.trials.get("numerics", [])))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        page = _html(name, summary, table, figures, warning, extra)
    else:
        page = _markdown(name, summary, table, figures, out, warning, extra)
    out.write_text(page, encoding="utf-8")
    return out


def _html(
    name: str,
    summary: pd.DataFrame,
    table: pd.DataFrame,
    figures: dict[str, Any],
    warning: str | None = None,
    extra: dict[str, pd.DataFrame] | None = None,
) -> str:
    tables = "".join(
        f"<h2>{html.escape(title)}</h2>\n"
        f"{frame.to_html(index=False, float_format='{:.4g}'.format)}\n"
        for title, frame in (extra or {}).items()
    )
    images = "\n".join(
        f'<h2>{html.escape(title)}</h2>\n<img alt="{key}" '
        f'src="data:image/png;base64,{base64.b64encode(picture).decode()}">'
        for key, (title, picture) in figures.items()
    )
    per_lr = (
        f"<h2>Per learning rate</h2>\n{table.to_html(index=False, float_format='{:.4g}'.format)}\n"
        if not table.empty
        else ""
    )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
        "padding:2px 6px}img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(name)}'
        f"</title><style>{style}</style></head><body>\n<h1>gdsearch report: {html.escape(name)}"
        f"</h1>\n<h2>Summary</h2>\n{_html_warning(warning)}"
        f"{summary.to_html(index=False, float_format='{:.4g}'.format)}\n"
        f"{tables}{images}\n{per_lr}</body></html>\n"
    )


def _html_warning(warning: str | None) -> str:
    if warning is None:
        return ""
    return f'<p class="warning"><strong>Warning:</strong> {html.escape(warning)}</p>\n'


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def _markdown(
    name: str,
    summary: pd.DataFrame,
    table: pd.DataFrame,
    figures: dict[str, Any],
    out: Path,
    warning: str | None = None,
    extra: dict[str, pd.DataFrame] | None = None,
) -> str:
    parts = [f"# gdsearch report: {name}", "", "## Summary", ""]
    parts += [f"**Warning:** {warning}", ""] if warning else []
    parts += [_markdown_table(summary), ""]
    for title, frame in (extra or {}).items():
        parts += [f"## {title}", "", _markdown_table(frame), ""]
    for key, (title, picture) in figures.items():
        image = out.with_name(f"{out.stem}_{key}.png")
        image.write_bytes(picture)
        parts += [f"## {title}", "", f"![{title}]({image.name})", ""]
    parts += ["## Per learning rate", "", _markdown_table(table), ""]
    return "\n".join(parts)


def _keys(table: pd.DataFrame) -> list[str]:
    """The columns that name a group and lr in a convergence table."""
    return [*[c for c in GROUP if c in table.columns], "lr"]


def compare(all_results: list[Results], out: Path) -> Path:
    """Write one self-contained HTML file putting two or more result sets on the same axes.

    Final SSE against learning rate, and the SSE curve of each group's best learning rate, for
    every group of every result set, with the summaries stacked in one table.
    """
    if len(all_results) < 2:
        raise InputError("compare: give two or more result sets")
    fig_u, fig_c = new_figure(figsize=(8, 5)), new_figure(figsize=(8, 5))
    ax_u, ax_c = fig_u.subplots(), fig_c.subplots()
    summaries = []
    for index, results in enumerate(all_results):
        name = results.manifest.get("name", Path(results.path).name)
        table = analysis.convergence_table(results)
        brackets = analysis.critical_lr(results)
        summary = summary_table(table, brackets, predicted_limits(results))
        summaries.append(summary.assign(results=name))
        best_keys = table.loc[table["best"], _keys(table)]
        chosen = results.trials.merge(best_keys)  # the trials of each group's best lr
        curves = dict(groups(analysis.sse_curves(results, chosen)))
        for offset, (label, frame) in enumerate(groups(table)):
            color, line = f"C{index}", ["-", "--", ":", "-."][offset % 4]
            ax_u.plot(
                frame["lr"],
                frame["median_final_sse"],
                marker="o",
                color=color,
                linestyle=line,
                label=f"{name}: {label}",
            )
            best = frame[frame["best"]].sort_values(["median_epochs_to_tolerance", "lr"])
            if len(best):
                lr = best["lr"].iloc[0]
                mine = curves[label]
                curve = mine[mine["lr"] == lr].set_index("epoch")["median_sse"]
                which = (
                    f"lr {lr:.3g}"
                    if len(best) == 1
                    else (f"lr {lr:.3g}, the fastest of {len(best)} tied")
                )
                ax_c.plot(
                    curve.index + 1,
                    curve.to_numpy(),
                    color=color,
                    linestyle=line,
                    label=f"{name}: {label}, {which}",
                )
    finals = np.concatenate([line.get_ydata() for line in ax_u.get_lines()] or [np.array([])])
    view = final_view(np.asarray(finals, dtype=np.float64))  # log only where it spans a decade
    ax_u.set(
        xscale="log",
        yscale="log" if view == "log" else "linear",
        xlabel="learning rate",
        ylabel="final SSE (median)",
    )
    ax_c.set(xscale="log", yscale="log", xlabel="epoch + 1", ylabel="SSE (median), best lr")
    for ax in (ax_u, ax_c):
        ax.legend(fontsize=7)
    figures = {
        "final_vs_lr": ("Final SSE against learning rate", png(fig_u)),
        "best_curves": ("SSE curve of each group's best learning rate", png(fig_c)),
    }
    combined = pd.concat(summaries, ignore_index=True)
    combined = combined[["results", *[c for c in combined.columns if c != "results"]]]
    names = " vs ".join(s["results"].iloc[0] for s in summaries)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_html(names, combined, pd.DataFrame(), figures), encoding="utf-8")
    return out
