"""Successive halving and the patience stopper, checked against rules applied by hand to full
histories (trained with neither), unit by unit in this process (through Ray:
tests/integration/test_halving.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch import mlp
from gdsearch.job.spec import Halving, parse_job
from gdsearch.search import halving
from gdsearch.search.unit import advance_unit, start_unit, train_unit

HALVING_JOB = """
[job]
name = "halving"
seed = 3

[data]
dataset = "moons"
n_samples = 60
noise = 0.2

[train]
epochs = 120

[search]
lr = { log = [0.003, 40.0], num = 9 }
init = ["normal", "xavier"]
hidden = [[5]]
seed = [0, 1]
scheduler = "halving"
min_epochs = 10
reduction_factor = 3
"""


def _reference(spec_text: str) -> pd.DataFrame:
    """Train every trial to the end without a scheduler, then apply successive halving by hand:
    per comparison group and rung, the trials still going, ranked by SSE at the rung (ties to
    the smaller id), keep the best ceil(m / 3). Returns status and history length per trial."""
    spec = parse_job(
        spec_text.replace('scheduler = "halving"\n', "").replace(
            "min_epochs = 10\nreduction_factor = 3\n", ""
        )
    )
    X, Y = spec.load_data()
    trials = spec.trials()
    keys = dict.fromkeys(t.population_key() for t in trials)
    parts = [train_unit(X, Y, [t for t in trials if t.population_key() == k]) for k in keys]
    rows = pd.concat([table.to_pandas() for table, _, _ in parts]).set_index("trial_id")
    history = pd.concat([history.to_pandas() for _, history, _ in parts])
    sse = history.pivot(index="trial_id", columns="epoch", values="sse")
    status = {t.trial_id: rows.loc[t.trial_id, "status"] for t in trials}
    length = {t.trial_id: int(sse.loc[t.trial_id].notna().sum()) for t in trials}
    for rung in (10, 30, 90):
        for key in {t.comparison_key() for t in trials}:
            going = [
                t.trial_id
                for t in trials
                if t.comparison_key() == key
                and status[t.trial_id] != "pruned"
                and length[t.trial_id] > rung  # measured at the rung and not stopped there
            ]
            ranked = sorted(going, key=lambda i: (sse.loc[i, rung], i))
            for trial_id in ranked[math.ceil(len(ranked) / 3) :]:
                status[trial_id], length[trial_id] = "pruned", rung + 1
    return pd.DataFrame({"status": status, "length": length})


def _outcome(results: gdsearch.Results) -> pd.DataFrame:
    lengths = results.history.groupby("trial_id").size()
    return pd.DataFrame(
        {"status": results.trials.set_index("trial_id")["status"], "length": lengths}
    )


def test_rungs_grow_by_the_factor_below_the_epochs() -> None:
    assert Halving(10, 3).rungs(120) == [10, 30, 90]
    assert Halving(10, 3).rungs(90) == [10, 30]
    assert Halving(1, 2).rungs(9) == [1, 2, 4, 8]


def test_survivors_are_the_best_third_rounded_up_ties_to_the_smaller_id() -> None:
    metrics = {"e": 5.0, "d": 4.0, "c": 1.0, "b": 2.0, "a": 2.0}
    assert halving.survivors(metrics, 3) == {"c", "a"}
    assert halving.survivors({"x": 1.0}, 3) == {"x"}
    assert halving.survivors({}, 3) == set()


def test_who_took_part_in_a_rung_follows_from_status_and_stop_epochs() -> None:
    trials = pd.DataFrame(
        {
            "status": ["ok", "pruned", "pruned", "plateaued", "plateaued", "diverged", "diverged"],
            "diverged_epoch": [None, None, None, None, None, 30, 31],
            "stopped_epoch": [None, 30, 10, 30, 31, None, None],
        }
    ).astype({"diverged_epoch": "Int32", "stopped_epoch": "Int32"})
    assert halving.took_part(trials, 30).tolist() == [True, True, False, False, True, False, True]


def test_a_unit_carried_on_across_rungs_matches_one_trained_in_one_go() -> None:
    spec = parse_job(HALVING_JOB)
    X, Y = spec.load_data()
    trials = spec.trials()[:9]
    whole, whole_history, _ = train_unit(X, Y, trials)
    state = start_unit(X, Y, trials)
    parts = []
    for until in (10, 30, 90, 120):
        rows, at_rung, state = advance_unit(X, Y, state, until)
        parts.extend([rows] if rows else [])
        assert set(at_rung) == {
            t.trial_id for t, s in zip(trials, state.emitted, strict=True) if not s
        }
    history = pd.concat([h.to_pandas() for _, h, _ in parts]).sort_values(["trial_id", "epoch"])
    expected = whole_history.to_pandas().sort_values(["trial_id", "epoch"])
    pd.testing.assert_frame_equal(history.reset_index(drop=True), expected.reset_index(drop=True))
    rows = pd.concat([t.to_pandas() for t, _, _ in parts]).drop(columns="wall_s")
    pd.testing.assert_frame_equal(
        rows.sort_values("trial_id", ignore_index=True),
        whole.to_pandas().drop(columns="wall_s").sort_values("trial_id", ignore_index=True),
    )


def _patience_reference(history: np.ndarray, patience: int, tolerance: float) -> int:
    """The epoch where the patience rule stops a trial with this full history, or -1."""
    best, since = history[0], 0
    for epoch, sse in enumerate(history):
        if sse < best * (1 - tolerance) or sse > best * 1.1:  # better, or a spike: restart
            best, since = sse, epoch
        elif epoch - since >= patience:
            return epoch
    return -1


@pytest.mark.parametrize("lr", [0.001, 0.01, 0.03])
def test_patience_stops_where_the_rule_says_on_the_full_history(lr: float) -> None:
    X, Y = gdsearch.data.load_dataset("sine")
    params = mlp.init_params([1, 1], "normal", 0, 1.0)
    full, _ = mlp.train(params, X, Y, lr=lr, epochs=3000)
    stop = _patience_reference(full, 50, 1e-3)
    assert stop > 0  # every one of these flattens out within 3000 epochs
    config = mlp.TrainConfig(epochs=3000, patience=50, patience_tolerance=1e-3)
    result = mlp.train_population(mlp.stack_params([params]), X, Y, np.array([lr]), config)
    assert mlp.STATUS_CODES[result.status[0]] == "plateaued"
    assert result.lengths[0] == stop + 1
    np.testing.assert_array_equal(result.histories[0, : stop + 1], full[: stop + 1])


def test_patience_job_marks_trials_plateaued_with_their_stop_epoch() -> None:
    spec = parse_job(
        """
[job]
name = "patience"
[data]
dataset = "sine"
[model]
init_scale = 1.0
[train]
epochs = 3000
patience = 50
patience_tolerance = 1e-3
[search]
lr = [0.001, 0.03, 0.05]
init = ["normal"]
"""
    )
    X, Y = spec.load_data()
    table = train_unit(X, Y, spec.trials())[0].to_pandas().set_index("lr")
    assert table.loc[0.05, "status"] == "diverged"
    assert (table.loc[[0.001, 0.03], "status"] == "plateaued").all()
    assert (table.loc[[0.001, 0.03], "stopped_epoch"] < 3000).all()


def test_a_trial_that_raises_between_rungs_fails_alone_and_the_rest_carry_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gdsearch.search.unit import FAULT_VARIABLE

    spec = parse_job(HALVING_JOB)
    X, Y = spec.load_data()
    trials = spec.trials()[:9]
    _, whole_history, _ = train_unit(X, Y, trials)
    state = start_unit(X, Y, trials)
    _, at_rung, state = advance_unit(X, Y, state, 10)
    victim = sorted(at_rung)[0]
    monkeypatch.setenv(FAULT_VARIABLE, victim)
    rows, at_rung, state = advance_unit(X, Y, state, 30)
    assert rows is not None and victim not in at_rung
    failed = rows[0].to_pandas().set_index("trial_id").loc[victim]
    assert failed["status"] == "failed" and "fault injected" in failed["error"]
    # It keeps its history up to the rung it reached, so it still counts at that rung.
    kept = rows[1].to_pandas().query("trial_id == @victim")["epoch"].tolist()
    assert kept == list(range(11)) and failed["stopped_epoch"] == 10
    assert pd.isna(failed["diverged_epoch"])
    assert halving.took_part(rows[0].to_pandas().query("trial_id == @victim"), 10).all()
    assert not halving.took_part(rows[0].to_pandas().query("trial_id == @victim"), 30).any()
    monkeypatch.delenv(FAULT_VARIABLE)
    rows, _, _ = advance_unit(X, Y, state, 120)
    assert rows is not None and victim not in set(rows[0].column("trial_id").to_pylist())
    expected = whole_history.to_pandas().set_index(["trial_id", "epoch"])["sse"]
    got = rows[1].to_pandas().set_index(["trial_id", "epoch"])["sse"]
    np.testing.assert_array_equal(got.to_numpy(), expected.loc[got.index].to_numpy())


def test_an_abandoned_unit_prunes_what_it_was_to_prune_and_fails_the_rest_at_the_rung() -> None:
    from gdsearch.search.unit import abandon_unit

    spec = parse_job(HALVING_JOB)
    X, Y = spec.load_data()
    trials = spec.trials()[:9]
    _, at_rung, state = advance_unit(X, Y, start_unit(X, Y, trials), 10)
    doomed = sorted(at_rung)[0]
    rows = abandon_unit(state, [doomed], "WorkerCrashedError: lost 3 times")
    assert rows is not None
    table = rows[0].to_pandas().set_index("trial_id")
    assert set(table.index) == set(at_rung)  # those that diverged before were handed out then
    assert table.loc[doomed, "status"] == "pruned" and table.loc[doomed, "stopped_epoch"] == 10
    others = table.drop(index=doomed)
    assert (others["status"] == "failed").all() and (others["stopped_epoch"] == 10).all()
    assert (others["error"] == "WorkerCrashedError: lost 3 times").all()
    assert (rows[1].to_pandas().groupby("trial_id").size() == 11).all()
