"""The learning-rate range test: its sweep (gdsearch.mlp.range_test) against gradient descent
written here, fast.ai's suggestion rules (gdsearch.analysis.range_test) against a curve whose
answers are known, and a job's ``[lr_range]`` stored and reported beside the grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gdsearch
from gdsearch.analysis.range_test import range_summary, suggestions, turned_up
from gdsearch.data import load_dataset
from gdsearch.errors import InputError
from gdsearch.mlp import TrainConfig, init_params, stack_params
from gdsearch.mlp.range_test import RangeSettings, range_test
from gdsearch.report import build
from gdsearch.search.range_test import range_tests
from gdsearch.stability.limits import linear_lr_limit

SINE = {
    "job": {"name": "sine-range", "seed": 0},
    "data": {"dataset": "sine"},
    "model": {"init_scale": 1.0},
    "train": {"epochs": 2000},
    "search": {
        "lr": {"log": [1e-3, 1e-1], "num": 13},
        "init": ["normal"],
        "hidden": [[]],
        "seed": [0, 1, 2],
    },
    "lr_range": {},
}


def test_the_sweeps_rates_are_geometric_from_start_to_end_exactly() -> None:
    rates = RangeSettings().rates()
    assert len(rates) == 100 and rates[0] == 1e-7 and rates[-1] == 10.0
    np.testing.assert_allclose(rates[1:] / rates[:-1], (1e8) ** (1 / 99), rtol=1e-12)


def test_each_step_is_gradient_descent_at_the_sweeps_rate() -> None:
    X, Y = load_dataset("sine")
    params = init_params([1, 1], "normal", 0, 1.0)
    settings = RangeSettings(start_lr=1e-3, end_lr=1e-2, steps=5, smoothing=0.5)
    result = range_test(stack_params([params]), X, Y, TrainConfig(epochs=1), "tanh", settings)
    w, b = params[0][0][0, 0], params[0][1][0]
    x, y = X[:, 0], Y[:, 0]
    average = 0.0
    for step, rate in enumerate(settings.rates()):
        residual = w * x + b - y
        sse = float(residual @ residual)
        assert result.sse[0, step] == pytest.approx(sse, rel=1e-12)
        average = 0.5 * average + 0.5 * sse
        assert result.smoothed[0, step] == pytest.approx(average / (1 - 0.5 ** (step + 1)))
        w, b = w - rate * 2 * residual @ x / len(x), b - rate * 2 * residual.sum() / len(x)
    assert result.steps.tolist() == [5]


def test_the_sweep_stops_once_its_smoothed_loss_is_past_four_times_its_lowest() -> None:
    X, Y = load_dataset("sine")
    params = stack_params([init_params([1, 1], "normal", s, 1.0) for s in range(3)])
    result = range_test(params, X, Y, TrainConfig(epochs=1))
    for k, taken in enumerate(result.steps):
        assert taken < 100  # all three left the valley before 10
        smoothed = result.smoothed[k, :taken]
        assert smoothed[-1] > 4 * np.min(smoothed[:-1]) or not np.isfinite(smoothed[-1])
        assert (smoothed[:-1] <= 4 * np.minimum.accumulate(smoothed[:-1])).all()
        assert np.isnan(result.sse[k, taken:]).all()


def test_fastais_rules_on_a_curve_whose_answers_are_known() -> None:
    rates = np.geomspace(1e-6, 1.0, 100)
    losses = (np.log10(rates) + 2.0) ** 2 + 1.0  # lowest at lr = 1e-2, falling before it
    found = suggestions(rates, losses, planned=100)
    lowest = int(np.argmin(losses[10:95])) + 10
    assert found["minimum"] == pytest.approx(rates[lowest] / 10)
    assert found["steep"] == rates[10]  # a parabola in log lr falls fastest where read first
    span = (lowest - 10) / 3  # the longest valley runs from the first point read to the lowest
    assert found["valley"] == rates[10 + int(span) + int(span / 2)]
    assert turned_up(rates, losses) == rates[lowest + 1]
    assert np.isnan(suggestions(rates[:6], losses[:6])["valley"])  # too short to read


def test_on_the_linear_sine_fit_the_loss_turns_up_past_the_limit_and_lags_less_when_slower() -> (
    None
):
    spec = gdsearch.job_from_dict(SINE)
    X, Y = spec.load_data()
    limit = linear_lr_limit(X)  # 2/λ_max = 0.0342
    assert limit == pytest.approx(0.0342, abs=1e-4)
    lags = []
    for steps in (100, 3000):
        table = range_tests(spec.trials(), X, Y, RangeSettings(steps=steps)).to_pandas()
        turned = range_summary(table, ["seed"])["turned_up"]
        # Below the limit every step contracts the error: it cannot turn up before it.
        assert (turned > limit).all(), steps
        lags.append(float(turned.median() / limit))
    assert lags[0] > 3  # fast.ai's 100 steps (×1.2 a step): far past the limit, lagging
    assert 1 < lags[1] < 2  # 3,000 steps (×1.006 a step): within twice the limit


def test_a_jobs_lr_range_is_stored_and_reported_beside_the_grid(tmp_path: Path) -> None:
    summary = gdsearch.run_search(SINE, tmp_path, executor="local", show_progress=False)
    results = gdsearch.load_results(summary.path)
    table = results.lr_range
    assert set(table["seed"]) == {0, 1, 2} and table["planned"].eq(100).all()
    assert table.groupby("seed")["step"].apply(lambda s: s.tolist() == list(range(len(s)))).all()
    again = gdsearch.run_search(SINE, tmp_path, executor="local", show_progress=False)
    assert again.ran == 0
    assert gdsearch.load_results(summary.path).lr_range.equals(table)  # the same, once
    assert len(list(Path(summary.path, "lr_range").glob("part-*.parquet"))) == 1
    page = build(results, tmp_path / "report.html").read_text()
    assert "The learning-rate range test" in page and "loss turned up at" in page
    assert "predicted limit" in page


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"steps": 1}, "[lr_range] steps: must be an integer in [2, 100000], but got 1"),
        ({"start_lr": 1.0, "end_lr": 0.5}, "[lr_range] end_lr: must be above start_lr"),
        ({"stop_factor": 1.0}, "[lr_range] stop_factor"),
        ({"smoothing": 1.0}, "[lr_range] smoothing"),
        ({"rate": 1.0}, "[lr_range] unknown key"),
    ],
)
def test_bad_range_settings_are_refused_naming_the_key(
    table: dict[str, object], said: str
) -> None:
    with pytest.raises(InputError) as caught:
        gdsearch.job_from_dict({**SINE, "lr_range": table})
    assert said in str(caught.value)
