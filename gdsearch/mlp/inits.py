"""Weight initialisation schemes, looked up by name.

Every scheme draws W of shape (fan_in, fan_out) and b of shape (fan_out,) from the generator it
is given. The naive schemes (normal, uniform) draw the biases from the same distribution as the
weights, as a first course does; the scaled schemes (xavier, he, lecun) start biases at zero, as
Glorot & Bengio (2010), He et al. (2015) and LeCun et al. (1998) do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gdsearch.errors import InputError

Layer = tuple[np.ndarray, np.ndarray]
Scheme = Callable[[np.random.Generator, int, int, float], Layer]

DEFAULT_SCALE = {"normal": 1.0, "uniform": 1.0}
"""The spread used when a job names none: std of `normal`, half-width of `uniform`."""


def _zeros(rng: np.random.Generator, fan_in: int, fan_out: int, scale: float) -> Layer:
    return np.zeros((fan_in, fan_out)), np.zeros(fan_out)


def _normal(rng: np.random.Generator, fan_in: int, fan_out: int, scale: float) -> Layer:
    return rng.normal(0.0, scale, (fan_in, fan_out)), rng.normal(0.0, scale, fan_out)


def _uniform(rng: np.random.Generator, fan_in: int, fan_out: int, scale: float) -> Layer:
    return rng.uniform(-scale, scale, (fan_in, fan_out)), rng.uniform(-scale, scale, fan_out)


def _xavier(rng: np.random.Generator, fan_in: int, fan_out: int, scale: float) -> Layer:
    limit = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform: Var = 2 / (fan_in + fan_out)
    return rng.uniform(-limit, limit, (fan_in, fan_out)), np.zeros(fan_out)


def _he(rng: np.random.Generator, fan_in: int, fan_out: int, scale: float) -> Layer:
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)), np.zeros(fan_out)


def _lecun(rng: np.random.Generator, fan_in: int, fan_out: int, scale: float) -> Layer:
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), (fan_in, fan_out)), np.zeros(fan_out)


INIT_SCHEMES: dict[str, Scheme] = {
    "zeros": _zeros,
    "normal": _normal,
    "uniform": _uniform,
    "xavier": _xavier,
    "he": _he,
    "lecun": _lecun,
}


def check_init(name: str) -> str:
    """Return ``name`` if it is a known init scheme, else raise an error listing the valid ones."""
    if name not in INIT_SCHEMES:
        raise InputError(f"unknown init scheme {name!r}; valid: {', '.join(sorted(INIT_SCHEMES))}")
    return name
