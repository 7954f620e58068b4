"""The numerics each stored trial records, and what a resumed run does with them."""

from __future__ import annotations

from pathlib import Path

import pytest

import gdsearch
from gdsearch.errors import ResultsError
from gdsearch.job.spec import load_job
from gdsearch.mlp.numerics import machine_label
from gdsearch.report.document import build
from gdsearch.results.manifest import (
    UNRECORDED,
    check_numerics,
    mixed_numerics,
    numerics_counts,
)
from gdsearch.results.store import ResultsStore
from gdsearch.search.plan import plan_units
from gdsearch.search.unit import train_unit
from tests.conftest import Cli

PORTABLE = machine_label("portable")


def _with(job: Path, settings: str, lrs: str | None = None) -> Path:
    """A copy of ``job`` with [train] settings added and, if given, other learning rates."""
    text = job.read_text().replace("[train]", f"[train]\n{settings}")
    if lrs is not None:
        text = text.replace("lr = [0.01, 0.1, 1.0, 40.0]", f"lr = {lrs}")
    path = job.with_name(f"{job.stem}_{abs(hash((settings, lrs)))}.toml")
    path.write_text(text)
    return path


def _store_without_ray(job: Path, root: Path) -> ResultsStore:
    """The job's trials trained in this process and stored as a run stores them."""
    spec = load_job(job)
    X, Y = spec.load_data()
    store = ResultsStore(root / spec.name)
    store.prepare(spec.source)
    for unit in plan_units(spec.trials(), 1):
        store.write_part(*train_unit(X, Y, unit))
    store.write_manifest({"name": spec.name})
    return store


def test_each_trial_records_the_numerics_that_computed_it(small_job: Path, tmp_path: Path) -> None:
    store = _store_without_ray(small_job, tmp_path)
    labels = store.read_table("trials", ["numerics"]).column(0).to_pylist()
    assert numerics_counts(labels) == {PORTABLE: 32}
    assert PORTABLE == "portable; version 1"
    blas = _store_without_ray(_with(small_job, 'numerics = "blas"'), tmp_path / "blas")
    (label,) = numerics_counts(blas.read_table("trials", ["numerics"]).column(0).to_pylist())
    assert label == machine_label("blas") and label.startswith("blas; numpy ")


def test_adding_trials_of_other_numerics_is_refused_unless_asked(
    small_job: Path, tmp_path: Path
) -> None:
    store = _store_without_ray(small_job, tmp_path)
    check_numerics(store, PORTABLE, allow_change=False)  # the same: fine
    with pytest.raises(ResultsError, match="--allow-numerics-change") as refused:
        check_numerics(store, machine_label("blas"), allow_change=False)
    assert "\n" not in str(refused.value) and "portable; version 1" in str(refused.value)
    check_numerics(store, machine_label("blas"), allow_change=True)


def test_the_cli_refuses_other_numerics_in_one_line_before_starting_ray(
    cli: Cli, small_job: Path, tmp_path: Path
) -> None:
    _store_without_ray(small_job, tmp_path)
    blas_job = _with(small_job, 'numerics = "blas"')
    done = cli.run(["run", str(blas_job), "--results-dir", str(tmp_path)])
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "holds trials computed with numerics" in lines[0]


def test_a_mix_is_named_with_its_counts_and_unrecorded_trials_count_as_such() -> None:
    counts = numerics_counts(["portable; version 1", None, None, "portable; version 1"])
    assert counts == {UNRECORDED: 2, "portable; version 1": 2}
    warning = mixed_numerics(counts)
    assert warning is not None and "2 by portable; version 1" in warning
    assert mixed_numerics({"portable; version 1": 5}) is None


@pytest.mark.ray
def test_a_run_allowed_to_change_numerics_mixes_them_and_the_report_says_so(
    local_ray: None, small_job: Path, tmp_path: Path
) -> None:
    root = tmp_path / "results"
    first = gdsearch.run_search(small_job, root, show_progress=False)
    more = _with(small_job, 'numerics = "blas"', lrs="[0.01, 0.1, 1.0, 40.0, 0.3]")
    with pytest.raises(ResultsError, match="numerics"):
        gdsearch.run_search(more, root, show_progress=False)
    second = gdsearch.run_search(more, root, show_progress=False, allow_numerics_change=True)
    assert (first.ran, second.ran) == (32, 8)
    results = gdsearch.load_results(first.path)
    assert results.manifest["numerics"] == {machine_label("blas"): 8, PORTABLE: 32}
    assert results.manifest["runs"][-1]["numerics"] == "blas"
    report = build(results, tmp_path / "report.html").read_text()
    assert "Warning:</strong> this result set mixes numerics" in report
