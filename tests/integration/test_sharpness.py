"""Sharpness through Ray: stored, resumed, repaired and loaded with the history's guarantees
(the measurement itself: tests/unit/test_sharpness.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch import mlp
from gdsearch.job.spec import load_job


@pytest.mark.ray
def test_sharpness_through_ray_is_stored_resumed_repaired_and_loaded(
    local_ray: None, small_job: Path, tmp_path: Path
) -> None:
    job = tmp_path / "sharp.toml"
    job.write_text(
        small_job.read_text().replace("epochs = 60", "epochs = 60\nsharpness_every = 20")
    )
    spec = load_job(job)
    summary = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    results = gdsearch.load_results(summary.path)
    sharpness = results.sharpness
    assert list(sharpness.columns) == ["trial_id", "epoch", "sharpness"]
    assert sharpness["epoch"].dtype == np.int32 and sharpness["sharpness"].dtype == np.float64
    counts = sharpness.groupby("trial_id").size()
    ok = results.trials.loc[results.trials["status"] == "ok", "trial_id"]
    assert (counts.loc[ok] == 4).all()  # epochs 0, 20, 40, 60
    assert set(sharpness["epoch"]) <= {0, 20, 40, 60}
    pd.testing.assert_frame_equal(  # plain pandas reads it too
        pd.read_parquet(Path(summary.path) / "sharpness").sort_values(
            ["trial_id", "epoch"], ignore_index=True
        ),
        sharpness,
        check_dtype=False,
    )

    # The same trial trained directly measures the same values.
    X, Y = spec.load_data()
    trial = next(t for t in spec.trials() if t.trial_id in set(ok))
    direct = mlp.train_population(
        mlp.stack_params([trial.initial_params(X.shape[1], Y.shape[1])]),
        X,
        Y,
        np.array([trial.lr]),
        trial.train,
        trial.activation,
    )
    stored = sharpness[sharpness["trial_id"] == trial.trial_id]["sharpness"].to_numpy()
    np.testing.assert_array_equal(stored, direct.sharpness[0])

    # Resume: half the parts gone, the next run trains them again, and loads the same.
    root = Path(summary.path)
    for name in sorted(p.name for p in (root / "trials").glob("part-*.parquet"))[::2]:
        for kind in ("trials", "history", "sharpness"):
            (root / kind / name).unlink(missing_ok=True)
    again = gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    assert 0 < again.ran < again.total
    resumed = gdsearch.load_results(summary.path)
    pd.testing.assert_frame_equal(resumed.sharpness, sharpness)

    # A damaged sharpness part: repair drops it with its partners, a run trains them again.
    part = sorted((root / "sharpness").glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])
    report = gdsearch.repair_results(summary.path)
    assert {Path(d.path).parent.name for d in report.dropped} == {"trials", "history", "sharpness"}
    gdsearch.run_search(job, tmp_path / "results", show_progress=False)
    pd.testing.assert_frame_equal(gdsearch.load_results(summary.path).sharpness, sharpness)

    # A result set with sharpness does not take a run of the job without it.
    plain = tmp_path / "plain.toml"
    plain.write_text(job.read_text().replace("sharpness_every = 20", ""))
    with pytest.raises(gdsearch.GdsearchError, match="sharpness_every"):
        gdsearch.run_search(plain, tmp_path / "results", show_progress=False)
