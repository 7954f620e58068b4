"""Planning work: which trials go together into a work unit, and what one round of units is.

A work unit is the trials one Ray task trains, in populations (:mod:`gdsearch.search.unit`).
A round is the trials of one wave of planning: the whole job for a plain or halving run, one
round of new learning rates in bracket mode. Opening a round drops the failed rows of its
trials (so they are trained again), skips what is stored, and plans the rest into units.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gdsearch.job.trial import Trial

log = logging.getLogger("gdsearch")

WAVES_PER_CPU = 8
"""Units per CPU that a plan aims for, so a slow unit at the end leaves few CPUs idle."""
MAX_UNIT_TRIALS = 1024
HISTORY_VALUES_PER_UNIT = 32 * 2**20
"""A unit holds its histories, trials × (epochs + 1) float64, in memory: 256 MiB at most."""


def plan_units(
    trials: Sequence[Trial],
    n_cpus: int,
    apart: Callable[[Trial], Hashable] | None = None,
) -> list[list[Trial]]:
    """Group compatible trials and cut each group into units of about equal work.

    Units aim at ``WAVES_PER_CPU`` per CPU; a group is dealt round-robin, so every unit gets
    a mix of learning rates (large ones diverge and finish early) rather than a run of them.
    ``apart`` keeps trials with different keys in different units.
    """
    groups: dict[tuple[object, ...], list[Trial]] = defaultdict(list)
    for trial in trials:
        groups[(trial.population_key(), apart(trial) if apart else None)].append(trial)
    target = max(1, math.ceil(len(trials) / (max(1, n_cpus) * WAVES_PER_CPU)))
    epochs = trials[0].train.epochs if trials else 0
    target = min(target, MAX_UNIT_TRIALS, max(1, HISTORY_VALUES_PER_UNIT // (epochs + 1)))
    units: list[list[Trial]] = []
    for members in groups.values():
        n_units = math.ceil(len(members) / target)
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
        record = {"round": self.index, "trials": self.trials, "ran": self.ran,
                  "units": self.units, "retried": self.retried,
                  "first_error": self.first_error}  # fmt: skip
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
) -> tuple[Round, list[list[Trial]]]:
    """Plan a round: its record, and the work units of its trials not stored yet.

    ``retry_failed`` drops the stored failed rows of these trials first, so that they are
    trained again; ``apart`` keeps trials of different keys in different units.
    """
    retried = ledger.drop_failed({t.trial_id for t in trials}) if retry_failed else 0
    stored = ledger.stored_trial_ids()
    todo = [t for t in trials if t.trial_id not in stored]
    units = plan_units(todo, cpus, apart=apart)
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
        sum(sizes), again, total - sum(sizes), len(units), min(sizes), max(sizes), cpus,
    )  # fmt: skip
