"""Held-out data end to end: the same on Ray as in the process, ranked in reports, and bad
shares refused by the command line in one line (the split itself: tests/unit/test_holdout.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gdsearch import analysis
from tests.conftest import Cli
from tests.unit.test_holdout import JOB, _job, _run


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


def test_reports_rank_by_held_out_error_by_default_or_by_either(cli: Cli, tmp_path: Path) -> None:
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
        done = cli.run(["report", results.path, "--rank-by", rank, "-o", str(out)])
        assert done.returncode == 0, done.stderr
        assert 'alt="held_out"' in out.read_text(encoding="utf-8")
    out = tmp_path / "interactive.html"
    done = cli.run(["report", results.path, "--interactive", "-o", str(out)])
    assert done.returncode == 0, done.stderr
    assert "xavier, hidden 6, tanh, held out" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("validation = 1.0", "[data] validation: must be a number in [0, 1)"),
        ('validation = "a fifth"', "[data] validation: must be float"),
        ("validation = 0.001", "[data] validation: 0.001 of 80 samples holds out 0"),
    ],
)
def test_a_bad_share_is_refused_in_one_line_and_nothing_is_stored(
    cli: Cli, tmp_path: Path, line: str, named: str
) -> None:
    job = _job(tmp_path, validation=line)
    done = cli.run(["run", str(job), "--results-dir", str(tmp_path / "results"), "--no-progress"])
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_a_held_out_result_set_refuses_a_run_with_another_share(cli: Cli, tmp_path: Path) -> None:
    _run(_job(tmp_path), tmp_path / "results")
    before = sorted(p.name for p in (tmp_path / "results" / "held" / "trials").iterdir())
    job = _job(tmp_path, validation="validation = 0.5")
    done = cli.run(["run", str(job), "--results-dir", str(tmp_path / "results"), "--no-progress"])
    assert done.returncode == 2 and "validation" in done.stderr
    assert sorted(p.name for p in (tmp_path / "results" / "held" / "trials").iterdir()) == before
