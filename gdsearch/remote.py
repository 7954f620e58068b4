"""The Ray task that trains one work unit.

Kept apart from the driver so that a Ray worker, which imports this module to run the task,
loads only the training code (numpy, pyarrow, gdsearch's maths), not the driver's.
"""

from __future__ import annotations

import copy
from typing import Final

import numpy as np
import pyarrow as pa
import ray

from gdsearch.trial import Trial
from gdsearch.unit import UnitState, advance_unit, start_unit, train_unit

TASK_RETRIES = 3
"""How often Ray runs a unit again when its worker dies."""
PLACEMENT: Final = "SPREAD"
"""Units are spread over the cluster's nodes, not packed onto the first node with a free
worker: a node whose workers are still starting gets its share instead of none."""


@ray.remote(num_cpus=1, max_retries=TASK_RETRIES, scheduling_strategy=PLACEMENT)
def train_unit_task(
    data: tuple[np.ndarray, np.ndarray], trials: list[Trial]
) -> tuple[pa.Table, pa.Table]:
    """Train one work unit on a Ray worker; its rows name the node it ran on."""
    X, Y = data
    return train_unit(X, Y, trials, node=ray.get_runtime_context().get_node_id())


@ray.remote(num_cpus=1, max_retries=TASK_RETRIES, num_returns=3, scheduling_strategy=PLACEMENT)
def advance_unit_task(
    data: tuple[np.ndarray, np.ndarray],
    unit: list[Trial] | UnitState,
    until: int,
    prune: list[str],
    metric: str,
) -> tuple[tuple[pa.Table, pa.Table] | None, dict[str, float], UnitState]:
    """Carry a unit (its trials, or its state from the last rung) on to epoch ``until``.

    The state arrives read-only from Ray's object store, and a retried task must start from it
    unchanged, so it is copied before training moves it on.
    """
    X, Y = data
    state = start_unit(X, Y, unit) if isinstance(unit, list) else copy.deepcopy(unit)
    node = ray.get_runtime_context().get_node_id()
    return advance_unit(X, Y, state, until, prune, metric, node)
