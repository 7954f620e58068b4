"""The executor loop: the one place that hands work units out and takes their results in.

A *policy* says what to run and what a result means: the plain run (:mod:`.plain`), successive
halving (:mod:`.halving`) and bracket rounds (:mod:`.bracket`) are policies. A *backend* runs a
step: on Ray (:class:`gdsearch.search.remote.RayBackend`, the only code that submits to Ray) or
in this process (:class:`LocalBackend`, for jobs too small to wait for Ray's start-up), with
the same unit code and so the same numbers. The loop does the rest, the same way for all of
them: it keeps at most the backend's ``slots`` steps in flight, commits each step's finished
trials as one Parquet part as soon as it arrives (so it never holds all histories), moves the
progress bar, and applies the failure policy.

Failure policy: nothing a unit does ends the run. Ray runs a task again when its worker or node
dies (``remote.TASK_RETRIES``); if that is not enough, the loop submits it afresh up to
``RESUBMITS`` times. A step that raised, or was lost that often, is given up: the policy says
what to store for its trials (``Policy.give_up``), and the run goes on.

The interface is :class:`~gdsearch.search.policy.Policy`.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Hashable
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.data.holdout import Holdout
from gdsearch.errors import one_line
from gdsearch.mlp.stopping import Status
from gdsearch.results.store import ResultsStore
from gdsearch.search.policy import Outcome, Policy, Rows, Step
from gdsearch.search.progress import Progress
from gdsearch.search.unit import UnitState, advance_unit, start_unit

log = logging.getLogger("gdsearch")

RESUBMITS = 2
"""How often the loop submits a step again after its backend's own retries ended in a lost
worker, node or object."""


class Lost(Exception):
    """A step's worker, node or result was lost: it may be submitted again."""


class StepFailed(Exception):
    """A step raised: it is given up."""


class Backend(Protocol):
    """Where steps run."""

    name: str
    slots: int
    """Steps in flight at most."""

    def submit(self, step: Step, metric: str) -> Hashable:
        """Start a step; returns its key."""

    def next_done(self, keys: list[Hashable]) -> Hashable:
        """The key of a finished step among ``keys``, waiting for one if need be."""

    def result(self, key: Hashable) -> tuple[Rows | None, dict[str, float], Any]:
        """A finished step's rows, metrics and state handle; raises :class:`Lost` or
        :class:`StepFailed`."""

    def state(self, handle: Any) -> UnitState | None:
        """The unit state a handle names, or None where it cannot be had."""

    def cancel(self, keys: list[Hashable]) -> None:
        """Stop steps still in flight (after an error or an interrupt)."""


class LocalBackend:
    """Steps trained one at a time in this process, as a Ray task would train them."""

    name = "local"
    slots = 1

    def __init__(self, X: np.ndarray, Y: np.ndarray, holdout: Holdout | None = None):
        self.X, self.Y, self.holdout = X, Y, holdout
        self.node = f"local:{socket.gethostname()}"
        self.finished: dict[int, tuple[Rows | None, dict[str, float], Any] | StepFailed] = {}

    def submit(self, step: Step, metric: str) -> Hashable:
        key = len(self.finished)
        try:
            if step.work is not None:
                from gdsearch.search.landscapes import draw_unit

                drawn = draw_unit(self.X, self.Y, step.trials, step.work, self.node, self.holdout)
                self.finished[key] = (drawn, {}, None)
                return key
            state = (
                step.state if step.state is not None else start_unit(self.X, self.Y, step.trials)
            )
            rows, metrics, state = advance_unit(
                self.X, self.Y, state, step.until, step.prune, metric, self.node, self.holdout
            )
            self.finished[key] = (rows, metrics, state if step.carry else None)
        except Exception as exc:  # as a Ray task that raised: the step is given up
            self.finished[key] = StepFailed(one_line(exc, last_line=True))
        return key

    def next_done(self, keys: list[Hashable]) -> Hashable:
        return keys[0]

    def result(self, key: Hashable) -> tuple[Rows | None, dict[str, float], Any]:
        done = self.finished.pop(key)  # type: ignore[call-overload]
        if isinstance(done, StepFailed):
            raise done
        return done

    def state(self, handle: Any) -> UnitState | None:
        """The state as the failed step left it: a step trains a local state in place."""
        return handle if isinstance(handle, UnitState) else None

    def cancel(self, keys: list[Hashable]) -> None:
        for key in keys:
            self.finished.pop(key, None)  # type: ignore[call-overload]


def execute(policy: Policy, backend: Backend, store: ResultsStore, show_progress: bool) -> None:
    """Run a policy's steps on a backend until it has none left, storing every finished trial."""
    progress: Progress | None = None
    queue: deque[tuple[Step, int]] = deque()  # a step and how often it was resubmitted
    in_flight: dict[Hashable, tuple[Step, int]] = {}
    try:
        while True:
            queue.extend((step, 0) for step in policy.next_steps())
            if progress:
                progress.total = policy.planned()
            elif show_progress and policy.planned():
                progress = Progress(policy.planned())
            while queue and len(in_flight) < backend.slots:
                step, resubmissions = queue.popleft()
                in_flight[backend.submit(step, policy.metric)] = (step, resubmissions)
            if not in_flight:
                break
            done = backend.next_done(list(in_flight))
            step, resubmissions = in_flight.pop(done)
            try:
                rows, metrics, state = backend.result(done)
                outcome = Outcome(rows, metrics, state)
            except Lost as exc:
                if resubmissions < RESUBMITS:
                    log.warning("a work unit was lost (%s); submitting it again", exc)
                    queue.appendleft((step, resubmissions + 1))
                    continue
                outcome = _given_up(
                    policy, backend, step, f"lost {resubmissions + 1} times: {exc}"
                )
            except StepFailed as exc:
                outcome = _given_up(policy, backend, step, str(exc))
            if outcome.rows is not None:
                policy.commit(store, outcome.rows)
                _count(policy, progress, outcome.rows[0])
            policy.on_result(step, outcome)
        policy.check_finished()
    finally:
        backend.cancel(list(in_flight))
        if progress:
            progress.close()


def _given_up(policy: Policy, backend: Backend, step: Step, reason: str) -> Outcome:
    """The outcome of a step that raised, or was lost more often than ``RESUBMITS``."""
    log.warning("a work unit failed: %s", reason)
    state = backend.state(step.state) if step.state is not None else None
    return Outcome(policy.give_up(step, reason, state), {}, failed=True)


def _count(policy: Policy, progress: Progress | None, trials_table: pa.Table) -> None:
    """Move the progress bar on by a stored part's trials; note a failed trial's error."""
    if "status" not in trials_table.column_names:  # not trials: landscapes, say
        if progress:
            progress.update(trials_table.num_rows, 0, 0)
        return
    status = trials_table.column("status")
    failed = pc.sum(pc.equal(status, Status.FAILED.value)).as_py() or 0
    if failed:
        current = policy.rounds()[-1]
        current.first_error = current.first_error or (
            pc.drop_null(trials_table.column("error"))[0].as_py()
        )
    if progress:
        diverged = pc.sum(pc.equal(status, Status.DIVERGED.value)).as_py() or 0
        progress.update(trials_table.num_rows, diverged, failed)
