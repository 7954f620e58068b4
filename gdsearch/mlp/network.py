"""A multi-layer perceptron in numpy: weights, the forward pass and its gradient of the SSE.

Everything here works on a *population*: K networks of the same layer sizes, their weights
stacked on a leading axis, one batched product per layer. A single network is the K = 1 case of
the same code. Every operation acts on each network's slice alone, so a trial's numbers are the
same, value for value, whatever population it is computed in. Training (the loop, stopping
rules) is :mod:`gdsearch.mlp.population`; the step itself is :mod:`gdsearch.mlp.optim`.

Inside, a layer's weights and bias travel as one augmented matrix, the bias as its last row:
Wb of shape (K, fan_in + 1, fan_out). Activations carry a trailing column of ones, so
``a @ Wb`` is ``a @ W + b`` and ``aᵀ @ δ`` gives the gradients of W and b in one product.
The products, sums and tanh come from the workspace's :mod:`~gdsearch.mlp.numerics` path:
portable (the same bits on every machine, the default) or BLAS.
Outside, weights are (W, b) pairs, W of shape (fan_in, fan_out), b (fan_out,).

Loss: SSE = Σ (y − ŷ)² over samples and outputs; the update descends
L = SSE / n by default (``grad_scale="mean"``), or L = SSE (``"sum"``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from gdsearch.errors import InputError
from gdsearch.mlp.activations import DERIVATIVES, check_activation
from gdsearch.mlp.inits import DEFAULT_SCALE, INIT_SCHEMES, check_init
from gdsearch.mlp.numerics import DEFAULT_NUMERICS, NUMERICS, check_numerics

Params = list[tuple[np.ndarray, np.ndarray]]
"""One trial's weights: a (W, b) pair per layer, W of shape (fan_in, fan_out), b (fan_out,)."""
Stacked = list[np.ndarray]
"""A population's weights: per layer one (K, fan_in + 1, fan_out) array, the bias last."""

GRAD_SCALES = ("mean", "sum")


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
        init: a name from ``gdsearch.mlp.inits.INIT_SCHEMES``.
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


def flatten(stacked: Stacked) -> np.ndarray:
    """Per-layer (K, fan_in + 1, fan_out) arrays as one (K, P) array, each trial's weights
    layer after layer in C order (the compiled kernel's ``theta``)."""
    return np.concatenate([a.reshape(a.shape[0], -1) for a in stacked], axis=1)


def unflatten(flat: np.ndarray, like: Stacked) -> Stacked:
    """A (K, P) array back into per-layer arrays shaped as ``like``'s layers (K rows, whatever
    ``like`` has; views of ``flat``)."""
    out, at = [], 0
    for a in like:
        size = a[0].size
        out.append(flat[:, at : at + size].reshape(flat.shape[0], *a.shape[1:]))
        at += size
    return out


def with_ones_t(X: np.ndarray) -> np.ndarray:
    """Xᵀ with a trailing row of ones, so that Wbᵀ @ Xᵀ adds the bias: (…, d + 1, n)."""
    X_t = np.swapaxes(X, -1, -2)
    return np.concatenate([X_t, np.ones((*X_t.shape[:-2], 1, X_t.shape[-1]))], axis=-2)


class Workspace:
    """Every buffer one forward and backward pass of K trials on n samples needs, reused.

    Arrays are *feature-major*, samples last: (K, width, n). Each elementwise pass then runs
    along n contiguous values per row (a hidden layer's rows are one contiguous block), not
    along a short row of width values. ``acts[l]`` is the input of layer l with its ones row:
    ``acts[0]`` the data ((d + 1, n) shared, or (K, d + 1, n) per trial for mini-batches),
    the others (K, fan_in + 1, n). ``numerics`` names the path that computes on them.
    """

    def __init__(
        self,
        K: int,
        inputs_t: np.ndarray,
        sizes: Sequence[int],
        numerics: str = DEFAULT_NUMERICS,
    ) -> None:
        self.numerics = NUMERICS[check_numerics(numerics)]
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


def forward(Wbs: Stacked, ws: Workspace, activation: str) -> np.ndarray:
    """Fill the workspace's activations; returns ŷᵀ, (K, k, n)."""
    matmul, f = ws.numerics.matmul, ws.numerics.activations[activation]
    for layer, Wb in enumerate(Wbs[:-1]):
        z_t = matmul(np.swapaxes(Wb, -1, -2), ws.acts[layer], ws.deltas[layer])  # (K, fan_out, n)
        f(z_t, out=ws.acts[layer + 1][:, :-1, :])  # the ones row stays
    return matmul(np.swapaxes(Wbs[-1], -1, -2), ws.acts[-1], ws.out)  # linear output


def backward(
    Wbs: Stacked, ws: Workspace, residual_t: np.ndarray, scale: float, activation: str
) -> Stacked:
    """Gradient of scale·SSE for every layer's Wb, given the residual (ŷ − y)ᵀ; in ``ws.grads``."""
    backprop, numerics = DERIVATIVES[activation], ws.numerics
    delta_t = np.multiply(residual_t, 2.0 * scale, out=ws.deltas[-1])  # ∂(scale·SSE)/∂ŷᵀ
    for layer in range(len(Wbs) - 1, -1, -1):
        a_t = ws.acts[layer]
        numerics.matmul_nt(a_t, delta_t, ws.grads[layer])  # (K, fan_in + 1, fan_out)
        if layer == 0:
            break
        W = Wbs[layer][:, :-1, :]  # (K, fan_in, fan_out), bias row left out
        below_t = ws.deltas[layer - 1]  # (K, fan_in, n)
        if W.shape[2] == 1:  # one output: the product is an outer product, cheaper by broadcast
            np.multiply(W, delta_t, out=below_t)
        else:
            numerics.matmul(W, delta_t, below_t)
        backprop(a_t[:, :-1, :], below_t, ws.scratch[layer - 1])  # through the activation
        delta_t = below_t
    return ws.grads


def residual_sse(ws: Workspace, Y_t: np.ndarray) -> np.ndarray:
    """Turn ŷᵀ into the residual (ŷ − y)ᵀ in place; returns each trial's SSE, (K,)."""
    residual_t = np.subtract(ws.out, Y_t, out=ws.out)
    return ws.numerics.row_sum(np.square(residual_t).reshape(residual_t.shape[0], -1))


def loss_scale(grad_scale: str, n: int) -> float:
    """The s of L = s·SSE that the update descends: 1/n (``"mean"``) or 1 (``"sum"``)."""
    return 1.0 / n if grad_scale == "mean" else 1.0


def check_grad_scale(grad_scale: str) -> str:
    """Return ``grad_scale`` if valid, else raise an error listing the valid values."""
    if grad_scale not in GRAD_SCALES:
        raise InputError(f"unknown grad_scale {grad_scale!r}; valid: {', '.join(GRAD_SCALES)}")
    return grad_scale


def predict(
    params: Params, X: np.ndarray, activation: str = "tanh", numerics: str = DEFAULT_NUMERICS
) -> np.ndarray:
    """The network's output for inputs X (n, d): shape (n, k)."""
    Wbs = stack_params([params])
    ws = Workspace(1, with_ones_t(X), sizes_of(Wbs), numerics)
    with np.errstate(all="ignore"):
        return forward(Wbs, ws, check_activation(activation))[0].T.copy()


def sse(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    activation: str = "tanh",
    numerics: str = DEFAULT_NUMERICS,
) -> float:
    """The sum of squared errors Σ (y − ŷ)² of one network on (X, Y), as training measures it."""
    Wbs = stack_params([params])
    ws = Workspace(1, with_ones_t(X), sizes_of(Wbs), numerics)
    with np.errstate(all="ignore"):
        forward(Wbs, ws, check_activation(activation))
        return float(residual_sse(ws, np.ascontiguousarray(Y.T))[0])


def gradient(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    activation: str = "tanh",
    grad_scale: str = "mean",
    numerics: str = DEFAULT_NUMERICS,
) -> Params:
    """The gradient the update uses, ∇SSE / n (``"mean"``) or ∇SSE (``"sum"``), as (dW, db)."""
    check_activation(activation)
    scale = loss_scale(check_grad_scale(grad_scale), X.shape[0])
    Wbs = stack_params([params])
    ws = Workspace(1, with_ones_t(X), sizes_of(Wbs), numerics)
    forward(Wbs, ws, activation)
    residual_sse(ws, Y.T)
    grads = backward(Wbs, ws, ws.out, scale, activation)
    return [(grad[0, :-1].copy(), grad[0, -1].copy()) for grad in grads]


def sizes_of(Wbs: Stacked) -> list[int]:
    """Layer widths of stacked weights, input first."""
    return [Wbs[0].shape[1] - 1, *(Wb.shape[2] for Wb in Wbs)]
