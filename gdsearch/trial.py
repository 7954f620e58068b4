"""One trial: a full training configuration, its stable identity and its random streams."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

# Tags that keep the random streams of one job apart (numpy SeedSequence entropy).
INIT_STREAM = 0
SHUFFLE_STREAM = 1
SAMPLER_STREAM = 2

SCALED_INITS = ("normal", "uniform")
"""Init schemes whose spread ``init_scale`` sets; the others ignore it."""


@dataclass(frozen=True)
class Trial:
    """Everything that decides one training run's history.

    ``job_seed`` and ``fixed`` (data, epochs, update rule, divergence limit) are shared by every
    trial of a job; the rest are the values of the search axes.
    """

    job_seed: int
    lr: float
    init: str
    hidden: tuple[int, ...]
    seed: int
    activation: str
    init_scale: float | None
    batch_size: int
    fixed: tuple[tuple[str, Any], ...]

    @property
    def trial_id(self) -> str:
        """A stable hash of the full configuration (16 hex digits)."""
        return trial_id(self.config())

    @property
    def hidden_label(self) -> str:
        """The architecture as the results tables write it: "16-16", or "" for linear."""
        return "-".join(map(str, self.hidden))

    def config(self) -> dict[str, Any]:
        """The full configuration as plain JSON-able values."""
        return {
            "job_seed": self.job_seed,
            "lr": self.lr,
            "init": self.init,
            "hidden": list(self.hidden),
            "seed": self.seed,
            "activation": self.activation,
            "init_scale": self.init_scale,
            "batch_size": self.batch_size,
            **dict(self.fixed),
        }

    def init_seed(self) -> np.random.SeedSequence:
        """Seed of the initial weights: job seed and replicate seed, never lr or placement."""
        return np.random.SeedSequence([self.job_seed, INIT_STREAM, self.seed])

    def shuffle_seed(self) -> np.random.SeedSequence:
        """Seed of the mini-batch order: shared by every lr of one replicate."""
        return np.random.SeedSequence([self.job_seed, SHUFFLE_STREAM, self.seed])

    def group_key(self) -> tuple[Any, ...]:
        """Trials with equal keys share layer sizes and update rule: one population."""
        return (self.hidden, self.activation, self.batch_size)


def trial_id(config: dict[str, Any]) -> str:
    """Hash a configuration to a stable 16-hex-digit id (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
