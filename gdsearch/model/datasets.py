"""Data sets: the seed notebook's sine points, seeded toy generators, and CSV or Parquet files.

Every loader returns X of shape (n, d) and Y of shape (n, k), both float64. Two-class toy
problems have one 0/1 target column; a categorical column in a file, or spirals with more than
two arms, becomes one-hot columns, so classification is SSE on one-hot labels.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import math
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsearch.errors import DataError, shown

__all__ = [
    "DATASETS",
    "MAX_DATA_VALUES",
    "MAX_FILE_BYTES",
    "MAX_FILE_COLUMNS",
    "MAX_FOOTER_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_SAMPLES",
    "Dataset",
    "check_options",
    "circles",
    "data_digest",
    "dataset_options",
    "file",
    "load_dataset",
    "moons",
    "sine",
    "spirals",
    "wave",
    "xor",
]

if TYPE_CHECKING:  # pandas loads only when a file is read: Ray workers never need it
    import pandas as pd

Dataset = tuple[np.ndarray, np.ndarray]

MAX_SAMPLES = 10_000_000
MAX_FILE_COLUMNS = 10_000
MAX_DATA_VALUES = 100_000_000
"""Samples × (inputs + outputs) of a data set: 800 MB as float64."""
MAX_FILE_BYTES = 1 << 30
MAX_HEADER_BYTES = 1 << 20
"""A CSV file's first line, read to count its columns before the file is parsed."""
MAX_FOOTER_BYTES = 1 << 26
"""A Parquet file's metadata, read before its data (about 200 bytes per column and row group)."""


def _column(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def sine(n_samples: int = 10) -> Dataset:
    """The seed notebook's data: x = 0, 1, …, n−1 as one column and y = sin x."""
    x = np.arange(n_samples, dtype=np.float64)
    return _column(x), _column(np.sin(x))


def wave(
    n_samples: int = 64, frequency: float = 2.0, noise: float = 0.0, seed: int = 0
) -> Dataset:
    """A smooth one-dimensional regression: x evenly spaced on [−π, π], y = sin(frequency·x)
    plus Gaussian noise."""
    x = np.linspace(-np.pi, np.pi, n_samples)
    y = np.sin(frequency * x) + noise * np.random.default_rng(seed).normal(size=n_samples)
    return _column(x), _column(y)


def xor(n_samples: int = 4, noise: float = 0.0, seed: int = 0) -> Dataset:
    """The unit square's corners, cycled to n_samples, plus Gaussian noise; y = x1 ⊕ x2."""
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    X = corners[np.arange(n_samples) % 4]
    Y = _column(np.logical_xor(X[:, 0], X[:, 1]))
    return X + np.random.default_rng(seed).normal(0.0, noise, X.shape), Y


def moons(n_samples: int = 200, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaving half circles (as scikit-learn's make_moons), class 0 the upper one."""
    n_outer = n_samples // 2
    n_inner = n_samples - n_outer
    t_outer = np.linspace(0.0, np.pi, n_outer)
    t_inner = np.linspace(0.0, np.pi, n_inner)
    X = np.concatenate(
        [
            np.column_stack([np.cos(t_outer), np.sin(t_outer)]),
            np.column_stack([1.0 - np.cos(t_inner), 0.5 - np.sin(t_inner)]),
        ]
    )
    Y = _column(np.r_[np.zeros(n_outer), np.ones(n_inner)])
    return X + np.random.default_rng(seed).normal(0.0, noise, X.shape), Y


def circles(
    n_samples: int = 200, noise: float = 0.05, factor: float = 0.5, seed: int = 0
) -> Dataset:
    """A circle inside another (inner radius ``factor``), class 1 the inner one."""
    n_outer = n_samples // 2
    n_inner = n_samples - n_outer
    t_outer = np.linspace(0.0, 2.0 * np.pi, n_outer, endpoint=False)
    t_inner = np.linspace(0.0, 2.0 * np.pi, n_inner, endpoint=False)
    X = np.concatenate(
        [
            np.column_stack([np.cos(t_outer), np.sin(t_outer)]),
            factor * np.column_stack([np.cos(t_inner), np.sin(t_inner)]),
        ]
    )
    Y = _column(np.r_[np.zeros(n_outer), np.ones(n_inner)])
    return X + np.random.default_rng(seed).normal(0.0, noise, X.shape), Y


def spirals(
    n_samples: int = 200, noise: float = 0.05, arms: int = 2, turns: float = 1.0, seed: int = 0
) -> Dataset:
    """Interleaved spiral arms from the origin out to radius 1; one-hot labels past two arms."""
    arm = np.arange(n_samples) % arms
    t = np.sqrt((np.arange(n_samples) // arms + 1) / math.ceil(n_samples / arms))  # (0, 1]
    angle = 2.0 * np.pi * (turns * t + arm / arms)
    X = np.column_stack([t * np.cos(angle), t * np.sin(angle)])
    Y = _column(arm) if arms == 2 else np.eye(arms)[arm]
    return X + np.random.default_rng(seed).normal(0.0, noise, X.shape), Y


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


DATASETS: dict[str, Callable[..., Dataset]] = {
    "sine": sine,
    "wave": wave,
    "xor": xor,
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "file": file,
}


def dataset_options(name: str) -> dict[str, Any]:
    """The options a data set takes and their defaults (``inspect.Parameter.empty`` if none)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {shown(name)}; valid: {', '.join(sorted(DATASETS))}")
    return {p.name: p.default for p in inspect.signature(DATASETS[name]).parameters.values()}


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check a data set's options (names, types, values); return them with floats as floats.

    Raises:
        DataError: naming the option and the value.
    """
    known = dataset_options(name)
    for key, value in options.items():
        if key not in known:
            raise DataError(
                f"dataset {shown(name)} has no option {shown(key)}; valid: {', '.join(known)}"
            )
        if not _fits(known[key], value):
            raise DataError(
                f"dataset {shown(name)} option {shown(key)}: wrong type, got {shown(value)}"
            )
    for key, default in known.items():
        if default is inspect.Parameter.empty and key not in options:
            raise DataError(f"dataset {shown(name)} needs option {shown(key)}")
    n_samples = options.get("n_samples", 1)
    if (
        not isinstance(n_samples, int)
        or isinstance(n_samples, bool)
        or not 1 <= n_samples <= MAX_SAMPLES
    ):
        raise DataError(
            f"`n_samples` must be an integer in [1, {MAX_SAMPLES}], but got {shown(n_samples)}"
        )
    for key in ("noise", "turns", "factor"):
        value = options.get(key, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise DataError(f"`{key}` must be a finite number >= 0, but got {shown(value)}")
    if not 0.0 < options.get("factor", 0.5) < 1.0:
        raise DataError(f"`factor` must lie in (0, 1), but got {shown(options['factor'])}")
    arms = options.get("arms", 2)
    if not isinstance(arms, int) or isinstance(arms, bool) or not 2 <= arms <= 100:
        raise DataError(f"`arms` must be an integer in [2, 100], but got {shown(arms)}")
    if arms > 2 and n_samples * (2 + arms) > MAX_DATA_VALUES:
        raise DataError(
            f"`n_samples` × (2 inputs + `arms` one-hot outputs) must be at most "
            f"{MAX_DATA_VALUES:,}, but got {n_samples:,} × (2 + {arms})"
        )
    return {k: float(v) if isinstance(known[k], float) else v for k, v in options.items()}


def _fits(default: Any, value: Any) -> bool:
    """Whether ``value`` has the type the option's default implies."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, list) or default is None:  # features, or several numeric targets
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def data_digest(X: np.ndarray, Y: np.ndarray) -> str:
    """The sha256 of a data set's shapes and values: what a result set was computed on."""
    digest = hashlib.sha256()
    for array in (X, Y):
        values = np.ascontiguousarray(array, dtype="<f8")
        digest.update(f"{values.shape};".encode())
        digest.update(values.data)
    return digest.hexdigest()


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a data set by name.

    Args:
        name: one of ``DATASETS``: sine, xor, moons, circles, spirals, or file.
        **options: the data set's options, e.g. ``n_samples=200, noise=0.1, seed=0`` for moons,
            or ``path=..., target=..., standardize=True`` for a file.

    Returns:
        X of shape (n, d) and Y of shape (n, k), float64.
    """
    checked = check_options(name, options)
    return DATASETS[name](**checked)
