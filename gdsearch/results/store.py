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
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gdsearch.errors import InputError, ResultsError, RunError, one_line
from gdsearch.job.spec import JobSpec, parse_job
from gdsearch.job.trial import initial_params
from gdsearch.model.network import Params
from gdsearch.model.ranking import TIE_TOLERANCE
from gdsearch.results import summary
from gdsearch.results.schema import (
    HISTORY_SCHEMA,
    SHARPNESS_SCHEMA,
    TRIALS_SCHEMA,
    fill_implied,
)

MANIFEST = "manifest.json"
JOB_COPY = "job.toml"
LOCK = ".lock"
ALIVE = ".lock.alive"  # the OS lock a live writer holds (gdsearch.results.lock)
TEMPORARY_PREFIX = ".tmp-"
KINDS = ("trials", "history", "sharpness")
SCHEMAS = {"trials": TRIALS_SCHEMA, "history": HISTORY_SCHEMA, "sharpness": SHARPNESS_SCHEMA}
PARTNERS = ("history", "sharpness")
"""The datasets whose parts belong to the trials part of the same name (sharpness only where
the job measures it)."""


@dataclass
class Results:
    """A loaded result set.

    Attributes:
        trials: one row per trial (see ``gdsearch.results.schema.TRIALS_SCHEMA``).
        history: one row per trial and epoch: trial_id, epoch, sse.
        manifest: the run's manifest.json.
        path: where it was loaded from.
        job_source: the job file as it was run (the copy stored beside the results), or "".
        sharpness: one row per measurement where the job set ``sharpness_every``: trial_id,
            epoch, sharpness (the top Hessian eigenvalue of the loss at that epoch's weights);
            empty otherwise.
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
        they came from; None if the job copy is missing or its data cannot be loaded here."""
        source = self.job_source or (ResultsStore(self.path).read_job_copy() if self.path else "")
        if not source:
            return None
        try:
            spec = parse_job(source, self.manifest.get("job_file") or JOB_COPY)
            X, Y = spec.load_data()
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
        return summary.best(self, by, per, tolerance)

    def _repr_html_(self) -> str:
        """What a notebook shows: the job, trials by status, epochs, the best rates, where."""
        return summary.summary_html(self)

    def __repr__(self) -> str:
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
        """Create the layout, drop leftovers of an interrupted run, and save the job file."""
        for directory in (self.trials_dir, self.history_dir):
            self.fs.create_dir(directory, recursive=True)
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
        self._write_table(history.cast(HISTORY_SCHEMA), f"{self.history_dir}/{name}")
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
        schema = SCHEMAS[kind]
        tables = [self._read_checked(kind, name, columns) for name in self.parts(kind)]
        if not tables:
            return schema.empty_table().select(columns or schema.names)
        return pa.concat_tables(tables)

    def directory(self, kind: str) -> str:
        """The directory of ``trials``, ``history`` or ``sharpness`` parts."""
        return {"trials": self.trials_dir, "history": self.history_dir,
                "sharpness": self.sharpness_dir}[kind]  # fmt: skip

    def parts(self, kind: str) -> list[str]:
        """The names of the parts of a dataset, sorted."""
        return self._parts(self.directory(kind))

    def read_part(self, kind: str, name: str, columns: list[str] | None = None) -> pa.Table:
        """One part, every page checked against its checksum (if it was written with one)."""
        return pq.read_table(
            f"{self.directory(kind)}/{name}",
            columns=columns,
            schema=SCHEMAS[kind],
            filesystem=self.fs,
            page_checksum_verification=True,
        )

    def read_filtered(self, kind: str, where: pc.Expression) -> pa.Table:
        """The committed rows of a dataset that match ``where``, one part at a
        time, so that only the matching rows are ever held together."""
        schema = SCHEMAS[kind]
        tables = [self._read_checked(kind, name).filter(where) for name in self.parts(kind)]
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def _read_checked(self, kind: str, name: str, columns: list[str] | None = None) -> pa.Table:
        """:meth:`read_part`, with a part that cannot be read named in a ResultsError."""
        try:
            return self.read_part(kind, name, columns)
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

    def _write_table(self, table: pa.Table, path: str) -> None:
        self._write(path, lambda stream: pq.write_table(table, stream, write_page_checksum=True))

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


def load_results(location: str | Path) -> Results:
    """Load a result set written by ``gdsearch run``.

    Args:
        location: the results directory (``"results/seed-sine"``) or URI
            (``"s3://bucket/prefix/seed-sine"``).

    Returns:
        :class:`Results` with ``.trials``, ``.history`` and ``.sharpness`` DataFrames, the
        manifest and the job file as it was run.
    """
    store = ResultsStore(location)
    if not store.has_trials_dir():
        raise ResultsError(f"{store.location}: no results here (no trials/ directory)")
    trials = fill_implied(store.read_table("trials"))
    ids = trials.column("trial_id")
    history, sharpness = (
        table.filter(pc.is_in(table.column("trial_id"), value_set=ids))  # committed rows only
        .to_pandas()
        .sort_values(["trial_id", "epoch"], ignore_index=True)
        for table in (store.read_table("history"), store.read_table("sharpness"))
    )
    return Results(
        trials=trials.to_pandas().sort_values("trial_id", ignore_index=True),
        history=history,
        manifest=store.read_manifest(),
        path=store.location,
        job_source=store.read_job_copy(),
        sharpness=sharpness,
    )
