"""A result set's store: its layout, the commit of each work unit's parts, and reading them.

Layout of ``results/NAME/`` (a local directory or a URI, :mod:`gdsearch.results.files`)::

    trials/part-<id>.parquet      one row per trial
    history/part-<id>.parquet     trial_id, epoch, sse[, val_sse] (one row per trial and epoch)
    sharpness/part-<id>.parquet   trial_id, epoch, sharpness (where the job measures it)
    landscapes/part-<id>.parquet  trial_id, kind, x, y, epoch, sse (``gdsearch landscape``)
    landscape_trials/part-<id>.parquet  one row per trial whose landscape is stored
    lr_range/part-<time>-<id>.parquet   the learning-rate range tests (a job's ``[lr_range]``)
    manifest.json                 spec, version, timings, counts, cluster
    job.toml                      the job file as it was run

    .lock                         while a run writes here (:mod:`gdsearch.results.lock`)
    .lock.alive                   the OS lock its writer holds while it lives
    compaction.json               while a compaction runs (:mod:`gdsearch.results.journal`)

A finished work unit becomes one part in each dataset, all with the same name. The history and
sharpness parts are written first and the trials part last, so a trial counts as stored exactly
when its trials row exists; a partner without its trials part (a run killed in between) is
removed before the next run. A ``failed`` trial's row (it has no history rows) is dropped by
rewriting its part before the trial is trained again, so no trial is ever stored twice. Every
page of a part carries a CRC checksum, verified on every read, so a part damaged later on the
disk is named rather than read as other numbers; :mod:`gdsearch.results.repair` drops such parts.

Landscapes (:mod:`gdsearch.search.landscapes`) are drawn later, from stored trials, and commit
the same way on their own: a landscapes part first, then its ``landscape_trials`` part of the
same name, so a trial's landscape counts as stored exactly when its row there exists; a lone
landscapes part (a run killed in between) is removed before the next one. Compaction leaves
both alone: there is one part of each per work unit, not per epoch.

The range tests are one part, replaced whole: the new one is written (under a name that sorts
after the old one's) before the old one is deleted, and readers take the last, so a run killed in
between leaves the old tests or the new, never both.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gdsearch.errors import ResultsError, one_line
from gdsearch.mlp.stopping import Status
from gdsearch.results import journal
from gdsearch.results.files import TEMPORARY_PREFIX, Files
from gdsearch.results.schema import (
    HELD_OUT_HISTORY,
    HISTORY_SCHEMA,
    LANDSCAPE_SCHEMA,
    LANDSCAPE_TRIALS_SCHEMA,
    LR_RANGE_SCHEMA,
    SHARPNESS_SCHEMA,
    TRIALS_SCHEMA,
)

MANIFEST = "manifest.json"
JOB_COPY = "job.toml"
LOCK = ".lock"
ALIVE = ".lock.alive"  # the OS lock a live writer holds (gdsearch.results.lock)
KINDS = journal.KINDS
"""The datasets: ``trials``, ``history`` and ``sharpness``."""
SCHEMAS = {
    "trials": TRIALS_SCHEMA,
    "history": HELD_OUT_HISTORY,
    "sharpness": SHARPNESS_SCHEMA,
    "landscapes": LANDSCAPE_SCHEMA,
    "landscape_trials": LANDSCAPE_TRIALS_SCHEMA,
    "lr_range": LR_RANGE_SCHEMA,
}
"""Each dataset's columns; a history part holds ``val_sse`` only where its job holds data out
(see :meth:`ResultsStore.read_part`)."""
PARTNERS = journal.PARTNERS
"""The datasets whose parts belong to the trials part of the same name (sharpness only where
the job measures it)."""
LANDSCAPE_KINDS = ("landscapes", "landscape_trials")
"""The landscape datasets: the grids, and the row per trial that commits them."""


class ResultsStore(Files):
    """One result set's location, written by a single driver."""

    def __init__(self, location: str | Path) -> None:
        super().__init__(location)
        self.trials_dir = f"{self.root}/trials"
        self.history_dir = f"{self.root}/history"
        self.sharpness_dir = f"{self.root}/sharpness"
        self.landscapes_dir = f"{self.root}/landscapes"
        self.landscape_trials_dir = f"{self.root}/landscape_trials"
        self.lr_range_dir = f"{self.root}/lr_range"

    def has_trials_dir(self) -> bool:
        """Whether the layout exists here (``trials/`` at least)."""
        return self.info(self.trials_dir).type != pafs.FileType.NotFound

    def exists(self) -> bool:
        """Whether anything has been stored here."""
        return self.info(f"{self.root}/{MANIFEST}").type != pafs.FileType.NotFound

    def prepare(self, job_text: str) -> None:
        """Create the layout, drop leftovers of an interrupted run or compaction, and save the
        job file."""
        for directory in (self.trials_dir, self.history_dir):
            self.fs.create_dir(directory, recursive=True)
        journal.settle(self)
        committed = {name for name in self.part_names(self.trials_dir)}
        for kind in KINDS:
            for info in self.listing(self.directory(kind)):
                if info.base_name.startswith(TEMPORARY_PREFIX):
                    self.fs.delete_file(info.path)
        for kind in PARTNERS:
            for name in self.parts(kind):
                if name not in committed:
                    self.fs.delete_file(f"{self.directory(kind)}/{name}")
        self.write_bytes(f"{self.root}/{JOB_COPY}", job_text.encode())

    def remove(self) -> None:
        """Delete everything stored here (``--fresh``) but the lock of the run doing it."""
        for info in self.listing(self.root):
            if info.base_name in (LOCK, ALIVE):
                continue
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(info.path)
            else:
                self.fs.delete_file(info.path)

    def stored_trial_ids(self) -> set[str]:
        """The trial_ids whose trials row is committed."""
        table = self.read_table("trials", columns=["trial_id"])
        return set(table.column("trial_id").to_pylist())

    def trial_statuses(self) -> dict[str, str]:
        """Each stored trial's status, by trial_id."""
        table = self.read_table("trials", ["trial_id", "status"])
        ids, statuses = table.column("trial_id").to_pylist(), table.column("status").to_pylist()
        return dict(zip(ids, statuses, strict=True))

    def status_counts(self) -> dict[str, int]:
        """How many stored trials have each status."""
        statuses = self.read_table("trials", columns=["status"]).column("status")
        return {row["values"]: row["counts"] for row in pc.value_counts(statuses).to_pylist()}

    def write_part(
        self, trials: pa.Table, history: pa.Table, sharpness: pa.Table | None = None
    ) -> str:
        """Commit one work unit's tables: history and sharpness (where the job measures it,
        even if empty) first, trials last. Returns the part name."""
        name = f"part-{uuid.uuid4().hex}.parquet"
        held_out = "val_sse" in history.column_names
        history = history.cast(HELD_OUT_HISTORY if held_out else HISTORY_SCHEMA)
        self.write_table(history, f"{self.history_dir}/{name}")
        if sharpness is not None:
            if self.local:
                self.fs.create_dir(self.sharpness_dir, recursive=True)
            self.write_table(sharpness.cast(SHARPNESS_SCHEMA), f"{self.sharpness_dir}/{name}")
        self.write_table(trials.cast(TRIALS_SCHEMA), f"{self.trials_dir}/{name}")
        return name

    def write_landscapes(self, grids: pa.Table, index: pa.Table) -> str:
        """Commit one work unit's landscapes: the grids first, the row per trial last. Returns
        the part name."""
        name = f"part-{uuid.uuid4().hex}.parquet"
        for directory in (self.landscapes_dir, self.landscape_trials_dir):
            if self.local:
                self.fs.create_dir(directory, recursive=True)
        self.write_table(grids.cast(LANDSCAPE_SCHEMA), f"{self.landscapes_dir}/{name}")
        trials_path = f"{self.landscape_trials_dir}/{name}"
        self.write_table(index.cast(LANDSCAPE_TRIALS_SCHEMA), trials_path)
        return name

    def write_lr_range(self, table: pa.Table) -> str:
        """Replace the range tests with ``table``: written first, the older parts deleted
        after. Returns the part name."""
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex}.parquet"
        if self.local:
            self.fs.create_dir(self.lr_range_dir, recursive=True)
        self.write_table(table.cast(LR_RANGE_SCHEMA), f"{self.lr_range_dir}/{name}")
        for old in self.parts("lr_range"):
            if old != name:
                self.delete(f"{self.lr_range_dir}/{old}")
        return name

    def settle_landscapes(self) -> None:
        """Remove what an interrupted landscape run left: files under a temporary name, and
        landscapes parts whose ``landscape_trials`` part was never written."""
        for kind in LANDSCAPE_KINDS:
            for info in self.listing(self.directory(kind)):
                if info.base_name.startswith(TEMPORARY_PREFIX):
                    self.fs.delete_file(info.path)
        committed = set(self.parts("landscape_trials"))
        for name in self.parts("landscapes"):
            if name not in committed:
                self.fs.delete_file(f"{self.landscapes_dir}/{name}")

    def remove_landscapes(self) -> None:
        """Delete every stored landscape (``gdsearch landscape --fresh``), each row per trial
        before its grids, so that a crash in between leaves only lone grids, removed later."""
        for kind in ("landscape_trials", "landscapes"):
            for name in self.parts(kind):
                self.fs.delete_file(f"{self.directory(kind)}/{name}")

    def drop_failed(self, trial_ids: set[str]) -> int:
        """Remove the ``failed`` rows of these trials, so that they count as not stored.

        Each trials part holding such rows is replaced whole (atomically) by one without them,
        or removed with its history partner if nothing is left; failed trials have no history
        rows. A crash in between leaves each part either old or new, so no trial is ever
        stored twice. Returns how many rows were dropped.
        """
        wanted = pa.array(sorted(trial_ids), pa.string())

        def retry(table: pa.Table) -> pa.ChunkedArray:
            return pc.and_(
                pc.equal(table.column("status"), Status.FAILED.value),
                pc.is_in(table.column("trial_id"), value_set=wanted),
            )

        dropped = 0
        for name in self.part_names(self.trials_dir):
            path = f"{self.trials_dir}/{name}"
            n_retry = pc.sum(retry(self.read_checked("trials", name, ["trial_id", "status"])))
            if not n_retry.as_py():
                continue
            table = self.read_checked("trials", name)
            kept = table.filter(pc.invert(retry(table)))
            if kept.num_rows:
                self.write_table(kept, path)
            else:  # trials first: a lone partner is an interrupted write, removed later
                self.fs.delete_file(path)
                for kind in PARTNERS:
                    self.delete(f"{self.directory(kind)}/{name}")
            dropped += table.num_rows - kept.num_rows
        return dropped

    def read_table(self, kind: str, columns: list[str] | None = None) -> pa.Table:
        """All committed parts of a dataset (``trials``, ``history``, ``sharpness``) as one table.

        Raises:
            ResultsError: a part cannot be read whole; the message names it and the remedy.
        """
        schema = HISTORY_SCHEMA if kind == "history" else SCHEMAS[kind]
        tables = self.read_parts(kind, self.committed(kind), columns)
        if not tables:
            return schema.empty_table().select(columns or schema.names)
        return pa.concat_tables(tables)

    def history_columns(self, names: Sequence[str]) -> tuple[str, ...]:
        """The columns the history parts ``names`` hold (a result set's all hold the same),
        from the first one's footer: ``HISTORY_SCHEMA``'s, and ``val_sse`` where data is held
        out. A part that cannot be read is named, as :meth:`read_part`'s callers name it."""
        if not names:
            return tuple(HISTORY_SCHEMA.names)
        try:
            with self.fs.open_input_file(f"{self.history_dir}/{names[0]}") as source:
                stored = set(pq.read_schema(source).names)
        except (OSError, pa.ArrowException) as exc:
            raise ResultsError(
                f"{self.history_dir}/{names[0]}: not a readable Parquet part "
                f"({one_line(exc)}); `gdsearch repair {self.location}` drops it and its "
                "partner so that the next run trains their trials again"
            ) from None
        return tuple(n for n in HELD_OUT_HISTORY.names if n in stored)

    def directory(self, kind: str) -> str:
        """The directory of ``trials``, ``history`` or ``sharpness`` parts."""
        return {
            "trials": self.trials_dir,
            "history": self.history_dir,
            "sharpness": self.sharpness_dir,
            "landscapes": self.landscapes_dir,
            "landscape_trials": self.landscape_trials_dir,
            "lr_range": self.lr_range_dir,
        }[kind]

    def parts(self, kind: str) -> list[str]:
        """The names of the parts of a dataset, sorted: every file, committed or not."""
        return self.part_names(self.directory(kind))

    def committed(self, kind: str) -> list[str]:
        """The parts of a dataset that readers see, sorted: trials parts (but those a finished
        compaction replaced and has not deleted yet), and the partners of those alone (not a
        partner left by a write that did not finish, nor one a compaction is writing)."""
        if kind in LANDSCAPE_KINDS:
            return sorted(set(self.parts(kind)) & set(self.parts("landscape_trials")))
        if kind == "lr_range":
            return self.parts(kind)[-1:]  # the last written
        trials = set(self.part_names(self.trials_dir)) - journal.replaced(self)
        if kind == "trials":
            return sorted(trials)
        return sorted(set(self.parts(kind)) & trials)

    def drop_parts(self, names: list[str]) -> None:
        """Delete parts, each trials part before its partners."""
        for kind in ("trials", *PARTNERS):
            for name in names:
                self.delete(f"{self.directory(kind)}/{name}")

    def read_part(
        self,
        kind: str,
        name: str,
        columns: Sequence[str] | None = None,
        dictionary: Sequence[str] = (),
    ) -> pa.Table:
        """One part in its dataset's schema, every page checked against its checksum (if it
        was written with one). A column the part lacks (written before the column existed)
        comes back null; ``dictionary`` names string columns to keep dictionary-encoded, as
        Parquet stores them."""
        every = tuple(SCHEMAS[kind].names)
        wanted = tuple(columns) if columns is not None else every
        with self.fs.open_input_file(f"{self.directory(kind)}/{name}") as source:
            part = pq.ParquetFile(
                source, read_dictionary=list(dictionary), page_checksum_verification=True
            )
            if columns is None and kind == "history":  # val_sse only where it was measured
                every = wanted = tuple(n for n in every if n in part.schema_arrow.names)
            if wanted == every:
                table = part.read(use_threads=False)
            else:
                stored = set(part.schema_arrow.names)
                table = part.read([c for c in wanted if c in stored], use_threads=False)
        schema = _part_schema(kind, wanted, tuple(dictionary))
        if tuple(table.schema.names) != wanted:  # a part written before a column existed, or after
            present = set(table.schema.names)
            for field in (f for f in schema if f.name not in present):
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
            table = table.select(wanted)
        return table if table.schema.equals(schema) else table.cast(schema)

    def read_parts(
        self,
        kind: str,
        names: Sequence[str],
        columns: Sequence[str] | None = None,
        dictionary: Sequence[str] = (),
    ) -> list[pa.Table]:
        """Several parts (:meth:`read_part`), read side by side (:meth:`submit_parts`).

        Raises:
            ResultsError: a part cannot be read whole (the first such in ``names``, named).
        """
        return [part.result() for part in self.submit_parts(kind, names, columns, dictionary)]

    def submit_parts(
        self,
        kind: str,
        names: Sequence[str],
        columns: Sequence[str] | None = None,
        dictionary: Sequence[str] = (),
    ) -> list[Future[pa.Table]]:
        """Start reading parts (:meth:`read_part`, each named in a ResultsError if it cannot be
        read) on a pool of as many threads as pyarrow has for I/O: a reader lets go of the GIL,
        so parts are decoded on every core, and an object store's requests overlap."""
        return [
            _readers().submit(self.read_checked, kind, name, columns, dictionary) for name in names
        ]

    def read_filtered(self, kind: str, where: pc.Expression) -> pa.Table:
        """The committed rows of a dataset that match ``where``, one part at a
        time, so that only the matching rows are ever held together."""
        schema = SCHEMAS[kind]
        tables = [self.read_checked(kind, name).filter(where) for name in self.committed(kind)]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def read_checked(
        self,
        kind: str,
        name: str,
        columns: Sequence[str] | None = None,
        dictionary: Sequence[str] = (),
    ) -> pa.Table:
        """:meth:`read_part`, with a part that cannot be read named in a ResultsError."""
        try:
            return self.read_part(kind, name, columns, dictionary)
        except (OSError, pa.ArrowException) as exc:
            raise ResultsError(
                f"{self.directory(kind)}/{name}: not a readable Parquet part "
                f"({one_line(exc)}); `gdsearch repair {self.location}` drops it and its "
                "partner so that the next run trains their trials again"
            ) from None

    def temporary_files(self) -> list[str]:
        """Paths of files a writer left under a temporary name (it died before committing)."""
        return [
            info.path
            for kind in KINDS
            for info in self.listing(self.directory(kind))
            if info.base_name.startswith(TEMPORARY_PREFIX)
        ]

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, or {} if there is none yet."""
        path = f"{self.root}/{MANIFEST}"
        if self.info(path).type == pafs.FileType.NotFound:
            return {}
        try:
            with self.fs.open_input_stream(path) as stream:
                result: dict[str, Any] = json.loads(stream.read())
            return result
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{path}: cannot be read: {exc}") from None

    def read_job_copy(self) -> str:
        """The job file as it was run (saved by :meth:`prepare`), or "" if there is none or it
        cannot be read (the tables do not depend on it)."""
        path = f"{self.root}/{JOB_COPY}"
        try:
            if self.info(path).type == pafs.FileType.NotFound:
                return ""
            with self.fs.open_input_stream(path) as stream:
                return bytes(stream.read()).decode("utf-8")
        except (OSError, ResultsError, UnicodeDecodeError):
            return ""

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest atomically."""
        text = json.dumps(manifest, indent=2, default=str)
        self.write_bytes(f"{self.root}/{MANIFEST}", text.encode())


@functools.cache
def _part_schema(kind: str, columns: tuple[str, ...], dictionary: tuple[str, ...]) -> pa.Schema:
    """The schema :meth:`ResultsStore.read_part` returns: these columns of the dataset's,
    those in ``dictionary`` dictionary-encoded as Parquet stores them."""
    fields = [SCHEMAS[kind].field(column) for column in columns]
    return pa.schema(
        f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in dictionary else f
        for f in fields
    )


@functools.cache
def _readers() -> ThreadPoolExecutor:
    """The threads that read parts, started once: starting them costs more than a read."""
    return ThreadPoolExecutor(pa.io_thread_count(), thread_name_prefix="gdsearch-read")


os.register_at_fork(after_in_child=_readers.cache_clear)  # a child has none of those threads
