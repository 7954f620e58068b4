"""How a trial trains: one small frozen record of every training setting but the learning rate.

A :class:`TrainConfig` travels with each trial from the job file to the worker. The population
that trains it (:mod:`gdsearch.model.population`) reads its stopping rules and builds its update
rule from it, and the trial's identity (its id) holds :meth:`TrainConfig.identity`. Trials with
equal configs (and layer sizes and activation) can share one population, each with its own
learning rate. A new training setting is a field here, a key of ``identity`` when it is on, and
whatever the update rule does with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gdsearch.model.optim import GradientDescent, UpdateRule

DEFAULT_DIVERGENCE_FACTOR = 1e6
DEFAULT_PATIENCE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of how a trial trains, but its learning rate.

    Attributes:
        epochs: passes over the data; a history holds epochs 0 … epochs.
        grad_scale: ``"mean"`` (the step descends SSE / n, n the samples in it) or ``"sum"``.
        batch_size: samples per step; 0 (or ≥ n) is full-batch gradient descent.
        divergence_factor: a trial stops as diverged at the first epoch whose SSE is not finite
            or exceeds this multiple of its epoch-0 SSE.
        patience: stop a trial whose SSE has not improved for this many epochs (0: never).
        patience_tolerance: the relative fall in SSE that counts as an improvement.
    """

    epochs: int
    grad_scale: str = "mean"
    batch_size: int = 0
    divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR
    patience: int = 0
    patience_tolerance: float = DEFAULT_PATIENCE_TOLERANCE

    def identity(self) -> dict[str, Any]:
        """The settings as a trial's id hashes them.

        A setting that is off adds no key, so that trials of jobs that do not use it keep
        the ids they had before it existed.
        """
        key: dict[str, Any] = {
            "epochs": self.epochs,
            "grad_scale": self.grad_scale,
            "batch_size": self.batch_size,
            "divergence_factor": self.divergence_factor,
        }
        if self.patience:
            key.update(patience=self.patience, patience_tolerance=self.patience_tolerance)
        return key

    def minibatch(self, n_samples: int) -> int | None:
        """The batch size to step with on ``n_samples`` samples; None for full batch."""
        return self.batch_size if 0 < self.batch_size < n_samples else None

    def update_rule(self, lrs: Any) -> UpdateRule:
        """A fresh update rule for a population with these learning rates, (K,)."""
        return GradientDescent(lrs)
