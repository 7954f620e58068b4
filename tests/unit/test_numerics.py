"""The portable numerics: accurate, free of BLAS, and the same bits whatever the CPU offers.

The BLAS path is the control: where the portable path must give equal bits, the same check on
the BLAS path shows that it can tell them apart.
"""

from __future__ import annotations

import numpy as np
import pytest

from gdsearch import mlp
from gdsearch.data import load_dataset
from gdsearch.errors import InputError
from gdsearch.mlp import elementary, numerics

ULP_AGAINST_NUMPY = 3
"""np.tanh is itself within about one ulp of the exact value."""


def _ulps(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(values - reference) / np.spacing(np.abs(reference))


def _wide_range(rng: np.random.Generator) -> np.ndarray:
    tiny = np.ldexp(rng.uniform(0.5, 1.0, 20_000), rng.integers(-1074, -1, 20_000))
    return np.concatenate(
        [
            rng.uniform(-25.0, 25.0, 400_000),
            rng.normal(0.0, 1.0, 300_000),
            rng.uniform(-0.4, 0.4, 200_000),
            rng.uniform(-1e-6, 1e-6, 50_000),
            tiny,
            -tiny,
        ]
    )


def test_portable_tanh_is_within_3_ulp_of_numpy_from_subnormals_to_saturation() -> None:
    x = _wide_range(np.random.default_rng(0))
    values = elementary.tanh(x)
    assert _ulps(values, np.tanh(x)).max() <= ULP_AGAINST_NUMPY
    assert np.mean(values == np.tanh(x)) > 0.7  # most are correctly rounded
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 19.5, -30.0, 1e300])
    np.testing.assert_array_equal(elementary.tanh(special), np.tanh(special))
    assert np.signbit(elementary.tanh(np.array([-0.0])))[0]


def test_portable_tanh_is_within_its_documented_error_of_the_exact_value() -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 120
    x = np.random.default_rng(1).uniform(-3.0, 3.0, 3000)  # where the errors are largest
    values = elementary.tanh(x)
    exact = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in x])
    errors = [
        abs(mpmath.mpf(float(v)) - mpmath.tanh(mpmath.mpf(float(xi)))) / np.spacing(abs(e))
        for v, xi, e in zip(values, x, exact, strict=True)
    ]
    assert float(max(errors)) <= elementary.MAX_ULP


def test_portable_tanh_works_in_place_and_on_a_strided_output() -> None:
    x = np.random.default_rng(2).normal(size=(3, 4, 50))
    expected = elementary.tanh(x)
    inplace = x.copy()
    elementary.tanh(inplace, out=inplace)
    strided = np.ones((3, 5, 50))
    elementary.tanh(x, out=strided[:, :-1, :])
    np.testing.assert_array_equal(inplace, expected)
    np.testing.assert_array_equal(strided[:, :-1, :], expected)
    assert (strided[:, -1, :] == 1.0).all()


def test_numpy_sums_rows_in_the_pairwise_order_the_portable_path_writes_out() -> None:
    """numpy's pairwise order is fixed in C; should a numpy sum otherwise, the path uses its own
    elementwise version of that order, so this only says which of the two runs here."""
    rng = np.random.default_rng(3)
    for n in (1, 5, 8, 13, 128, 129, 200, 1000, 9000):
        x = rng.normal(size=(4, n)) * np.exp2(rng.integers(-40, 40, size=(4, n)))
        np.testing.assert_array_equal(numerics._pairwise(x), np.add.reduce(x, axis=-1))
    assert numerics._numpy_sums_pairwise()


def test_fixed_products_agree_with_matmul_and_do_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(4)
    a, b, c = (
        rng.normal(size=(6, 5, 7)),
        rng.normal(size=(6, 7, 300)),
        rng.normal(size=(6, 4, 300)),
    )
    product = numerics._fixed_matmul(a, b, np.empty((6, 5, 300)))
    product_nt = numerics._fixed_matmul_nt(b, c, np.empty((6, 7, 4)))
    np.testing.assert_allclose(product, a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(product_nt, b @ np.swapaxes(c, -1, -2), rtol=1e-12, atol=1e-12)
    alone = numerics._fixed_matmul(a[2:3], b[2:3], np.empty((1, 5, 300)))
    alone_nt = numerics._fixed_matmul_nt(b[2:3], c[2:3], np.empty((1, 7, 4)))
    np.testing.assert_array_equal(alone[0], product[2])
    np.testing.assert_array_equal(alone_nt[0], product_nt[2])


def test_an_unknown_numerics_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(InputError, match="valid: portable, blas"):
        mlp.TrainConfig(epochs=3, numerics="fast")


def test_fingerprints_name_the_path_and_for_blas_the_machine() -> None:
    portable, blas = numerics.fingerprint("portable"), numerics.fingerprint("blas")
    assert portable == {"path": "portable", "version": numerics.PORTABLE_VERSION}
    assert blas["path"] == "blas" and blas["numpy"] == np.__version__
    assert numerics.label(portable) == f"portable; version {numerics.PORTABLE_VERSION}"
    assert numerics.label(blas).startswith(f"blas; numpy {np.__version__}; blas ")


# --- no BLAS on the portable path ----------------------------------------------------------

BLAS_ENTRIES = ("matmul", "dot", "vdot", "inner", "outer", "tensordot", "einsum", "kron")
LAPACK_ENTRIES = ("norm", "eigh", "eigvalsh", "solve", "lstsq", "inv", "svd")


def _forbid_blas(monkeypatch: pytest.MonkeyPatch, lapack: bool = True) -> None:
    """Make numpy's BLAS and LAPACK entry points raise: a check of their absence."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a BLAS or LAPACK routine was called")

    for name in BLAS_ENTRIES:
        monkeypatch.setattr(np, name, refuse)
    for name in LAPACK_ENTRIES if lapack else ():
        monkeypatch.setattr(np.linalg, name, refuse)


TRAININGS = [
    {"activation": "tanh"},
    {"activation": "sigmoid", "batch_size": 16},
    {"activation": "relu", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"activation": "identity", "lr_schedule": "cosine", "warmup_epochs": 5},
]


@pytest.mark.parametrize("settings", TRAININGS, ids=lambda s: s["activation"])
def test_portable_training_calls_no_blas_and_blas_training_does(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, object]
) -> None:
    X, Y = load_dataset("moons", n_samples=60, noise=0.1, seed=0)
    params = mlp.init_params([2, 6, 5, 1], "xavier", 0)
    _forbid_blas(monkeypatch)
    history, _ = mlp.train(params, X, Y, lr=0.05, epochs=30, shuffle_seed=1, **settings)
    assert len(history) == 31
    with pytest.raises(AssertionError, match="BLAS"):
        mlp.train(params, X, Y, lr=0.05, epochs=30, shuffle_seed=1, numerics="blas", **settings)


def test_the_sharpness_meters_hessian_vector_products_call_no_blas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Lanczos step's small tridiagonal eigenproblem (np.linalg.eigh) is the one LAPACK call
    left; the products and sums around it are the portable path's."""
    X, Y = load_dataset("moons", n_samples=40, noise=0.1, seed=0)
    stacked = mlp.stack_params([mlp.init_params([2, 5, 1], "he", s) for s in range(3)])
    _forbid_blas(monkeypatch, lapack=False)
    monkeypatch.setattr(np.linalg, "norm", lambda *a, **k: 1 / 0)
    config = mlp.TrainConfig(epochs=20, sharpness_every=5)
    result = mlp.train_population(stacked, X, Y, np.array([0.1, 0.5, 1.0]), config)
    assert np.isfinite(result.sharpness[:, 0]).all()


# --- the same bits whatever SIMD numpy may use -----------------------------------------------
