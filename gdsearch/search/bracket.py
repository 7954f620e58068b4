"""Bracket mode: narrow each group's critical learning rate by bisection in log space.

Round 0 is the job's grid. After each round, every comparison group (trials that differ only in
lr and replicate seed) has a bracket: the largest lr at which no replicate diverged, below the
smallest at which one did (:func:`gdsearch.analysis.bracket`). While a bracket is wider than
``bracket_width`` (relative: lr_diverged / lr_converged - 1), the next round tries
``bracket_points`` learning rates spaced evenly in log space inside it, with every replicate
seed. Each round is one wave of work units.

A group whose divergence is not monotone in lr (a rate diverges while a larger one converges,
as happens near the edge of stability) has no single critical rate: it is said in a warning
and in the round's record, and not refined further.

A round's learning rates depend only on the stored statuses of the earlier rounds' trials, so a
run that stops part-way replays the same rounds when it is run again and trains only what is
missing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from gdsearch.analysis.convergence import TELLING, bracket, converged_above, refine
from gdsearch.job.spec import JobSpec
from gdsearch.job.trial import Trial
from gdsearch.mlp.stopping import Status
from gdsearch.search.plain import PlainRun
from gdsearch.search.plan import Ledger, Round, Shape
from gdsearch.search.policy import Outcome, Policy, Rows, Step
from gdsearch.search.unit import UnitState

log = logging.getLogger("gdsearch")


def diverged_at(
    trials: Sequence[Trial], statuses: Mapping[str, str]
) -> dict[tuple[Any, ...], dict[float, bool]]:
    """Per comparison group, whether each learning rate diverged, from the stored statuses.

    A learning rate counts as diverged if any of its replicates did; trials with no stored
    status, or one that says nothing about stability (failed), are left out.
    """
    flags_by_group: dict[tuple[Any, ...], dict[float, bool]] = defaultdict(dict)
    for trial in trials:
        status = statuses.get(trial.trial_id)
        if status not in TELLING:
            continue
        flags = flags_by_group[trial.comparison_key()]
        flags[trial.lr] = flags.get(trial.lr, False) or status == Status.DIVERGED
    return flags_by_group


def brackets(
    trials: Sequence[Trial], statuses: Mapping[str, str]
) -> dict[tuple[Any, ...], tuple[float, float]]:
    """Per comparison group, ``(lr_converged, lr_diverged)`` from the stored statuses."""
    return {key: bracket(flags) for key, flags in diverged_at(trials, statuses).items()}


def non_monotone(
    trials: Sequence[Trial], statuses: Mapping[str, str]
) -> dict[tuple[Any, ...], tuple[float, float]]:
    """The groups whose divergence is not monotone in lr: ``(lr_diverged, lr_converged_above)``,
    a rate that diverged below one that converged. No single bracket holds their critical
    rate, so bisecting would narrow onto one of several edges and hide the others."""
    out = {}
    for key, flags in diverged_at(trials, statuses).items():
        above = converged_above(flags)
        if not math.isnan(above):
            out[key] = (bracket(flags)[1], above)
    return out


def is_narrow(lr_converged: float, lr_diverged: float, width: float) -> bool:
    """True once the bracket's relative width is at most ``width``; a one-sided or empty
    bracket cannot be narrowed, so it counts as done."""
    if math.isnan(lr_converged) or math.isnan(lr_diverged):
        return True
    return lr_diverged / lr_converged - 1.0 <= width * (1 + 1e-9)


def next_round(spec: JobSpec, trials: Sequence[Trial], statuses: Mapping[str, str]) -> list[Trial]:
    """The trials of the next round: new learning rates inside every bracket still too wide.

    Args:
        spec: the job (its bracket settings).
        trials: every trial of the rounds so far.
        statuses: stored status by trial_id.

    Returns:
        New trials, every replicate of each group at each new learning rate; empty when all
        brackets are narrow enough. Groups whose divergence is not monotone in lr
        (:func:`non_monotone`) are not refined.
    """
    settings = spec.bracket
    assert settings is not None
    templates: dict[tuple[Any, ...], dict[int, Trial]] = defaultdict(dict)
    for trial in trials:
        templates[trial.comparison_key()].setdefault(trial.seed, trial)
    new: list[Trial] = []
    skipped = non_monotone(trials, statuses)
    for key, (lr_converged, lr_diverged) in brackets(trials, statuses).items():
        if key in skipped or is_narrow(lr_converged, lr_diverged, settings.width):
            continue
        for lr in refine(lr_converged, lr_diverged, settings.points):
            new.extend(
                dataclasses.replace(template, lr=lr) for template in templates[key].values()
            )
    return new


class BracketRounds(Policy):
    """Round after round of plain runs: the job's grid, then new learning rates inside every
    bracket still too wide, until all are narrow or ``rounds`` rounds have been added.

    A round is planned once the one before has finished, from the statuses then stored; a
    round whose trials all failed leaves its brackets as they were and would ask for the same
    trials again, so those are left to the next run, which retries them.
    """

    def __init__(
        self,
        spec: JobSpec,
        trials: Sequence[Trial],
        ledger: Ledger,
        cpus: int,
        shape: Shape | None = None,
    ):
        assert spec.bracket is not None
        self.spec, self.ledger, self.cpus, self.shape = spec, ledger, cpus, shape
        self.known = list(trials)
        self.past: list[Round] = []
        self.non_monotone: set[tuple[Any, ...]] = set()
        log.info("bracket round 0: %d trials", len(trials))
        self.current = PlainRun(trials, ledger, cpus, index=0, shape=shape)

    def next_steps(self) -> list[Step]:
        assert self.spec.bracket is not None
        while True:
            steps = self.current.next_steps()
            if steps or not self.current.done:
                return steps
            statuses = self.ledger.trial_statuses()
            self._say_non_monotone(statuses)
            if len(self.past) + 1 > self.spec.bracket.rounds:
                return []
            seen = {t.trial_id for t in self.known}
            new = [
                t for t in next_round(self.spec, self.known, statuses) if t.trial_id not in seen
            ]
            if not new:
                return []
            self.known.extend(new)
            self.past.append(self.current.round)
            log.info("bracket round %d: %d trials", len(self.past), len(new))
            self.current = PlainRun(new, self.ledger, self.cpus, len(self.past), self.shape)

    def _say_non_monotone(self, statuses: Mapping[str, str]) -> None:
        """Warn once per group whose divergence turned out not monotone, and note it in the
        round's record: such a group is not bracketed further."""
        for key, (lr_diverged, above) in non_monotone(self.known, statuses).items():
            if key in self.non_monotone:
                continue
            self.non_monotone.add(key)
            self.current.round.non_monotone += 1
            log.warning(
                "group %s: divergence is not monotone in lr (%.4g diverged, %.4g above it did "
                "not); not bracketed further",
                ", ".join(str(v) for v in key if v not in (None, 0, 0.0, False, "constant")),
                lr_diverged,
                above,
            )

    def on_result(self, step: Step, outcome: Outcome) -> None:
        self.current.on_result(step, outcome)

    def give_up(self, step: Step, error: str, state: UnitState | None) -> Rows | None:
        return self.current.give_up(step, error, state)

    def rounds(self) -> list[Round]:
        return [*self.past, self.current.round]
