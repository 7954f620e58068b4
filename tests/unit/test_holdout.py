"""Held-out data: ``[data] validation`` splits by the job seed, measures every epoch, and is
stored and loaded (on Ray, through the command line and in reports: tests/integration)."""

from __future__ import annotations

import shutil
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


def test_stratify_holds_out_each_class_of_iris_in_proportion(tmp_path: Path) -> None:
    plain = load_job(JOBS / "iris_validation.toml")
    text = (JOBS / "iris_validation.toml").read_text(encoding="utf-8")
    stratified = tmp_path / "iris_stratified.toml"
    stratified.write_text(text.replace("validation = 0.2", "validation = 0.2\nstratify = true"))
    shutil.copy(JOBS.parent / "data" / "iris.csv", tmp_path / "iris.csv")
    stratified.write_text(stratified.read_text().replace("../data/iris.csv", "iris.csv"))
    spec = load_job(stratified)
    X, Y = spec.load_data()
    _, _, split_plain = plain.held_out(*plain.load_data())
    _, Y_fit, held = spec.held_out(X, Y)
    assert held is not None and split_plain is not None
    assert sorted(held.Y.sum(axis=0).tolist()) == [10, 10, 10]  # 30 of 150: ten of each
    assert sorted(split_plain.Y.sum(axis=0).tolist()) != [10, 10, 10]  # by chance, not so
    assert Y_fit.sum(axis=0).tolist() == [40, 40, 40]
    assert spec.data_identity()["stratify"] is True
    assert {t.trial_id for t in spec.trials()}.isdisjoint(t.trial_id for t in plain.trials())


def test_stratified_counts_follow_the_classes_sizes_by_largest_remainder() -> None:
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    # 0.05: 3.5, 1 and 0.5 of each; the half goes to the earlier of the two classes tied.
    for fraction, want in ((0.2, [14, 4, 2]), (0.25, [18, 5, 2]), (0.05, [4, 1, 0])):
        fit, held = holdout_indices(100, fraction, 3, labels)
        assert np.bincount(labels[held], minlength=3).tolist() == want, fraction
        assert len(held) == round(fraction * 100)
        assert np.intersect1d(fit, held).size == 0 and len(fit) + len(held) == 100
    # Without labels the split is what it always was: the job seed's permutation.
    order = np.random.default_rng(np.random.SeedSequence([3, 3])).permutation(100)
    assert holdout_indices(100, 0.2, 3)[1].tolist() == sorted(order[:20].tolist())


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ('dataset = "sine"\nvalidation = 0.2\nstratify = true', "stratify: needs class targets"),
        ('dataset = "moons"\nstratify = true', "[data] stratify: holds out each class"),
        ('dataset = "moons"\nvalidation = 0.2\nstratify = 1', "[data] stratify: must be bool"),
    ],
)
def test_stratify_is_refused_in_one_line_where_it_cannot_hold(
    tmp_path: Path, data: str, said: str
) -> None:
    job = tmp_path / "bad.toml"
    job.write_text(f'[job]\nname = "bad"\n[data]\n{data}\n[search]\nlr = [0.1]\n')
    with pytest.raises((DataError, InputError)) as caught:
        load_job(job).load_data()
    message = str(caught.value)
    assert said in message and "\n" not in message


def test_a_stratified_moons_split_keeps_both_classes_in_proportion(tmp_path: Path) -> None:
    path = _job(tmp_path, validation="validation = 0.25\nstratify = true")
    spec = load_job(path)
    X, Y = spec.load_data()
    _, _, held = spec.held_out(X, Y)
    assert held is not None and len(held) == 20
    assert int(held.Y.sum()) == 10  # moons: half of each class, so 10 of 20


def _stops_by_hand(values: np.ndarray, patience: int, tolerance: float) -> int | None:
    """The patience rule written out: the first epoch e whose watched value has not fallen
    below (1 − tolerance) × the reference for ``patience`` epochs (a spike over
    (1 + PATIENCE_SPIKE) × the reference restarts the count); None if it never stops."""
    from gdsearch.mlp.stopping import PATIENCE_SPIKE

    best, since = values[0], 0
    for epoch in range(1, len(values)):
        value = values[epoch]
        if value < best * (1 - tolerance) or value > best * (1 + PATIENCE_SPIKE):
            best, since = value, epoch
        if epoch - since >= patience:
            return epoch
    return None


def test_patience_on_the_held_out_sse_stops_where_the_rule_says_on_the_stored_histories(
    tmp_path: Path,
) -> None:
    train = 'patience = 15\npatience_tolerance = 0.01\npatience_metric = "val_sse"'
    results = _run(_job(tmp_path, train=train), tmp_path / "results")
    checked = 0
    for trial in results.trials.itertuples():
        if trial.status == "diverged":
            continue
        history = results.history[results.history["trial_id"] == trial.trial_id]
        stop = _stops_by_hand(history["val_sse"].to_numpy(), 15, 0.01)
        if trial.status == "plateaued":
            assert stop == trial.stopped_epoch == trial.final_epoch
            checked += 1
        else:
            assert trial.status == "ok" and stop is None
    assert checked >= 1
    by_training = _run(
        _job(tmp_path, train=train.replace('"val_sse"', '"sse"')), tmp_path / "by-training"
    )
    assert set(by_training.trials["trial_id"]).isdisjoint(results.trials["trial_id"])


def test_held_out_patience_or_rungs_without_held_out_data_are_refused(tmp_path: Path) -> None:
    watched = _job(tmp_path, validation="", train='patience = 5\npatience_metric = "val_sse"')
    with pytest.raises(InputError, match=r"\[train\] patience_metric: \"val_sse\" watches"):
        load_job(watched)
    halving = tmp_path / "halving.toml"
    halving.write_text(
        JOB.format(validation="", train="").replace(
            "seed = [0, 1]",
            'seed = [0, 1]\nscheduler = "halving"\nmin_epochs = 10\nrung_metric = "val_sse"',
        )
    )
    with pytest.raises(InputError, match=r"\[search\] rung_metric: 'val_sse' ranks"):
        load_job(halving)


@pytest.mark.parametrize("kernel", [True, False])
def test_a_held_out_metric_without_a_patience_watches_nothing_and_needs_no_held_out_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: bool
) -> None:
    from gdsearch.mlp import compiled

    if not kernel:  # the numpy path
        monkeypatch.setattr(compiled, "kernel", lambda: None)
    plain = _run(_job(tmp_path, validation=""), tmp_path / "plain")
    (tmp_path / "named").mkdir()
    named = _job(tmp_path / "named", validation="", train='patience_metric = "val_sse"')
    results = _run(named, tmp_path / "named")
    assert (results.trials["status"] != "failed").all()
    pd.testing.assert_frame_equal(results.history, plain.history, check_exact=True)


def test_halving_by_the_held_out_sse_keeps_the_best_on_held_out_data(tmp_path: Path) -> None:
    search = 'seed = [0, 1]\nscheduler = "halving"\nmin_epochs = 10\nrung_metric = "val_sse"'
    job = tmp_path / "halving.toml"
    job.write_text(
        JOB.format(validation="validation = 0.25", train="")
        .replace("seed = [0, 1]", search)
        .replace("lr = [0.03, 0.3, 3.0, 60.0]", "lr = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]")
    )
    results = _run(job, tmp_path / "results")
    pruned = results.trials[results.trials["status"] == "pruned"]
    assert len(pruned) > 0
    history = results.history.merge(results.trials[["trial_id", "status", "final_epoch"]])
    at_rung = history[history["epoch"] == 10]
    cut = at_rung[(at_rung["status"] == "pruned") & (at_rung["final_epoch"] == 10)]["val_sse"]
    kept = at_rung[at_rung["final_epoch"] > 10]["val_sse"]
    assert len(cut) and len(kept)
    assert kept.max() <= cut.min()  # those kept at the first rung: the lowest held-out SSE
