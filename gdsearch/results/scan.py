"""A result set opened without its history: the trials table in memory, histories read part by
part.

A history grows with trials × epochs (a 100,000-trial search of 1,000 epochs is 10⁸ rows), its
trials table only with trials. :func:`open_results` reads the trials table and leaves the
history on disk; :meth:`ResultSet.history_blocks` then hands it out one part at a time, each as a
dense (trials, epochs + 1) array of the trials it was asked for, so that analysis and reports
hold one part (or one batch of trials) at a time. A trial's rows are all in one part: the part
of the work unit that finished it, named as its trials part.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.errors import ResultsError, one_line
from gdsearch.results.schema import fill_implied
from gdsearch.results.store import Results, ResultsStore

HistoryBlock = tuple[np.ndarray, np.ndarray]
"""trial_ids (n,) and their SSE (n, epochs + 1), NaN past each trial's last epoch."""


class ResultSet(Results):
    """A :class:`Results` whose ``history`` and ``sharpness`` are read on first use; analysis and
    reports read histories through :meth:`history_blocks` instead, part by part."""

    def __init__(self, store: ResultsStore, trials: pd.DataFrame, parts: pd.Series) -> None:
        self.store = store
        self.trials = trials
        self.parts = parts  # each trial's part name, by trial_id
        self.manifest = store.read_manifest()
        self.path = store.location
        self.job_source = store.read_job_copy()
        self._loaded: dict[str, pd.DataFrame] = {}

    def __repr__(self) -> str:
        return f"ResultSet({self.path!r}, {len(self.trials)} trials)"

    @property
    def history(self) -> pd.DataFrame:
        """The whole history as one DataFrame, as ``load_results`` gives it (read on first use:
        it holds every row in memory)."""
        return self._table("history")

    @history.setter
    def history(self, frame: pd.DataFrame) -> None:
        self._loaded["history"] = frame

    @property
    def sharpness(self) -> pd.DataFrame:
        """The sharpness table (read on first use)."""
        return self._table("sharpness")

    @sharpness.setter
    def sharpness(self, frame: pd.DataFrame) -> None:
        self._loaded["sharpness"] = frame

    def _table(self, kind: str) -> pd.DataFrame:
        if kind not in self._loaded:
            ids = pa.array(self.trials["trial_id"], pa.string())
            table = self.store.read_table(kind)
            self._loaded[kind] = (
                table.filter(pc.is_in(table.column("trial_id"), value_set=ids))
                .to_pandas()
                .sort_values(["trial_id", "epoch"], ignore_index=True)
            )
        return self._loaded[kind]

    def history_blocks(self, trial_ids: Iterable[str] | None = None) -> Iterator[HistoryBlock]:
        """The histories of these trials (default: all), one part at a time.

        Yields:
            ``(trial_ids, sse)`` per part that holds some of them: the part's wanted trials
            that have history rows, and their SSE as a (trials, epochs + 1) array, NaN past
            each trial's last epoch.
        """
        wanted = self.parts if trial_ids is None else self.parts.reindex(list(trial_ids))
        wanted = wanted[wanted.isin(self.store.parts("history"))]  # a part repair dropped: none
        for name, ids in wanted.groupby(wanted, sort=True):
            block = self._block(str(name), ids.index.to_numpy(dtype=object))
            if block is not None:
                yield block

    def _block(self, name: str, ids: np.ndarray) -> HistoryBlock | None:
        """One history part's rows of these trials as a dense array."""
        return dense_history(_read(self.store, "history", name, ["trial_id", "epoch", "sse"]), ids)


def dense_history(table: pa.Table, ids: np.ndarray) -> HistoryBlock | None:
    """A history table's rows of these trials as one block: the trials that have rows, and their
    SSE as a (trials, epochs + 1) array, NaN past each one's last epoch; None if none has."""
    value_set = pa.array(ids, pa.string())
    row = pc.index_in(table.column("trial_id"), value_set=value_set)
    kept = pc.is_valid(row)
    row = row.filter(kept).to_numpy()
    epoch = table.column("epoch").filter(kept).to_numpy()
    sse = table.column("sse").filter(kept).to_numpy()
    if not len(row):
        return None
    present = np.zeros(len(ids), dtype=bool)
    present[row] = True
    dense = np.full((len(ids), int(epoch.max()) + 1), np.nan)  # (trials, epochs + 1)
    dense[row, epoch] = sse
    return ids[present], dense[present]


def open_results(location: str | Path) -> ResultSet:
    """Open a result set written by ``gdsearch run`` without reading its history.

    Args:
        location: the results directory or URI, as for ``gdsearch.load_results``.

    Returns:
        A :class:`ResultSet`: ``.trials`` (the same table as ``load_results`` gives), the
        manifest, and histories read part by part (:meth:`ResultSet.history_blocks`).
    """
    store = ResultsStore(location)
    if not store.has_trials_dir():
        raise ResultsError(f"{store.location}: no results here (no trials/ directory)")
    names = store.committed("trials")  # not the parts a finished compaction replaced
    tables = [_read(store, "trials", name) for name in names]
    trials = fill_implied(pa.concat_tables(tables) if tables else store.read_table("trials"))
    frame = trials.to_pandas()
    frame[PART] = np.repeat(np.array(names, dtype=object), [t.num_rows for t in tables])
    frame = frame.sort_values("trial_id", ignore_index=True)
    parts = pd.Series(frame.pop(PART).to_numpy(), index=frame["trial_id"].to_numpy())
    return ResultSet(store, frame, parts)


PART = "__part__"


def _read(store: ResultsStore, kind: str, name: str, columns: list[str] | None = None) -> pa.Table:
    """One part; one that cannot be read is named, with the remedy, as ``load_results`` does."""
    try:
        return store.read_part(kind, name, columns)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(
            f"{store.directory(kind)}/{name}: not a readable Parquet part ({one_line(exc)}); "
            f"`gdsearch repair {store.location}` drops it and its partner so that the next "
            "run trains their trials again"
        ) from None
