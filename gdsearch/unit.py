"""Work units: trials that share data and layer shapes, trained as one population.

This module knows nothing of Ray: the driver ships a unit to a Ray task, and tests or a plain
loop can call :func:`train_unit` directly and get the same tables.

A trial that raises is recorded, not fatal: when a population raises, its trials are trained
again one at a time (a trial's history does not depend on its population, so those that succeed
get the values they would have had), and each that still raises gets status ``failed``, its
error text in ``error``, and no history rows.

Fault injection: the environment variable ``GDSEARCH_FAULT_TRIALS`` (comma-separated trial_ids),
read here and nowhere else, makes those trials raise, so that tests can fail a trial on a real
Ray worker. Unset, it costs one lookup per population.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gdsearch.mlp import (
    PopulationResult,
    init_params,
    layer_sizes,
    stack_params,
    train_population,
)
from gdsearch.schema import HISTORY_SCHEMA, TRIALS_SCHEMA
from gdsearch.trial import Trial

WAVES_PER_CPU = 8
"""Units per CPU that a plan aims for, so a slow unit at the end leaves few CPUs idle."""
MAX_UNIT_TRIALS = 1024
HISTORY_VALUES_PER_UNIT = 32 * 2**20
"""A unit holds its histories, trials × (epochs + 1) float64, in memory: 256 MiB at most."""
POPULATION_ELEMENTS = 65_536
"""A unit trains its trials in populations of about this many values per activation array
(K × samples × widest layer): small enough for the CPU's cache, large enough that numpy's
per-call cost is shared by many trials. Results do not depend on it."""
MAX_ERROR_CHARS = 500
FAULT_VARIABLE = "GDSEARCH_FAULT_TRIALS"


def plan_units(trials: Sequence[Trial], n_cpus: int) -> list[list[Trial]]:
    """Group compatible trials and cut each group into units of about equal work.

    Units aim at ``WAVES_PER_CPU`` per CPU; a group is dealt round-robin, so every unit gets
    a mix of learning rates (large ones diverge and finish early) rather than a run of them.
    """
    groups: dict[tuple[object, ...], list[Trial]] = defaultdict(list)
    for trial in trials:
        groups[trial.group_key()].append(trial)
    target = max(1, math.ceil(len(trials) / (max(1, n_cpus) * WAVES_PER_CPU)))
    epochs = int(dict(trials[0].fixed)["epochs"]) if trials else 0
    target = min(target, MAX_UNIT_TRIALS, max(1, HISTORY_VALUES_PER_UNIT // (epochs + 1)))
    units: list[list[Trial]] = []
    for members in groups.values():
        n_units = math.ceil(len(members) / target)
        units.extend(members[i::n_units] for i in range(n_units))
    return units


def train_unit(
    X: np.ndarray, Y: np.ndarray, trials: Sequence[Trial], node: str = ""
) -> tuple[pa.Table, pa.Table]:
    """Train a unit's trials, in stacked populations of about ``POPULATION_ELEMENTS`` values.

    Args:
        X, Y: the job's data, (n, d) and (n, k).
        trials: compatible trials (equal ``group_key`` and fixed settings).
        node: the node the unit runs on, recorded in every trials row.

    Returns:
        The unit's trials table and history table (``TRIALS_SCHEMA``, ``HISTORY_SCHEMA``).
        A trial that raised has status ``failed``, its error text, and no history rows.
    """
    first = trials[0]
    sizes = layer_sizes(X.shape[1], first.hidden, Y.shape[1])
    chunk = max(1, POPULATION_ELEMENTS // (X.shape[0] * max(sizes)))
    start = time.perf_counter()
    parts = [
        _train_guarded(X, Y, trials[i : i + chunk], sizes) for i in range(0, len(trials), chunk)
    ]
    wall = time.perf_counter() - start
    outcome = _Outcome.concat(parts)
    return _trials_table(trials, outcome, node, wall), _history_table(trials, outcome)


def failed_tables(
    trials: Sequence[Trial], error: str, node: str = ""
) -> tuple[pa.Table, pa.Table]:
    """The tables of a unit none of whose trials could be trained: all ``failed``, no history."""
    outcome = _Outcome.failed(len(trials), _epochs(trials[0]), _one_line(error))
    return _trials_table(trials, outcome, node, 0.0), _history_table(trials, outcome)


@dataclass
class _Outcome:
    """What training gave for K trials: histories as in ``PopulationResult``, and per trial
    the error text if it failed (its length is then 0)."""

    histories: np.ndarray
    lengths: np.ndarray
    diverged_epoch: np.ndarray
    errors: list[str | None]

    @classmethod
    def trained(cls, result: PopulationResult) -> _Outcome:
        n = len(result.lengths)
        return cls(result.histories, result.lengths, result.diverged_epoch, [None] * n)

    @classmethod
    def failed(cls, K: int, epochs: int, error: str) -> _Outcome:
        return cls(
            np.full((K, epochs + 1), np.nan),
            np.zeros(K, dtype=np.int64),
            np.full(K, -1, dtype=np.int64),
            [error] * K,
        )

    @classmethod
    def concat(cls, parts: Sequence[_Outcome]) -> _Outcome:
        return cls(
            np.concatenate([p.histories for p in parts]),
            np.concatenate([p.lengths for p in parts]),
            np.concatenate([p.diverged_epoch for p in parts]),
            [e for p in parts for e in p.errors],
        )


def _train_guarded(
    X: np.ndarray, Y: np.ndarray, trials: Sequence[Trial], sizes: list[int]
) -> _Outcome:
    """Train a population; if it raises, train its trials one by one and record who fails."""
    try:
        return _Outcome.trained(_train_chunk(X, Y, trials, sizes))
    except Exception as exc:
        if len(trials) == 1:
            return _Outcome.failed(1, _epochs(trials[0]), _describe(exc))
    return _Outcome.concat([_train_guarded(X, Y, [trial], sizes) for trial in trials])


def _train_chunk(
    X: np.ndarray, Y: np.ndarray, trials: Sequence[Trial], sizes: list[int]
) -> PopulationResult:
    """Train one cache-sized population of a unit's trials."""
    _inject_fault(trials)
    first = trials[0]
    fixed = dict(first.fixed)
    batch_size = first.batch_size or None
    params = stack_params(
        [init_params(sizes, t.init, t.init_seed(), t.init_scale) for t in trials]
    )
    rngs = [np.random.default_rng(t.shuffle_seed()) for t in trials] if batch_size else None
    return train_population(
        params,
        X,
        Y,
        np.array([t.lr for t in trials]),
        fixed["epochs"],
        activation=first.activation,
        grad_scale=fixed["grad_scale"],
        batch_size=batch_size,
        shuffle_rngs=rngs,
        divergence_factor=fixed["divergence_factor"],
    )


def _inject_fault(trials: Sequence[Trial]) -> None:
    """Raise if ``GDSEARCH_FAULT_TRIALS`` names one of these trials (tests only)."""
    named = os.environ.get(FAULT_VARIABLE)
    if not named:
        return
    hit = set(named.split(",")).intersection(t.trial_id for t in trials)
    if hit:
        raise RuntimeError(f"fault injected by {FAULT_VARIABLE} into trial {min(hit)}")


def _epochs(trial: Trial) -> int:
    return int(dict(trial.fixed)["epochs"])


def _describe(exc: BaseException) -> str:
    return _one_line(f"{type(exc).__name__}: {exc}")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def _history_table(trials: Sequence[Trial], outcome: _Outcome) -> pa.Table:
    histories, lengths = outcome.histories, outcome.lengths
    kept = np.arange(histories.shape[1]) < lengths[:, None]  # (K, epochs + 1)
    rows, epochs = np.nonzero(kept)
    ids = pa.array([t.trial_id for t in trials], pa.string())
    return pa.Table.from_arrays(
        [ids.take(pa.array(rows)), pa.array(epochs.astype(np.int32)), pa.array(histories[kept])],
        schema=HISTORY_SCHEMA,
    )


def _trials_table(trials: Sequence[Trial], outcome: _Outcome, node: str, wall: float) -> pa.Table:
    histories, lengths, diverged_epoch = outcome.histories, outcome.lengths, outcome.diverged_epoch
    K = len(trials)
    last = np.where(lengths > 0, histories[np.arange(K), np.maximum(lengths - 1, 0)], np.nan)
    with np.errstate(all="ignore"):
        lowest = np.where(
            lengths > 0,
            np.nanmin(np.where(np.isnan(histories), np.inf, histories), axis=1),
            np.nan,
        )
    diverged = diverged_epoch >= 0
    failed = np.array([e is not None for e in outcome.errors], dtype=bool)
    share = wall * lengths / max(int(lengths.sum()), 1)  # the unit's time, by epochs trained
    columns = {
        "trial_id": [t.trial_id for t in trials],
        "lr": [t.lr for t in trials],
        "init": [t.init for t in trials],
        "init_scale": [t.init_scale for t in trials],
        "hidden": [t.hidden_label for t in trials],
        "activation": [t.activation for t in trials],
        "batch_size": [t.batch_size for t in trials],
        "seed": [t.seed for t in trials],
        "epochs": [dict(t.fixed)["epochs"] for t in trials],
        "status": np.select([failed, diverged], ["failed", "diverged"], "ok").tolist(),
        "final_sse": pa.array(last, from_pandas=True),
        "min_sse": pa.array(lowest, from_pandas=True),
        "diverged_epoch": pa.array(diverged_epoch.astype(np.int32), mask=~diverged),
        "node": [node] * K,
        "wall_s": share,
        "error": outcome.errors,
    }
    return pa.Table.from_pydict(columns, schema=TRIALS_SCHEMA)
