"""Crashes lose nothing: the driver SIGKILLed at several points, a Ray worker killed mid-unit.

Each is checked the same way: the final trials and history tables equal those of an
uninterrupted run value for value (all columns but node and wall_s), with every trial stored
exactly once, read through `load_results` and through plain pandas.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

import gdsearch
from tests.processes import Driver, processes_of

pytestmark = pytest.mark.ray

JOB = """
[job]
name = "crashes"
seed = 11

[data]
dataset = "moons"
n_samples = 1000

[train]
epochs = 3000

[search]
lr = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
hidden = [[4], [6]]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
"""
TRIALS = 96
VARYING = ["node", "wall_s"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("job") / "crashes.toml"
    path.write_text(JOB)
    return path


@pytest.fixture(scope="module")
def reference(
    local_ray: None, job: Path, tmp_path_factory: pytest.TempPathFactory
) -> gdsearch.Results:
    """The same job, run once without interruption."""
    summary = gdsearch.run_search(job, tmp_path_factory.mktemp("reference"), show_progress=False)
    return gdsearch.load_results(summary.path)


def _check_equal_to_reference(path: Path, reference: gdsearch.Results) -> None:
    final = gdsearch.load_results(path)
    assert len(final.trials) == TRIALS and final.trials["trial_id"].is_unique
    pd.testing.assert_frame_equal(
        final.trials.drop(columns=VARYING), reference.trials.drop(columns=VARYING)
    )
    pd.testing.assert_frame_equal(final.history, reference.history)
    plain_trials = pd.read_parquet(path / "trials")
    plain_history = pd.read_parquet(path / "history")
    assert len(plain_trials) == TRIALS and plain_trials["trial_id"].is_unique
    assert len(plain_history) == len(reference.history)
    assert not plain_history.duplicated(["trial_id", "epoch"]).any()
    pd.testing.assert_frame_equal(
        plain_history.sort_values(["trial_id", "epoch"], ignore_index=True), reference.history
    )


# --- the driver killed ------------------------------------------------------------------------


def _parts(path: Path) -> int:
    try:
        return sum(n.startswith("part-") for n in os.listdir(path / "trials"))
    except FileNotFoundError:
        return 0


def _units_planned(driver: Driver) -> int | None:
    found = re.search(r"in (\d+) work units", driver.stderr())
    return int(found.group(1)) if found else None


def _wait_for(condition: Callable[[], bool], driver: Driver, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert driver.process.poll() is None, f"the run ended first: {driver.stderr()[-2000:]}"
        assert time.monotonic() < deadline, "kill point not reached"
        time.sleep(0.01)


def _ray_half_started(driver: Driver) -> bool:
    """Its raylet is up, its agents and workers are still starting."""
    return any(b"raylet" in _cmdline(pid) for pid in processes_of(driver.temp_dir))


def _written_since(path: Path, driver: Driver) -> bool:
    """Whether this run has written ``path`` (the results location is prepared)."""
    try:
        return path.stat().st_mtime >= driver.started_wall
    except FileNotFoundError:
        return False


KillPoint = Callable[[Driver, Path, int], bool]
KILL_POINTS: dict[str, KillPoint] = {
    "importing": lambda driver, stored, before: time.monotonic() - driver.started_at > 0.5,
    "Ray half started": lambda driver, stored, before: _ray_half_started(driver),
    "results prepared, nothing trained":
        lambda driver, stored, before: _written_since(stored / "manifest.json", driver),
    "first part committed": lambda driver, stored, before: _parts(stored) > before,
    "half the units committed": lambda driver, stored, before:
        _parts(stored) - before >= (_units_planned(driver) or 10**9) // 2,
    "one unit left": lambda driver, stored, before:
        _parts(stored) - before >= (_units_planned(driver) or 10**9) - 1,
}  # fmt: skip


@pytest.mark.parametrize(
    "points",
    [
        pytest.param(["Ray half started", "first part committed", "one unit left"], id="3-points"),
        pytest.param(list(KILL_POINTS), id="all-points", marks=pytest.mark.slow),
    ],
)
def test_driver_killed_then_run_again_equals_an_uninterrupted_run(
    points: list[str], job: Path, tmp_path: Path, reference: gdsearch.Results
) -> None:
    """SIGKILL of `gdsearch run` (embedded Ray) at each point in turn, each run resuming the
    last; then the same command once more, to the end."""
    results = tmp_path / "results"
    stored = results / "crashes"
    args = ["run", str(job), "--results-dir", str(results), "--no-progress", "--executor", "ray"]
    counts = [0]
    for point in points:
        before = _parts(stored)
        driver = Driver(args)
        try:
            _wait_for(partial(KILL_POINTS[point], driver, stored, before), driver)
            driver.kill()  # SIGKILL to its process group, then to what Ray left behind
            assert processes_of(driver.temp_dir) == [], point
            print(f"killed at {point!r}: {len(driver.leftovers)} Ray processes outlived it")
        finally:
            driver.kill()
            driver.remove()
        if (stored / "manifest.json").exists():
            so_far = gdsearch.load_results(stored)  # readable after any kill, nothing twice
            assert so_far.trials["trial_id"].is_unique, point
            assert not so_far.history.duplicated(["trial_id", "epoch"]).any(), point
            counts.append(len(so_far.trials))
    assert counts == sorted(counts) and 0 < counts[-1] < TRIALS, counts  # progress, not done

    driver = Driver(args)
    try:
        assert driver.wait() == 0, driver.stderr()
        assert f"ran {TRIALS - counts[-1]}, {counts[-1]} already stored" in driver.stdout()
    finally:
        driver.remove()
    _check_equal_to_reference(stored, reference)
    assert gdsearch.load_results(stored).manifest["status"] == "complete"


# --- a worker killed ----------------------------------------------------------------------------


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _unit_workers(ray_dir: Path) -> list[int]:
    """Workers of our local Ray (children of its raylet) that are running a unit right now."""
    marker = str(ray_dir).encode()
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit()
        and _cmdline(int(entry)).startswith(b"ray::unit_task")
        and marker in _cmdline(_parent(int(entry)))
    ]


def test_worker_killed_mid_unit_is_retried_and_nothing_is_lost_or_doubled(
    job: Path, tmp_path: Path, reference: gdsearch.Results, ray_temp_dir: Path
) -> None:
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while len(killed) < 2 and not stop.is_set():
            for pid in _unit_workers(ray_temp_dir):
                if pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    time.sleep(0.5)  # let the run get on a little before the next kill
                    break
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        summary = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    finally:
        stop.set()
        thread.join()
    assert len(killed) == 2  # two workers died while training a unit
    assert summary.ran == TRIALS and summary.counts == reference.manifest["counts"]
    _check_equal_to_reference(Path(summary.path), reference)


# --- a landscape run killed ---------------------------------------------------------------


def test_a_landscape_run_killed_after_its_first_part_then_run_again_loses_nothing(
    tmp_path: Path, reference: gdsearch.Results
) -> None:
    """SIGKILL of `gdsearch landscape` (in this process, one unit at a time) once its first
    unit is committed; the same command again draws only the rest, and the tables equal those
    of an uninterrupted draw of the same trials."""
    from gdsearch.mlp.landscape import LandscapeSettings
    from gdsearch.search.landscapes import draw_landscapes

    trials = reference.trials
    ids = trials.loc[(trials["hidden"] == "4") & (trials["seed"] < 4), "trial_id"].tolist()
    whole = tmp_path / "whole"
    shutil.copytree(reference.path, whole)
    settings = LandscapeSettings(resolution=21)
    draw_landscapes(whole, trial_ids=ids, settings=settings, executor="local", show_progress=False)
    expected = gdsearch.load_results(whole)
    stored = tmp_path / "killed"
    shutil.copytree(reference.path, stored)
    args = ["landscape", str(stored), "--resolution", "21", "--executor", "local", "--trials"]
    driver = Driver([*args, *ids])
    committed = stored / "landscape_trials"
    try:
        # A committed part, not the temporary file it is written under first.
        _wait_for(lambda: committed.exists() and any(committed.glob("part-*.parquet")), driver)
        driver.kill()
    finally:
        driver.kill()
        driver.remove()
    done = gdsearch.load_results(stored).landscape_trials
    assert 0 < len(done) < len(expected.landscape_trials)  # killed in the middle
    driver = Driver([*args, *ids, "--no-progress"])
    try:
        assert driver.wait() == 0, driver.stderr()
        assert f"{len(done)} already stored" in driver.stdout()
    finally:
        driver.remove()
    final = gdsearch.load_results(stored)
    assert final.landscape_trials["trial_id"].is_unique
    for table in ("landscapes", "landscape_trials"):
        got, want = getattr(final, table), getattr(expected, table)
        drop = [c for c in VARYING if c in got.columns]
        key = ["trial_id", "kind", "epoch", "x", "y"] if table == "landscapes" else ["trial_id"]
        pd.testing.assert_frame_equal(
            got.drop(columns=drop).sort_values(key, ignore_index=True),
            want.drop(columns=drop).sort_values(key, ignore_index=True),
        )
    plain = pd.read_parquet(stored / "landscapes")
    assert len(plain) == len(expected.landscapes)  # no lone part left to read twice


# --- a sampler's run killed ---------------------------------------------------------------------

SAMPLED = """
[job]
name = "sampled"
seed = 2

[data]
dataset = "moons"
n_samples = 400
validation = 0.25

[train]
epochs = 1500

[search]
sampler = "tpe"
budget = 40
batch = 8
objective = "final_val_sse"
lr = { loguniform = [1e-3, 10.0] }
init = ["xavier", "he"]
hidden = [[8], [16]]
"""


def _proposed(path: Path) -> pd.DataFrame:
    trials = gdsearch.load_results(path).trials
    columns = ["trial_id", "sampler_round", "sampler_index", "status", "final_val_sse"]
    return trials[columns].sort_values(["sampler_round", "sampler_index"], ignore_index=True)


@pytest.mark.parametrize("kill_after", [1, 4, 9])
def test_a_sampler_killed_after_some_parts_resumes_to_the_uninterrupted_proposals(
    tmp_path: Path, kill_after: int
) -> None:
    """SIGKILL of `gdsearch run` of a TPE job once some parts are committed; the same command
    again ends with exactly the trials, rounds and values of an uninterrupted run."""
    job = tmp_path / "sampled.toml"
    job.write_text(SAMPLED)
    whole = gdsearch.run_search(job, tmp_path / "whole", executor="local", show_progress=False)
    stored = tmp_path / "killed" / "sampled"
    args = ["run", str(job), "--results-dir", str(tmp_path / "killed"), "--executor", "local"]
    driver = Driver([*args, "--no-progress"])
    try:
        _wait_for(lambda: _parts(stored) >= kill_after, driver)
        driver.kill()
    finally:
        driver.kill()
        driver.remove()
    cut = len(gdsearch.load_results(stored).trials)
    assert 0 < cut < len(gdsearch.load_results(whole.path).trials)
    driver = Driver([*args, "--no-progress"])
    try:
        assert driver.wait() == 0, driver.stderr()
    finally:
        driver.remove()
    pd.testing.assert_frame_equal(_proposed(stored), _proposed(Path(whole.path)))
