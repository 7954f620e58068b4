"""A multi-layer perceptron in numpy, trained by gradient descent on the sum of squared errors.

Training works on a *population*: K trials that share the data and the layer sizes, their
weights stacked on a leading axis, one batched matmul per layer per step. A single trial is the
K = 1 case of the same code. Every operation acts on each trial's slice alone, so a trial's
history is the same, value for value, whatever population it is trained in.

Inside, a layer's weights and bias travel as one augmented matrix, the bias as its last row:
Wb of shape (K, fan_in + 1, fan_out). Activations carry a trailing column of ones, so
``a @ Wb`` is ``a @ W + b`` and ``aᵀ @ δ`` gives the gradients of W and b in one matmul.
Outside, weights are (W, b) pairs, W of shape (fan_in, fan_out), b (fan_out,).

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
Stacked = list[np.ndarray]
"""A population's weights: per layer one (K, fan_in + 1, fan_out) array, the bias last."""

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


def stack_params(population: Sequence[Params]) -> Stacked:
    """Stack K trials' (W, b) pairs into one augmented (K, fan_in + 1, fan_out) array a layer."""
    return [
        np.stack([np.vstack([params[layer][0], params[layer][1]]) for params in population])
        for layer in range(len(population[0]))
    ]


def unstack_params(stacked: Stacked, index: int) -> Params:
    """One trial's (W, b) pairs out of a stacked population."""
    return [(Wb[index, :-1].copy(), Wb[index, -1].copy()) for Wb in stacked]


def _with_ones_t(X: np.ndarray) -> np.ndarray:
    """Xᵀ with a trailing row of ones, so that Wbᵀ @ Xᵀ adds the bias: (…, d + 1, n)."""
    X_t = np.swapaxes(X, -1, -2)
    return np.concatenate([X_t, np.ones((*X_t.shape[:-2], 1, X_t.shape[-1]))], axis=-2)


class _Workspace:
    """Every buffer one forward and backward pass of K trials on n samples needs, reused.

    Arrays are *feature-major*, samples last: (K, width, n). Each elementwise pass then runs
    along n contiguous values per row (a hidden layer's rows are one contiguous block), not
    along a short row of width values. ``acts[l]`` is the input of layer l with its ones row:
    ``acts[0]`` the data ((d + 1, n) shared, or (K, d + 1, n) per trial for mini-batches),
    the others (K, fan_in + 1, n).
    """

    def __init__(self, K: int, inputs_t: np.ndarray, sizes: Sequence[int]) -> None:
        n = inputs_t.shape[-1]
        self.acts = [inputs_t] + [np.ones((K, width + 1, n)) for width in sizes[1:-1]]
        self.out = np.empty((K, sizes[-1], n))  # ŷᵀ, then the residual (ŷ − y)ᵀ
        self.deltas = [np.empty((K, width, n)) for width in sizes[1:]]  # ∂loss/∂zᵀ per layer
        self.scratch = [np.empty((K, width, n)) for width in sizes[1:-1]]
        self.grads = [
            np.empty((K, fan_in + 1, fan_out)) for fan_in, fan_out in itertools.pairwise(sizes)
        ]

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the trials in ``mask``: the survivors' values, computed once, stay."""
        shared = self.acts[0].ndim == 2  # the data, shared by all trials
        self.acts = [self.acts[0] if shared else self.acts[0][mask]] + [
            a[mask] for a in self.acts[1:]
        ]
        self.out = self.out[mask]
        self.deltas = [d[mask] for d in self.deltas]
        self.scratch = [s[mask] for s in self.scratch]
        self.grads = [g[mask] for g in self.grads]


# --- the network: each layer's forward step and its backward step side by side ------------


def _forward(Wbs: Stacked, ws: _Workspace, activation: str) -> np.ndarray:
    """Fill the workspace's activations; returns ŷᵀ, (K, k, n)."""
    f = ACTIVATIONS[activation]
    for layer, Wb in enumerate(Wbs[:-1]):
        z_t = np.matmul(
            np.swapaxes(Wb, -1, -2), ws.acts[layer], out=ws.deltas[layer]
        )  # (K, fan_out, n)
        f(z_t, out=ws.acts[layer + 1][:, :-1, :])  # the ones row stays
    return np.matmul(np.swapaxes(Wbs[-1], -1, -2), ws.acts[-1], out=ws.out)  # linear output


def _backward(
    Wbs: Stacked, ws: _Workspace, residual_t: np.ndarray, scale: float, activation: str
) -> Stacked:
    """Gradient of scale·SSE for every layer's Wb, given the residual (ŷ − y)ᵀ; in ``ws.grads``."""
    backprop = DERIVATIVES[activation]
    delta_t = np.multiply(residual_t, 2.0 * scale, out=ws.deltas[-1])  # ∂(scale·SSE)/∂ŷᵀ
    for layer in range(len(Wbs) - 1, -1, -1):
        a_t = ws.acts[layer]
        np.matmul(
            a_t, np.swapaxes(delta_t, -1, -2), out=ws.grads[layer]
        )  # (K, fan_in + 1, fan_out)
        if layer == 0:
            break
        W = Wbs[layer][:, :-1, :]  # (K, fan_in, fan_out), bias row left out
        below_t = ws.deltas[layer - 1]  # (K, fan_in, n)
        if W.shape[2] == 1:  # one output: the product is an outer product, cheaper by broadcast
            np.multiply(W, delta_t, out=below_t)
        else:
            np.matmul(W, delta_t, out=below_t)
        backprop(a_t[:, :-1, :], below_t, ws.scratch[layer - 1])  # through the activation
        delta_t = below_t
    return ws.grads


def _residual_sse(ws: _Workspace, Y_t: np.ndarray) -> np.ndarray:
    """Turn ŷᵀ into the residual (ŷ − y)ᵀ in place; returns each trial's SSE, (K,)."""
    residual_t = np.subtract(ws.out, Y_t, out=ws.out)
    return np.square(residual_t).reshape(residual_t.shape[0], -1).sum(axis=1)


def _update(Wbs: Stacked, grads: Stacked, lr: np.ndarray) -> None:
    """θ ← θ − lr · gradient, in place; ``lr`` of shape (K, 1, 1)."""
    for Wb, grad in zip(Wbs, grads, strict=True):
        grad *= lr
        Wb -= grad


def _scale(grad_scale: str, n: int) -> float:
    return 1.0 / n if grad_scale == "mean" else 1.0


def check_grad_scale(grad_scale: str) -> str:
    """Return ``grad_scale`` if valid, else raise an error listing the valid values."""
    if grad_scale not in GRAD_SCALES:
        raise InputError(f"unknown grad_scale {grad_scale!r}; valid: {', '.join(GRAD_SCALES)}")
    return grad_scale


def predict(params: Params, X: np.ndarray, activation: str = "tanh") -> np.ndarray:
    """The network's output for inputs X (n, d): shape (n, k)."""
    Wbs = stack_params([params])
    ws = _Workspace(1, _with_ones_t(X), _sizes(Wbs))
    with np.errstate(all="ignore"):
        return _forward(Wbs, ws, check_activation(activation))[0].T.copy()


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
    scale = _scale(check_grad_scale(grad_scale), X.shape[0])
    Wbs = stack_params([params])
    ws = _Workspace(1, _with_ones_t(X), _sizes(Wbs))
    _forward(Wbs, ws, activation)
    _residual_sse(ws, Y.T)
    grads = _backward(Wbs, ws, ws.out, scale, activation)
    return [(grad[0, :-1].copy(), grad[0, -1].copy()) for grad in grads]


def _sizes(Wbs: Stacked) -> list[int]:
    return [Wbs[0].shape[1] - 1, *(Wb.shape[2] for Wb in Wbs)]


DEFAULT_PATIENCE_TOLERANCE = 1e-4

STATUS_CODES = ("running", "ok", "diverged", "plateaued", "pruned")
"""A trial's state in a population, by code: still training; trained every epoch; stopped by
the divergence limit; stopped by the patience rule; stopped by a scheduler."""
RUNNING, OK, DIVERGED, PLATEAUED, PRUNED = range(len(STATUS_CODES))


RUNG_METRICS = ("sse", "auc")
"""How a scheduler ranks trials at a rung: the SSE at the rung's epoch, or the mean SSE over
epochs 0 … rung (the area under the curve per epoch, which also rewards getting there fast)."""


def rung_metric(histories: np.ndarray, rung: int, metric: str = "sse") -> np.ndarray:
    """Each history's ``RUNG_METRICS`` value at epoch ``rung``; histories are (K, ≥ rung + 1)."""
    if metric == "sse":
        return histories[:, rung].copy()
    if metric == "auc":
        return histories[:, : rung + 1].mean(axis=1)
    raise InputError(f"unknown rung metric {metric!r}; valid: {', '.join(RUNG_METRICS)}")


@dataclass
class PopulationResult:
    """What training a population gives back.

    Attributes:
        histories: (K, epochs + 1) SSE per trial and epoch; NaN past a trial's last epoch.
        lengths: (K,) how many epochs of history each trial holds.
        diverged_epoch: (K,) the epoch whose SSE broke the divergence limit, -1 if none did.
        params: the final stacked weights (see :func:`unstack_params`); a diverged trial's
            are the ones whose SSE broke the limit.
        status: (K,) codes into ``STATUS_CODES``.
    """

    histories: np.ndarray
    lengths: np.ndarray
    diverged_epoch: np.ndarray
    params: Stacked
    status: np.ndarray


@dataclass
class _Active:
    """The trials still training, compacted so that stopped ones cost nothing."""

    index: np.ndarray
    Wbs: Stacked
    lr: np.ndarray
    limit: np.ndarray
    rngs: list[np.random.Generator]
    best: np.ndarray  # the patience rule's reference SSE, and the epoch it was set
    since: np.ndarray

    def drop(self, mask: np.ndarray, final: Stacked) -> None:
        """Move the trials in ``mask`` out of the population, saving their weights."""
        for Wb, Wb_final in zip(self.Wbs, final, strict=True):
            Wb_final[self.index[mask]] = Wb[mask]
        keep = ~mask
        self.index = self.index[keep]
        self.Wbs = [Wb[keep] for Wb in self.Wbs]
        self.lr = self.lr[keep]
        self.limit = self.limit[keep]
        self.best = self.best[keep]
        self.since = self.since[keep]
        self.rngs = [rng for rng, k in zip(self.rngs, keep, strict=True) if k] if self.rngs else []


class Population:
    """K trials in training, which can be stopped at any epoch and carried on later.

    :meth:`advance` trains up to a given epoch; between calls a scheduler may :meth:`prune`
    trials, and the object (weights, histories, shuffle generators) may be pickled and carried
    on elsewhere. Training in one call or in several gives the same histories value for value.

    A trial stops at the first epoch whose SSE is not finite or exceeds ``divergence_factor``
    × its epoch-0 SSE (diverged; its history keeps the epochs before), or, with ``patience``
    N > 0, at the first epoch e where its SSE has not fallen below (1 − ``patience_tolerance``)
    × the last SSE that did so, set at epoch e − N or earlier (plateaued; its history keeps e).
    """

    def __init__(
        self,
        params: Stacked,
        lrs: np.ndarray,
        epochs: int,
        activation: str = "tanh",
        grad_scale: str = "mean",
        batch_size: int | None = None,
        shuffle_rngs: Sequence[np.random.Generator] | None = None,
        divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR,
        patience: int = 0,
        patience_tolerance: float = DEFAULT_PATIENCE_TOLERANCE,
    ) -> None:
        self.activation = check_activation(activation)
        self.grad_scale = check_grad_scale(grad_scale)
        K = len(lrs)
        self.batch_size = batch_size
        if batch_size is not None and (shuffle_rngs is None or len(shuffle_rngs) != K):
            raise InputError("mini-batch training needs one shuffle generator per trial")
        self.epochs = epochs
        self.divergence_factor = divergence_factor
        self.patience = patience
        self.patience_tolerance = patience_tolerance
        self.histories = np.full((K, epochs + 1), np.nan)
        self.status = np.full(K, RUNNING, dtype=np.int8)
        self.stop_epoch = np.full(K, -1, dtype=np.int64)
        self.epoch = 0  # the next epoch whose SSE is to be measured
        self.final = [Wb.copy() for Wb in params]
        self.active = _Active(
            index=np.arange(K),
            Wbs=[Wb.copy() for Wb in params],
            lr=np.asarray(lrs, dtype=np.float64).reshape(K, 1, 1),
            limit=np.full(K, np.inf),
            rngs=list(shuffle_rngs) if batch_size is not None and shuffle_rngs else [],
            best=np.full(K, np.inf),
            since=np.zeros(K, dtype=np.int64),
        )

    def advance(self, X: np.ndarray, Y: np.ndarray, until: int) -> None:
        """Train the running trials until epoch ``until`` (≤ epochs) has been measured.

        Trials still running at ``epochs`` end as ok.
        """
        n = X.shape[0]
        minibatch = self.batch_size is not None and self.batch_size < n
        active = self.active
        if not len(active.index):
            return
        X1_t, Y_t, sizes = _with_ones_t(X), np.ascontiguousarray(Y.T), _sizes(active.Wbs)
        ws = _Workspace(len(active.index), X1_t, sizes)
        with _BLAS.limit(limits=1, user_api="blas"), np.errstate(all="ignore"):
            for epoch in range(max(0, self.epoch - 1), until + 1):
                # An epoch measured at the end of the last call is measured again (the same
                # value): its forward pass is the start of the next step.
                _forward(active.Wbs, ws, self.activation)
                sse = _residual_sse(ws, Y_t)
                if epoch == 0:
                    active.limit = np.where(sse > 0, self.divergence_factor * sse, np.inf)
                    active.best = sse.copy()
                stop = self._check(epoch, sse)
                if stop.any():
                    active.drop(stop, self.final)
                    if not len(active.index):
                        break
                    ws.keep(~stop)
                if epoch == until:
                    break
                if minibatch:
                    assert self.batch_size is not None
                    _minibatch_epoch(
                        active, X1_t, Y_t, self.batch_size, self.grad_scale, self.activation, sizes
                    )
                else:
                    scale = _scale(self.grad_scale, n)
                    grads = _backward(active.Wbs, ws, ws.out, scale, self.activation)
                    _update(active.Wbs, grads, active.lr)
            self.epoch = until + 1
            if until == self.epochs:
                self._stop(np.ones(len(active.index), dtype=bool), OK, until)

    def _check(self, epoch: int, sse: np.ndarray) -> np.ndarray:
        """Record this epoch's SSE; stop trials that diverged or plateaued. Returns the mask."""
        active = self.active
        bad = ~(np.isfinite(sse) & (sse <= active.limit))
        self.histories[active.index, epoch] = sse
        stop = bad
        if self.patience:
            better = sse < active.best * (1.0 - self.patience_tolerance)
            active.best = np.where(better, sse, active.best)
            active.since = np.where(better, epoch, active.since)
            flat = ~bad & (epoch - active.since >= self.patience)
            if flat.any():
                self._mark(flat, PLATEAUED, epoch)
            stop = bad | flat
        if bad.any():  # most epochs stop nobody: the masks' writes are skipped
            self.histories[active.index[bad], epoch] = np.nan
            self._mark(bad, DIVERGED, epoch)
        return stop

    def _mark(self, mask: np.ndarray, status: int, epoch: int) -> None:
        """Set the status and stop epoch of the running trials in ``mask``."""
        self.status[self.active.index[mask]] = status
        self.stop_epoch[self.active.index[mask]] = epoch

    def _stop(self, mask: np.ndarray, status: int, epoch: int) -> None:
        """Stop the running trials in ``mask`` with this status, taking them out of training."""
        self._mark(mask, status, epoch)
        self.active.drop(mask, self.final)

    def discard(self, indices: np.ndarray) -> None:
        """Take the given running trials out of training, leaving their records as they are
        (their training is being redone elsewhere)."""
        self.active.drop(np.isin(self.active.index, indices), self.final)

    @property
    def running(self) -> np.ndarray:
        """Indices of the trials still training."""
        return self.active.index.copy()

    def prune(self, indices: np.ndarray) -> None:
        """Stop the given running trials as pruned at the last epoch measured."""
        mask = np.isin(self.active.index, indices)
        self._stop(mask, PRUNED, self.epoch - 1)

    def result(self) -> PopulationResult:
        """Histories, lengths, divergence epochs, weights and status of every trial."""
        weights = [Wb.copy() for Wb in self.final]
        for Wb, Wb_now in zip(weights, self.active.Wbs, strict=True):
            Wb[self.active.index] = Wb_now
        lengths = np.where(
            self.status == DIVERGED,
            self.stop_epoch,
            np.where(self.stop_epoch >= 0, self.stop_epoch + 1, self.epoch),
        )
        diverged_epoch = np.where(self.status == DIVERGED, self.stop_epoch, -1)
        return PopulationResult(self.histories, lengths, diverged_epoch, weights, self.status)


def train_population(
    params: Stacked,
    X: np.ndarray,
    Y: np.ndarray,
    lrs: np.ndarray,
    epochs: int,
    activation: str = "tanh",
    grad_scale: str = "mean",
    batch_size: int | None = None,
    shuffle_rngs: Sequence[np.random.Generator] | None = None,
    divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR,
    patience: int = 0,
    patience_tolerance: float = DEFAULT_PATIENCE_TOLERANCE,
) -> PopulationResult:
    """Train K stacked trials by gradient descent, each with its own learning rate.

    The stopping rules are :class:`Population`'s. Training ends early once every trial stopped.

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
        patience: stop a trial whose SSE has not improved for this many epochs (0: never).
        patience_tolerance: the relative fall in SSE that counts as an improvement.

    Returns:
        A :class:`PopulationResult`.
    """
    minibatch = batch_size is not None and batch_size < X.shape[0]
    population = Population(
        params,
        lrs,
        epochs,
        activation,
        grad_scale,
        batch_size if minibatch else None,
        shuffle_rngs,
        divergence_factor,
        patience,
        patience_tolerance,
    )
    population.advance(X, Y, epochs)
    return population.result()


def _minibatch_epoch(
    active: _Active,
    X1_t: np.ndarray,
    Y_t: np.ndarray,
    batch_size: int,
    grad_scale: str,
    activation: str,
    sizes: Sequence[int],
) -> None:
    """One epoch of mini-batch steps, each trial in its own freshly shuffled order."""
    n = X1_t.shape[-1]
    order = np.stack([rng.permutation(n) for rng in active.rngs])  # (K, n)
    workspaces: dict[int, _Workspace] = {}  # by batch width: the last batch may be shorter
    for start in range(0, n, batch_size):
        batch = order[:, start : start + batch_size]  # (K, b)
        inputs_t = np.ascontiguousarray(np.moveaxis(X1_t[:, batch], 0, 1))  # (K, d + 1, b)
        ws = workspaces.get(batch.shape[1]) or _Workspace(len(batch), inputs_t, sizes)
        workspaces[batch.shape[1]] = ws
        ws.acts[0] = inputs_t
        _forward(active.Wbs, ws, activation)
        _residual_sse(ws, np.moveaxis(Y_t[:, batch], 0, 1))
        grads = _backward(active.Wbs, ws, ws.out, _scale(grad_scale, batch.shape[1]), activation)
        _update(active.Wbs, grads, active.lr)


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
