"""Ties: values within a relative tolerance of the lowest are tied, and said to be."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gdsearch import analysis
from gdsearch.analysis.ranking import best_rates, mark_ties, relative_excess, tied_with_lowest
from gdsearch.results.resultset import Results

SINE_FINAL = 4.310834707513  # ten rates of the seed job end here; 0.001 ends at ...548


def test_values_within_the_tolerance_of_the_lowest_tie_and_nan_never_does() -> None:
    values = [SINE_FINAL, 4.310834707548, 4.3109, np.nan, np.inf]
    assert tied_with_lowest(values).tolist() == [True, True, False, False, False]
    assert tied_with_lowest(values, tolerance=0).tolist() == [True, False, False, False, False]
    assert tied_with_lowest(values, tolerance=1e-4).tolist() == [True, True, True, False, False]
    assert not tied_with_lowest([np.nan, np.nan]).any()
    assert tied_with_lowest([0.0, 1e-300, 0.0]).tolist() == [True, False, True]
    assert tied_with_lowest([-2.0, -2.0 + 1e-7, -1.0]).tolist() == [True, True, False]


def test_relative_excess_is_the_distance_above_the_lowest_relative_to_it() -> None:
    np.testing.assert_allclose(relative_excess([4.0, 5.0, 8.0], 4.0), [0.0, 0.25, 1.0])
    assert relative_excess([0.0, 1.0], 0.0).tolist() == [0.0, math.inf]


def test_best_rates_name_a_clear_winner_and_only_the_tie_of_a_tie() -> None:
    candidates = pd.DataFrame(
        {
            "group": ["a", "a", "a", "b", "b", "b", "c"],
            "lr": [0.01, 0.1, 1.0, 0.01, 0.1, 1.0, 0.1],
            "final_sse": [5.0, 2.0, np.nan, 3.0, 3.0 * (1 + 1e-9), 4.5, np.nan],
        }
    )
    best = best_rates(candidates, ["group"], "final_sse").set_index("group")
    assert best.loc["a", "lr"] == 0.1 and not best.loc["a", "tie"]
    assert best.loc["a", "best_lrs"] == (0.1,) and best.loc["a", "margin"] == 1.5
    assert math.isnan(best.loc["b", "lr"]) and best.loc["b", "tie"]
    assert best.loc["b", "best_lrs"] == (0.01, 0.1)
    assert best.loc["b", "final_sse"] == 3.0 and best.loc["b", "margin"] == 0.5
    assert math.isnan(best.loc["c", "lr"]) and best.loc["c", "best_lrs"] == ()
    assert math.isnan(best.loc["c", "margin"]) and not best.loc["c", "tie"]


def test_marks_are_per_group_and_keep_groups_with_missing_keys() -> None:
    values = pd.Series([1.0, 1.0, 2.0, 7.0, 3.0])
    scale = pd.Series([np.nan, np.nan, np.nan, 1.0, 1.0])
    assert mark_ties(values, [scale]).tolist() == [True, True, False, False, True]


def _one_group(finals: dict[float, float]) -> Results:
    trials = pd.DataFrame(
        [
            {
                "trial_id": f"t{lr}",
                "lr": lr,
                "init": "xavier",
                "hidden": "4",
                "activation": "tanh",
                "init_scale": np.nan,
                "batch_size": 0,
                "seed": 0,
                "epochs": 2,
                "status": "ok",
                "final_sse": final,
                "min_sse": final,
            }
            for lr, final in finals.items()
        ]
    )
    history = pd.concat(
        pd.DataFrame({"trial_id": f"t{lr}", "epoch": [0, 1, 2], "sse": [9.0, 6.0, final]})
        for lr, final in finals.items()
    )
    return Results(trials, history.reset_index(drop=True), {}, "")


def test_the_convergence_table_marks_every_rate_of_a_tie_best() -> None:
    table = analysis.convergence_table(
        _one_group({0.01: 4.5, 0.1: SINE_FINAL, 0.3: SINE_FINAL * (1 + 1e-11)})
    ).set_index("lr")
    assert table["best"].to_dict() == {0.01: False, 0.1: True, 0.3: True}
