"""Work units: trials that share data and layer shapes, trained as one population.

This module knows nothing of Ray: the driver ships a unit to a Ray task, and tests or a plain
loop can call :func:`train_unit` directly and get the same tables.

A trial that raises is recorded, not fatal: when a population raises, its running trials are
trained again one at a time from their initial weights (a trial's history does not depend on
its population, so those that succeed get the values they would have had), and each that still
raises gets status ``failed``, its error text in ``error``, and no history rows.

A unit's finished trials come out as a :data:`Part`: their trials rows, their history rows,
and their sharpness rows (None unless the job measures sharpness), which the driver stores as
one part of each dataset.

Fault injection: the environment variable ``GDSEARCH_FAULT_TRIALS`` (comma-separated trial_ids),
read here and nowhere else, makes those trials raise, so that tests can fail a trial on a real
Ray worker. Unset, it costs one lookup per population and call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gdsearch.analysis.trajectory import trajectory
from gdsearch.data.holdout import Holdout, held_out_summary
from gdsearch.errors import one_line
from gdsearch.job.trial import Trial
from gdsearch.mlp import compiled
from gdsearch.mlp.network import layer_sizes, stack_params
from gdsearch.mlp.numerics import machine_label
from gdsearch.mlp.population import RUNNING, STATUS_CODES, Population, rung_metric
from gdsearch.mlp.stopping import Status
from gdsearch.results.schema import (
    HELD_OUT_COLUMNS,
    HELD_OUT_HISTORY,
    HISTORY_SCHEMA,
    PROPOSAL_COLUMNS,
    SHARPNESS_SCHEMA,
    TRIALS_SCHEMA,
)

POPULATION_ELEMENTS = 65_536
"""On numpy's paths a unit trains its trials in populations of about this many values per
activation array (K × samples × widest layer): small enough for the CPU's cache, large enough
that numpy's per-call cost is shared by many trials. The compiled kernel trains a trial at a
time and keeps nothing of the others in the cache, so there a unit is one population, which
shares Python's per-call cost (the sharpness meter's steps, say) among all its trials. Results
do not depend on it."""
FAULT_VARIABLE = "GDSEARCH_FAULT_TRIALS"
Part = tuple[pa.Table, pa.Table, pa.Table | None]
"""Finished trials' rows: trials table, history table, sharpness table (or None)."""


@dataclass
class UnitState:
    """A work unit between calls of :func:`advance_unit`: its trials, their populations, and
    which trials' rows have been handed out. Picklable, so a scheduler can carry a unit on in
    another task."""

    trials: list[Trial]
    sizes: list[int]
    populations: list[Population]
    members: list[np.ndarray]  # each population's rows, as indices into ``trials``
    emitted: np.ndarray  # (K,) bool: this trial's rows were returned already
    wall: np.ndarray  # (K,) seconds of training, shared out by epochs trained
    errors: list[str | None]  # a failed trial's error text
    failed_at: np.ndarray  # (K,) the last epoch measured before a trial failed, -1 if none


def start_unit(X: np.ndarray, Y: np.ndarray, trials: Sequence[Trial]) -> UnitState:
    """Initial weights for a unit's trials, in populations of about ``POPULATION_ELEMENTS``."""
    first = trials[0]
    sizes = layer_sizes(X.shape[1], first.hidden, Y.shape[1])
    K = len(trials)
    chunk = max(1, POPULATION_ELEMENTS // (X.shape[0] * max(sizes)))
    if first.train.numerics == "portable" and compiled.available():
        chunk = K
    members = [np.arange(i, min(i + chunk, K)) for i in range(0, K, chunk)]
    populations = [start_population(X, [trials[j] for j in rows], sizes) for rows in members]
    return UnitState(
        list(trials),
        sizes,
        populations,
        members,
        np.zeros(K, bool),
        np.zeros(K),
        [None] * K,
        np.full(K, -1, dtype=np.int64),
    )


def advance_unit(
    X: np.ndarray,
    Y: np.ndarray,
    state: UnitState,
    until: int,
    prune: Collection[str] = (),
    metric: str = "sse",
    node: str = "",
    holdout: Holdout | None = None,
) -> tuple[Part | None, dict[str, float], UnitState]:
    """Prune some running trials, train the rest until epoch ``until``, hand out finished rows.

    Args:
        X, Y: the job's data (what it trains on).
        state: from :func:`start_unit` or an earlier call.
        until: the epoch to train to (the job's epochs ends every trial still running).
        prune: trial_ids to stop as pruned at the epoch they reached.
        metric: one of ``RUNG_METRICS``, reported for the trials still running at ``until``.
        node: recorded in the rows.
        holdout: the job's held-out samples, measured at every epoch, if it holds any out.

    Returns:
        The trials and history tables of the trials that finished in this call (None if none
        did), the rung metric of each trial still running, and the state to carry on.
    """
    ids = [t.trial_id for t in state.trials]
    stop = set(prune)
    pruned = np.array([i for i, trial_id in enumerate(ids) if trial_id in stop], int)
    for index in range(len(state.populations)):
        population, members = state.populations[index], state.members[index]
        mine = np.flatnonzero(np.isin(members, pruned))
        if mine.size:
            population.prune(mine)
        was, measured = population.running, population.epoch - 1
        first = max(measured, 0)
        start = time.perf_counter()
        try:
            _inject_fault([state.trials[j] for j in members[was]])
            population.advance(X, Y, until, holdout)
        except Exception as exc:
            population.discard(was)
            state.failed_at[members[was]] = measured  # what they had measured still holds
            _one_at_a_time(X, Y, state, members[was], until, exc, holdout)
            continue
        elapsed = time.perf_counter() - start
        if was.size:  # the call's time, shared out by epochs trained
            trained = np.maximum(population.result().lengths[was] - first, 1)
            state.wall[members[was]] += elapsed * trained / trained.sum()
    gathered = _gather(state)
    rows = _emit(state, node, gathered)
    failed = np.array([e is not None for e in state.errors])
    running = np.flatnonzero((gathered.status == RUNNING) & ~failed)
    ranked = gathered.histories
    if metric.startswith("val_"):  # the job holds data out (checked with the job)
        assert gathered.val_sse is not None, "a held-out rung metric without held-out data"
        ranked = gathered.val_sse
    values = rung_metric(ranked[running], until, metric)
    return rows, {ids[i]: float(v) for i, v in zip(running, values, strict=True)}, state


def abandon_unit(
    state: UnitState, prune: Collection[str], error: str, node: str = ""
) -> Part | None:
    """End a unit whose training cannot go on (its task keeps failing) where it stands.

    The trials it was to prune stop as pruned at the last epoch measured, as they would have;
    the others still training are recorded as failed, their histories kept up to that epoch
    (so the rungs they took part in still see them). Returns the rows not handed out yet.
    """
    stop = list(prune)
    for population, members in zip(state.populations, state.members, strict=True):
        ids = [state.trials[j].trial_id for j in members]
        population.prune(np.flatnonzero(np.isin(ids, stop)))
        running = population.running
        for j in members[running]:
            state.errors[j] = one_line(error)
        state.failed_at[members[running]] = population.epoch - 1
        population.discard(running)
    return _emit(state, node, _gather(state))


@dataclass
class _Gathered:
    """Every trial's history, length, divergence epoch, status code, sharpness, held-out
    SSE and accuracy (each None where the job measures none), from the populations (see
    :func:`_gather`)."""

    histories: np.ndarray
    lengths: np.ndarray
    diverged: np.ndarray
    status: np.ndarray
    sharpness: np.ndarray | None
    val_sse: np.ndarray | None = None
    val_accuracy: np.ndarray | None = None


def _emit(state: UnitState, node: str, gathered: _Gathered) -> Part | None:
    """The rows of the trials that have finished since the last call, or None."""
    failed = np.array([e is not None for e in state.errors])
    done = ((gathered.status != RUNNING) | failed) & ~state.emitted
    if not done.any():
        return None
    picked = np.flatnonzero(done)
    trials = [state.trials[i] for i in picked]
    lengths = np.where(failed, state.failed_at + 1, gathered.lengths)[picked]
    kept = (gathered.histories[picked], lengths)
    statuses = [Status.FAILED if failed[i] else STATUS_CODES[gathered.status[i]] for i in picked]
    diverged = np.where(failed, -1, gathered.diverged)[picked]
    table = _trials_table(
        trials,
        *kept,
        diverged,
        statuses,
        node,
        state.wall[picked],
        [state.errors[i] for i in picked],
    )
    val_sse = None if gathered.val_sse is None else gathered.val_sse[picked]
    if val_sse is not None:
        accuracy = None if gathered.val_accuracy is None else gathered.val_accuracy[picked]
        for name, values in held_out_summary(val_sse, accuracy, lengths).items():
            epochs = name.endswith("_epoch")
            column = (
                pa.array(values.astype(np.int32), mask=values < 0)
                if epochs
                else pa.array(values, from_pandas=True)
            )
            table = table.set_column(table.schema.get_field_index(name), name, column)
    state.emitted |= done
    sharpness = None
    if gathered.sharpness is not None:
        every = trials[0].train.sharpness_every
        sharpness = _sharpness_table(trials, gathered.sharpness[picked], lengths, every)
    return table, _history_table(trials, *kept, val_sse), sharpness


def _one_at_a_time(
    X: np.ndarray,
    Y: np.ndarray,
    state: UnitState,
    rows: np.ndarray,
    until: int,
    error: Exception,
    holdout: Holdout | None,
) -> None:
    """After a population raised: train its running trials alone, from their initial weights,
    to ``until``; record each that still raises as failed. A lone trial is not tried again."""
    if len(rows) == 1:
        state.errors[rows[0]] = one_line(error, with_type=True)
        return
    for j in rows:
        trial = state.trials[j]
        single = start_population(X, [trial], state.sizes)
        try:
            _inject_fault([trial])
            single.advance(X, Y, until, holdout)
        except Exception as exc:
            state.errors[j] = one_line(exc, with_type=True)
            continue
        state.populations.append(single)
        state.members.append(np.array([j]))


def _gather(state: UnitState) -> _Gathered:
    """Every trial's history, length, divergence epoch, status code and sharpness, from the
    population that trains it now (a trial trained again alone is found in its own, added
    later)."""
    results = [p.result() for p in state.populations]
    K = len(state.trials)
    histories = np.full((K, results[0].histories.shape[1]), np.nan)
    lengths = np.zeros(K, dtype=np.int64)
    diverged = np.full(K, -1, dtype=np.int64)
    status = np.full(K, RUNNING, dtype=np.int8)
    measured = results[0].sharpness
    sharpness = None if measured is None else np.full((K, measured.shape[1]), np.nan)
    held = [
        np.full_like(histories, np.nan) if getattr(results[0], name) is not None else None
        for name in ("val_sse", "val_accuracy")
    ]
    for result, members in zip(results, state.members, strict=True):
        histories[members] = result.histories
        lengths[members] = result.lengths
        diverged[members] = result.diverged_epoch
        status[members] = result.status
        if sharpness is not None and result.sharpness is not None:
            sharpness[members] = result.sharpness
        for gathered, values in zip(held, (result.val_sse, result.val_accuracy), strict=True):
            if gathered is not None and values is not None:
                gathered[members] = values
    return _Gathered(histories, lengths, diverged, status, sharpness, *held)


def train_unit(
    X: np.ndarray,
    Y: np.ndarray,
    trials: Sequence[Trial],
    node: str = "",
    holdout: Holdout | None = None,
) -> Part:
    """Train a unit's trials to the end, in stacked populations of about ``POPULATION_ELEMENTS``.

    Args:
        X, Y: the job's data trained on, (n, d) and (n, k).
        trials: trials that can share a population (equal ``Trial.population_key``).
        node: the node the unit runs on, recorded in every trials row.
        holdout: the job's held-out samples, if it holds any out.

    Returns:
        The unit's trials table and history table (``TRIALS_SCHEMA``, ``HISTORY_SCHEMA``).
        A trial that raised has status ``failed``, its error text, and no history rows.
    """
    shared = trials[0].population_key()
    if any(t.population_key() != shared for t in trials):
        raise ValueError("a work unit's trials must share layer sizes and training config")
    state = start_unit(X, Y, trials)
    rows, _, _ = advance_unit(X, Y, state, trials[0].train.epochs, node=node, holdout=holdout)
    assert rows is not None
    return rows


def failed_tables(trials: Sequence[Trial], error: str, node: str = "") -> Part:
    """The tables of a unit none of whose trials could be trained: all ``failed``, no history."""
    K = len(trials)
    histories, lengths = np.full((K, 1), np.nan), np.zeros(K, dtype=np.int64)
    table = _trials_table(
        trials,
        histories,
        lengths,
        np.full(K, -1),
        [Status.FAILED] * K,
        node,
        np.zeros(K),
        [one_line(error)] * K,
    )
    measured = trials[0].train.sharpness_every > 0
    sharpness = SHARPNESS_SCHEMA.empty_table() if measured else None
    return table, _history_table(trials, histories, lengths), sharpness


def start_population(X: np.ndarray, trials: Sequence[Trial], sizes: list[int]) -> Population:
    """A population of these trials (of one population key), at their initial weights."""
    first = trials[0]
    params = stack_params([t.initial_params(sizes[0], sizes[-1]) for t in trials])
    minibatch = first.train.minibatch(X.shape[0]) is not None
    rngs = [np.random.default_rng(t.shuffle_seed()) for t in trials] if minibatch else None
    lrs = np.array([t.lr for t in trials])
    return Population(params, lrs, first.train, first.activation, rngs)


def _inject_fault(trials: Sequence[Trial]) -> None:
    """Raise if ``GDSEARCH_FAULT_TRIALS`` names one of these trials (tests only)."""
    named = os.environ.get(FAULT_VARIABLE)
    if not named:
        return
    hit = set(named.split(",")).intersection(t.trial_id for t in trials)
    if hit:
        raise RuntimeError(f"fault injected by {FAULT_VARIABLE} into trial {min(hit)}")


def _sharpness_table(
    trials: Sequence[Trial], values: np.ndarray, lengths: np.ndarray, every: int
) -> pa.Table:
    """The sharpness rows: each trial's measurements at epochs 0, k, 2k, … of its history."""
    epochs = np.arange(values.shape[1]) * every  # (M,)
    kept = (epochs[None, :] < lengths[:, None]) & ~np.isnan(values)  # (K, M)
    rows, columns = np.nonzero(kept)
    ids = pa.array([t.trial_id for t in trials], pa.string())
    return pa.Table.from_arrays(
        [
            ids.take(pa.array(rows)),
            pa.array(epochs[columns].astype(np.int32)),
            pa.array(values[kept]),
        ],
        schema=SHARPNESS_SCHEMA,
    )


def _history_table(
    trials: Sequence[Trial],
    histories: np.ndarray,
    lengths: np.ndarray,
    val_sse: np.ndarray | None = None,
) -> pa.Table:
    """The history rows (``HISTORY_SCHEMA``; with ``val_sse`` where data is held out)."""
    kept = np.arange(histories.shape[1]) < lengths[:, None]  # (K, epochs + 1)
    rows, epochs = np.nonzero(kept)
    ids = pa.array([t.trial_id for t in trials], pa.string())
    columns = [
        ids.take(pa.array(rows)),
        pa.array(epochs.astype(np.int32)),
        pa.array(histories[kept]),
    ]
    if val_sse is None:
        return pa.Table.from_arrays(columns, schema=HISTORY_SCHEMA)
    return pa.Table.from_arrays([*columns, pa.array(val_sse[kept])], schema=HELD_OUT_HISTORY)


def _trials_table(
    trials: Sequence[Trial],
    histories: np.ndarray,
    lengths: np.ndarray,
    diverged_epoch: np.ndarray,
    statuses: Sequence[str],
    node: str,
    wall: np.ndarray,
    errors: list[str | None],
) -> pa.Table:
    K = len(trials)
    kept = np.arange(histories.shape[1]) < lengths[:, None]  # (K, epochs + 1)
    stored = np.where(kept, histories, np.nan)  # what the history rows hold
    last = np.where(lengths > 0, histories[np.arange(K), np.maximum(lengths - 1, 0)], np.nan)
    with np.errstate(all="ignore"):
        lowest = np.where(
            lengths > 0,
            np.nanmin(np.where(np.isnan(stored), np.inf, stored), axis=1),
            np.nan,
        )
    diverged = diverged_epoch >= 0
    # A failed trial with a history (it failed between rungs) stopped at its last epoch.
    stopped = np.isin(statuses, [Status.PLATEAUED, Status.PRUNED]) | (
        np.isin(statuses, [Status.FAILED]) & (lengths > 0)
    )
    metrics = trajectory(stored)
    has_history = lengths > 0
    rows = [t.columns() for t in trials]
    columns = {
        **{name: [row[name] for row in rows] for name in rows[0]},
        "status": statuses,
        "final_sse": pa.array(last, from_pandas=True),
        "min_sse": pa.array(lowest, from_pandas=True),
        "diverged_epoch": pa.array(diverged_epoch.astype(np.int32), mask=~diverged),
        "stopped_epoch": pa.array((lengths - 1).astype(np.int32), mask=~stopped),
        "node": [node] * K,
        "wall_s": wall,
        "error": errors,
        "numerics": [machine_label(t.train.numerics) for t in trials],
        **{
            name: pa.array(values.astype(np.int32), mask=~has_history)
            if name.endswith("_epoch")
            else pa.array(values, from_pandas=True)
            for name, values in metrics.items()
        },
        # set by _emit where the job holds data out, and by a sampler's policy
        **{
            name: pa.nulls(K, TRIALS_SCHEMA.field(name).type)
            for name in (*HELD_OUT_COLUMNS, *PROPOSAL_COLUMNS)
        },
    }
    return pa.Table.from_pydict(columns, schema=TRIALS_SCHEMA)
