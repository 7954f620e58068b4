"""The Ray task that carries one work unit on.

Kept apart from the driver so that a Ray worker, which imports this module to run the task,
loads only the training code (numpy, pyarrow, gdsearch's maths), not the driver's.
"""

from __future__ import annotations

import copy
from typing import Final

import numpy as np
import ray

from gdsearch.job.trial import Trial
from gdsearch.search.unit import Part, UnitState, advance_unit, start_unit

TASK_RETRIES = 3
"""How often Ray runs a unit again when its worker dies."""
PLACEMENT: Final = "SPREAD"
"""Units are spread over the cluster's nodes, not packed onto the first node with a free
worker: a node whose workers are still starting gets its share instead of none."""


@ray.remote(num_cpus=1, max_retries=TASK_RETRIES, num_returns=3, scheduling_strategy=PLACEMENT)
def unit_task(
    data: tuple[np.ndarray, np.ndarray],
    unit: list[Trial] | UnitState,
    until: int,
    prune: list[str],
    metric: str,
    carry: bool,
) -> tuple[Part | None, dict[str, float], UnitState | None]:
    """Carry a unit (its trials, or its state from an earlier step) on to epoch ``until``.

    Returns the rows of the trials that finished, the ``metric`` of each trial still training,
    and, if ``carry``, the state to carry on from (else None: nothing is left to train, or
    nothing will be asked). The rows name the node the task ran on. A state arrives read-only
    from Ray's object store, and a retried task must start from it unchanged, so it is copied
    before training moves it on.
    """
    X, Y = data
    state = start_unit(X, Y, unit) if isinstance(unit, list) else copy.deepcopy(unit)
    node = ray.get_runtime_context().get_node_id()
    rows, metrics, state = advance_unit(X, Y, state, until, prune, metric, node)
    return rows, metrics, state if carry else None
