"""Update rules: how a population's weights move, given their gradients.

An update rule is one object per population. It owns whatever per-trial state the rule needs
(a velocity) alongside the learning rates, and :meth:`UpdateRule.keep` drops the rows of trials
that stopped, so that state stays aligned with the weights when the population compacts.
Shaped after scikit-learn's ``_stochastic_optimizers``: a small base class, one subclass per
rule, and a learning-rate schedule the base class applies once per epoch.

The semantics are ``torch.optim.SGD(lr, momentum=β, dampening=0, nesterov, weight_decay=wd)``
applied to g = ∇L (L = SSE / n, or SSE under ``grad_scale = "sum"``)::

    g ← g + wd·θ;   v ← β·v + g  (v starts at 0);   θ ← θ − lr_t·v,  or  θ − lr_t·(g + β·v)

with one learning rate per epoch t = 0 … E − 1 (:class:`Schedule`), used by every step of it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdsearch.errors import InputError
from gdsearch.mlp.network import Stacked


def _constant(t: int, epochs: int, step_size: int, gamma: float) -> float:
    return 1.0


def _step(t: int, epochs: int, step_size: int, gamma: float) -> float:
    return float(gamma ** (t // step_size))


def _cosine(t: int, epochs: int, step_size: int, gamma: float) -> float:
    return (1.0 + math.cos(math.pi * t / epochs)) / 2.0


SCHEDULES: dict[str, Callable[[int, int, int, float], float]] = {
    "constant": _constant,
    "step": _step,
    "cosine": _cosine,
}
"""Learning-rate schedules by name: the factor on the base rate in epoch t of E:
``"step"`` γ^⌊t / step_size⌋, ``"cosine"`` (1 + cos(π t / E)) / 2."""


def check_schedule(name: str) -> str:
    """Return ``name`` if it is a schedule, else raise an error listing the valid ones."""
    if name not in SCHEDULES:
        raise InputError(f"unknown lr_schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    return name


@dataclass(frozen=True)
class Schedule:
    """The learning rate of each epoch as a factor on the base rate.

    Attributes:
        kind: a name from ``SCHEDULES``.
        epochs: E, the epochs of training (the cosine's period is 2E).
        step_size, gamma: for ``"step"``: the rate falls by γ every ``step_size`` epochs.
        warmup_epochs: a linear warm-up in front: the factor is multiplied by
            min(1, (t + 1) / warmup_epochs).
    """

    kind: str = "constant"
    epochs: int = 1
    step_size: int = 1
    gamma: float = 1.0
    warmup_epochs: int = 0

    def factor(self, t: int) -> float:
        """The factor on the base learning rate in epoch ``t`` (0-based)."""
        value = SCHEDULES[self.kind](t, self.epochs, self.step_size, self.gamma)
        if self.warmup_epochs:
            value *= min(1.0, (t + 1) / self.warmup_epochs)
        return value


class UpdateRule(ABC):
    """One population's step: θ ← f(θ, ∇L, per-trial state), applied in place.

    Attributes:
        lr: (K, 1, 1) each running trial's base learning rate.
        lr_t: (K, 1, 1) the learning rates of the current epoch (``lr`` itself without a
            schedule).
    """

    def __init__(self, lrs: Any, schedule: Schedule | None = None) -> None:
        lr = np.asarray(lrs, dtype=np.float64)
        self.lr = lr.reshape(len(lr), 1, 1)
        self.lr_t = self.lr
        self.schedule = schedule

    def start_epoch(self, epoch: int) -> None:
        """Called before the steps of ``epoch`` (0-based): set the epoch's learning rates."""
        if self.schedule is not None:
            self.lr_t = self.lr * self.schedule.factor(epoch)

    @abstractmethod
    def step(self, params: Stacked, grads: Stacked) -> None:
        """Move ``params`` in place; ``grads`` may be overwritten."""

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the trials in ``mask`` (K,), in order; the others stopped training."""
        scheduled = self.lr_t is not self.lr
        self.lr = self.lr[mask]
        self.lr_t = self.lr_t[mask] if scheduled else self.lr


class GradientDescent(UpdateRule):
    """θ ← θ − lr_t · ∇L: plain (full-batch or mini-batch) gradient descent, no state."""

    def step(self, params: Stacked, grads: Stacked) -> None:
        for Wb, grad in zip(params, grads, strict=True):
            grad *= self.lr_t
            Wb -= grad


class SGD(UpdateRule):
    """Weight decay, heavy-ball or Nesterov momentum (``torch.optim.SGD``, dampening 0).

    The velocity is per trial, (K, fan_in + 1, fan_out) a layer, zero before the first step.
    """

    def __init__(
        self,
        lrs: Any,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        schedule: Schedule | None = None,
    ) -> None:
        super().__init__(lrs, schedule)
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocity: Stacked | None = None

    def step(self, params: Stacked, grads: Stacked) -> None:
        beta, wd = self.momentum, self.weight_decay
        if self.velocity is None:
            self.velocity = [np.zeros_like(g) for g in grads]
        for Wb, g, v in zip(params, grads, self.velocity, strict=True):
            if wd:
                g += wd * Wb  # g ← g + wd·θ, biases too
            v *= beta
            v += g  # v ← β·v + g
            if self.nesterov:
                g += beta * v  # g + β·v
                g *= self.lr_t
            else:
                np.multiply(v, self.lr_t, out=g)
            Wb -= g

    def keep(self, mask: np.ndarray) -> None:
        super().keep(mask)
        if self.velocity is not None:
            self.velocity = [v[mask] for v in self.velocity]
