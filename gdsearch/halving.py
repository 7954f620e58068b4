"""Successive halving across learning rates: the rungs, who takes part, who goes on.

With ``scheduler = "halving"`` a trial is measured at rungs: ``min_epochs``, then ``min_epochs``
× η, × η², … (η the reduction factor) below the job's epochs. At each rung, the trials of one
comparison group (same init, architecture, activation, init scale, batch size; any lr and seed)
that are still training are ranked by the rung metric, and all but the best ⌈m/η⌉ of the m stop
as ``pruned``, their history kept up to the rung. The rest carry on from their own weights.

Decisions depend only on histories: who reached a rung and what its metric was there. A trial
takes part in rung r if it was still training after epoch r was measured: it finished every
epoch, was pruned at r or later, diverged or plateaued after r, or failed after r (a trial
that fails between rungs keeps its history up to the last rung it reached). So a run that is
stopped and run again, training only what is not stored, takes the same decisions: stored
trials take part with their stored histories. Ties go to the smaller trial_id. For the same
reason a failed trial of a halving run is not trained again by a rerun: the group's later rungs
were decided without it (``--fresh`` trains everything again).

Unlike ASHA, which promotes a trial as soon as it is in the top 1/η of those that have reached
a rung so far (so its choices depend on timing), a group here waits until all its trials have
reached the rung. Work units hold one comparison group each, so while a group waits, the
workers train the other groups' units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from gdsearch.mlp import rung_metric


def rungs(min_epochs: int, factor: int, epochs: int) -> list[int]:
    """The epochs where decisions are taken: min_epochs × factorᵏ below ``epochs``."""
    out = []
    rung = min_epochs
    while rung < epochs:
        out.append(rung)
        rung *= factor
    return out


def survivors(metrics: Mapping[str, float], factor: int) -> set[str]:
    """The best ⌈m/η⌉ of the m trials at a rung (lowest metric; ties to the smaller id)."""
    ranked = sorted(metrics, key=lambda trial_id: (metrics[trial_id], trial_id))
    return set(ranked[: math.ceil(len(ranked) / factor)])


def took_part(trials: pd.DataFrame, rung: int) -> np.ndarray:
    """Which stored trials were still training after epoch ``rung`` was measured."""
    status = trials["status"].to_numpy()
    diverged = trials["diverged_epoch"].to_numpy(dtype=np.float64, na_value=np.nan)
    stopped = trials["stopped_epoch"].to_numpy(dtype=np.float64, na_value=np.nan)
    return (
        (status == "ok")
        | ((status == "pruned") & (stopped >= rung))
        | ((status == "plateaued") & (stopped > rung))
        | ((status == "diverged") & (diverged > rung))
        | ((status == "failed") & (stopped >= rung))  # failed later, its history kept
    )


def stored_metrics(
    trials: pd.DataFrame, history: pd.DataFrame, rung_epochs: list[int], metric: str
) -> list[dict[str, float]]:
    """Per rung, the metric of every stored trial that took part in it, by trial_id.

    Args:
        trials: stored trials rows (trial_id, status, diverged_epoch, stopped_epoch).
        history: their history rows (trial_id, epoch, sse).
        rung_epochs: from :func:`rungs`.
        metric: one of ``gdsearch.mlp.RUNG_METRICS``.
    """
    if trials.empty or not rung_epochs:
        return [{} for _ in rung_epochs]
    last = rung_epochs[-1]
    wide = (
        history[history["epoch"] <= last]
        .pivot(index="trial_id", columns="epoch", values="sse")
        .reindex(index=trials["trial_id"], columns=range(last + 1))
        .to_numpy(dtype=np.float64)
    )
    out = []
    for rung in rung_epochs:
        taking_part = took_part(trials, rung)
        values = rung_metric(wide[taking_part], rung, metric)
        ids = trials["trial_id"].to_numpy()[taking_part]
        out.append(dict(zip(ids, values.tolist(), strict=True)))
    return out
