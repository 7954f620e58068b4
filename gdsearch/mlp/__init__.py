"""The multi-layer perceptron and its training by gradient descent on the SSE.

- :mod:`~gdsearch.mlp.network`: weights, the forward pass and the gradient, side by side;
- :mod:`~gdsearch.mlp.activations` and :mod:`~gdsearch.mlp.inits`: tables of functions by name;
- :mod:`~gdsearch.mlp.population`: many trials trained at once, the stopping rules, the records;
- :mod:`~gdsearch.mlp.config`: every training setting but the learning rate;
- :mod:`~gdsearch.mlp.optim`: the update rules (momentum, Nesterov, weight decay, schedules);
- :mod:`~gdsearch.mlp.numerics` and :mod:`~gdsearch.mlp.elementary`: the portable arithmetic;
- :mod:`~gdsearch.mlp.kernel` and :mod:`~gdsearch.mlp.compiled`: the same arithmetic compiled;
- :mod:`~gdsearch.mlp.sharpness`: the top Hessian eigenvalue during training.
"""

from __future__ import annotations

from gdsearch.mlp.config import (
    DEFAULT_DIVERGENCE_FACTOR,
    DEFAULT_PATIENCE_TOLERANCE,
    TrainConfig,
)
from gdsearch.mlp.network import (
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
from gdsearch.mlp.optim import GradientDescent, UpdateRule
from gdsearch.mlp.population import (
    RUNG_METRICS,
    STATUS_CODES,
    Population,
    PopulationResult,
    rung_metric,
    train,
    train_population,
)
from gdsearch.mlp.stopping import Status

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
    "Status",
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
