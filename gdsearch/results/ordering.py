"""History and sharpness rows in the order ``load_results`` gives them: by trial_id, then epoch.

The store writes a unit's trials one after another, each trial's rows a run of ascending
epochs, so a part is a sequence of blocks, one per trial. Ordering the rows is then ordering the
blocks (hundreds of keys, not millions of rows) and copying each to its place, once. Rows that
do not form such blocks (a part written otherwise) are sorted one by one instead; both give the
same table.

A trial_id is handled as its position among the selected trials' sorted ids, looked up once per
distinct id of each part (Parquet stores the column dictionary-encoded, and it is read that
way), so no string is compared; the trial_id column is built last, run by run, from the ids.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LAST = pa.scalar(np.iinfo(np.int32).max, pa.int32())
"""Where a row without an epoch goes: last of its trial, as pandas sorts a missing value."""


class Runs(NamedTuple):
    """Rows of one trial in ascending epochs, one entry per run (numpy arrays)."""

    batch: np.ndarray  # which record batch the run is in
    start: np.ndarray  # its first row there
    length: np.ndarray  # its rows
    code: np.ndarray  # the trial's position in the selected ids; -1 if not selected
    first: np.ndarray  # first epoch
    last: np.ndarray  # last epoch


def in_order(parts: list[pa.Table], ids: pa.Array, schema: pa.Schema, every: int = 1) -> pa.Table:
    """The rows of the trials ``ids`` from parts read with trial_id dictionary-encoded, sorted
    by trial_id then epoch; with ``every`` > 1 only epochs 0, every, 2·every, … and each
    trial's last epoch. Rows of other trials are dropped.

    Args:
        parts: tables with the columns of ``schema``, trial_id dictionary-encoded.
        ids: the selected trials' ids, in ascending order, unique.
        schema: the columns and types of the table returned (trial_id a string column).
        every: the epoch stride.
    """
    batches = [batch for part in parts for batch in part.to_batches() if batch.num_rows]
    if not batches:
        return schema.empty_table()
    others = [name for name in schema.names if name != "trial_id"]
    values = [batch.select(others) for batch in batches]
    runs = _runs(batches, ids)
    if runs is not None:
        table = _gathered(values, runs).combine_chunks()
        code, length = runs.code, runs.length
    else:
        order, row_code = _row_order(batches, ids)
        table = pa.Table.from_batches(values).combine_chunks().take(order)
        new_run = np.flatnonzero(np.append(True, row_code[1:] != row_code[:-1]))
        code, length = row_code[new_run], np.diff(np.append(new_run, len(row_code)))
    if not table.num_rows:  # none of these rows is of a selected trial
        return schema.empty_table()
    if every > 1:
        table, code, length = _thinned(table, code, length, every)
    trial_id = pc.run_end_decode(
        pa.RunEndEncodedArray.from_arrays(pa.array(np.cumsum(length), pa.int64()), ids.take(code))
    )
    return pa.Table.from_arrays(
        [trial_id if name == "trial_id" else table.column(name) for name in schema.names],
        schema=schema,
    )


def _runs(batches: list[pa.RecordBatch], ids: pa.Array) -> Runs | None:
    """The selected trials' runs in output order, or None if some batch's rows are not runs
    of one trial with ascending epochs, or a trial's runs overlap in epochs."""
    lookup = _lookup(batches, ids)
    found = []
    for index, batch in enumerate(batches):
        runs = _batch_runs(batch, index, lookup[index])
        if runs is None:
            return None
        found.append(runs)
    every = Runs(*(np.concatenate(field) for field in zip(*found, strict=True)))
    chosen = np.flatnonzero(every.code >= 0)
    chosen = chosen[np.lexsort((every.first[chosen], every.code[chosen]))]
    runs = Runs(*(field[chosen] for field in every))
    if np.any((runs.code[1:] == runs.code[:-1]) & (runs.last[:-1] >= runs.first[1:])):
        return None
    return runs


def _gathered(batches: list[pa.RecordBatch], runs: Runs) -> pa.Table:
    """The runs' rows, one run after another, copied into one table."""
    pieces = zip(runs.batch.tolist(), runs.start.tolist(), runs.length.tolist(), strict=True)
    slices = [batches[b].slice(start, n) for b, start, n in pieces]
    return pa.Table.from_batches(slices, schema=batches[0].schema)


def _lookup(batches: list[pa.RecordBatch], ids: pa.Array) -> list[np.ndarray | None]:
    """For each batch whose trial_id is dictionary-encoded, each dictionary entry's position
    in ``ids`` (-1: none); one lookup for all batches."""
    dictionaries = [
        batch.column("trial_id").dictionary
        if pa.types.is_dictionary(batch.column("trial_id").type)
        else None
        for batch in batches
    ]
    present = [d for d in dictionaries if d is not None]
    if not present:
        return [None] * len(batches)
    found = pc.fill_null(pc.index_in(pa.concat_arrays(present), value_set=ids), -1).to_numpy()
    ends = np.cumsum([len(d) for d in present])
    pieces = iter(np.split(found, ends[:-1]))
    return [None if d is None else next(pieces) for d in dictionaries]


def _batch_runs(batch: pa.RecordBatch, index: int, lookup: np.ndarray | None) -> Runs | None:
    """The runs of one trial_id and ascending epochs of batch number ``index``; None if its
    rows are not such runs."""
    trial_id, epoch = batch.column("trial_id"), batch.column("epoch")
    if lookup is None or trial_id.null_count or epoch.null_count:
        return None
    indices, epochs = trial_id.indices.to_numpy(), epoch.to_numpy()  # views, not copies
    new_trial = indices[1:] != indices[:-1]
    if not np.all(new_trial | (epochs[1:] > epochs[:-1])):
        return None
    start = np.flatnonzero(np.append(True, new_trial))
    end = np.append(start[1:], len(indices))
    batch_of = np.full(len(start), index)
    return Runs(
        batch_of, start, end - start, lookup[indices[start]], epochs[start], epochs[end - 1]
    )


def _row_order(batches: list[pa.RecordBatch], ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Where each output row comes from and its trial's position in ``ids``, for rows in any
    order: a stable sort of every row."""
    code = np.concatenate([_row_codes(batch.column("trial_id"), ids) for batch in batches])
    epoch = np.concatenate(
        [pc.fill_null(batch.column("epoch"), LAST).to_numpy() for batch in batches]
    )
    chosen = np.flatnonzero(code >= 0)
    key = (code[chosen].astype(np.int64) << 32) + epoch[chosen]
    order = chosen[np.argsort(key, kind="stable")]
    return order, code[order]


def _row_codes(trial_id: pa.Array, ids: pa.Array) -> np.ndarray:
    """Each row's trial as its position in ``ids``; -1 where it is none of them."""
    if pa.types.is_dictionary(trial_id.type):
        code = pc.index_in(trial_id.dictionary, value_set=ids).take(trial_id.indices)
    else:
        code = pc.index_in(trial_id, value_set=ids)
    return pc.fill_null(code, -1).to_numpy()


def _thinned(
    table: pa.Table, code: np.ndarray, length: np.ndarray, every: int
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Rows at epochs 0, every, 2·every, … and each trial's last, with the runs that are left."""
    epoch = table.column("epoch").to_numpy()
    keep = epoch % every == 0
    ends = np.cumsum(length)
    keep[ends[np.append(code[1:] != code[:-1], True)] - 1] = True  # each trial's last row
    kept = np.add.reduceat(keep, ends - length) if len(length) else length
    return table.filter(keep), code[kept > 0], kept[kept > 0]
