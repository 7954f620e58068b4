"""The numeric core: backprop, the update rule, divergence and population independence."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from gdsearch import mlp
from gdsearch.data import sine
from gdsearch.errors import InputError
from gdsearch.mlp.activations import ACTIVATIONS
from gdsearch.mlp.inits import INIT_SCHEMES

Params = list[tuple[np.ndarray, np.ndarray]]

FD_STEP = 1e-6
KINK_MARGIN = 1e-4


def _flat(params: Params) -> np.ndarray:
    return np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in params])


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def _pre_activations(params: Params, X: np.ndarray, activation: str) -> list[np.ndarray]:
    a, zs = X, []
    for W, b in params[:-1]:
        z = a @ W + b
        zs.append(z)
        a = ACTIVATIONS[activation](z)
    return zs


def _finite_difference_sse(
    params: Params, X: np.ndarray, Y: np.ndarray, activation: str
) -> Params:
    """Central differences of SSE with respect to every weight and bias entry."""
    grads: Params = []
    for layer, (W, b) in enumerate(params):
        fd_pair = []
        for which, array in enumerate((W, b)):
            fd = np.zeros_like(array)
            for index in np.ndindex(array.shape):
                losses = []
                for sign in (1.0, -1.0):
                    shifted = [(w.copy(), c.copy()) for w, c in params]
                    shifted[layer][which][index] += sign * FD_STEP
                    losses.append(mlp.sse(shifted, X, Y, activation))
                fd[index] = (losses[0] - losses[1]) / (2.0 * FD_STEP)
            fd_pair.append(fd)
        grads.append((fd_pair[0], fd_pair[1]))
    return grads


def _kink_free_problem(
    hidden: Sequence[int], n_outputs: int, activation: str
) -> tuple[Params, np.ndarray, np.ndarray]:
    """Small random data and weights whose pre-activations all stay clear of relu's kink."""
    for seed in range(100):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(8, 3))
        Y = rng.normal(size=(8, n_outputs))
        params = mlp.init_params([3, *hidden, n_outputs], "normal", rng, scale=0.7)
        zs = _pre_activations(params, X, activation)
        if all(np.min(np.abs(z)) > KINK_MARGIN for z in zs):
            return params, X, Y
    raise AssertionError("no kink-free seed in 100")


@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("hidden", [[], [5], [4, 3]], ids=["linear", "5", "4-3"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_backprop_matches_central_differences_of_the_loss_the_update_descends(
    activation: str, hidden: list[int], n_outputs: int
) -> None:
    params, X, Y = _kink_free_problem(hidden, n_outputs, activation)
    fd_sse = _flat(_finite_difference_sse(params, X, Y, activation))
    n = X.shape[0]
    g_mean = _flat(mlp.gradient(params, X, Y, activation, "mean"))
    g_sum = _flat(mlp.gradient(params, X, Y, activation, "sum"))
    assert np.linalg.norm(fd_sse) > 1e-3  # a non-trivial gradient
    assert _relative_error(g_mean, fd_sse / n) < 1e-6
    assert _relative_error(g_sum, fd_sse) < 1e-6


def test_gradient_shapes_match_the_params() -> None:
    params, X, Y = _kink_free_problem([4, 3], 2, "tanh")
    grads = mlp.gradient(params, X, Y, "tanh")
    assert [(dW.shape, db.shape) for dW, db in grads] == [(W.shape, b.shape) for W, b in params]


@pytest.mark.parametrize("grad_scale", ["mean", "sum"])
def test_one_training_epoch_is_params_minus_lr_times_gradient(grad_scale: str) -> None:
    params, X, Y = _kink_free_problem([4, 3], 2, "tanh")
    lr = 0.05
    history, final = mlp.train(params, X, Y, lr=lr, epochs=1, grad_scale=grad_scale)
    grads = mlp.gradient(params, X, Y, "tanh", grad_scale)
    expected = [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads, strict=True)]
    np.testing.assert_allclose(_flat(final), _flat(expected), rtol=1e-12, atol=1e-14)
    assert history[1] == pytest.approx(mlp.sse(final, X, Y, "tanh"), rel=1e-12)


# --- the seed notebook's problem: a line through sin x at x = 0..9 ---------------------------


@pytest.mark.parametrize("grad_scale", ["mean", "sum"])
def test_one_step_on_sine_matches_the_update_worked_by_hand(grad_scale: str) -> None:
    X, Y = sine()
    xs = [float(v) for v in X[:, 0]]
    ys = [float(v) for v in Y[:, 0]]
    n = len(xs)
    w, b, lr = 0.5, 2.0, 0.01
    residuals = [y - (w * x + b) for x, y in zip(xs, ys, strict=True)]
    sse_before = sum(r * r for r in residuals)
    d_w = -2.0 * sum(r * x for r, x in zip(residuals, xs, strict=True))
    d_b = -2.0 * sum(residuals)
    divisor = n if grad_scale == "mean" else 1
    w_new, b_new = w - lr * d_w / divisor, b - lr * d_b / divisor
    sse_after = sum((y - (w_new * x + b_new)) ** 2 for x, y in zip(xs, ys, strict=True))

    params = [(np.array([[w]]), np.array([b]))]
    history, final = mlp.train(params, X, Y, lr=lr, epochs=1, grad_scale=grad_scale)

    assert history.dtype == np.float64 and history.shape == (2,)
    assert history[0] == pytest.approx(sse_before, rel=1e-12)
    assert history[1] == pytest.approx(sse_after, rel=1e-12)
    ((W_final, b_final),) = final
    assert W_final.shape == (1, 1) and b_final.shape == (1,)
    assert W_final[0, 0] == pytest.approx(w_new, rel=1e-12)
    assert b_final[0] == pytest.approx(b_new, rel=1e-12)
    assert params[0][0][0, 0] == w and params[0][1][0] == b  # the input is not changed


def test_linear_model_on_sine_converges_to_the_least_squares_line() -> None:
    X, Y = sine()
    design = np.column_stack([X[:, 0], np.ones(len(X))])
    (w_star, b_star), *_ = np.linalg.lstsq(design, Y[:, 0], rcond=None)
    params = [(np.array([[0.5]]), np.array([2.0]))]
    history, final = mlp.train(params, X, Y, lr=0.01, epochs=8000)
    ((W, b),) = final
    assert len(history) == 8001
    assert W[0, 0] == pytest.approx(w_star, rel=1e-8, abs=1e-10)
    assert b[0] == pytest.approx(b_star, rel=1e-8, abs=1e-10)
    best = float(np.sum((Y[:, 0] - design @ np.array([w_star, b_star])) ** 2))
    assert history[-1] == pytest.approx(best, rel=1e-10)
    # lr = 0.01 is below 2 / λ_max: SSE never rises (beyond rounding at the optimum)
    assert np.all(np.diff(history) <= 1e-12 * history[1:])


@pytest.mark.parametrize("lr", [0.05, 0.2])
def test_divergent_lr_stops_the_history_before_the_limit_is_broken(lr: float) -> None:
    X, Y = sine()
    params = [(np.array([[0.5]]), np.array([2.0]))]
    epochs, factor = 200, 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history, final = mlp.train(params, X, Y, lr=lr, epochs=epochs, divergence_factor=factor)
        short, _ = mlp.train(params, X, Y, lr=lr, epochs=epochs, divergence_factor=1e3)
    assert 1 < len(history) < epochs + 1
    assert np.all(np.isfinite(history))
    assert np.all(history <= factor * history[0])
    assert np.all(np.diff(history[-3:] if len(history) >= 3 else history) > 0)
    # the weights handed back are the ones whose SSE broke the limit
    assert mlp.sse(final, X, Y, "tanh") > factor * history[0]
    # a tighter limit stops earlier, on the same path
    assert len(short) < len(history)
    assert np.array_equal(short, history[: len(short)])
    assert np.all(short <= 1e3 * short[0])


def test_lr_just_above_the_stability_limit_grows_monotonically_to_divergence() -> None:
    X, Y = sine()
    params = [(np.array([[0.5]]), np.array([2.0]))]
    history, _ = mlp.train(params, X, Y, lr=0.05, epochs=500)
    assert 5 < len(history) < 501
    tail = history[len(history) // 2 :]
    assert np.all(np.diff(tail) > 0)


def test_non_finite_initial_sse_diverges_at_epoch_zero_with_empty_history() -> None:
    X, Y = sine()
    params = [(np.array([[1e200]]), np.array([0.0]))]  # (1e200 · x)² overflows to inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history, _ = mlp.train(params, X, Y, lr=0.01, epochs=5)
    assert len(history) == 0


def test_an_infinite_sse_after_a_huge_finite_start_still_counts_as_divergence() -> None:
    X, Y = sine()
    params = [(np.array([[1e150]]), np.array([0.0]))]  # SSE ≈ 2.85e302, × 1e6 overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history, _ = mlp.train(params, X, Y, lr=1.0, epochs=6)
    assert np.isfinite(history[0])
    assert np.all(np.isfinite(history))
    assert len(history) < 7


def test_nan_initial_sse_diverges_at_epoch_zero_with_empty_history() -> None:
    X, Y = sine()
    params = [(np.array([[np.nan]]), np.array([0.0]))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history, _ = mlp.train(params, X, Y, lr=0.01, epochs=5)
        result = mlp.train_population(
            mlp.stack_params([params]), X, Y, np.array([0.01]), mlp.TrainConfig(epochs=5)
        )
    assert history.shape == (0,)
    assert result.diverged_epoch[0] == 0 and result.lengths[0] == 0


# --- population independence --------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    lr: float
    init: str
    seed: int
    scale: float | None
    shuffle_seed: int


_LAYERS = [3, 6, 2]
_EPOCHS = 40
_DIVERGING_LRS = (1.0, 5.0)


def _population_problem() -> tuple[np.ndarray, np.ndarray, list[_Config]]:
    rng = np.random.default_rng(20240501)
    X = rng.normal(size=(20, 3))
    Y = rng.normal(size=(20, 2))
    lrs = [0.003, 0.01, 0.03, 0.1, 0.3, 0.02, 0.05, 0.2, 0.007, 0.15, *_DIVERGING_LRS]
    inits = ["xavier", "normal", "he", "lecun", "uniform", "normal"]
    configs = [
        _Config(
            lr=lr,
            init=inits[i % len(inits)],
            seed=i % 4,
            scale=0.5 if inits[i % len(inits)] == "normal" and i % 2 else None,
            shuffle_seed=100 + i % 3,
        )
        for i, lr in enumerate(lrs)
    ]
    return X, Y, configs


def _initial(config: _Config) -> Params:
    return mlp.init_params(_LAYERS, config.init, config.seed, config.scale)


OPTIMIZERS: dict[str, dict[str, object]] = {
    "plain": {},
    "momentum": {"momentum": 0.6},
    "nesterov-wd-cosine": {
        "momentum": 0.6,
        "nesterov": True,
        "weight_decay": 0.02,
        "lr_schedule": "cosine",
        "warmup_epochs": 5,
    },
    "wd-step": {"weight_decay": 0.05, "lr_schedule": "step", "step_size": 7, "gamma": 0.5},
}
"""Update rules that a population must train exactly as it trains each trial alone."""


def _train_alone(
    X: np.ndarray,
    Y: np.ndarray,
    config: _Config,
    batch_size: int | None,
    settings: dict[str, object] | None = None,
) -> tuple[np.ndarray, Params]:
    return mlp.train(
        _initial(config),
        X,
        Y,
        lr=config.lr,
        epochs=_EPOCHS,
        activation="tanh",
        batch_size=batch_size,
        shuffle_seed=config.shuffle_seed if batch_size else None,
        **(settings or {}),
    )


def _train_in_populations(
    X: np.ndarray,
    Y: np.ndarray,
    configs: list[_Config],
    order: Sequence[int],
    size: int,
    batch_size: int | None,
    settings: dict[str, object] | None = None,
) -> dict[int, tuple[np.ndarray, Params]]:
    out: dict[int, tuple[np.ndarray, Params]] = {}
    for start in range(0, len(order), size):
        members = list(order[start : start + size])
        rngs = (
            [np.random.default_rng(configs[i].shuffle_seed) for i in members]
            if batch_size
            else None
        )
        result = mlp.train_population(
            mlp.stack_params([_initial(configs[i]) for i in members]),
            X,
            Y,
            np.array([configs[i].lr for i in members]),
            mlp.TrainConfig(epochs=_EPOCHS, batch_size=batch_size or 0, **(settings or {})),
            activation="tanh",
            shuffle_rngs=rngs,
        )
        for slot, i in enumerate(members):
            length = int(result.lengths[slot])
            assert np.all(np.isnan(result.histories[slot, length:]))
            out[i] = (result.histories[slot, :length], mlp.unstack_params(result.params, slot))
    return out


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("batch_size", [None, 7], ids=["full-batch", "mini-batch-7"])
def test_population_training_is_bit_identical_to_training_each_trial_alone(
    batch_size: int | None, optimizer: str
) -> None:
    """Also with a velocity per trial: compacting out diverged trials keeps it aligned."""
    X, Y, configs = _population_problem()
    settings = OPTIMIZERS[optimizer]
    alone = [_train_alone(X, Y, config, batch_size, settings) for config in configs]
    diverged = {c.lr for c, (h, _) in zip(configs, alone, strict=True) if len(h) < _EPOCHS + 1}
    assert diverged >= set(_DIVERGING_LRS) and len(diverged) < len(configs)  # a mix

    K = len(configs)
    shuffled = np.random.default_rng(5).permutation(K).tolist()
    assert shuffled != list(range(K))
    layouts = {
        "one population": (list(range(K)), K),
        "shuffled": (shuffled, K),
        "singletons": (shuffled, 1),
        "fives": (list(range(K)), 5),
        "shuffled fives": (shuffled, 5),
    }
    for name, (order, size) in layouts.items():
        trained = _train_in_populations(X, Y, configs, order, size, batch_size, settings)
        for i, (history, params) in enumerate(alone):
            pop_history, pop_params = trained[i]
            assert np.array_equal(pop_history, history), (name, i)
            for (W, b), (W_pop, b_pop) in zip(params, pop_params, strict=True):
                assert np.array_equal(W, W_pop, equal_nan=True), (name, i)
                assert np.array_equal(b, b_pop, equal_nan=True), (name, i)


# --- mini-batches -----------------------------------------------------------------------


def _minibatch_problem() -> tuple[np.ndarray, np.ndarray, Params]:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(23, 3))
    Y = rng.normal(size=(23, 2))
    return X, Y, mlp.init_params(_LAYERS, "xavier", 3)


def test_minibatch_history_has_every_epoch_of_full_data_sse() -> None:
    X, Y, params = _minibatch_problem()
    history, final = mlp.train(params, X, Y, lr=0.05, epochs=25, batch_size=7, shuffle_seed=1)
    assert history.shape == (26,)
    assert history[0] == pytest.approx(mlp.sse(params, X, Y, "tanh"), rel=1e-12)
    assert history[-1] == pytest.approx(mlp.sse(final, X, Y, "tanh"), rel=1e-12)
    assert history[-1] < history[0]


def test_minibatch_epoch_takes_ceil_n_over_batch_steps_in_shuffled_order() -> None:
    X, Y, params = _minibatch_problem()
    lr, batch_size, seed = 0.05, 7, 4
    _, final = mlp.train(params, X, Y, lr=lr, epochs=1, batch_size=batch_size, shuffle_seed=seed)
    order = np.random.default_rng(seed).permutation(len(X))
    expected = [(W.copy(), b.copy()) for W, b in params]
    for start in range(0, len(X), batch_size):
        rows = order[start : start + batch_size]
        grads = mlp.gradient(expected, X[rows], Y[rows], "tanh", "mean")
        expected = [
            (W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(expected, grads, strict=True)
        ]
    np.testing.assert_allclose(_flat(final), _flat(expected), rtol=1e-12, atol=1e-14)


def test_different_shuffle_seeds_give_different_minibatch_histories() -> None:
    X, Y, params = _minibatch_problem()
    runs = [
        mlp.train(params, X, Y, lr=0.05, epochs=10, batch_size=7, shuffle_seed=s)[0]
        for s in (0, 1, 0)
    ]
    assert runs[0][0] == runs[1][0]  # same start
    assert not np.array_equal(runs[0], runs[1])
    assert np.array_equal(runs[0], runs[2])  # same seed, same history


@pytest.mark.parametrize("batch_size", [23, 100])
def test_batch_size_at_least_n_is_full_batch_descent(batch_size: int) -> None:
    X, Y, params = _minibatch_problem()
    full, full_params = mlp.train(params, X, Y, lr=0.05, epochs=15)
    big, big_params = mlp.train(
        params, X, Y, lr=0.05, epochs=15, batch_size=batch_size, shuffle_seed=2
    )
    assert np.array_equal(full, big)
    assert np.array_equal(_flat(full_params), _flat(big_params))


def test_minibatch_without_shuffle_seed_is_an_input_error() -> None:
    X, Y, params = _minibatch_problem()
    with pytest.raises(InputError, match="shuffle"):
        mlp.train(params, X, Y, lr=0.05, epochs=2, batch_size=7)


# --- the symmetry problem -----------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_zeros_init_keeps_every_hidden_unit_identical(activation: str) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(15, 2))
    Y = np.sin(X[:, :1] * 2.0) + X[:, 1:]
    params = mlp.init_params([2, 5, 1], "zeros", 0)
    history, final = mlp.train(params, X, Y, lr=0.1, epochs=60, activation=activation)
    (W1, b1), (W2, b2) = final
    assert len(history) == 61 and history[-1] < history[0]
    assert b2[0] != 0.0  # the output bias always learns
    np.testing.assert_allclose(W1, np.repeat(W1[:, :1], 5, axis=1), rtol=1e-12, atol=0)
    np.testing.assert_allclose(b1, np.full(5, b1[0]), rtol=1e-12, atol=0)
    np.testing.assert_allclose(W2, np.repeat(W2[:1, :], 5, axis=0), rtol=1e-12, atol=0)
    if activation == "tanh":  # tanh(0) = 0: no signal ever reaches the hidden layer
        assert not W1.any() and not W2.any()
    else:  # sigmoid(0) = 1/2: the hidden layer does learn, just every unit the same
        assert np.abs(W1).max() > 1e-6 and np.abs(W2).max() > 1e-6


# --- errors -------------------------------------------------------------------------------


def test_unknown_activation_is_an_input_error_listing_the_valid_names() -> None:
    X, Y = sine()
    params = mlp.init_params([1, 3, 1], "xavier", 0)
    calls = [
        lambda: mlp.train(params, X, Y, lr=0.01, epochs=1, activation="softplus"),
        lambda: mlp.gradient(params, X, Y, "softplus"),
        lambda: mlp.sse(params, X, Y, "softplus"),
    ]
    for call in calls:
        with pytest.raises(InputError) as info:
            call()
        message = str(info.value)
        assert "softplus" in message
        assert all(name in message for name in ACTIVATIONS)


def test_unknown_init_is_an_input_error_listing_the_valid_names() -> None:
    with pytest.raises(InputError) as info:
        mlp.init_params([2, 3, 1], "glorot", 0)
    message = str(info.value)
    assert "glorot" in message
    assert all(name in message for name in INIT_SCHEMES)


def test_unknown_grad_scale_is_an_input_error_listing_the_valid_values() -> None:
    X, Y = sine()
    params = mlp.init_params([1, 1], "xavier", 0)
    for call in (
        lambda: mlp.train(params, X, Y, lr=0.01, epochs=1, grad_scale="median"),
        lambda: mlp.gradient(params, X, Y, "tanh", "median"),
    ):
        with pytest.raises(InputError, match=r"median.*mean.*sum"):
            call()


# --- the update-rule seam -------------------------------------------------------------------


class _TaggedDescent(mlp.GradientDescent):
    """Plain gradient descent that carries per-trial state (a tag and a step count) and checks,
    at every step, that the state is still aligned with the trials being stepped."""

    def __init__(self, lrs: np.ndarray) -> None:
        super().__init__(lrs)
        self.lrs = np.asarray(lrs, dtype=np.float64)
        self.tag = np.arange(len(self.lrs))
        self.steps = np.zeros(len(self.lrs), dtype=int)
        self.epochs_started: list[int] = []

    def start_epoch(self, epoch: int) -> None:
        self.epochs_started.append(epoch)

    def step(self, params: mlp.Stacked, grads: mlp.Stacked) -> None:
        np.testing.assert_array_equal(self.lr.ravel(), self.lrs[self.tag])
        assert params[0].shape[0] == len(self.tag)
        self.steps += 1
        super().step(params, grads)

    def keep(self, mask: np.ndarray) -> None:
        super().keep(mask)
        self.tag, self.steps = self.tag[mask], self.steps[mask]


@dataclass(frozen=True)
class _TaggedConfig(mlp.TrainConfig):
    def update_rule(self, lrs: np.ndarray) -> mlp.UpdateRule:
        return _TaggedDescent(lrs)


def test_the_update_rule_keeps_its_per_trial_state_aligned_when_trials_stop() -> None:
    X, Y, configs = _population_problem()
    lrs = np.array([c.lr for c in configs])
    params = mlp.stack_params([_initial(c) for c in configs])
    population = mlp.Population(params, lrs, _TaggedConfig(epochs=_EPOCHS))
    rule = population.active.rule
    assert isinstance(rule, _TaggedDescent)
    population.advance(X, Y, _EPOCHS - 1)
    # Survivors took every step so far; the rule dropped the others' state when they stopped.
    running = population.running
    assert 0 < len(running) < len(configs)
    np.testing.assert_array_equal(rule.tag, running)
    assert (rule.steps == _EPOCHS - 1).all()
    population.advance(X, Y, _EPOCHS)
    result = population.result()
    plain = mlp.train_population(params, X, Y, lrs, mlp.TrainConfig(epochs=_EPOCHS))
    np.testing.assert_array_equal(result.histories, plain.histories)  # the same steps
    assert rule.epochs_started == list(range(_EPOCHS))
    assert {mlp.STATUS_CODES[s] for s in result.status} == {"ok", "diverged"}
