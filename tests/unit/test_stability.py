"""The stability limit: 2/λ_max, the linear closed form and the power-iteration estimate, and
the limit of each update rule (momentum, Nesterov, weight decay)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import gdsearch
from gdsearch import analysis, mlp, stability
from gdsearch.data import moons, sine
from gdsearch.stability import linear_lr_limit
from tests.conftest import REPO


def test_sharpness_matches_the_exact_hessian_of_the_linear_model() -> None:
    X, Y = sine()
    params = mlp.init_params([1, 1], "normal", 0)
    exact = np.linalg.eigvalsh(stability.linear_hessian(X)).max()
    assert stability.sharpness(params, X, Y, "identity") == pytest.approx(exact, rel=0.01)
    assert stability.sharpness(params, X, Y, "identity") == pytest.approx(exact, rel=1e-6)


def test_linear_limit_separates_converging_from_diverging_rates_on_sine() -> None:
    X, Y = sine()
    limit = stability.linear_lr_limit(X)
    assert limit == pytest.approx(0.0342, rel=0.01)
    params = mlp.init_params([1, 1], "normal", 0)
    below, _ = mlp.train(params, X, Y, lr=0.95 * limit, epochs=4000)
    above, _ = mlp.train(params, X, Y, lr=1.05 * limit, epochs=4000)
    assert len(below) == 4001 and below[-1] < below[0]
    assert len(above) < 4001  # diverged


def test_sharpness_of_an_mlp_matches_the_eigenvalues_of_its_full_hessian() -> None:
    X, Y = moons(n_samples=30, noise=0.1, seed=1)
    params = mlp.init_params([2, 4, 1], "xavier", 3)
    size = sum(W.size + b.size for W, b in params)
    columns = [
        stability.hessian_vector_product(params, X, Y, np.eye(size)[i], "tanh")
        for i in range(size)
    ]
    hessian = np.array(columns)
    hessian = 0.5 * (hessian + hessian.T)
    eigenvalues = np.linalg.eigvalsh(hessian)
    largest = eigenvalues[np.argmax(np.abs(eigenvalues))]
    assert stability.sharpness(params, X, Y, "tanh") == pytest.approx(largest, rel=1e-4)
    assert stability.lr_limit(params, X, Y, "tanh") == pytest.approx(2 / abs(largest), rel=1e-4)


def test_summed_gradient_makes_the_loss_n_times_sharper() -> None:
    X, Y = moons(n_samples=40, noise=0.1, seed=2)
    params = mlp.init_params([2, 3, 1], "he", 1)
    mean = stability.sharpness(params, X, Y, "relu", "mean")
    total = stability.sharpness(params, X, Y, "relu", "sum")
    assert total == pytest.approx(40 * mean, rel=1e-4)


@pytest.mark.parametrize("grad_scale", ["mean", "sum"])
def test_linear_gd_path_retraces_training_sse_epoch_for_epoch(grad_scale: str) -> None:
    # The report's closed-form path (H·θ − g) and mlp.train's backprop are separate code.
    X, Y = sine()
    params = mlp.init_params([1, 1], "normal", 3)
    start = np.array([params[0][0][0, 0], params[0][1][0]])
    limit = stability.linear_lr_limit(X, grad_scale)
    lrs = np.array([0.1, 0.9, 1.05]) * limit
    paths = stability.linear_gd_path(X, Y[:, 0], start, lrs, 300, grad_scale)
    A = np.column_stack([X[:, 0], np.ones(len(X))])
    for lr, path in zip(lrs, paths, strict=True):
        history, _ = mlp.train(
            params, X, Y, lr=lr, epochs=300, grad_scale=grad_scale, divergence_factor=1e300
        )
        sse = ((Y[:, 0] - path @ A.T) ** 2).sum(axis=1)
        np.testing.assert_allclose(sse, history, rtol=1e-9)
    assert history[-1] > 1e3 * history[0]  # the last rate is past the limit and blows up


def test_sine_momentum_diverges_exactly_past_each_update_rules_limit(tmp_path: Path) -> None:
    """jobs/sine_momentum.toml: per (β, Nesterov), the measured bracket holds the exact limit,
    so the diverging rates are those past it, to one grid step; the report's limits agree."""
    from gdsearch.job.spec import load_job
    from gdsearch.report import predicted_limits
    from gdsearch.results.store import ResultsStore
    from gdsearch.search.plan import plan_units
    from gdsearch.search.unit import train_unit

    spec = load_job(REPO / "jobs" / "sine_momentum.toml")
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / spec.name)
    store.prepare(spec.source)
    for unit in plan_units(spec.trials(), 1):
        store.write_part(*train_unit(X, Y, unit))
    results = gdsearch.load_results(store.location)
    brackets = analysis.critical_lr(results)
    assert len(brackets) == 5  # β 0; 0.5 and 0.9, each plain and Nesterov
    limits = predicted_limits(results)
    assert len(set(limits.values())) == 5
    for row in brackets.itertuples():
        limit = linear_lr_limit(X, "mean", row.momentum, row.nesterov)
        assert row.lr_converged < limit <= row.lr_diverged, row
        assert row.lr_diverged / row.lr_converged < 1.09  # one step of the 40-point grid
        assert any(math.isclose(limit, v) for v in limits.values())
    heavy = brackets[~brackets["nesterov"]].sort_values("momentum")
    assert heavy["lr_diverged"].is_monotonic_increasing  # momentum moves the limit up


@pytest.mark.parametrize(
    ("momentum", "nesterov", "weight_decay"),
    [(0.5, False, 0.0), (0.9, False, 0.0), (0.5, True, 0.0), (0.0, False, 2.0), (0.6, True, 1.0)],
)
def test_each_update_rules_limit_is_where_the_linear_model_starts_to_diverge(
    momentum: float, nesterov: bool, weight_decay: float
) -> None:
    """Just below the predicted limit training converges; just above, it diverges."""
    X, Y = sine()
    limit = linear_lr_limit(X, "mean", momentum, nesterov, weight_decay)
    exact = 2 * (1 + momentum) / (1 + 2 * momentum if nesterov else 1)
    top = np.linalg.eigvalsh(stability.linear_hessian(X)).max()
    assert limit == pytest.approx(exact / (top + weight_decay), rel=1e-12)
    params = mlp.init_params([1, 1], "normal", 0, 1.0)
    settings = {"momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay}
    below, _ = mlp.train(params, X, Y, lr=0.97 * limit, epochs=4000, **settings)
    above, _ = mlp.train(params, X, Y, lr=1.03 * limit, epochs=4000, **settings)
    assert len(below) == 4001 and below[-1] < below[0]
    assert len(above) < 4001
