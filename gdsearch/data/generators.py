"""The built-in data sets: the seed notebook's sine points and seeded toy problems.

Every generator returns X of shape (n, d) and Y of shape (n, k), both float64. Two-class
problems have one 0/1 target column; spirals with more than two arms have one-hot targets, so
classification is SSE on one-hot labels.
"""

from __future__ import annotations

import math

import numpy as np

Dataset = tuple[np.ndarray, np.ndarray]
"""X (n, d) and Y (n, k), float64."""


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
