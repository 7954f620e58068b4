"""Files of a result set on any pyarrow filesystem, each written whole or not at all.

A location is a local directory or a filesystem URI (``s3://bucket/prefix``, with credentials and
endpoint from the standard AWS environment variables). On a local disk a file is written under a
hidden temporary name (Parquet readers skip names that start with "." or "_"), flushed, renamed
into place and its directory entry flushed, so it survives a crash whole; on an object store a
file is one put, which becomes visible whole or not at all. Every Parquet page carries a CRC
checksum, which readers verify.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from gdsearch.errors import ResultsError, RunError, one_line

TEMPORARY_PREFIX = ".tmp-"
"""A file being written on a local disk is named so until it is complete."""


def is_uri(location: str) -> bool:
    """Whether a results location names a filesystem by scheme (``s3://…``), not a local path."""
    return "://" in location and not location.startswith("file://")


def join(location: str, name: str) -> str:
    """``location/name`` for a local path or a URI."""
    return f"{location.rstrip('/')}/{name}" if is_uri(location) else str(Path(location) / name)


class Files:
    """The files under one location: listed, read by path, written atomically, deleted."""

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

    def info(self, path: str) -> pafs.FileInfo:
        """What is at ``path`` (its type is ``NotFound`` if nothing)."""
        try:
            return self.fs.get_file_info(path)
        except (OSError, pa.ArrowException) as exc:
            raise ResultsError(f"results location {self.location!r}: {exc}") from None

    def found(self, path: str) -> bool:
        """Whether anything is at ``path``."""
        return self.info(path).type != pafs.FileType.NotFound

    def listing(self, directory: str) -> list[pafs.FileInfo]:
        """What ``directory`` holds (nothing if it does not exist)."""
        if not self.found(directory):
            return []
        return self.fs.get_file_info(pafs.FileSelector(directory))

    def part_names(self, directory: str) -> list[str]:
        """The Parquet parts in ``directory``, sorted by name."""
        names = (info.base_name for info in self.listing(directory))
        return sorted(n for n in names if n.startswith("part-") and n.endswith(".parquet"))

    def delete(self, path: str) -> None:
        """Delete one file, if it is still there."""
        if self.found(path):
            self.fs.delete_file(path)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path``, whole or not at all."""
        self._write(path, lambda stream: stream.write(data))

    def write_table(self, table: pa.Table, path: str, row_group_rows: int | None = None) -> None:
        """Write a Parquet file with page checksums, whole or not at all."""

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
