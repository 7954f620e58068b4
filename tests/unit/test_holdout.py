"""Held-out data: ``[data] validation`` splits by the job seed, measures every epoch, and is
stored and loaded (on Ray, through the command line and in reports: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch.data.holdout import holdout_indices, is_classes
from gdsearch.errors import DataError, InputError
from gdsearch.job.spec import load_job, parse_job
from gdsearch.mlp import train
from gdsearch.results.compact import compact_results
from tests.conftest import JOBS

JOB = """
[job]
name = "held"
seed = 5

[data]
dataset = "moons"
n_samples = 80
noise = 0.25
{validation}

[train]
epochs = 120
{train}

[search]
lr = [0.03, 0.3, 3.0, 60.0]
init = ["xavier"]
hidden = [[6]]
seed = [0, 1]
"""


def _job(tmp_path: Path, validation: str = "validation = 0.25", train: str = "") -> Path:
    path = tmp_path / "held.toml"
    path.write_text(JOB.format(validation=validation, train=train), encoding="utf-8")
    return path


def _run(job: Path, out: Path, executor: str = "local") -> gdsearch.Results:
    summary = gdsearch.run_search(job, out, show_progress=False, executor=executor)
    return gdsearch.load_results(summary.path)


def test_the_split_depends_on_the_job_seed_alone_and_holds_out_the_share_asked() -> None:
    fit, held = holdout_indices(150, 0.2, seed=3)
    assert len(held) == 30 and len(fit) == 120
    assert np.array_equal(np.sort(np.r_[fit, held]), np.arange(150))
    again = holdout_indices(150, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((fit, held), again, strict=True))
    assert not np.array_equal(holdout_indices(150, 0.2, seed=4)[1], held)
    with pytest.raises(DataError, match="holds out 0"):
        holdout_indices(4, 0.1, seed=0)
    with pytest.raises(DataError, match="holds out 4"):
        holdout_indices(4, 0.9, seed=0)


def test_class_targets_are_told_from_regression_targets() -> None:
    assert is_classes(np.array([[0.0], [1.0], [1.0]]))
    assert is_classes(np.eye(3)[[0, 2, 1, 1]])
    assert not is_classes(np.array([[0.0], [0.5]]))
    assert not is_classes(np.array([[1.0, 1.0], [0.0, 1.0]]))


def test_held_out_sse_and_accuracy_equal_the_trial_trained_again_by_hand(tmp_path: Path) -> None:
    """The independent witness: each trial trained again with mlp.train on the samples the job
    trained on, its held-out SSE and accuracy computed with plain numpy at chosen epochs."""
    results = _run(_job(tmp_path), tmp_path / "results")
    spec = load_job(tmp_path / "held.toml")
    X, Y = spec.load_data()
    fit, held = holdout_indices(len(X), 0.25, spec.seed)
    assert results.manifest["data_shape"]["held_out"] == len(held) == 20
    history = results.history.set_index(["trial_id", "epoch"])
    assert list(results.history.columns) == ["trial_id", "epoch", "sse", "val_sse"]
    for trial in results.trials.itertuples():
        params = results.initial_params(trial.trial_id)
        last = int(trial.final_epoch)
        for epoch in sorted({0, min(7, last), last}):
            weights = params
            if epoch:
                sse, weights = train(params, X[fit], Y[fit], lr=trial.lr, epochs=epoch)
                assert sse[-1] == history.loc[(trial.trial_id, epoch), "sse"]  # the same trial
            out = X[held]
            for W, b in weights[:-1]:
                out = np.tanh(out @ W + b)
            out = out @ weights[-1][0] + weights[-1][1]
            expected = float(((out - Y[held]) ** 2).sum())
            got = history.loc[(trial.trial_id, epoch), "val_sse"]
            assert got == pytest.approx(expected, rel=1e-9)
            if epoch == last:
                assert trial.final_val_sse == got
                accuracy = float(((out[:, 0] > 0.5) == (Y[held, 0] > 0.5)).mean())
                assert trial.final_val_accuracy == pytest.approx(accuracy, abs=1e-15)
        own = results.history[results.history["trial_id"] == trial.trial_id]
        assert trial.min_val_sse == own["val_sse"].min()
        assert trial.min_val_epoch == int(own.loc[own["val_sse"].idxmin(), "epoch"])
        assert trial.best_val_accuracy >= trial.final_val_accuracy
    assert (results.trials["status"] == "diverged").any()  # divergence keeps its epochs' rows


def test_a_job_that_holds_nothing_out_is_named_and_stored_as_before(tmp_path: Path) -> None:
    plain = parse_job(JOB.format(validation="", train=""))
    zero = parse_job(JOB.format(validation="validation = 0.0", train=""))
    held = parse_job(JOB.format(validation="validation = 0.25", train=""))
    ids = [t.trial_id for t in plain.trials()]
    assert ids == [t.trial_id for t in zero.trials()]
    assert not set(ids) & {t.trial_id for t in held.trials()}  # other data trained on
    assert [t.initial_params(2, 1)[0][0].tolist() for t in plain.trials()] == [
        t.initial_params(2, 1)[0][0].tolist() for t in held.trials()
    ]  # the same starting weights, so runs with and without compare
    results = _run(_job(tmp_path, validation=""), tmp_path / "results")
    assert list(results.history.columns) == ["trial_id", "epoch", "sse"]
    assert results.trials["final_val_sse"].isna().all()
    with pytest.raises(InputError, match="hold no data out"):
        results.best(by="final_val_sse")


def test_loading_selecting_and_compacting_keep_the_held_out_column(tmp_path: Path) -> None:
    results = _run(_job(tmp_path), tmp_path / "results")
    location = results.path
    only = gdsearch.load_results(location, columns=["sse"])
    assert list(only.history.columns) == ["trial_id", "epoch", "sse"]
    thinned = gdsearch.load_results(location, columns=["val_sse"], every=10)
    assert list(thinned.history.columns) == ["trial_id", "epoch", "val_sse"]
    compact_results(location, target_rows=10_000_000)
    after = gdsearch.load_results(location)
    pd.testing.assert_frame_equal(after.history, results.history)
    pd.testing.assert_frame_equal(after.trials, results.trials)


def test_the_example_job_holds_out_a_fifth_of_iris() -> None:
    spec = load_job(JOBS / "iris_validation.toml")
    X, Y = spec.load_data()
    X_fit, _, holdout = spec.held_out(X, Y)
    assert holdout is not None and holdout.classes
    assert (len(X_fit), len(holdout)) == (120, 30)
