"""The executor loop: the one place that submits work units to Ray and takes their results in.

A *policy* says what to run and what a result means: the plain run (:mod:`.plain`), successive
halving (:mod:`.halving`) and bracket rounds (:mod:`.bracket`) are policies. The loop does the
rest, the same way for all of them: it keeps at most ``IN_FLIGHT_PER_CPU`` tasks per CPU in
flight, commits each task's finished trials as one Parquet part as soon as it arrives (so it never
holds all histories), moves the progress bar, and applies the failure policy.

Failure policy: nothing a unit does ends the run. Ray runs a task again when its worker or node
dies (``remote.TASK_RETRIES``); if that is not enough, the loop submits it afresh up to
``RESUBMITS`` times. A task that raised, or was lost that often, is given up: the policy says
what to store for its trials (``Policy.give_up``), and the run goes on.

The interface is :class:`~gdsearch.search.policy.Policy`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from gdsearch.errors import RunError, one_line
from gdsearch.results.store import ResultsStore
from gdsearch.search.policy import Outcome, Policy, Step
from gdsearch.search.progress import Progress
from gdsearch.search.remote import unit_task

log = logging.getLogger("gdsearch")

IN_FLIGHT_PER_CPU = 2
RESUBMITS = 2
"""How often the loop submits a step again after Ray's own retries ended in a lost worker,
node or object."""
LOST = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
)


def execute(
    policy: Policy,
    X: np.ndarray,
    Y: np.ndarray,
    store: ResultsStore,
    cpus: int,
    show_progress: bool,
) -> None:
    """Run a policy's steps on Ray until it has none left, storing every finished trial."""
    data = ray.put((X, Y))
    progress: Progress | None = None
    queue: deque[tuple[Step, int]] = deque()  # a step and how often it was resubmitted
    in_flight: dict[ray.ObjectRef, tuple[Step, int, ray.ObjectRef, ray.ObjectRef]] = {}

    def submit(step: Step, resubmissions: int) -> None:
        refs = unit_task.remote(data, step.state if step.state is not None else step.trials,
                                step.until, step.prune, policy.metric, step.carry)  # fmt: skip
        rows, metrics, state = cast(list[ray.ObjectRef], refs)
        in_flight[rows] = (step, resubmissions, metrics, state)

    try:
        while True:
            queue.extend((step, 0) for step in policy.next_steps())
            if progress:
                progress.total = policy.planned()
            elif show_progress and policy.planned():
                progress = Progress(policy.planned())
            while queue and len(in_flight) < IN_FLIGHT_PER_CPU * cpus:
                submit(*queue.popleft())
            if not in_flight:
                break
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            step, resubmissions, metrics_ref, state_ref = in_flight.pop(done)
            try:
                outcome = Outcome(ray.get(done), ray.get(metrics_ref), state_ref)
            except (*LOST, ray.exceptions.RayTaskError) as exc:
                if isinstance(exc, LOST) and resubmissions < RESUBMITS:
                    log.warning("a work unit was lost (%s); submitting it again",
                                one_line(exc, last_line=True))  # fmt: skip
                    queue.appendleft((step, resubmissions + 1))
                    continue
                outcome = _given_up(policy, step, exc, resubmissions)
            except ray.exceptions.RayError as exc:
                raise RunError(f"a work unit failed: {one_line(exc, last_line=True)}") from exc
            if outcome.rows is not None:
                store.write_part(*outcome.rows)
                _count(policy, progress, outcome.rows[0])
            policy.on_result(step, outcome)
        policy.check_finished()
    finally:
        for ref in in_flight:  # after an error or an interrupt
            ray.cancel(ref, force=True)
        if progress:
            progress.close()


def _given_up(policy: Policy, step: Step, exc: Exception, resubmissions: int) -> Outcome:
    """The outcome of a step that raised, or was lost more often than ``RESUBMITS``."""
    reason = one_line(exc, last_line=True)
    if isinstance(exc, LOST):
        reason = f"lost {resubmissions + 1} times: {reason}"
    log.warning("a work unit failed: %s", reason)
    state = None
    if step.state is not None:
        with contextlib.suppress(ray.exceptions.RayError):  # the state may be gone too
            state = ray.get(step.state)
    return Outcome(policy.give_up(step, reason, state), {}, failed=True)


def _count(policy: Policy, progress: Progress | None, trials_table: pa.Table) -> None:
    """Move the progress bar on by a stored part's trials; note a failed trial's error."""
    status = trials_table.column("status")
    failed = pc.sum(pc.equal(status, "failed")).as_py() or 0
    if failed:
        current = policy.rounds()[-1]
        current.first_error = current.first_error or (
            pc.drop_null(trials_table.column("error"))[0].as_py()
        )
    if progress:
        diverged = pc.sum(pc.equal(status, "diverged")).as_py() or 0
        progress.update(trials_table.num_rows, diverged, failed)
