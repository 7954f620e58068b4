"""Training a population: K trials that share data, layer sizes and training config.

Each trial has its own learning rate, weights and stopping epoch; stopped trials are compacted
out, so that they cost nothing. The forward and backward passes are :mod:`gdsearch.mlp.network`;
the step is the population's update rule (:mod:`gdsearch.mlp.optim`), built from its
:class:`~gdsearch.mlp.config.TrainConfig`. Every operation acts on each trial's slice alone, so
a trial's history is the same, value for value, whatever population it is trained in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from gdsearch.data.holdout import Holdout, correct_share
from gdsearch.errors import InputError
from gdsearch.mlp import compiled
from gdsearch.mlp.activations import check_activation
from gdsearch.mlp.config import TrainConfig
from gdsearch.mlp.network import (
    Params,
    Stacked,
    Workspace,
    backward,
    check_grad_scale,
    flatten,
    forward,
    loss_scale,
    residual_sse,
    sizes_of,
    stack_params,
    unstack_params,
    with_ones_t,
)
from gdsearch.mlp.optim import UpdateRule
from gdsearch.mlp.sharpness import SharpnessMeter
from gdsearch.mlp.stopping import DIVERGED, OK, PATIENCE_SPIKE, PLATEAUED, PRUNED, RUNNING
from gdsearch.mlp.stopping import STATUS_CODES as STATUS_CODES  # re-exported

_BLAS = ThreadpoolController()


def one_blas_thread() -> Any:
    """A context in which BLAS and LAPACK run on one thread (a work unit is one CPU's work)."""
    return _BLAS.limit(limits=1, user_api="blas")


RUNG_METRICS = ("sse", "auc", "val_sse", "val_auc")
"""How a scheduler ranks trials at a rung: the SSE at the rung's epoch, or the mean SSE over
epochs 0 … rung (the area under the curve per epoch, which also rewards getting there fast);
``val_``: the same of the held-out SSE (a job that holds data out)."""


def rung_metric(histories: np.ndarray, rung: int, metric: str = "sse") -> np.ndarray:
    """Each history's ``RUNG_METRICS`` value at epoch ``rung``; histories are (K, ≥ rung + 1):
    the held-out SSE's for a ``val_`` metric, which is computed as the same without it."""
    metric = metric.removeprefix("val_")
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
        sharpness: (K, epochs // k + 1) the sharpness at epochs 0, k, 2k, … with
            ``sharpness_every`` = k, NaN where not measured; None when k is 0.
        val_sse: (K, epochs + 1) the held-out samples' SSE at each epoch's weights, NaN where
            not measured; None without held-out data.
        val_accuracy: (K, epochs + 1) the held-out accuracy likewise, for class targets only.
    """

    histories: np.ndarray
    lengths: np.ndarray
    diverged_epoch: np.ndarray
    params: Stacked
    status: np.ndarray
    sharpness: np.ndarray | None = None
    val_sse: np.ndarray | None = None
    val_accuracy: np.ndarray | None = None


@dataclass
class _Active:
    """The trials still training, compacted so that stopped ones cost nothing."""

    index: np.ndarray
    Wbs: Stacked
    rule: UpdateRule
    limit: np.ndarray
    rngs: list[np.random.Generator]
    best: np.ndarray  # the patience rule's reference SSE, and the epoch it was set
    since: np.ndarray
    curvature: np.ndarray | None = None  # (K, P) each trial's last top Hessian eigenvector

    def drop(self, mask: np.ndarray, final: Stacked) -> None:
        """Move the trials in ``mask`` out of the population, saving their weights."""
        for Wb, Wb_final in zip(self.Wbs, final, strict=True):
            Wb_final[self.index[mask]] = Wb[mask]
        keep = ~mask
        self.index = self.index[keep]
        self.Wbs = [Wb[keep] for Wb in self.Wbs]
        self.rule.keep(keep)
        self.limit = self.limit[keep]
        self.best = self.best[keep]
        self.since = self.since[keep]
        if self.curvature is not None:
            self.curvature = self.curvature[keep]
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
    A rise of the SSE to more than (1 + ``PATIENCE_SPIKE``) × that reference is a spike, not a
    plateau: the reference restarts from the spike, so a trial whose loss spikes and falls again
    at the edge of stability is not stopped while it recovers.
    """

    def __init__(
        self,
        params: Stacked,
        lrs: np.ndarray,
        config: TrainConfig,
        activation: str = "tanh",
        shuffle_rngs: Sequence[np.random.Generator] | None = None,
    ) -> None:
        self.activation = check_activation(activation)
        check_grad_scale(config.grad_scale)
        self.config = config
        K = len(lrs)
        if shuffle_rngs is not None and len(shuffle_rngs) != K:
            raise InputError("mini-batch training needs one shuffle generator per trial")
        self.histories = np.full((K, config.epochs + 1), np.nan)
        self.status = np.full(K, RUNNING, dtype=np.int8)
        self.stop_epoch = np.full(K, -1, dtype=np.int64)
        self.epoch = 0  # the next epoch whose SSE is to be measured
        self.final = [Wb.copy() for Wb in params]
        every = config.sharpness_every
        self.sharpness = np.full((K, config.epochs // every + 1), np.nan) if every else None
        self.sharpness_through = -1  # the last epoch whose sharpness was measured
        self.val_sse: np.ndarray | None = None  # with held-out data: see _measure_holdout
        self.val_accuracy: np.ndarray | None = None
        self.watched: Collection[int] = ()  # see watch
        self.on_epoch: Callable[[int], None] | None = None
        self.active = _Active(
            index=np.arange(K),
            Wbs=[Wb.copy() for Wb in params],
            rule=config.update_rule(lrs),
            limit=np.full(K, np.inf),
            rngs=list(shuffle_rngs) if shuffle_rngs else [],
            best=np.full(K, np.inf),
            since=np.zeros(K, dtype=np.int64),
        )

    def watch(self, epochs: Collection[int], on_epoch: Callable[[int], None]) -> None:
        """Call ``on_epoch(e)`` while training, at each of these epochs e once it is measured
        (the running trials' weights then θ_e in ``active.Wbs``, a stopped trial's in
        ``final``), before the step that leaves it. Watching changes no value."""
        self.watched, self.on_epoch = set(epochs), on_epoch

    def weights(self) -> np.ndarray:
        """Every trial's weights now, (K, P): a running trial's current ones, a stopped
        trial's last (see :class:`PopulationResult`'s ``params``)."""
        now = flatten(self.final)
        if len(self.active.index):
            now[self.active.index] = flatten(self.active.Wbs)
        return now

    def advance(
        self, X: np.ndarray, Y: np.ndarray, until: int, holdout: Holdout | None = None
    ) -> None:
        """Train the running trials until epoch ``until`` (≤ epochs) has been measured.

        Trials still running at ``epochs`` end as ok. With ``holdout``, each epoch's weights
        are also measured on the held-out samples (never trained on); give the same samples
        at every call.
        """
        n, config = X.shape[0], self.config
        batch_size = config.minibatch(n)
        active = self.active
        if not len(active.index):
            return
        if batch_size is not None and not active.rngs:
            raise InputError("mini-batch training needs one shuffle generator per trial")
        if config.watches_held_out and holdout is None:
            raise InputError('patience_metric = "val_sse" needs held-out data, but got none')
        if config.numerics == "portable" and compiled.runs(active.rule):
            self._advance_compiled(X, Y, until, holdout)
            return
        X1_t, Y_t, sizes = with_ones_t(X), np.ascontiguousarray(Y.T), sizes_of(active.Wbs)
        ws = Workspace(len(active.index), X1_t, sizes, config.numerics)
        meter = self._meter(X1_t, Y_t, sizes, n)
        held = self._holdout_workspace(holdout, sizes)
        with one_blas_thread(), np.errstate(all="ignore"):
            for epoch in range(max(0, self.epoch - 1), until + 1):
                # An epoch measured at the end of the last call is measured again (the same
                # value): its forward pass is the start of the next step.
                forward(active.Wbs, ws, self.activation)
                sse = residual_sse(ws, Y_t)
                if held is not None:
                    assert holdout is not None
                    self._measure_holdout(epoch, *held, holdout)
                watched = self._watched(epoch, sse)
                if epoch == 0:
                    active.limit = np.where(sse > 0, config.divergence_factor * sse, np.inf)
                    active.best = watched.copy()
                stop = self._check(epoch, sse, watched)
                if self.on_epoch is not None and epoch in self.watched:
                    self.on_epoch(epoch)  # the trials stopping here still in training
                if stop.any():
                    active.drop(stop, self.final)
                    if not len(active.index):
                        break
                    ws.keep(~stop)
                    if held is not None:
                        held[0].keep(~stop)
                if self.sharpness is not None and epoch % config.sharpness_every == 0:
                    self._measure_sharpness(epoch, meter)
                if epoch == until:
                    break
                active.rule.start_epoch(epoch)
                if batch_size is not None:
                    _minibatch_epoch(active, X1_t, Y_t, batch_size, config, self.activation, sizes)
                else:
                    scale = loss_scale(config.grad_scale, n)
                    active.rule.step(
                        active.Wbs, backward(active.Wbs, ws, ws.out, scale, self.activation)
                    )
            self.epoch = until + 1
            if until == config.epochs:
                self._stop(np.ones(len(active.index), dtype=bool), OK, until)

    def _advance_compiled(
        self, X: np.ndarray, Y: np.ndarray, until: int, holdout: Holdout | None
    ) -> None:
        """:meth:`advance` in the compiled kernel, the same bits as the numpy loop: the kernel
        trains each running trial through a stretch of epochs that ends at ``until`` or where
        the sharpness is due; between stretches, stopped trials leave and the sharpness is
        measured."""
        config, n = self.config, X.shape[0]
        if holdout is not None:
            self._holdout_records(holdout)
        job = compiled.Job(X, Y, holdout, self)
        meter = self._meter(job.X1_t, job.Y_t, job.sizes, n)
        stretches = self._stretches(until, n, job.batch_size)
        carry = np.empty((len(self.active.index), sum(Wb[0].size for Wb in self.active.Wbs)))
        for count, (first, last) in enumerate(stretches):
            active = self.active
            sharpness = self.sharpness is not None and last % config.sharpness_every == 0
            keep = count + 1 < len(stretches) or sharpness  # the next call's first step
            job.train(active, first, last, count > 0, keep, carry)
            if self.on_epoch is not None and last in self.watched:
                self.on_epoch(last)  # the trials stopping here still in training
            stop = self.status[active.index] != RUNNING
            if stop.any():
                active.drop(stop, self.final)
                carry = carry[~stop]
            if not len(active.index):
                break
            if sharpness:
                base = None if job.batch_size else carry  # the gradient the kernel left there
                self._measure_sharpness(last, meter, base)

        self.epoch = until + 1
        if until == config.epochs:
            self._stop(np.ones(len(self.active.index), dtype=bool), OK, until)

    def _stretches(self, until: int, n: int, batch_size: int) -> list[tuple[int, int]]:
        """The (first, last) epochs of each call of the kernel up to ``until``: a stretch ends
        where the sharpness is due or an epoch is watched, and holds at most ``ORDER_VALUES``
        mini-batch orders."""
        first, every = max(0, self.epoch - 1), self.config.sharpness_every
        ends = {until} | {e for e in self.watched if first <= e < until}
        if every:
            due = range(first + (-first) % every, until + 1, every)
            ends.update(e for e in due if e > self.sharpness_through)
        K = len(self.active.index)
        longest = max(1, compiled.ORDER_VALUES // (K * n)) if batch_size else until
        stretches = []
        for end in sorted(ends):
            while end - first > longest:
                stretches.append((first, first + longest))
                first += longest
            stretches.append((first, end))
            first = end
        return stretches

    def _holdout_records(self, holdout: Holdout) -> None:
        """Make the held-out histories on first use."""
        if self.val_sse is None:
            self.val_sse = np.full_like(self.histories, np.nan)
            if holdout.classes:
                self.val_accuracy = np.full_like(self.histories, np.nan)

    def _holdout_workspace(
        self, holdout: Holdout | None, sizes: list[int]
    ) -> tuple[Workspace, np.ndarray] | None:
        """The buffers of the held-out samples' forward pass and their targets transposed
        (None without them); the history arrays are made on first use."""
        if holdout is None:
            return None
        self._holdout_records(holdout)
        X1_t = with_ones_t(holdout.X)
        ws = Workspace(len(self.active.index), X1_t, sizes, self.config.numerics)
        return ws, np.ascontiguousarray(holdout.Y.T)

    def _measure_holdout(
        self, epoch: int, held: Workspace, Y_t: np.ndarray, holdout: Holdout
    ) -> None:
        """Record the running trials' held-out SSE (and accuracy) at this epoch's weights."""
        assert self.val_sse is not None
        index = self.active.index
        forward(self.active.Wbs, held, self.activation)
        if self.val_accuracy is not None:
            self.val_accuracy[index, epoch] = correct_share(held.out, holdout.Y)
        self.val_sse[index, epoch] = residual_sse(held, Y_t)

    def _meter(self, X1_t: np.ndarray, Y_t: np.ndarray, sizes: list[int], n: int) -> Any:
        """The sharpness meter of an advance on these samples, or None where it measures none."""
        config = self.config
        if self.sharpness is None:
            return None
        return SharpnessMeter(
            X1_t,
            Y_t,
            sizes,
            self.activation,
            loss_scale(config.grad_scale, n),
            config.weight_decay,
            config.numerics,
        )

    def _measure_sharpness(
        self, epoch: int, meter: SharpnessMeter, base: np.ndarray | None = None
    ) -> None:
        """Record the running trials' sharpness at this epoch's weights (once per epoch: an
        epoch measured at the end of one call starts the next); ``base``: the gradient there,
        where training has it already."""
        assert self.sharpness is not None
        active, config = self.active, self.config
        if epoch <= self.sharpness_through:
            return
        if active.curvature is None:
            active.curvature = meter.start(len(active.index), sum(Wb[0].size for Wb in active.Wbs))
        values, active.curvature = meter.measure(active.Wbs, active.curvature, base)
        self.sharpness[active.index, epoch // config.sharpness_every] = values
        self.sharpness_through = epoch

    def _watched(self, epoch: int, sse: np.ndarray) -> np.ndarray:
        """What the patience rule watches this epoch: the running trials' SSE, or their
        held-out SSE (measured already) with ``patience_metric = "val_sse"``."""
        if not self.config.watches_held_out:
            return sse
        assert self.val_sse is not None
        return self.val_sse[self.active.index, epoch]

    def _check(self, epoch: int, sse: np.ndarray, watched: np.ndarray) -> np.ndarray:
        """Record this epoch's SSE; stop trials that diverged, or whose ``watched`` value
        plateaued. Returns the mask."""
        active = self.active
        bad = ~(np.isfinite(sse) & (sse <= active.limit))
        self.histories[active.index, epoch] = sse
        stop = bad
        patience = self.config.patience
        if patience:
            better = watched < active.best * (1.0 - self.config.patience_tolerance)
            better |= watched > active.best * (1.0 + PATIENCE_SPIKE)  # a spike restarts the count
            active.best = np.where(better, watched, active.best)
            active.since = np.where(better, epoch, active.since)
            flat = ~bad & (epoch - active.since >= patience)
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
        return PopulationResult(
            self.histories,
            lengths,
            diverged_epoch,
            weights,
            self.status,
            self.sharpness,
            self.val_sse,
            self.val_accuracy,
        )


def train_population(
    params: Stacked,
    X: np.ndarray,
    Y: np.ndarray,
    lrs: np.ndarray,
    config: TrainConfig,
    activation: str = "tanh",
    shuffle_rngs: Sequence[np.random.Generator] | None = None,
    holdout: Holdout | None = None,
) -> PopulationResult:
    """Train K stacked trials, each with its own learning rate, to the end.

    The stopping rules are :class:`Population`'s. Training ends early once every trial stopped.

    Args:
        params: stacked weights (see :func:`~gdsearch.mlp.network.stack_params`); copied,
            never changed.
        X: inputs, (n, d).
        Y: targets, (n, k).
        lrs: (K,) learning rates.
        config: every other training setting.
        activation: hidden activation name.
        shuffle_rngs: one generator per trial, reshuffling its mini-batches each epoch;
            required when ``config.batch_size`` is smaller than n.
        holdout: samples to measure every epoch on, never trained on.

    Returns:
        A :class:`PopulationResult`.
    """
    population = Population(params, lrs, config, activation, shuffle_rngs)
    population.advance(X, Y, config.epochs, holdout)
    return population.result()


def _minibatch_epoch(
    active: _Active,
    X1_t: np.ndarray,
    Y_t: np.ndarray,
    batch_size: int,
    config: TrainConfig,
    activation: str,
    sizes: Sequence[int],
) -> None:
    """One epoch of mini-batch steps, each trial in its own freshly shuffled order."""
    n = X1_t.shape[-1]
    order = np.stack([rng.permutation(n) for rng in active.rngs])  # (K, n)
    workspaces: dict[int, Workspace] = {}  # by batch width: the last batch may be shorter
    for start in range(0, n, batch_size):
        batch = order[:, start : start + batch_size]  # (K, b)
        inputs_t = np.ascontiguousarray(np.moveaxis(X1_t[:, batch], 0, 1))  # (K, d + 1, b)
        ws = workspaces.get(batch.shape[1]) or Workspace(
            len(batch), inputs_t, sizes, config.numerics
        )
        workspaces[batch.shape[1]] = ws
        ws.acts[0] = inputs_t
        forward(active.Wbs, ws, activation)
        residual_sse(ws, np.moveaxis(Y_t[:, batch], 0, 1))
        scale = loss_scale(config.grad_scale, batch.shape[1])
        active.rule.step(active.Wbs, backward(active.Wbs, ws, ws.out, scale, activation))


def train(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    lr: float,
    activation: str = "tanh",
    shuffle_seed: int | np.random.SeedSequence | None = None,
    **settings: Any,
) -> tuple[np.ndarray, Params]:
    """Train one network on the SSE.

    The single-trial case of :func:`train_population`, with the same results value for value.

    Args:
        params: initial (W, b) pairs, e.g. from :func:`~gdsearch.mlp.network.init_params`;
            not changed.
        X: inputs, (n, d).
        Y: targets, (n, k).
        lr: the learning rate.
        activation: hidden activation name (the output is linear).
        shuffle_seed: seed of the mini-batch shuffling stream (needed with ``batch_size``).
        **settings: the fields of :class:`~gdsearch.mlp.config.TrainConfig`: ``epochs``
            (required), ``grad_scale`` (``"mean"``, the default: ∇SSE / n; or ``"sum"``),
            ``batch_size`` (None or 0: full batch), ``divergence_factor``, ``patience``,
            ``patience_tolerance``, the update rule's settings, and ``numerics``
            (``"portable"``, the default, or ``"blas"``).

    Returns:
        The SSE history (float64, epochs + 1 values, fewer if the trial stopped early: a
        diverged one stops before the first epoch whose SSE is non-finite or beyond the limit)
        and the final params.
    """
    config = TrainConfig(**{**settings, "batch_size": settings.get("batch_size") or 0})
    rngs = None if shuffle_seed is None else [np.random.default_rng(shuffle_seed)]
    result = train_population(
        stack_params([params]), X, Y, np.array([lr], dtype=np.float64), config, activation, rngs
    )
    return result.histories[0, : result.lengths[0]].copy(), unstack_params(result.params, 0)
