"""Reading a result set: :func:`load_results` (whole or the part asked for) and
:func:`open_results` (the trials now, the history when it is needed).

``load_results`` reads a unit's history and sharpness parts only if its trials part holds a
trial it was asked for, and reads parts side by side on a pool of threads; it orders their rows
with :mod:`gdsearch.results.ordering` and checks its selection with :mod:`gdsearch.results.query`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.errors import ResultsError
from gdsearch.results.ordering import in_order
from gdsearch.results.query import Filters, Query
from gdsearch.results.resultset import Results
from gdsearch.results.schema import SHARPNESS_SCHEMA, TRIALS_SCHEMA, fill_implied
from gdsearch.results.store import PARTNERS, SCHEMAS, ResultsStore

if TYPE_CHECKING:
    import pandas as pd


def load_results(
    location: str | Path,
    *,
    filters: Filters | None = None,
    trial_ids: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
    every: int | None = None,
) -> Results:
    """Load a result set written by ``gdsearch run``, whole or the part of it asked for::

        load_results("results/moons-lr-init")  # everything
        load_results(
            "results/moons-lr-init",
            filters=[("lr", ">=", 0.01), ("init", "in", ["xavier", "he"])],
            every=10,
        )

    Only the parts that hold a selected trial are read: a unit's history and sharpness parts
    hold exactly the trials of its trials part, whose name they share.

    Args:
        location: the results directory (``"results/seed-sine"``) or URI
            (``"s3://bucket/prefix/seed-sine"``).
        filters: the trials to load, by the columns of the trials table, in the form
            ``pandas.read_parquet`` takes: a list of ``(column, op, value)`` tuples that must
            all hold, or a list of such lists of which one must hold; op is one of
            ``==, !=, <, <=, >, >=, in, not in`` (``in`` and ``not in`` take a list of values).
            A ``pyarrow.compute.Expression`` on those columns works too. A trial whose value
            is null does not match a comparison; a column older parts lack holds the value
            those trials trained with (``momentum`` 0, …), as in the loaded table.
        trial_ids: load only these trials (with ``filters``, only those of them that match).
        columns: the history columns wanted besides trial_id and epoch, which always come
            (default: every column).
        every: keep the history at epochs 0, every, 2·every, … and each trial's last epoch, so
            that a thinned curve still ends where its trial stopped or diverged. The
            sharpness table, measured at its own stride, is not thinned.

    Returns:
        :class:`Results` with ``.trials`` (sorted by trial_id), ``.history`` and
        ``.sharpness`` (sorted by trial_id, then epoch) of the selected trials, the manifest
        and the job file as it was run.

    Raises:
        InputError: a selection argument of the wrong form, a column that does not exist, a
            value that cannot be compared with its column, or a trial_id not stored; the
            message names the argument and the value.
        ResultsError: no result set at ``location``, or a part that cannot be read (named).
    """
    query = Query.parse(filters, trial_ids, columns, every)
    store = _store(location)
    names = store.committed("trials")
    partners = {kind: store.committed(kind) for kind in PARTNERS}
    loaded: dict[str, tuple[str, ...] | None] = {
        "history": query.columns,  # None: what the parts read hold (see history_columns)
        "sharpness": tuple(SHARPNESS_SCHEMA.names),
    }
    reading = {"trials": store.submit_parts("trials", names)}
    if query.where is None:  # all of every part: read them while the trials are looked at
        loaded["history"] = query.columns or store.history_columns(partners["history"])
        reading |= {
            kind: store.submit_parts(kind, partners[kind], loaded[kind], ["trial_id"])
            for kind in PARTNERS
        }
    trials = fill_implied(_labelled([part.result() for part in reading.pop("trials")]))
    selected = query.select(trials, store.location)
    selected = selected.take(pc.sort_indices(selected, [("trial_id", "ascending")]))
    wanted = {names[index] for index in pc.unique(selected.column(PART)).to_pylist()}
    ids = selected.column("trial_id").combine_chunks()

    def rows(kind: str, every: int = 1) -> pd.DataFrame:
        """The selected trials' rows of history or sharpness, read from their parts only."""
        if kind in reading:
            tables = [part.result() for part in reading[kind]]
        else:
            parts = [name for name in partners[kind] if name in wanted]
            if loaded[kind] is None:  # the columns the selected trials' parts hold
                loaded[kind] = store.history_columns(parts)
            tables = store.read_parts(kind, parts, loaded[kind], ["trial_id"])
        columns = loaded[kind]
        assert columns is not None
        schema = pa.schema([SCHEMAS[kind].field(column) for column in columns])
        return in_order(tables, ids, schema, every).to_pandas()

    return Results(
        trials=selected.drop_columns([PART]).to_pandas(),
        history=rows("history", query.every),
        manifest=store.read_manifest(),
        path=store.location,
        job_source=store.read_job_copy(),
        sharpness=rows("sharpness"),
    )


PART = "__part"
"""The column that labels each loaded trials row with its part's index, while trials are
selected."""


def _labelled(parts: list[pa.Table]) -> pa.Table:
    """The trials parts as one table, each row labelled with its part's index (PART)."""
    if not parts:
        parts = [TRIALS_SCHEMA.empty_table()]
    index = np.repeat(np.arange(len(parts), dtype=np.int32), [part.num_rows for part in parts])
    return pa.concat_tables(parts).append_column(PART, pa.array(index))


def open_results(location: str | Path) -> Results:
    """Open a result set written by ``gdsearch run`` without reading its history.

    Args:
        location: the results directory or URI, as for :func:`load_results`.

    Returns:
        :class:`~gdsearch.results.resultset.Results`: ``.trials`` (the same table as
        ``load_results`` gives) and the manifest now; the history read part by part by
        :meth:`~gdsearch.results.resultset.Results.history_blocks`, or whole on first use of
        ``.history``.
    """
    import pandas as pd

    store = _store(location)
    names = store.committed("trials")  # not the parts a finished compaction replaced
    tables = [store.read_checked("trials", name) for name in names]
    trials = fill_implied(pa.concat_tables(tables) if tables else store.read_table("trials"))
    frame = trials.to_pandas()
    frame[PART] = np.repeat(np.array(names, dtype=object), [t.num_rows for t in tables])
    frame = frame.sort_values("trial_id", ignore_index=True)
    parts = pd.Series(frame.pop(PART).to_numpy(), index=frame["trial_id"].to_numpy())
    return Results(
        frame,
        manifest=store.read_manifest(),
        path=store.location,
        job_source=store.read_job_copy(),
        store=store,
        parts=parts,
    )


def _store(location: str | Path) -> ResultsStore:
    """The store at ``location``, which must hold a result set."""
    store = ResultsStore(location)
    if not store.has_trials_dir():
        raise ResultsError(f"{store.location}: no results here (no trials/ directory)")
    return store
