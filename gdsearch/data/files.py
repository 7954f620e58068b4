"""Data sets from CSV or Parquet files: named feature and target columns, checked as they load.

A file's size, columns and rows are checked before it is parsed (a CSV file's header, a
Parquet file's footer), so a hostile file is refused in one line without being read whole. A
categorical target column becomes one-hot columns, classes sorted.
"""

from __future__ import annotations

import csv
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gdsearch.data.generators import Dataset
from gdsearch.errors import DataError, shown

if TYPE_CHECKING:  # pandas loads only when a file is read: Ray workers never need it
    import pandas as pd

MAX_SAMPLES = 10_000_000
MAX_FILE_COLUMNS = 10_000
MAX_DATA_VALUES = 100_000_000
"""Samples × (inputs + outputs) of a data set: 800 MB as float64."""
MAX_FILE_BYTES = 1 << 30
MAX_HEADER_BYTES = 1 << 20
"""A CSV file's first line, read to count its columns before the file is parsed."""
MAX_FOOTER_BYTES = 1 << 26
"""A Parquet file's metadata, read before its data (about 200 bytes per column and row group)."""


def file(
    path: str = "",
    target: str | list[str] = "",
    features: list[str] | None = None,
    standardize: bool = False,
) -> Dataset:
    """Load a CSV or Parquet file with named feature and target columns.

    Args:
        path: a .csv, .parquet or .pq file.
        target: the target column (a categorical one becomes one-hot, classes sorted), or a
            list of numeric target columns.
        features: feature columns; by default every column that is not a target.
        standardize: scale every feature to mean 0 and standard deviation 1.
    """
    if not path:
        raise DataError("dataset 'file' needs option 'path'")
    where = f"data file {shown(path, 300)}"
    frame = _read_table(Path(path), where)
    targets = [target] if isinstance(target, str) else list(target)
    if not targets or targets == [""]:
        raise DataError(f"{where}: `target` must name a column")
    feature_names = (
        [c for c in frame.columns if c not in targets] if features is None else list(features)
    )
    for name in (*targets, *feature_names):
        if name not in frame.columns:
            raise DataError(
                f"{where}: no column {shown(name)}; columns: {shown(list(frame.columns))}"
            )
    if not feature_names:
        raise DataError(f"{where}: no feature columns")
    X = np.column_stack([_numeric(frame[name], where, name) for name in feature_names])
    import pandas as pd

    if len(targets) == 1 and not pd.api.types.is_numeric_dtype(frame[targets[0]]):
        Y = _one_hot(frame[targets[0]], where, n_inputs=X.shape[1])
    else:
        Y = np.column_stack([_numeric(frame[name], where, name) for name in targets])
    if standardize:
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return X, Y


def _read_table(path: Path, where: str) -> pd.DataFrame:
    """Read a data file whose size, columns and rows are checked first, as far as they can be."""
    import pandas as pd

    try:
        info = path.stat()
    except OSError:
        raise DataError(f"{where}: not found") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{where}: not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise DataError(
            f"{where}: {info.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} allowed"
        )
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"{where}: expected .csv, .parquet or .pq")
    try:
        if suffix == ".csv":
            _check_csv_header(path, where)
            frame = pd.read_csv(path)
        else:
            _check_parquet_shape(path, where, info.st_size)
            frame = pd.read_parquet(path)
    except DataError:
        raise
    except Exception as exc:  # pandas' parsers raise many types; the reason is what matters
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{where}: cannot be read: {shown(reason, 300)[1:-1]}") from exc
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        raise DataError(f"{where}: a row has more fields than the header")
    if frame.empty:
        raise DataError(f"{where}: has no rows")
    _check_shape(where, *frame.shape)
    return frame


def _check_shape(where: str, rows: int, columns: int) -> None:
    """Refuse a table past the column, row or value limits."""
    if columns > MAX_FILE_COLUMNS:
        raise DataError(
            f"{where}: {columns:,} columns, more than the {MAX_FILE_COLUMNS:,} allowed"
        )
    if rows > MAX_SAMPLES:
        raise DataError(f"{where}: {rows:,} rows, more than the {MAX_SAMPLES:,} allowed")
    if rows * columns > MAX_DATA_VALUES:
        raise DataError(
            f"{where}: {rows:,} rows × {columns:,} columns, more than the "
            f"{MAX_DATA_VALUES:,} values allowed"
        )


def _check_csv_header(path: Path, where: str) -> None:
    """Count a CSV file's columns from its first line, before pandas reads the whole file."""
    with path.open("rb") as handle:
        head = handle.read(MAX_HEADER_BYTES)
    line, newline, _ = head.partition(b"\n")
    complete = bool(newline) or len(head) < MAX_HEADER_BYTES
    fields = next(csv.reader([line.decode("utf-8", errors="replace")]), [])
    if len(fields) > MAX_FILE_COLUMNS:
        at_least = "" if complete else "at least "
        raise DataError(
            f"{where}: {at_least}{len(fields):,} columns, more than the "
            f"{MAX_FILE_COLUMNS:,} allowed"
        )
    if not complete:
        raise DataError(f"{where}: a header line longer than {MAX_HEADER_BYTES:,} bytes")


def _check_parquet_shape(path: Path, where: str, size: int) -> None:
    """Check a Parquet file's columns and rows from its footer, before any data is read."""
    with path.open("rb") as handle:  # a Parquet file ends: metadata, its length, b"PAR1"
        handle.seek(max(0, size - 8))
        tail = handle.read(8)
    if len(tail) < 8 or tail[4:] != b"PAR1":
        raise DataError(f"{where}: cannot be read: not a Parquet file (it does not end in PAR1)")
    footer = int.from_bytes(tail[:4], "little")
    if footer > MAX_FOOTER_BYTES:
        raise DataError(
            f"{where}: {footer:,} bytes of Parquet metadata, more than the "
            f"{MAX_FOOTER_BYTES:,} allowed (too many columns or row groups)"
        )
    import pyarrow.parquet as pq  # pandas reads Parquet with it; here for the footer alone

    metadata = pq.read_metadata(path)
    _check_shape(where, metadata.num_rows, metadata.num_columns)


def _numeric(column: pd.Series, where: str, name: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = column.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(
            f"{where}: column {shown(name)} row {row}: {shown(value)} is not a finite number"
        )
    return values.to_numpy(dtype=np.float64)


def _one_hot(column: pd.Series, where: str, n_inputs: int) -> np.ndarray:
    name = shown(column.name)
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(f"{where}: column {name} row {row}: missing label")
    classes, codes = np.unique(column.astype(str).to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{where}: column {name} has one class only")
    if len(column) * (n_inputs + len(classes)) > MAX_DATA_VALUES:
        raise DataError(
            f"{where}: column {name} has {len(classes):,} classes: {len(column):,} samples × "
            f"({n_inputs} inputs + {len(classes):,} one-hot outputs) is more than the "
            f"{MAX_DATA_VALUES:,} values allowed"
        )
    one_hot = np.zeros((len(column), len(classes)))  # (n_samples, n_classes)
    one_hot[np.arange(len(column)), codes] = 1.0
    return one_hot
