"""The interface between the executor loop and a search policy.

In the spirit of Ray Tune's ``TrialScheduler``, a policy is a small interface: the steps ready
to run (:meth:`Policy.next_steps`), what to do with a step's outcome (:meth:`Policy.on_result`),
what to store when a step cannot be done (:meth:`Policy.give_up`), and the rounds it planned.
The plain run (:mod:`.plain`), successive halving (:mod:`.halving`) and bracket rounds
(:mod:`.bracket`) implement it; the loop (:mod:`.loop`) runs any of them. Policies know nothing
of Ray: a step names its unit's state by an opaque handle that only the loop resolves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from gdsearch.job.trial import Trial
from gdsearch.results.store import ResultsStore
from gdsearch.search.plan import Round
from gdsearch.search.unit import Part, UnitState

Rows = Part
"""A part: the trials, history and sharpness rows of trials that finished."""


@dataclass
class Step:
    """One task: carry a work unit on to epoch ``until``.

    Attributes:
        unit: the policy's name for the unit.
        trials: the unit's trials, all of them.
        until: the epoch to train to (the job's epochs ends every trial still running).
        state: where the unit stands, as the loop handed it out (None: at its trials' initial
            weights).
        prune: trial_ids to stop as pruned before training on.
        carry: whether the unit goes on after this step (so its state is kept).
        work: None to train; else what to do with the trials instead (a
            :class:`gdsearch.search.landscapes.LandscapeWork`: draw their landscapes).
    """

    unit: int
    trials: list[Trial]
    until: int
    state: Any = None
    prune: list[str] = field(default_factory=list)
    carry: bool = False
    work: Any = None


@dataclass
class Outcome:
    """What a step gave: the rows it stored, each running trial's metric at ``until``, and
    the unit's state to carry on from (None unless the step carries). ``failed`` is True when
    the step was given up, its rows then the policy's own."""

    rows: Rows | None
    metrics: dict[str, float]
    state: Any = None
    failed: bool = False


class Policy(ABC):
    """What to run next, and what to do with a result (see the module's docstring)."""

    metric: str = "sse"
    """The rung metric a step reports for the trials still training."""

    @abstractmethod
    def next_steps(self) -> list[Step]:
        """Steps ready to run now, each returned once; [] while waiting for results, and
        [] once nothing is in flight when the policy has nothing more to run."""

    def on_result(self, step: Step, outcome: Outcome) -> None:  # noqa: B027 - optional
        """Take in a step's outcome, given up or not (its rows are stored already)."""

    @abstractmethod
    def give_up(self, step: Step, error: str, state: UnitState | None) -> Rows | None:
        """The rows to store for a step that cannot be done; ``state`` is the unit's state
        before it, where there was one and it could still be fetched."""

    def commit(self, store: ResultsStore, rows: Rows) -> None:
        """Store a step's rows: one part of each dataset."""
        store.write_part(*rows)

    @abstractmethod
    def rounds(self) -> list[Round]:
        """The rounds planned so far (one for a plain or halving run)."""

    def planned(self) -> int:
        """How many trials the rounds so far train: the progress bar's total."""
        return sum(r.ran for r in self.rounds())

    def check_finished(self) -> None:  # noqa: B027 - optional
        """Raise if the policy still holds work when nothing is left to run (a bug)."""
