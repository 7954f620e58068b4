"""Model-based search: Optuna's samplers (TPE, CMA-ES, random) propose the trials, a batch at a
time, and learn from their results (``[search] sampler``).

A round asks the study for ``batch`` trials, trains those not stored yet as work units through
the executor loop (one population per unit, on Ray or in this process, like any trials), tells
the study each one's objective, and asks again, until ``budget`` trials were proposed. The
search space is the job's axes: ``{ loguniform = [lo, hi] }`` and ``{ uniform = [lo, hi] }``
are Optuna's float distributions (log where the job says log), a list of values categorical.

It is deterministic and resumable. The sampler's seed comes from the job seed, and each stored
trial records the round and place that proposed it (``sampler_round``, ``sampler_index``). A
resumed run builds the study afresh and asks it round by round as the first run did; a
proposal already stored is told its stored value instead of being trained, so the study sees
the same answers in the same order and proposes exactly the trials an uninterrupted run would
have. :meth:`gdsearch.Results.optuna_study` gives the study back from a result set, for
Optuna's own plots (:mod:`gdsearch.results.study`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.job.spec import OBJECTIVES, JobSpec
from gdsearch.job.trial import SAMPLER_STREAM, Trial
from gdsearch.mlp.stopping import Status
from gdsearch.results.schema import PROPOSAL_COLUMNS
from gdsearch.results.store import ResultsStore
from gdsearch.results.study import distributions, objective, optuna_module, point_of
from gdsearch.search.plan import Ledger, Round, Shape, plan_units
from gdsearch.search.policy import Outcome, Policy, Rows, Step
from gdsearch.search.unit import UnitState, failed_tables

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("gdsearch")


def make_study(spec: JobSpec) -> optuna.Study:
    """A fresh study for the job: its sampler seeded from the job seed."""
    assert spec.sampling is not None
    optuna = optuna_module()
    seed = int(np.random.SeedSequence([spec.seed, SAMPLER_STREAM, 1]).generate_state(1)[0])
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return optuna.create_study(direction="minimize", sampler=samplers[spec.sampling.sampler]())


class SampledSearch(Policy):
    """Rounds of proposals from an Optuna study, each trained and told before the next."""

    def __init__(self, spec: JobSpec, ledger: Ledger, cpus: int, shape: Shape) -> None:
        assert spec.sampling is not None
        self.spec, self.sampling, self.ledger = spec, spec.sampling, ledger
        self.cpus, self.shape = cpus, shape
        self.study = make_study(spec)
        self.space = distributions(spec.axes)
        self.asked = 0
        self.records: list[Round] = []
        self.open: list[tuple[Any, Trial]] = []  # this round's proposals, in order
        self.outstanding = 0  # its units still in flight
        self.proposed: dict[str, tuple[int, int]] = {}  # the round and place of a new trial
        # The objective of every trial known: those stored before this run (read once), and
        # those this run trains as they come in.
        self.values: dict[str, float | None] = {}
        # Those stored as failed before it are trained again when proposed again (once: a
        # trial failing in this run stays failed until the next run, as in a plain search).
        self.failed: set[str] = set()
        stored = ledger.read_filtered("trials", pc.field("trial_id").is_valid())
        for row in stored.select(["trial_id", "status", *OBJECTIVES]).to_pylist():
            if row["status"] == Status.FAILED.value:
                self.failed.add(row["trial_id"])
            else:
                self.values[row["trial_id"]] = objective(row, self.sampling)

    def next_steps(self) -> list[Step]:
        while not self.outstanding and self.asked < self.sampling.budget:
            steps = self._open_round()
            if steps:
                return steps
            self._close_round()  # every proposal was stored already: told, and on
        return []

    def _open_round(self) -> list[Step]:
        """Ask for the next batch; the steps that train its proposals not stored yet."""
        index = len(self.records)
        count = min(self.sampling.batch, self.sampling.budget - self.asked)
        self.open = []
        for place in range(count):
            asked = self.study.ask(self.space)
            trial = self.spec.trial_at(point_of(asked.params, self.spec))
            self.open.append((asked, trial))
            self.proposed.setdefault(trial.trial_id, (index, place))
        self.asked += count
        retry = {t.trial_id for _, t in self.open} & self.failed
        retried = self.ledger.drop_failed(retry) if retry else 0
        self.failed -= retry
        todo = list(
            {t.trial_id: t for _, t in self.open if t.trial_id not in self.values}.values()
        )
        units = plan_units(todo, self.cpus, shape=self.shape)
        log.info(
            "%s round %d: %d proposals, %d to train in %d work units",
            self.sampling.sampler,
            index,
            count,
            len(todo),
            len(units),
        )
        self.records.append(Round(index, count, len(todo), len(units), retried))
        self.outstanding = len(units)
        return [
            Step(unit=i, trials=unit, until=unit[0].train.epochs) for i, unit in enumerate(units)
        ]

    def on_result(self, step: Step, outcome: Outcome) -> None:
        if outcome.rows is not None:
            for row in outcome.rows[0].to_pylist():
                self.values[row["trial_id"]] = objective(row, self.sampling)
        self.outstanding -= 1
        if not self.outstanding:
            self._close_round()

    def _close_round(self) -> None:
        """Tell the study every proposal of the round, in the order it was asked."""
        optuna = optuna_module()
        for asked, trial in self.open:
            value = self.values.get(trial.trial_id)
            if value is None:
                self.study.tell(asked, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(asked, value)
        self.open = []

    def give_up(self, step: Step, error: str, state: UnitState | None) -> Rows | None:
        return failed_tables(step.trials, error)

    def commit(self, store: ResultsStore, rows: Rows) -> None:
        """Store the rows, each trial with the round and place that proposed it."""
        trials = rows[0]
        ids = trials.column("trial_id").to_pylist()
        for position, name in enumerate(PROPOSAL_COLUMNS):
            values = pa.array([self.proposed[i][position] for i in ids], pa.int32())
            trials = trials.set_column(trials.schema.get_field_index(name), name, values)
        store.write_part(trials, rows[1], rows[2])

    def rounds(self) -> list[Round]:
        return self.records or [Round(0, 0, 0, 0)]

    def check_finished(self) -> None:
        assert not self.open and not self.outstanding, "a round was left open"
