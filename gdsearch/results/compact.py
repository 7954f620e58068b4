"""Compact a result set: many small parts into few large ones, as safely as every other write.

A long run, or many resumes, leaves one part per work unit: thousands of small files, each read
on its own. :func:`compact_results` merges the committed parts, in their order, into parts of
about ``TARGET_ROWS`` history rows each, sorted by trial and epoch and cut into row groups of
``ROW_GROUP_ROWS``, so that a reader opens few files and a filter on trial_id or epoch skips
whole row groups by their statistics. Each merge is one :meth:`ResultsStore.compact`: a kill at
any point leaves the old parts or the new one visible, never both nor neither, and the next run,
compaction or repair settles it. The compaction holds the result set's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gdsearch.errors import ResultsError
from gdsearch.results import journal
from gdsearch.results.lock import ResultsLock
from gdsearch.results.manifest import now
from gdsearch.results.store import ResultsStore

TARGET_ROWS = 4_000_000
"""History rows a compacted part holds at most (about 100 MB in memory while it is merged)."""
ROW_GROUP_ROWS = 1_048_576
"""Rows of a compacted part's row groups."""


@dataclass(frozen=True)
class CompactReport:
    """What a compaction did: parts before and after, the history rows they hold, and the
    files an earlier compaction left that were settled first."""

    location: str
    parts_before: int
    parts_after: int
    history_rows: int
    settled: int


def compact_results(
    location: str | Path, *, target_rows: int = TARGET_ROWS, wait: bool = False
) -> CompactReport:
    """Merge a result set's parts into parts of about ``target_rows`` history rows.

    Args:
        location: the results directory (``results/NAME``) or URI.
        target_rows: history rows a compacted part holds at most (a part larger than this
            is left as it is).
        wait: wait for a run that writes there to end, instead of refusing.
    """
    store = ResultsStore(location)
    if not store.has_trials_dir():
        raise ResultsError(f"{store.location}: no results here (no trials/ directory)")
    with ResultsLock(store, wait=wait):
        settled = len(journal.settle(store))
        names = store.committed("trials")
        rows = {name: _history_rows(store, name) for name in names}
        merged = 0
        for group in _groups(names, rows, target_rows):
            journal.compact(store, group, ROW_GROUP_ROWS)
            merged += len(group) - 1
        report = CompactReport(
            store.location, len(names), len(names) - merged, sum(rows.values()), settled
        )
        if merged and store.exists():
            manifest = store.read_manifest()
            record = {
                "at": now(),
                "parts_before": report.parts_before,
                "parts_after": report.parts_after,
            }
            manifest["compactions"] = [*manifest.get("compactions", []), record]
            store.write_manifest(manifest)
        return report


def _history_rows(store: ResultsStore, name: str) -> int:
    """A part's history rows, from its footer alone."""
    path = f"{store.history_dir}/{name}"
    try:
        return int(pq.ParquetFile(path, filesystem=store.fs).metadata.num_rows)
    except (OSError, pa.ArrowException):
        return 0  # unreadable: merging it fails with a message that names it


def _groups(names: list[str], rows: dict[str, int], target: int) -> list[list[str]]:
    """Consecutive runs of parts of at most ``target`` history rows together, each of two or
    more parts (a part alone is already as compact as it gets)."""
    groups: list[list[str]] = []
    current: list[str] = []
    total = 0
    for name in names:
        if current and total + rows[name] > target:
            groups.append(current)
            current, total = [], 0
        current.append(name)
        total += rows[name]
    groups.append(current)
    return [g for g in groups if len(g) > 1]
