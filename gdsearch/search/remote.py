"""The Ray task that carries one work unit on, and the executor loop's Ray backend: the only
code that submits work to Ray.

Kept apart from the driver so that a Ray worker, which imports this module to run the task,
loads only the training code (numpy, pyarrow, gdsearch's maths), not the driver's.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Hashable
from typing import Any, Final, cast

import numpy as np
import ray

from gdsearch.data.holdout import Holdout
from gdsearch.errors import RunError, one_line
from gdsearch.job.trial import Trial
from gdsearch.search.loop import Lost, StepFailed
from gdsearch.search.policy import Rows, Step
from gdsearch.search.unit import Part, UnitState, advance_unit, start_unit

TASK_RETRIES = 3
"""How often Ray runs a unit again when its worker dies."""
PLACEMENT: Final = "SPREAD"
"""Units are spread over the cluster's nodes, not packed onto the first node with a free
worker: a node whose workers are still starting gets its share instead of none."""
IN_FLIGHT_PER_CPU = 2
LOST = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
)


@ray.remote(num_cpus=1, max_retries=TASK_RETRIES, num_returns=3, scheduling_strategy=PLACEMENT)
def unit_task(
    data: tuple[np.ndarray, np.ndarray, Holdout | None],
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
    X, Y, holdout = data
    state = start_unit(X, Y, unit) if isinstance(unit, list) else copy.deepcopy(unit)
    node = ray.get_runtime_context().get_node_id()
    rows, metrics, state = advance_unit(X, Y, state, until, prune, metric, node, holdout)
    return rows, metrics, state if carry else None


@ray.remote(num_cpus=1, max_retries=TASK_RETRIES, scheduling_strategy=PLACEMENT)
def landscape_task(
    data: tuple[np.ndarray, np.ndarray, Holdout | None], trials: list[Trial], work: Any
) -> Part:
    """Draw the landscapes of a unit's trials (:func:`gdsearch.search.landscapes.draw_unit`)."""
    from gdsearch.search.landscapes import draw_unit

    X, Y, holdout = data
    return draw_unit(X, Y, trials, work, ray.get_runtime_context().get_node_id(), holdout)


class RayBackend:
    """Steps as Ray tasks on the cluster this process has joined, ``IN_FLIGHT_PER_CPU`` per
    CPU in flight; the data goes to the object store once.

    ``own_session``: this process joined or started Ray for this run and leaves it afterwards.
    Leaving ends the job's tasks (the cluster frees their CPUs at once), so steps still in
    flight after an error or an interrupt are left to that rather than cancelled:
    ``ray.cancel`` races with a task whose result is arriving at that moment, and where it
    wins, Ray's own check ("Tried to complete task that was not pending") ends this process
    with exit code 1 instead of the interrupt's 130. In a session the caller opened, and keeps,
    nothing else would stop them, so there they are cancelled."""

    name = "ray"

    def __init__(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        cpus: int,
        holdout: Holdout | None = None,
        *,
        own_session: bool = False,
    ):
        self.data = ray.put((X, Y, holdout))
        self.slots = IN_FLIGHT_PER_CPU * cpus
        self.own_session = own_session
        self.refs: dict[ray.ObjectRef, tuple[Any, Any]] = {}

    def submit(self, step: Step, metric: str) -> Hashable:
        if step.work is not None:
            rows = landscape_task.remote(self.data, step.trials, step.work)
            self.refs[rows] = (None, None)
            return rows
        refs = unit_task.remote(
            self.data,
            step.state if step.state is not None else step.trials,
            step.until,
            step.prune,
            metric,
            step.carry,
        )
        rows, metrics, state = cast(list[ray.ObjectRef], refs)
        self.refs[rows] = (metrics, state)
        return rows

    def next_done(self, keys: list[Hashable]) -> Hashable:
        (done,), _ = ray.wait(cast(list[ray.ObjectRef], keys), num_returns=1)
        return done

    def result(self, key: Hashable) -> tuple[Rows | None, dict[str, float], Any]:
        rows = cast(ray.ObjectRef, key)
        metrics, state = self.refs.pop(rows)
        try:
            if metrics is None:  # a landscape step: rows alone
                return ray.get(rows), {}, None
            return ray.get(rows), ray.get(metrics), state
        except LOST as exc:
            raise Lost(one_line(exc, last_line=True)) from exc
        except ray.exceptions.RayTaskError as exc:
            raise StepFailed(one_line(exc, last_line=True)) from exc
        except ray.exceptions.RayError as exc:
            raise RunError(f"a work unit failed: {one_line(exc, last_line=True)}") from exc

    def state(self, handle: Any) -> UnitState | None:
        """The state before the step: Ray's copy is read-only, so the step did not move it."""
        with contextlib.suppress(ray.exceptions.RayError):  # the state may be gone too
            found: UnitState = ray.get(handle)
            return found
        return None

    def cancel(self, keys: list[Hashable]) -> None:
        for key in keys:
            self.refs.pop(cast(ray.ObjectRef, key), None)
            if not self.own_session:
                ray.cancel(cast(ray.ObjectRef, key), force=True)
