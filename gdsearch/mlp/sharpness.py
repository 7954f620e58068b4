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

from gdsearch.mlp import compiled
from gdsearch.mlp.network import (
    Stacked,
    Workspace,
    backward,
    flatten,
    forward,
    residual_sse,
    unflatten,
)
from gdsearch.mlp.numerics import DEFAULT_NUMERICS, NUMERICS, Numerics

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
        numerics: the path of the gradients and sums (:mod:`gdsearch.mlp.numerics`).
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
        self._fresh: dict[int, np.ndarray] = {}  # the fixed start direction, by length
        self.compiled = (
            compiled.Gradients(X1_t, Y_t, sizes, activation)
            if numerics == "portable" and compiled.available()
            else None
        )

    def start(self, K: int, n_params: int) -> np.ndarray:
        """The first measurement's start vectors, the same fixed direction for every trial."""
        direction = np.random.default_rng(START_SEED).normal(size=n_params)
        if self.numerics.name == "blas":
            length = np.linalg.norm(direction)
        else:
            length = np.sqrt(self.numerics.row_sum(np.square(direction)))
        return np.tile(direction / length, (K, 1))

    def measure(
        self, Wbs: Stacked, start: np.ndarray, base: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """λ_max of each trial at weights ``Wbs``, and its eigenvector (the next start).

        Args:
            Wbs: the trials' weights, (K, fan_in + 1, fan_out) a layer; not changed.
            start: (K, P) a start vector per trial (P weights and biases).
            base: (K, P) the gradient at ``Wbs``, where the caller has it (training does).

        Returns:
            (K,) sharpness and (K, P) unit eigenvectors.
        """
        theta = flatten(Wbs)
        base = self._gradient(theta, Wbs) if base is None else base
        eps = (STEP * np.maximum(1.0, np.sqrt(_dot(theta, theta, self.numerics))))[:, None]

        def hvp(v: np.ndarray, rows: np.ndarray) -> np.ndarray:
            step = eps[rows]
            product = (self._gradient(theta[rows] + step * v, Wbs) - base[rows]) / step
            return product + self.weight_decay * v if self.weight_decay else product

        fresh = self._fresh.get(start.shape[1])
        if fresh is None:
            fresh = self._fresh[start.shape[1]] = self.start(1, start.shape[1])
        step = None
        if self.compiled is not None:
            step = self.compiled.lanczos(theta, eps[:, 0], base, self.scale, self.weight_decay)
        return _lanczos(hvp, start + FRESH * fresh, self.numerics, step)

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


Step = Callable[[np.ndarray, int, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``step(basis, j, rows)``: Lanczos step j of the trials ``rows``: w = H·v for v = basis[j],
α = v·w, w reorthogonalized against basis[0 … j], β = |w|, and basis[j + 1] = w / β (0 where
β is not positive); returns α and β."""


def _numpy_step(hvp: Callable[[np.ndarray, np.ndarray], np.ndarray], numerics: Numerics) -> Step:
    """The Lanczos step in numpy."""

    def step(basis: np.ndarray, j: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = basis[j, rows]
        w = hvp(v, rows)
        alpha = _dot(v, w, numerics)
        for i in range(j + 1):  # full reorthogonalization: the basis stays orthonormal
            earlier = basis[i, rows]
            w -= _dot(earlier, w, numerics)[:, None] * earlier
        beta = np.sqrt(_dot(w, w, numerics))
        if j + 1 < len(basis):
            b = beta[:, None]
            basis[j + 1, rows] = np.divide(w, b, out=np.zeros_like(w), where=b > 0)
        return alpha, beta

    return step


def _lanczos(
    hvp: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
    start: np.ndarray,
    numerics: Numerics = NUMERICS[DEFAULT_NUMERICS],
    step: Step | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The top eigenpair of each trial's operator, by Lanczos with full reorthogonalization.

    ``hvp(v, rows)`` applies the operators of the trials ``rows`` to their vectors v; or
    ``step`` takes each whole step (the compiled kernel's, the same bits). A trial stops taking
    steps once it has its eigenpair; each trial's steps are its own, whatever the others do."""
    if step is None:
        assert hvp is not None
        step = _numpy_step(hvp, numerics)
    K, P = start.shape
    steps = max(1, min(STEPS, P, BASIS_VALUES // (K * P) - 1))
    basis = np.zeros((steps + 1, K, P))
    norms = np.sqrt(_dot(start, start, numerics))[:, None]
    basis[0] = np.divide(start, norms, out=np.zeros_like(start), where=norms > 0)
    T = np.zeros((K, steps, steps))  # each trial's tridiagonal α (diagonal), β (beside it)
    values, vectors = np.full(K, np.nan), basis[0].copy()
    rows, last = np.arange(K), np.zeros(K)  # the trials still stepping; the β before this step's
    for j in range(steps):
        alpha, beta = step(basis, j, rows)
        T[rows, j, j] = alpha
        if j:
            T[rows, j, j - 1] = T[rows, j - 1, j] = last
        tridiagonal = T[rows, : j + 1, : j + 1]
        broken = ~np.isfinite(tridiagonal).all(axis=(1, 2))  # weights on their way to infinity
        tridiagonal[broken] = 0.0
        if j:
            ritz, ritz_vectors = np.linalg.eigh(tridiagonal)
            top, s = ritz[:, -1], ritz_vectors[:, :, -1]  # (rows,), (rows, j + 1)
        else:  # 1 × 1: the value, and the vector (1), as LAPACK gives them
            top, s = tridiagonal[:, 0, 0].copy(), np.ones((len(rows), 1))
        top[broken] = np.nan
        finished = broken
        if j == steps - 1:
            finished = np.ones(len(rows), dtype=bool)
        elif j + 1 >= min(MIN_STEPS, steps):  # converged: a residual below the tolerance
            finished = finished | (beta * np.abs(s[:, -1]) <= TOLERANCE * np.abs(top))
        if finished.any():
            ends = rows[finished]
            y = np.zeros((len(ends), P))
            for i in range(j + 1):
                y += s[finished, i, None] * basis[i, ends]
            values[ends], vectors[ends] = top[finished], y
            rows, beta = rows[~finished], beta[~finished]  # a trial with its eigenpair stops
            if not len(rows):
                break
        last = beta
    return values, vectors
