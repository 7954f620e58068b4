"""How a trial trains: one small frozen record of every training setting but the learning rate.

A :class:`TrainConfig` travels with each trial from the job file to the worker. The population
that trains it (:mod:`gdsearch.mlp.population`) reads its stopping rules and builds its update
rule from it, and the trial's identity (its id) holds :meth:`TrainConfig.identity`. Trials with
equal configs (and layer sizes and activation) can share one population, each with its own
learning rate. A new training setting is a field here, a key of ``identity`` when it is on, and
whatever the update rule does with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from gdsearch.errors import InputError
from gdsearch.mlp.network import check_grad_scale
from gdsearch.mlp.numerics import DEFAULT_NUMERICS, check_numerics
from gdsearch.mlp.optim import SGD, GradientDescent, Schedule, UpdateRule, check_schedule

DEFAULT_DIVERGENCE_FACTOR = 1e6
DEFAULT_PATIENCE_TOLERANCE = 1e-4
DEFAULT_GAMMA = 0.1
"""The step schedule's factor when a job gives none (as ``torch.optim.lr_scheduler.StepLR``)."""
OPTIMIZER_FIELDS = (
    "momentum",
    "nesterov",
    "weight_decay",
    "lr_schedule",
    "step_size",
    "gamma",
    "warmup_epochs",
)
"""The settings of the update rule and its schedule, as trial columns and search axes."""


PATIENCE_METRICS = ("sse", "val_sse")
"""What the patience rule may watch: the SSE trained on, or the held-out SSE."""


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
        patience_metric: what the patience rule watches: ``"sse"``, the SSE trained on, or
            ``"val_sse"``, the held-out SSE (a job that holds data out).
        momentum: β in [0, 1), heavy-ball momentum (0: none).
        nesterov: Nesterov's form of momentum (needs β > 0).
        weight_decay: wd ≥ 0; wd·θ is added to the gradient of every weight and bias.
        lr_schedule: the learning rate per epoch, a name from ``gdsearch.mlp.optim.SCHEDULES``.
        step_size: for ``"step"``: the rate falls by ``gamma`` every ``step_size`` epochs
            (0: not set).
        gamma: for ``"step"``: the factor γ in (0, 1] the rate falls by.
        warmup_epochs: a linear warm-up in front of any schedule (0: none).
        sharpness_every: measure the sharpness (the top Hessian eigenvalue of the loss) at
            epochs 0, k, 2k, … (0: never). It observes training and does not change it, so it
            is not part of a trial's identity.
        numerics: how the arithmetic is done (:mod:`gdsearch.mlp.numerics`): ``"portable"``,
            the same bits on every machine, or ``"blas"``, faster for wide layers, its last
            bits the machine's. The same trial either way, so not part of its identity; each
            stored trial records the path and machine that computed it.
    """

    epochs: int
    grad_scale: str = "mean"
    batch_size: int = 0
    divergence_factor: float = DEFAULT_DIVERGENCE_FACTOR
    patience: int = 0
    patience_tolerance: float = DEFAULT_PATIENCE_TOLERANCE
    patience_metric: str = "sse"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    step_size: int = 0
    gamma: float = DEFAULT_GAMMA
    warmup_epochs: int = 0
    sharpness_every: int = 0
    numerics: str = DEFAULT_NUMERICS

    def __post_init__(self) -> None:
        for name, kind in (
            ("momentum", float),
            ("weight_decay", float),
            ("gamma", float),
            ("nesterov", bool),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))  # 0 and 0.0: one id
        check_grad_scale(self.grad_scale)
        check_schedule(self.lr_schedule)
        check_numerics(self.numerics)
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 0, "an integer >= 0 (0: full batch)"),
            ("momentum", 0.0 <= self.momentum < 1.0, "a number in [0, 1)"),
            (
                "weight_decay",
                self.weight_decay >= 0 and math.isfinite(self.weight_decay),
                "a finite number >= 0",
            ),
            ("gamma", 0.0 < self.gamma <= 1.0, "a number in (0, 1]"),
            ("step_size", self.step_size >= 0, "an integer >= 1 (0: not set)"),
            ("warmup_epochs", self.warmup_epochs >= 0, "an integer >= 0"),
            ("sharpness_every", self.sharpness_every >= 0, "an integer >= 0 (0: never)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InputError(f"{name}: must be {rule}, but got {getattr(self, name)!r}")
        if self.patience_metric not in PATIENCE_METRICS:
            raise InputError(
                f"patience_metric: one of {', '.join(PATIENCE_METRICS)}, "
                f"but got {self.patience_metric!r}"
            )
        if self.nesterov and not self.momentum:
            raise InputError("nesterov: needs momentum > 0, but got momentum = 0")
        if self.lr_schedule == "step" and self.step_size < 1:
            raise InputError('step_size: lr_schedule = "step" needs step_size >= 1, but got 0')

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
            if self.patience_metric != "sse":  # the held-out SSE: other stops, other trials
                key["patience_metric"] = self.patience_metric
        off = TRAIN_DEFAULTS
        key.update({k: v for k, v in self.columns().items() if v is not None and v != off[k]})
        return key

    def columns(self) -> dict[str, Any]:
        """The update rule's settings as the trials table writes them."""
        stepped = self.lr_schedule == "step"
        return {
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "lr_schedule": self.lr_schedule,
            "step_size": self.step_size if stepped else None,
            "gamma": self.gamma if stepped else None,
            "warmup_epochs": self.warmup_epochs,
        }

    @property
    def watches_held_out(self) -> bool:
        """Whether the patience rule watches the held-out SSE: a patience, and
        ``patience_metric = "val_sse"`` (without a patience the metric watches nothing)."""
        return bool(self.patience) and self.patience_metric == "val_sse"

    def minibatch(self, n_samples: int) -> int | None:
        """The batch size to step with on ``n_samples`` samples; None for full batch."""
        return self.batch_size if 0 < self.batch_size < n_samples else None

    def schedule(self) -> Schedule | None:
        """The per-epoch learning-rate factor; None for a constant rate without warm-up."""
        if self.lr_schedule == "constant" and not self.warmup_epochs:
            return None
        step_size = self.step_size or 1
        return Schedule(self.lr_schedule, self.epochs, step_size, self.gamma, self.warmup_epochs)

    def update_rule(self, lrs: Any) -> UpdateRule:
        """A fresh update rule for a population with these learning rates, (K,)."""
        if self.momentum or self.weight_decay:
            return SGD(lrs, self.momentum, self.nesterov, self.weight_decay, self.schedule())
        return GradientDescent(lrs, self.schedule())


TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.name != "epochs"}
"""Each setting's value when a job does not set it."""
