"""What a trial's own history says of it: where it ended, where it was lowest, and how its late
phase went.

These metrics depend on one trial's history alone, so the worker computes them as it hands a
trial's rows out and the store keeps them as columns of the trials table
(:data:`TRAJECTORY_COLUMNS`); analysis then classes trials from the trials table without reading
the history. Result sets written before these columns existed have them computed here from
their history, block by block. Numpy only: the same function serves both.
"""

from __future__ import annotations

import warnings

import numpy as np

LATE_FRACTION = 0.1
"""The late phase: the last this fraction of a trial's steps (at least one step)."""

TRAJECTORY_COLUMNS = ("final_epoch", "min_epoch", "contraction", "rise_share", "late_gain")
"""The trials table's columns of :func:`trajectory` (null where a trial has no history)."""


def trajectory(sse: np.ndarray) -> dict[str, np.ndarray]:
    """Per trial, what its history says of it.

    Args:
        sse: (trials, epochs + 1) SSE per trial and epoch, NaN past each trial's last epoch
            (a trial with no history is a row of NaN).

    Returns:
        Arrays of one value per trial: ``final_epoch`` (its last epoch, -1 with no history),
        ``min_epoch`` (the first epoch of its lowest SSE, -1 with no history), ``contraction``
        (the median of SSE(t+1)/SSE(t) over the late phase; 1.0 with no late steps),
        ``rise_share`` (the share of late steps whose SSE rose) and ``late_gain`` (the relative
        fall of the SSE over the late phase, (first − final) / first; NaN with no history).
    """
    K, width = sse.shape
    rows = np.arange(K)
    lengths = np.sum(~np.isnan(sse), axis=1)  # (K,)
    lowest = np.where(np.isnan(sse), np.inf, sse)
    min_epoch = np.where(lengths > 0, np.argmin(lowest, axis=1), -1)

    # Late phase: the last LATE_FRACTION of each trial's steps (at least one step).
    epochs = np.arange(width)
    steps = np.maximum(1, np.ceil(LATE_FRACTION * (lengths - 1))).astype(int)  # (K,)
    late = (epochs[None, 1:] >= (lengths - steps)[:, None]) & (epochs[None, 1:] < lengths[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sse[:, 1:] / sse[:, :-1]  # (K, epochs)
    ratio = np.where(late, ratio, np.nan)
    with warnings.catch_warnings():  # a late phase whose ratios are all 0/0: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        contraction = np.nanmedian(np.where(late.any(axis=1)[:, None], ratio, 1.0), axis=1)
    rises = np.sum(late & (ratio > 1.0), axis=1) / np.maximum(late.sum(axis=1), 1)
    first_late = sse[rows, np.clip(lengths - 1 - steps, 0, None)]
    final = sse[rows, np.maximum(lengths - 1, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (first_late - final) / first_late
    return {
        "final_epoch": lengths - 1,
        "min_epoch": min_epoch,
        "contraction": contraction,
        "rise_share": rises.astype(np.float64),
        "late_gain": np.where(lengths > 0, gain, np.nan),
    }
