"""End to end on a real local Ray: run a search, load it three ways, check it against the maths."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch import analysis, mlp
from gdsearch.job.spec import load_job
from tests.conftest import Cli

pytestmark = pytest.mark.ray


@pytest.fixture
def small_run(local_ray: None, small_job: Path, tmp_path: Path) -> gdsearch.Results:
    summary = gdsearch.run_search(small_job, tmp_path / "results", show_progress=False)
    assert summary.ran == summary.total == 32
    return gdsearch.load_results(summary.path)


def test_history_rows_are_trials_times_epochs_minus_what_divergence_cut(
    small_run: gdsearch.Results,
) -> None:
    trials = small_run.trials
    assert len(trials) == 32 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"ok", "diverged"}
    expected = np.where(trials["status"] == "diverged", trials["diverged_epoch"], 61).sum()
    assert len(small_run.history) == expected < 32 * 61
    assert small_run.history["sse"].notna().all()
    per_trial = small_run.history.groupby("trial_id")["epoch"].agg(["min", "max", "count"])
    assert (per_trial["min"] == 0).all() and (per_trial["max"] + 1 == per_trial["count"]).all()


def test_plain_pandas_reads_the_same_tables(small_run: gdsearch.Results) -> None:
    history = pd.read_parquet(Path(small_run.path) / "history")
    trials = pd.read_parquet(Path(small_run.path) / "trials")
    history = history.sort_values(["trial_id", "epoch"], ignore_index=True)
    pd.testing.assert_frame_equal(history, small_run.history, check_dtype=False)
    assert sorted(trials["trial_id"]) == sorted(small_run.trials["trial_id"])
    assert history["epoch"].dtype == np.int32 and history["sse"].dtype == np.float64


def test_ray_history_equals_direct_training_value_for_value(
    small_run: gdsearch.Results, small_job: Path
) -> None:
    spec = load_job(small_job)
    X, Y = spec.load_data()
    stored = dict(iter(small_run.history.groupby("trial_id")["sse"]))
    for trial in spec.trials():
        params = mlp.init_params(
            mlp.layer_sizes(X.shape[1], trial.hidden, Y.shape[1]),
            trial.init,
            trial.init_seed(),
            trial.init_scale,
        )
        history, _ = mlp.train(params, X, Y, lr=trial.lr, epochs=spec.train.epochs)
        np.testing.assert_array_equal(stored[trial.trial_id].to_numpy(), history)


def test_a_stored_trial_retrained_by_hand_from_initial_params_gives_its_history(
    small_run: gdsearch.Results, small_job: Path
) -> None:
    """Results.initial_params needs only the result set: no job object, no Trial."""
    X, Y = load_job(small_job).load_data()
    stored = dict(iter(small_run.history.groupby("trial_id")["sse"]))
    for row in small_run.trials.itertuples():
        params = small_run.initial_params(row.trial_id)
        assert [W.shape for W, _ in params] == [
            (a, b) for a, b in itertools.pairwise(mlp.layer_sizes(2, _widths(row.hidden), 1))
        ]
        history, _ = mlp.train(
            params, X, Y, lr=row.lr, epochs=int(row.epochs), activation=row.activation
        )
        np.testing.assert_array_equal(stored[row.trial_id].to_numpy(), history)
    with pytest.raises(gdsearch.GdsearchError, match="no trial 'nope'"):
        small_run.initial_params("nope")


def _widths(label: str) -> list[int]:
    return [int(width) for width in label.split("-") if width]


def test_every_lr_of_one_init_hidden_seed_group_starts_from_the_same_sse(
    small_run: gdsearch.Results,
) -> None:
    start = small_run.history[small_run.history["epoch"] == 0].merge(small_run.trials)
    spread = start.groupby(["init", "hidden", "seed"])["sse"].agg(["nunique", "size"])
    assert (spread["nunique"] == 1).all() and (spread["size"] == 4).all()
    assert start.groupby(["hidden", "seed"])["sse"].nunique().max() == 2  # inits differ


def test_manifest_records_spec_version_times_counts_and_nodes(
    small_run: gdsearch.Results,
) -> None:
    import ray

    manifest = small_run.manifest
    assert manifest["status"] == "complete"
    assert manifest["gdsearch_version"] == gdsearch.__version__
    assert manifest["spec"]["job"]["name"] == "small"
    assert sum(manifest["counts"].values()) == 32
    assert manifest["counts"] == small_run.trials["status"].value_counts().to_dict()
    assert manifest["runs"][0]["started_at"] <= manifest["runs"][0]["finished_at"]
    node_ids = {node["node_id"] for node in manifest["cluster"]["nodes"]}
    assert node_ids == {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert set(small_run.trials["node"]) <= node_ids
    assert (Path(small_run.path) / "job.toml").read_text().startswith("\n[job]")


def test_running_again_resumes_and_stores_nothing_twice(
    small_run: gdsearch.Results, small_job: Path
) -> None:
    root = Path(small_run.path).parent
    again = gdsearch.run_search(small_job, root, show_progress=False)
    assert (again.ran, again.skipped) == (0, 32)
    grown = small_job.read_text().replace("seed = [0, 1]", "seed = [0, 1, 2]")
    small_job.write_text(grown)
    more = gdsearch.run_search(small_job, root, show_progress=False)
    assert (more.ran, more.skipped, more.total) == (16, 32, 48)
    reloaded = gdsearch.load_results(small_run.path)
    assert len(reloaded.trials) == 48 and reloaded.trials["trial_id"].is_unique
    assert not reloaded.history.duplicated(["trial_id", "epoch"]).any()


def test_changed_epochs_are_refused_without_touching_stored_results(
    small_run: gdsearch.Results, small_job: Path
) -> None:
    root = Path(small_run.path).parent
    before = {p: p.read_bytes() for p in Path(small_run.path).rglob("*") if p.is_file()}
    small_job.write_text(small_job.read_text().replace("epochs = 60", "epochs = 61"))
    with pytest.raises(gdsearch.GdsearchError, match="epochs"):
        gdsearch.run_search(small_job, root, show_progress=False)
    after = {p: p.read_bytes() for p in Path(small_run.path).rglob("*") if p.is_file()}
    assert after == before


def test_seed_sine_outcomes_follow_the_linear_stability_limit(
    local_ray: None, tmp_path: Path
) -> None:
    from tests.conftest import JOBS

    summary = gdsearch.run_search(JOBS / "seed_sine.toml", tmp_path, show_progress=False)
    trials = gdsearch.load_results(summary.path).trials
    x = np.arange(10.0)
    A = np.column_stack([x, np.ones_like(x)])  # y ≈ w·x + b
    hessian = 2.0 * A.T @ A / len(x)  # of SSE/n, the loss the default update descends
    lr_star = 2.0 / np.linalg.eigvalsh(hessian).max()
    least_squares = np.linalg.lstsq(A, np.sin(x), rcond=None)[1][0]
    below = trials[trials["lr"] < 0.9 * lr_star]
    above = trials[trials["lr"] > 1.1 * lr_star]
    assert len(below) >= 8 and len(above) >= 2
    assert (below["status"] == "ok").all()
    np.testing.assert_allclose(below["final_sse"], least_squares, rtol=1e-6)
    assert (above["status"] == "diverged").all()

    # The report's measured bracket and predicted limit agree within one grid step.
    from gdsearch import analysis
    from gdsearch.report import predicted_limits

    results = gdsearch.load_results(summary.path)
    ((lr_converged, lr_diverged),) = analysis.critical_lr(results)[
        ["lr_converged", "lr_diverged"]
    ].to_numpy()
    (predicted,) = predicted_limits(results).values()
    grid_step = 10 ** (2 / 12)  # lr = { log = [1e-3, 1e-1], num = 13 }
    assert predicted == pytest.approx(lr_star, rel=1e-9)
    assert lr_converged < predicted < lr_diverged
    assert lr_diverged / lr_converged == pytest.approx(grid_step)


def test_bracket_mode_narrows_to_the_asked_width_around_the_exact_limit(
    local_ray: None, tmp_path: Path
) -> None:
    from gdsearch import analysis, stability
    from gdsearch.data import load_dataset
    from tests.conftest import JOBS

    job = JOBS / "sine_bracket.toml"
    summary = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    results = gdsearch.load_results(summary.path)
    ((lr_converged, lr_diverged),) = analysis.critical_lr(results)[
        ["lr_converged", "lr_diverged"]
    ].to_numpy()
    limit = stability.linear_lr_limit(load_dataset("sine")[0])
    assert lr_diverged / lr_converged - 1 <= 0.01
    assert lr_converged < limit < lr_diverged
    rounds = results.manifest["bracket_rounds"]
    # The grid's step is 10**0.5; each round of 3 points cuts the log-width by 4.
    assert [r["trials"] for r in rounds] == [10, 6, 6, 6, 6]
    assert summary.total == len(results.trials) == 34 and results.trials["trial_id"].is_unique
    again = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    assert (again.ran, again.total) == (0, 34)


def test_cli_run_on_embedded_ray_then_show(cli: Cli, tmp_path: Path, small_job: Path) -> None:
    """README's first command, as a user runs it: a fresh process starting its own Ray."""
    ray_tmp = tempfile.mkdtemp(prefix="gdsr-", dir="/tmp")  # socket paths stay short
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    results = tmp_path / "results"
    run = cli.run(["run", str(small_job), "--results-dir", str(results), "--executor", "ray"], env)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert run.returncode == 0, run.stderr
    assert "32 trials" in run.stdout
    assert "work units" in run.stderr and "32/32 trials" in run.stderr
    show = cli.run(["show", str(results / "small")], env)
    assert show.returncode == 0, show.stderr
    assert "median_final_sse" in show.stdout and "diverged" in show.stdout
    assert len(show.stdout.splitlines()) == 2 + 16  # heading, column names, one row per group


def test_history_is_the_same_alone_in_one_population_or_spread_over_workers(
    small_run: gdsearch.Results, small_job: Path
) -> None:
    """Two shapes, four lrs (one diverging), two inits: placement never changes a value."""
    from gdsearch.search.unit import train_unit

    spec = load_job(small_job)
    X, Y = spec.load_data()
    trials = spec.trials()
    assert len({t.hidden for t in trials}) == 2 and "diverged" in set(small_run.trials["status"])
    stored = {k: v.to_numpy() for k, v in small_run.history.groupby("trial_id")["sse"]}
    for group in {t.hidden for t in trials}:
        members = [t for t in trials if t.hidden == group][::-1]  # one population, reversed
        _, history, _ = train_unit(X, Y, members)
        frame = history.to_pandas()
        for trial_id, sse in frame.groupby("trial_id")["sse"]:
            np.testing.assert_array_equal(sse.to_numpy(), stored[trial_id])


def test_update_rules_through_ray_equal_direct_training_value_for_value(
    local_ray: None, small_job: Path, tmp_path: Path
) -> None:
    """Momentum, Nesterov and weight decay searched, a cosine schedule with warm-up fixed."""
    text = (
        small_job.read_text()
        .replace("epochs = 60", 'epochs = 60\nlr_schedule = "cosine"\nwarmup_epochs = 5')
        .replace(
            "seed = [0, 1]",
            "seed = [0]\nmomentum = [0.0, 0.8]\nnesterov = [false, true]\n"
            "weight_decay = [0.0, 0.01]",
        )
    )
    job = tmp_path / "momentum.toml"
    job.write_text(text)
    spec = load_job(job)
    summary = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    assert summary.ran == summary.total == 4 * 2 * 2 * 3 * 2  # Nesterov at β = 0 folds away
    results = gdsearch.load_results(summary.path)
    X, Y = spec.load_data()
    stored = dict(iter(results.history.groupby("trial_id")["sse"]))
    rows = results.trials.set_index("trial_id")
    for trial in spec.trials():
        params = trial.initial_params(X.shape[1], Y.shape[1])
        settings = {k: getattr(trial.train, k) for k in ("momentum", "nesterov", "weight_decay")}
        history, _ = mlp.train(
            params, X, Y, lr=trial.lr, epochs=60, lr_schedule="cosine", warmup_epochs=5, **settings
        )
        np.testing.assert_array_equal(stored[trial.trial_id].to_numpy(), history)
        row = rows.loc[trial.trial_id]
        assert (row["momentum"], row["nesterov"], row["weight_decay"]) == tuple(settings.values())
        assert (row["lr_schedule"], row["warmup_epochs"]) == ("cosine", 5)
    groups = analysis.critical_lr(results)
    assert len(groups) == 2 * 2 * 3 * 2  # init × hidden × (β, Nesterov) × wd
