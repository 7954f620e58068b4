"""A multi-layer perceptron in numpy, trained by gradient descent on the sum of squared errors.

Training works on a *population*: K trials that share the data and the layer sizes, their
weights stacked on a leading axis, one batched matmul per layer per step. A single trial is the
K = 1 case of the same code. Every operation is per-slice, so a trial's history is the same,
value for value, whatever population it is trained in.

Shapes: n samples, d inputs, k outputs; W of one trial (fan_in, fan_out), stacked
(K, fan_in, fan_out); b stacked (K, 1, fan_out).

Loss and update (DESIGN.md): SSE = Σ (y − ŷ)² over samples and outputs, and
θ ← θ − lr · ∇SSE / n by default (``grad_scale="mean"``), or θ ← θ − lr · ∇SSE (``"sum"``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from gdsearch.activations import ACTIVATIONS, DERIVATIVES, check_activation
from gdsearch.errors import InputError
from gdsearch.inits import DEFAULT_SCALE, INIT_SCHEMES, check_init

Params = list[tuple[np.ndarray, np.ndarray]]
"""One trial's weights: a (W, b) pair per layer, W of shape (fan_in, fan_out), b (fan_out,)."""

GRAD_SCALES = ("mean", "sum")
DEFAULT_DIVERGENCE_FACTOR = 1e6

_BLAS = ThreadpoolController()


def layer_sizes(n_inputs: int, hidden: Sequence[int], n_outputs: int) -> list[int]:
    """Widths of every layer, input first: ``[d, *hidden, k]``; ``hidden=[]`` is y = w·x + b."""
    return [n_inputs, *hidden, n_outputs]


def init_params(
    layer_sizes: Sequence[int],
    init: str,
    seed: int | np.random.SeedSequence | np.random.Generator,
    scale: float | None = None,
) -> Params:
    """Draw initial weights and biases for one network.

    Args:
        layer_sizes: widths of every layer, input first, e.g. ``[2, 16, 1]``.
        init: a name from ``gdsearch.inits.INIT_SCHEMES``.
        seed: the seed of the stream the weights are drawn from; the same seed, scheme and
            sizes give the same weights.
        scale: the spread of ``normal`` (std) and ``uniform`` (half-width); ignored by others.

    Returns:
        A list of (W, b) pairs, W of shape (fan_in, fan_out), b of shape (fan_out,).
    """
    scheme = INIT_SCHEMES[check_init(init)]
    spread = DEFAULT_SCALE.get(init, 1.0) if scale is None else scale
    rng = np.random.default_rng(seed)
    return [
        scheme(rng, fan_in, fan_out, spread) for fan_in, fan_out in itertools.pairwise(layer_sizes)
    ]


def stack_params(population: Sequence[Params]) -> Params:
    """Stack K trials' weights: W (K, fan_in, fan_out), b (K, 1, fan_out)."""
    n_layers = len(population[0])
    return [
        (
            np.stack([params[layer][0] for params in population]),
            np.stack([params[layer][1] for params in population])[:, None, :],
        )
        for layer in range(n_layers)
    ]


def unstack_params(stacked: Params, index: int) -> Params:
    """One trial's (W, b) pairs out of a stacked population."""
    return [(W[index].copy(), b[index, 0].copy()) for W, b in stacked]


# --- one dense layer: forward and backward side by side -----------------------------------


def _dense_forward(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ W + b  # (K, n, fan_out)


def _dense_backward(
    a: np.ndarray, W: np.ndarray, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of W and b, and the gradient reaching the layer's input."""
    a_t = np.swapaxes(a, -1, -2) if a.ndim == 3 else a.T
    dW = a_t @ delta  # (K, fan_in, fan_out)
    db = delta.sum(axis=1, keepdims=True)  # (K, 1, fan_out)
    d_input = delta @ np.swapaxes(W, -1, -2)  # (K, n, fan_in)
    return dW, db, d_input


def _forward(
    params: Params, X: np.ndarray, activation: str
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Pre-activations and activations of every hidden layer, and the output (K, n, k)."""
    f = ACTIVATIONS[activation]
    zs: list[np.ndarray] = []
    acts: list[np.ndarray] = [X]
    for W, b in params[:-1]:
        z = _dense_forward(acts[-1], W, b)  # (K, n, fan_out)
        zs.append(z)
        acts.append(f(z))
    W_out, b_out = params[-1]
    return zs, acts, _dense_forward(acts[-1], W_out, b_out)  # linear output


def _sse(y_hat: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The residual (K, n, k) and each trial's SSE (K,)."""
    err = y_hat - Y
    return err, np.square(err).reshape(err.shape[0], -1).sum(axis=1)


def _backward(
    params: Params,
    zs: list[np.ndarray],
    acts: list[np.ndarray],
    err: np.ndarray,
    scale: float,
    activation: str,
) -> Params:
    """Gradient of scale·SSE with respect to every (W, b), stacked like ``params``."""
    df = DERIVATIVES[activation]
    delta = (2.0 * scale) * err  # ∂(scale·SSE)/∂ŷ, (K, n, k)
    grads: Params = []
    for layer in range(len(params) - 1, -1, -1):
        dW, db, d_input = _dense_backward(acts[layer], params[layer][0], delta)
        grads.append((dW, db))
        if layer > 0:
            delta = d_input * df(zs[layer - 1], acts[layer])  # through the activation
    return grads[::-1]


def _step(
    params: Params,
    zs: list[np.ndarray],
    acts: list[np.ndarray],
    err: np.ndarray,
    lr: np.ndarray,
    scale: float,
    activation: str,
) -> None:
    """One gradient-descent update of every layer, in place. ``lr`` has shape (K, 1, 1)."""
    for (W, b), (dW, db) in zip(
        params, _backward(params, zs, acts, err, scale, activation), strict=True
    ):
        W -= lr * dW
        b -= lr * db


def predict(params: Params, X: np.ndarray, activation: str = "tanh") -> np.ndarray:
    """The network's output for inputs X (n, d): shape (n, k)."""
    _, _, y_hat = _forward(stack_params([params]), X, check_activation(activation))
    return y_hat[0]


def sse(params: Params, X: np.ndarray, Y: np.ndarray, activation: str = "tanh") -> float:
    """The sum of squared errors Σ (y − ŷ)² of one network on (X, Y)."""
    return float(np.sum(np.square(predict(params, X, activation) - Y)))


def gradient(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    activation: str = "tanh",
    grad_scale: str = "mean",
) -> Params:
    """The gradient the update uses, ∇SSE / n (``"mean"``) or ∇SSE (``"sum"``), as (dW, db)."""
    check_activation(activation)
    scale = 1.0 / X.shape[0] if check_grad_scale(grad_scale) == "mean" else 1.0
    stacked = stack_params([params])
    zs, acts, y_hat = _forward(stacked, X, activation)
    grads = _backward(stacked, zs, acts, y_hat - Y, scale, activation)
    return [(dW[0], db[0, 0]) for dW, db in grads]


@dataclass
class PopulationResult:
    """What training a population gives back.

    Attributes:
        histories: (K, epochs + 1) SSE per trial and epoch; NaN past a trial's last epoch.
        lengths: (K,) how many epochs of history each trial holds.
        diverged_epoch: (K,) the epoch whose SSE broke the divergence limit, -1 if none did.
        params: the final stacked weights; a diverged trial's are those of its last good epoch
            stepped once more (the weights that diverged).
    """

    histories: np.ndarray
    lengths: np.ndarray
    diverged_epoch: np.ndarray
    params: Params


def check_grad_scale(grad_scale: str) -> str:
    """Return ``grad_scale`` if valid, else raise an error listing the valid values."""
    if grad_scale not in GRAD_SCALES:
        raise InputError(f"unknown grad_scale {grad_scale!r}; valid: {', '.join(GRAD_SCALES)}")
    return grad_scale


def train_population(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    lrs: np.ndarray,
    epochs: int,
    activation: str = "tanh",
    grad_scale: str = "mean",
    batch_size: int | None = None,
    shuffle_rngs: Sequence[np.random.Generator] | None = None,
    divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR,
) -> PopulationResult:
    """Train K stacked trials by gradient descent, each with its own learning rate.

    A trial diverges at the first epoch whose SSE is not finite or exceeds
    ``divergence_factor`` × its epoch-0 SSE; it is then dropped from the population, keeping
    its history up to the epoch before. Training stops early once every trial has diverged.

    Args:
        params: stacked weights (see :func:`stack_params`); copied, never changed.
        X: inputs, (n, d). Y: targets, (n, k).
        lrs: (K,) learning rates.
        epochs: passes over the data; histories hold epochs 0..epochs.
        activation: hidden activation name.
        grad_scale: ``"mean"`` (∇SSE / n, n the samples in the step) or ``"sum"`` (∇SSE).
        batch_size: samples per step; None or >= n is full-batch gradient descent.
        shuffle_rngs: one generator per trial, reshuffling its mini-batches each epoch;
            required when ``batch_size`` is smaller than n.
        divergence_factor: multiple of the initial SSE beyond which a trial has diverged.

    Returns:
        A :class:`PopulationResult`.
    """
    check_activation(activation)
    check_grad_scale(grad_scale)
    n = X.shape[0]
    K = len(lrs)
    minibatch = batch_size is not None and batch_size < n
    if minibatch and (shuffle_rngs is None or len(shuffle_rngs) != K):
        raise InputError("mini-batch training needs one shuffle generator per trial")
    histories = np.full((K, epochs + 1), np.nan)
    diverged_epoch = np.full(K, -1, dtype=np.int64)
    final = [(W.copy(), b.copy()) for W, b in params]
    active = _Active(
        index=np.arange(K),
        params=[(W.copy(), b.copy()) for W, b in params],
        lr=np.asarray(lrs, dtype=np.float64).reshape(K, 1, 1),
        limit=np.full(K, np.inf),
        rngs=list(shuffle_rngs) if minibatch and shuffle_rngs is not None else [],
    )
    with _BLAS.limit(limits=1, user_api="blas"), np.errstate(all="ignore"):
        for epoch in range(epochs + 1):
            zs, acts, y_hat = _forward(active.params, X, activation)
            err, sse = _sse(y_hat, Y)
            if epoch == 0:
                active.limit = np.where(sse > 0, divergence_factor * sse, np.inf)
            bad = ~(np.isfinite(sse) & (sse <= active.limit))
            histories[active.index, epoch] = np.where(bad, np.nan, sse)
            if bad.any():
                diverged_epoch[active.index[bad]] = epoch
                active.drop(bad, final)
                if not len(active.index):
                    break
                zs, acts, err = _keep(zs, ~bad), _keep(acts, ~bad, skip_first=True), err[~bad]
            if epoch == epochs:
                break
            if minibatch:
                assert batch_size is not None
                _minibatch_epoch(active, X, Y, batch_size, grad_scale, activation)
            else:
                scale = 1.0 / n if grad_scale == "mean" else 1.0
                _step(active.params, zs, acts, err, active.lr, scale, activation)
        active.drop(np.ones(len(active.index), dtype=bool), final)
    lengths = np.where(diverged_epoch >= 0, diverged_epoch, epochs + 1)
    return PopulationResult(histories, lengths, diverged_epoch, final)


@dataclass
class _Active:
    """The trials still training, compacted so that diverged ones cost nothing."""

    index: np.ndarray
    params: Params
    lr: np.ndarray
    limit: np.ndarray
    rngs: list[np.random.Generator]

    def drop(self, mask: np.ndarray, final: Params) -> None:
        """Move the trials in ``mask`` out of the population, saving their weights."""
        for (W, b), (W_final, b_final) in zip(self.params, final, strict=True):
            W_final[self.index[mask]] = W[mask]
            b_final[self.index[mask]] = b[mask]
        keep = ~mask
        self.index = self.index[keep]
        self.params = [(W[keep], b[keep]) for W, b in self.params]
        self.lr = self.lr[keep]
        self.limit = self.limit[keep]
        if self.rngs:
            self.rngs = [rng for rng, k in zip(self.rngs, keep, strict=True) if k]


def _keep(
    arrays: list[np.ndarray], keep: np.ndarray, skip_first: bool = False
) -> list[np.ndarray]:
    """Rows of each stacked array that survive; the shared input X (first) is left as it is."""
    if skip_first:
        return [arrays[0], *(a[keep] for a in arrays[1:])]
    return [a[keep] for a in arrays]


def _minibatch_epoch(
    active: _Active,
    X: np.ndarray,
    Y: np.ndarray,
    batch_size: int,
    grad_scale: str,
    activation: str,
) -> None:
    """One epoch of mini-batch steps, each trial in its own freshly shuffled order."""
    n = X.shape[0]
    order = np.stack([rng.permutation(n) for rng in active.rngs])  # (K, n)
    for start in range(0, n, batch_size):
        batch = order[:, start : start + batch_size]  # (K, b)
        Xb, Yb = X[batch], Y[batch]  # (K, b, d), (K, b, k)
        zs, acts, y_hat = _forward(active.params, Xb, activation)
        scale = 1.0 / batch.shape[1] if grad_scale == "mean" else 1.0
        _step(active.params, zs, acts, y_hat - Yb, active.lr, scale, activation)


def train(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    lr: float,
    epochs: int,
    activation: str = "tanh",
    grad_scale: str = "mean",
    batch_size: int | None = None,
    shuffle_seed: int | np.random.SeedSequence | None = None,
    divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR,
) -> tuple[np.ndarray, Params]:
    """Train one network by gradient descent on the SSE.

    The single-trial case of :func:`train_population`, with the same results value for value.

    Args:
        params: initial (W, b) pairs, e.g. from :func:`init_params`; not changed.
        X: inputs, (n, d). Y: targets, (n, k).
        lr: the learning rate.
        epochs: passes over the data.
        activation: hidden activation name (the output is linear).
        grad_scale: ``"mean"`` (∇SSE / n, the default) or ``"sum"`` (∇SSE).
        batch_size: samples per step; None is full batch.
        shuffle_seed: seed of the mini-batch shuffling stream (needed with ``batch_size``).
        divergence_factor: multiple of the initial SSE beyond which training stops.

    Returns:
        The SSE history (float64, epochs + 1 values, fewer if the trial diverged: it then
        stops before the first epoch whose SSE is non-finite or beyond the limit) and the
        final params.
    """
    rngs = None if shuffle_seed is None else [np.random.default_rng(shuffle_seed)]
    result = train_population(
        stack_params([params]),
        X,
        Y,
        np.array([lr], dtype=np.float64),
        epochs,
        activation=activation,
        grad_scale=grad_scale,
        batch_size=batch_size,
        shuffle_rngs=rngs,
        divergence_factor=divergence_factor,
    )
    return result.histories[0, : result.lengths[0]].copy(), unstack_params(result.params, 0)
