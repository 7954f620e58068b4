"""The MLP and its training, as documented (DESIGN.md's Python API).

The code lives in the maths layer, :mod:`gdsearch.model`: the network in ``network``, training a
population in ``population``, the settings in ``config`` and the update rules in ``optim``.
"""

from __future__ import annotations

from gdsearch.model.config import (
    DEFAULT_DIVERGENCE_FACTOR,
    DEFAULT_PATIENCE_TOLERANCE,
    TrainConfig,
)
from gdsearch.model.network import (
    GRAD_SCALES,
    Params,
    Stacked,
    check_grad_scale,
    gradient,
    init_params,
    layer_sizes,
    predict,
    sse,
    stack_params,
    unstack_params,
)
from gdsearch.model.optim import GradientDescent, UpdateRule
from gdsearch.model.population import (
    RUNG_METRICS,
    STATUS_CODES,
    Population,
    PopulationResult,
    rung_metric,
    train,
    train_population,
)

__all__ = [
    "DEFAULT_DIVERGENCE_FACTOR",
    "DEFAULT_PATIENCE_TOLERANCE",
    "GRAD_SCALES",
    "RUNG_METRICS",
    "STATUS_CODES",
    "GradientDescent",
    "Params",
    "Population",
    "PopulationResult",
    "Stacked",
    "TrainConfig",
    "UpdateRule",
    "check_grad_scale",
    "gradient",
    "init_params",
    "layer_sizes",
    "predict",
    "rung_metric",
    "sse",
    "stack_params",
    "train",
    "train_population",
    "unstack_params",
]
