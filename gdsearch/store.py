"""Results on disk: Parquet datasets of trials and history, written part by part, atomically.

Layout of ``results/NAME/``::

    trials/part-<id>.parquet    one row per trial
    history/part-<id>.parquet   trial_id, epoch, sse (one row per trial and epoch)
    manifest.json               spec, version, timings, counts, cluster
    job.toml                    the job file as it was run

A finished work unit becomes one history part and one trials part with the same name. The
history part is written first and the trials part last, so a trial counts as stored exactly
when its trials row exists; a history part without its partner (a run killed in between) is
removed before the next run. Each part is written under a hidden temporary name, flushed to
disk and renamed, and Parquet readers skip names that start with "." or "_".
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gdsearch.errors import ResultsError
from gdsearch.schema import HISTORY_SCHEMA, TRIALS_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
JOB_COPY = "job.toml"


@dataclass
class Results:
    """A loaded result set.

    Attributes:
        trials: one row per trial (see ``TRIALS_SCHEMA``).
        history: one row per trial and epoch: trial_id, epoch, sse.
        manifest: the run's manifest.json.
        path: where it was loaded from.
    """

    trials: pd.DataFrame
    history: pd.DataFrame
    manifest: dict[str, Any]
    path: str


class ResultsStore:
    """One results directory, written by a single driver."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.trials_dir = self.path / "trials"
        self.history_dir = self.path / "history"

    def exists(self) -> bool:
        """Whether anything has been stored here."""
        return (self.path / MANIFEST).exists()

    def prepare(self, job_text: str) -> None:
        """Create the layout, drop leftovers of an interrupted run, and save the job file."""
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        self.history_dir.mkdir(parents=True, exist_ok=True)
        committed = {p.name for p in self.trials_dir.glob("part-*.parquet")}
        for directory in (self.trials_dir, self.history_dir):
            for leftover in directory.glob(".tmp-*"):
                leftover.unlink()
        for part in self.history_dir.glob("part-*.parquet"):
            if part.name not in committed:
                part.unlink()
        _write_atomic(self.path / JOB_COPY, job_text.encode())

    def remove(self) -> None:
        """Delete everything stored here (``--fresh``)."""
        if self.path.exists():
            shutil.rmtree(self.path)

    def stored_trial_ids(self) -> set[str]:
        """The trial_ids whose trials row is committed."""
        if not any(self.trials_dir.glob("part-*.parquet")):
            return set()
        table = _read_dir(self.trials_dir, TRIALS_SCHEMA, columns=["trial_id"])
        return set(table.column("trial_id").to_pylist())

    def status_counts(self) -> dict[str, int]:
        """How many stored trials have each status."""
        if not any(self.trials_dir.glob("part-*.parquet")):
            return {}
        statuses = _read_dir(self.trials_dir, TRIALS_SCHEMA, columns=["status"]).column("status")
        counts = pc.value_counts(statuses).to_pylist()
        return {row["values"]: row["counts"] for row in counts}

    def write_part(self, trials: pa.Table, history: pa.Table) -> str:
        """Commit one work unit's tables: history first, trials last. Returns the part name."""
        name = f"part-{uuid.uuid4().hex}.parquet"
        _write_table_atomic(history.cast(HISTORY_SCHEMA), self.history_dir / name)
        _write_table_atomic(trials.cast(TRIALS_SCHEMA), self.trials_dir / name)
        return name

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, or {} if there is none yet."""
        try:
            result: dict[str, Any] = json.loads((self.path / MANIFEST).read_text())
            return result
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{self.path / MANIFEST}: cannot be read: {exc}") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest atomically."""
        text = json.dumps(manifest, indent=2, sort_keys=False, default=str)
        _write_atomic(self.path / MANIFEST, text.encode())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_table_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as handle:
        pq.write_table(table, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_dir(directory: Path, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    parts = sorted(directory.glob("part-*.parquet"))
    if not parts:
        return schema.empty_table().select(columns or schema.names)
    tables = []
    for part in parts:
        try:
            tables.append(pq.read_table(part, columns=columns, schema=schema))
        except (OSError, pa.ArrowException) as exc:
            raise ResultsError(f"{part}: not a readable Parquet part: {exc}") from None
    return pa.concat_tables(tables)


def load_results(path: str | Path) -> Results:
    """Load a result set written by ``gdsearch run``.

    Args:
        path: the results directory, e.g. ``"results/seed-sine"``.

    Returns:
        :class:`Results` with ``.trials`` and ``.history`` DataFrames and the manifest.
    """
    store = ResultsStore(path)
    if not store.trials_dir.is_dir():
        raise ResultsError(f"{store.path}: no results here (no trials/ directory)")
    trials = _read_dir(store.trials_dir, TRIALS_SCHEMA)
    history = _read_dir(store.history_dir, HISTORY_SCHEMA)
    committed = pc.is_in(history.column("trial_id"), value_set=trials.column("trial_id"))
    history = history.filter(committed)
    return Results(
        trials=trials.to_pandas().sort_values("trial_id", ignore_index=True),
        history=history.to_pandas().sort_values(["trial_id", "epoch"], ignore_index=True),
        manifest=store.read_manifest(),
        path=str(store.path),
    )
