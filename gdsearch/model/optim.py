"""Update rules: how a population's weights move, given their gradients.

An update rule is one object per population. It owns whatever per-trial state the rule needs
(a velocity, a step count) alongside the learning rates, and :meth:`UpdateRule.keep` drops the
rows of trials that stopped, so that state stays aligned with the weights when the population
compacts. Shaped after scikit-learn's ``_stochastic_optimizers``: a small base class, one
subclass per rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from gdsearch.model.network import Stacked


class UpdateRule(ABC):
    """One population's step: θ ← f(θ, ∇L, per-trial state), applied in place.

    Attributes:
        lr: (K, 1, 1) each running trial's learning rate.
    """

    def __init__(self, lrs: Any) -> None:
        lr = np.asarray(lrs, dtype=np.float64)
        self.lr = lr.reshape(len(lr), 1, 1)

    def start_epoch(self, epoch: int) -> None:  # noqa: B027 - most rules do nothing here
        """Called before the steps of ``epoch`` (0-based): where a schedule sets the rate."""

    @abstractmethod
    def step(self, params: Stacked, grads: Stacked) -> None:
        """Move ``params`` in place; ``grads`` may be overwritten."""

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the trials in ``mask`` (K,), in order; the others stopped training."""
        self.lr = self.lr[mask]


class GradientDescent(UpdateRule):
    """θ ← θ − lr · ∇L: plain (full-batch or mini-batch) gradient descent, no state."""

    def step(self, params: Stacked, grads: Stacked) -> None:
        for Wb, grad in zip(params, grads, strict=True):
            grad *= self.lr
            Wb -= grad
