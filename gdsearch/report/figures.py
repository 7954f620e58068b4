"""The report's figures: SSE curves, final SSE and epochs to tolerance against learning rate,
the sharpness, and the seed notebook's pictures of the linear model.

Each takes a loaded result set and returns a matplotlib Figure: in a notebook it shows inline,
and the report turns it into a PNG. Axis scales come from the data (:mod:`.scales`), learning
rates are told apart by colour and named in a legend (:class:`.panels.LrStyles`), and learning
rates whose final SSEs lie within a tolerance of the lowest are drawn and named as a tie.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gdsearch.analysis import convergence as analysis
from gdsearch.analysis.histories import history_lengths, sse_curves
from gdsearch.analysis.ranking import TIE_TOLERANCE, relative_excess, tied_with_lowest
from gdsearch.mlp.stopping import Status
from gdsearch.report.panels import LrStyles, facet_panels, groups, new_figure
from gdsearch.report.scales import epoch_axis, final_view, sse_axis
from gdsearch.report.theory import predicted_limits
from gdsearch.stability import limits as stability
from gdsearch.stability.edge import edge_sharpness

if TYPE_CHECKING:
    from gdsearch.results.resultset import Results


def lr_styles(results: Results) -> LrStyles:
    """The line style of each learning rate of a result set; rates at which every trial
    diverged are named so in the legend."""
    trials = results.trials
    diverged = trials.groupby("lr")["status"].agg(lambda s: bool((s == Status.DIVERGED).all()))
    return LrStyles(trials["lr"], diverged=set(diverged[diverged].index.astype(float)))


def figure_curves(results: Results) -> Figure:
    """Median SSE per epoch (over seeds) for each lr, one panel per group.

    Epochs are on a log axis where the action is early; the SSE axis is fitted to the curves
    that did not diverge (diverging ones leave through the top), log where they span a decade.
    The medians come from :func:`gdsearch.analysis.convergence.sse_curves`, which reads the
    histories part by part.
    """
    medians = sse_curves(results)
    styles = lr_styles(results)
    statuses = dict(groups(results.trials))
    fig, axes, panels = facet_panels(groups(medians))
    for label, frame, ax in panels:
        curves = frame.pivot(index="epoch", columns="lr", values="median_sse")
        for lr in _rates(curves):
            ax.plot(curves.index, curves[lr], linewidth=1.2, **styles.line(lr))
        trials = statuses[label]
        ran = trials.groupby("lr")["status"].agg(lambda s: not (s == Status.DIVERGED).any())
        epoch_axis(ax, curves)
        sse_axis(ax, curves, kept=[lr for lr in _rates(curves) if ran[lr]])
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("SSE (median over seeds)")
    styles.key(fig, axes, shown=set(medians["lr"]))
    return fig


def _rates(curves: pd.DataFrame) -> list[float]:
    """The learning rates of a frame with one column per lr."""
    return [float(lr) for lr in curves.columns]


def _sharpness_curves(results: Results) -> list[tuple[str, pd.DataFrame]]:
    """Per group, each lr's sharpness and edge ratio lr·λ/2 by epoch, diverged trials left out
    (their sharpness runs off to infinity with their weights)."""
    kept = results.trials[results.trials["status"] != Status.DIVERGED]
    merged = results.sharpness.merge(kept, on="trial_id")
    merged["edge"] = edge_sharpness(merged)  # c / lr_t: 2/lr for plain gradient descent
    merged["edge_ratio"] = merged["sharpness"] / merged["edge"]
    return groups(merged)


def figure_sharpness(results: Results) -> Figure:
    """Sharpness λ against epoch per learning rate, each rate's edge dotted in its colour (2/lr
    for plain gradient descent; it follows momentum and any schedule): where a curve meets its
    line, that rate trains at the edge of stability. Diverged trials are left out."""
    styles = lr_styles(results)
    fig, axes, panels = facet_panels(_sharpness_curves(results))
    shown: set[float] = set()
    for label, frame, ax in panels:
        by_lr = frame.groupby(["lr", "epoch"])
        curves = by_lr["sharpness"].median().unstack("lr")
        edges = by_lr["edge"].median().unstack("lr")
        for lr in _rates(curves):
            ax.plot(curves.index, curves[lr], linewidth=1.2, **styles.line(lr))
            ax.plot(edges.index, edges[lr], color=styles.color(lr), linestyle=":", linewidth=0.9)
        shown.update(_rates(curves))
        top = np.nanmax(curves.to_numpy()) if curves.notna().any().any() else 1.0
        ax.set_ylim(0, 1.3 * top)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("sharpness λ (median over seeds)")
    styles.key(fig, axes, shown)
    return fig


def figure_edge_ratio(results: Results) -> Figure:
    """The edge ratio λ / λ_edge against epoch per learning rate (lr·λ/2 for plain gradient
    descent); 1 is the edge of stability."""
    styles = lr_styles(results)
    fig, axes, panels = facet_panels(_sharpness_curves(results))
    shown: set[float] = set()
    for label, frame, ax in panels:
        curves = frame.groupby(["lr", "epoch"])["edge_ratio"].median().unstack("lr")
        for lr in _rates(curves):
            ax.plot(curves.index, curves[lr], linewidth=1.2, **styles.line(lr))
        shown.update(_rates(curves))
        ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("λ / edge (lr·λ/2 for plain GD)")
    styles.key(fig, axes, shown)
    return fig


def figure_final_vs_lr(
    results: Results,
    *,
    table: pd.DataFrame | None = None,
    brackets: pd.DataFrame | None = None,
    limits: dict[str, float] | None = None,
    tolerance: float = TIE_TOLERANCE,
) -> Figure:
    """Final SSE against lr (median and quartiles over seeds), one panel per group: the
    diverged region shaded, the predicted limit marked, and the best rate starred, or the
    rates that tie for best (within ``tolerance`` of the lowest, relative to it) ringed and
    counted, never one of them named.

    Where the values differ by less than 1% the panel plots (SSE - lowest) / lowest, with the
    ties in a shaded band at the bottom; else SSE, on a log axis where it spans a decade.

    Args:
        results: a loaded result set.
        table: :func:`gdsearch.analysis.convergence_table` of it, if already computed.
        brackets: :func:`gdsearch.analysis.critical_lr` of it, if already computed.
        limits: :func:`gdsearch.report.predicted_limits` of it, if already computed.
        tolerance: the relative distance from the lowest final SSE that still ties.
    """
    table = analysis.convergence_table(results) if table is None else table
    brackets = analysis.critical_lr(results) if brackets is None else brackets
    limits = predicted_limits(results) if limits is None else limits
    bracket_by = {label: frame.iloc[0] for label, frame in groups(brackets)}
    fig, _, panels = facet_panels(groups(table))
    for label, frame, ax in panels:
        _final_panel(ax, frame, tolerance)
        edge = bracket_by[label]["lr_diverged"] if label in bracket_by else np.nan
        if np.isfinite(edge):
            ax.axvspan(edge, frame["lr"].max() * 1.5, color="C3", alpha=0.12, label="diverged")
        if label in limits:
            ax.axvline(limits[label], color="k", linestyle="--", label="predicted limit at init")
        pruned = frame.loc[frame["pruned_fraction"] > 0, "lr"]
        if len(pruned):  # their SSE is from a rung, not the end: marked on the axis only
            ax.plot(
                pruned,
                np.full(len(pruned), 0.03),
                "x",
                color="0.4",
                transform=ax.get_xaxis_transform(),
                label="some seeds pruned",
            )
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.legend(fontsize=7)
    return fig


def _final_panel(ax: Axes, frame: pd.DataFrame, tolerance: float) -> None:
    """One group's median and quartiles against lr, in the view its values call for, and its
    best rate or its tie."""
    lrs = frame["lr"].to_numpy(dtype=np.float64)
    median = frame["median_final_sse"].to_numpy(dtype=np.float64)
    low, high = (frame[c].to_numpy(dtype=np.float64) for c in ("q25_final_sse", "q75_final_sse"))
    candidates = np.where(frame["diverged_fraction"].to_numpy() == 0, median, np.nan)
    tied = tied_with_lowest(candidates, tolerance)
    view = final_view(median)
    if view == "relative":
        lowest = float(np.nanmin(median))
        median, low, high = (relative_excess(v, lowest) for v in (median, low, high))
        ax.set_yscale("symlog", linthresh=tolerance, linscale=0.5)
        ax.axhspan(0, tolerance, color="0.85", label=f"within {_short(tolerance)} of the lowest")
        ax.set_ylim(0, max(float(np.nanmax(high)) * 3, 10 * tolerance))
        ax.set_ylabel(f"final SSE / lowest − 1 (lowest {lowest:.7g})")
    else:
        ax.set_yscale("log" if view == "log" else "linear")
        if view == "linear":
            ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_ylabel("final SSE")
    ax.plot(lrs, median, marker="o", color="C0", label="median over seeds")
    ax.fill_between(lrs, low, high, color="C0", alpha=0.25)
    if tied.sum() == 1:
        ax.plot(
            lrs[tied],
            median[tied],
            "*",
            color="C1",
            markersize=14,
            label=f"best: lr {lrs[tied][0]:.3g}",
        )
    elif tied.sum() > 1:
        ax.plot(
            lrs[tied],
            median[tied],
            "o",
            markersize=11,
            markerfacecolor="none",
            markeredgecolor="C1",
            markeredgewidth=1.5,
            label=f"tie: {tied.sum()} rates within {_short(tolerance)}",
        )
    if not np.isfinite(median).any():
        ax.text(0.5, 0.5, "every rate diverged", transform=ax.transAxes, ha="center")


def _short(number: float) -> str:
    """1e-06 as 1e-6."""
    return f"{number:g}".replace("e-0", "e-").replace("e+0", "e+")


def figure_epochs_to_tolerance(results: Results, *, table: pd.DataFrame | None = None) -> Figure:
    """Median epochs to reach the group's best within tolerance, against lr."""
    table = analysis.convergence_table(results) if table is None else table
    fig, _, panels = facet_panels(groups(table))
    for label, frame, ax in panels:
        ax.plot(frame["lr"], frame["median_epochs_to_tolerance"], marker="o")
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("epochs to within 5% of best")
    return fig


PATH_EPOCHS = 2000
"""The linear-model pictures draw at most this many steps of each gradient-descent path."""


def figure_linear(results: Results) -> Figure | None:
    """The seed notebook's pictures for a linear model of one input and one output.

    SSE against the weight with the bias fixed at its least-squares value; that curve's
    derivative; and each learning rate's gradient-descent path (first replicate, up to
    ``PATH_EPOCHS`` steps, ending where the trial diverged) on the contours of SSE over (w, b).
    None when the result set has no such model or its data cannot be loaded.
    """
    linear = results.trials[results.trials["hidden"] == ""]
    loaded = results.job_and_data()
    if linear.empty or loaded is None:
        return None
    spec, X, Y = loaded
    if X.shape[1] != 1 or Y.shape[1] != 1:
        return None
    first = next(t for t in sorted(spec.trials(), key=lambda t: t.seed) if not t.hidden)
    ((W, b),) = first.initial_params(1, 1)
    start = np.array([W[0, 0], b[0]])
    runs = linear[(linear["init"] == first.init) & (linear["seed"] == first.seed)]
    runs = runs.sort_values("lr")
    lengths = history_lengths(results, runs)
    x, y = X[:, 0], Y[:, 0]
    A = np.column_stack([x, np.ones_like(x)])
    best = np.linalg.lstsq(A, y, rcond=None)[0]
    reach = np.maximum(1.5 * np.abs(start - best), 0.5 * np.abs(best) + 1e-3)
    w = np.linspace(best[0] - reach[0], best[0] + reach[0], 201)
    bias = np.linspace(best[1] - reach[1], best[1] + reach[1], 201)
    residual = y[None, :] - (w[:, None] * x[None, :] + best[1])
    fig = new_figure(figsize=(16, 4.4))
    ax_sse, ax_grad, ax_path = fig.subplots(1, 3)
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
    ax_path.contour(
        ww,
        bb,
        surface,
        levels=np.geomspace(surface.min(), surface.max(), 14),
        colors="0.7",
        linewidths=0.6,
    )
    steps = min(first.train.epochs, PATH_EPOCHS)
    lrs = runs["lr"].to_numpy()
    paths = stability.linear_gd_path(X, y, start, lrs, steps, first.train.grad_scale)
    styles = lr_styles(results)
    lows, highs = np.array([w[0], bias[0]]), np.array([w[-1], bias[-1]])
    drawn = list(zip(paths, runs["lr"], runs["trial_id"], runs["status"], strict=True))
    for path, lr, trial_id, status in reversed(drawn):  # small rates on top
        end = min(steps, int(lengths.get(trial_id, steps + 1)) - 1)
        outside = ~np.all((path[: end + 1] >= lows) & (path[: end + 1] <= highs), axis=1)
        if outside.any():  # stop one step past the window's edge
            end = int(np.argmax(outside))
        width = 0.8 if status == Status.DIVERGED else 1.2
        ax_path.plot(
            path[: end + 1, 0],
            path[: end + 1, 1],
            marker=".",
            markersize=2,
            linewidth=width,
            **styles.line(lr),
        )
    ax_path.plot(*start, "ko", label="start")
    ax_path.plot(*best, "r*", markersize=10, label="least squares")
    ax_path.set(
        xlim=(w[0], w[-1]),
        ylim=(bias[0], bias[-1]),
        xlabel="weight w",
        ylabel="bias b",
        title=f"gradient descent, first {steps} epochs",
    )
    ax_path.legend(fontsize=7)
    styles.key(fig, ax_path, shown=set(runs["lr"]))
    return fig


HELD_OUT_LINES = {
    "median_final_sse": ("final SSE, data trained on", "-", "o"),
    "median_final_val_sse": ("final SSE, held-out data", "-", "s"),
    "median_min_val_sse": ("lowest SSE, held-out data", ":", "v"),
}


def figure_held_out(results: Results, *, table: pd.DataFrame | None = None) -> Figure | None:
    """Training against held-out error per learning rate, one panel per group: the medians
    over seeds of the final SSE on the data trained on and on the held-out data, and of the
    lowest held-out SSE, each divided by its number of samples so that they share an axis;
    the best lr (by the table's ranking) is ringed. None where no data was held out."""
    table = analysis.convergence_table(results) if table is None else table
    if "median_final_val_sse" not in table.columns:
        return None
    shape = results.manifest.get("data_shape", {})
    n, held = shape.get("n_samples"), shape.get("held_out")
    fig, _, panels = facet_panels(groups(table))
    for title, frame, ax in panels:
        frame = frame.sort_values("lr")
        for column, (name, style, marker) in HELD_OUT_LINES.items():
            scale = _per_sample(column, n, held)
            ax.plot(
                frame["lr"],
                frame[column] * scale,
                style,
                marker=marker,
                ms=4,
                label=name + (" / sample" if scale != 1.0 else ""),
            )
        best = frame[frame["best"]]
        ax.plot(
            best["lr"],
            best["median_final_val_sse"] * _per_sample("median_final_val_sse", n, held),
            "o",
            ms=12,
            mfc="none",
            mec="k",
            label="best lr",
        )
        ax.set(xscale="log", yscale="log", xlabel="learning rate", title=title)
        ax.legend(fontsize=7)
    return fig


def _per_sample(column: str, n: object, held: object) -> float:
    """1 / the samples an SSE column is summed over, where the manifest says; else 1."""
    if not isinstance(n, int) or not isinstance(held, int) or not 0 < held < n:
        return 1.0
    return 1.0 / (held if "_val_" in column else n - held)
