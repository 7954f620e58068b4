"""The theory a report sets beside the measurements: each group's predicted stability limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gdsearch.model import stability
from gdsearch.model.comparison import GROUP
from gdsearch.report.panels import label

if TYPE_CHECKING:
    from gdsearch.results.store import Results


def predicted_limits(results: Results) -> dict[str, float]:
    """2/λ_max per group label at the first replicate's initial weights; {} if the job's data
    cannot be loaded from where the result set says it came from."""
    loaded = results.job_and_data()
    if loaded is None:
        return {}
    spec, X, Y = loaded
    limits: dict[str, float] = {}
    for trial in sorted(spec.trials(), key=lambda t: t.seed):
        key = trial.comparison_key()
        name = label(tuple(np.nan if v is None else v for v in key), GROUP)
        if name in limits:
            continue
        if not trial.hidden:
            limits[name] = stability.linear_lr_limit(X, trial.train.grad_scale)
            continue
        params = trial.initial_params(X.shape[1], Y.shape[1])
        limits[name] = stability.lr_limit(params, X, Y, trial.activation, trial.train.grad_scale)
    return limits
