"""How each learning rate converged: per-trial metrics, per-lr summaries and the critical lr.

Everything is computed from a result set's tables with pandas and numpy (no Python loop over
epochs): what a trial's own history says of it from the trials table, where the worker stored it
(:mod:`gdsearch.analysis.trajectory`), and the rest from histories read block by block
(:mod:`gdsearch.analysis.histories`), so that a result set opened with
``gdsearch.results.scan.open_results`` is never held in memory whole. A *group* is one comparison
(:mod:`gdsearch.analysis.comparison`): trials that differ only in learning rate and replicate seed.

Trial classes, in the order they are decided:

- ``failed``: the trial raised an error and has no history (its status is failed).
- ``diverged``: the trial's status is diverged.
- ``pruned``: a scheduler stopped it at a rung (status pruned); its history ends there.
- ``catapult`` and ``edge_of_stability``: where the sharpness was measured, the mechanisms of
  :mod:`gdsearch.stability.edge` (their thresholds are there).
- ``converged``: its final SSE is within ``tolerance`` (relative) of its group's best SSE.
- ``oscillating``: over the late phase (the last ``LATE_FRACTION`` of its epochs) its SSE rose
  in at least ``OSCILLATION_SHARE`` of the steps.
- ``plateaued``: over the late phase its SSE fell by less than ``PLATEAU_GAIN`` (relative) in
  all, while still short of the group's best.
- ``slow``: still falling, but short of the group's best when training ended.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gdsearch.analysis.comparison import GROUP
from gdsearch.analysis.histories import Results, history_blocks, sse_curves
from gdsearch.analysis.ranking import TIE_TOLERANCE, mark_ties
from gdsearch.analysis.trajectory import LATE_FRACTION, trajectory
from gdsearch.errors import InputError
from gdsearch.mlp.config import OPTIMIZER_FIELDS
from gdsearch.mlp.stopping import Status
from gdsearch.stability.edge import edge_metrics

__all__ = [
    "DEFAULT_TOLERANCE",
    "GROUP",
    "LATE_FRACTION",
    "OSCILLATION_SHARE",
    "PLATEAU_GAIN",
    "RANK_BY",
    "STOPPED_EARLY",
    "TELLING",
    "bracket",
    "check_rank",
    "converged_above",
    "convergence_table",
    "critical_lr",
    "default_rank",
    "holds_out",
    "lr_summary",
    "refine",
    "sse_curves",
    "trial_metrics",
]


OSCILLATION_SHARE = 0.3
PLATEAU_GAIN = 1e-4
DEFAULT_TOLERANCE = 0.05
STOPPED_EARLY = (Status.DIVERGED, Status.PRUNED, Status.FAILED)
"""Statuses whose final SSE is not the end of training."""
TELLING = (Status.OK, Status.DIVERGED, Status.PLATEAUED)
"""Statuses that say whether a learning rate diverges."""


def _group_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in GROUP if c in trials.columns]


NO_HISTORY = {
    "final_epoch": np.nan,
    "min_epoch": np.nan,
    "contraction": 1.0,
    "rise_share": 0.0,
    "late_gain": np.nan,
}
"""What :func:`gdsearch.analysis.trajectory.trajectory` says of a trial with no history."""
EDGE_NONE = {
    "sharpness_init": np.nan,
    "edge_ratio_init": np.nan,
    "edge_ratio_final": np.nan,
    "edge_of_stability": False,
    "catapult": False,
}
"""The edge metrics of a trial without sharpness measurements or history."""


def trial_metrics(
    results: Results, tolerance: float = DEFAULT_TOLERANCE, target: float | None = None
) -> pd.DataFrame:
    """One row per trial: its configuration, final and minimum SSE, epochs to tolerance,
    late-phase contraction ratio and class.

    What a trial's own history says of it (:data:`gdsearch.analysis.trajectory.TRAJECTORY_COLUMNS`)
    comes from the trials table, where the worker stored it; trials stored before those
    columns existed have it computed from their history. The rest needs the history only for
    the first epoch at or below a threshold, and the edge metrics where the sharpness was
    measured: one pass over the histories, block by block.

    Args:
        results: a loaded result set.
        tolerance: relative distance from the group's best SSE that counts as reached.
        target: an absolute SSE; if given, ``epochs_to_target`` is the first epoch at or below it.

    Returns:
        The trials table plus ``group_best``, ``epochs_to_tolerance`` (NaN if never reached),
        ``epochs_to_target``, the trajectory columns (``contraction``: median SSE(t+1)/SSE(t)
        over the late phase) and ``convergence`` (one of the classes in this module's
        docstring); and where the sharpness was measured, ``sharpness_init``,
        ``edge_ratio_init``, ``edge_ratio_final``, ``edge_of_stability`` and ``catapult``
        (:func:`gdsearch.stability.edge.edge_metrics`).
    """
    trials = results.trials.copy()
    group = _group_columns(trials)
    lowest = trials["min_sse"].astype(np.float64).fillna(np.inf)  # inf: no history
    trials["group_best"] = lowest.groupby([trials[c] for c in group], dropna=False).transform(
        "min"
    )
    threshold = trials["group_best"].to_numpy() * (1.0 + tolerance)
    targets = np.full(len(trials), -np.inf if target is None else target)
    for name in NO_HISTORY:
        if name not in trials.columns:
            trials[name] = np.nan
        if name in ("contraction", "rise_share"):  # null only where not stored
            trials[name] = trials[name].astype(np.float64)
    missing = trials["rise_share"].isna().to_numpy()
    trials.loc[missing, list(NO_HISTORY)] = pd.DataFrame(NO_HISTORY, index=trials.index[missing])
    sharpness = getattr(results, "sharpness", None)
    if sharpness is None:
        sharpness = pd.DataFrame(columns=["trial_id", "epoch", "sharpness"])
    measured = len(sharpness) > 0
    first_tol, first_target = np.full(len(trials), np.nan), np.full(len(trials), np.nan)
    edges = []

    # One pass over the histories that decide something.
    needed = missing | (lowest.to_numpy() <= np.maximum(threshold, targets))
    if measured:
        needed |= trials["trial_id"].isin(sharpness["trial_id"]).to_numpy()
    position = pd.Series(np.arange(len(trials)), index=trials["trial_id"].to_numpy())
    for ids, sse in history_blocks(results, trials.loc[needed, "trial_id"].tolist()):
        rows = position[ids].to_numpy()
        first_tol[rows] = _first_at_or_below(sse, threshold[rows])
        first_target[rows] = _first_at_or_below(sse, targets[rows])
        absent = missing[rows]
        if absent.any():
            computed = pd.DataFrame(trajectory(sse[absent]), index=trials.index[rows[absent]])
            for name in ("final_epoch", "min_epoch"):  # -1: no history
                computed[name] = computed[name].where(computed[name] >= 0)
            trials.loc[computed.index, list(NO_HISTORY)] = computed
        if measured:
            block = trials.iloc[rows]
            edges.append(edge_metrics(block, sharpness[sharpness["trial_id"].isin(ids)], sse))
    trials["epochs_to_tolerance"] = first_tol
    if target is not None:
        trials["epochs_to_target"] = first_target
    edge = _edge_frame(edges, trials.index)
    if measured:
        trials = trials.join(edge)

    final = trials["final_sse"].to_numpy(dtype=np.float64)
    reached = final <= threshold
    rises = trials["rise_share"].to_numpy(dtype=np.float64)
    gain = trials["late_gain"].to_numpy(dtype=np.float64)
    classes = np.select(
        [
            (trials["status"] == Status.FAILED).to_numpy(),
            (trials["status"] == Status.DIVERGED).to_numpy(),
            (trials["status"] == Status.PRUNED).to_numpy(),
            edge["catapult"].to_numpy(dtype=bool),
            edge["edge_of_stability"].to_numpy(dtype=bool),
            reached,
            rises >= OSCILLATION_SHARE,
            ~(gain >= PLATEAU_GAIN),
        ],
        [
            "failed",
            "diverged",
            "pruned",
            "catapult",
            "edge_of_stability",
            "converged",
            "oscillating",
            "plateaued",
        ],
        default="slow",
    )
    trials["convergence"] = classes
    return trials


def _edge_frame(edges: list[pd.DataFrame], index: pd.Index) -> pd.DataFrame:
    """The blocks' edge metrics, one row per trial; ``EDGE_NONE`` for trials not in a block."""
    edge = pd.concat(edges) if edges else pd.DataFrame(columns=list(EDGE_NONE))
    edge = edge.reindex(index)
    for name, value in EDGE_NONE.items():
        edge[name] = edge[name].fillna(value).astype(type(value))
    return edge


def _first_at_or_below(sse: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Per row, the first epoch whose SSE is at or below the row's threshold (NaN if none)."""
    hit = sse <= threshold[:, None]
    first = np.argmax(hit, axis=1).astype(np.float64)
    return np.where(hit.any(axis=1), first, np.nan)


RANK_BY = {
    "final_sse": "the final SSE on the data trained on",
    "final_val_sse": "the final SSE on the held-out data",
    "min_val_sse": "the lowest SSE on the held-out data during training",
}
"""What picks a group's best lr (lower is better, the median over seeds); the held-out ones
need a job that holds data out (``[data] validation``)."""


def holds_out(trials: pd.DataFrame) -> bool:
    """Whether these trials were measured on held-out data."""
    return "final_val_sse" in trials.columns and bool(trials["final_val_sse"].notna().any())


def default_rank(trials: pd.DataFrame) -> str:
    """The held-out final SSE where data was held out, else the final SSE."""
    return "final_val_sse" if holds_out(trials) else "final_sse"


def check_rank(rank_by: str, trials: pd.DataFrame) -> str:
    """``rank_by`` if it is one of ``RANK_BY`` these trials have; else an InputError."""
    if rank_by not in RANK_BY:
        raise InputError(f"rank_by: one of {', '.join(RANK_BY)}, but got {rank_by!r}")
    if rank_by != "final_sse" and not holds_out(trials):
        raise InputError(
            f"rank_by {rank_by!r}: these results hold no data out (their job has no "
            "[data] validation)"
        )
    return rank_by


def convergence_table(
    results: Results,
    tolerance: float = DEFAULT_TOLERANCE,
    metrics: pd.DataFrame | None = None,
    rank_by: str | None = None,
) -> pd.DataFrame:
    """One row per group and learning rate, aggregated over seeds.

    ``metrics``, if given, is :func:`trial_metrics` of the same results and tolerance, so that a
    caller who has it already does not pay for another pass over the histories.

    Columns: the group's columns, lr, trials, median / q25 / q75 of final SSE (of trials that
    trained to the end: neither diverged nor pruned), diverged_fraction, pruned_fraction,
    median epochs_to_tolerance, the most common class, and ``best`` (True on the lr with the
    lowest median final SSE among those none of whose trials diverged and some of whose trials
    were not pruned, and on every lr tied with it: within ``TIE_TOLERANCE`` of it, relative to
    it, :mod:`gdsearch.analysis.ranking`; a tie marks them all, not one).

    Where data was held out, also the medians of final and lowest held-out SSE and, for class
    targets, of the best held-out accuracy; ``rank_by`` (one of ``RANK_BY``; by default the
    held-out final SSE where there is one, else the final SSE) says which median picks ``best``.
    """
    metrics = trial_metrics(results, tolerance) if metrics is None else metrics.copy()
    rank_by = check_rank(rank_by or default_rank(metrics), metrics)
    held = {}
    if holds_out(metrics):
        kept = ~metrics["status"].isin(STOPPED_EARLY)
        for column in ("final_val_sse", "min_val_sse", "best_val_accuracy"):
            if metrics[column].notna().any():
                metrics[f"kept_{column}"] = metrics[column].where(kept)
                held[f"median_{column}"] = (f"kept_{column}", "median")
    group = _group_columns(metrics)
    metrics["kept_sse"] = metrics["final_sse"].where(~metrics["status"].isin(STOPPED_EARLY))
    metrics["is_diverged"] = metrics["status"] == Status.DIVERGED
    metrics["is_pruned"] = metrics["status"] == Status.PRUNED
    keys = [*group, "lr"]
    table = (
        metrics.groupby(keys, dropna=False, sort=True)
        .agg(
            trials=("trial_id", "size"),
            median_final_sse=("kept_sse", "median"),
            q25_final_sse=("kept_sse", lambda s: s.quantile(0.25)),
            q75_final_sse=("kept_sse", lambda s: s.quantile(0.75)),
            diverged_fraction=("is_diverged", "mean"),
            pruned_fraction=("is_pruned", "mean"),
            median_epochs_to_tolerance=("epochs_to_tolerance", "median"),
            typical=("convergence", lambda s: s.mode().iloc[0]),
            **held,
        )
        .reset_index()
    )
    candidates = table[f"median_{rank_by}"].where(table["diverged_fraction"] == 0)
    table["best"] = mark_ties(candidates, [table[c] for c in group], tolerance=TIE_TOLERANCE)
    return table


def bracket(diverged_at: dict[float, bool]) -> tuple[float, float]:
    """The critical-lr bracket from whether each learning rate diverged (in any replicate).

    Returns:
        ``(lr_converged, lr_diverged)``: the smallest lr that diverged, and the largest lr below
        it that did not. Either is NaN where the learning rates tried do not reach that side.
    """
    diverged = [lr for lr, flag in diverged_at.items() if flag]
    lr_diverged = min(diverged) if diverged else math.nan
    below = [lr for lr, flag in diverged_at.items() if not flag and not lr >= lr_diverged]
    return (max(below) if below else math.nan), lr_diverged


def converged_above(diverged_at: dict[float, bool]) -> float:
    """The largest lr at which no replicate diverged although a smaller one did: where
    divergence is not monotone in the learning rate (near the edge of stability a rate can
    diverge late while a larger one converges). NaN where divergence is monotone."""
    lr_diverged = bracket(diverged_at)[1]
    above = [lr for lr, flag in diverged_at.items() if not flag and lr > lr_diverged]
    return max(above) if above else math.nan


def refine(lr_converged: float, lr_diverged: float, points: int) -> list[float]:
    """``points`` learning rates spaced evenly in log space strictly inside the bracket.

    One round of bisection in log space: the bracket's log-width shrinks by ``points + 1``.
    """
    inner = np.geomspace(lr_converged, lr_diverged, points + 2)[1:-1]
    return [float(lr) for lr in inner]


def critical_lr(results: Results) -> pd.DataFrame:
    """Per group, the bracket that holds the critical learning rate (see :func:`bracket`).

    Only trials that ran far enough to say count: those that diverged, trained every epoch, or
    stopped on their own for not improving. A pruned trial had not diverged by its rung but
    might have later, and a failed one says nothing.

    Columns: the group's columns, ``lr_converged``, ``lr_diverged``, ``monotone`` (False
    where a rate above ``lr_diverged`` converged, so that no single bracket holds the critical
    rate) and ``lr_converged_above`` (the largest such rate; NaN where monotone).
    """
    metrics = results.trials[results.trials["status"].isin(TELLING)]
    group = _group_columns(metrics)
    per_lr = (
        metrics.assign(is_diverged=metrics["status"] == Status.DIVERGED)
        .groupby([*group, "lr"], dropna=False)["is_diverged"]
        .any()
        .reset_index()
    )
    rows = []
    for key, frame in per_lr.groupby(group, dropna=False, sort=True):
        flags = dict(zip(frame["lr"], frame["is_diverged"], strict=True))
        lr_converged, lr_diverged = bracket(flags)
        above = converged_above(flags)
        rows.append(
            {
                **dict(zip(group, key, strict=True)),
                "lr_converged": lr_converged,
                "lr_diverged": lr_diverged,
                "monotone": math.isnan(above),
                "lr_converged_above": above,
            }
        )
    return pd.DataFrame(rows)


def lr_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (init, hidden, activation, lr), and per value of the batch size or an update
    rule's setting where it varies (momentum, say): trials, median final SSE, diverged and
    pruned counts.

    Args:
        trials: a result set's trials table.

    Returns:
        A DataFrame with columns init, hidden, activation, the varying group columns, lr,
        trials, median_final_sse (over trials that trained to the end; NaN if none did),
        min_final_sse, diverged, pruned; and failed, if any trial failed (failed trials have no
        SSE).
    """
    shown = ["init", "hidden", "activation"]
    varying = [
        c
        for c in ("batch_size", *OPTIMIZER_FIELDS)
        if c in trials.columns and trials[c].nunique(dropna=False) > 1
    ]
    frame = trials.assign(
        converged_sse=trials["final_sse"].where(~trials["status"].isin(STOPPED_EARLY)),
        is_diverged=trials["status"] == Status.DIVERGED,
        is_pruned=trials["status"] == Status.PRUNED,
        is_failed=trials["status"] == Status.FAILED,
    )
    table = frame.groupby([*shown, *varying, "lr"], sort=True, dropna=False).agg(
        trials=("trial_id", "size"),
        median_final_sse=("converged_sse", "median"),
        min_final_sse=("converged_sse", "min"),
        diverged=("is_diverged", "sum"),
        pruned=("is_pruned", "sum"),
        failed=("is_failed", "sum"),
    )
    if not frame["is_failed"].any():
        table = table.drop(columns="failed")
    return table.reset_index()
