"""Sharpness along the way: the top Hessian eigenvalue of the loss, measured in every trial.

Checked against the full Hessian built column by column (central differences of the analytic
gradient), for a population and for each trial alone, through segments, mini-batches and
weight decay; read as edge of stability and catapult on jobs/edge_of_stability.toml (stored
and resumed through Ray: tests/integration/test_sharpness.py).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

import gdsearch
from gdsearch import analysis, mlp
from gdsearch.data import moons
from gdsearch.job.spec import load_job, parse_job
from gdsearch.mlp.network import Params
from gdsearch.results.store import ResultsStore
from gdsearch.search.plan import plan_units
from gdsearch.search.unit import train_unit
from gdsearch.stability.edge import EDGE_BAND
from tests.conftest import REPO

SIZES = [2, 5, 3, 1]


def _flat(params: Params) -> np.ndarray:
    return np.concatenate([np.vstack([W, b]).ravel() for W, b in params])


def _unflat(theta: np.ndarray, like: Params) -> Params:
    out, at = [], 0
    for W, b in like:
        block = theta[at : at + W.size + b.size].reshape(W.shape[0] + 1, W.shape[1])
        out.append((block[:-1], block[-1]))
        at += W.size + b.size
    return out


def exact_sharpness(
    params: Params, X: np.ndarray, Y: np.ndarray, grad_scale: str = "mean", wd: float = 0.0
) -> float:
    """λ_max of the full Hessian, built column by column from the analytic gradient."""
    theta = _flat(params)

    def grad(t: np.ndarray) -> np.ndarray:
        return _flat(mlp.gradient(_unflat(t, params), X, Y, "tanh", grad_scale))

    H = np.zeros((theta.size, theta.size))
    for i in range(theta.size):
        step = np.zeros(theta.size)
        step[i] = 1e-5
        H[:, i] = (grad(theta + step) - grad(theta - step)) / 2e-5
    return float(np.linalg.eigvalsh((H + H.T) / 2 + wd * np.eye(theta.size)).max())


def _train(params: list[Params], lrs: list[float], **settings: object) -> mlp.PopulationResult:
    X, Y = moons(40, 0.1, 0)
    config = mlp.TrainConfig(epochs=60, sharpness_every=10, **settings)  # type: ignore[arg-type]
    return mlp.train_population(mlp.stack_params(params), X, Y, np.array(lrs), config)


@pytest.mark.parametrize(
    ("grad_scale", "weight_decay"), [("mean", 0.0), ("sum", 0.0), ("mean", 0.05)]
)
def test_sharpness_is_within_1e_3_of_the_full_hessians_top_eigenvalue(
    grad_scale: str, weight_decay: float
) -> None:
    X, Y = moons(40, 0.1, 0)
    params = [mlp.init_params(SIZES, "xavier", seed) for seed in range(3)]
    lrs = [0.05, 0.3, 1.0]
    config = mlp.TrainConfig(
        epochs=60, sharpness_every=20, grad_scale=grad_scale, weight_decay=weight_decay
    )
    population = mlp.Population(mlp.stack_params(params), np.array(lrs), config)
    for until in (0, 20, 40):  # check each measurement at the weights it was taken at
        population.advance(X, Y, until)
        for k in population.running:
            weights = mlp.unstack_params(
                population.active.Wbs, int(np.flatnonzero(population.active.index == k)[0])
            )
            measured = population.sharpness[k, until // 20]
            exact = exact_sharpness(weights, X, Y, grad_scale, weight_decay)
            assert abs(measured - exact) <= 1e-3 * exact, (until, k, measured, exact)


def test_a_trials_sharpness_is_the_same_alone_batched_and_in_pickled_segments() -> None:
    params = [mlp.init_params(SIZES, "he", seed) for seed in range(4)]
    lrs = [0.02, 0.2, 0.6, 30.0]  # the last diverges: compaction on the way
    together = _train(params, lrs)
    assert mlp.STATUS_CODES[together.status[-1]] == "diverged"
    for k in range(4):
        alone = _train([params[k]], [lrs[k]])
        np.testing.assert_array_equal(alone.sharpness[0], together.sharpness[k])
    X, Y = moons(40, 0.1, 0)
    config = mlp.TrainConfig(epochs=60, sharpness_every=10)
    population = mlp.Population(mlp.stack_params(params), np.array(lrs), config)
    for until in (5, 10, 33, 60):
        population = pickle.loads(pickle.dumps(population))
        population.advance(X, Y, until)
    np.testing.assert_array_equal(population.result().sharpness, together.sharpness)
    measured = ~np.isnan(together.sharpness)
    ok = np.array([mlp.STATUS_CODES[s] == "ok" for s in together.status])
    assert ok.any() and measured[ok].all() and measured[3, 0] and not measured[3, -1]


def test_measuring_the_sharpness_does_not_change_training() -> None:
    params = [mlp.init_params(SIZES, "xavier", seed) for seed in range(3)]
    X, Y = moons(40, 0.1, 0)
    stacked, lrs = mlp.stack_params(params), np.array([0.1, 0.5, 2.0])
    for settings in ({}, {"batch_size": 7}, {"momentum": 0.9}):
        rngs = [np.random.default_rng(1) for _ in lrs] if settings.get("batch_size") else None
        plain = mlp.train_population(
            stacked, X, Y, lrs, mlp.TrainConfig(epochs=40, **settings), shuffle_rngs=rngs
        )
        rngs = [np.random.default_rng(1) for _ in lrs] if settings.get("batch_size") else None
        config = mlp.TrainConfig(epochs=40, sharpness_every=4, **settings)
        watched = mlp.train_population(stacked, X, Y, lrs, config, shuffle_rngs=rngs)
        np.testing.assert_array_equal(plain.histories, watched.histories)
        assert plain.sharpness is None and watched.sharpness is not None


EDGE_JOB = REPO / "jobs" / "edge_of_stability.toml"


@pytest.fixture(scope="module")
def edge_results(tmp_path_factory: pytest.TempPathFactory) -> gdsearch.Results:
    """jobs/edge_of_stability.toml, one seed, trained as work units in this process."""
    spec = parse_job(EDGE_JOB.read_text().replace("seed = [0, 1, 2]", "seed = [0]"), str(EDGE_JOB))
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path_factory.mktemp("edge") / spec.name)
    store.prepare(spec.source)
    for unit in plan_units(spec.trials(), 1):
        store.write_part(*train_unit(X, Y, unit))
    return gdsearch.load_results(store.location)


def test_at_the_edge_the_ratio_settles_in_0_9_to_1_2_while_the_sse_keeps_falling(
    edge_results: gdsearch.Results,
) -> None:
    """The trials whose lr·λ/2 reached 1 stay at the edge: over the second half of training
    the ratio's median is within [0.9, 1.2], and the SSE there keeps falling: the lowest of the
    last 500 epochs is below the lowest of epochs 1000-1500 (at the edge the loss spikes, so
    one epoch against another says little)."""
    trials = edge_results.trials.set_index("trial_id")
    measured = edge_results.sharpness.merge(trials[["lr", "status"]], on="trial_id")
    measured["ratio"] = measured["lr"] * measured["sharpness"] / 2
    reached = measured[(measured["ratio"] >= 1.0) & (measured["status"] == "ok")]
    at_edge = sorted(set(reached["trial_id"]))
    assert len(at_edge) >= 3
    history = edge_results.history.set_index(["trial_id", "epoch"])["sse"]
    for trial_id in at_edge:
        late = measured[(measured["trial_id"] == trial_id) & (measured["epoch"] >= 1500)]
        assert EDGE_BAND[0] <= late["ratio"].median() <= EDGE_BAND[1], trial_id
        sse = history.loc[trial_id]
        assert sse.loc[2500:3000].min() < sse.loc[1000:1500].min() < sse.loc[0]
        assert (np.diff(sse.to_numpy()) > 0).any()  # falling, but not monotonically


def test_the_edge_job_shows_both_mechanisms_and_the_report_says_why(
    edge_results: gdsearch.Results, tmp_path: Path
) -> None:
    metrics = analysis.trial_metrics(edge_results)
    classes = set(metrics["convergence"])
    assert {"edge_of_stability", "catapult", "diverged"} <= classes
    catapult = metrics[metrics["convergence"] == "catapult"]
    assert (catapult["edge_ratio_init"] > 1).all()  # started above 2/lr: beyond the prediction
    from gdsearch.report import build

    page = build(edge_results, tmp_path / "report.html").read_text()
    assert "edge of stability" in page and "catapult" in page
    assert "measured / predicted" in page and "Sharpness during training" in page


@pytest.mark.parametrize("lr", [0.0501, 0.0795])
def test_patience_does_not_stop_a_trial_oscillating_at_the_edge(lr: float) -> None:
    """Its loss spikes ten-fold and takes longer than the patience to fall below its old best:
    a spike restarts the rule, so the trial trains on (jobs/edge_of_stability.toml, seed 0)."""
    spec = load_job(EDGE_JOB)
    X, Y = spec.load_data()
    trial = next(t for t in spec.trials() if t.seed == 0 and abs(t.lr - lr) < 1e-3)
    params = trial.initial_params(1, 1)
    history, _ = mlp.train(params, X, Y, lr=trial.lr, epochs=3000, activation="tanh", patience=100)
    assert len(history) == 3001  # trained to the end
    assert (np.diff(history) > 0).sum() > 10  # it does oscillate, spike after spike
    best = np.minimum.accumulate(history)
    assert (history > 5 * best).any()  # one spike at least is five-fold


def test_a_warm_start_on_an_overtaken_eigenvector_still_finds_the_top_eigenvalue() -> None:
    from gdsearch.mlp.sharpness import FRESH, SharpnessMeter, _lanczos

    spectrum = np.array([3.0, 2.0, 1.0, 0.5, 0.1, 0.05, 0.02, 0.01, 0.005, 0.001])
    warm = np.zeros((1, 10))
    warm[0, 1], warm[0, 0] = 1.0, 1e-4  # the old top eigenvector, now the second
    meter = SharpnessMeter(np.ones((2, 3)), np.ones((1, 3)), [1, 1], "tanh", 1.0)
    value, vector = _lanczos(lambda v, rows: v * spectrum, warm + FRESH * meter.start(1, 10))
    assert value[0] == pytest.approx(3.0, rel=1e-3) and abs(vector[0, 0]) > 0.99


def test_the_edge_follows_momentum_so_a_rate_below_it_is_not_a_catapult(tmp_path: Path) -> None:
    """Heavy ball at β = 0.9 is stable up to lr·λ/2 = 1.9: a rate starting at lr·λ₀/2 = 1.5 is
    inside its edge, and its edge ratio is measured against 1.9, not 1."""
    text = EDGE_JOB.read_text().replace("epochs = 3000", "epochs = 600\nmomentum = 0.9")
    text = text.replace("lr = { log = [0.005, 0.2], num = 9 }", "lr = [0.0965]")
    spec = parse_job(text.replace("seed = [0, 1, 2]", "seed = [0]"), str(EDGE_JOB))
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / spec.name)
    store.prepare(spec.source)
    store.write_part(*train_unit(X, Y, spec.trials()))
    metrics = analysis.trial_metrics(gdsearch.load_results(store.location))
    row = metrics.iloc[0]
    assert 1.0 < row["lr"] * row["sharpness_init"] / 2 < 1.9  # past the plain-descent edge
    assert row["edge_ratio_init"] == pytest.approx(row["lr"] * row["sharpness_init"] / 3.8)
    assert row["convergence"] != "catapult"
