"""A job's learning-rate range tests (``[lr_range]``): one sweep per comparison group and
replicate seed, from the same initial weights as the group's trials of that seed, stored as the
result set's ``lr_range`` table (:mod:`gdsearch.mlp.range_test`).

A sweep is a hundred full-batch steps or so, far less than one trial of the grid, so the sweeps
run in the driver's process after the grid, all of one network shape at once. The table is
replaced whole each time (``ResultsStore.write_lr_range``); the sweeps are deterministic, so a
job run again stores the same values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from gdsearch.job.trial import Trial
from gdsearch.mlp.network import stack_params
from gdsearch.mlp.range_test import RangeSettings, range_test
from gdsearch.results.schema import LR_RANGE_SCHEMA
from gdsearch.results.store import ResultsStore

log = logging.getLogger("gdsearch")


def sweeps(trials: Sequence[Trial]) -> list[Trial]:
    """One trial per comparison group and replicate seed (the one of the smallest rate): its
    starting weights and settings are the sweep's."""
    chosen: dict[tuple[object, ...], Trial] = {}
    for trial in sorted(trials, key=lambda t: t.lr):
        chosen.setdefault((*trial.comparison_key(), trial.seed), trial)
    return list(chosen.values())


def range_tests(
    trials: Sequence[Trial], X: np.ndarray, Y: np.ndarray, settings: RangeSettings
) -> pa.Table:
    """The range test of every comparison group and seed of these trials, on the samples they
    train on: the lr_range table's rows."""
    runs = sweeps(trials)
    by_shape: dict[tuple[object, ...], list[Trial]] = {}
    for trial in runs:
        by_shape.setdefault(trial.population_key(), []).append(trial)
    tables = []
    for members in by_shape.values():
        first = members[0]
        params = stack_params([t.initial_params(X.shape[1], Y.shape[1]) for t in members])
        result = range_test(params, X, Y, first.train, first.activation, settings)
        for k, trial in enumerate(members):
            taken = int(result.steps[k])
            columns = trial.columns()
            tables.append(
                pa.table(
                    {
                        **{
                            name: [columns[name]] * taken
                            for name in LR_RANGE_SCHEMA.names
                            if name in columns
                        },
                        "step": np.arange(taken, dtype=np.int32),
                        "lr": result.rates[:taken],
                        "sse": result.sse[k, :taken],
                        "smoothed_sse": result.smoothed[k, :taken],
                        "planned": np.full(taken, settings.steps, dtype=np.int32),
                    }
                ).select(LR_RANGE_SCHEMA.names)
            )
    log.info("learning-rate range tests: %d sweeps of %d steps", len(runs), settings.steps)
    return pa.concat_tables([t.cast(LR_RANGE_SCHEMA) for t in tables])


def store_range_tests(
    store: ResultsStore,
    trials: Sequence[Trial],
    X: np.ndarray,
    Y: np.ndarray,
    settings: RangeSettings,
) -> int:
    """Run the range tests and store them, replacing any stored; returns how many sweeps."""
    table = range_tests(trials, X, Y, settings)
    store.write_lr_range(table)
    return len(sweeps(trials))
