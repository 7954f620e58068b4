"""Population.advance's epoch loop in compiled code: each running trial in turn, every epoch's
measurement, stopping rules and update (:mod:`gdsearch.mlp.population`, :mod:`~.optim`).

Each entry point trains or measures K trials from their flat weights (K, P); Python keeps the
population's records and hands them in as arrays, updated in place. Buffers are made in Python
(:func:`buffers`), so that compiled code allocates nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gdsearch.mlp.kernel.borrowed import borrow
from gdsearch.mlp.kernel.jit import compiled, inlined
from gdsearch.mlp.kernel.passes import (
    ROWS,
    SIZES,
    Net,
    Workspace,
    backward,
    borrow_net,
    borrow_workspace,
    forward,
    parameters,
    residual_sse,
    workspace,
)
from gdsearch.mlp.stopping import DIVERGED, PATIENCE_SPIKE, PLATEAUED, RUNNING


class Rule(NamedTuple):
    """The update rule (:mod:`gdsearch.mlp.optim`) and each epoch's learning-rate factor.

    Attributes:
        momentum, nesterov, weight_decay: as :class:`~gdsearch.mlp.optim.SGD`.
        scheduled: whether ``factors`` applies (a constant rate is used as it is).
        factors: (epochs,) the schedule's factor on the base rate in each epoch.
        mean: whether the step descends SSE / n (``grad_scale = "mean"``) or SSE.
    """

    momentum: float
    nesterov: bool
    weight_decay: float
    scheduled: bool
    factors: np.ndarray
    mean: bool


class Stopping(NamedTuple):
    """The stopping rules of :class:`~gdsearch.mlp.population.Population`."""

    divergence_factor: float
    patience: int
    patience_tolerance: float
    held_out: bool  # the patience rule watches the held-out SSE, not the SSE trained on


class Data(NamedTuple):
    """Samples, feature-major.

    Attributes:
        inputs: (d + 1, n) inputs, a row of ones last (the first layer's bias input).
        targets: (k, n) targets.
        classes: (n,) each sample's class (the 0/1 target of one output, or the one-hot
            column), for held-out accuracy; empty where the targets are not classes.
    """

    inputs: np.ndarray
    targets: np.ndarray
    classes: np.ndarray


class Records(NamedTuple):
    """What a population records of its trials, by row.

    Attributes:
        histories, val_sse, val_accuracy: (K, epochs + 1); the held-out ones (0, 0) if none.
        status: (K,) int8 status codes. stop_epoch: (K,) int64.
    """

    histories: np.ndarray
    val_sse: np.ndarray
    val_accuracy: np.ndarray
    status: np.ndarray
    stop_epoch: np.ndarray


class Watch(NamedTuple):
    """The stopping rules' state of each running trial: the divergence limit, the patience
    rule's reference SSE and the epoch it was set."""

    limit: np.ndarray
    best: np.ndarray
    since: np.ndarray


class Buffers(NamedTuple):
    """Everything a training call writes to but the records: the passes over the data (which
    holds its inputs), the held-out samples (likewise) and a mini-batch, a mini-batch's
    targets, and a gradient."""

    data: Workspace
    held: Workspace
    batch: Workspace
    batch_targets: np.ndarray
    grad: np.ndarray


def buffers(net: Net, data: Data, held: Data, batch_size: int) -> Buffers:
    """The buffers of training on ``data`` (and ``held``), in batches of ``batch_size`` (0 for
    full batch)."""
    b = batch_size or 1
    return Buffers(
        workspace(net, data.inputs.shape[1], data.inputs),
        workspace(net, held.inputs.shape[1], held.inputs),
        workspace(net, b),
        np.empty((data.targets.shape[0], b)),
        np.empty(parameters(net)),
    )


@inlined
def _borrow_all(
    net: Net, data: Data, held: Data, records: Records, watch: Watch, buffers: Buffers
) -> tuple[Net, Data, Data, Records, Watch, Buffers]:
    """Every array of a training call borrowed (:mod:`.borrowed`)."""
    return (
        borrow_net(net),
        Data(borrow(data.inputs), borrow(data.targets), borrow(data.classes)),
        Data(borrow(held.inputs), borrow(held.targets), borrow(held.classes)),
        Records(
            borrow(records.histories),
            borrow(records.val_sse),
            borrow(records.val_accuracy),
            borrow(records.status),
            borrow(records.stop_epoch),
        ),
        Watch(borrow(watch.limit), borrow(watch.best), borrow(watch.since)),
        Buffers(
            borrow_workspace(buffers.data),
            borrow_workspace(buffers.held),
            borrow_workspace(buffers.batch),
            borrow(buffers.batch_targets),
            borrow(buffers.grad),
        ),
    )


# --- the update (optim.py) ------------------------------------------------------------------


@inlined
def step(theta: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, rule: Rule) -> None:
    """θ ← θ − lr·g (GradientDescent), or SGD's weight decay and momentum, in place."""
    if rule.momentum == 0.0 and rule.weight_decay == 0.0:
        for p in range(len(theta)):
            theta[p] -= grad[p] * lr
        return
    beta, wd = rule.momentum, rule.weight_decay
    for p in range(len(theta)):
        g = grad[p]
        if wd != 0.0:
            g += wd * theta[p]  # g ← g + wd·θ
        v = velocity[p] * beta + g  # v ← β·v + g
        velocity[p] = v
        theta[p] -= (g + beta * v) * lr if rule.nesterov else v * lr


# --- one epoch's measurement and the stopping rules (Population._check) ---------------------


@inlined
def _accuracy(net: Net, held: Data, m: int, ws: Workspace) -> float:
    """The share of held-out samples whose predicted class is theirs (holdout.correct_share):
    the output above 0.5 for one output, else the largest (the first, or a NaN)."""
    k, out, acts = net.layout[SIZES, -1], net.layout[ROWS, -1], ws.acts
    right = 0
    for s in range(m):
        if k == 1:
            predicted = 1 if acts[out, s] > 0.5 else 0
        else:
            predicted = 0
            for o in range(1, k):  # np.argmax: the first maximum; a NaN counts as one
                top, value = acts[out + predicted, s], acts[out + o, s]
                if top == top and (value > top or value != value):
                    predicted = o
        right += predicted == held.classes[s]
    return right / m


@inlined
def _measure(
    theta: np.ndarray,
    net: Net,
    data: Data,
    held: Data,
    epoch: int,
    row: int,
    slot: int,
    stopping: Stopping,
    records: Records,
    watch: Watch,
    buffers: Buffers,
) -> bool:
    """Record the epoch's SSE (and the held-out samples', at the same weights) and apply the
    stopping rules; True if the trial stopped. The residual stays in ``buffers.data``."""
    n, m = data.inputs.shape[1], held.inputs.shape[1]
    forward(theta, net, n, buffers.data)
    sse = residual_sse(net, data.targets, n, buffers.data)
    if m:
        forward(theta, net, m, buffers.held)
        if len(held.classes):
            records.val_accuracy[row, epoch] = _accuracy(net, held, m, buffers.held)
        records.val_sse[row, epoch] = residual_sse(net, held.targets, m, buffers.held)
    watched = records.val_sse[row, epoch] if stopping.held_out else sse  # by patience
    if epoch == 0:
        watch.limit[slot] = stopping.divergence_factor * sse if sse > 0 else np.inf
        watch.best[slot] = watched
    bad = not (np.isfinite(sse) and sse <= watch.limit[slot])
    records.histories[row, epoch] = sse
    flat = False
    if stopping.patience:
        best = watch.best[slot]
        tolerance = stopping.patience_tolerance
        if watched < best * (1.0 - tolerance) or watched > best * (1.0 + PATIENCE_SPIKE):
            watch.best[slot] = watched  # a fall, or a spike that restarts the count
            watch.since[slot] = epoch
        flat = not bad and epoch - watch.since[slot] >= stopping.patience
        if flat:
            records.status[row], records.stop_epoch[row] = PLATEAUED, epoch
    if bad:
        records.histories[row, epoch] = np.nan
        records.status[row], records.stop_epoch[row] = DIVERGED, epoch
    return bad or flat


# --- entry points ---------------------------------------------------------------------------


class Stretch(NamedTuple):
    """The epochs of one training call: from ``first`` until ``until`` is measured.

    Attributes:
        first, until: the first epoch measured (again, if it was) and the last.
        measured: ``first`` was measured at these weights by the call before (``until`` of a
            stretch this one carries on), its records stand, and for full-batch training the
            gradient there is in ``carry``: the call starts with that step.
        keep: full batch: leave the gradient at ``until`` (the loss's, before weight decay) in
            ``carry``, for the call that carries on and for the sharpness meter.
    """

    first: int
    until: int
    measured: bool
    keep: bool


@compiled
def advance(
    thetas: np.ndarray,
    velocities: np.ndarray,
    lrs: np.ndarray,
    rows: np.ndarray,
    net: Net,
    rule: Rule,
    stopping: Stopping,
    data: Data,
    held: Data,
    stretch: Stretch,
    carry: np.ndarray,
    records: Records,
    watch: Watch,
    buffers: Buffers,
) -> None:
    """Train K running trials by full-batch steps through ``stretch`` (Population.advance),
    each in turn, in place.

    Args:
        thetas, velocities: (K, P) weights and momentum buffers (no columns without momentum
            or weight decay), moved in place.
        lrs: (K,) base learning rates. rows: (K,) each trial's row in ``records``.
        net, rule, stopping: the geometry, update rule and stopping rules.
        data: the samples trained on. held: the held-out samples (no columns if none).
        stretch: the epochs, and what the call before left (:class:`Stretch`).
        carry: (K, P) each trial's gradient at the stretch's first epoch, in, and at its last,
            out, as ``stretch`` says.
        records, watch: updated in place; a trial that stops gets its status and stops there.
        buffers: from :func:`buffers`.
    """
    thetas, velocities, lrs, rows = borrow(thetas), borrow(velocities), borrow(lrs), borrow(rows)
    net, data, held, records, watch, buffers = _borrow_all(
        net, data, held, records, watch, buffers
    )
    carry = borrow(carry)
    n = data.inputs.shape[1]
    scale = 1.0 / n if rule.mean else 1.0
    for slot in range(len(lrs)):
        row, theta = rows[slot], thetas[slot]
        if records.status[row] != RUNNING:
            continue
        for epoch in range(stretch.first, stretch.until + 1):
            if epoch == stretch.first and stretch.measured:
                if epoch == stretch.until:
                    break
                gradient = carry[slot]  # measured, and its gradient taken, by the call before
            else:
                if _measure(
                    theta, net, data, held, epoch, row, slot, stopping, records, watch, buffers
                ):
                    break
                if epoch == stretch.until:
                    if stretch.keep:
                        backward(theta, net, n, scale, buffers.data, carry[slot])
                    break
                gradient = buffers.grad
                backward(theta, net, n, scale, buffers.data, gradient)
            lr = lrs[slot] * rule.factors[epoch] if rule.scheduled else lrs[slot]
            step(theta, gradient, velocities[slot], lr, rule)


@compiled
def advance_batches(
    thetas: np.ndarray,
    velocities: np.ndarray,
    lrs: np.ndarray,
    rows: np.ndarray,
    net: Net,
    rule: Rule,
    stopping: Stopping,
    data: Data,
    held: Data,
    stretch: Stretch,
    records: Records,
    watch: Watch,
    buffers: Buffers,
    orders: np.ndarray,
    batch_size: int,
) -> None:
    """:func:`advance` by mini-batch steps: each epoch steps through the samples in the
    trial's order of that epoch, ``orders`` (K, until − first, n), ``batch_size`` at a time
    (population._minibatch_epoch)."""
    thetas, velocities, lrs, rows = borrow(thetas), borrow(velocities), borrow(lrs), borrow(rows)
    net, data, held, records, watch, buffers = _borrow_all(
        net, data, held, records, watch, buffers
    )
    orders = borrow(orders)
    n, d, k = data.inputs.shape[1], net.layout[SIZES, 0], net.layout[SIZES, -1]
    inputs, targets = buffers.batch.acts, buffers.batch_targets  # (d + 1, b) and (k, b)
    first, until = stretch.first, stretch.until
    for slot in range(len(lrs)):
        row, theta = rows[slot], thetas[slot]
        if records.status[row] != RUNNING:
            continue
        for epoch in range(first, until + 1):
            if not (epoch == first and stretch.measured) and _measure(
                theta, net, data, held, epoch, row, slot, stopping, records, watch, buffers
            ):
                break
            if epoch == until:
                break
            lr = lrs[slot] * rule.factors[epoch] if rule.scheduled else lrs[slot]
            order = orders[slot, epoch - first]
            for start in range(0, n, batch_size):
                size = min(batch_size, n - start)
                for c in range(size):  # the batch's samples, in the trial's order of the epoch
                    for i in range(d):
                        inputs[i, c] = data.inputs[i, order[start + c]]
                    for o in range(k):
                        targets[o, c] = data.targets[o, order[start + c]]
                forward(theta, net, size, buffers.batch)
                residual_sse(net, targets, size, buffers.batch)
                scale = 1.0 / size if rule.mean else 1.0
                backward(theta, net, size, scale, buffers.batch, buffers.grad)
                step(theta, buffers.grad, velocities[slot], lr, rule)


@compiled
def gradients(
    thetas: np.ndarray, net: Net, targets: np.ndarray, scale: float, ws: Workspace, out: np.ndarray
) -> None:
    """∇(scale·SSE) of K weight vectors into ``out`` (K, P), on the samples whose inputs ``ws``
    holds and whose ``targets`` (k, n) are given (the sharpness meter's products)."""
    thetas, net, targets, out = borrow(thetas), borrow_net(net), borrow(targets), borrow(out)
    ws, n = borrow_workspace(ws), targets.shape[1]
    for slot in range(thetas.shape[0]):
        forward(thetas[slot], net, n, ws)
        residual_sse(net, targets, n, ws)
        backward(thetas[slot], net, n, scale, ws, out[slot])


@compiled
def sse_of(
    thetas: np.ndarray, net: Net, targets: np.ndarray, ws: Workspace, out: np.ndarray
) -> None:
    """The SSE of K weight vectors into ``out`` (K,), on the samples whose inputs ``ws`` holds
    and whose ``targets`` are given (network.sse, many at once)."""
    thetas, net, targets, out = borrow(thetas), borrow_net(net), borrow(targets), borrow(out)
    ws, n = borrow_workspace(ws), targets.shape[1]
    for slot in range(thetas.shape[0]):
        forward(thetas[slot], net, n, ws)
        out[slot] = residual_sse(net, targets, n, ws)
