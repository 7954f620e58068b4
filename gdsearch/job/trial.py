"""One trial: a full training configuration, its stable identity and its random streams."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from gdsearch.analysis.comparison import GROUP
from gdsearch.mlp.config import TrainConfig
from gdsearch.mlp.network import Params, init_params, layer_sizes

# Tags that keep the random streams of one job apart (numpy SeedSequence entropy).
INIT_STREAM = 0
SHUFFLE_STREAM = 1
SAMPLER_STREAM = 2
LANDSCAPE_STREAM = 3  # the random slice's directions (gdsearch.search.landscapes)

SCALED_INITS = ("normal", "uniform")
"""Init schemes whose spread ``init_scale`` sets; the others ignore it."""


@dataclass(frozen=True)
class Trial:
    """Everything that decides one training run's history.

    ``job_seed`` and ``data`` are shared by every trial of a job; ``train`` holds every other
    training setting (shared, or one value of a searched setting such as ``batch_size``); the
    rest are the values of the search axes.
    """

    job_seed: int
    lr: float
    init: str
    hidden: tuple[int, ...]
    seed: int
    activation: str
    init_scale: float | None
    data: tuple[tuple[str, Any], ...]  # the data set's name and options, as sorted pairs
    train: TrainConfig

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
            "data": dict(self.data),
            **self.train.identity(),
        }

    def columns(self) -> dict[str, Any]:
        """The trial's own values as the trials table writes them (``TRIALS_SCHEMA``)."""
        return {
            "trial_id": self.trial_id,
            "lr": self.lr,
            "init": self.init,
            "init_scale": self.init_scale,
            "hidden": self.hidden_label,
            "activation": self.activation,
            "batch_size": self.train.batch_size,
            "seed": self.seed,
            "epochs": self.train.epochs,
            **self.train.columns(),
        }

    def comparison_key(self) -> tuple[Any, ...]:
        """Its comparison group (:mod:`gdsearch.analysis.comparison`): what the trials compared
        across learning rates and replicate seeds share."""
        columns = self.columns()
        return tuple(columns[c] for c in GROUP)

    def population_key(self) -> tuple[Any, ...]:
        """Trials with equal keys can be trained in one population: same layer sizes,
        activation and training config; each keeps its own learning rate and weights."""
        return (self.hidden, self.activation, self.train)

    def init_seed(self) -> np.random.SeedSequence:
        """Seed of the initial weights: job seed and replicate seed, never lr or placement."""
        return init_seed(self.job_seed, self.seed)

    def shuffle_seed(self) -> np.random.SeedSequence:
        """Seed of the mini-batch order: shared by every lr of one replicate."""
        return np.random.SeedSequence([self.job_seed, SHUFFLE_STREAM, self.seed])

    def initial_params(self, n_inputs: int, n_outputs: int) -> Params:
        """The trial's starting weights on data of ``n_inputs`` inputs and ``n_outputs``
        outputs, as (W, b) pairs."""
        return initial_params(
            self.job_seed, self.init, self.hidden, self.seed, self.init_scale, n_inputs, n_outputs
        )


def init_seed(job_seed: int, seed: int) -> np.random.SeedSequence:
    """The stream a trial's initial weights are drawn from."""
    return np.random.SeedSequence([job_seed, INIT_STREAM, seed])


def initial_params(
    job_seed: int,
    init: str,
    hidden: tuple[int, ...],
    seed: int,
    init_scale: float | None,
    n_inputs: int,
    n_outputs: int,
) -> Params:
    """A trial's starting weights from what draws them, and nothing else: the job
    seed, the init scheme and its scale, the layer sizes and the replicate seed."""
    sizes = layer_sizes(n_inputs, hidden, n_outputs)
    return init_params(sizes, init, init_seed(job_seed, seed), init_scale)


def trial_id(config: dict[str, Any]) -> str:
    """Hash a configuration to a stable 16-hex-digit id (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
