"""Result sets stored by gdsearch 0.1.0 resume without training again, and trials added to them
are flagged as a mix of numerics (the pinned ids and digests: tests/unit/test_pins.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import gdsearch
from gdsearch.mlp.numerics import machine_label
from gdsearch.report.document import build
from gdsearch.results.manifest import UNRECORDED
from tests.conftest import REPO

LEGACY = REPO / "tests" / "data" / "legacy"


@pytest.mark.ray
@pytest.mark.parametrize("name", ["legacy-halving", "legacy-bracket"])
def test_a_result_set_of_version_0_1_resumes_without_training_again(
    local_ray: None, name: str, tmp_path: Path
) -> None:
    """Stored by gdsearch 0.1.0 (halving with patience; bracket rounds): nothing to train."""
    shutil.copytree(LEGACY / "results" / name, tmp_path / name)
    before = gdsearch.load_results(tmp_path / name)
    job = LEGACY / "jobs" / f"{name.replace('-', '_')}.toml"
    summary = gdsearch.run_search(job, tmp_path, show_progress=False)
    assert (summary.ran, summary.skipped) == (0, summary.total) and summary.total > 0
    after = gdsearch.load_results(tmp_path / name)
    pd.testing.assert_frame_equal(before.trials, after.trials)
    pd.testing.assert_frame_equal(before.history, after.history)
    # Stored before numerics were recorded: unrecorded, not compared, and not a mix by itself.
    assert after.trials["numerics"].isna().all()
    assert after.manifest["numerics"] == {UNRECORDED: summary.total}


@pytest.mark.ray
def test_trials_added_to_a_result_set_of_version_0_1_are_flagged_as_a_mix_of_numerics(
    local_ray: None, tmp_path: Path
) -> None:
    """The 0.1.0 trials were computed by BLAS; new ones by the portable path: the set resumes,
    and its report says that it now mixes them."""
    shutil.copytree(LEGACY / "results" / "legacy-halving", tmp_path / "legacy-halving")
    job = tmp_path / "grown.toml"
    job.write_text(
        (LEGACY / "jobs" / "legacy_halving.toml")
        .read_text()
        .replace('init = ["xavier", "normal"]', 'init = ["xavier", "normal", "he"]')
    )
    summary = gdsearch.run_search(job, tmp_path, show_progress=False)
    assert summary.ran == 8
    after = gdsearch.load_results(tmp_path / "legacy-halving")
    assert after.manifest["numerics"] == {UNRECORDED: 16, machine_label("portable"): 8}
    report = build(after, tmp_path / "report.md", fmt="md").read_text()
    assert "**Warning:** this result set mixes numerics" in report
