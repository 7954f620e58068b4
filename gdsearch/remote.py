"""The Ray task that trains one work unit.

Kept apart from the driver so that a Ray worker, which imports this module to run the task,
loads only the training code (numpy, pyarrow, gdsearch's maths), not the driver's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from gdsearch.trial import Trial
from gdsearch.unit import train_unit

TASK_RETRIES = 3
"""How often Ray runs a unit again when its worker dies."""


@ray.remote(num_cpus=1, max_retries=TASK_RETRIES)
def train_unit_task(
    data: tuple[np.ndarray, np.ndarray], trials: list[Trial]
) -> tuple[pa.Table, pa.Table]:
    """Train one work unit on a Ray worker; its rows name the node it ran on."""
    X, Y = data
    return train_unit(X, Y, trials, node=ray.get_runtime_context().get_node_id())
