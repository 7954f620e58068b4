"""gdsearch.search.landscapes in this process: stored trials trained again, their landscapes
drawn and stored; exact at their origins, in closed form for the linear model, the sharpest
profile's curvature the stored sharpness; resumed, refused and redrawn as a user expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch.errors import InputError
from gdsearch.mlp import train
from gdsearch.mlp.landscape import LandscapeSettings, Slice
from gdsearch.results.store import ResultsStore
from gdsearch.search.landscapes import default_trials, draw_landscapes

LINEAR = {
    "job": {"name": "linear", "seed": 0},
    "data": {"dataset": "sine"},
    "model": {"init_scale": 1.0},
    "train": {"epochs": 300},
    "search": {"lr": [0.001, 0.01, 0.03, 0.05], "init": ["normal"], "hidden": [[]], "seed": [0]},
}
MLP = {
    "job": {"name": "mlp", "seed": 1},
    "data": {"dataset": "moons", "n_samples": 60, "noise": 0.1},
    "train": {"epochs": 120, "sharpness_every": 20},
    "search": {
        "lr": [0.01, 0.2, 1.0, 3.0, 12.0],
        "init": ["xavier", "he"],
        "hidden": [[6]],
        "seed": [0, 1],
    },
}
SMALL = LandscapeSettings(resolution=11)


def _run(job: dict[str, Any], root: Path) -> str:
    gdsearch.run_search(job, root, executor="local", show_progress=False)
    return str(root / job["job"]["name"])


def _draw(location: str, **options: Any) -> gdsearch.search.landscapes.LandscapeSummary:
    options.setdefault("settings", SMALL)
    return draw_landscapes(location, executor="local", show_progress=False, **options)


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> gdsearch.Results:
    location = _run(LINEAR, tmp_path_factory.mktemp("linear"))
    stored = gdsearch.load_results(location)
    summary = _draw(location, trial_ids=stored.trials["trial_id"].tolist())
    assert summary.drawn == 4 and summary.failed == 0
    return gdsearch.load_results(location)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _run(MLP, tmp_path_factory.mktemp("mlp"))


def _slice(results: gdsearch.Results, trial_id: str, kind: Slice) -> pd.DataFrame:
    rows = results.landscapes
    return rows[(rows["trial_id"] == trial_id) & (rows["kind"] == kind.value)]


def test_the_line_starts_and_ends_at_the_histories_first_and_last_sse_exactly(
    linear: gdsearch.Results,
) -> None:
    for trial_id, history in linear.history.groupby("trial_id"):
        line = _slice(linear, str(trial_id), Slice.LINE)
        sse = history["sse"].to_numpy()
        assert line.loc[line["x"] == 0, "sse"].tolist() == [sse[0]]
        assert line.loc[line["x"] == 1, "sse"].tolist() == [sse[-1]]
        for kind in (Slice.RANDOM, Slice.PLANE):
            grid = _slice(linear, str(trial_id), kind)
            assert grid.loc[(grid["x"] == 0) & (grid["y"] == 0), "sse"].tolist() == [sse[-1]]
        profile = _slice(linear, str(trial_id), Slice.SHARPEST)
        assert profile.loc[profile["x"] == 0, "sse"].tolist() == [sse[-1]]


def test_the_linear_models_plane_holds_its_path_and_its_sse_in_closed_form(
    linear: gdsearch.Results,
) -> None:
    X, Y = gdsearch.data.load_dataset("sine")
    x, y = X[:, 0], Y[:, 0]

    def closed_form(w: np.ndarray, b: np.ndarray) -> np.ndarray:
        # SSE(w, b) = Σ (w·x + b − y)², expanded: a quadratic in w and b.
        return (
            w**2 * np.sum(x * x) + 2 * w * b * np.sum(x) + b**2 * len(x)
            - 2 * w * np.sum(x * y) - 2 * b * np.sum(y) + np.sum(y * y)
        )  # fmt: skip

    index = linear.landscape_trials.set_index("trial_id")
    for row in linear.trials.itertuples():
        if row.status == "diverged":
            continue
        assert index.loc[row.trial_id, "explained"] == pytest.approx(1.0, abs=1e-12)
        # The path, trained here one epoch at a time through the public API.
        params = linear.initial_params(row.trial_id)
        path = [np.concatenate([params[0][0].ravel(), params[0][1]])]
        for _ in range(row.final_epoch):
            _, params = train(params, X, Y, lr=row.lr, epochs=1)
            path.append(np.concatenate([params[0][0].ravel(), params[0][1]]))
        path_arr = np.array(path)  # (epochs + 1, 2): w, b
        final = path_arr[-1]
        walked = _slice(linear, row.trial_id, Slice.PATH).sort_values("epoch")
        assert walked["epoch"].tolist() == list(range(row.final_epoch + 1))
        coords = walked[["x", "y"]].to_numpy()
        axes = np.linalg.lstsq(coords, path_arr - final, rcond=None)[0]  # (2, 2)
        np.testing.assert_allclose(coords @ axes, path_arr - final, atol=1e-12)
        plane = _slice(linear, row.trial_id, Slice.PLANE)
        theta = final + plane[["x", "y"]].to_numpy() @ axes
        np.testing.assert_allclose(plane["sse"], closed_form(theta[:, 0], theta[:, 1]), rtol=1e-12)
        line = _slice(linear, row.trial_id, Slice.LINE)
        alpha = line["x"].to_numpy()[:, None]
        theta = (1 - alpha) * path_arr[0] + alpha * final
        np.testing.assert_allclose(line["sse"], closed_form(theta[:, 0], theta[:, 1]), rtol=1e-12)


def test_the_sharpest_profiles_curvature_is_the_stored_sharpness(mlp: str) -> None:
    stored = gdsearch.load_results(mlp)
    ok = stored.trials[stored.trials["status"] == "ok"]
    summary = _draw(mlp, trial_ids=ok["trial_id"].tolist()[:6])
    assert summary.drawn == 6
    drawn = gdsearch.load_results(mlp, trial_ids=ok["trial_id"].tolist()[:6])
    for row in drawn.landscape_trials.itertuples():
        profile = _slice(drawn, row.trial_id, Slice.SHARPEST).sort_values("x")
        t, sse = profile["x"].to_numpy(), profile["sse"].to_numpy()
        middle = int(np.flatnonzero(t == 0)[0])
        h = t[middle + 1] - t[middle]
        curvature = (sse[middle + 1] - 2 * sse[middle] + sse[middle - 1]) / h**2
        measured = drawn.sharpness[
            (drawn.sharpness["trial_id"] == row.trial_id)
            & (drawn.sharpness["epoch"] == row.final_epoch)
        ]["sharpness"]
        assert row.final_epoch == 120 and len(measured) == 1
        assert curvature * row.loss_scale == pytest.approx(measured.iloc[0], rel=1e-3)
        assert row.sharpness == pytest.approx(measured.iloc[0], rel=1e-3)


def test_by_default_each_group_draws_its_smallest_best_and_largest_stable_rate(mlp: str) -> None:
    stored = gdsearch.load_results(mlp)
    chosen = default_trials(stored.trials)
    for init, group in stored.trials.groupby("init"):
        first = group[group["seed"] == 0]
        stable = first[first["status"] != "diverged"]
        best = stable.loc[stable["final_sse"].idxmin(), "lr"]
        if best == stable["lr"].max():  # then the stable rate nearest midway (log scale)
            middle = np.sqrt(first["lr"].min() * best)
            best = stable["lr"].iloc[np.argmin(np.abs(np.log(stable["lr"] / middle)))]
        want = {first["lr"].min(), best, stable["lr"].max()}
        picked = chosen[chosen["init"] == init]
        assert set(picked["lr"]) == want and set(picked["seed"]) == {0}
    # Some rates diverge, so the largest stable rate is not the largest.
    assert (stored.trials["status"] == "diverged").any()


def test_a_second_draw_resumes_and_other_settings_need_fresh(tmp_path: Path) -> None:
    location = _run(MLP, tmp_path)
    first = _draw(location)
    assert first.drawn == first.chosen > 0 and first.skipped == 0
    store = ResultsStore(location)
    parts = store.parts("landscapes")
    again = _draw(location)
    assert again.drawn == 0 and again.skipped == first.chosen
    assert store.parts("landscapes") == parts  # nothing written, nothing lost
    with pytest.raises(InputError, match="drawn with resolution = 11, not 13; --fresh"):
        _draw(location, settings=LandscapeSettings(resolution=13))
    assert store.parts("landscapes") == parts
    redrawn = _draw(location, settings=LandscapeSettings(resolution=13), fresh=True)
    assert redrawn.drawn == first.chosen
    results = gdsearch.load_results(location)
    assert set(results.landscape_trials["resolution"]) == {13}
    assert results.landscape_trials["trial_id"].is_unique


def test_a_lone_landscapes_part_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    location = _run(MLP, tmp_path)
    store = ResultsStore(location)
    some = gdsearch.load_results(location).trials["trial_id"].tolist()[:2]
    _draw(location, trial_ids=some)
    committed = store.parts("landscapes")
    lone = Path(location, "landscapes", "part-" + "0" * 32 + ".parquet")
    lone.write_bytes(Path(location, "landscapes", committed[0]).read_bytes())
    assert gdsearch.load_results(location).landscapes["trial_id"].nunique() == 2  # not read
    _draw(location, trial_ids=some)
    assert not lone.exists() and store.parts("landscapes") == committed


def test_loaded_results_hold_the_landscapes_of_their_trials_only(mlp: str) -> None:
    stored = gdsearch.load_results(mlp)
    ids = stored.trials["trial_id"].tolist()[:3]
    _draw(mlp, trial_ids=ids)
    one = gdsearch.load_results(mlp, trial_ids=ids[:1])
    assert set(one.landscapes["trial_id"]) == {ids[0]}
    assert one.landscape_trials["trial_id"].tolist() == [ids[0]]
    opened = gdsearch.open_results(mlp)
    assert set(ids) <= set(opened.landscapes["trial_id"])
    kinds = set(opened.landscapes["kind"])
    assert kinds == {kind.value for kind in Slice}


def test_a_trial_whose_data_file_changed_is_not_drawn(tmp_path: Path) -> None:
    data = tmp_path / "points.csv"
    xs = np.linspace(-1, 1, 20)
    data.write_text("x,y\n" + "".join(f"{x},{np.sin(3 * x)}\n" for x in xs))
    job = {
        "job": {"name": "file", "seed": 0},
        "data": {"dataset": "file", "path": str(data), "target": "y"},
        "train": {"epochs": 50},
        "search": {"lr": [0.1], "init": ["xavier"], "hidden": [[4]], "seed": [0]},
    }
    location = _run(job, tmp_path)
    data.write_text("x,y\n" + "".join(f"{x},{np.sin(3 * x) + 0.01}\n" for x in xs))
    summary = _draw(location)
    assert summary.failed == 1 and summary.drawn == 0
    assert "its data or gdsearch's numerics changed since it ran" in str(summary.first_error)
    assert not ResultsStore(location).parts("landscape_trials")


def test_a_jobs_landscape_table_draws_after_the_run_and_resumes(tmp_path: Path) -> None:
    job = {**MLP, "landscape": {"resolution": 9, "trials": "default"}}
    summary = gdsearch.run_search(job, tmp_path, executor="local", show_progress=False)
    drawn = summary.landscapes
    assert drawn is not None and drawn.drawn == drawn.chosen > 0 and drawn.failed == 0
    results = gdsearch.load_results(summary.path)
    chosen = default_trials(results.trials)
    assert set(results.landscape_trials["trial_id"]) == set(chosen["trial_id"])
    assert set(results.landscape_trials["resolution"]) == {9}
    again = gdsearch.run_search(job, tmp_path, executor="local", show_progress=False)
    assert again.ran == 0 and again.landscapes is not None
    assert again.landscapes.drawn == 0 and again.landscapes.skipped == drawn.chosen
    every = {**job, "landscape": {"resolution": 9, "trials": "all"}}
    more = gdsearch.run_search(every, tmp_path, executor="local", show_progress=False)
    assert more.landscapes is not None and more.landscapes.chosen == len(results.trials)


def test_a_job_with_a_data_file_draws_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "jobs").mkdir()
    csv = Path(gdsearch.__file__).parent.parent / "data" / "iris.csv"
    (project / "data" / "iris.csv").write_bytes(csv.read_bytes())
    (project / "jobs" / "iris.toml").write_text(
        '[job]\nname = "iris-file"\nseed = 0\n'
        '[data]\ndataset = "file"\npath = "../data/iris.csv"\ntarget = "species"\n'
        "standardize = true\n[train]\nepochs = 40\n"
        '[search]\nlr = [0.01, 0.1]\ninit = ["xavier"]\nhidden = [[4]]\nseed = [0]\n'
    )
    monkeypatch.chdir(project)  # the job named by a path relative to the project
    location = gdsearch.run_search(
        "jobs/iris.toml", tmp_path / "results", executor="local", show_progress=False
    ).path
    monkeypatch.chdir(tmp_path)  # where ../data/iris.csv is nothing
    drawn = draw_landscapes(location, settings=SMALL, executor="local", show_progress=False)
    assert drawn.drawn == 2 and not drawn.failed
    results = gdsearch.load_results(location)
    spec, X, _, held = results.load_job_and_data()
    assert held is None
    assert spec.name == "iris-file"
    assert X.shape == (150, 4) and results.job_and_data() is not None


def test_a_samplers_trials_are_drawn_at_the_points_it_proposed(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    job: dict[str, Any] = {
        **MLP,
        "search": {
            "sampler": "random",
            "budget": 6,
            "batch": 3,
            "lr": {"loguniform": [1e-2, 3.0]},
            "init": ["xavier", "he"],
            "hidden": [[4], [6]],
        },
    }
    location = gdsearch.run_search(job, tmp_path, executor="local", show_progress=False).path
    drawn = draw_landscapes(
        location, filters=[("lr", ">", 0.0)], settings=SMALL, show_progress=False
    )
    results = gdsearch.load_results(location)
    assert drawn.drawn == len(results.trials) == 6 and not drawn.failed
    grids, finals = results.landscapes, results.trials.set_index("trial_id")["final_sse"]
    origins = grids[(grids["kind"] == Slice.RANDOM.value) & (grids["x"] == 0) & (grids["y"] == 0)]
    assert (origins.set_index("trial_id")["sse"] == finals.loc[origins["trial_id"]]).all()


def test_trials_whose_patience_watches_held_out_data_are_drawn_trained_as_they_ran(
    tmp_path: Path,
) -> None:
    job: dict[str, Any] = {
        **MLP,
        "data": {**MLP["data"], "validation": 0.25},
        "train": {"epochs": 200, "patience": 15, "patience_metric": "val_sse"},
    }
    location = gdsearch.run_search(job, tmp_path, executor="local", show_progress=False).path
    trials = gdsearch.load_results(location).trials
    assert (trials["status"] == "plateaued").any()  # the held-out patience stopped some
    drawn = draw_landscapes(
        location, filters=[("lr", ">", 0.0)], settings=SMALL, executor="local", show_progress=False
    )
    assert drawn.drawn == len(trials) and not drawn.failed, drawn.first_error
    grids = gdsearch.load_results(location).landscapes
    origins = grids[(grids["kind"] == Slice.PLANE.value) & (grids["x"] == 0) & (grids["y"] == 0)]
    finals = trials.set_index("trial_id")["final_sse"]
    assert (origins.set_index("trial_id")["sse"] == finals.loc[origins["trial_id"]]).all()


def test_asking_for_the_landscape_of_a_failed_trial_alone_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gdsearch.search import loop

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a worker lost its data")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "advance_unit", failing)
        location = gdsearch.run_search(
            LINEAR, tmp_path, executor="local", show_progress=False
        ).path
    failed = gdsearch.load_results(location).trials["trial_id"].iloc[0]
    with pytest.raises(InputError, match=r"trial_ids: each of \[.*\] failed, so has no landscape"):
        draw_landscapes(location, trial_ids=[failed], settings=SMALL, show_progress=False)
    assert not ResultsStore(location).parts("landscapes")
