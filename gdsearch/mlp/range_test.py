"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks",
WACV 2017; fast.ai's ``lr_find``): one short run whose learning rate grows geometrically at every
step, from ``start_lr`` to ``end_lr``, stopped once the smoothed loss exceeds ``stop_factor``
times its lowest.

Here a step is one full-batch update (fast.ai's is a mini-batch), the loss the SSE measured at the
weights before the step at that rate (as fast.ai records the batch's loss before its step), and
the smoothing fast.ai's: an exponential moving average with factor ``smoothing``, debiased. K
networks of one geometry run at once, each stopping on its own; the arithmetic is the
population's (:mod:`gdsearch.mlp.network`), portable by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gdsearch.errors import InputError
from gdsearch.mlp.config import TrainConfig
from gdsearch.mlp.network import (
    Stacked,
    Workspace,
    backward,
    forward,
    loss_scale,
    residual_sse,
    sizes_of,
    with_ones_t,
)


@dataclass(frozen=True)
class RangeSettings:
    """The range test's sweep; the defaults are fast.ai's ``lr_find``'s.

    Attributes:
        start_lr: the rate of the first step.
        end_lr: the rate of the last step (reached if the run is not stopped first).
        steps: how many steps the sweep takes from start_lr to end_lr.
        stop_factor: stop once the smoothed loss exceeds this multiple of its lowest.
        smoothing: the moving average's factor β (0: no smoothing).
    """

    start_lr: float = 1e-7
    end_lr: float = 10.0
    steps: int = 100
    stop_factor: float = 4.0
    smoothing: float = 0.98

    def __post_init__(self) -> None:
        if not (0 < self.start_lr < self.end_lr and math.isfinite(self.end_lr)):
            raise InputError(
                "`start_lr` and `end_lr` must hold 0 < start_lr < end_lr, but got "
                f"({self.start_lr!r}, {self.end_lr!r})"
            )
        if not (isinstance(self.steps, int) and 2 <= self.steps <= 100_000):
            raise InputError(f"`steps` must be an integer in [2, 100000], but got {self.steps!r}")
        if not self.stop_factor > 1:
            raise InputError(f"`stop_factor` must be a number > 1, but got {self.stop_factor!r}")
        if not 0 <= self.smoothing < 1:
            raise InputError(f"`smoothing` must be a number in [0, 1), but got {self.smoothing!r}")

    def rates(self) -> np.ndarray:
        """The rate of each step, (steps,): geometric from start_lr to end_lr, both exact."""
        rates = self.start_lr * (self.end_lr / self.start_lr) ** (
            np.arange(self.steps) / (self.steps - 1)
        )
        rates[[0, -1]] = self.start_lr, self.end_lr
        return rates


@dataclass
class RangeResult:
    """What a range test gives.

    Attributes:
        rates: (S,) the rate of each step.
        sse: (K, S) the SSE before each step, NaN after a network stopped.
        smoothed: (K, S) its debiased moving average, NaN likewise.
        steps: (K,) how many steps each network took.
    """

    rates: np.ndarray
    sse: np.ndarray
    smoothed: np.ndarray
    steps: np.ndarray


def range_test(
    params: Stacked,
    X: np.ndarray,
    Y: np.ndarray,
    config: TrainConfig,
    activation: str = "tanh",
    settings: RangeSettings | None = None,
) -> RangeResult:
    """Run the range test for K networks of one geometry from their weights ``params``.

    Args:
        params: stacked weights, (K, fan_in + 1, fan_out) a layer; copied, never changed.
        X, Y: the samples trained on, (n, d) and (n, k).
        config: the update rule (momentum, weight decay) and gradient scale; its epochs,
            schedule and batch size are not used (every step is full-batch at the sweep's rate).
        activation: the hidden activation.
        settings: the sweep (default: fast.ai's).
    """
    settings = settings or RangeSettings()
    rates = settings.rates()
    Wbs = [Wb.copy() for Wb in params]
    K, S = Wbs[0].shape[0], len(rates)
    X1_t, Y_t = with_ones_t(X), np.ascontiguousarray(Y.T)
    ws = Workspace(K, X1_t, sizes_of(Wbs), config.numerics)
    rule = config.update_rule(np.full(K, rates[0]))
    scale = loss_scale(config.grad_scale, X.shape[0])
    sse, smoothed = np.full((K, S), np.nan), np.full((K, S), np.nan)
    average, lowest = np.zeros(K), np.full(K, np.inf)
    running, taken = np.ones(K, dtype=bool), np.zeros(K, dtype=np.int64)
    beta = settings.smoothing
    with np.errstate(all="ignore"):
        for step, rate in enumerate(rates):
            forward(Wbs, ws, activation)
            now = residual_sse(ws, Y_t)  # (K,) at the weights before this step
            average = beta * average + (1 - beta) * now
            debiased = average / (1 - beta ** (step + 1))
            sse[running, step], smoothed[running, step] = now[running], debiased[running]
            taken[running] = step + 1
            lowest = np.where(running, np.fmin(lowest, debiased), lowest)
            running &= np.isfinite(debiased) & (debiased <= settings.stop_factor * lowest)
            if not running.any():
                break
            rule.lr = rule.lr_t = np.full((K, 1, 1), rate)
            rule.step(Wbs, backward(Wbs, ws, ws.out, scale, activation))
    return RangeResult(rates, sse, smoothed, taken)
