"""Load held: 20,000 short trials through `gdsearch run` on an embedded local Ray.

Slow (run it with `pytest -m slow tests/system/test_soak.py -s`). It checks that every trial is
stored exactly once, in the trials table and in the history, and records the driver's peak
memory (its own maximum resident set, from wait4, Ray's processes not included).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch.job.spec import load_job
from tests.processes import Driver

pytestmark = [pytest.mark.slow, pytest.mark.ray]

LRS = 50
HIDDEN = [[], [2], [4], [8]]
SEEDS = 100
EPOCHS = 200
PEAK_MEMORY_LIMIT = 2**30  # 1 GiB: generous; a driver that held every history would still pass
JOB = f"""
[job]
name = "soak"
seed = 1

[data]
dataset = "moons"
n_samples = 20

[train]
epochs = {EPOCHS}

[search]
lr = {{ log = [1e-3, 10.0], num = {LRS} }}
hidden = {HIDDEN}
seed = {list(range(SEEDS))}
"""


def test_20000_trials_are_each_stored_exactly_once_with_the_driver_memory_bounded(
    tmp_path: Path,
) -> None:
    job = tmp_path / "soak.toml"
    job.write_text(JOB)
    expected_ids = {t.trial_id for t in load_job(job).trials()}
    assert len(expected_ids) == LRS * len(HIDDEN) * SEEDS == 20_000

    results = tmp_path / "results"
    started = time.monotonic()
    driver = Driver(["run", str(job), "--results-dir", str(results), "--no-progress"])
    try:
        _, status, usage = os.wait4(driver.process.pid, 0)  # the driver's own peak, not Ray's
        driver.process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        stderr, stdout = driver.stderr(), driver.stdout()
    finally:
        driver.kill()
        driver.remove()
    assert driver.process.returncode == 0, stderr
    peak = usage.ru_maxrss * 1024  # Linux reports KiB
    print(f"\nsoak: 20,000 trials in {wall:.1f} s, driver peak RSS {peak / 2**20:.0f} MiB")
    print(stdout.strip())

    loaded = gdsearch.load_results(results / "soak")
    trials, history = loaded.trials, loaded.history
    assert len(trials) == 20_000 and trials["trial_id"].is_unique
    assert set(trials["trial_id"]) == expected_ids
    assert set(trials["status"]) <= {"ok", "diverged"}
    per_trial = history.groupby("trial_id")["epoch"].agg(["min", "max", "count"])
    assert set(per_trial.index) == expected_ids  # every trial has its history ...
    assert (per_trial["min"] == 0).all() and (per_trial["max"] + 1 == per_trial["count"]).all()
    lengths = trials.set_index("trial_id")["diverged_epoch"].fillna(EPOCHS + 1).astype(int)
    assert per_trial["count"].sort_index().equals(lengths.sort_index().rename("count"))  # ... once
    plain = pd.read_parquet(results / "soak" / "history")
    assert len(plain) == len(history) and not plain.duplicated(["trial_id", "epoch"]).any()
    assert np.isfinite(history["sse"]).all()
    assert peak < PEAK_MEMORY_LIMIT

    again = Driver(["run", str(job), "--results-dir", str(results), "--no-progress"])
    try:
        assert again.wait() == 0, again.stderr()
        assert "ran 0, 20000 already stored" in again.stdout()
    finally:
        again.remove()
