"""Bracket mode: narrow each group's critical learning rate by bisection in log space.

Round 0 is the job's grid. After each round, every comparison group (trials that differ only in
lr and replicate seed) has a bracket: the largest lr at which no replicate diverged, below the
smallest at which one did (:func:`gdsearch.analysis.bracket`). While a bracket is wider than
``bracket_width`` (relative: lr_diverged / lr_converged - 1), the next round tries
``bracket_points`` learning rates spaced evenly in log space inside it, with every replicate
seed. Each round is one wave of work units.

A round's learning rates depend only on the stored statuses of the earlier rounds' trials, so a
run that stops part-way replays the same rounds when it is run again and trains only what is
missing.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from gdsearch.analysis import TELLING, bracket, refine
from gdsearch.spec import JobSpec
from gdsearch.trial import Trial


def comparison_key(trial: Trial) -> tuple[Any, ...]:
    """What a group's trials share: everything but learning rate and replicate seed."""
    return (trial.init, trial.hidden, trial.activation, trial.init_scale, trial.batch_size)


def brackets(
    trials: Sequence[Trial], statuses: Mapping[str, str]
) -> dict[tuple[Any, ...], tuple[float, float]]:
    """Per comparison group, ``(lr_converged, lr_diverged)`` from the stored statuses.

    A learning rate counts as diverged if any of its replicates did; trials with no stored
    status, or one that says nothing about stability (failed), are left out.
    """
    diverged_at: dict[tuple[Any, ...], dict[float, bool]] = defaultdict(dict)
    for trial in trials:
        status = statuses.get(trial.trial_id)
        if status not in TELLING:
            continue
        flags = diverged_at[comparison_key(trial)]
        flags[trial.lr] = flags.get(trial.lr, False) or status == "diverged"
    return {key: bracket(flags) for key, flags in diverged_at.items()}


def is_narrow(lr_converged: float, lr_diverged: float, width: float) -> bool:
    """True once the bracket's relative width is at most ``width``; a one-sided or empty
    bracket cannot be narrowed, so it counts as done."""
    if math.isnan(lr_converged) or math.isnan(lr_diverged):
        return True
    return lr_diverged / lr_converged - 1.0 <= width * (1 + 1e-9)


def next_round(spec: JobSpec, trials: Sequence[Trial], statuses: Mapping[str, str]) -> list[Trial]:
    """The trials of the next round: new learning rates inside every bracket still too wide.

    Args:
        spec: the job (its bracket_width and bracket_points).
        trials: every trial of the rounds so far.
        statuses: stored status by trial_id.

    Returns:
        New trials, every replicate of each group at each new learning rate; empty when all
        brackets are narrow enough.
    """
    templates: dict[tuple[Any, ...], dict[int, Trial]] = defaultdict(dict)
    for trial in trials:
        templates[comparison_key(trial)].setdefault(trial.seed, trial)
    new: list[Trial] = []
    for key, (lr_converged, lr_diverged) in brackets(trials, statuses).items():
        if is_narrow(lr_converged, lr_diverged, spec.bracket_width):
            continue
        for lr in refine(lr_converged, lr_diverged, spec.bracket_points):
            new.extend(
                dataclasses.replace(template, lr=lr) for template in templates[key].values()
            )
    return new
