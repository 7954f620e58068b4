"""Sharpness during training: the top Hessian eigenvalue of the loss, for a population at once.

The sharpness λ is the largest eigenvalue of the Hessian of the loss a trial descends: L = s·SSE
(s = 1/n for ``grad_scale = "mean"``, 1 for ``"sum"``) plus wd/2·‖θ‖² where weight decay is
set, so that gradient descent on a quadratic of that curvature is stable exactly while
lr·λ < 2. Under full-batch gradient descent λ typically rises until it reaches 2/lr and then
hovers there while the loss keeps falling (Cohen et al., "Gradient Descent on Neural Networks
Typically Occurs at the Edge of Stability", ICLR 2021).

:class:`SharpnessMeter` measures it for K trials together: Lanczos iterations on Hessian-vector
products, each a forward difference of the batched analytic gradient,
H·v ≈ (∇L(θ + εv) − ∇L(θ)) / ε with ε = ``STEP`` × max(1, ‖θ‖). A trial's Lanczos stops once
its top Ritz pair's residual ‖H·y − θ·y‖ is below ``TOLERANCE`` × |θ| (so an eigenvalue is
that close, or much closer), and the next measurement starts from its Ritz vector, which
usually converges in a few steps. The warm start is mixed with a little of the fixed start
direction and at least ``MIN_STEPS`` are taken, so that an eigenvalue overtaking the tracked one
by a clear margin shows (the residual test alone cannot tell the top eigenvalue from another);
one that overtakes it by a hair can be missed for a measurement or more. Every operation acts on
each trial's slice alone, and a trial keeps the value it converged to even while others
iterate on, so its sharpness is the same alone or in any population.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from gdsearch.model import compiled
from gdsearch.model.network import (
    Stacked,
    Workspace,
    backward,
    flatten,
    forward,
    residual_sse,
    unflatten,
)
from gdsearch.model.numerics import DEFAULT_NUMERICS, NUMERICS, Numerics

STEPS = 20
"""Lanczos steps at most per measurement (each one Hessian-vector product, one gradient)."""
MIN_STEPS = 2
"""Lanczos steps at least: a warm start is an eigenvector already, so one step would accept it
even where another eigenvalue has overtaken it; a few steps let the new top one show."""
FRESH = 0.05
"""A warm start is mixed with this much of the fixed start direction (both of unit length),
so that every direction the top eigenvector may have moved to is in the Krylov space."""
BASIS_VALUES = 1 << 25
"""The Lanczos basis holds at most about this many float64 values (256 MiB): fewer steps for
very large populations of very large networks."""
TOLERANCE = 1e-3
"""A Ritz pair is accepted when its residual is below this times its value."""
STEP = 1e-6
"""The forward difference's step, relative to max(1, ‖θ‖)."""
START_SEED = 0
"""The first measurement of every trial starts from the same fixed random direction."""


def _dot(a: np.ndarray, b: np.ndarray, numerics: Numerics) -> np.ndarray:
    """Row-wise dot products of (K, P) arrays: (K,)."""
    return numerics.row_sum(np.multiply(a, b))


class SharpnessMeter:
    """Measures λ_max of the loss's Hessian for K stacked trials on the full data.

    Args:
        X1_t: inputs with their ones row, (d + 1, n).
        Y_t: targets, (k, n).
        sizes: layer widths, input first.
        activation: hidden activation name.
        scale: s, the loss's factor on the SSE.
        weight_decay: wd, added to every eigenvalue.
        numerics: the path of the gradients and sums (:mod:`gdsearch.model.numerics`).
    """

    def __init__(
        self,
        X1_t: np.ndarray,
        Y_t: np.ndarray,
        sizes: Sequence[int],
        activation: str,
        scale: float,
        weight_decay: float = 0.0,
        numerics: str = DEFAULT_NUMERICS,
    ) -> None:
        self.X1_t, self.Y_t, self.sizes = X1_t, Y_t, list(sizes)
        self.activation, self.scale, self.weight_decay = activation, scale, weight_decay
        self.numerics = NUMERICS[numerics]
        self.compiled = (compiled.Gradients(X1_t, Y_t, sizes, activation)
                         if numerics == "portable" and compiled.available() else None)  # fmt: skip

    def start(self, K: int, n_params: int) -> np.ndarray:
        """The first measurement's start vectors, the same fixed direction for every trial."""
        direction = np.random.default_rng(START_SEED).normal(size=n_params)
        if self.numerics.name == "blas":
            length = np.linalg.norm(direction)
        else:
            length = np.sqrt(self.numerics.row_sum(np.square(direction)))
        return np.tile(direction / length, (K, 1))

    def measure(self, Wbs: Stacked, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """λ_max of each trial at weights ``Wbs``, and its eigenvector (the next start).

        Args:
            Wbs: the trials' weights, (K, fan_in + 1, fan_out) a layer; not changed.
            start: (K, P) a start vector per trial (P weights and biases).

        Returns:
            (K,) sharpness and (K, P) unit eigenvectors.
        """
        theta = flatten(Wbs)
        base = self._gradient(theta, Wbs)
        eps = (STEP * np.maximum(1.0, np.sqrt(_dot(theta, theta, self.numerics))))[:, None]

        def hvp(v: np.ndarray) -> np.ndarray:
            product = (self._gradient(theta + eps * v, Wbs) - base) / eps
            return product + self.weight_decay * v if self.weight_decay else product

        fresh = self.start(1, start.shape[1])
        return _lanczos(hvp, start + FRESH * fresh, self.numerics)

    def _gradient(self, theta: np.ndarray, like: Stacked) -> np.ndarray:
        """∇(s·SSE) at the flat weights ``theta`` (K, P) of networks shaped as ``like``:
        (K, P), by the compiled kernel where it runs (the same bits)."""
        if self.compiled is not None:
            return self.compiled(theta, self.scale)
        Wbs = unflatten(theta, like)
        ws = Workspace(theta.shape[0], self.X1_t, self.sizes, self.numerics.name)
        forward(Wbs, ws, self.activation)
        residual_sse(ws, self.Y_t)
        return flatten(backward(Wbs, ws, ws.out, self.scale, self.activation))


def _lanczos(
    hvp: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    numerics: Numerics = NUMERICS[DEFAULT_NUMERICS],
) -> tuple[np.ndarray, np.ndarray]:
    """The top eigenpair of each trial's operator, by Lanczos with full reorthogonalization."""
    K, P = start.shape
    steps = max(1, min(STEPS, P, BASIS_VALUES // (K * P) - 1))
    basis = np.zeros((steps + 1, K, P))
    norms = np.sqrt(_dot(start, start, numerics))[:, None]
    basis[0] = np.divide(start, norms, out=np.zeros_like(start), where=norms > 0)
    alpha, beta = np.zeros((K, steps)), np.zeros((K, steps + 1))
    values, vectors = np.full(K, np.nan), basis[0].copy()
    done = np.zeros(K, dtype=bool)
    for j in range(steps):
        w = hvp(basis[j])
        alpha[:, j] = _dot(basis[j], w, numerics)
        for i in range(j + 1):  # full reorthogonalization: the basis stays orthonormal
            w -= _dot(basis[i], w, numerics)[:, None] * basis[i]
        beta[:, j + 1] = np.sqrt(_dot(w, w, numerics))
        T = np.zeros((K, j + 1, j + 1))
        diagonal = np.arange(j + 1)
        T[:, diagonal, diagonal] = alpha[:, : j + 1]
        T[:, diagonal[1:], diagonal[:-1]] = T[:, diagonal[:-1], diagonal[1:]] = beta[:, 1 : j + 1]
        broken = ~np.isfinite(T).all(axis=(1, 2))  # weights on their way to infinity
        T[broken] = 0.0
        ritz, ritz_vectors = np.linalg.eigh(T)
        top, s = ritz[:, -1], ritz_vectors[:, :, -1]  # (K,), (K, j + 1)
        top[broken] = np.nan
        residual = beta[:, j + 1] * np.abs(s[:, -1])
        converged = (residual <= TOLERANCE * np.abs(top)) & (j + 1 >= min(MIN_STEPS, steps))
        finished = ~done & (converged | (j == steps - 1) | broken)
        if finished.any():
            y = np.zeros((K, P))
            for i in range(j + 1):
                y += s[:, i, None] * basis[i]
            values[finished], vectors[finished] = top[finished], y[finished]
            done |= finished
        if done.all():
            break
        b = beta[:, j + 1, None]
        basis[j + 1] = np.divide(w, b, out=np.zeros_like(w), where=b > 0)
    return values, vectors
