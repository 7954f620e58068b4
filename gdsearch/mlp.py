"""The MLP and its training, as documented (DESIGN.md's Python API).

The code lives in the maths layer, :mod:`gdsearch.model`: the network in ``network``, training a
population in ``population``, the settings in ``config`` and the update rules in ``optim``.
"""

from __future__ import annotations

from gdsearch.model.config import DEFAULT_DIVERGENCE_FACTOR, TrainConfig
from gdsearch.model.network import (
    GRAD_SCALES,
    Params,
    Stacked,
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
    STATUS_CODES,
    Population,
    PopulationResult,
    train,
    train_population,
)

__all__ = [
    "DEFAULT_DIVERGENCE_FACTOR",
    "GRAD_SCALES",
    "STATUS_CODES",
    "GradientDescent",
    "Params",
    "Population",
    "PopulationResult",
    "Stacked",
    "TrainConfig",
    "UpdateRule",
    "gradient",
    "init_params",
    "layer_sizes",
    "predict",
    "sse",
    "stack_params",
    "train",
    "train_population",
    "unstack_params",
]
