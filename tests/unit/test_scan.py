"""A result set read part by part gives the numbers of one read whole.

The reference below is ``trial_metrics`` as it was when it read the whole history into one
(trials, epochs + 1) array; analysis now takes what a trial's own history says of it from the
trials table and reads histories block by block, and must agree with it on W1, on the shipped
jobs and on result sets stored before the trials table had those columns.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch import analysis, cli
from gdsearch.analysis.trajectory import TRAJECTORY_COLUMNS
from gdsearch.report import build, figure_curves
from gdsearch.results.loading import open_results
from gdsearch.results.resultset import Results, ResultSet
from gdsearch.stability.edge import edge_metrics
from tests.conftest import REPO

LEGACY = REPO / "tests" / "data" / "legacy" / "results"
JOBS = [
    "moons_lr_init",
    "seed_sine",
    "sine_bracket",
    "sine_momentum",
    "iris_arch",
    "moons_halving",
    "edge_of_stability",
]


def reference_trial_metrics(
    results: Results, tolerance: float = analysis.DEFAULT_TOLERANCE, target: float | None = None
) -> pd.DataFrame:
    """``trial_metrics`` as it was, from the whole history in memory."""
    trials = results.trials.copy()
    wide = results.history.pivot(index="trial_id", columns="epoch", values="sse")
    sse = wide.reindex(index=trials["trial_id"]).to_numpy(dtype=np.float64)
    lengths = np.sum(~np.isnan(sse), axis=1)
    group = [c for c in analysis.GROUP if c in trials.columns]
    lowest = np.nanmin(np.where(np.isnan(sse), np.inf, sse), axis=1)
    trials["group_best"] = (
        pd.Series(lowest, index=trials.index)
        .groupby([trials[c] for c in group], dropna=False)
        .transform("min")
    )
    threshold = trials["group_best"].to_numpy() * (1.0 + tolerance)

    def first_at_or_below(limit: np.ndarray) -> np.ndarray:
        hit = sse <= limit[:, None]
        return np.where(hit.any(axis=1), np.argmax(hit, axis=1).astype(np.float64), np.nan)

    trials["epochs_to_tolerance"] = first_at_or_below(threshold)
    if target is not None:
        trials["epochs_to_target"] = first_at_or_below(np.full(len(trials), target))
    epochs = np.arange(sse.shape[1])
    steps = np.maximum(1, np.ceil(analysis.LATE_FRACTION * (lengths - 1))).astype(int)
    late = (epochs[None, 1:] >= (lengths - steps)[:, None]) & (epochs[None, 1:] < lengths[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sse[:, 1:] / sse[:, :-1]
    ratio = np.where(late, ratio, np.nan)
    trials["contraction"] = np.nanmedian(np.where(late.any(axis=1)[:, None], ratio, 1.0), axis=1)
    rises = np.sum(late & (ratio > 1.0), axis=1) / np.maximum(late.sum(axis=1), 1)
    first_late = sse[np.arange(len(sse)), np.clip(lengths - 1 - steps, 0, None)]
    final = trials["final_sse"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (first_late - final) / first_late
    reached = final <= threshold
    edge = pd.DataFrame({"catapult": False, "edge_of_stability": False}, index=trials.index)
    if len(results.sharpness):
        edge = edge_metrics(trials, results.sharpness, sse)
        trials = trials.join(edge)
    trials["convergence"] = np.select(
        [
            (trials["status"] == "failed").to_numpy(),
            (trials["status"] == "diverged").to_numpy(),
            (trials["status"] == "pruned").to_numpy(),
            edge["catapult"].to_numpy(),
            edge["edge_of_stability"].to_numpy(),
            reached,
            rises >= analysis.OSCILLATION_SHARE,
            ~(gain >= analysis.PLATEAU_GAIN),
        ],
        [
            "failed",
            "diverged",
            "pruned",
            "catapult",
            "edge_of_stability",
            "converged",
            "oscillating",
            "plateaued",
        ],
        default="slow",
    )
    return trials


def reference_curves(results: Results) -> pd.DataFrame:
    """The report's SSE curves as they were: the median over seeds per group, lr and epoch."""
    merged = results.history.merge(results.trials, on="trial_id")
    group = [c for c in analysis.GROUP if c in merged.columns]
    return (
        merged.groupby([*group, "lr", "epoch"], dropna=False)["sse"]
        .median()
        .rename("median_sse")
        .reset_index()
    )


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """W1 and the shipped jobs, run in this process; and the result sets of gdsearch 0.1."""
    root = tmp_path_factory.mktemp("results")
    paths = {}
    for job in JOBS:
        spec = gdsearch.load_job(REPO / "jobs" / f"{job}.toml")
        gdsearch.run_search(spec, root, show_progress=False, executor="local")
        paths[job] = root / spec.name
    for legacy in LEGACY.iterdir():
        shutil.copytree(legacy, root / legacy.name)
        paths[legacy.name] = root / legacy.name
    return paths


def _same(new: pd.DataFrame, old: pd.DataFrame) -> None:
    """Every column the old frame computed has the same values in the new one, row for row
    (the trajectory columns but ``contraction`` are new: the reference's are the stored ones)."""
    columns = [c for c in old.columns if c not in TRAJECTORY_COLUMNS[:2] + TRAJECTORY_COLUMNS[3:]]
    new = new.sort_values("trial_id", ignore_index=True)[columns]
    old = old.sort_values("trial_id", ignore_index=True)[columns]
    pd.testing.assert_frame_equal(new, old, check_dtype=False, rtol=1e-12)


@pytest.mark.parametrize("name", [*JOBS, "legacy-halving", "legacy-bracket"])
def test_trial_metrics_and_convergence_table_equal_the_whole_history_ones(
    stored: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = gdsearch.load_results(stored[name])
    opened = open_results(stored[name])
    old = reference_trial_metrics(loaded, target=1.0)
    for results in (loaded, opened):
        _same(analysis.trial_metrics(results, target=1.0), old)
    new_table = analysis.convergence_table(opened)
    monkeypatch.setattr(analysis, "trial_metrics", reference_trial_metrics)
    old_table = analysis.convergence_table(loaded)
    pd.testing.assert_frame_equal(new_table, old_table, check_dtype=False, rtol=1e-12)


def test_legacy_trials_lack_the_trajectory_columns_and_get_them_from_their_history(
    stored: dict[str, Path],
) -> None:
    opened = open_results(stored["legacy-halving"])
    assert opened.trials["rise_share"].isna().all()
    metrics = analysis.trial_metrics(opened)
    assert metrics["rise_share"].notna().all() and metrics["contraction"].notna().all()


def test_the_worker_stores_what_each_history_says(stored: dict[str, Path]) -> None:
    results = gdsearch.load_results(stored["moons_lr_init"])
    trials = results.trials.set_index("trial_id")
    by_trial = results.history.groupby("trial_id")["sse"]
    assert (trials["final_epoch"] == by_trial.size() - 1).all()
    assert (
        trials["min_epoch"] == results.history.loc[by_trial.idxmin(), "epoch"].to_numpy()
    ).all()
    assert trials["rise_share"].between(0, 1).all()


def test_an_opened_result_set_has_the_loaded_trials_and_reads_no_history_to_say_so(
    stored: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = gdsearch.load_results(stored["moons_halving"])
    rows = len(loaded.history)

    def refuse(self: ResultSet) -> pd.DataFrame:
        raise AssertionError("the whole history was read")

    monkeypatch.setattr(ResultSet, "history", property(refuse))
    opened = open_results(stored["moons_halving"])
    pd.testing.assert_frame_equal(opened.trials, loaded.trials)
    analysis.convergence_table(opened)
    blocks = list(opened.history_blocks())
    assert sum(int(np.sum(~np.isnan(sse))) for _, sse in blocks) == rows


@pytest.mark.parametrize("name", [*JOBS, "legacy-halving"])
def test_sse_curves_read_part_by_part_equal_the_group_by_of_the_whole_history(
    stored: dict[str, Path], name: str
) -> None:
    loaded = gdsearch.load_results(stored[name])
    old = reference_curves(loaded)
    for results, rows in ((loaded, 1 << 24), (open_results(stored[name]), 3000)):
        new = analysis.sse_curves(results, rows=rows)  # 3000: a batch of a curve or two
        pd.testing.assert_frame_equal(new[old.columns], old, check_dtype=False, rtol=1e-12)
    by = [*[c for c in analysis.GROUP if c in loaded.trials.columns], "lr", "epoch"]
    merged = loaded.history.merge(loaded.trials, on="trial_id").groupby(by, dropna=False)["sse"]
    quartiles = analysis.sse_curves(loaded)
    np.testing.assert_allclose(quartiles["q25_sse"], merged.quantile(0.25), rtol=1e-12)
    np.testing.assert_allclose(quartiles["q75_sse"], merged.quantile(0.75), rtol=1e-12)


def _drawn(figure: Any) -> list[tuple[str, np.ndarray]]:
    """Each panel's title and the SSE values of each line drawn in it, in drawing order."""
    return [
        (ax.get_title(), np.asarray(line.get_ydata(), dtype=np.float64))
        for ax in figure.axes
        for line in ax.get_lines()
    ]


def test_w1_curves_figure_draws_the_medians_of_the_whole_history(stored: dict[str, Path]) -> None:
    loaded = gdsearch.load_results(stored["moons_lr_init"])
    opened = _drawn(figure_curves(open_results(stored["moons_lr_init"])))
    whole = _drawn(figure_curves(loaded))
    assert len(opened) == len(whole) == loaded.trials.groupby(["init", "lr"]).ngroups
    for (title, values), (same_title, same_values) in zip(opened, whole, strict=True):
        assert title == same_title
        np.testing.assert_array_equal(values, same_values)
    merged = loaded.history.merge(loaded.trials, on="trial_id")
    expected = merged.groupby(["init", "lr", "epoch"])["sse"].median()
    drawn = np.sort(np.concatenate([v[np.isfinite(v)] for _, v in opened]))
    np.testing.assert_allclose(drawn, np.sort(expected.to_numpy()), rtol=1e-12)


@pytest.mark.parametrize(
    "name", ["moons_lr_init", "seed_sine", "edge_of_stability", "legacy-bracket"]
)
def test_report_show_and_compare_never_read_the_whole_history(
    stored: dict[str, Path], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report of an opened result set is the report of the loaded one, byte for byte (the
    legacy set, a linear model, without the trajectory columns: its lengths and late phases
    come from its history, part by part)."""
    whole = build(gdsearch.load_results(stored[name]), tmp_path / "loaded.html")

    def refuse(self: ResultSet) -> pd.DataFrame:
        raise AssertionError("the whole history was read")

    monkeypatch.setattr(ResultSet, "history", property(refuse))
    report = tmp_path / "opened.html"
    assert cli.main(["report", str(stored[name]), "-o", str(report)]) == 0
    assert report.read_bytes() == whole.read_bytes()
    assert cli.main(["show", str(stored[name])]) == 0
    other = str(stored["sine_momentum"])
    assert cli.main(["compare", str(stored[name]), other, "-o", str(tmp_path / "c.html")]) == 0
