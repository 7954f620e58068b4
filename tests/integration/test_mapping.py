"""A job given as a dict runs through ``run_search`` and keeps its job copy for the report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import gdsearch
from tests.unit.test_mapping import SINE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.mark.ray
def test_run_search_takes_a_dict_and_keeps_its_job_copy_for_the_report(
    local_ray: None, tmp_path: Path
) -> None:
    from gdsearch.report import build

    summary = gdsearch.run_search(SINE, tmp_path, show_progress=False)
    assert summary.ran == summary.total == 10
    copy = tmp_path / "sine-dict" / "job.toml"
    assert tomllib.loads(copy.read_text(encoding="utf-8")) == SINE
    results = gdsearch.load_results(summary.path)
    loaded = results.job_and_data()  # what the report reads the job from
    assert loaded is not None
    assert sorted(t.trial_id for t in loaded[0].trials()) == sorted(results.trials["trial_id"])
    page = build(results, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "The linear model" in page  # drawn from the job copy's data
    again = gdsearch.run_search(SINE, tmp_path, show_progress=False)
    assert (again.ran, again.skipped) == (0, 10)
