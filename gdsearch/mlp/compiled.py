"""The compiled kernel (:mod:`gdsearch.mlp.kernel`) as training uses it, where it runs.

The portable path trains in the kernel wherever numba imports and compiles it; elsewhere (a
platform numba does not support) it runs the numpy reference, the same bits, more slowly, and
says so in one warning line. ``GDSEARCH_KERNEL=numpy`` picks the numpy reference on purpose.
:class:`Job` turns a population's data, settings and records into the kernel's arguments.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from gdsearch.data.holdout import Holdout
from gdsearch.errors import one_line
from gdsearch.mlp.config import TrainConfig
from gdsearch.mlp.network import Stacked, flatten, sizes_of, unflatten, with_ones_t
from gdsearch.mlp.optim import SGD, GradientDescent, UpdateRule

log = logging.getLogger("gdsearch")

KERNEL_VARIABLE = "GDSEARCH_KERNEL"
"""Set to ``numpy`` to train on the numpy portable path, the kernel's reference."""
ORDER_VALUES = 1 << 21
"""A stretch of mini-batch training draws at most about this many sample indices ahead."""
_NO_CLASSES = np.empty(0, dtype=np.int64)


@functools.cache
def kernel() -> ModuleType | None:
    """The compiled kernel's package, or None where the numpy portable path trains instead."""
    if os.environ.get(KERNEL_VARIABLE, "").lower() == "numpy":
        return None
    try:
        from gdsearch.mlp import kernel as compiled
    except Exception as exc:  # numba missing, or failing on this platform
        log.warning(
            "the compiled kernel is unavailable (%s); training runs on the numpy portable "
            "path, with the same results, more slowly",
            one_line(exc, with_type=True),
        )
        return None
    return compiled


def available() -> bool:
    """Whether the portable path trains in the compiled kernel here."""
    return kernel() is not None


def runs(rule: UpdateRule) -> bool:
    """Whether the kernel trains a population stepped by ``rule``: one of the built-in rules
    (a rule of one's own, a subclass included, runs in numpy) where the kernel is available."""
    return type(rule) in (GradientDescent, SGD) and available()


def data(X: np.ndarray, Y: np.ndarray, classes: np.ndarray = _NO_CLASSES) -> Any:
    """Samples (n, d) and targets (n, k) as the kernel takes them: feature-major, a row of ones
    under the inputs."""
    compiled = _kernel()
    return compiled.Data(
        np.ascontiguousarray(with_ones_t(X)),
        np.ascontiguousarray(Y.T),
        np.ascontiguousarray(classes, dtype=np.int64),
    )


def _velocities(rule: UpdateRule, like: Stacked) -> np.ndarray:
    """The rule's momentum buffers as one (K, P) array: zeros before the first step, and no
    columns for a rule without them."""
    K = like[0].shape[0]
    if not isinstance(rule, SGD):
        return np.zeros((K, 0))
    if rule.velocity is None:
        return np.zeros((K, sum(Wb[0].size for Wb in like)))
    return flatten(rule.velocity)


class Job:
    """One population's training in the kernel: its data, geometry, settings and records.

    Args:
        X, Y: the samples trained on, (n, d) and (n, k).
        holdout: the held-out samples, or None.
        population: the :class:`~gdsearch.mlp.population.Population` trained: its records
            (histories, held-out histories, status, stop epochs) are written in place.
    """

    def __init__(
        self, X: np.ndarray, Y: np.ndarray, holdout: Holdout | None, population: Any
    ) -> None:
        compiled = _kernel()
        config: TrainConfig = population.config
        self.compiled = compiled
        self.sizes = sizes_of(population.active.Wbs)
        self.batch_size = config.minibatch(X.shape[0]) or 0
        self.net = compiled.make_net(self.sizes, population.activation)
        self.data = data(X, Y)
        self.X1_t, self.Y_t = self.data.inputs, self.data.targets
        self.held = _held(holdout, X.shape[1], Y.shape[1])
        empty = np.empty((0, 0))
        self.records = compiled.Records(
            population.histories,
            empty if population.val_sse is None else population.val_sse,
            empty if population.val_accuracy is None else population.val_accuracy,
            population.status,
            population.stop_epoch,
        )
        schedule = config.schedule()
        factors = np.empty(0)
        if schedule is not None:
            factors = np.array([schedule.factor(t) for t in range(config.epochs)])
        self.rule = compiled.Rule(
            float(config.momentum),
            bool(config.nesterov),
            float(config.weight_decay),
            schedule is not None,
            factors,
            config.grad_scale == "mean",
        )
        self.stopping = compiled.Stopping(
            float(config.divergence_factor),
            int(config.patience),
            float(config.patience_tolerance),
            config.watches_held_out,
        )
        self.buffers = compiled.buffers(self.net, self.data, self.held, self.batch_size)
        self._views: tuple[Stacked, np.ndarray, np.ndarray] | None = None

    def train(
        self, active: Any, first: int, last: int, measured: bool, keep: bool, carry: np.ndarray
    ) -> None:
        """Train the population's running trials (``active``: their weights, update rule,
        generators and stopping state) from epoch ``first`` until ``last`` is measured, in
        place. ``measured``: the call before measured ``first`` at these weights and left the
        gradient there in ``carry`` (K, P); ``keep``: leave the gradient at ``last`` in it
        (full batch; see :class:`~gdsearch.mlp.kernel.Stretch`). Mini-batch orders are drawn
        from the trials' generators, one permutation per epoch, as the numpy loop draws them."""
        c, rule = self.compiled, active.rule
        thetas, velocities = self._flat(active)
        watch = c.Watch(
            np.ascontiguousarray(active.limit, dtype=np.float64),
            np.ascontiguousarray(active.best, dtype=np.float64),
            np.ascontiguousarray(active.since, dtype=np.int64),
        )
        head = (
            thetas,
            velocities,
            np.ascontiguousarray(rule.lr[:, 0, 0]),
            np.ascontiguousarray(active.index, dtype=np.int64),
            self.net,
            self.rule,
            self.stopping,
            self.data,
            self.held,
            c.Stretch(first, last, measured, keep and not self.batch_size),
        )
        tail = (self.records, watch, self.buffers)
        if self.batch_size:
            n, epochs = self.data.inputs.shape[1], last - first
            orders = np.array(
                [[rng.permutation(n) for _ in range(epochs)] for rng in active.rngs],
                dtype=np.int64,
            ).reshape(len(active.rngs), epochs, n)
            c.cache.call(c.advance_batches, *head, *tail, orders, self.batch_size)
        else:
            c.cache.call(c.advance, *head, carry, *tail)
        active.limit, active.best, active.since = watch

    def _flat(self, active: Any) -> tuple[np.ndarray, np.ndarray]:
        """The running trials' weights and momentum buffers as (K, P) arrays, which the kernel
        moves in place, ``active.Wbs`` (and the rule's velocity) made views of them: the same
        arrays from one call to the next until trials leave (and ``active.Wbs`` is remade)."""
        if self._views is not None and active.Wbs is self._views[0]:
            return self._views[1], self._views[2]
        rule = active.rule
        thetas, velocities = flatten(active.Wbs), _velocities(rule, active.Wbs)
        active.Wbs = unflatten(thetas, active.Wbs)
        if isinstance(rule, SGD):
            rule.velocity = unflatten(velocities, active.Wbs)
        self._views = (active.Wbs, thetas, velocities)
        return thetas, velocities


class Gradients:
    """∇(scale·SSE), or the SSE, of many weight vectors (K, P) of one geometry on the same
    data, in the kernel (the sharpness meter's products, a landscape's grids)."""

    def __init__(
        self, X1_t: np.ndarray, Y_t: np.ndarray, sizes: Sequence[int], activation: str
    ) -> None:
        compiled = _kernel()
        self.compiled = compiled
        self.net = compiled.make_net(list(sizes), activation)
        self.targets = np.ascontiguousarray(Y_t)
        self.ws = compiled.workspace(self.net, X1_t.shape[1], X1_t)

    def __call__(self, thetas: np.ndarray, scale: float) -> np.ndarray:
        out = np.empty_like(thetas)
        self.compiled.cache.call(
            self.compiled.gradients,
            np.ascontiguousarray(thetas),
            self.net,
            self.targets,
            float(scale),
            self.ws,
            out,
        )
        return out

    def sse(self, thetas: np.ndarray) -> np.ndarray:
        """(K,) the SSE at each row of ``thetas`` (K, P), as training measures it."""
        out = np.empty(thetas.shape[0])
        c = self.compiled
        c.cache.call(c.sse_of, np.ascontiguousarray(thetas), self.net, self.targets, self.ws, out)
        return out

    def lanczos(
        self, thetas: np.ndarray, eps: np.ndarray, base: np.ndarray, scale: float, decay: float
    ) -> Callable[[np.ndarray, int, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The Lanczos step of the sharpness meter (``sharpness._lanczos``'s ``step``) at the
        weights ``thetas`` (K, P), their difference steps ``eps`` (K,) and gradient ``base``."""
        c = self.compiled
        thetas, base = np.ascontiguousarray(thetas), np.ascontiguousarray(base)
        eps, scratch = np.ascontiguousarray(eps), np.empty((2, thetas.shape[1]))

        def step(basis: np.ndarray, j: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            alpha, beta = np.empty(len(rows)), np.empty(len(rows))
            flat = basis.reshape(-1, basis.shape[-1])  # vector i of trial k in row i·K + k
            c.cache.call(
                c.lanczos_step,
                thetas,
                eps,
                base,
                flat,
                j,
                rows.astype(np.int64, copy=False),
                float(decay),
                self.net,
                self.targets,
                float(scale),
                self.ws,
                scratch,
                alpha,
                beta,
            )
            return alpha, beta

        return step


def _held(holdout: Holdout | None, d: int, k: int) -> Any:
    """The held-out samples as the kernel takes them (no columns where there are none)."""
    if holdout is None:
        return data(np.empty((0, d)), np.empty((0, k)))
    Y = holdout.Y
    classes = _NO_CLASSES
    if holdout.classes:
        classes = (Y[:, 0] > 0.5).astype(np.int64) if k == 1 else Y.argmax(axis=1)
    return data(holdout.X, Y, classes)


def _kernel() -> ModuleType:
    compiled = kernel()
    assert compiled is not None, "the compiled kernel is unavailable here"
    return compiled
