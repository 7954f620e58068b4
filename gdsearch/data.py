"""Data sets: the seed notebook's sine points, seeded toy generators, and CSV or Parquet files.

Every loader returns X of shape (n, d) and Y of shape (n, k), both float64. Two-class toy
problems have one 0/1 target column; a categorical column in a file, or spirals with more than
two arms, becomes one-hot columns, so classification is SSE on one-hot labels.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsearch.errors import DataError

if TYPE_CHECKING:  # pandas loads only when a file is read: Ray workers never need it
    import pandas as pd

Dataset = tuple[np.ndarray, np.ndarray]

MAX_SAMPLES = 10_000_000
MAX_FILE_COLUMNS = 10_000


def _column(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def sine(n_samples: int = 10) -> Dataset:
    """The seed notebook's data: x = 0, 1, …, n−1 as one column and y = sin x."""
    x = np.arange(n_samples, dtype=np.float64)
    return _column(x), _column(np.sin(x))


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
    frame = _read_table(Path(path))
    targets = [target] if isinstance(target, str) else list(target)
    if not targets or targets == [""]:
        raise DataError(f"data file {path!r}: `target` must name a column")
    feature_names = (
        [c for c in frame.columns if c not in targets] if features is None else list(features)
    )
    for name in (*targets, *feature_names):
        if name not in frame.columns:
            raise DataError(
                f"data file {path!r}: no column {name!r}; "
                f"columns: {', '.join(map(str, frame.columns))}"
            )
    if not feature_names:
        raise DataError(f"data file {path!r}: no feature columns")
    X = np.column_stack([_numeric(frame[name], path, name) for name in feature_names])
    import pandas as pd

    if len(targets) == 1 and not pd.api.types.is_numeric_dtype(frame[targets[0]]):
        Y = _one_hot(frame[targets[0]], path)
    else:
        Y = np.column_stack([_numeric(frame[name], path, name) for name in targets])
    if standardize:
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return X, Y


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data file {str(path)!r}: not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"data file {str(path)!r}: expected .csv, .parquet or .pq")
    except DataError:
        raise
    except Exception as exc:  # pandas' parsers raise many types; the reason is what matters
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"data file {str(path)!r}: cannot be read: {reason}") from exc
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        raise DataError(f"data file {str(path)!r}: a row has more fields than the header")
    if frame.empty:
        raise DataError(f"data file {str(path)!r}: has no rows")
    if frame.shape[1] > MAX_FILE_COLUMNS:
        raise DataError(
            f"data file {str(path)!r}: {frame.shape[1]} columns, more than {MAX_FILE_COLUMNS}"
        )
    return frame


def _numeric(column: pd.Series, path: str, name: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = column.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(
            f"data file {path!r}: column {name!r} row {row}: {value!r} is not a finite number"
        )
    return values.to_numpy(dtype=np.float64)


def _one_hot(column: pd.Series, path: str) -> np.ndarray:
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(f"data file {path!r}: column {column.name!r} row {row}: missing label")
    classes, codes = np.unique(column.astype(str).to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"data file {path!r}: column {column.name!r} has one class only")
    return np.eye(len(classes))[codes]


DATASETS: dict[str, Callable[..., Dataset]] = {
    "sine": sine,
    "xor": xor,
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "file": file,
}


def dataset_options(name: str) -> dict[str, Any]:
    """The options a data set takes and their defaults (``inspect.Parameter.empty`` if none)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    return {p.name: p.default for p in inspect.signature(DATASETS[name]).parameters.values()}


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check a data set's options (names, types, values); return them with floats as floats.

    Raises:
        DataError: naming the option and the value.
    """
    known = dataset_options(name)
    for key, value in options.items():
        if key not in known:
            raise DataError(f"dataset {name!r} has no option {key!r}; valid: {', '.join(known)}")
        if not _fits(known[key], value):
            raise DataError(f"dataset {name!r} option {key!r}: wrong type, got {value!r}")
    for key, default in known.items():
        if default is inspect.Parameter.empty and key not in options:
            raise DataError(f"dataset {name!r} needs option {key!r}")
    n_samples = options.get("n_samples", 1)
    if (
        not isinstance(n_samples, int)
        or isinstance(n_samples, bool)
        or not 1 <= n_samples <= MAX_SAMPLES
    ):
        raise DataError(
            f"`n_samples` must be an integer in [1, {MAX_SAMPLES}], but got {n_samples!r}"
        )
    for key in ("noise", "turns", "factor"):
        value = options.get(key, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise DataError(f"`{key}` must be a finite number >= 0, but got {value!r}")
    if not 0.0 < options.get("factor", 0.5) < 1.0:
        raise DataError(f"`factor` must lie in (0, 1), but got {options['factor']!r}")
    arms = options.get("arms", 2)
    if not isinstance(arms, int) or isinstance(arms, bool) or not 2 <= arms <= 100:
        raise DataError(f"`arms` must be an integer in [2, 100], but got {arms!r}")
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
