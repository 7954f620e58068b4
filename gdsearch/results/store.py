"""Results: Parquet datasets of trials and history, written part by part, atomically.

A results location is a local directory or any pyarrow filesystem URI (``s3://bucket/prefix``,
with credentials and endpoint from the standard AWS environment variables). Layout of
``results/NAME/``::

    trials/part-<id>.parquet    one row per trial
    history/part-<id>.parquet   trial_id, epoch, sse (one row per trial and epoch)
    manifest.json               spec, version, timings, counts, cluster
    job.toml                    the job file as it was run

    .lock                       while a run writes here (``gdsearch.results.lock``)
    .lock.alive                 the OS lock its writer holds while it lives

A finished work unit becomes one history part and one trials part with the same name. The
history part is written first and the trials part last, so a trial counts as stored exactly
when its trials row exists; a history part without its partner (a run killed in between) is
removed before the next run. A ``failed`` trial's row (it has no history rows) is dropped by
rewriting its part before the trial is trained again, so no trial is ever stored twice. On a
local disk each file is written under a hidden temporary name, flushed and renamed (Parquet
readers skip names that start with "." or "_"); on an object store each file is one put, which
becomes visible whole or not at all. Every page of a part carries a CRC checksum, which
``load_results`` verifies, so a part damaged later on the disk is named on load rather than
read as other numbers; ``gdsearch.results.repair`` drops such parts.

``load_results`` reads a unit's history and sharpness parts only if its trials part holds a
trial it was asked for, and reads parts side by side on a pool of threads; it orders their rows
with ``gdsearch.results.ordering`` and checks its selection with ``gdsearch.results.query``.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gdsearch.errors import InputError, ResultsError, RunError, one_line
from gdsearch.job.spec import JobSpec, parse_job
from gdsearch.job.trial import initial_params
from gdsearch.model.network import Params
from gdsearch.model.ranking import TIE_TOLERANCE
from gdsearch.results.ordering import in_order

if TYPE_CHECKING:  # pandas loads when results are read, not while a run writes them
    import pandas as pd
from gdsearch.results.query import Filters, Query
from gdsearch.results.schema import (
    HELD_OUT_HISTORY,
    HISTORY_SCHEMA,
    SHARPNESS_SCHEMA,
    TRIALS_SCHEMA,
    fill_implied,
)

MANIFEST = "manifest.json"
JOB_COPY = "job.toml"
COMPACTION = "compaction.json"
"""The journal of a compaction under way: the part it writes and the parts that part replaces."""
COMPACTION_FAULT = "GDSEARCH_FAULT_COMPACTION_STEP"
"""Fault injection for tests: the process exits (as if killed) right after this step of a
compaction (1: journal written, 2: history written, 3: trials written, 4: old parts deleted)."""
LOCK = ".lock"
ALIVE = ".lock.alive"  # the OS lock a live writer holds (gdsearch.results.lock)
TEMPORARY_PREFIX = ".tmp-"
KINDS = ("trials", "history", "sharpness")
SCHEMAS = {"trials": TRIALS_SCHEMA, "history": HELD_OUT_HISTORY, "sharpness": SHARPNESS_SCHEMA}
"""Each dataset's columns; a history part holds ``val_sse`` only where its job holds data out
(see :meth:`ResultsStore.read_part`)."""
PARTNERS = ("history", "sharpness")
"""The datasets whose parts belong to the trials part of the same name (sharpness only where
the job measures it)."""


@dataclass
class Results:
    """A loaded result set, or the part of it :func:`load_results` was asked for.

    Attributes:
        trials: one row per trial (see ``gdsearch.results.schema.TRIALS_SCHEMA``), sorted by
            trial_id.
        history: one row per trial and epoch: trial_id, epoch, sse; sorted by trial_id, then
            epoch.
        manifest: the run's manifest.json.
        path: where it was loaded from.
        job_source: the job file as it was run (the copy stored beside the results), or "".
        sharpness: one row per measurement where the job set ``sharpness_every``: trial_id,
            epoch, sharpness (the top Hessian eigenvalue of the loss at that epoch's weights);
            empty otherwise. Sorted as the history.
    """

    trials: pd.DataFrame
    history: pd.DataFrame
    manifest: dict[str, Any]
    path: str
    job_source: str = ""
    sharpness: pd.DataFrame = field(
        default_factory=lambda: SHARPNESS_SCHEMA.empty_table().to_pandas()
    )

    def job_and_data(self) -> tuple[JobSpec, np.ndarray, np.ndarray] | None:
        """The job these results were run from and its data, loaded from where the job says
        they came from (the samples trained on, where the job held some out); None if the job
        copy is missing or its data cannot be loaded here."""
        source = self.job_source or (ResultsStore(self.path).read_job_copy() if self.path else "")
        if not source:
            return None
        try:
            spec = parse_job(source, self.manifest.get("job_file") or JOB_COPY)
            X, Y, _ = spec.held_out(*spec.load_data())
        except InputError:
            return None
        return spec, X, Y

    def initial_params(self, trial_id: str) -> Params:
        """A stored trial's starting weights, so that anyone can train it again by hand.

        They depend only on the job seed, the init scheme and scale, the layer sizes and the
        replicate seed (DESIGN.md), all of which the result set records::

            params = res.initial_params(trial_id)
            history, _ = gdsearch.mlp.train(params, X, Y, lr=row.lr, epochs=row.epochs, ...)

        Returns:
            (W, b) pairs, W of shape (fan_in, fan_out), b of shape (fan_out,).

        Raises:
            ResultsError: no such trial, or a manifest without the data's shape.
        """
        rows = self.trials[self.trials["trial_id"] == trial_id]
        shape = self.manifest.get("data_shape") or {}
        job_seed = (self.manifest.get("compat") or {}).get("job_seed")
        if rows.empty:
            raise ResultsError(f"{self.path}: no trial {trial_id!r} stored")
        if "n_inputs" not in shape or job_seed is None:
            raise ResultsError(f"{self.path}: manifest.json lacks the data's shape or job seed")
        import pandas as pd  # loaded already: the trials are a DataFrame

        row = rows.iloc[0]
        hidden = tuple(int(width) for width in row["hidden"].split("-") if width)
        scale = None if pd.isna(row["init_scale"]) else float(row["init_scale"])
        return initial_params(int(job_seed), row["init"], hidden, int(row["seed"]), scale,
                              int(shape["n_inputs"]), int(shape["n_outputs"]))  # fmt: skip

    def best(
        self, by: str = "final_sse", per: str = "group", tolerance: float = TIE_TOLERANCE
    ) -> pd.DataFrame:
        """The best learning rate of each comparison group, ties said as ties::

            res.best()                        # by median final SSE over seeds, per group
            res.best("epochs_to_tolerance")   # the fastest to within 5% of the group's best
            res.best(per="seed")              # per group and replicate seed

        Rates whose values lie within ``tolerance`` of the lowest, relative to it, tie: then
        ``lr`` is NaN, ``tie`` True and ``best_lrs`` holds them all. See
        :func:`gdsearch.results.summary.best` for the columns.
        """
        from gdsearch.results import summary  # the analysis, with pandas: when asked for

        return summary.best(self, by, per, tolerance)

    def _repr_html_(self) -> str:
        """What a notebook shows: the job, trials by status, epochs, the best rates, where."""
        from gdsearch.results import summary

        return summary.summary_html(self)

    def __repr__(self) -> str:
        from gdsearch.results import summary

        return summary.summary_line(self)


def is_uri(location: str) -> bool:
    """Whether a results location names a filesystem by scheme (``s3://…``), not a local path."""
    return "://" in location and not location.startswith("file://")


def join(location: str, name: str) -> str:
    """``location/name`` for a local path or a URI."""
    return f"{location.rstrip('/')}/{name}" if is_uri(location) else str(Path(location) / name)


class ResultsStore:
    """One result set's location, written by a single driver."""

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        try:
            if is_uri(self.location):
                self.fs, root = pafs.FileSystem.from_uri(self.location)
            else:
                self.fs, root = pafs.LocalFileSystem(), str(Path(self.location).resolve())
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ResultsError(f"results location {self.location!r}: {exc}") from None
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.root = root.rstrip("/")
        self.trials_dir = f"{self.root}/trials"
        self.history_dir = f"{self.root}/history"
        self.sharpness_dir = f"{self.root}/sharpness"

    def has_trials_dir(self) -> bool:
        """Whether the layout exists here (``trials/`` at least)."""
        return self._info(self.trials_dir).type != pafs.FileType.NotFound

    def exists(self) -> bool:
        """Whether anything has been stored here."""
        return self._info(f"{self.root}/{MANIFEST}").type != pafs.FileType.NotFound

    def prepare(self, job_text: str) -> None:
        """Create the layout, drop leftovers of an interrupted run or compaction, and save the
        job file."""
        for directory in (self.trials_dir, self.history_dir):
            self.fs.create_dir(directory, recursive=True)
        self.settle_compaction()
        committed = {name for name in self._parts(self.trials_dir)}
        for kind in KINDS:
            for info in self._listing(self.directory(kind)):
                if info.base_name.startswith(TEMPORARY_PREFIX):
                    self.fs.delete_file(info.path)
        for kind in PARTNERS:
            for name in self.parts(kind):
                if name not in committed:
                    self.fs.delete_file(f"{self.directory(kind)}/{name}")
        self._write_bytes(f"{self.root}/{JOB_COPY}", job_text.encode())

    def remove(self) -> None:
        """Delete everything stored here (``--fresh``) but the lock of the run doing it."""
        for info in self._listing(self.root):
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
        self._write_table(history, f"{self.history_dir}/{name}")
        if sharpness is not None:
            if self.local:
                self.fs.create_dir(self.sharpness_dir, recursive=True)
            self._write_table(sharpness.cast(SHARPNESS_SCHEMA), f"{self.sharpness_dir}/{name}")
        self._write_table(trials.cast(TRIALS_SCHEMA), f"{self.trials_dir}/{name}")
        return name

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
                pc.equal(table.column("status"), "failed"),
                pc.is_in(table.column("trial_id"), value_set=wanted),
            )

        dropped = 0
        for name in self._parts(self.trials_dir):
            path = f"{self.trials_dir}/{name}"
            n_retry = pc.sum(retry(self._read_checked("trials", name, ["trial_id", "status"])))
            if not n_retry.as_py():
                continue
            table = self._read_checked("trials", name)
            kept = table.filter(pc.invert(retry(table)))
            if kept.num_rows:
                self._write_table(kept, path)
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
        return {"trials": self.trials_dir, "history": self.history_dir,
                "sharpness": self.sharpness_dir}[kind]  # fmt: skip

    def parts(self, kind: str) -> list[str]:
        """The names of the parts of a dataset, sorted: every file, committed or not."""
        return self._parts(self.directory(kind))

    def committed(self, kind: str) -> list[str]:
        """The parts of a dataset that readers see, sorted: trials parts (but those a finished
        compaction replaced and has not deleted yet), and the partners of those alone (not a
        partner left by a write that did not finish, nor one a compaction is writing)."""
        trials = set(self._parts(self.trials_dir)) - self._replaced()
        if kind == "trials":
            return sorted(trials)
        return sorted(set(self.parts(kind)) & trials)

    # --- compaction: many parts into one, safe against a kill at any point ------------------

    def _journal(self) -> dict[str, Any] | None:
        path = f"{self.root}/{COMPACTION}"
        if self._info(path).type == pafs.FileType.NotFound:
            return None
        try:
            with self.fs.open_input_stream(path) as stream:
                journal: dict[str, Any] = json.loads(stream.read())
        except (OSError, ValueError) as exc:
            raise ResultsError(
                f"{path}: cannot be read ({one_line(exc)}); `gdsearch repair "
                f"{self.location}` settles the compaction it journals"
            ) from None
        return journal

    def _replaced(self) -> set[str]:
        """The parts a compaction replaced: its journal names them, and its part is committed."""
        journal = self._journal()
        if journal and self._info(f"{self.trials_dir}/{journal['new']}").type == (
            pafs.FileType.File
        ):
            return set(journal["old"])
        return set()

    def compact(self, names: list[str], row_group_rows: int) -> str:
        """Replace the committed parts ``names`` by one part holding all their rows, sorted by
        trial and epoch, in row groups of ``row_group_rows``; returns its name.

        Journal first (the new part and the parts it replaces), then the new part's history
        and sharpness, then its trials (the commit: from here readers see it instead of the
        old ones), then the old parts, trials first, then the journal. A kill at any point
        leaves either the old parts or the new one visible, never both, and
        :meth:`settle_compaction` (at the next run, compaction or repair) finishes or undoes it.
        """
        new = f"part-{uuid.uuid4().hex}.parquet"
        present = {kind: set(self.parts(kind)) for kind in KINDS}
        tables = {kind: [self._read_checked(kind, n) for n in names if n in present[kind]]
                  for kind in KINDS}  # fmt: skip
        self._write_bytes(
            f"{self.root}/{COMPACTION}", json.dumps({"new": new, "old": names}).encode()
        )
        _fault(1)
        for kind in PARTNERS:
            if tables[kind]:
                order = [("trial_id", "ascending"), ("epoch", "ascending")]
                merged = pa.concat_tables(tables[kind]).sort_by(order)
                self._write_table(merged, f"{self.directory(kind)}/{new}", row_group_rows)
        _fault(2)
        trials = pa.concat_tables(tables["trials"]).sort_by("trial_id")
        self._write_table(trials, f"{self.trials_dir}/{new}", row_group_rows)
        _fault(3)
        self._drop_parts(names)
        _fault(4)
        self.delete(f"{self.root}/{COMPACTION}")
        return new

    def settle_compaction(self) -> list[tuple[str, str]]:
        """Finish a compaction that was killed after its part was committed, or undo one killed
        before; returns each file deleted and why."""
        journal = self._journal()
        if journal is None:
            return []
        new, old = journal["new"], list(journal["old"])
        done: list[tuple[str, str]] = []
        if self._info(f"{self.trials_dir}/{new}").type == pafs.FileType.File:
            reason = f"replaced by the compacted part {new}"
            present = {kind: set(self.parts(kind)) for kind in KINDS}
            done = [(f"{self.directory(k)}/{n}", reason) for k in KINDS for n in old
                    if n in present[k]]  # fmt: skip
            self._drop_parts(old)
        else:
            reason = "written by a compaction that did not finish"
            for kind in PARTNERS:
                path = f"{self.directory(kind)}/{new}"
                if self._info(path).type != pafs.FileType.NotFound:
                    done.append((path, reason))
                    self.delete(path)
        finished = "finished" if reason.startswith("replaced") else "did not finish"
        done.append((f"{self.root}/{COMPACTION}", f"the journal of a compaction that {finished}"))
        self.delete(f"{self.root}/{COMPACTION}")
        return done

    def _drop_parts(self, names: list[str]) -> None:
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
            _readers().submit(self._read_checked, kind, name, columns, dictionary)
            for name in names
        ]

    def read_filtered(self, kind: str, where: pc.Expression) -> pa.Table:
        """The committed rows of a dataset that match ``where``, one part at a
        time, so that only the matching rows are ever held together."""
        schema = SCHEMAS[kind]
        tables = [self._read_checked(kind, name).filter(where) for name in self.committed(kind)]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def _read_checked(
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
            for info in self._listing(self.directory(kind))
            if info.base_name.startswith(TEMPORARY_PREFIX)
        ]

    def delete(self, path: str) -> None:
        """Delete one file of this result set, if it is still there."""
        if self._info(path).type != pafs.FileType.NotFound:
            self.fs.delete_file(path)

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, or {} if there is none yet."""
        path = f"{self.root}/{MANIFEST}"
        if self._info(path).type == pafs.FileType.NotFound:
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
            if self._info(path).type == pafs.FileType.NotFound:
                return ""
            with self.fs.open_input_stream(path) as stream:
                return bytes(stream.read()).decode("utf-8")
        except (OSError, ResultsError, UnicodeDecodeError):
            return ""

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest atomically."""
        text = json.dumps(manifest, indent=2, default=str)
        self._write_bytes(f"{self.root}/{MANIFEST}", text.encode())

    # --- file primitives: atomic on a local disk by rename, on an object store by one put ----

    def _info(self, path: str) -> pafs.FileInfo:
        try:
            return self.fs.get_file_info(path)
        except (OSError, pa.ArrowException) as exc:
            raise ResultsError(f"results location {self.location!r}: {exc}") from None

    def _listing(self, directory: str) -> list[pafs.FileInfo]:
        if self._info(directory).type == pafs.FileType.NotFound:
            return []
        return self.fs.get_file_info(pafs.FileSelector(directory))

    def _parts(self, directory: str) -> list[str]:
        names = (info.base_name for info in self._listing(directory))
        return sorted(n for n in names if n.startswith("part-") and n.endswith(".parquet"))

    def _write_bytes(self, path: str, data: bytes) -> None:
        self._write(path, lambda stream: stream.write(data))

    def _write_table(self, table: pa.Table, path: str, row_group_rows: int | None = None) -> None:
        def fill(stream: Any) -> None:
            pq.write_table(table, stream, write_page_checksum=True, row_group_size=row_group_rows)

        self._write(path, fill)

    def _write(self, path: str, fill: Callable[[Any], object]) -> None:
        """Write one file whole or not at all; a failure (a full disk, say) is a RunError
        naming the file, and leaves no temporary file behind."""
        tmp = _temporary(path) if self.local else ""
        try:
            if not self.local:
                with self.fs.open_output_stream(path) as stream:
                    fill(stream)
                return
            with open(tmp, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            _commit_local(tmp, path)
        except (OSError, pa.ArrowException) as exc:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            raise RunError(f"{path}: cannot be written: {one_line(exc)}") from None


def _fault(step: int) -> None:
    if os.environ.get(COMPACTION_FAULT) == str(step):
        os._exit(9)  # as a SIGKILL would leave it: no cleanup, no flush


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


def _temporary(path: str) -> str:
    head, _, name = path.rpartition("/")
    return f"{head}/{TEMPORARY_PREFIX}{uuid.uuid4().hex}-{name}"


def _commit_local(tmp: str, path: str) -> None:
    """Rename into place and flush the directory entry, so the file survives a crash whole."""
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    store = ResultsStore(location)
    if not store.has_trials_dir():
        raise ResultsError(f"{store.location}: no results here (no trials/ directory)")
    names = store.committed("trials")
    partners = {kind: store.committed(kind) for kind in PARTNERS}
    loaded: dict[str, tuple[str, ...] | None] = {
        "history": query.columns,  # None: what the parts read hold (see history_columns)
        "sharpness": tuple(SHARPNESS_SCHEMA.names),
    }
    reading = {"trials": store.submit_parts("trials", names)}
    if query.where is None:  # all of every part: read them while the trials are looked at
        loaded["history"] = query.columns or store.history_columns(partners["history"])
        reading |= {kind: store.submit_parts(kind, partners[kind], loaded[kind], ["trial_id"])
                    for kind in PARTNERS}  # fmt: skip
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
