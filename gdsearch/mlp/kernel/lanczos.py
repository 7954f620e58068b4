"""The sharpness meter's step in compiled code: one Lanczos step of many trials at once, the
operations of :func:`gdsearch.mlp.sharpness._lanczos`'s numpy step in the same order.

The Hessian-vector product is a forward difference of the gradient, (∇L(θ + εv) − ∇L(θ)) / ε
(plus wd·v with weight decay); the step then takes α = v·w, reorthogonalizes w against every
vector of the basis so far, and takes β = |w|. The small tridiagonal eigenproblem that follows
stays with numpy (LAPACK), as it is on the numpy path.
"""

from __future__ import annotations

import math

import numpy as np

from gdsearch.mlp.kernel.borrowed import borrow
from gdsearch.mlp.kernel.jit import compiled
from gdsearch.mlp.kernel.passes import (
    Net,
    Workspace,
    backward,
    borrow_net,
    borrow_workspace,
    forward,
    residual_sse,
)
from gdsearch.mlp.kernel.sums import pairwise_dot


@compiled
def lanczos_step(
    thetas: np.ndarray,
    eps: np.ndarray,
    base: np.ndarray,
    basis: np.ndarray,
    j: int,
    rows: np.ndarray,
    weight_decay: float,
    net: Net,
    targets: np.ndarray,
    scale: float,
    ws: Workspace,
    w: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
) -> None:
    """Step ``j`` of the trials ``rows``: their α and β (the m-th of ``rows`` in entry m), and
    their next Lanczos vectors w / β in ``basis`` (0 where β is not positive).

    Args:
        thetas: (K, P) the trials' weights. eps: (K,) their difference steps.
        base: (K, P) the gradient of ``scale``·SSE at ``thetas``.
        basis: ((steps + 1)·K, P) the Lanczos vectors, vector i of trial k in row i·K + k.
        j: the step. rows: the trials that take it.
        weight_decay: wd, added to every product.
        net, targets, scale, ws: the networks, the samples' targets (k, n) (``ws`` holds their
            inputs) and the loss's factor.
        w: (2, P) scratch. alpha, beta: (len(rows),), out.
    """
    thetas, eps, base, basis = borrow(thetas), borrow(eps), borrow(base), borrow(basis)
    net, targets, ws, rows = borrow_net(net), borrow(targets), borrow_workspace(ws), borrow(rows)
    w, alpha, beta = borrow(w), borrow(alpha), borrow(beta)
    K, P = thetas.shape
    n, last = targets.shape[1], basis.shape[0] // K - 1
    moved, g = w[1], w[0]  # (P,) the moved weights, and w itself
    for m in range(len(rows)):
        k = rows[m]
        v, e = basis[j * K + k], eps[k]
        for p in range(P):
            moved[p] = thetas[k, p] + e * v[p]
        forward(moved, net, n, ws)
        residual_sse(net, targets, n, ws)
        backward(moved, net, n, scale, ws, g)
        for p in range(P):  # H·v ≈ (∇L(θ + εv) − ∇L(θ)) / ε
            g[p] = (g[p] - base[k, p]) / e
        if weight_decay != 0.0:
            for p in range(P):
                g[p] = g[p] + weight_decay * v[p]
        alpha[m] = pairwise_dot(basis, j * K + k, w, 0, P, ws.frames, ws.partial)
        for i in range(j + 1):  # full reorthogonalization
            earlier = basis[i * K + k]
            d = pairwise_dot(basis, i * K + k, w, 0, P, ws.frames, ws.partial)
            for p in range(P):
                g[p] = g[p] - d * earlier[p]
        b = math.sqrt(pairwise_dot(w, 0, w, 0, P, ws.frames, ws.partial))
        beta[m] = b
        if j < last:
            following = basis[(j + 1) * K + k]
            for p in range(P):
                following[p] = g[p] / b if b > 0 else 0.0
