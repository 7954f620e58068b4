"""The learning-rate range test in the report: what fast.ai's ``lr_find`` would suggest, set
beside what the full grid found on the same problem (the best rate, the measured critical
bracket, the predicted limit), and each sweep's loss against its rate.

How far the suggestion sits from the grid's best rate, per problem, is what a range test alone
cannot say: the grid measures it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gdsearch.analysis.comparison import GROUP
from gdsearch.analysis.range_test import SUGGESTIONS, range_summary
from gdsearch.report.panels import groups, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gdsearch.results.resultset import Results


def range_keys(table: pd.DataFrame) -> list[str]:
    """The lr_range table's group columns, and seed."""
    return [*(c for c in GROUP if c in table.columns), "seed"]


def range_table(results: Results, summary: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Per comparison group: the range test's suggestions and the rate where its loss turned
    up (medians over seeds), beside the grid's best lr, critical bracket and predicted limit
    (from ``summary``, the report's summary table, where given); None without range tests."""
    table = results.lr_range
    if table.empty:
        return None
    keys = range_keys(table)
    per_seed = range_summary(table, keys)
    columns = [*SUGGESTIONS, "turned_up"]
    rows = []
    for name, frame in groups(per_seed):
        medians = frame[columns].median()
        rows.append(
            {
                "group": name,
                "sweeps": len(frame),
                "valley": medians["valley"],
                "steep": medians["steep"],
                "minimum / 10": medians["minimum"],
                "loss turned up at": medians["turned_up"],
            }
        )
    out = pd.DataFrame(rows)
    if summary is not None and len(summary):
        grid = summary.set_index("group")[
            [
                "best lr",
                "largest lr that converged",
                "smallest lr that diverged",
                "predicted limit",
            ]
        ]
        out = out.join(grid, on="group")
        best = pd.to_numeric(out["best lr"], errors="coerce")  # a tie reads as NaN
        out["valley / best lr"] = out["valley"] / best
    return out


def figure_range_test(results: Results, summary: pd.DataFrame | None = None) -> Figure | None:
    """Each sweep's smoothed SSE against its rate (log), a panel per group, with fast.ai's
    valley suggestion (dotted) and, where the grid measured them, its best rate (solid) and
    critical bracket (shaded); None without range tests."""
    table = results.lr_range
    if table.empty:
        return None
    keys = range_keys(table)
    per_seed = range_summary(table, keys)
    grid = summary.set_index("group") if summary is not None and len(summary) else None
    panels = groups(table)
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig = new_figure(figsize=(4.8 * columns, 3.5 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    suggested = dict(groups(per_seed))
    for (name, frame), ax in zip(panels, axes, strict=False):
        for seed, sweep in frame.groupby("seed"):
            sweep = sweep.sort_values("step")
            ax.plot(sweep["lr"], sweep["smoothed_sse"], linewidth=1.0, label=f"seed {seed}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        low = float(np.nanmin(frame["smoothed_sse"]))
        start = float(frame.loc[frame["step"] == 0, "smoothed_sse"].max())  # every sweep's
        ax.set_ylim(low / 1.5, max(3 * start, 10 * low))
        valley = suggested[name]["valley"].median() if name in suggested else np.nan
        if np.isfinite(valley):
            ax.axvline(valley, color="k", linestyle=":", linewidth=1, label="valley")
        if grid is not None and name in grid.index:
            row = grid.loc[name]
            best = pd.to_numeric(pd.Series([row["best lr"]]), errors="coerce").iloc[0]
            if np.isfinite(best):
                ax.axvline(best, color="C3", linewidth=1.2, label="grid's best lr")
            lo, hi = row["largest lr that converged"], row["smallest lr that diverged"]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.axvspan(lo, hi, color="C3", alpha=0.15, label="critical bracket")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("learning rate of the step", fontsize=8)
        ax.set_ylabel("smoothed SSE", fontsize=8)
        ax.legend(fontsize=7)
    return fig
