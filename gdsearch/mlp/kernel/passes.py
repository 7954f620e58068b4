"""One trial's pass over n samples in compiled code: forward, residual and backward, each
:mod:`gdsearch.mlp.network`'s function of the same name on one trial, the same operations in
the same order.

Layout. A trial's weights are one flat vector ``theta`` (P,): layer after layer, each layer's
augmented matrix Wb (fan_in + 1, fan_out), bias row last, in C order (``network.flatten``). A
pass keeps the inputs and every layer's outputs feature-major in one (R, w) buffer, each
followed by a row of ones, the next layer's bias input (as ``network.Workspace`` keeps its
activations), and the gradient arriving at them in another buffer of the same shape. Functions
take whole arrays and offsets into them, never slices: a slice made in compiled code, or a
choice between two arrays, costs reference counting in every loop it is made in.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gdsearch.mlp.kernel.borrowed import borrow
from gdsearch.mlp.kernel.jit import compiled, inlined
from gdsearch.mlp.kernel.scalar import ACTIVATION_CODES, activate, backprop
from gdsearch.mlp.kernel.sums import combine_rows, is_short, pairwise_dot, short_dots4

SIZES, OFFSETS, ROWS = range(3)
"""The rows of a :class:`Net`'s layout."""


class Net(NamedTuple):
    """One trial's geometry, shared by a population.

    Attributes:
        layout: (3, L + 1) int64: row ``SIZES``, the widths of every layer, input first; row
            ``OFFSETS``, where each layer's Wb starts in ``theta`` (the last is P); row
            ``ROWS``, the first row of the inputs and of each layer's outputs in a pass's
            buffers (each followed by a row of ones). One array, not three: every array a
            compiled function takes costs it reference counting.
        activation: the hidden activation's code (``ACTIVATION_CODES``).
    """

    layout: np.ndarray
    activation: int


class Workspace(NamedTuple):
    """The buffers of one trial's pass over up to w samples (network.Workspace, one trial).

    Attributes:
        acts: (R, w) the inputs and every layer's outputs, each followed by a row of ones;
            the output layer's rows hold ŷ, then the residual ŷ − y.
        deltas: (R, w) the gradient of the loss at each layer's pre-activations.
        squares: (1, k·w) the residual's rows end to end, as numpy's reshape lays them out.
        frames, partial: the pairwise sum's stack (:func:`~.sums.pairwise_dot`).
    """

    acts: np.ndarray
    deltas: np.ndarray
    squares: np.ndarray
    frames: np.ndarray
    partial: np.ndarray


def make_net(sizes: list[int], activation: str) -> Net:
    """The geometry of networks of these layer widths (input first)."""
    widths = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum((widths[:-1] + 1) * widths[1:])])
    rows = np.concatenate([[0], np.cumsum(widths[:-1] + 1)])  # each layer's rows, then ones
    layout = np.ascontiguousarray(np.stack([widths, offsets, rows]), dtype=np.int64)
    return Net(layout, ACTIVATION_CODES[activation])


def parameters(net: Net) -> int:
    """P, the weights and biases of one network."""
    return int(net.layout[OFFSETS, -1])


def workspace(net: Net, width: int, inputs: np.ndarray | None = None) -> Workspace:
    """The buffers of a pass over up to ``width`` samples, holding ``inputs`` ((d, n) or
    (d + 1, n), feature-major) where given."""
    d, k = int(net.layout[SIZES, 0]), int(net.layout[SIZES, -1])
    R = int(net.layout[ROWS, -1]) + k + 1
    ws = Workspace(
        np.ones((R, width)),
        np.empty((R, width)),
        np.empty((1, k * width)),
        np.empty((64, 3), dtype=np.int64),
        np.empty(64),
    )
    if inputs is not None:
        ws.acts[:d, : inputs.shape[1]] = inputs[:d]
    return ws


@inlined
def borrow_net(net: Net) -> Net:
    """The net with its layout borrowed (:mod:`.borrowed`)."""
    return Net(borrow(net.layout), net.activation)


@inlined
def borrow_workspace(ws: Workspace) -> Workspace:
    """The workspace with its arrays borrowed (:mod:`.borrowed`)."""
    return Workspace(
        borrow(ws.acts),
        borrow(ws.deltas),
        borrow(ws.squares),
        borrow(ws.frames),
        borrow(ws.partial),
    )


@compiled
def forward(theta: np.ndarray, net: Net, n: int, ws: Workspace) -> None:
    """Every layer's outputs for the first n samples of the inputs in ``ws.acts``: z[o] =
    Σ_j Wb[j, o]·a[j] in order j = 0 … fan_in, the bias times the ones last, then the
    activation (none on the output layer)."""
    layout, acts = net.layout, ws.acts
    L = layout.shape[1] - 1
    for layer in range(L):
        fan_in, fan_out = layout[SIZES, layer], layout[SIZES, layer + 1]
        below, here = layout[ROWS, layer], layout[ROWS, layer + 1]
        combine_rows(
            acts,
            here,
            fan_out,
            theta,
            layout[OFFSETS, layer],
            1,
            fan_out,
            acts,
            below,
            fan_in + 1,
            n,
        )
        if layer < L - 1:
            activate(acts, here, fan_out, n, net.activation)


@compiled
def residual_sse(net: Net, targets: np.ndarray, n: int, ws: Workspace) -> float:
    """Turn ŷ into the residual ŷ − y in place; returns the SSE: the squares of all outputs'
    rows end to end, summed pairwise as one row."""
    k, out, acts = net.layout[SIZES, -1], net.layout[ROWS, -1], ws.acts
    frames, partial = ws.frames, ws.partial
    for o in range(k):  # (k, n)
        for s in range(n):
            acts[out + o, s] -= targets[o, s]
    if k == 1:
        return pairwise_dot(acts, out, acts, out, n, frames, partial)
    flat = ws.squares  # (1, k·n)
    for o in range(k):
        for s in range(n):
            flat[0, o * n + s] = acts[out + o, s]
    return pairwise_dot(flat, 0, flat, 0, k * n, frames, partial)


@compiled
def backward(
    theta: np.ndarray, net: Net, n: int, scale: float, ws: Workspace, grad: np.ndarray
) -> None:
    """∇(scale·SSE) into ``grad`` (P,), from the residual in ``ws.acts``."""
    layout, acts, deltas = net.layout, ws.acts, ws.deltas
    L, out, k = layout.shape[1] - 1, layout[ROWS, -1], layout[SIZES, -1]
    factor = 2.0 * scale
    for o in range(k):  # ∂(scale·SSE)/∂ŷ, (k, n)
        for s in range(n):
            deltas[out + o, s] = acts[out + o, s] * factor
    for layer in range(L - 1, -1, -1):
        fan_in, fan_out = layout[SIZES, layer], layout[SIZES, layer + 1]
        below, here, start = layout[ROWS, layer], layout[ROWS, layer + 1], layout[OFFSETS, layer]
        _weight_gradient(acts, below, fan_in + 1, deltas, here, fan_out, n, ws, grad, start)
        if layer == 0:
            break
        # δ below[j] = Σ_o W[j, o]·δ[o] in order o, times f'(z[j])
        combine_rows(deltas, below, fan_in, theta, start, fan_out, 1, deltas, here, fan_out, n)
        backprop(acts, deltas, below, fan_in, n, net.activation)


@compiled
def _weight_gradient(
    acts: np.ndarray,
    below: int,
    count: int,
    deltas: np.ndarray,
    here: int,
    fan_out: int,
    n: int,
    ws: Workspace,
    grad: np.ndarray,
    start: int,
) -> None:
    """grad[start + j·fan_out + o] = Σ_s acts[below + j, s]·δ[here + o, s] for the layer's
    ``count`` inputs j (the ones last: the bias) and its outputs o (numerics._fixed_matmul_nt)."""
    if not is_short(n):
        frames, partial = ws.frames, ws.partial
        for j in range(count):  # (fan_in + 1, fan_out)
            for o in range(fan_out):
                grad[start + j * fan_out + o] = pairwise_dot(
                    acts, below + j, deltas, here + o, n, frames, partial
                )
        return
    # Four sums at a time share one row: an input's against four outputs' rows, or where there
    # are fewer than four outputs, an output's against four inputs' (a·δ is δ·a, bit for bit).
    by_output = fan_out >= 4
    rows, others = (count, fan_out) if by_output else (fan_out, count)
    for r in range(rows):
        for q in range(0, others, 4):
            span = min(3, others - 1 - q)
            if by_output:
                x, i, y, j, at, step = (
                    acts,
                    below + r,
                    deltas,
                    here + q,
                    start + r * fan_out + q,
                    1,
                )
            else:
                x, i, y, j, at, step = (
                    deltas,
                    here + r,
                    acts,
                    below + q,
                    start + q * fan_out + r,
                    fan_out,
                )
            sums = short_dots4(x, i, y, j, span, n)
            for m in range(span + 1):
                grad[at + m * step] = sums[m]
