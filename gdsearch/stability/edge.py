"""The edge of stability and the catapult, read from a trial's SSE and sharpness.

With ``sharpness_every`` set, each trial has its sharpness λ (the top Hessian eigenvalue of the
loss it descends) at epochs 0, k, 2k, …, and so its *edge ratio* r = λ / λ_edge, where
λ_edge = c / lr_t is the sharpness at which its step is at the edge (:func:`edge_sharpness`):
lr_t the epoch's learning rate (after any schedule) and c = 2 for plain gradient descent,
2(1 + β) for heavy-ball momentum, 2(1 + β)/(1 + 2β) for Nesterov's. On a quadratic, training is
stable exactly while r < 1; for plain gradient descent r = lr·λ/2. Two mechanisms explain why
a network's measured critical learning rate sits far from the prediction at its initial
weights:

- **Edge of stability** (Cohen, Kaur, Li, Kolter, Talwalkar, ICLR 2021): λ rises during training
  ("progressive sharpening") until r reaches about 1, then hovers there while the loss keeps
  falling, not monotonically. A trial is classed so when r reached ``EDGE_REACH``, the median of
  r from then on lies in ``EDGE_BAND``, over at least ``EDGE_MEASUREMENTS`` measurements, and
  its SSE at the end is below its SSE when it reached the edge.
- **Catapult** (Lewkowycz, Bahri, Dyer, Sohl-Dickstein, Gur-Ari, 2020): a rate past the edge
  at init (r₀ > 1; for plain gradient descent, lr > 2/λ₀) first makes the loss rise, which
  drives λ down until r < 1, after which training converges. A trial is classed so when
  r₀ > 1, some epoch's SSE rose above its epoch-0 SSE, some later measurement has r < 1, and it
  trained to the end (ok or plateaued) below its epoch-0 SSE.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from gdsearch.mlp.optim import Schedule
from gdsearch.mlp.stopping import Status

EDGE_REACH = 0.9
"""The edge ratio lr·λ/2 at which a trial counts as having reached the edge."""
EDGE_BAND = (0.9, 1.2)
"""Where the median edge ratio must lie, from reaching the edge on, to count as staying at it."""
EDGE_MEASUREMENTS = 3
"""Measurements at the edge, at least, to call it a stay rather than a passing touch."""
TRAINED = (Status.OK, Status.PLATEAUED)
"""Statuses of trials that trained until they ended on their own."""


def edge_sharpness(frame: pd.DataFrame) -> np.ndarray:
    """The sharpness at the edge of stability for each row's trial and epoch: c / lr_t.

    Args:
        frame: rows with ``lr`` and ``epoch``, and where present the trial's ``epochs``,
            ``momentum``, ``nesterov``, ``lr_schedule``, ``step_size``, ``gamma`` and
            ``warmup_epochs`` (missing ones mean plain gradient descent at a constant rate).
    """

    def column(name: str, default: object) -> pd.Series:
        if name not in frame.columns:
            return pd.Series(default, index=frame.index)
        return frame[name].where(frame[name].notna(), default)

    beta = column("momentum", 0.0).to_numpy(dtype=np.float64)
    nesterov = column("nesterov", False).to_numpy(dtype=bool)
    factor = 2.0 * (1.0 + beta) / np.where(nesterov, 1.0 + 2.0 * beta, 1.0)
    scale = np.ones(len(frame))
    schedules = column("lr_schedule", "constant").to_numpy()
    warmups = column("warmup_epochs", 0).to_numpy(dtype=np.int64)
    scheduled = np.flatnonzero((schedules != "constant") | (warmups > 0))
    if scheduled.size:
        epochs = column("epochs", 1).to_numpy(dtype=np.int64)
        steps = column("step_size", 1).to_numpy(dtype=np.int64)
        gammas = column("gamma", 1.0).to_numpy(dtype=np.float64)
        at = frame["epoch"].to_numpy(dtype=np.int64)
        for i in scheduled:
            schedule = Schedule(
                str(schedules[i]),
                int(epochs[i]),
                max(int(steps[i]), 1),
                float(gammas[i]),
                int(warmups[i]),
            )
            scale[i] = schedule.factor(min(int(at[i]), int(epochs[i]) - 1))
    return factor / (frame["lr"].to_numpy(dtype=np.float64) * scale)


def edge_metrics(trials: pd.DataFrame, sharpness: pd.DataFrame, sse: np.ndarray) -> pd.DataFrame:
    """Per trial: its sharpness at init, its edge ratio at init and at the last measurement,
    and whether it sat at the edge of stability or was catapulted.

    Args:
        trials: the trials table (trial_id, lr, status), in the order of ``sse``'s rows.
        sharpness: the sharpness table (trial_id, epoch, sharpness).
        sse: (trials, epochs + 1) histories in the trials table's order, NaN past the end.

    Returns:
        A frame indexed like ``trials`` with columns ``sharpness_init``, ``edge_ratio_init``,
        ``edge_ratio_final`` (NaN where not measured), ``edge_of_stability`` and ``catapult``.
    """
    merged = sharpness.merge(trials.drop(columns=["epoch"], errors="ignore"), on="trial_id")
    merged["ratio"] = merged["sharpness"] / edge_sharpness(merged)
    wide = merged.pivot(index="trial_id", columns="epoch", values="sharpness")
    wide = wide.reindex(index=trials["trial_id"])
    measured_at = wide.columns.to_numpy(dtype=np.int64)  # (M,) epochs 0, k, 2k, …
    lam = wide.to_numpy(dtype=np.float64)  # (trials, M)
    lr = trials["lr"].to_numpy(dtype=np.float64)
    ratio = (
        merged.pivot(index="trial_id", columns="epoch", values="ratio")
        .reindex(index=trials["trial_id"], columns=wide.columns)
        .to_numpy(dtype=np.float64)
    )
    have = ~np.isnan(ratio)
    first = np.where(have.any(axis=1), np.argmax(have, axis=1), 0)
    last = ratio.shape[1] - 1 - np.argmax(have[:, ::-1], axis=1)
    rows = np.arange(len(lr))
    at_init = np.where(have[rows, first] & (measured_at[first] == 0), ratio[rows, first], np.nan)

    # Edge of stability: reached EDGE_REACH, then stayed in the band, while the SSE fell.
    reached = have & (ratio >= EDGE_REACH)
    any_reach = reached.any(axis=1)
    reach = np.argmax(reached, axis=1)  # (trials,) first measurement at the edge
    after = have & (np.arange(ratio.shape[1])[None, :] >= reach[:, None]) & any_reach[:, None]
    with warnings.catch_warnings():  # trials that never reached the edge: an all-NaN row
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(np.where(after, ratio, np.nan), axis=1)
    lengths = np.sum(~np.isnan(sse), axis=1)
    final = sse[rows, np.maximum(lengths - 1, 0)]
    reach_epoch = np.minimum(measured_at[reach], np.maximum(lengths - 1, 0))
    falling = final < sse[rows, reach_epoch]
    trained = trials["status"].isin(TRAINED).to_numpy()
    edge = (
        trained
        & any_reach
        & (after.sum(axis=1) >= EDGE_MEASUREMENTS)
        & falling
        & (median >= EDGE_BAND[0])
        & (median <= EDGE_BAND[1])
    )

    # Catapult: started past the edge, the SSE rose, the sharpness fell below it, converged.
    with np.errstate(invalid="ignore"):
        rose = np.nanmax(np.where(np.isnan(sse), -np.inf, sse), axis=1) > sse[:, 0]
        below_later = ((ratio < 1.0) & have & (np.arange(ratio.shape[1])[None, :] > 0)).any(axis=1)
        catapult = (at_init > 1.0) & rose & below_later & trained & (final < sse[:, 0])
    return pd.DataFrame(
        {
            "sharpness_init": np.where(np.isnan(at_init), np.nan, lam[rows, first]),
            "edge_ratio_init": at_init,
            "edge_ratio_final": np.where(have.any(axis=1), ratio[rows, last], np.nan),
            "edge_of_stability": edge,
            "catapult": catapult,
        },
        index=trials.index,
    )
