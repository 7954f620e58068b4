"""Held-out data: ``[data] validation`` splits by the job seed, measures every epoch, and ranks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch import analysis
from gdsearch.data.holdout import holdout_indices, is_classes
from gdsearch.errors import DataError, InputError
from gdsearch.job.spec import load_job, parse_job
from gdsearch.mlp import train
from gdsearch.results.compact import compact_results
from tests.conftest import JOBS, REPO

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


def test_held_out_runs_equal_on_ray_and_in_the_process_with_halving_and_minibatches(
    tmp_path: Path, local_ray: None
) -> None:
    train = "batch_size = 20"
    text = JOB.format(validation="validation = 0.25", train=train) + (
        'scheduler = "halving"\nmin_epochs = 10\nreduction_factor = 2\n'
    )
    job = tmp_path / "held.toml"
    job.write_text(text, encoding="utf-8")
    local = _run(job, tmp_path / "local", "local")
    remote = _run(job, tmp_path / "ray", "ray")
    pd.testing.assert_frame_equal(local.history, remote.history)
    columns = [
        "trial_id",
        "status",
        "final_sse",
        "final_val_sse",
        "min_val_sse",
        "min_val_epoch",
        "final_val_accuracy",
        "best_val_accuracy",
    ]
    pd.testing.assert_frame_equal(local.trials[columns], remote.trials[columns])
    assert (local.trials["status"] == "pruned").any()
    assert local.history["val_sse"].notna().all()


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


def test_reports_rank_by_held_out_error_by_default_or_by_either(tmp_path: Path) -> None:
    results = _run(_job(tmp_path), tmp_path / "results")
    table = analysis.convergence_table(results)
    assert {"median_final_val_sse", "median_min_val_sse", "median_best_val_accuracy"} <= set(
        table.columns
    )
    by_held = table.loc[table["best"], "lr"].tolist()
    candidates = table[table["diverged_fraction"] == 0]
    assert by_held == [candidates.loc[candidates["median_final_val_sse"].idxmin(), "lr"]]
    by_fit = analysis.convergence_table(results, rank_by="final_sse")
    candidates = by_fit[by_fit["diverged_fraction"] == 0]
    assert by_fit.loc[by_fit["best"], "lr"].tolist() == [
        candidates.loc[candidates["median_final_sse"].idxmin(), "lr"]
    ]
    for rank in ("final_sse", "min_val_sse"):
        out = tmp_path / f"{rank}.html"
        done = _cli(["report", results.path, "--rank-by", rank, "-o", str(out)])
        assert done.returncode == 0, done.stderr
        assert 'alt="held_out"' in out.read_text(encoding="utf-8")
    out = tmp_path / "interactive.html"
    done = _cli(["report", results.path, "--interactive", "-o", str(out)])
    assert done.returncode == 0, done.stderr
    assert "xavier, hidden 6, tanh, held out" in out.read_text(encoding="utf-8")


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gdsearch", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("validation = 1.0", "[data] validation: must be a number in [0, 1)"),
        ('validation = "a fifth"', "[data] validation: must be float"),
        ("validation = 0.001", "[data] validation: 0.001 of 80 samples holds out 0"),
    ],
)
def test_a_bad_share_is_refused_in_one_line_and_nothing_is_stored(
    tmp_path: Path, line: str, named: str
) -> None:
    job = _job(tmp_path, validation=line)
    done = _cli(["run", str(job), "--results-dir", str(tmp_path / "results"), "--no-progress"])
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_a_held_out_result_set_refuses_a_run_with_another_share(tmp_path: Path) -> None:
    _run(_job(tmp_path), tmp_path / "results")
    before = sorted(p.name for p in (tmp_path / "results" / "held" / "trials").iterdir())
    job = _job(tmp_path, validation="validation = 0.5")
    done = _cli(["run", str(job), "--results-dir", str(tmp_path / "results"), "--no-progress"])
    assert done.returncode == 2 and "validation" in done.stderr
    assert sorted(p.name for p in (tmp_path / "results" / "held" / "trials").iterdir()) == before


def test_the_example_job_holds_out_a_fifth_of_iris() -> None:
    spec = load_job(JOBS / "iris_validation.toml")
    X, Y = spec.load_data()
    X_fit, _, holdout = spec.held_out(X, Y)
    assert holdout is not None and holdout.classes
    assert (len(X_fit), len(holdout)) == (120, 30)
