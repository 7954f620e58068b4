"""Where a run trains: in this process for a small job, on Ray otherwise, with the same numbers;
and units planned by work, so that few long trials stack and large populations still balance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gdsearch
from gdsearch.job.spec import load_job, parse_job
from gdsearch.job.trial import Trial
from gdsearch.search.plan import MIN_UNIT_S, Shape, plan_units, unit_seconds
from tests.conftest import JOBS, REPO, Cli

COMPARED = [
    "trial_id",
    "lr",
    "init",
    "hidden",
    "seed",
    "status",
    "final_sse",
    "min_sse",
    "diverged_epoch",
    "stopped_epoch",
    "error",
]


def _same(local: gdsearch.Results, remote: gdsearch.Results) -> None:
    assert local.history.equals(remote.history)
    assert local.trials[COMPARED].equals(remote.trials[COMPARED])
    assert local.sharpness.equals(remote.sharpness)


@pytest.mark.parametrize(
    "job", ["seed_sine.toml", "sine_bracket.toml", "moons_halving.toml", "edge_of_stability.toml"]
)
def test_a_local_run_equals_a_ray_run_bit_for_bit(
    job: str, tmp_path: Path, local_ray: None
) -> None:
    spec = load_job(JOBS / job)
    if spec.train.epochs > 2000:  # keep the long jobs short here; the numbers are what matter
        text = (JOBS / job).read_text(encoding="utf-8")
        text = text.replace(f"epochs = {spec.train.epochs}", "epochs = 2000")
        path = tmp_path / job
        path.write_text(text, encoding="utf-8")
    else:
        path = JOBS / job
    local = gdsearch.run_search(path, tmp_path / "local", show_progress=False, executor="local")
    remote = gdsearch.run_search(path, tmp_path / "ray", show_progress=False, executor="ray")
    assert (local.executor, remote.executor) == ("local", "ray")
    assert local.counts == remote.counts and local.total == remote.total
    a, b = gdsearch.load_results(local.path), gdsearch.load_results(remote.path)
    _same(a, b)
    assert a.manifest["executor"] == "local" and b.manifest["executor"] == "ray"
    assert a.manifest["runs"][-1]["executor"] == "local"
    assert set(a.trials["node"]) == {a.manifest["cluster"]["nodes"][0]["node_id"]}


def test_a_local_run_resumes_a_ray_run_and_the_other_way_round(
    small_job: Path, tmp_path: Path, local_ray: None
) -> None:
    whole = gdsearch.run_search(small_job, tmp_path / "whole", show_progress=False, executor="ray")
    # Half the job through Ray, then the rest in this process, then nothing left for Ray.
    half = small_job.read_text(encoding="utf-8").replace("seed = [0, 1]", "seed = [0]")
    first = tmp_path / "first.toml"
    first.write_text(half, encoding="utf-8")
    gdsearch.run_search(first, tmp_path / "mixed", show_progress=False, executor="ray")
    rest = gdsearch.run_search(
        small_job, tmp_path / "mixed", show_progress=False, executor="local"
    )
    assert rest.skipped == 16 and rest.ran == 16
    again = gdsearch.run_search(small_job, tmp_path / "mixed", show_progress=False, executor="ray")
    assert again.ran == 0
    _same(gdsearch.load_results(rest.path), gdsearch.load_results(whole.path))
    executors = [run["executor"] for run in gdsearch.load_results(rest.path).manifest["runs"]]
    assert executors == ["ray", "local", "ray"]


def test_auto_trains_a_small_job_in_the_process_without_starting_ray(
    cli: Cli, tmp_path: Path
) -> None:
    probe = (
        "import sys, json, gdsearch; "
        f"s = gdsearch.run_search({str(JOBS / 'seed_sine.toml')!r}, {str(tmp_path)!r}, "
        "show_progress=False); "
        "print(json.dumps([s.executor, 'ray' in sys.modules, s.ran]))"
    )
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["local", False, 13]
    ran = cli.run(
        [
            "run",
            str(JOBS / "seed_sine.toml"),
            "--results-dir",
            str(tmp_path / "cli"),
            "--json",
            "--no-progress",
        ]
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["executor"] == "local"
    assert "in this process" in ran.stderr  # the log says which, and why


def test_auto_runs_a_large_job_on_ray_and_a_named_cluster_is_never_local(
    cli: Cli, tmp_path: Path
) -> None:
    from gdsearch.search.driver import choose_executor

    spec = load_job(JOBS / "moons_lr_init.toml")
    X, Y = spec.load_data()
    assert choose_executor("auto", None, spec, spec.trials(), Shape.of(X, Y)) == "ray"
    small = load_job(JOBS / "seed_sine.toml")
    X, Y = small.load_data()
    shape = Shape.of(X, Y)
    assert choose_executor("auto", "127.0.0.1:6379", small, small.trials(), shape) == "ray"
    refused = cli.run(
        [
            "run",
            str(JOBS / "seed_sine.toml"),
            "--executor",
            "local",
            "--address",
            "127.0.0.1:1",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--executor local" in refused.stderr
    assert not any(tmp_path.iterdir())
    bad = cli.run(["run", str(JOBS / "seed_sine.toml"), "--executor", "gpu"])
    assert bad.returncode == 2 and "--executor" in bad.stderr


# --- planning by work ------------------------------------------------------------------------


def _job(search: str, train: str = "") -> tuple[list[Trial], Shape]:
    text = f"""
[job]
name = "plan"
seed = 0
[data]
dataset = "sine"
[train]
epochs = 20000
{train}
[search]
{search}
"""
    spec = parse_job(text)
    X, Y = spec.load_data()
    return spec.trials(), Shape.of(X, Y)


def test_few_long_small_trials_stack_into_one_unit_per_cpu() -> None:
    trials, shape = _job("lr = { log = [1e-3, 1e-1], num = 13 }\nhidden = [[]]")
    assert [len(u) for u in plan_units(trials, 1, shape=shape)] == [13]
    assert sorted(len(u) for u in plan_units(trials, 2, shape=shape)) == [6, 7]
    assert len(plan_units(trials, 2)) == 13  # by trial count alone, one trial a unit
    # stacked, numpy's per-step cost is paid once a unit instead of once a trial
    alone = sum(unit_seconds([t], shape) for t in trials)
    assert unit_seconds(trials, shape) < alone / 5


def test_units_hold_a_share_of_work_worth_their_cost_while_every_cpu_has_one() -> None:
    spec = load_job(JOBS / "moons_lr_init.toml")
    X, Y = spec.load_data()
    shape, trials = Shape.of(X, Y), spec.trials()
    units = plan_units(trials, 2, shape=shape)
    assert 2 <= len(units) < 16  # fewer than 8 per CPU: each holds its fixed costs' worth
    assert all(unit_seconds(u, shape) >= 0.75 * MIN_UNIT_S for u in units)  # about that
    assert max(map(len, units)) - min(map(len, units)) <= 1
    assert all(len({t.lr for t in unit}) >= 8 for unit in units)  # dealt round-robin
    assert len(plan_units(trials, 64, shape=shape)) >= 64  # many CPUs: smaller units, all busy


def test_mini_batches_pay_the_step_cost_per_batch_so_units_stack_more() -> None:
    trials, shape = _job("lr = { log = [1e-3, 1e-1], num = 64 }\nhidden = [[8]]")
    full = plan_units(trials, 2, shape=shape)
    batched, _ = _job("lr = { log = [1e-3, 1e-1], num = 64 }\nhidden = [[8]]", "batch_size = 2")
    assert len(plan_units(batched, 2, shape=shape)) <= len(full)
    assert unit_seconds(batched, shape) > unit_seconds(trials, shape)


def test_planning_never_drops_or_repeats_a_trial() -> None:
    for name in ("moons_lr_init.toml", "iris_arch.toml", "edge_of_stability.toml"):
        spec = load_job(JOBS / name)
        X, Y = spec.load_data()
        for cpus in (1, 2, 7, 64):
            units = plan_units(spec.trials(), cpus, shape=Shape.of(X, Y))
            ids = [t.trial_id for u in units for t in u]
            assert sorted(ids) == sorted(t.trial_id for t in spec.trials())
            assert all(len({t.population_key() for t in u}) == 1 for u in units)
            assert len(units) >= min(cpus, len(ids))
