"""Data sets by name: the table of loaders, their options checked, and a data set's digest."""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from gdsearch.data.files import MAX_DATA_VALUES, MAX_SAMPLES, file
from gdsearch.data.generators import Dataset, circles, moons, sine, spirals, wave, xor
from gdsearch.errors import DataError, shown

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
    seed = options.get("seed", 0)
    if isinstance(seed, int) and seed < 0:  # numpy's generators take no negative seed
        raise DataError(f"`seed` must be an integer >= 0, but got {shown(seed)}")
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
