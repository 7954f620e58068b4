"""The theory a report sets beside the measurements: each group's predicted stability limit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gdsearch.analysis.comparison import GROUP
from gdsearch.job.trial import Trial
from gdsearch.report.panels import label
from gdsearch.stability import limits as stability

if TYPE_CHECKING:
    from gdsearch.results.resultset import Results


def predicted_limits(results: Results) -> dict[str, float]:
    """Per group label, the predicted critical learning rate for the group's update rule
    (2/λ_max for plain gradient descent) at the first replicate's initial weights; {} if the
    job's data cannot be loaded from where the result set says it came from.

    λ_max is computed once per model and starting weights, and shared by the groups that differ
    only in their optimizer.
    """
    loaded = results.job_and_data()
    if loaded is None:
        return {}
    spec, X, Y = loaded
    limits: dict[str, float] = {}
    tops: dict[tuple[Any, ...], float] = {}
    for trial in sorted(spec.trials(), key=lambda t: t.seed):
        name = label(tuple(np.nan if v is None else v for v in trial.comparison_key()), GROUP)
        if name in limits:
            continue
        train = trial.train
        model = (
            trial.hidden,
            trial.init,
            trial.init_scale,
            trial.seed,
            trial.activation,
            train.grad_scale,
        )
        if model not in tops:
            tops[model] = _sharpness(trial, X, Y)
        limits[name] = stability.optimizer_limit(
            tops[model], train.momentum, train.nesterov, train.weight_decay
        )
    return limits


AGREES = 1.25
"""The measured critical rate agrees with the prediction at init when within this factor."""


def explanation(ratio: float, metrics: pd.DataFrame, measured: bool) -> str:
    """Why a group's measured critical rate sits where it does against the prediction at init.

    Args:
        ratio: the measured bracket's geometric middle over the predicted limit (NaN if
            either is unknown).
        metrics: the group's rows of :func:`gdsearch.analysis.convergence.trial_metrics`.
        measured: whether the sharpness was measured during training.
    """
    if math.isnan(ratio):
        return ""
    if 1 / AGREES <= ratio <= AGREES:
        return "the prediction at init holds"
    if not measured:
        return "set sharpness_every in [train] to see why"
    said = []
    catapults = int(metrics["convergence"].eq("catapult").sum())
    edges = int(metrics["convergence"].eq("edge_of_stability").sum())
    if catapults:
        said.append(
            f"catapult: {catapults} trials past the edge at init converged after a "
            "loss spike drove λ down"
        )
    if edges:
        said.append(
            f"edge of stability: in {edges} trials λ rose to the edge (2/lr for "
            "plain descent) and stayed there as the SSE fell"
        )
    if not said:
        rises = metrics["edge_ratio_final"] / metrics["edge_ratio_init"]
        typical = float(np.nanmedian(rises)) if rises.notna().any() else math.nan
        if ratio < 1 and typical > AGREES:
            said.append(f"progressive sharpening: λ rose {typical:.2g}× during training")
    return "; ".join(said) or "neither catapult nor edge of stability seen"


def _sharpness(trial: Trial, X: np.ndarray, Y: np.ndarray) -> float:
    """λ_max of the loss's Hessian at the trial's starting weights (exact for the linear model)."""
    if not trial.hidden:
        return float(np.linalg.eigvalsh(stability.linear_hessian(X, trial.train.grad_scale)).max())
    params = trial.initial_params(X.shape[1], Y.shape[1])
    return stability.sharpness(params, X, Y, trial.activation, trial.train.grad_scale)
