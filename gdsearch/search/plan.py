"""Planning work: which trials go together into a work unit, and what one round of units is.

A work unit is the trials one task trains, in populations (:mod:`gdsearch.search.unit`).
A round is the trials of one wave of planning: the whole job for a plain or halving run, one
round of new learning rates in bracket mode. Opening a round drops the failed rows of its
trials (so they are trained again), skips what is stored, and plans the rest into units.

Units are cut by work, not by trial count. A training step of a population costs a fixed
``STEP_OVERHEAD_S`` (numpy's dozen array calls; next to nothing in the compiled kernel) plus
``OP_S`` per multiply-add of its trials' passes, so stacking trials shares the fixed cost: a
unit takes enough trials that the fixed cost is at most a ``1 / STACK_FACTOR`` share of its
time, and otherwise the job is cut into about ``WAVES_PER_CPU`` units per CPU, at least one
per CPU, so that the CPUs stay busy to the end. The constants, one pair per way of training
(:func:`cost_path`), were measured on the sine and moons networks (x86-64, numpy 2, numba
0.68); they steer planning only, and results never depend on them.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gdsearch.job.trial import Trial
from gdsearch.mlp import compiled

log = logging.getLogger("gdsearch")

WAVES_PER_CPU = 8
"""Units per CPU that a plan aims for, so a slow unit at the end leaves few CPUs idle."""
STEP_OVERHEAD_S = {"compiled": 1e-6, "portable": 40e-6, "blas": 25e-6}
"""The fixed cost of one training step of a population, whatever its size, per way of training
(:func:`cost_path`)."""
OP_S = {"compiled": 0.08e-9, "portable": 1.6e-9, "blas": 0.6e-9}
"""The cost of one multiply-add (or elementwise op) of a trial's forward and backward pass, per
way of training (the numpy portable path's products and tanh are elementwise passes over memory;
BLAS keeps products in registers; the kernel fuses everything, a trial at a time)."""
STACK_FACTOR = 4
"""A unit holds at least this many times a step's fixed cost in work per step."""
MIN_UNIT_S = 0.25
"""A unit holds at least about this much modelled work, where the CPUs stay busy all the same:
a unit's fixed costs (a task, a part written, the sharpness meter's Python per step) are then
a small share of it, as they no longer are of a compiled trial's few milliseconds."""
MAX_UNIT_TRIALS = 1024
HISTORY_VALUES_PER_UNIT = 32 * 2**20
"""A unit holds its histories, trials × (epochs + 1) float64, in memory: 256 MiB at most."""


@dataclass(frozen=True)
class Shape:
    """The data a job trains on, as planning needs it: samples, inputs and outputs."""

    samples: int
    inputs: int
    outputs: int

    @staticmethod
    def of(X: Any, Y: Any) -> Shape:
        return Shape(int(X.shape[0]), int(X.shape[1]), int(Y.shape[1]))


def trial_ops(trial: Trial, shape: Shape) -> float:
    """Multiply-adds and elementwise ops of one epoch of one trial: forward and backward over
    every sample (about three passes of each layer's weights), plus the sharpness meter's share
    where it measures (about three Hessian-vector products of two passes each, every k epochs)."""
    sizes = [shape.inputs, *trial.hidden, shape.outputs]
    per_sample = sum((a + 1) * b for a, b in itertools.pairwise(sizes)) * 3 + sum(sizes) * 4
    every = trial.train.sharpness_every
    return shape.samples * per_sample * (1 + (6 / every if every else 0))


def cost_path(trial: Trial) -> str:
    """How a trial trains, as the cost model knows it: ``"compiled"`` (the portable path in
    the compiled kernel, where it runs here), ``"portable"`` (numpy) or ``"blas"``."""
    numerics = trial.train.numerics
    return "compiled" if numerics == "portable" and compiled.available() else numerics


def _steps(trial: Trial, shape: Shape) -> int:
    batch = trial.train.minibatch(shape.samples)
    return math.ceil(shape.samples / batch) if batch else 1


def unit_seconds(unit: Sequence[Trial], shape: Shape) -> float:
    """The modelled single-core time of a unit trained to its trials' last epoch."""
    if not unit:
        return 0.0
    epochs = max(t.train.epochs for t in unit)
    path = cost_path(unit[0])
    overhead = epochs * _steps(unit[0], shape) * STEP_OVERHEAD_S[path]
    return overhead + sum(t.train.epochs * trial_ops(t, shape) for t in unit) * OP_S[path]


def plan_units(
    trials: Sequence[Trial],
    n_cpus: int,
    apart: Callable[[Trial], Hashable] | None = None,
    shape: Shape | None = None,
) -> list[list[Trial]]:
    """Group compatible trials and cut each group into units by work.

    A unit holds enough trials to share numpy's per-step cost (``STACK_FACTOR``), and the job
    is cut into about ``WAVES_PER_CPU`` units per CPU and at least one per CPU where there are
    trials enough. A group is dealt round-robin, so every unit gets a mix of learning rates
    (large ones diverge and finish early) rather than a run of them. ``apart`` keeps trials
    with different keys in different units. Without ``shape``, work is not modelled and units
    are cut by trial count alone.
    """
    groups: dict[tuple[object, ...], list[Trial]] = defaultdict(list)
    for trial in trials:
        groups[(trial.population_key(), apart(trial) if apart else None)].append(trial)
    cpus = max(1, n_cpus)
    balance = max(1, math.ceil(len(trials) / (cpus * WAVES_PER_CPU)))
    epochs = max((t.train.epochs for t in trials), default=0)
    largest = min(MAX_UNIT_TRIALS, max(1, HISTORY_VALUES_PER_UNIT // (epochs + 1)))
    counts = []
    for members in groups.values():
        target = balance
        if shape is not None:
            first = members[0]
            path = cost_path(first)
            per_trial = trial_ops(first, shape) / _steps(first, shape) * OP_S[path]
            target = max(target, math.ceil(STACK_FACTOR * STEP_OVERHEAD_S[path] / per_trial))
            trial_seconds = first.train.epochs * trial_ops(first, shape) * OP_S[path]
            target = max(target, math.ceil(MIN_UNIT_S / trial_seconds))
        counts.append(math.ceil(len(members) / min(target, largest)))
    members_of = list(groups.values())
    while sum(counts) < cpus:  # at least one unit per CPU while a unit can be split
        splittable = [i for i, n in enumerate(counts) if n < len(members_of[i])]
        if not splittable:
            break
        widest = max(splittable, key=lambda i: len(members_of[i]) / counts[i])
        counts[widest] += 1
    units: list[list[Trial]] = []
    for members, n_units in zip(members_of, counts, strict=True):
        units.extend(members[i::n_units] for i in range(n_units))
    return units


class Ledger(Protocol):
    """What planning reads and does to the stored results (a ``ResultsStore``)."""

    def stored_trial_ids(self) -> set[str]: ...

    def trial_statuses(self) -> dict[str, str]: ...

    def drop_failed(self, trial_ids: set[str]) -> int: ...

    def read_filtered(self, kind: str, where: Any) -> Any: ...


@dataclass
class Round:
    """One wave of planning and what became of it (the manifest records these).

    Attributes:
        index: 0 for the job's own trials; bracket mode counts on.
        trials: how many trials the round holds, stored ones included.
        ran: how many of them this run trains.
        units: into how many work units.
        retried: trials that had failed before and are trained again.
        first_error: the error of one trial that failed in this round, if any did.
        non_monotone: groups found, after this round, to diverge non-monotonically in lr.
    """

    index: int
    trials: int
    ran: int
    units: int
    retried: int = 0
    first_error: str | None = None
    non_monotone: int = 0

    def record(self) -> dict[str, Any]:
        """As the manifest writes it (``non_monotone`` only where bracket mode found some)."""
        record = {
            "round": self.index,
            "trials": self.trials,
            "ran": self.ran,
            "units": self.units,
            "retried": self.retried,
            "first_error": self.first_error,
        }
        if self.non_monotone:
            record["non_monotone"] = self.non_monotone
        return record


def open_round(
    index: int,
    trials: Sequence[Trial],
    ledger: Ledger,
    cpus: int,
    *,
    retry_failed: bool = True,
    apart: Callable[[Trial], Hashable] | None = None,
    shape: Shape | None = None,
) -> tuple[Round, list[list[Trial]]]:
    """Plan a round: its record, and the work units of its trials not stored yet.

    ``retry_failed`` drops the stored failed rows of these trials first, so that they are
    trained again; ``apart`` keeps trials of different keys in different units.
    """
    retried = ledger.drop_failed({t.trial_id for t in trials}) if retry_failed else 0
    stored = ledger.stored_trial_ids()
    todo = [t for t in trials if t.trial_id not in stored]
    units = plan_units(todo, cpus, apart=apart, shape=shape)
    _log_plan(units, len(trials), cpus, retried)
    return Round(index, len(trials), len(todo), len(units), retried), units


def _log_plan(units: list[list[Trial]], total: int, cpus: int, retried: int) -> None:
    if not units:
        log.info("all %d trials are stored already", total)
        return
    sizes = [len(u) for u in units]
    again = f", {retried} of them failed before and tried again" if retried else ""
    log.info(
        "%d trials to run%s (%d already stored) in %d work units of %d-%d trials on %d CPUs",
        sum(sizes),
        again,
        total - sum(sizes),
        len(units),
        min(sizes),
        max(sizes),
        cpus,
    )
