"""``gdsearch landscape`` end to end: drawn on Ray equal to drawn in this process, bit for bit;
the command's output, its JSON and its exit codes; bad options refused with nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import gdsearch
from gdsearch.results.store import ResultsStore
from gdsearch.search.landscapes import draw_landscapes
from tests.conftest import Cli


def _stored(small_job: Path, root: Path) -> str:
    return gdsearch.run_search(small_job, root, executor="local", show_progress=False).path


def _tables(location: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = gdsearch.load_results(location)
    grids = results.landscapes.sort_values(["trial_id", "kind", "epoch", "x", "y"])
    index = results.landscape_trials.drop(columns=["node", "wall_s"]).sort_values("trial_id")
    return grids.reset_index(drop=True), index.reset_index(drop=True)


def test_landscapes_drawn_on_ray_equal_those_drawn_here_bit_for_bit(
    small_job: Path, tmp_path: Path, local_ray: None
) -> None:
    here, there = _stored(small_job, tmp_path / "here"), _stored(small_job, tmp_path / "there")
    local = draw_landscapes(here, executor="local", show_progress=False)
    remote = draw_landscapes(there, executor="ray", show_progress=False)
    assert (local.executor, remote.executor) == ("local", "ray")
    assert local.drawn == remote.drawn == local.chosen > 0
    a, b = _tables(here), _tables(there)
    pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
    pd.testing.assert_frame_equal(a[1], b[1], check_exact=True)
    nodes = gdsearch.load_results(there).landscape_trials["node"]
    assert not nodes.str.startswith("local:").any()  # drawn by Ray's workers


def test_the_landscape_command_draws_resumes_and_says_so(
    cli: Cli, small_job: Path, tmp_path: Path
) -> None:
    location = _stored(small_job, tmp_path)
    first = cli.run(["landscape", location, "--resolution", "9", "--no-progress"])
    assert first.returncode == 0, first.stderr
    assert "drew" in first.stdout and "0 already stored" in first.stdout
    again = cli.run(["landscape", location, "--resolution", "9", "--no-progress", "--json"])
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["drawn"] == 0 and summary["skipped"] == summary["chosen"] > 0
    every = cli.run(["landscape", location, "--resolution", "9", "--all", "--no-progress"])
    assert every.returncode == 0, every.stderr
    stored = gdsearch.load_results(location)
    assert set(stored.landscape_trials["trial_id"]) == set(
        stored.trials.loc[stored.trials["status"] != "failed", "trial_id"]
    )


def test_the_landscape_command_draws_the_trials_its_filters_match(
    cli: Cli, small_job: Path, tmp_path: Path
) -> None:
    location = _stored(small_job, tmp_path)
    trials = gdsearch.load_results(location).trials
    low = float(trials["lr"].median())
    init = sorted(trials["init"].unique())[0]
    where = ["--where", f"lr >= {low!r}", "--where", f"init in {init},nothing"]
    done = cli.run(["landscape", location, "--resolution", "9", "--no-progress", "--json", *where])
    assert done.returncode == 0, done.stderr
    wanted = trials[(trials["lr"] >= low) & (trials["init"] == init)]
    wanted = wanted[wanted["status"] != "failed"]
    assert json.loads(done.stdout)["chosen"] == len(wanted) > 0
    drawn = gdsearch.load_results(location).landscape_trials
    assert set(drawn["trial_id"]) == set(wanted["trial_id"])


def test_bad_landscape_options_exit_2_in_one_line_and_store_nothing(
    cli: Cli, small_job: Path, tmp_path: Path
) -> None:
    location = _stored(small_job, tmp_path)
    cases = [
        (["--resolution", "10"], "`resolution` must be an odd integer >= 3, but got 10"),
        (["--span", "-1"], "`span` must be a number > 0, but got -1.0"),
        (["--line", "0.5", "2"], "`line` must be [low, high] with low <= 0 and high >= 1"),
        (["--trials", "0123456789abcdef"], "not stored"),
        (["--executor", "gpu"], "--executor"),
        (["--resolution", "1001"], "`resolution` must be at most 501, but got 1001"),
        (["--path-points", "200000"], "`path_points` must be at most 100000, but got 200000"),
        (["--margin", "11"], "`margin` must be at most 10, but got 11.0"),
        (["--where", "lr ~ 1"], "--where: must be COLUMN OP VALUE with OP one of"),
        (["--where", "speed > 1"], "column 'speed' is not a trials column"),
        (["--where", "lr > 1e9"], "filters: no stored trial that did not fail matches"),
        (["--all", "--where", "lr > 0"], "--all: every stored trial, but --where chooses"),
        (
            ["--executor", "local", "--address", "127.0.0.1:1"],
            "--executor local: runs in this process, but a cluster is named ('127.0.0.1:1')",
        ),
    ]
    for options, said in cases:
        done = cli.run(["landscape", location, "--no-progress", *options])
        assert done.returncode == 2, (options, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert said in lines[-1], (options, done.stderr)
    assert not ResultsStore(location).parts("landscapes")
    missing = cli.run(["landscape", str(tmp_path / "nowhere"), "--no-progress"])
    assert missing.returncode == 2 and "no results here" in missing.stderr
    drawn = cli.run(["landscape", location, "--resolution", "9", "--no-progress"])
    assert drawn.returncode == 0
    other = cli.run(["landscape", location, "--resolution", "11", "--no-progress"])
    assert other.returncode == 2
    assert "drawn with resolution = 9, not 11; --fresh" in other.stderr
