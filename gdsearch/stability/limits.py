"""Stability theory for gradient descent: the largest learning rate that does not blow up.

On a quadratic loss, gradient descent θ ← θ − lr·∇L converges exactly when lr < 2/λ_max, λ_max
the largest eigenvalue of the loss's Hessian. For the linear model that Hessian is constant and
known in closed form; for an MLP, the sharpness λ_max at the initial weights is estimated by
power iteration on Hessian-vector products, each a central finite difference of the analytic
gradient, and 2/λ_max is the prediction to set beside the measured critical learning rate.

The limit follows the optimizer (:func:`optimizer_limit`): on a quadratic, heavy-ball momentum β
converges iff lr·λ < 2(1 + β), Nesterov's form iff lr·λ < 2(1 + β)/(1 + 2β) (both from the
characteristic polynomial of the two-step recurrence, by Jury's test at z = −1), and weight decay
wd adds wd to every eigenvalue. A schedule scales the base rate by a factor of at most 1, so
the limit on the base rate is the same (the rate only reaches it where the factor is 1).

L is the loss the update descends: SSE/n for ``grad_scale="mean"``, SSE for ``"sum"``.
"""

from __future__ import annotations

import numpy as np

from gdsearch.mlp.network import Params, check_grad_scale, gradient

__all__ = [
    "hessian_vector_product",
    "linear_gd_path",
    "linear_hessian",
    "linear_lr_limit",
    "lr_limit",
    "optimizer_limit",
    "sharpness",
]


def linear_hessian(X: np.ndarray, grad_scale: str = "mean") -> np.ndarray:
    """The Hessian of L for y = w·x + b in (w, b), one output's block: (d + 1, d + 1)."""
    A, scale = _linear_terms(X, grad_scale)
    return 2.0 * scale * A.T @ A


def _linear_terms(X: np.ndarray, grad_scale: str) -> tuple[np.ndarray, float]:
    """A = [X, 1], (n, d + 1), and the loss's scale s: L = s·SSE, s = 1/n or 1."""
    A = np.column_stack([X, np.ones(len(X))])
    return A, 1.0 / len(X) if check_grad_scale(grad_scale) == "mean" else 1.0


def optimizer_limit(
    sharpness: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
) -> float:
    """The largest stable learning rate on a quadratic of top Hessian eigenvalue ``sharpness``
    under the given update rule: 2(1 + β) / (λ + wd), divided by (1 + 2β) for Nesterov."""
    factor = 2.0 * (1.0 + momentum)
    if nesterov:
        factor /= 1.0 + 2.0 * momentum
    return factor / (abs(sharpness) + weight_decay)


def linear_lr_limit(
    X: np.ndarray,
    grad_scale: str = "mean",
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> float:
    """The linear model's exact critical learning rate on inputs X under the update rule
    (2/λ_max for plain gradient descent)."""
    top = float(np.linalg.eigvalsh(linear_hessian(X, grad_scale)).max())
    return optimizer_limit(top, momentum, nesterov, weight_decay)


def _flat(params: Params) -> np.ndarray:
    return np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in params])


def _unflat(vector: np.ndarray, like: Params) -> Params:
    out: Params = []
    at = 0
    for W, b in like:
        out.append(
            (vector[at : at + W.size].reshape(W.shape), vector[at + W.size : at + W.size + b.size])
        )
        at += W.size + b.size
    return out


def hessian_vector_product(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    vector: np.ndarray,
    activation: str = "tanh",
    grad_scale: str = "mean",
    step: float = 1e-5,
) -> np.ndarray:
    """H·v by a central difference of the analytic gradient along v (flattened parameters)."""
    theta = _flat(params)
    eps = step / max(float(np.linalg.norm(vector)), 1e-300)
    plus = _flat(gradient(_unflat(theta + eps * vector, params), X, Y, activation, grad_scale))
    minus = _flat(gradient(_unflat(theta - eps * vector, params), X, Y, activation, grad_scale))
    return (plus - minus) / (2.0 * eps)


def sharpness(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    activation: str = "tanh",
    grad_scale: str = "mean",
    rng: np.random.Generator | None = None,
    iterations: int = 200,
    rtol: float = 1e-7,
) -> float:
    """λ_max of L's Hessian at ``params`` (largest in magnitude), by power iteration.

    Args:
        params: the weights, e.g. a trial's initial ones.
        X: the inputs, (n, d).
        Y: the targets, (n, k).
        activation: the hidden layers' activation, as in training.
        grad_scale: ``"mean"`` or ``"sum"``, as in training.
        rng: the start vector's generator (a fixed seed by default, so the answer repeats).
        iterations: at most this many Hessian-vector products.
        rtol: stop when the Rayleigh quotient changes by less than this, relatively.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    v = rng.normal(size=_flat(params).size)
    v /= np.linalg.norm(v)
    estimate = 0.0
    for _ in range(iterations):
        hv = hessian_vector_product(params, X, Y, v, activation, grad_scale)
        previous, estimate = estimate, float(v @ hv)
        norm = float(np.linalg.norm(hv))
        if norm == 0.0:
            return 0.0
        v = hv / norm
        if abs(estimate - previous) <= rtol * abs(estimate):
            break
    return estimate


def lr_limit(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    activation: str = "tanh",
    grad_scale: str = "mean",
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> float:
    """The predicted critical learning rate at ``params`` under the update rule (2/λ_max for
    plain gradient descent; see :func:`optimizer_limit`)."""
    top = sharpness(params, X, Y, activation, grad_scale)
    return optimizer_limit(top, momentum, nesterov, weight_decay)


def linear_gd_path(
    X: np.ndarray,
    y: np.ndarray,
    start: np.ndarray,
    lrs: np.ndarray,
    epochs: int,
    grad_scale: str = "mean",
) -> np.ndarray:
    """Gradient descent's path in (w, b) for the one-output linear model, for several lrs.

    The gradient of L is H·θ − g, H = :func:`linear_hessian` and g = 2·s·Aᵀy with A = [X, 1]
    and s = 1/n or 1, so each epoch is one small matrix product for all lrs together.

    Args:
        X: inputs (n, d); y: targets (n,).
        start: the initial (w₁ … w_d, b), shared by every lr.
        lrs: learning rates (L,).
        epochs: steps to take.
        grad_scale: as in training.

    Returns:
        (L, epochs + 1, d + 1): θ before the first step and after each; a diverging path runs
        to inf or NaN.
    """
    H = linear_hessian(X, grad_scale)
    A, scale = _linear_terms(X, grad_scale)
    g = 2.0 * scale * A.T @ y
    lrs = np.asarray(lrs, dtype=np.float64)[:, None]
    path = np.empty((len(lrs), epochs + 1, len(start)))
    path[:, 0] = start
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(epochs):
            theta = path[:, t]
            path[:, t + 1] = theta - lrs * (theta @ H - g)
    return path
