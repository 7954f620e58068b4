"""Compaction: a result set of many small parts merged into few, the same tables before and
after, and a process killed at every step of it losing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import gdsearch
from gdsearch.job.spec import parse_job
from gdsearch.results.compact import compact_results
from gdsearch.results.journal import COMPACTION, COMPACTION_FAULT
from gdsearch.results.repair import repair_results
from gdsearch.results.store import ResultsStore
from gdsearch.search.unit import train_unit
from tests.conftest import SMALL_JOB, Cli

MEASURED = SMALL_JOB.replace("epochs = 60", "epochs = 60\nsharpness_every = 20")


def _many_parts(root: Path, text: str) -> Path:
    """A result set as a long run of one-trial units leaves it: one part per trial."""
    spec = parse_job(text)
    X, Y = spec.load_data()
    location = root / spec.name
    store = ResultsStore(location)
    store.prepare(text)
    store.write_manifest({"name": spec.name, "status": "complete"})
    for trial in spec.trials():
        store.write_part(*train_unit(X, Y, [trial]))
    return location


def _tables(location: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    res = gdsearch.load_results(location)
    return res.trials.drop(columns=["wall_s"]), res.history, res.sharpness


def _same(a: tuple[pd.DataFrame, ...], b: tuple[pd.DataFrame, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)


@pytest.mark.parametrize("text", [SMALL_JOB, MEASURED], ids=["plain", "sharpness"])
def test_compaction_merges_the_parts_and_changes_no_table(tmp_path: Path, text: str) -> None:
    location = _many_parts(tmp_path, text)
    before = _tables(location)
    report = compact_results(location)
    assert (report.parts_before, report.parts_after) == (32, 1)
    assert report.history_rows == len(before[1])
    _same(before, _tables(location))
    store = ResultsStore(location)
    (name,) = store.parts("trials")
    assert store.parts("history") == [name]
    assert store.parts("sharpness") == ([name] if text is MEASURED else [])
    history = pq.read_table(location / "history" / name).to_pandas()
    assert history[["trial_id", "epoch"]].equals(
        history.sort_values(["trial_id", "epoch"], ignore_index=True)[["trial_id", "epoch"]]
    )  # sorted, so that a reader's filter on a trial skips row groups
    assert gdsearch.load_results(location).manifest["compactions"][0]["parts_before"] == 32
    assert repair_results(location).dropped == ()  # a compacted set is a sound one


def test_compaction_respects_the_target_and_leaves_one_part_alone(tmp_path: Path) -> None:
    location = _many_parts(tmp_path, SMALL_JOB)
    rows = len(gdsearch.load_results(location).history)
    report = compact_results(location, target_rows=rows // 4)
    assert 4 <= report.parts_after <= 6
    again = compact_results(location, target_rows=rows // 4)
    assert again.parts_after == again.parts_before  # nothing left to merge
    _same(_tables(location), _tables(location))


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_a_compaction_killed_at_any_step_loses_nothing_and_is_settled(
    cli: Cli, tmp_path: Path, step: int
) -> None:
    location = _many_parts(tmp_path, MEASURED)
    before = _tables(location)
    killed = cli.run(["compact", str(location)], {COMPACTION_FAULT: str(step)})
    assert killed.returncode == 9, killed.stderr  # died at that step, as if killed
    assert (location / COMPACTION).exists() == (step < 5)
    _same(before, _tables(location))  # every trial, once, whatever the step
    opened = gdsearch.open_results(location)  # as the reports and show read it
    assert opened.trials["trial_id"].tolist() == before[0]["trial_id"].tolist()
    repaired = cli.run(["repair", str(location)])
    assert repaired.returncode == 0, repaired.stderr
    expected = "compaction that finished" if step >= 3 else "compaction that did not finish"
    assert expected in repaired.stdout
    assert ("replaced by the compacted part" in repaired.stdout) == (step == 3)
    assert not (location / COMPACTION).exists()
    _same(before, _tables(location))
    plain = pd.read_parquet(location / "trials")  # no reader can see a trial twice now
    assert plain["trial_id"].is_unique and len(plain) == 32
    assert len(pd.read_parquet(location / "history")) == len(before[1])
    finished = compact_results(location)
    assert finished.parts_after == 1
    _same(before, _tables(location))


def test_a_run_settles_an_interrupted_compaction_and_resumes(cli: Cli, tmp_path: Path) -> None:
    location = _many_parts(tmp_path, SMALL_JOB)
    before = _tables(location)
    cli.run(["compact", str(location)], {COMPACTION_FAULT: "3"})
    job = tmp_path / "small.toml"
    job.write_text(SMALL_JOB, encoding="utf-8")
    summary = gdsearch.run_search(job, tmp_path, show_progress=False, executor="local")
    assert summary.ran == 0 and summary.skipped == 32
    assert not (location / COMPACTION).exists()
    _same(before, _tables(location))


def test_compact_cli_json_and_a_missing_result_set(cli: Cli, tmp_path: Path) -> None:
    location = _many_parts(tmp_path, SMALL_JOB)
    done = cli.run(["compact", str(location), "--json"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parts_after"] == 1
    missing = cli.run(["compact", str(tmp_path / "nothing")])
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
