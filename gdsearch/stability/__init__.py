"""Stability theory: the largest learning rate gradient descent survives, and what it does there.

- :mod:`~gdsearch.stability.limits`: the predicted limits (2/λ for plain gradient descent, and
  per update rule), the Hessian and its top eigenvalue at given weights, the linear model's path;
- :mod:`~gdsearch.stability.edge`: the edge of stability and the catapult, read from a trial's
  SSE and its measured sharpness.
"""

from __future__ import annotations

from gdsearch.stability.edge import (
    EDGE_BAND,
    EDGE_MEASUREMENTS,
    EDGE_REACH,
    edge_metrics,
    edge_sharpness,
)
from gdsearch.stability.limits import (
    hessian_vector_product,
    linear_gd_path,
    linear_hessian,
    linear_lr_limit,
    lr_limit,
    optimizer_limit,
    sharpness,
)

__all__ = [
    "EDGE_BAND",
    "EDGE_MEASUREMENTS",
    "EDGE_REACH",
    "edge_metrics",
    "edge_sharpness",
    "hessian_vector_product",
    "linear_gd_path",
    "linear_hessian",
    "linear_lr_limit",
    "lr_limit",
    "optimizer_limit",
    "sharpness",
]
