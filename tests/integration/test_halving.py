"""Successive halving through Ray end to end, fresh and resumed, against the rule applied by hand
to full histories (tests/unit/test_halving.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch.job.spec import parse_job
from gdsearch.search.unit import train_unit
from tests.unit.test_halving import HALVING_JOB, _outcome, _reference


@pytest.fixture
def halving_run(local_ray: None, tmp_path: Path) -> gdsearch.Results:
    job = tmp_path / "halving.toml"
    job.write_text(HALVING_JOB)
    summary = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    return gdsearch.load_results(summary.path)


def test_halving_on_ray_prunes_exactly_what_the_rule_prunes_on_full_histories(
    halving_run: gdsearch.Results,
) -> None:
    expected = _reference(HALVING_JOB)
    outcome = _outcome(halving_run)
    pd.testing.assert_frame_equal(
        outcome.sort_index(), expected.sort_index(), check_dtype=False, check_names=False
    )
    assert set(outcome["status"]) >= {"ok", "pruned", "diverged"}
    pruned = halving_run.trials[halving_run.trials["status"] == "pruned"]
    assert set(pruned["stopped_epoch"]) <= {10, 30, 90}
    assert pruned["diverged_epoch"].isna().all()


def test_halving_histories_are_the_unscheduled_histories_cut_at_the_rung(
    halving_run: gdsearch.Results,
) -> None:
    spec = parse_job(HALVING_JOB)
    X, Y = spec.load_data()
    _, full, _ = train_unit(X, Y, spec.trials())
    full_sse = full.to_pandas().set_index(["trial_id", "epoch"])["sse"]
    stored = halving_run.history.set_index(["trial_id", "epoch"])["sse"]
    np.testing.assert_array_equal(stored.to_numpy(), full_sse.loc[stored.index].to_numpy())


def test_a_resumed_halving_run_takes_the_same_decisions(
    halving_run: gdsearch.Results, tmp_path: Path
) -> None:
    root = Path(halving_run.path)
    parts = sorted((root / "trials").glob("part-*.parquet"))
    assert len(parts) >= 4
    for part in parts[::2]:  # lose every other part, as if the run had stopped there
        part.unlink()
        (root / "history" / part.name).unlink()
    again = gdsearch.run_search(
        tmp_path / "halving.toml", tmp_path / "results", show_progress=False
    )
    assert 0 < again.ran < again.total
    resumed = gdsearch.load_results(root)
    assert resumed.trials["trial_id"].is_unique
    pd.testing.assert_frame_equal(_outcome(resumed), _outcome(halving_run))
    pd.testing.assert_frame_equal(resumed.history, halving_run.history)


def test_halving_keeps_the_fastest_rates_where_their_order_is_known_in_advance(
    local_ray: None, tmp_path: Path
) -> None:
    # The linear sine fit from one start: for lr <= 1/λ_max (0.0171) every mode of the error
    # shrinks faster with a larger lr, so SSE at any epoch falls with lr and the ranking at
    # every rung is the lr order: rung 10 keeps the 3 largest of 9, rung 30 and 90 the largest.
    job = tmp_path / "known.toml"
    job.write_text(
        """
[job]
name = "known"
[data]
dataset = "sine"
[model]
init_scale = 1.0
[train]
epochs = 200
[search]
lr = { log = [1e-4, 1.5e-2], num = 9 }
init = ["normal"]
scheduler = "halving"
min_epochs = 10
"""
    )
    summary = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    trials = gdsearch.load_results(summary.path).trials.sort_values("lr")
    assert trials["status"].tolist() == ["pruned"] * 8 + ["ok"]
    assert trials["stopped_epoch"].tolist()[:8] == [10] * 6 + [30] * 2


def test_the_same_job_without_halving_is_refused_on_halving_results(
    halving_run: gdsearch.Results, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text(
        HALVING_JOB.replace('scheduler = "halving"\n', "").replace(
            "min_epochs = 10\nreduction_factor = 3\n", ""
        )
    )
    before = {p: p.read_bytes() for p in Path(halving_run.path).rglob("*") if p.is_file()}
    with pytest.raises(gdsearch.GdsearchError, match=r"scheduler \(stored \['halving'"):
        gdsearch.run_search(plain, tmp_path / "results", show_progress=False)
    after = {p: p.read_bytes() for p in Path(halving_run.path).rglob("*") if p.is_file()}
    assert after == before
