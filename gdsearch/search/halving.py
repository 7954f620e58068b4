"""Successive halving across learning rates: the rungs, who takes part, who goes on.

With ``scheduler = "halving"`` a trial is measured at rungs: ``min_epochs``, then ``min_epochs``
× η, × η², … (η the reduction factor) below the job's epochs. At each rung, the trials of one
comparison group (:mod:`gdsearch.analysis.comparison`: any lr and seed) that are still training
are ranked by the rung metric, and all but the best ⌈m/η⌉ of the m stop as ``pruned``, their
history kept up to the rung. The rest carry on from their own weights.

Decisions depend only on histories: who reached a rung and what its metric was there. A trial
takes part in rung r if it was still training after epoch r was measured: it finished every
epoch, was pruned at r or later, diverged or plateaued after r, or failed after r (a trial
that fails between rungs keeps its history up to the last rung it reached). So a run that is
stopped and run again, training only what is not stored, takes the same decisions: stored
trials take part with their stored histories. Ties go to the smaller trial_id. For the same
reason a failed trial of a halving run is not trained again by a rerun: the group's later rungs
were decided without it (``--fresh`` trains everything again).

Unlike ASHA, which promotes a trial as soon as it is in the top 1/η of those that have reached
a rung so far (so its choices depend on timing), a group here waits until all its trials have
reached the rung. Work units hold one comparison group each, so while a group waits, the
workers train the other groups' units.

The rules are functions here (:func:`survivors`, :func:`took_part`, :func:`stored_metrics`);
:class:`SuccessiveHalving` is the policy that applies them in the executor loop, keeping each
rung's bookkeeping (who reached it, its metrics, its survivors, the units waiting on it).
"""

from __future__ import annotations

import copy
import logging
import math
from collections import Counter, defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.errors import RunError
from gdsearch.job.spec import JobSpec
from gdsearch.job.trial import Trial
from gdsearch.mlp.population import rung_metric
from gdsearch.mlp.stopping import Status
from gdsearch.search.plan import Ledger, Round, Shape, open_round
from gdsearch.search.policy import Outcome, Policy, Rows, Step
from gdsearch.search.unit import UnitState, abandon_unit, failed_tables

log = logging.getLogger("gdsearch")


def survivors(metrics: Mapping[str, float], factor: int) -> set[str]:
    """The best ⌈m/η⌉ of the m trials at a rung (lowest metric; ties to the smaller id)."""
    ranked = sorted(metrics, key=lambda trial_id: (metrics[trial_id], trial_id))
    return set(ranked[: math.ceil(len(ranked) / factor)])


def took_part(trials: pd.DataFrame, rung: int) -> np.ndarray:
    """Which stored trials were still training after epoch ``rung`` was measured."""
    status = trials["status"].to_numpy()
    diverged = trials["diverged_epoch"].to_numpy(dtype=np.float64, na_value=np.nan)
    stopped = trials["stopped_epoch"].to_numpy(dtype=np.float64, na_value=np.nan)
    return (
        (status == Status.OK)
        | ((status == Status.PRUNED) & (stopped >= rung))
        | ((status == Status.PLATEAUED) & (stopped > rung))
        | ((status == Status.DIVERGED) & (diverged > rung))
        | ((status == Status.FAILED) & (stopped >= rung))  # failed later, its history kept
    )


def stored_metrics(
    trials: pd.DataFrame, history: pd.DataFrame, rung_epochs: list[int], metric: str
) -> list[dict[str, float]]:
    """Per rung, the metric of every stored trial that took part in it, by trial_id.

    Args:
        trials: stored trials rows (trial_id, status, diverged_epoch, stopped_epoch).
        history: their history rows (trial_id, epoch, sse, and val_sse for a ``val_``
            metric).
        rung_epochs: from ``Halving.rungs``.
        metric: one of ``gdsearch.mlp.population.RUNG_METRICS``.
    """
    if trials.empty or not rung_epochs:
        return [{} for _ in rung_epochs]
    last = rung_epochs[-1]
    wide = (
        history[history["epoch"] <= last]
        .pivot(index="trial_id", columns="epoch", values=_column(metric))
        .reindex(index=trials["trial_id"], columns=range(last + 1))
        .to_numpy(dtype=np.float64)
    )
    out = []
    for rung in rung_epochs:
        taking_part = took_part(trials, rung)
        values = rung_metric(wide[taking_part], rung, metric)
        ids = trials["trial_id"].to_numpy()[taking_part]
        out.append(dict(zip(ids, values.tolist(), strict=True)))
    return out


@dataclass
class _Unit:
    """A unit between rungs: its trials, its state (None before its first step), the rung it
    trains to next, and its trials still training."""

    trials: list[Trial]
    live: set[str]
    state: Any = None
    rung: int = 0


class SuccessiveHalving(Policy):
    """Train units rung by rung; at each rung, stop all but the best of each comparison group.

    A group decides a rung once all its trials still training have reached it, counting stored
    trials' histories too, so a resumed run decides the same. A unit goes on as soon as its
    trials' groups have decided; meanwhile the other units train. Each work unit holds one
    comparison group.
    """

    def __init__(
        self,
        spec: JobSpec,
        trials: Sequence[Trial],
        ledger: Ledger,
        cpus: int,
        shape: Shape | None = None,
    ):
        assert spec.halving is not None
        settings = spec.halving
        _warn_failed_not_retried(ledger, trials)
        self.round, units = open_round(
            0, trials, ledger, cpus, retry_failed=False, apart=Trial.comparison_key, shape=shape
        )
        self.metric = settings.metric
        self.factor = settings.reduction_factor
        self.rung_epochs = settings.rungs(spec.train.epochs)
        self.targets = [*self.rung_epochs, spec.train.epochs]
        self.group_of = {t.trial_id: t.comparison_key() for t in trials}
        # Per rung: each group's metric of the trials that reached it, the trials of this run
        # that reached it, its survivors once decided, and how many live trials it waits for.
        self.at_rung: list[dict[Any, dict[str, float]]] = [
            defaultdict(dict) for _ in self.rung_epochs
        ]
        for k, values in enumerate(
            _stored_rung_metrics(ledger, self.group_of, self.rung_epochs, self.metric)
        ):
            for trial_id, value in values.items():
                self.at_rung[k][self.group_of[trial_id]][trial_id] = value
        self.reached: list[dict[Any, set[str]]] = [defaultdict(set) for _ in self.rung_epochs]
        self.kept: list[dict[Any, set[str]]] = [{} for _ in self.rung_epochs]
        self.outstanding: list[Counter[Any]] = [Counter() for _ in self.targets]
        self.outstanding[0].update(self.group_of[t.trial_id] for unit in units for t in unit)
        self.pool = [_Unit(list(unit), {t.trial_id for t in unit}) for unit in units]
        self.ready: deque[tuple[int, list[str]]] = deque((i, []) for i in range(len(self.pool)))
        self.waiting: set[int] = set()

    def next_steps(self) -> list[Step]:
        steps = []
        while self.ready:
            index, stop = self.ready.popleft()
            unit = self.pool[index]
            steps.append(
                Step(
                    index,
                    unit.trials,
                    self.targets[unit.rung],
                    unit.state,
                    stop,
                    carry=unit.rung < len(self.rung_epochs),
                )
            )
        return steps

    def on_result(self, step: Step, outcome: Outcome) -> None:
        unit = self.pool[step.unit]
        unit.state = outcome.state
        k = unit.rung
        if k == len(self.rung_epochs):
            return  # the last stretch: every trial of the unit has finished
        self.outstanding[k].subtract(self.group_of[t] for t in unit.live)
        for trial_id, value in outcome.metrics.items():
            group = self.group_of[trial_id]
            self.at_rung[k][group][trial_id] = value
            self.reached[k][group].add(trial_id)
        unit.live = set(outcome.metrics)
        unit.rung = k + 1
        self.waiting.add(step.unit)
        self._decide(k)

    def _decide(self, k: int) -> None:
        """Take every rung-k decision that can be taken, and send on the units it frees."""
        for group, count in self.outstanding[k].items():
            if count == 0 and group not in self.kept[k]:
                self.kept[k][group] = survivors(self.at_rung[k][group], self.factor)
                going_on = self.reached[k][group] & self.kept[k][group]
                self.outstanding[k + 1][group] += len(going_on)
        for index in sorted(self.waiting):
            unit = self.pool[index]
            groups = {self.group_of[t] for t in unit.live}
            if unit.rung - 1 != k or not groups <= self.kept[k].keys():
                continue
            self.waiting.discard(index)
            stop = sorted(t for t in unit.live if t not in self.kept[k][self.group_of[t]])
            unit.live -= set(stop)
            if unit.live or stop:
                self.ready.append((index, stop))

    def give_up(self, step: Step, error: str, state: UnitState | None) -> Rows | None:
        """From the unit's state at its last rung if there is one (its trials to prune
        pruned, the rest failed with their histories so far), else all its trials failed with
        no history."""
        if state is not None:
            return abandon_unit(copy.deepcopy(state), step.prune, error)
        unit = self.pool[step.unit]
        by_id = {t.trial_id: t for t in unit.trials}
        return failed_tables([by_id[t] for t in sorted(unit.live | set(step.prune))], error)

    def rounds(self) -> list[Round]:
        return [self.round]

    def check_finished(self) -> None:
        if self.waiting:  # every unit either finished or was sent on; anything else is a bug
            raise RunError(f"halving stopped with {len(self.waiting)} work units still waiting")


def _warn_failed_not_retried(ledger: Ledger, trials: Sequence[Trial]) -> None:
    statuses = ledger.trial_statuses()
    failed = sum(statuses.get(t.trial_id) == Status.FAILED for t in trials)
    if failed:
        log.warning(
            "%d trials of this halving job failed in an earlier run and are not retried (their "
            "groups' later rungs were decided without them); --fresh trains everything again",
            failed,
        )


def _column(metric: str) -> str:
    """The history column a rung metric ranks by."""
    return "val_sse" if metric.startswith("val_") else "sse"


def _stored_rung_metrics(
    ledger: Ledger, group_of: dict[str, Any], rung_epochs: list[int], metric: str
) -> list[dict[str, float]]:
    """Rung metrics of this run's trials that are stored already (a resumed run), read part
    by part, filtered to these trials and to epochs up to the last rung."""
    stored_ids = ledger.stored_trial_ids() & group_of.keys()
    if not stored_ids or not rung_epochs:
        return [{} for _ in rung_epochs]
    wanted = pc.field("trial_id").isin(pa.array(sorted(stored_ids)))
    trials = ledger.read_filtered("trials", wanted)
    history = ledger.read_filtered("history", wanted & (pc.field("epoch") <= rung_epochs[-1]))
    return stored_metrics(trials.to_pandas(), history.to_pandas(), rung_epochs, metric)
