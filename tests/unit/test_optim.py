"""Momentum, Nesterov, weight decay and schedules against an independent reference.

The reference is written from the formulas (torch.optim.SGD with dampening 0, one learning rate
per epoch) as a plain loop over epochs and mini-batches, with the single-network gradient
``mlp.gradient`` (itself checked against finite differences in test_mlp) and none of the
population code.
"""

from __future__ import annotations

import itertools
import math
import pickle
from typing import Any

import numpy as np
import pytest

from gdsearch import mlp
from gdsearch.errors import InputError
from gdsearch.mlp import Params

LAYERS = [3, 4, 2]
EPOCHS = 16


def _problem() -> tuple[np.ndarray, np.ndarray, Params]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(20, 3))
    Y = np.column_stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]])
    return X, Y, mlp.init_params(LAYERS, "xavier", 4)


def _rate(lr: float, t: int, s: dict[str, Any]) -> float:
    """The learning rate of epoch t, from the formulas."""
    schedule = s.get("lr_schedule", "constant")
    if schedule == "step":
        rate = lr * s["gamma"] ** math.floor(t / s["step_size"])
    elif schedule == "cosine":
        rate = lr * (1 + math.cos(math.pi * t / EPOCHS)) / 2
    else:
        rate = lr
    if s.get("warmup_epochs"):
        rate *= min(1.0, (t + 1) / s["warmup_epochs"])
    return rate


def reference(
    params: Params, X: np.ndarray, Y: np.ndarray, lr: float, batch: int | None, s: dict[str, Any]
) -> np.ndarray:
    """SSE per epoch of plain SGD with momentum, Nesterov, weight decay and a schedule."""
    beta, wd, nesterov = s.get("momentum", 0.0), s.get("weight_decay", 0.0), s.get("nesterov")
    theta = [p.copy() for pair in params for p in pair]  # W1, b1, W2, b2
    velocity = [np.zeros_like(p) for p in theta]
    rng = np.random.default_rng(99)
    n = len(X)
    history: list[float] = []
    for t in range(EPOCHS + 1):
        sse = mlp.sse(list(zip(theta[::2], theta[1::2], strict=True)), X, Y, "tanh")
        limit = 1e6 * history[0] if history else math.inf
        if not math.isfinite(sse) or sse > limit:
            break
        history.append(sse)
        if t == EPOCHS:
            break
        rate = _rate(lr, t, s)
        order = rng.permutation(n) if batch else np.arange(n)
        for start in range(0, n, batch or n):
            rows = order[start : start + (batch or n)]
            pairs = list(zip(theta[::2], theta[1::2], strict=True))
            grads = [g for pair in mlp.gradient(pairs, X[rows], Y[rows], "tanh") for g in pair]
            for i, g in enumerate(grads):
                g = g + wd * theta[i]
                velocity[i] = beta * velocity[i] + g
                step = g + beta * velocity[i] if nesterov else velocity[i]
                theta[i] = theta[i] - rate * step
    return np.array(history)


def _combinations() -> list[dict[str, Any]]:
    rules = [{}, {"momentum": 0.6}, {"momentum": 0.6, "nesterov": True}]
    decays = [{}, {"weight_decay": 0.03}]
    schedules = [
        {},
        {"lr_schedule": "step", "step_size": 4, "gamma": 0.5},
        {"lr_schedule": "cosine"},
    ]
    warmups = [{}, {"warmup_epochs": 3}]
    return [
        {**a, **b, **c, **d} for a, b, c, d in itertools.product(rules, decays, schedules, warmups)
    ]


COMBINATIONS = _combinations()


@pytest.mark.parametrize("batch", [None, 7], ids=["full-batch", "mini-batch"])
@pytest.mark.parametrize(
    "settings",
    COMBINATIONS,
    ids=["-".join(f"{k}={v}" for k, v in c.items()) or "plain" for c in COMBINATIONS],
)
def test_training_matches_the_formulas_to_1e_12(
    settings: dict[str, Any], batch: int | None
) -> None:
    X, Y, params = _problem()
    history, _ = mlp.train(
        params,
        X,
        Y,
        lr=0.05,
        epochs=EPOCHS,
        batch_size=batch,
        shuffle_seed=99 if batch else None,
        **settings,
    )
    expected = reference(params, X, Y, 0.05, batch, settings)
    assert len(history) == len(expected) == EPOCHS + 1
    np.testing.assert_allclose(history, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "settings", [{"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"weight_decay": 0.5}]
)
def test_a_diverging_rate_stops_at_the_epoch_the_formulas_say(settings: dict[str, Any]) -> None:
    X, Y, params = _problem()
    history, _ = mlp.train(params, X, Y, lr=4.0, epochs=EPOCHS, **settings)
    expected = reference(params, X, Y, 4.0, None, settings)
    assert len(history) == len(expected) < EPOCHS + 1
    np.testing.assert_allclose(history, expected, rtol=1e-9)


def test_momentum_zero_is_plain_gradient_descent_bit_for_bit() -> None:
    X, Y, params = _problem()
    plain, _ = mlp.train(params, X, Y, lr=0.05, epochs=EPOCHS)
    explicit, _ = mlp.train(params, X, Y, lr=0.05, epochs=EPOCHS, momentum=0.0, weight_decay=0)
    np.testing.assert_array_equal(plain, explicit)


def test_momentum_changes_the_path() -> None:
    X, Y, params = _problem()
    plain, _ = mlp.train(params, X, Y, lr=0.05, epochs=EPOCHS)
    heavy, _ = mlp.train(params, X, Y, lr=0.05, epochs=EPOCHS, momentum=0.6)
    assert plain[1] == heavy[1] and not np.allclose(plain[2:], heavy[2:])  # v = g at first


@pytest.mark.parametrize("batch", [None, 7], ids=["full-batch", "mini-batch"])
def test_training_in_pickled_segments_equals_one_call_with_momentum(batch: int | None) -> None:
    """What halving and a resumed unit do: stop, pickle, carry on elsewhere."""
    X, Y, params = _problem()
    lrs = np.array([0.01, 0.05, 0.2, 4.0])
    config = mlp.TrainConfig(
        epochs=EPOCHS,
        batch_size=batch or 0,
        momentum=0.6,
        nesterov=True,
        weight_decay=0.01,
        lr_schedule="cosine",
    )
    stacked = mlp.stack_params([params] * len(lrs))

    def rngs() -> list[np.random.Generator] | None:
        return [np.random.default_rng(5) for _ in lrs] if batch else None

    whole = mlp.train_population(stacked, X, Y, lrs, config, shuffle_rngs=rngs())
    population = mlp.Population(stacked, lrs, config, shuffle_rngs=rngs())
    for until in (3, 7, 11, EPOCHS):
        population = pickle.loads(pickle.dumps(population))
        population.advance(X, Y, until)
    parts = population.result()
    np.testing.assert_array_equal(parts.histories, whole.histories)
    assert mlp.STATUS_CODES[parts.status[-1]] == "diverged"  # compaction happened on the way


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"momentum": 1.0}, "momentum"),
        ({"nesterov": True}, "nesterov"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"lr_schedule": "linear"}, "lr_schedule"),
        ({"lr_schedule": "step"}, "step_size"),
        ({"lr_schedule": "step", "step_size": 2, "gamma": 0.0}, "gamma"),
    ],
)
def test_impossible_settings_are_refused_by_name(settings: dict[str, Any], message: str) -> None:
    X, Y, params = _problem()
    with pytest.raises(InputError, match=message):
        mlp.train(params, X, Y, lr=0.05, epochs=2, **settings)
