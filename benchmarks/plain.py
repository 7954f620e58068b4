"""What a user would write instead of gdsearch: a plain numpy MLP trained by gradient descent.

The comparators of the benchmarks, written as a person who knows numpy writes them: matrices
through ``@`` (BLAS), ``np.tanh``, the SSE and its gradient by hand. None of gdsearch's code
trains here; only the data and each trial's initial weights come from the job, so that every
method starts from the same point. Their last bits follow the machine (they use BLAS), so their
histories agree with gdsearch's to rounding, not bit for bit.

- :func:`train_one` (:func:`descend`): one trial at a time, the loop a user writes first; it
  stops a trial whose SSE is not finite or passes the job's divergence limit, as gdsearch does.
- :func:`train_stacked`: every trial of one shape at once, weights stacked on a leading axis,
  one batched ``np.matmul`` per layer; all trials run every epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

Params = list[tuple[np.ndarray, np.ndarray]]


def descend(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    lr: float,
    epochs: int,
    divergence_factor: float = 1e6,
) -> Iterator[float]:
    """Full-batch gradient descent on SSE / n, tanh hidden layers: yields the SSE at epochs
    0 … epochs, before each step, and stops early once it is not finite or passes
    ``divergence_factor`` × the first."""
    Ws = [W.copy() for W, _ in params]
    bs = [b.copy() for _, b in params]
    n, first = len(X), None
    for epoch in range(epochs + 1):
        acts = [X]
        for W, b in zip(Ws[:-1], bs[:-1], strict=True):
            acts.append(np.tanh(acts[-1] @ W + b))
        error = acts[-1] @ Ws[-1] + bs[-1] - Y
        sse = float(np.sum(error * error))
        first = sse if first is None else first
        if not np.isfinite(sse) or sse > divergence_factor * first:
            return
        yield sse
        if epoch == epochs:
            return
        delta = 2.0 * error / n
        for layer in range(len(Ws) - 1, -1, -1):
            grad_W, grad_b = acts[layer].T @ delta, delta.sum(axis=0)
            if layer:
                delta = (delta @ Ws[layer].T) * (1.0 - acts[layer] ** 2)
            Ws[layer] -= lr * grad_W
            bs[layer] -= lr * grad_b


def train_one(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    lr: float,
    epochs: int,
    divergence_factor: float = 1e6,
) -> np.ndarray:
    """One trial's SSE history (:func:`descend` to the end)."""
    return np.array(list(descend(params, X, Y, lr, epochs, divergence_factor)))


def train_stacked(
    params: list[Params], X: np.ndarray, Y: np.ndarray, lrs: np.ndarray, epochs: int
) -> np.ndarray:
    """Every trial at once (one shape): the (K, epochs + 1) SSE histories, inf or NaN once a
    trial has diverged."""
    Ws = [np.stack([p[layer][0] for p in params]) for layer in range(len(params[0]))]
    bs = [np.stack([p[layer][1] for p in params])[:, None, :] for layer in range(len(params[0]))]
    lr = np.asarray(lrs, dtype=np.float64)[:, None, None]
    n = len(X)
    history = np.empty((len(params), epochs + 1))
    with np.errstate(all="ignore"):
        for epoch in range(epochs + 1):
            acts = [np.broadcast_to(X, (len(params), *X.shape))]
            for W, b in zip(Ws[:-1], bs[:-1], strict=True):
                acts.append(np.tanh(acts[-1] @ W + b))
            error = acts[-1] @ Ws[-1] + bs[-1] - Y
            history[:, epoch] = np.sum(error * error, axis=(1, 2))
            if epoch == epochs:
                break
            delta = 2.0 * error / n
            for layer in range(len(Ws) - 1, -1, -1):
                grad_W = np.swapaxes(acts[layer], 1, 2) @ delta
                grad_b = delta.sum(axis=1, keepdims=True)
                if layer:
                    delta = (delta @ np.swapaxes(Ws[layer], 1, 2)) * (1.0 - acts[layer] ** 2)
                Ws[layer] -= lr * grad_W
                bs[layer] -= lr * grad_b
    return history


def fit(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    lr: float,
    epochs: int,
    momentum: float = 0.0,
    divergence_factor: float = 1e6,
) -> Params | None:
    """Full-batch descent on SSE / n with heavy-ball momentum as ``torch.optim.SGD`` takes it
    (v ← β·v + g, θ ← θ − lr·v), tanh hidden layers: the final weights, or None once the SSE
    is not finite or passes ``divergence_factor`` × the first."""
    Ws = [W.copy() for W, _ in params]
    bs = [b.copy() for _, b in params]
    vW = [np.zeros_like(W) for W in Ws]
    vb = [np.zeros_like(b) for b in bs]
    n, first = len(X), None
    for epoch in range(epochs + 1):
        acts = [X]
        for W, b in zip(Ws[:-1], bs[:-1], strict=True):
            acts.append(np.tanh(acts[-1] @ W + b))
        error = acts[-1] @ Ws[-1] + bs[-1] - Y
        sse = float(np.sum(error * error))
        first = sse if first is None else first
        if not np.isfinite(sse) or sse > divergence_factor * first:
            return None
        if epoch == epochs:  # measured at the last epoch: no step after it
            break
        delta = 2.0 * error / n
        for layer in range(len(Ws) - 1, -1, -1):
            grad_W, grad_b = acts[layer].T @ delta, delta.sum(axis=0)
            if layer:
                delta = (delta @ Ws[layer].T) * (1.0 - acts[layer] ** 2)
            vW[layer] = momentum * vW[layer] + grad_W
            vb[layer] = momentum * vb[layer] + grad_b
            Ws[layer] -= lr * vW[layer]
            bs[layer] -= lr * vb[layer]
    return list(zip(Ws, bs, strict=True))


def sse(params: Params, X: np.ndarray, Y: np.ndarray) -> float:
    """The SSE of a tanh MLP on (X, Y)."""
    a = X
    for W, b in params[:-1]:
        a = np.tanh(a @ W + b)
    error = a @ params[-1][0] + params[-1][1] - Y
    return float(np.sum(error * error))
