"""The report's figures: SSE curves, final SSE and epochs to tolerance against learning rate,
and the seed notebook's pictures of the linear model. Each returns PNG bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gdsearch.model import stability
from gdsearch.model.edge import edge_sharpness
from gdsearch.model.histories import history_lengths, sse_curves
from gdsearch.report.panels import facet_panels, groups, lr_norm, png

if TYPE_CHECKING:
    from gdsearch.results.store import Results


def figure_curves(results: Results) -> bytes:
    """Median SSE per epoch (over seeds) for each lr, one panel per group, log SSE axis."""
    norm = lr_norm(results.trials["lr"])
    fig, axes, panels = facet_panels(groups(sse_curves(results)))  # histories read part by part
    for label, frame, ax in panels:
        curves = frame.pivot(index="epoch", columns="lr", values="median_sse")
        for lr in curves.columns:
            ax.plot(curves.index, curves[lr], color=plt.cm.viridis(norm(lr)), linewidth=1)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("SSE (median over seeds)")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="learning rate")
    return png(fig)


def _sharpness_curves(results: Results) -> list[tuple[str, pd.DataFrame]]:
    """Per group, each lr's sharpness and edge ratio lr·λ/2 by epoch, diverged trials left out
    (their sharpness runs off to infinity with their weights)."""
    kept = results.trials[results.trials["status"] != "diverged"]
    merged = results.sharpness.merge(kept, on="trial_id")
    merged["edge"] = edge_sharpness(merged)  # c / lr_t: 2/lr for plain gradient descent
    merged["edge_ratio"] = merged["sharpness"] / merged["edge"]
    return groups(merged)


def figure_sharpness(results: Results) -> bytes:
    """Sharpness λ against epoch per learning rate, each rate's edge dashed in its colour (2/lr
    for plain gradient descent; it follows momentum and any schedule): where a curve meets its
    line, that rate trains at the edge of stability. Diverged trials are left out."""
    norm = lr_norm(results.trials["lr"])
    fig, axes, panels = facet_panels(_sharpness_curves(results))
    for label, frame, ax in panels:
        by_lr = frame.groupby(["lr", "epoch"])
        curves = by_lr["sharpness"].median().unstack("lr")
        edges = by_lr["edge"].median().unstack("lr")
        for lr in curves.columns:
            color = plt.cm.viridis(norm(lr))
            ax.plot(curves.index, curves[lr], color=color, linewidth=1)
            ax.plot(edges.index, edges[lr], color=color, linestyle="--", linewidth=0.7)
        top = np.nanmax(curves.to_numpy()) if curves.notna().any().any() else 1.0
        ax.set_ylim(0, 1.3 * top)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("sharpness λ (median over seeds)")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="learning rate")
    return png(fig)


def figure_edge_ratio(results: Results) -> bytes:
    """The edge ratio λ / λ_edge against epoch per learning rate (lr·λ/2 for plain gradient
    descent); 1 is the edge of stability."""
    norm = lr_norm(results.trials["lr"])
    fig, axes, panels = facet_panels(_sharpness_curves(results))
    for label, frame, ax in panels:
        curves = frame.groupby(["lr", "epoch"])["edge_ratio"].median().unstack("lr")
        for lr in curves.columns:
            ax.plot(curves.index, curves[lr], color=plt.cm.viridis(norm(lr)), linewidth=1)
        ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("λ / edge (lr·λ/2 for plain GD)")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="learning rate")
    return png(fig)


def figure_final_vs_lr(
    table: pd.DataFrame, brackets: pd.DataFrame, limits: dict[str, float]
) -> bytes:
    """Final SSE against lr (log-log) with quartiles, diverged region shaded, predicted limit."""
    bracket_by = {label: frame.iloc[0] for label, frame in groups(brackets)}
    fig, _, panels = facet_panels(groups(table))
    for label, frame, ax in panels:
        ax.plot(frame["lr"], frame["median_final_sse"], marker="o", color="C0", label="median")
        ax.fill_between(frame["lr"], frame["q25_final_sse"], frame["q75_final_sse"], alpha=0.25)
        edge = bracket_by[label]["lr_diverged"] if label in bracket_by else np.nan
        if np.isfinite(edge):
            ax.axvspan(edge, frame["lr"].max() * 1.5, color="C3", alpha=0.12, label="diverged")
        if label in limits:
            ax.axvline(limits[label], color="k", linestyle="--", label="predicted limit at init")
        pruned = frame.loc[frame["pruned_fraction"] > 0, "lr"]
        if len(pruned):  # their SSE is from a rung, not the end: marked on the axis only
            ax.plot(pruned, np.full(len(pruned), 0.03), "x", color="0.4",
                    transform=ax.get_xaxis_transform(), label="some seeds pruned")  # fmt: skip
        ax.set_xscale("log")
        if (frame["median_final_sse"] > 0).any():  # where every rate diverged: nothing to show
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final SSE")
        ax.legend(fontsize=7)
    return png(fig)


def figure_epochs_to_tolerance(table: pd.DataFrame) -> bytes:
    """Median epochs to reach the group's best within tolerance, against lr."""
    fig, _, panels = facet_panels(groups(table))
    for label, frame, ax in panels:
        ax.plot(frame["lr"], frame["median_epochs_to_tolerance"], marker="o")
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("epochs to within 5% of best")
    return png(fig)


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
    steps = min(first.train.epochs, PATH_EPOCHS)
    lrs = runs["lr"].to_numpy()
    paths = stability.linear_gd_path(X, y, start, lrs, steps, first.train.grad_scale)
    norm = lr_norm(runs["lr"])
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
    return png(fig)
