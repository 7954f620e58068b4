"""The plain run: every trial not stored yet, trained to the end, one step per work unit."""

from __future__ import annotations

from collections.abc import Sequence

from gdsearch.job.trial import Trial
from gdsearch.search.plan import Ledger, Round, Shape, open_round
from gdsearch.search.policy import Outcome, Policy, Rows, Step
from gdsearch.search.unit import UnitState, failed_tables


class PlainRun(Policy):
    """Train each planned unit once, to the job's epochs; a unit given up stores its trials
    as failed (the next run of the job trains them again)."""

    def __init__(
        self,
        trials: Sequence[Trial],
        ledger: Ledger,
        cpus: int,
        index: int = 0,
        shape: Shape | None = None,
    ):
        self.round, units = open_round(index, trials, ledger, cpus, shape=shape)
        self.steps = [
            Step(unit=i, trials=unit, until=unit[0].train.epochs) for i, unit in enumerate(units)
        ]
        self.outstanding = len(self.steps)

    def next_steps(self) -> list[Step]:
        steps, self.steps = self.steps, []
        return steps

    def on_result(self, step: Step, outcome: Outcome) -> None:
        self.outstanding -= 1

    def give_up(self, step: Step, error: str, state: UnitState | None) -> Rows | None:
        return failed_tables(step.trials, error)

    def rounds(self) -> list[Round]:
        return [self.round]

    @property
    def done(self) -> bool:
        """Every unit's result is in."""
        return self.outstanding == 0
