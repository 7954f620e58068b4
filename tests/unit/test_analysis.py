"""Convergence metrics on synthetic histories whose answers are known, and on real training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gdsearch import analysis
from gdsearch.job.spec import parse_job
from gdsearch.results.resultset import Results
from gdsearch.search.unit import train_unit

EPOCHS = 200


def _results(histories: dict[str, tuple[float, np.ndarray, str]]) -> Results:
    """A result set of one group: trial_id → (lr, history, status)."""
    trials, rows = [], []
    for trial_id, (lr, history, status) in histories.items():
        trials.append(
            {
                "trial_id": trial_id,
                "lr": lr,
                "init": "xavier",
                "hidden": "4",
                "activation": "tanh",
                "init_scale": np.nan,
                "batch_size": 0,
                "seed": 0,
                "epochs": EPOCHS,
                "status": status,
                "final_sse": history[-1],
                "min_sse": history.min(),
            }
        )
        rows.append(
            pd.DataFrame({"trial_id": trial_id, "epoch": np.arange(len(history)), "sse": history})
        )
    return Results(pd.DataFrame(trials), pd.concat(rows, ignore_index=True), {}, "")


def _synthetic() -> Results:
    t = np.arange(EPOCHS + 1, dtype=np.float64)
    return _results(
        {
            "fast": (0.1, 10.0 * 0.9**t + 1.0, "ok"),  # reaches the floor, 1.0
            "slow": (0.01, 10.0 * 0.995**t + 1.0, "ok"),  # still falling at the end
            "flat": (0.001, np.full(EPOCHS + 1, 5.0), "ok"),  # stuck well above the best
            "wobble": (0.05, 3.0 + 0.5 * (-1.0) ** t, "ok"),  # up, down, up ...
            "blown": (1.0, 10.0 * 3.0 ** np.arange(12.0), "diverged"),
        }
    )


def test_every_class_is_recognised_on_histories_with_known_answers() -> None:
    metrics = analysis.trial_metrics(_synthetic()).set_index("trial_id")
    assert metrics["convergence"].to_dict() == {
        "fast": "converged",
        "slow": "slow",
        "flat": "plateaued",
        "wobble": "oscillating",
        "blown": "diverged",
    }


def test_epochs_to_tolerance_and_target_are_first_crossings() -> None:
    metrics = analysis.trial_metrics(_synthetic(), tolerance=0.05, target=2.0).set_index(
        "trial_id"
    )
    best = 1.0 + 10.0 * 0.9**EPOCHS
    assert metrics.loc["fast", "group_best"] == pytest.approx(best)
    # 10·0.9^t + 1 <= 1.05·best first holds at t = ceil(log(0.05·best/10) / log 0.9)
    expected = int(np.ceil(np.log((1.05 * best - 1.0) / 10.0) / np.log(0.9)))
    assert metrics.loc["fast", "epochs_to_tolerance"] == expected
    assert np.isnan(metrics.loc["flat", "epochs_to_tolerance"])
    assert metrics.loc["fast", "epochs_to_target"] == int(np.ceil(np.log(0.1) / np.log(0.9)))
    assert metrics.loc["slow", "contraction"] == pytest.approx(
        (10 * 0.995 ** (EPOCHS - 1) + 1) / (10 * 0.995 ** (EPOCHS - 2) + 1), rel=1e-3
    )


def test_convergence_table_marks_the_best_lr_that_never_diverged() -> None:
    table = analysis.convergence_table(_synthetic()).set_index("lr")
    assert table["best"].sum() == 1 and bool(table.loc[0.1, "best"])
    assert table.loc[1.0, "diverged_fraction"] == 1.0
    assert np.isnan(table.loc[1.0, "median_final_sse"])


def test_critical_lr_brackets_the_divergence_edge() -> None:
    bracket = analysis.critical_lr(_synthetic())
    assert len(bracket) == 1
    assert (bracket.loc[0, "lr_converged"], bracket.loc[0, "lr_diverged"]) == (0.1, 1.0)


SINE = """
[job]
name = "sine-bracket"
[data]
dataset = "sine"
[train]
epochs = 3000
[search]
lr = { log = [0.01, 0.1], num = 9 }
init = ["normal"]
"""


def test_critical_lr_on_the_sine_fit_holds_the_linear_stability_limit() -> None:
    spec = parse_job(SINE)
    X, Y = spec.load_data()
    trials_table, history_table, _ = train_unit(X, Y, spec.trials())
    results = Results(trials_table.to_pandas(), history_table.to_pandas(), {}, "")
    A = np.column_stack([X[:, 0], np.ones(len(X))])
    lr_star = 2.0 / np.linalg.eigvalsh(2.0 * A.T @ A / len(X)).max()
    bracket = analysis.critical_lr(results).iloc[0]
    assert bracket["lr_converged"] < lr_star < bracket["lr_diverged"]
    step = (0.1 / 0.01) ** (1 / 8)
    assert bracket["lr_diverged"] / bracket["lr_converged"] == pytest.approx(step)


def test_bracket_is_the_smallest_diverged_lr_and_the_largest_converged_below_it() -> None:
    # Non-monotone: 0.5 converged above a diverged 0.3; the bracket stays below 0.3.
    flags = {0.01: False, 0.1: False, 0.2: False, 0.3: True, 0.5: False, 1.0: True}
    assert analysis.bracket(flags) == (0.2, 0.3)
    lo, hi = analysis.bracket({0.01: False, 0.1: False})
    assert lo == 0.1 and np.isnan(hi)
    lo, hi = analysis.bracket({0.01: True, 0.1: True})
    assert np.isnan(lo) and hi == 0.01


def test_refine_splits_the_log_width_evenly() -> None:
    inner = analysis.refine(0.01, 0.16, 3)
    np.testing.assert_allclose(inner, [0.02, 0.04, 0.08])
    assert analysis.refine(1.0, 4.0, 1) == pytest.approx([2.0])


def test_next_round_places_every_seed_inside_each_wide_bracket_only() -> None:
    from gdsearch.search.bracket import brackets, next_round

    spec = parse_job(
        """
[job]
name = "b"
[data]
dataset = "sine"
[search]
mode = "bracket"
bracket_width = 0.5
bracket_points = 1
lr = [0.01, 0.04, 0.16]
init = ["xavier", "he"]
hidden = [[2]]
seed = [0, 1]
"""
    )
    trials = spec.trials()
    # xavier: 0.16 diverged for seed 1 only -> bracket (0.04, 0.16), 3x wide; he: nothing
    # diverged -> one-sided, nothing to refine.
    statuses = {
        t.trial_id: "diverged" if (t.init, t.lr, t.seed) == ("xavier", 0.16, 1) else "ok"
        for t in trials
    }
    new = next_round(spec, trials, statuses)
    assert sorted((t.init, t.seed) for t in new) == [("xavier", 0), ("xavier", 1)]
    assert [t.lr for t in new] == pytest.approx([0.08, 0.08])
    assert not {t.trial_id for t in new} & {t.trial_id for t in trials}
    # The new round converges at 0.08: the bracket (0.08, 0.16) is 1.0 wide, still > 0.5.
    statuses.update({t.trial_id: "ok" for t in new})
    known = trials + new
    assert [b for b in brackets(known, statuses).values() if not np.isnan(b[1])] == [
        (pytest.approx(0.08), 0.16)
    ]
    third = next_round(spec, known, statuses)
    assert [t.lr for t in third] == pytest.approx([0.08 * 2**0.5] * 2)


def test_pruned_trials_are_classed_apart_and_say_nothing_about_the_bracket() -> None:
    falling = np.geomspace(10.0, 1.0, EPOCHS + 1)
    results = _results(
        {
            "a": (0.01, falling, "ok"),
            "b": (0.1, falling[:31], "pruned"),  # stopped at a rung: might still diverge
            "c": (1.0, np.array([10.0, 1e3]), "diverged"),
        }
    )
    metrics = trial_metrics_by_id(results)
    assert metrics["b"] == "pruned"
    ((lr_converged, lr_diverged),) = analysis.critical_lr(results)[
        ["lr_converged", "lr_diverged"]
    ].to_numpy()
    assert (lr_converged, lr_diverged) == (0.01, 1.0)
    table = analysis.convergence_table(results).set_index("lr")
    assert table.loc[0.1, "pruned_fraction"] == 1.0
    assert np.isnan(table.loc[0.1, "median_final_sse"])  # its SSE is a rung's, not the end's
    assert table["best"].tolist() == [True, False, False]


def trial_metrics_by_id(results: Results) -> dict[str, str]:
    metrics = analysis.trial_metrics(results)
    return dict(zip(metrics["trial_id"], metrics["convergence"], strict=True))


def test_divergence_that_is_not_monotone_in_lr_is_said_not_bracketed() -> None:
    """0.3 diverged late while 0.5 converged: no single bracket holds the critical rate."""
    falling = np.geomspace(10.0, 1.0, EPOCHS + 1)
    results = _results(
        {
            "a": (0.1, falling, "ok"),
            "b": (0.3, falling[:150], "diverged"),
            "c": (0.5, falling, "ok"),
            "d": (2.0, falling[:5], "diverged"),
        }
    )
    row = analysis.critical_lr(results).iloc[0]
    assert (row["lr_converged"], row["lr_diverged"]) == (0.1, 0.3)
    assert not row["monotone"] and row["lr_converged_above"] == 0.5
    assert analysis.critical_lr(_synthetic())["monotone"].all()

    from gdsearch.report import summary_table

    table = analysis.convergence_table(results)
    metrics = analysis.trial_metrics(results)
    summary = summary_table(
        table, analysis.critical_lr(results), {"xavier, hidden 4, tanh": 0.2}, metrics
    )
    assert summary.loc[0, "why"].startswith("not monotone: 0.5 converged above 0.3")


def test_bracket_mode_does_not_refine_a_group_whose_divergence_is_not_monotone() -> None:
    from gdsearch.search.bracket import next_round, non_monotone

    spec = parse_job(
        """
[job]
name = "b"
[data]
dataset = "sine"
[search]
mode = "bracket"
lr = [0.01, 0.04, 0.16, 0.64]
init = ["xavier", "he"]
hidden = [[2]]
"""
    )
    trials = spec.trials()
    statuses = {
        t.trial_id: "diverged" if (t.lr == 0.64 or (t.init == "he" and t.lr == 0.04)) else "ok"
        for t in trials
    }
    flagged = non_monotone(trials, statuses)
    assert [key[0] for key in flagged] == ["he"] and list(flagged.values()) == [(0.04, 0.16)]
    new = next_round(spec, trials, statuses)
    assert new and {t.init for t in new} == {"xavier"}  # he's edges are left as they are
