"""Repair a result set: drop what a crash or a damaged disk left, so that a run trains it again.

A finished work unit is one history part and one trials part of the same name (and a sharpness
part, where the job measures sharpness), and its trials count as stored exactly when they are
there and whole. :func:`repair_results` reads every part
(its footer, its schema, every page against its checksum) and drops

- files left under a temporary name by a write that never finished,
- parts that cannot be read whole, together with their partners,
- parts whose trials or history partner is missing, and pairs whose two parts name different
  trials;

and first settles a compaction that was killed (:mod:`gdsearch.results.compact`): the parts it
replaced go if its part was committed, else its own unfinished files.

The next ``gdsearch run`` of the job then trains exactly the trials of the dropped parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gdsearch.errors import ResultsError, one_line
from gdsearch.mlp.stopping import Status
from gdsearch.results import journal
from gdsearch.results.lock import ResultsLock
from gdsearch.results.store import KINDS, ResultsStore

REQUIRED = {
    "trials": ("trial_id", "status"),
    "history": ("trial_id", "epoch", "sse"),
    "sharpness": ("trial_id", "epoch", "sharpness"),
}
"""Columns every row of a part must have."""


@dataclass(frozen=True)
class Dropped:
    """One file a repair removed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class RepairReport:
    """What a repair found and did.

    Attributes:
        location: the result set.
        dropped: the files removed (or, in a dry run, that would be), trials parts first.
        stored: trials stored after the repair.
        total: trials of the job as its manifest records them (None without a manifest).
        dry_run: whether nothing was removed.
    """

    location: str
    dropped: tuple[Dropped, ...]
    stored: int
    total: int | None
    dry_run: bool


def repair_results(location: str | Path, *, dry_run: bool = False) -> RepairReport:
    """Check every part of a result set and drop the damaged ones and what depends on them.

    The repair holds the result set's lock while it works: it refuses while a run of this host
    writes there, takes over the lock of a run of this host that died, and breaks the lock of
    a run on another host (a repair says that run is gone).

    Args:
        location: the results directory (``results/NAME``) or URI.
        dry_run: only report what would be dropped.

    Returns:
        A :class:`RepairReport`.
    """
    store = ResultsStore(location)
    if not store.has_trials_dir():
        raise ResultsError(f"{store.location}: no results here (no trials/ directory)")
    if dry_run:
        dropped = _damage(store)
        return _report(store, dropped, dry_run, _stored_after(store, dropped))
    with ResultsLock(store, break_foreign=True):
        settled = [Dropped(path, reason) for path, reason in journal.settle(store)]
        dropped = settled + _damage(store)
        for item in dropped:
            store.delete(item.path)
        if dropped and store.exists():
            _record(store, dropped)
        return _report(store, dropped, dry_run, len(store.stored_trial_ids()))


def _damage(store: ResultsStore) -> list[Dropped]:
    """Every file to drop, each trials part before its partners."""
    # In that order a repair that is itself interrupted leaves no trials part without history.
    unfinished = "left by a write that did not finish"
    dropped = [Dropped(path, unfinished) for path in store.temporary_files()]
    names = {kind: set(store.parts(kind)) for kind in KINDS}
    compat = store.read_manifest().get("compat") if store.exists() else None
    measured = bool((compat or {}).get("sharpness_every"))  # else no sharpness part is due
    for name in sorted(names["trials"] | names["history"] | names["sharpness"]):
        problems = {
            kind: _check_part(store, kind, name) if name in names[kind] else "missing"
            for kind in KINDS
        }
        if problems["sharpness"] == "missing" and not measured:
            problems["sharpness"] = "" if name in names["trials"] else "missing"
        if not any(problems.values()) and not _same_trials(store, name, measured):
            problems["trials"] = problems["history"] = "names other trials than its partner"
        for kind in KINDS:
            if name not in names[kind]:
                continue
            others = [k for k in KINDS if k != kind and problems[k]]
            if problems[kind] or others:
                reason = (
                    problems[kind] or f"its {others[0]} part is {_as_state(problems[others[0]])}"
                )
                dropped.append(Dropped(f"{store.directory(kind)}/{name}", reason))
    return dropped


def _check_part(store: ResultsStore, kind: str, name: str) -> str:
    """What is wrong with one part, or "" if it reads whole."""
    try:
        table = store.read_part(kind, name)
    except (OSError, pa.ArrowException) as exc:
        return "unreadable: " + one_line(exc)
    if table.num_rows == 0 and kind == "trials":  # a history part may be empty: its trials
        return "unreadable: it has no rows"  # may all have failed or diverged at epoch 0
    for column in REQUIRED[kind]:
        if table.column(column).null_count:
            return f"unreadable: column {column} has missing values"
    return ""


def _same_trials(store: ResultsStore, name: str, measured: bool = False) -> bool:
    """Whether a unit's history part holds the trials of its trials part: every trial that
    has a history (all but failed ones and those diverged at epoch 0), and no other; and its
    sharpness part (where measured) no other trials."""
    trials = store.read_part("trials", name, ["trial_id", "status", "diverged_epoch"])
    history = store.read_part("history", name, ["trial_id"]).column("trial_id")
    no_history = pc.or_(
        pc.equal(trials.column("status"), Status.FAILED.value),
        pc.fill_null(pc.equal(trials.column("diverged_epoch"), 0), False),
    )
    listed = set(trials.column("trial_id").to_pylist())
    with_history = set(trials.filter(pc.invert(no_history)).column("trial_id").to_pylist())
    if measured:
        sharp = store.read_part("sharpness", name, ["trial_id"]).column("trial_id")
        if not set(pc.unique(sharp).to_pylist()) <= listed:
            return False
    return with_history <= set(pc.unique(history).to_pylist()) <= listed


def _as_state(problem: str) -> str:
    return "missing" if problem == "missing" else problem.split(":")[0]


def _stored_after(store: ResultsStore, dropped: list[Dropped]) -> int:
    """Trials that would stay stored once ``dropped`` is gone (for a dry run)."""
    gone = {item.path for item in dropped}
    kept = [
        name for name in store.parts("trials") if f"{store.directory('trials')}/{name}" not in gone
    ]
    return sum(store.read_part("trials", name, ["trial_id"]).num_rows for name in kept)


def _record(store: ResultsStore, dropped: list[Dropped]) -> None:
    """Note the repair in the manifest: what was dropped, and the counts that remain."""
    manifest = store.read_manifest()
    repairs = manifest.get("repairs", [])
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    repairs.append({"at": at, "dropped": [item.path for item in dropped]})
    store.write_manifest(
        {**manifest, "repairs": repairs, "status": "repaired", "counts": store.status_counts()}
    )


def _report(
    store: ResultsStore, dropped: list[Dropped], dry_run: bool, stored: int
) -> RepairReport:
    total = store.read_manifest().get("trials_total") if store.exists() else None
    return RepairReport(store.location, tuple(dropped), stored, total, dry_run)
