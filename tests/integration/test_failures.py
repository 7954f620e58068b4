"""A failing trial is recorded, not fatal: stored as `failed` with its error, retried next run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import gdsearch
from gdsearch.cli import main
from gdsearch.job.spec import load_job, parse_job
from gdsearch.job.trial import Trial
from gdsearch.results.schema import TRIALS_SCHEMA
from gdsearch.results.store import ResultsStore
from gdsearch.search.plan import Round
from gdsearch.search.policy import Outcome, Policy, Rows, Step
from gdsearch.search.unit import FAULT_VARIABLE, UnitState, failed_tables, train_unit
from tests.processes import Driver

JOB = """
[job]
name = "failing"
seed = 5

[data]
dataset = "moons"
n_samples = 30

[train]
epochs = 20

[search]
lr = [0.05, 0.5]
hidden = [[3]]
seed = [0, 1, 2, 3]
"""

VARYING = ["node", "wall_s"]  # where and how long a trial ran: the only columns runs may differ in


def _parts(store: ResultsStore) -> dict[str, list[str]]:
    return {kind: sorted(os.listdir(f"{store.root}/{kind}")) for kind in ("trials", "history")}


def test_drop_failed_rewrites_parts_without_the_failed_rows_of_the_given_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_job(JOB)
    X, Y = spec.load_data()
    trials = spec.trials()
    store = ResultsStore(tmp_path / "failing")
    store.prepare(JOB)
    monkeypatch.setenv(FAULT_VARIABLE, ",".join(t.trial_id for t in trials[:2]))
    mixed = store.write_part(*train_unit(X, Y, trials[:4]))  # 2 failed, 2 trained
    store.write_part(*failed_tables(trials[4:6], "WorkerCrashedError: gone"))
    kept = store.write_part(*failed_tables(trials[6:], "not in this job any more"))
    history_before = store.read_table("history")

    dropped = store.drop_failed({t.trial_id for t in trials[:6]})

    assert dropped == 4
    assert _parts(store) == {"trials": sorted([mixed, kept]), "history": sorted([mixed, kept])}
    rows = store.read_table("trials").to_pylist()
    left = {t.trial_id for t in trials[2:4] + trials[6:]}
    assert sorted(r["trial_id"] for r in rows) == sorted(left)
    assert [r["status"] for r in rows if r["trial_id"] in {t.trial_id for t in trials[6:]}] == [
        "failed",
        "failed",
    ]
    assert store.read_table("history").equals(history_before)  # failed trials had no history
    assert store.stored_trial_ids() == left
    assert store.drop_failed({t.trial_id for t in trials}) == 2
    assert _parts(store)["trials"] == [mixed]


def test_parts_written_before_the_error_column_existed_load_with_it_null(tmp_path: Path) -> None:
    spec = parse_job(JOB)
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / "old")
    store.prepare(JOB)
    trials_table, history, _ = train_unit(X, Y, spec.trials())
    old = trials_table.drop_columns(["error"])
    name = store.write_part(trials_table.slice(0, 3), history)
    pq.write_table(old.slice(3), f"{store.trials_dir}/part-old.parquet")  # an older writer's part
    store.write_manifest({"name": "failing"})

    results = gdsearch.load_results(store.location)
    assert len(results.trials) == 8 and results.trials["error"].isna().all()
    assert list(results.trials.columns) == TRIALS_SCHEMA.names
    assert name in os.listdir(store.trials_dir)
    assert store.drop_failed({t.trial_id for t in spec.trials()}) == 0


class _OneStep(Policy):
    """A policy of one step that starts from ``state`` (a Ray object), as halving's steps do."""

    def __init__(self, trials: list[Trial], state: object) -> None:
        self.steps = [Step(unit=0, trials=trials, until=trials[0].train.epochs, state=state)]
        self.round = Round(0, len(trials), len(trials), 1)
        self.outcomes: list[Outcome] = []

    def next_steps(self) -> list[Step]:
        steps, self.steps = self.steps, []
        return steps

    def on_result(self, step: Step, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def give_up(self, step: Step, error: str, state: UnitState | None) -> Rows | None:
        return failed_tables(step.trials, error)

    def rounds(self) -> list[Round]:
        return [self.round]


@pytest.mark.ray
def test_the_loop_records_a_raising_unit_as_failed_and_submits_a_lost_one_again(
    local_ray: None, tmp_path: Path
) -> None:
    import ray

    from gdsearch.search.loop import RESUBMITS, execute
    from gdsearch.search.remote import RayBackend

    spec = parse_job(JOB)
    X, Y = spec.load_data()
    trials = spec.trials()[:3]

    def raising() -> None:
        raise ValueError("row 7 of data.csv: could not convert 'abc' to float")

    def crashing() -> None:
        os._exit(1)  # the worker process dies, as when the OOM killer takes it

    stores = {name: ResultsStore(tmp_path / name) for name in ("raised", "lost")}
    for store in stores.values():
        store.prepare(JOB)
    raised = _OneStep(trials, ray.remote(raising).remote())
    execute(raised, RayBackend(X, Y, 2), stores["raised"], show_progress=False)
    [outcome] = raised.outcomes
    assert outcome.failed and outcome.rows is not None
    trials_table, history, _ = outcome.rows
    assert trials_table.column("status").to_pylist() == ["failed"] * 3 and history.num_rows == 0
    assert trials_table.column("error")[0].as_py() == (
        "ValueError: row 7 of data.csv: could not convert 'abc' to float"
    )
    assert raised.round.first_error == trials_table.column("error")[0].as_py()
    assert stores["raised"].status_counts() == {"failed": 3}

    lost = _OneStep(trials, ray.remote(max_retries=0)(crashing).remote())
    execute(lost, RayBackend(X, Y, 2), stores["lost"], show_progress=False)
    [outcome] = lost.outcomes  # one outcome: the resubmissions are the loop's own business
    assert outcome.failed and outcome.rows is not None
    trials_table, history, _ = outcome.rows
    assert trials_table.column("status").to_pylist() == ["failed"] * 3 and history.num_rows == 0
    assert trials_table.column("error")[0].as_py().startswith(f"lost {RESUBMITS + 1} times: ")
    assert stores["lost"].status_counts() == {"failed": 3}


def _comparable(results: gdsearch.Results) -> tuple[pd.DataFrame, pd.DataFrame]:
    return results.trials.drop(columns=VARYING), results.history


@pytest.mark.ray
def test_cli_run_with_failing_trials_exits_1_and_the_next_run_retries_only_them(
    local_ray: None, small_job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = load_job(small_job).trials()
    failing = [trials[3].trial_id, trials[20].trial_id]
    results = tmp_path / "results"
    driver = Driver(
        ["run", str(small_job), "--results-dir", str(results), "--no-progress"],
        extra_env={FAULT_VARIABLE: ",".join(failing)},
    )
    try:
        code = driver.wait()
        stderr, stdout = driver.stderr(), driver.stdout()
    finally:
        driver.remove()
    assert code == 1, stderr
    assert " 2 failed, " in stdout and "ran 32, 0 already stored" in stdout
    summary = stderr.strip().splitlines()[-1]
    assert summary.startswith("gdsearch: 2 of 32 trials failed (e.g. RuntimeError: fault injected")
    assert "run the same command again to retry them" in summary

    first = gdsearch.load_results(results / "small")
    failed = first.trials[first.trials["status"] == "failed"]
    assert sorted(failed["trial_id"]) == sorted(failing)
    assert (
        failed["error"].str.startswith(f"RuntimeError: fault injected by {FAULT_VARIABLE}").all()
    )
    assert failed["final_sse"].isna().all() and first.trials["error"].notna().sum() == 2
    assert not first.history["trial_id"].isin(failing).any()
    assert first.history["trial_id"].nunique() == 30
    assert main(["show", str(results / "small")]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "2 failed" in shown[0] and shown[1].startswith("2 failed (RuntimeError: fault")
    assert "failed" in shown[2].split()  # the per-lr table counts them too

    again = gdsearch.run_search(small_job, results, show_progress=False)
    assert (again.ran, again.retried, again.skipped) == (2, 2, 30)
    assert "failed" not in again.counts and again.first_error is None
    final = gdsearch.load_results(results / "small")
    reference = gdsearch.load_results(
        gdsearch.run_search(small_job, tmp_path / "reference", show_progress=False).path
    )
    for got, expected in zip(_comparable(final), _comparable(reference), strict=True):
        pd.testing.assert_frame_equal(got, expected)
    plain = pd.read_parquet(results / "small" / "trials")
    assert len(plain) == 32 and plain["trial_id"].is_unique and plain["error"].isna().all()
    history = pd.read_parquet(results / "small" / "history")
    assert not history.duplicated(["trial_id", "epoch"]).any()
    assert len(history) == len(reference.history)
    np.testing.assert_array_equal(
        history.sort_values(["trial_id", "epoch"])["sse"].to_numpy(),
        reference.history["sse"].to_numpy(),
    )


def test_a_part_that_cannot_be_written_is_a_run_error_naming_it_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    from gdsearch.errors import RunError

    spec = parse_job(JOB)
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / "r")
    store.prepare(spec.source)
    tables = train_unit(X, Y, spec.trials()[:2])
    trials_dir = tmp_path / "r" / "trials"
    trials_dir.rmdir()
    trials_dir.write_text("not a folder")  # so the write fails with a real OSError
    with pytest.raises(RunError, match=r"/r/trials/part-[0-9a-f]+\.parquet: cannot be written"):
        store.write_part(*tables)
    assert not [p for p in (tmp_path / "r").rglob(".tmp-*")]
