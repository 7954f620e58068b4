"""The loss-landscape figures (``gdsearch landscape``'s tables): the MLP counterpart of the seed
notebook's picture of gradient descent walking down the SSE.

- :func:`figure_landscape_paths`: each drawn trial's path on the contours of the SSE over its
  path's plane, one panel per trial, a row per comparison group, one colour scale for all;
- :func:`figure_landscape_lines`: the SSE on the line from each trial's initial weights
  (α = 0) through its final ones (α = 1) and beyond: a monotone fall, or a barrier;
- :func:`figure_sharpest`: the loss along each trial's sharpest direction beside the parabola of
  curvature 2/lr, the sharpest a quadratic can be for descent at that rate to be stable.

Each returns None where the result set holds no landscape.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.ticker import LogFormatterSciNotation, LogLocator

from gdsearch.mlp.landscape import Slice
from gdsearch.mlp.stopping import Status
from gdsearch.report.panels import LrStyles, groups, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gdsearch.results.resultset import Results

CONTOUR_LEVELS = 24
PANELS_PER_ROW = 4
SSE_SPAN = 1e3
"""The shared colour scale runs from the lowest SSE on any plane to its 90th percentile over all
planes, at most this many times the lowest (a diverging rate's plane reaches far higher, and
would leave the rest one colour)."""


def drawn_trials(results: Results) -> list[tuple[str, pd.DataFrame]]:
    """The trials whose landscape is stored, by comparison group, each sorted by lr, with the
    landscape_trials columns beside the trials table's."""
    stored = results.landscape_trials
    if stored.empty:
        return []
    trials = results.trials.merge(
        stored.drop(columns=["lr", "node", "wall_s"]), on="trial_id", how="inner"
    )
    return [(label, frame.sort_values("lr")) for label, frame in groups(trials)]


def records(frame: pd.DataFrame) -> list[SimpleNamespace]:
    """The frame's rows, each with its columns as attributes."""
    return [
        SimpleNamespace(**{str(k): v for k, v in row.items()}) for row in frame.to_dict("records")
    ]


def _styles(results: Results) -> LrStyles:
    return LrStyles(results.landscape_trials["lr"])


def _rows(results: Results, kind: Slice) -> dict[str, pd.DataFrame]:
    """The landscape rows of one kind, by trial_id."""
    rows = results.landscapes
    rows = rows[rows["kind"] == kind.value]
    return {str(trial_id): frame for trial_id, frame in rows.groupby("trial_id")}


def _group_panels(count: int) -> tuple[Figure, np.ndarray]:
    """A figure of ``count`` panels, three to a row (the rest hidden), and its axes in order."""
    columns = min(count, 3)
    rows = -(-count // columns)
    fig = new_figure(figsize=(4.6 * columns + 1.5, 3.4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes


def figure_landscape_paths(results: Results) -> Figure | None:
    """Each drawn trial's descent on the contours of the SSE over the plane that holds most of
    its path (the top two principal directions of θ_t − θ_T; the title says what share of
    the path's squared length the plane holds). One colour scale for every panel, so that the
    same colour is the same SSE everywhere."""
    drawn = drawn_trials(results)
    if not drawn:
        return None
    planes, paths = _rows(results, Slice.PLANE), _rows(results, Slice.PATH)
    every = np.concatenate([frame["sse"].to_numpy() for frame in planes.values()])
    every = every[np.isfinite(every) & (every > 0)]
    floor = float(every.min()) if len(every) else 1.0
    ceiling = min(
        max(float(np.quantile(every, 0.9)) if len(every) else 10.0, 10 * floor), floor * SSE_SPAN
    )
    norm = LogNorm(floor, ceiling)
    levels = np.geomspace(floor, ceiling, CONTOUR_LEVELS)
    columns = min(PANELS_PER_ROW, max(len(frame) for _, frame in drawn))
    spans = [-(-len(frame) // columns) for _, frame in drawn]  # rows per group
    fig = new_figure(figsize=(3.6 * columns + 1.2, 3.3 * sum(spans)))
    grid = fig.subplots(sum(spans), columns, squeeze=False)
    axes, at = [], 0
    for span, (_, frame) in zip(spans, drawn, strict=True):
        cells = grid[at : at + span].ravel()
        for ax in cells[len(frame) :]:
            ax.set_visible(False)
        axes.append(cells[: len(frame)])
        at += span
    image = None
    for (label, frame), row in zip(drawn, axes, strict=True):
        for trial, ax in zip(records(frame), row, strict=True):
            plane = planes[trial.trial_id]
            xs, ys = np.unique(plane["x"]), np.unique(plane["y"])
            sse = plane["sse"].to_numpy().reshape(len(xs), len(ys)).T  # (y, x)
            clipped = np.clip(np.nan_to_num(sse, nan=levels[-1]), levels[0], levels[-1])
            image = ax.contourf(xs, ys, clipped, levels=levels, norm=norm, cmap="viridis")
            ax.contour(xs, ys, clipped, levels=levels[::3], colors="white", linewidths=0.3)
            path = paths[trial.trial_id].sort_values("epoch")
            ax.plot(path["x"], path["y"], color="#e8442e", linewidth=0.9, marker=".", ms=2)
            ax.plot(path["x"].iloc[0], path["y"].iloc[0], "wo", ms=5, mec="k", label="start")
            ax.plot(0, 0, "r*", ms=9, mec="k", label="end")
            ax.set_title(
                f"{label}\nlr {trial.lr:.3g}, {trial.status}; plane holds "
                f"{100 * trial.explained:.1f}%",
                fontsize=8,
            )
            ax.set_xlabel("first principal direction", fontsize=8)
            ax.set_ylabel("second", fontsize=8)
            ax.tick_params(labelsize=7)
    if image is not None:
        fig.colorbar(
            image,
            ax=grid,
            label="SSE",
            shrink=0.8,
            ticks=LogLocator(),
            format=LogFormatterSciNotation(),
        )
    return fig


def figure_landscape_lines(results: Results) -> Figure | None:
    """The SSE along θ(α) = (1 − α)·θ₀ + α·θ_T for each drawn trial, a panel per group: a
    fall all the way from α = 0 to α = 1 says the descent went straight down a valley; a rise
    on the way, a barrier it went around."""
    drawn = drawn_trials(results)
    if not drawn:
        return None
    lines, styles = _rows(results, Slice.LINE), _styles(results)
    fig, axes = _group_panels(len(drawn))
    for (label, frame), ax in zip(drawn, axes, strict=False):
        for trial in records(frame):
            line = lines[trial.trial_id].sort_values("x")
            ax.plot(line["x"], line["sse"], linewidth=1.2, **styles.line(trial.lr))
        ax.axvline(0, color="0.6", linestyle=":", linewidth=0.8)
        ax.axvline(1, color="0.6", linestyle=":", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("α (0: initial weights, 1: final)", fontsize=8)
        ax.set_ylabel("SSE", fontsize=8)
    styles.key(fig, axes[: len(drawn)])
    return fig


def figure_sharpest(results: Results) -> Figure | None:
    """The loss s·SSE along each drawn trial's sharpest direction v at its final weights,
    less its value there, beside the parabola ½·(2/lr)·t² (dashed): descent at rate lr is
    stable along v while the profile's curvature λ stays below 2/lr, so a profile inside its
    parabola is at or over the edge of stability. Diverged trials are left out: their last
    weights are where the SSE was about to leave, not a point descent settled at."""
    drawn = [
        (label, frame[frame["status"] != Status.DIVERGED.value])
        for label, frame in drawn_trials(results)
    ]
    drawn = [(label, frame) for label, frame in drawn if len(frame)]
    if not drawn:
        return None
    profiles, styles = _rows(results, Slice.SHARPEST), _styles(results)
    fig, axes = _group_panels(len(drawn))
    for (label, frame), ax in zip(drawn, axes, strict=False):
        top = 0.0
        for trial in records(frame):
            profile = profiles[trial.trial_id].sort_values("x")
            t = profile["x"].to_numpy()
            loss = trial.loss_scale * profile["sse"].to_numpy()
            rise = loss - loss[np.flatnonzero(t == 0)[0]]
            style = styles.line(trial.lr)
            ax.plot(t, rise, linewidth=1.3, **style)
            ax.plot(t, 0.5 * (2.0 / trial.lr) * t**2, linewidth=0.8, alpha=0.7, **(
                style | {"linestyle": "--"}
            ))  # fmt: skip
            top = max(top, float(np.nanmax(rise)))
        ax.set_ylim(-0.05 * top, 1.1 * top if top > 0 else 1.0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("t along the sharpest direction (weight units)", fontsize=8)
        ax.set_ylabel("loss rise", fontsize=8)
    shown = {float(lr) for _, frame in drawn for lr in frame["lr"]}
    styles.key(fig, axes[: len(drawn)], shown=shown)
    return fig
