"""Results.best and the notebook summary, on result sets trained and stored for real."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gdsearch
from gdsearch.errors import InputError
from gdsearch.job.mapping import job_from_dict
from gdsearch.results.store import ResultsStore
from gdsearch.search.unit import train_unit

TIED: dict[str, Any] = {
    # The seed notebook's sine fit: 0.01 to 0.03 all reach the least-squares line (a tie),
    # 0.001 and 0.002 are still short of it after 2000 epochs, 0.05 diverges.
    "job": {"name": "sine-tie", "seed": 0},
    "data": {"dataset": "sine"},
    "train": {"epochs": 2000},
    "search": {"lr": [0.001, 0.002, 0.01, 0.02, 0.03, 0.05], "init": ["normal"], "seed": [0, 1]},
}
SPREAD: dict[str, Any] = {
    "job": {"name": "moons-spread", "seed": 1},
    "data": {"dataset": "moons", "n_samples": 50},
    "train": {"epochs": 80},
    "search": {"lr": [0.01, 0.1, 1.0, 30.0], "init": ["xavier", "normal"], "hidden": [[], [4]],
               "seed": [0, 1]},
}  # fmt: skip


def stored(root: Path, job: dict[str, Any]) -> gdsearch.Results:
    """The job trained in this process, one unit per architecture, stored as a run stores it."""
    spec = job_from_dict(job)
    X, Y = spec.load_data()
    store = ResultsStore(root / spec.name)
    store.prepare(spec.source)
    for hidden in spec.architectures():
        store.write_part(*train_unit(X, Y, [t for t in spec.trials() if t.hidden == hidden]))
    store.write_manifest(
        {
            "name": spec.name,
            "job_file": spec.path,
            "status": "complete",
            "trials_total": spec.n_trials,
        }
    )
    return gdsearch.load_results(store.location)


@pytest.fixture(scope="module")
def tied(tmp_path_factory: pytest.TempPathFactory) -> gdsearch.Results:
    return stored(tmp_path_factory.mktemp("tied"), TIED)


@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> gdsearch.Results:
    return stored(tmp_path_factory.mktemp("spread"), SPREAD)


def test_rates_that_reach_the_same_minimum_are_a_tie_and_none_is_named(
    tied: gdsearch.Results,
) -> None:
    (row,) = tied.best().itertuples()
    assert row.tie and math.isnan(row.lr)
    assert row.best_lrs == (0.01, 0.02, 0.03)
    finals = tied.trials[tied.trials["lr"].isin(row.best_lrs)]["final_sse"]
    assert row.final_sse == pytest.approx(finals.min(), rel=1e-12)
    assert row.margin > 1e-6  # the next rate, 0.002, is short of it by more than the tolerance
    loose = tied.best(tolerance=1e-3)
    assert loose["best_lrs"].iloc[0] == (0.002, 0.01, 0.02, 0.03)


def test_the_best_rate_of_each_group_is_the_lowest_median_over_seeds_that_never_diverged(
    spread: gdsearch.Results,
) -> None:
    best = spread.best()
    assert len(best) == 4 and list(best.columns[:3]) == ["init", "hidden", "activation"]
    trials = spread.trials
    for row in best.itertuples():
        group = trials[(trials["init"] == row.init) & (trials["hidden"] == row.hidden)]
        diverged = group.groupby("lr")["status"].agg(lambda s: (s == "diverged").any())
        medians = group.groupby("lr")["final_sse"].median()[~diverged]
        assert not row.tie and row.lr == medians.idxmin()
        assert row.final_sse == medians.min()


def test_best_by_another_metric_and_per_seed(spread: gdsearch.Results) -> None:
    by_min = spread.best("min_sse")
    assert (by_min["min_sse"] <= spread.best()["final_sse"] + 1e-12).all()
    fastest = spread.best("epochs_to_tolerance")
    assert fastest["epochs_to_tolerance"].notna().all()
    per_seed = spread.best(per="seed")
    assert len(per_seed) == 8 and sorted(set(per_seed["seed"])) == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by": "auc"}, "by: must be one of final_sse, min_sse, epochs_to_tolerance"),
        ({"per": "init"}, "per: must be one of group, seed, but got 'init'"),
        ({"tolerance": -1.0}, "tolerance: must be a number >= 0"),
    ],
)
def test_best_refuses_what_it_cannot_rank(
    spread: gdsearch.Results, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        spread.best(**kwargs)


def test_a_group_where_every_rate_diverged_has_no_best(tmp_path: Path) -> None:
    job = {
        **TIED,
        "job": {"name": "all-diverged"},
        "train": {"epochs": 50},
        "search": {"lr": [0.06, 0.1], "init": ["normal"]},
    }
    results = stored(tmp_path, job)
    (row,) = results.best().itertuples()
    assert math.isnan(row.lr) and row.best_lrs == () and not row.tie
    assert "none: every rate diverged" in results._repr_html_()


def test_a_notebook_shows_the_job_trials_epochs_best_rates_and_where(
    tied: gdsearch.Results, spread: gdsearch.Results
) -> None:
    page = tied._repr_html_()
    assert "<strong>sine-tie</strong>" in page
    assert "12 trials (2 diverged, 10 ok), complete; 2,000 epochs" in page
    assert f"<code>{tied.path}</code>" in page
    assert "tie: 3 rates, 0.01 to 0.03" in page and "none (linear)" in page
    assert "4.31083" in page
    spread_page = spread._repr_html_()
    assert spread_page.count("<tr") == 1 + 4  # the heading and one row per group
    assert "<th>init_scale</th>" in spread_page and "NaN" not in spread_page
    best = spread.best()
    assert all(f"<td>{lr:.4g}</td>" in spread_page for lr in best["lr"])
    assert repr(tied) == (
        f"<Results sine-tie: 12 trials (2 diverged, 10 ok), complete; 2,000 epochs, "
        f"at {tied.path}>"
    )
    assert np.isfinite(best["final_sse"]).all()
