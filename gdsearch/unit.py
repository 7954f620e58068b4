"""Work units: trials that share data and layer shapes, trained as one population.

This module knows nothing of Ray: the driver ships a unit to a Ray task, and tests or a plain
loop can call :func:`train_unit` directly and get the same tables.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gdsearch.mlp import (
    DEFAULT_PATIENCE_TOLERANCE,
    PLATEAUED,
    PRUNED,
    RUNNING,
    STATUS_CODES,
    Population,
    init_params,
    layer_sizes,
    rung_metric,
    stack_params,
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
        groups[(trial.group_key(), apart(trial) if apart else None)].append(trial)
    target = max(1, math.ceil(len(trials) / (max(1, n_cpus) * WAVES_PER_CPU)))
    epochs = int(dict(trials[0].fixed)["epochs"]) if trials else 0
    target = min(target, MAX_UNIT_TRIALS, max(1, HISTORY_VALUES_PER_UNIT // (epochs + 1)))
    units: list[list[Trial]] = []
    for members in groups.values():
        n_units = math.ceil(len(members) / target)
        units.extend(members[i::n_units] for i in range(n_units))
    return units


@dataclass
class UnitState:
    """A work unit between calls of :func:`advance_unit`: its trials, their cache-sized
    populations, and which trials' rows have been handed out. Picklable, so a scheduler can
    carry a unit on in another task."""

    trials: list[Trial]
    populations: list[Population]
    offsets: list[int]  # where each population's trials start in ``trials``
    emitted: np.ndarray  # (K,) bool: this trial's rows were returned already
    wall: np.ndarray  # (K,) seconds of training, shared out by epochs trained


def start_unit(X: np.ndarray, Y: np.ndarray, trials: Sequence[Trial]) -> UnitState:
    """Initial weights for a unit's trials, in populations of about ``POPULATION_ELEMENTS``."""
    first = trials[0]
    sizes = layer_sizes(X.shape[1], first.hidden, Y.shape[1])
    chunk = max(1, POPULATION_ELEMENTS // (X.shape[0] * max(sizes)))
    offsets = list(range(0, len(trials), chunk))
    populations = [_population(X, trials[i : i + chunk], sizes) for i in offsets]
    K = len(trials)
    return UnitState(list(trials), populations, offsets, np.zeros(K, bool), np.zeros(K))


def advance_unit(
    X: np.ndarray,
    Y: np.ndarray,
    state: UnitState,
    until: int,
    prune: Collection[str] = (),
    metric: str = "sse",
    node: str = "",
) -> tuple[tuple[pa.Table, pa.Table] | None, dict[str, float], UnitState]:
    """Prune some running trials, train the rest until epoch ``until``, hand out finished rows.

    Args:
        X, Y: the job's data.
        state: from :func:`start_unit` or an earlier call.
        until: the epoch to train to (the job's epochs ends every trial still running).
        prune: trial_ids to stop as pruned at the epoch they reached.
        metric: one of ``RUNG_METRICS``, reported for the trials still running at ``until``.
        node: recorded in the rows.

    Returns:
        The trials and history tables of the trials that finished in this call (None if none
        did), the rung metric of each trial still running, and the state to carry on.
    """
    ids = [t.trial_id for t in state.trials]
    at = {trial_id: i for i, trial_id in enumerate(ids)}
    for population, offset in zip(state.populations, state.offsets, strict=True):
        mine = [at[t] - offset for t in prune if offset <= at[t] < offset + len(population.status)]
        if mine:
            population.prune(np.array(mine))
        was, first = population.running, max(population.epoch - 1, 0)
        start = time.perf_counter()
        population.advance(X, Y, until)
        elapsed = time.perf_counter() - start
        if was.size:  # the call's time, shared out by epochs trained
            trained = np.maximum(population.result().lengths[was] - first, 1)
            state.wall[offset + was] += elapsed * trained / trained.sum()
    results = [p.result() for p in state.populations]
    histories = np.concatenate([r.histories for r in results])
    lengths = np.concatenate([r.lengths for r in results])
    diverged = np.concatenate([r.diverged_epoch for r in results])
    status = np.concatenate([r.status for r in results])
    done = (status != RUNNING) & ~state.emitted
    rows = None
    if done.any():
        picked = np.flatnonzero(done)
        trials = [state.trials[i] for i in picked]
        kept = (histories[picked], lengths[picked])
        table = _trials_table(trials, *kept, diverged[picked], status[picked], node,
                              state.wall[picked])  # fmt: skip
        rows = (table, _history_table(trials, *kept))
        state.emitted |= done
    running = np.flatnonzero(status == RUNNING)
    values = rung_metric(histories[running], until, metric)
    return rows, {ids[i]: float(v) for i, v in zip(running, values, strict=True)}, state


def train_unit(
    X: np.ndarray, Y: np.ndarray, trials: Sequence[Trial], node: str = ""
) -> tuple[pa.Table, pa.Table]:
    """Train a unit's trials to the end, in stacked populations of about ``POPULATION_ELEMENTS``.

    Args:
        X, Y: the job's data, (n, d) and (n, k).
        trials: compatible trials (equal ``group_key`` and fixed settings).
        node: the node the unit runs on, recorded in every trials row.

    Returns:
        The unit's trials table and history table (``TRIALS_SCHEMA``, ``HISTORY_SCHEMA``).
    """
    epochs = int(dict(trials[0].fixed)["epochs"])
    rows, _, _ = advance_unit(X, Y, start_unit(X, Y, trials), epochs, node=node)
    assert rows is not None
    return rows


def _population(X: np.ndarray, trials: Sequence[Trial], sizes: list[int]) -> Population:
    """One cache-sized population of a unit's trials, at their initial weights."""
    first = trials[0]
    fixed = dict(first.fixed)
    minibatch = bool(first.batch_size) and first.batch_size < X.shape[0]
    params = stack_params(
        [init_params(sizes, t.init, t.init_seed(), t.init_scale) for t in trials]
    )
    rngs = [np.random.default_rng(t.shuffle_seed()) for t in trials] if minibatch else None
    return Population(
        params,
        np.array([t.lr for t in trials]),
        fixed["epochs"],
        activation=first.activation,
        grad_scale=fixed["grad_scale"],
        batch_size=first.batch_size if minibatch else None,
        shuffle_rngs=rngs,
        divergence_factor=fixed["divergence_factor"],
        patience=fixed.get("patience", 0),
        patience_tolerance=fixed.get("patience_tolerance", DEFAULT_PATIENCE_TOLERANCE),
    )


def _history_table(
    trials: Sequence[Trial], histories: np.ndarray, lengths: np.ndarray
) -> pa.Table:
    kept = np.arange(histories.shape[1]) < lengths[:, None]  # (K, epochs + 1)
    rows, epochs = np.nonzero(kept)
    ids = pa.array([t.trial_id for t in trials], pa.string())
    return pa.Table.from_arrays(
        [ids.take(pa.array(rows)), pa.array(epochs.astype(np.int32)), pa.array(histories[kept])],
        schema=HISTORY_SCHEMA,
    )


def _trials_table(
    trials: Sequence[Trial],
    histories: np.ndarray,
    lengths: np.ndarray,
    diverged_epoch: np.ndarray,
    status: np.ndarray,
    node: str,
    wall: np.ndarray,
) -> pa.Table:
    K = len(trials)
    last = np.where(lengths > 0, histories[np.arange(K), np.maximum(lengths - 1, 0)], np.nan)
    with np.errstate(all="ignore"):
        lowest = np.where(
            lengths > 0,
            np.nanmin(np.where(np.isnan(histories), np.inf, histories), axis=1),
            np.nan,
        )
    diverged = diverged_epoch >= 0
    stopped = (status == PLATEAUED) | (status == PRUNED)
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
        "status": [STATUS_CODES[code] for code in status],
        "final_sse": pa.array(last, from_pandas=True),
        "min_sse": pa.array(lowest, from_pandas=True),
        "diverged_epoch": pa.array(diverged_epoch.astype(np.int32), mask=~diverged),
        "stopped_epoch": pa.array((lengths - 1).astype(np.int32), mask=~stopped),
        "node": [node] * K,
        "wall_s": wall,
    }
    return pa.Table.from_pydict(columns, schema=TRIALS_SCHEMA)
