"""Every initialisation scheme draws what its definition says, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from gdsearch import mlp
from gdsearch.mlp.inits import INIT_SCHEMES

FAN_IN, FAN_OUT = 400, 500
WIDE = 20_000  # fan_out of a layer drawn to measure bias statistics
REL = 0.03  # relative tolerance of a standard deviation
SEED = 12345


def _layer(
    init: str, scale: float | None = None, fan_in: int = FAN_IN, fan_out: int = FAN_OUT
) -> tuple[np.ndarray, np.ndarray]:
    ((W, b),) = mlp.init_params([fan_in, fan_out], init, SEED, scale)
    return W, b


def _assert_centred(values: np.ndarray, std: float) -> None:
    # the sample mean's own standard error is std / sqrt(N); allow five of them
    assert abs(values.mean()) < 5.0 * std / np.sqrt(values.size)


@pytest.mark.parametrize("init", sorted(INIT_SCHEMES))
def test_shapes_are_fan_in_by_fan_out_and_fan_out(init: str) -> None:
    params = mlp.init_params([7, 5, 3, 2], init, SEED)
    assert [(W.shape, b.shape) for W, b in params] == [
        ((7, 5), (5,)),
        ((5, 3), (3,)),
        ((3, 2), (2,)),
    ]
    assert all(W.dtype == np.float64 and b.dtype == np.float64 for W, b in params)


def test_zeros_draws_only_zeros() -> None:
    W, b = _layer("zeros")
    assert W.shape == (FAN_IN, FAN_OUT) and not W.any() and not b.any()


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_normal_weights_and_biases_have_mean_zero_and_std_scale(scale: float) -> None:
    W, _ = _layer("normal", scale)
    _, b = _layer("normal", scale, fan_in=4, fan_out=WIDE)
    for values in (W, b):
        _assert_centred(values, scale)
        assert values.std() == pytest.approx(scale, rel=REL)
    assert abs(W).max() > 3.0 * scale  # a Gaussian, not a bounded draw


def test_normal_without_scale_uses_std_one() -> None:
    W, b = _layer("normal")
    assert np.array_equal(W, _layer("normal", 1.0)[0])
    assert W.std() == pytest.approx(1.0, rel=REL)
    assert b.shape == (FAN_OUT,) and b.std() == pytest.approx(1.0, rel=0.15)  # biases drawn too


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_uniform_weights_and_biases_fill_minus_scale_to_scale(scale: float) -> None:
    W, _ = _layer("uniform", scale)
    _, b = _layer("uniform", scale, fan_in=4, fan_out=WIDE)
    for values in (W, b):
        assert values.min() >= -scale and values.max() <= scale
        assert values.min() < -0.99 * scale and values.max() > 0.99 * scale
        _assert_centred(values, scale / np.sqrt(3.0))
        assert values.std() == pytest.approx(scale / np.sqrt(3.0), rel=REL)


def test_xavier_is_glorot_uniform_with_zero_biases() -> None:
    W, b = _layer("xavier")
    limit = np.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert W.min() >= -limit and W.max() <= limit
    assert W.min() < -0.99 * limit and W.max() > 0.99 * limit
    _assert_centred(W, limit / np.sqrt(3.0))
    assert W.std() == pytest.approx(limit / np.sqrt(3.0), rel=REL)
    assert W.var() == pytest.approx(2.0 / (FAN_IN + FAN_OUT), rel=2 * REL)
    assert not b.any()


@pytest.mark.parametrize(("init", "variance"), [("he", 2.0), ("lecun", 1.0)])
def test_he_and_lecun_are_normal_with_variance_over_fan_in_and_zero_biases(
    init: str, variance: float
) -> None:
    W, b = _layer(init)
    std = np.sqrt(variance / FAN_IN)
    _assert_centred(W, std)
    assert W.std() == pytest.approx(std, rel=REL)
    assert abs(W).max() > 3.0 * std
    assert not b.any()
    # fan_in, not fan_out, sets the spread
    W_wide, _ = _layer(init, fan_in=100, fan_out=FAN_OUT)
    assert W_wide.std() == pytest.approx(np.sqrt(variance / 100), rel=REL)


@pytest.mark.parametrize("init", ["xavier", "he", "lecun", "zeros"])
def test_scale_is_ignored_by_schemes_that_set_their_own_spread(init: str) -> None:
    for (W, b), (W_scaled, b_scaled) in zip(
        mlp.init_params([6, 5, 2], init, SEED),
        mlp.init_params([6, 5, 2], init, SEED, scale=7.5),
        strict=True,
    ):
        assert np.array_equal(W, W_scaled) and np.array_equal(b, b_scaled)


@pytest.mark.parametrize("init", sorted(set(INIT_SCHEMES) - {"zeros"}))
def test_same_seed_gives_identical_weights_and_a_different_seed_different_ones(init: str) -> None:
    sizes = [5, 8, 3]
    first = mlp.init_params(sizes, init, 1)
    again = mlp.init_params(sizes, init, 1)
    other = mlp.init_params(sizes, init, 2)
    for (W, b), (W_again, b_again), (W_other, _) in zip(first, again, other, strict=True):
        assert np.array_equal(W, W_again) and np.array_equal(b, b_again)
        assert not np.array_equal(W, W_other)


def test_seed_sequence_and_generator_seeds_are_reproducible() -> None:
    sizes = [3, 4, 1]
    a = mlp.init_params(sizes, "he", np.random.SeedSequence([0, 0, 3]))
    b = mlp.init_params(sizes, "he", np.random.SeedSequence([0, 0, 3]))
    c = mlp.init_params(sizes, "he", np.random.default_rng(np.random.SeedSequence([0, 0, 3])))
    for (Wa, _), (Wb, _), (Wc, _) in zip(a, b, c, strict=True):
        assert np.array_equal(Wa, Wb) and np.array_equal(Wa, Wc)


def test_layers_of_one_network_are_drawn_independently() -> None:
    (W1, _), (W2, _) = mlp.init_params([6, 6, 6], "normal", SEED)
    assert not np.array_equal(W1, W2)
