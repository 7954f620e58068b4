"""Compaction: many parts of a result set into one, safe against a kill at any point.

A compaction writes a journal first (``compaction.json``: the part it writes and the parts that
part replaces), then the new part's history and sharpness, then its trials (the commit: from here
readers see it instead of the old ones), then deletes the old parts, trials first, then the
journal. A kill at any point leaves either the old parts or the new one visible, never both, and
:func:`settle` (at the next run, compaction or repair) finishes or undoes it.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

from gdsearch.errors import ResultsError, one_line

if TYPE_CHECKING:
    from gdsearch.results.store import ResultsStore

COMPACTION = "compaction.json"
"""The journal of a compaction under way: the part it writes and the parts that part replaces."""
COMPACTION_FAULT = "GDSEARCH_FAULT_COMPACTION_STEP"
"""Fault injection for tests: the process exits (as if killed) right after this step of a
compaction (1: journal written, 2: history written, 3: trials written, 4: old parts deleted)."""
KINDS = ("trials", "history", "sharpness")
PARTNERS = ("history", "sharpness")


def read_journal(store: ResultsStore) -> dict[str, Any] | None:
    """The journal of a compaction under way, or None."""
    path = f"{store.root}/{COMPACTION}"
    if not store.found(path):
        return None
    try:
        with store.fs.open_input_stream(path) as stream:
            journal: dict[str, Any] = json.loads(stream.read())
    except (OSError, ValueError) as exc:
        raise ResultsError(
            f"{path}: cannot be read ({one_line(exc)}); `gdsearch repair "
            f"{store.location}` settles the compaction it journals"
        ) from None
    return journal


def replaced(store: ResultsStore) -> set[str]:
    """The parts a compaction replaced: its journal names them, and its part is committed."""
    journal = read_journal(store)
    if journal and store.info(f"{store.trials_dir}/{journal['new']}").type == (pafs.FileType.File):
        return set(journal["old"])
    return set()


def compact(store: ResultsStore, names: list[str], row_group_rows: int) -> str:
    """Replace the committed parts ``names`` by one part holding all their rows, sorted by trial
    and epoch, in row groups of ``row_group_rows``; returns its name."""
    new = f"part-{uuid.uuid4().hex}.parquet"
    present = {kind: set(store.parts(kind)) for kind in KINDS}
    tables = {
        kind: [store.read_checked(kind, n) for n in names if n in present[kind]] for kind in KINDS
    }
    store.write_bytes(
        f"{store.root}/{COMPACTION}", json.dumps({"new": new, "old": names}).encode()
    )
    _fault(1)
    for kind in PARTNERS:
        if tables[kind]:
            order = [("trial_id", "ascending"), ("epoch", "ascending")]
            merged = pa.concat_tables(tables[kind]).sort_by(order)
            store.write_table(merged, f"{store.directory(kind)}/{new}", row_group_rows)
    _fault(2)
    trials = pa.concat_tables(tables["trials"]).sort_by("trial_id")
    store.write_table(trials, f"{store.trials_dir}/{new}", row_group_rows)
    _fault(3)
    store.drop_parts(names)
    _fault(4)
    store.delete(f"{store.root}/{COMPACTION}")
    return new


def settle(store: ResultsStore) -> list[tuple[str, str]]:
    """Finish a compaction that was killed after its part was committed, or undo one killed
    before; returns each file deleted and why."""
    journal = read_journal(store)
    if journal is None:
        return []
    new, old = journal["new"], list(journal["old"])
    done: list[tuple[str, str]] = []
    if store.info(f"{store.trials_dir}/{new}").type == pafs.FileType.File:
        reason = f"replaced by the compacted part {new}"
        present = {kind: set(store.parts(kind)) for kind in KINDS}
        done = [
            (f"{store.directory(k)}/{n}", reason) for k in KINDS for n in old if n in present[k]
        ]
        store.drop_parts(old)
    else:
        reason = "written by a compaction that did not finish"
        for kind in PARTNERS:
            path = f"{store.directory(kind)}/{new}"
            if store.found(path):
                done.append((path, reason))
                store.delete(path)
    finished = "finished" if reason.startswith("replaced") else "did not finish"
    done.append((f"{store.root}/{COMPACTION}", f"the journal of a compaction that {finished}"))
    store.delete(f"{store.root}/{COMPACTION}")
    return done


def _fault(step: int) -> None:
    if os.environ.get(COMPACTION_FAULT) == str(step):
        os._exit(9)  # as a SIGKILL would leave it: no cleanup, no flush
