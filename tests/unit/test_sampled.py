"""Model-based search through Optuna (gdsearch.search.sampled): deterministic from the job
seed, a run cut off after any part and resumed proposes exactly what an uninterrupted run
proposes, each trial records its round, and the study rebuilt from the results is the one run."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import gdsearch
from gdsearch.errors import InputError
from gdsearch.results.store import ResultsStore

optuna = pytest.importorskip("optuna")

JOB: dict[str, Any] = {
    "job": {"name": "sampled", "seed": 3},
    "data": {"dataset": "moons", "n_samples": 80, "noise": 0.2, "validation": 0.25},
    "train": {"epochs": 60},
    "search": {
        "sampler": "tpe",
        "budget": 24,
        "batch": 6,
        "objective": "final_val_sse",
        "lr": {"loguniform": [1e-3, 30.0]},
        "init": ["xavier", "he"],
        "hidden": [[3], [8]],
        "momentum": [0.0, 0.9],
    },
}
COLUMNS = ["trial_id", "sampler_round", "sampler_index", "lr", "status", "final_val_sse"]


def _run(job: dict[str, Any], root: Path) -> gdsearch.Results:
    summary = gdsearch.run_search(job, root, executor="local", show_progress=False)
    return gdsearch.load_results(summary.path)


def _proposals(results: gdsearch.Results) -> pd.DataFrame:
    return results.trials[COLUMNS].sort_values(
        ["sampler_round", "sampler_index"], ignore_index=True
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> gdsearch.Results:
    return _run(JOB, tmp_path_factory.mktemp("whole"))


def test_a_sampler_proposes_its_budget_in_rounds_and_records_them(
    uninterrupted: gdsearch.Results,
) -> None:
    trials = uninterrupted.trials
    assert len(trials) <= 24 and trials["trial_id"].is_unique
    assert set(trials["sampler_round"]) == {0, 1, 2, 3}
    assert trials.groupby("sampler_round")["sampler_index"].max().max() <= 5
    assert trials["lr"].between(1e-3, 30.0).all()
    assert set(trials["hidden"]) <= {"3", "8"} and set(trials["momentum"]) <= {0.0, 0.9}
    assert uninterrupted.manifest["trials_total"] == 24


def test_the_same_job_proposes_the_same_trials_and_another_seed_others(
    uninterrupted: gdsearch.Results, tmp_path: Path
) -> None:
    again = _run(JOB, tmp_path / "again")
    pd.testing.assert_frame_equal(_proposals(again), _proposals(uninterrupted))
    other = copy.deepcopy(JOB)
    other["job"]["seed"] = 4
    assert set(_run(other, tmp_path / "other").trials["trial_id"]).isdisjoint(
        uninterrupted.trials["trial_id"]
    )


@pytest.mark.parametrize("share", [0.1, 0.35, 0.6, 0.9])
def test_a_run_cut_off_after_any_part_resumes_to_the_uninterrupted_runs_proposals(
    uninterrupted: gdsearch.Results,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    share: float,
) -> None:
    parts = max(1, round(share * uninterrupted.manifest["runs"][0]["units"]))
    written = []
    real = ResultsStore.write_part

    def cut_off(self: ResultsStore, *tables: Any) -> str:
        if len(written) == parts:
            raise KeyboardInterrupt  # as a kill between two parts
        written.append(1)
        return real(self, *tables)

    with monkeypatch.context() as patch:
        patch.setattr(ResultsStore, "write_part", cut_off)
        with pytest.raises(KeyboardInterrupt):
            _run(JOB, tmp_path)
    stored = gdsearch.load_results(tmp_path / "sampled").trials
    assert 0 < len(stored) < len(uninterrupted.trials)
    resumed = _run(JOB, tmp_path)
    pd.testing.assert_frame_equal(_proposals(resumed), _proposals(uninterrupted))


def test_trials_that_failed_are_trained_again_when_the_next_run_proposes_them(
    uninterrupted: gdsearch.Results, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gdsearch.search import loop

    real, units, calls = loop.advance_unit, uninterrupted.manifest["runs"][0]["units"], []

    def failing_last(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == units:  # the last round's last unit: the rounds before are unchanged
            raise RuntimeError("a worker lost its data")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "advance_unit", failing_last)
        first = _run(JOB, tmp_path)
    assert (first.trials["status"] == "failed").sum() > 0
    again = _run(JOB, tmp_path)
    pd.testing.assert_frame_equal(_proposals(again), _proposals(uninterrupted))


def test_the_study_rebuilt_from_the_results_holds_every_proposal_in_order(
    uninterrupted: gdsearch.Results,
) -> None:
    study = uninterrupted.optuna_study()
    proposals = _proposals(uninterrupted)
    assert [t.user_attrs["trial_id"] for t in study.trials] == proposals["trial_id"].tolist()
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert finished and all(math.isfinite(t.value) for t in finished)
    ok = proposals[proposals["status"] != "diverged"]
    assert study.best_value == pytest.approx(ok["final_val_sse"].min())
    assert set(study.trials[0].params) == {"lr", "init", "hidden", "momentum"}
    reloaded = gdsearch.load_results(uninterrupted.path).optuna_study()
    assert [t.params for t in reloaded.trials] == [t.params for t in study.trials]


def test_tpe_learns_to_avoid_rates_that_diverge(uninterrupted: gdsearch.Results) -> None:
    proposals = _proposals(uninterrupted)
    first, last = proposals["sampler_round"].min(), proposals["sampler_round"].max()
    diverged = proposals.assign(diverged=proposals["status"] == "diverged")
    share = diverged.groupby("sampler_round")["diverged"].mean()
    assert share[last] <= share[first]


@pytest.mark.parametrize(
    ("search", "said"),
    [
        ({"sampler": "bayes"}, "[search] sampler: must be one of grid, tpe, cmaes, random"),
        ({"budget": None}, "[search] budget: sampler = 'tpe' needs it: missing"),
        ({"budget": 0}, "[search] budget: must be an integer in [1,"),
        ({"objective": "accuracy"}, "[search] objective: must be one of final_sse"),
        ({"mode": "random", "samples": 4}, "goes with neither mode = 'random'"),
        ({"sampler": "grid", "budget": 4}, "[search] budget: only with a sampler"),
    ],
)
def test_bad_sampler_settings_are_refused_in_one_line(search: dict[str, Any], said: str) -> None:
    job = copy.deepcopy(JOB)
    for key, value in search.items():
        if value is None:
            job["search"].pop(key)
        else:
            job["search"][key] = value
    if search.get("sampler") == "grid":
        job["search"]["lr"] = [0.1]
    with pytest.raises(InputError) as caught:
        gdsearch.job_from_dict(job)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_a_range_test_with_a_sampler_is_refused_in_one_line() -> None:
    job = {**copy.deepcopy(JOB), "lr_range": {}}
    with pytest.raises(InputError) as caught:
        gdsearch.job_from_dict(job)
    said = str(caught.value)
    assert "[lr_range]: sweeps the comparison groups of a grid, but [search]" in said
    assert "sampler = 'tpe'" in said and "\n" not in said


def test_without_optuna_a_samplers_run_stops_before_it_touches_the_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = _run(JOB, tmp_path).path
    before = sorted(p.name for p in Path(location).rglob("*"))
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna: ImportError
    with pytest.raises(InputError, match=r"needs Optuna; pip install 'gdsearch\[optuna\]'"):
        gdsearch.run_search(JOB, tmp_path, executor="local", fresh=True, show_progress=False)
    assert sorted(p.name for p in Path(location).rglob("*")) == before


def test_a_held_out_objective_needs_held_out_data() -> None:
    job = copy.deepcopy(JOB)
    del job["data"]["validation"]
    with pytest.raises(InputError, match=r"\[search\] objective: 'final_val_sse' is the held-out"):
        gdsearch.job_from_dict(job)


@pytest.mark.parametrize("sampler", ["cmaes", "random"])
def test_every_sampler_runs_its_budget_deterministically(sampler: str, tmp_path: Path) -> None:
    pytest.importorskip("cmaes")
    job = copy.deepcopy(JOB)
    job["search"].update(sampler=sampler, budget=12, batch=4)
    first, second = _run(job, tmp_path / "a"), _run(job, tmp_path / "b")
    assert len(first.trials) == 12 and set(first.trials["sampler_round"]) == {0, 1, 2}
    pd.testing.assert_frame_equal(_proposals(first), _proposals(second))
