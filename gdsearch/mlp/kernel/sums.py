"""The kernel's two kinds of sum, in the reference's orders, eight samples at a time.

Over the samples (a gradient, an SSE): numpy's pairwise order (``numerics._pairwise``), whose
eight interleaved partial sums are one 8-lane vector here (:mod:`.lanes`). Over a layer's
inputs (a forward pass, the error sent down): index order, one sample's running sum per lane,
kept in registers across the inputs (``numerics._fixed_matmul``). Arrays are 2-D, C order,
rows taken in place by index.

Helpers that run inside the hottest loops are inlined where numba types them
(``inline="always"``): a call out of a loop that passes arrays costs the loop reference counting
and its vectorisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdsearch.mlp.kernel.jit import compiled, inlined
from gdsearch.mlp.kernel.lanes import lane, load, pair_sums, splat, store

BLOCK = 128
"""numpy sums at most this many values as one block; longer runs are split in two."""


# --- over the samples: numpy's pairwise order ----------------------------------------------


@compiled
def _join(sums: Any) -> float:
    """numpy's join of its eight partial sums r: ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + …)."""
    low = (lane(sums, 0) + lane(sums, 1)) + (lane(sums, 2) + lane(sums, 3))
    return low + ((lane(sums, 4) + lane(sums, 5)) + (lane(sums, 6) + lane(sums, 7)))


@inlined
def _block_dot(x: np.ndarray, i: int, y: np.ndarray, j: int, lo: int, n: int) -> float:
    """Σ x[i, s]·y[j, s] over s in [lo, lo + n), n ≤ 128, in numpy's order: fewer than 8
    values in turn; else eight interleaved partial sums (lane l sums the values l, l + 8, …)
    joined pairwise, then the values past the last whole eight in turn."""
    whole = lo + n - n % 8 if n >= 8 else lo
    total = -0.0  # −0 + v is v: a sum in turn starts from its first value
    if n >= 8:
        sums = splat(-0.0)
        for s in range(lo, whole, 8):  # (8,) samples
            sums = sums + load(x, i, s) * load(y, j, s)
        total = _join(sums)
    for s in range(whole, lo + n):
        total += x[i, s] * y[j, s]
    return total


@inlined
def halves(n: int) -> int:
    """Where numpy splits a sum of n > 128 values: n/2 rounded down to a multiple of 8."""
    half = n // 2
    return half - half % 8


@inlined
def is_short(n: int) -> bool:
    """Whether a pairwise sum of n values is one block or two blocks (the right half, the
    longer, at most 128): :func:`short_dots4`'s lengths."""
    return n <= BLOCK or n - halves(n) <= BLOCK


@compiled
def pairwise_dot(
    x: np.ndarray, i: int, y: np.ndarray, j: int, n: int, frames: np.ndarray, partial: np.ndarray
) -> float:
    """Σ x[i, s]·y[j, s] over s < n in numpy's pairwise order: blocks of up to 128 values,
    longer runs split where :func:`halves` says, the halves summed apart and then added. The
    split tree is walked with an explicit stack (``frames``: start, length and how far along;
    ``partial``: a left half's sum), not by recursion, which numba cannot cache."""
    top, value = 0, 0.0
    frames[0, 0], frames[0, 1], frames[0, 2] = 0, n, 0
    while top >= 0:
        start, size, stage = frames[top, 0], frames[top, 1], frames[top, 2]
        if size <= BLOCK:
            value = _block_dot(x, i, y, j, start, size)
            top -= 1
            continue
        half = halves(size)
        if stage == 0:  # the left half first
            frames[top, 2] = 1
            top += 1
            frames[top, 0], frames[top, 1], frames[top, 2] = start, half, 0
        elif stage == 1:  # the left half's sum is in value: then the right half
            partial[top], frames[top, 2] = value, 2
            top += 1
            frames[top, 0], frames[top, 1], frames[top, 2] = start + half, size - half, 0
        else:
            value = partial[top] + value
            top -= 1
    return value


@inlined
def short_dots4(
    x: np.ndarray, i: int, y: np.ndarray, j: int, span: int, n: int
) -> tuple[float, float, float, float]:
    """:func:`pairwise_dot` of x[i] with each of y[j], …, y[j + span] (span < 4; the last row
    repeated to make four), for n that :func:`is_short`: one block, or two added. The four sums
    share every eight values of x[i] loaded, and the two blocks are summed in lockstep: eight
    running sums, each lane's order kept, and none waiting on another."""
    j1, j2, j3 = j + min(1, span), j + min(2, span), j + min(3, span)
    half = halves(n) if n > BLOCK else n  # the left block [0, half), the right [half, n)
    left, right = half - half % 8, (n - half) - (n - half) % 8  # their whole eights
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = splat(-0.0)
    for s in range(0, right, 8):  # (4, 8) sums and samples, of each block
        t = half + s
        if s < left:
            u = load(x, i, s)
            a0 = a0 + u * load(y, j, s)
            a1 = a1 + u * load(y, j1, s)
            a2 = a2 + u * load(y, j2, s)
            a3 = a3 + u * load(y, j3, s)
        v = load(x, i, t)
        b0 = b0 + v * load(y, j, t)
        b1 = b1 + v * load(y, j1, t)
        b2 = b2 + v * load(y, j2, t)
        b3 = b3 + v * load(y, j3, t)
    for s in range(right, left, 8):  # a left block longer than the right (one block only)
        u = load(x, i, s)
        a0 = a0 + u * load(y, j, s)
        a1 = a1 + u * load(y, j1, s)
        a2 = a2 + u * load(y, j2, s)
        a3 = a3 + u * load(y, j3, s)
    l0, l1, l2, l3 = _finish4(a0, a1, a2, a3, x, i, y, j, j1, j2, j3, 0, left, half)
    if half == n:
        return l0, l1, l2, l3
    r0, r1, r2, r3 = _finish4(b0, b1, b2, b3, x, i, y, j, j1, j2, j3, half, half + right, n)
    return l0 + r0, l1 + r1, l2 + r2, l3 + r3


@inlined
def _finish4(
    s0: Any,
    s1: Any,
    s2: Any,
    s3: Any,
    x: np.ndarray,
    i: int,
    y: np.ndarray,
    j: int,
    j1: int,
    j2: int,
    j3: int,
    lo: int,
    whole: int,
    hi: int,
) -> tuple[float, float, float, float]:
    """Four block sums of [lo, hi) whose whole eights [lo, whole) are in s0 … s3: joined, then
    the rest added in turn (all in turn, from −0, for fewer than 8 values)."""
    t0 = t1 = t2 = t3 = -0.0
    if hi - lo >= 8:  # _join of each, four at a time: pairs, pairs of pairs, then the halves
        quarters = pair_sums(pair_sums(s0, s1), pair_sums(s2, s3))
        joined = pair_sums(quarters, quarters)
        t0, t1, t2, t3 = lane(joined, 0), lane(joined, 1), lane(joined, 2), lane(joined, 3)
    for s in range(whole, hi):
        u = x[i, s]
        t0 += u * y[j, s]
        t1 += u * y[j1, s]
        t2 += u * y[j2, s]
        t3 += u * y[j3, s]
    return t0, t1, t2, t3


# --- over a layer's inputs: index order -----------------------------------------------------


@compiled
def combine_rows(
    out: np.ndarray,
    row: int,
    rows: int,
    W: np.ndarray,
    offset: int,
    step: int,
    stride: int,
    src: np.ndarray,
    first: int,
    count: int,
    n: int,
) -> None:
    """out[row + r, s] = Σ_c W[offset + r·step + c·stride]·src[first + c, s] over
    c = 0 … count − 1 in order, for r < rows and s < n (numerics._fixed_matmul): eight samples
    of four rows at a time, their running sums in registers and every eight values of src
    loaded once for the four; then the last rows one at a time; then the last samples."""
    whole, quads = n - n % 8, rows - rows % 4
    for r in range(0, quads, 4):
        at = offset + r * step
        for s in range(0, whole, 8):  # (4, 8) rows and samples
            a = load(src, first, s)
            t0, t1, t2, t3 = (
                W[at] * a,
                W[at + step] * a,
                W[at + 2 * step] * a,
                W[at + 3 * step] * a,
            )
            for c in range(1, count):
                a, w = load(src, first + c, s), at + c * stride
                t0 = t0 + W[w] * a
                t1 = t1 + W[w + step] * a
                t2 = t2 + W[w + 2 * step] * a
                t3 = t3 + W[w + 3 * step] * a
            store(out, row + r, s, t0)
            store(out, row + r + 1, s, t1)
            store(out, row + r + 2, s, t2)
            store(out, row + r + 3, s, t3)
    for r in range(quads, rows):
        at = offset + r * step
        for s in range(0, whole, 8):  # (8,) samples
            total = W[at] * load(src, first, s)
            for c in range(1, count):
                total = total + W[at + c * stride] * load(src, first + c, s)
            store(out, row + r, s, total)
    for r in range(rows):
        at = offset + r * step
        for s in range(whole, n):
            value = W[at] * src[first, s]
            for c in range(1, count):
                value += W[at + c * stride] * src[first + c, s]
            out[row + r, s] = value
