"""load_results, whole and selective, on result sets written by the store's own writer from
work units trained in this process: a selection gives exactly the rows a pandas filter of the
full load gives, reads only the parts that hold selected trials, and refuses bad arguments."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import gdsearch
from gdsearch.errors import InputError, ResultsError
from gdsearch.job.spec import parse_job
from gdsearch.results.store import ResultsStore
from gdsearch.search.plan import plan_units
from gdsearch.search.unit import train_unit
from tests.conftest import SMALL_JOB

MEASURED_JOB = SMALL_JOB.replace("epochs = 60", "epochs = 60\nsharpness_every = 7")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 32 trials of SMALL_JOB, sharpness measured, in 16 units of 2 trials: 16 parts."""
    spec = parse_job(MEASURED_JOB)
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path_factory.mktemp("loading") / spec.name)
    store.prepare(spec.source)
    for unit in plan_units(spec.trials(), 2):
        store.write_part(*train_unit(X, Y, unit))
    assert len(store.parts("history")) == 16
    return Path(store.location)


@pytest.fixture(scope="module")
def everything(stored: Path) -> gdsearch.Results:
    return gdsearch.load_results(stored)


@pytest.fixture
def copied(stored: Path, tmp_path: Path) -> Path:
    """A copy of the stored result set, to damage."""
    return Path(shutil.copytree(stored, tmp_path / stored.name))


def _rows_of(table: pd.DataFrame, trial_ids: Any) -> pd.DataFrame:
    return table[table["trial_id"].isin(trial_ids)].reset_index(drop=True)


def test_the_full_load_is_pandas_reading_each_table_sorted_by_trial_id_then_epoch(
    stored: Path, everything: gdsearch.Results
) -> None:
    for kind, keys in (
        ("history", ["trial_id", "epoch"]),
        ("sharpness", ["trial_id", "epoch"]),
        ("trials", ["trial_id"]),
    ):
        plain = pd.read_parquet(stored / kind).sort_values(keys, ignore_index=True)
        pd.testing.assert_frame_equal(getattr(everything, kind), plain)
    assert set(everything.trials["status"]) == {"ok", "diverged"}
    assert len(everything.sharpness) and everything.sharpness["epoch"].max() == 56


FILTERS: dict[str, Any] = {
    "lr-range": [("lr", ">=", 0.1), ("lr", "<=", 1.0)],
    "init-and-hidden": [("init", "==", "xavier"), ("hidden", "=", "5")],
    "any-of-two": [[("lr", "<", 0.05)], [("status", "==", "diverged")]],
    "seed-in": [("seed", "in", [1])],
    "init-not-in": [("init", "not in", ["normal"])],
    "null-never-matches": [("diverged_epoch", ">", 5)],
    "implied-column": [("momentum", "==", 0.0), ("lr_schedule", "==", "constant")],
    "expression": (pc.field("lr") > 1.0) | (pc.field("init") == "normal"),
    "nothing": [("lr", ">", 1e9)],
}
PANDAS = {
    "lr-range": lambda t: (t["lr"] >= 0.1) & (t["lr"] <= 1.0),
    "init-and-hidden": lambda t: (t["init"] == "xavier") & (t["hidden"] == "5"),
    "any-of-two": lambda t: (t["lr"] < 0.05) | (t["status"] == "diverged"),
    "seed-in": lambda t: t["seed"].isin([1]),
    "init-not-in": lambda t: ~t["init"].isin(["normal"]),
    "null-never-matches": lambda t: t["diverged_epoch"] > 5,
    "implied-column": lambda t: (t["momentum"] == 0.0) & (t["lr_schedule"] == "constant"),
    "expression": lambda t: (t["lr"] > 1.0) | (t["init"] == "normal"),
    "nothing": lambda t: t["lr"] > 1e9,
}


@pytest.mark.parametrize("name", FILTERS)
def test_a_filter_gives_exactly_the_rows_a_pandas_filter_of_the_full_load_gives(
    stored: Path, everything: gdsearch.Results, name: str
) -> None:
    chosen = everything.trials[PANDAS[name](everything.trials)].reset_index(drop=True)
    if name not in ("nothing", "implied-column"):
        assert 0 < len(chosen) < len(everything.trials)  # a filter that tells trials apart
    loaded = gdsearch.load_results(stored, filters=FILTERS[name])
    # An integer column with nulls comes to pandas as float64, so diverged_epoch is int32 where
    # the trials selected all diverged, as it is in any load; the values are the same.
    pd.testing.assert_frame_equal(loaded.trials, chosen, check_dtype=False)
    for kind in ("history", "sharpness"):
        expected = _rows_of(getattr(everything, kind), chosen["trial_id"])
        pd.testing.assert_frame_equal(getattr(loaded, kind), expected)


def test_trial_ids_and_filters_together_keep_the_trials_that_satisfy_both(
    stored: Path, everything: gdsearch.Results
) -> None:
    ids = list(everything.trials["trial_id"].iloc[::5])
    loaded = gdsearch.load_results(stored, trial_ids=ids, filters=[("init", "==", "xavier")])
    chosen = everything.trials[everything.trials["trial_id"].isin(ids)]
    chosen = chosen[chosen["init"] == "xavier"].reset_index(drop=True)
    assert 0 < len(chosen) < len(ids)
    pd.testing.assert_frame_equal(loaded.trials, chosen, check_dtype=False)  # as above
    pd.testing.assert_frame_equal(loaded.history, _rows_of(everything.history, chosen.trial_id))
    alone = gdsearch.load_results(stored, trial_ids=reversed(ids))
    assert list(alone.trials["trial_id"]) == sorted(ids)


@pytest.mark.parametrize("every", [1, 2, 7, 25, 1000])
def test_every_keeps_the_epochs_on_the_stride_and_each_trials_last(
    stored: Path, everything: gdsearch.Results, every: int
) -> None:
    history = everything.history
    last = history.groupby("trial_id")["epoch"].transform("max")
    expected = history[(history["epoch"] % every == 0) | (history["epoch"] == last)]
    loaded = gdsearch.load_results(stored, every=every)
    pd.testing.assert_frame_equal(loaded.history, expected.reset_index(drop=True))
    pd.testing.assert_frame_equal(loaded.sharpness, everything.sharpness)  # not thinned
    assert (
        loaded.history.groupby("trial_id")["epoch"]
        .max()
        .equals(history.groupby("trial_id")["epoch"].max())
    )


def test_columns_name_the_history_columns_besides_trial_id_and_epoch(
    stored: Path, everything: gdsearch.Results
) -> None:
    keys = gdsearch.load_results(stored, columns=[]).history
    pd.testing.assert_frame_equal(keys, everything.history[["trial_id", "epoch"]])
    for columns in (["sse"], ["trial_id", "epoch", "sse"], ("sse", "sse")):
        loaded = gdsearch.load_results(stored, columns=columns, every=10)
        pd.testing.assert_frame_equal(
            loaded.history, gdsearch.load_results(stored, every=10).history
        )


def test_history_parts_of_trials_not_selected_are_never_read(
    copied: Path, everything: gdsearch.Results
) -> None:
    """A part that cannot be read fails every load that reads it; a load that skips it works."""
    parts = sorted(path.name for path in (copied / "trials").iterdir())
    holder = parts[5]
    held = sorted(pd.read_parquet(copied / "trials" / holder)["trial_id"])
    for name in parts:
        if name != holder:
            for kind in ("history", "sharpness"):
                (copied / kind / name).write_bytes(b"not parquet")

    with pytest.raises(ResultsError, match=f"history/{parts[0]}: not a readable Parquet part"):
        gdsearch.load_results(copied)
    one = gdsearch.load_results(copied, trial_ids=held[:1])
    pd.testing.assert_frame_equal(one.history, _rows_of(everything.history, held[:1]))
    pd.testing.assert_frame_equal(one.sharpness, _rows_of(everything.sharpness, held[:1]))
    assert len(one.history) and len(one.sharpness)
    row = everything.trials.set_index("trial_id").loc[held[0]]
    by_value = gdsearch.load_results(
        copied,
        filters=[
            ("lr", "==", row.lr),
            ("init", "==", row.init),
            ("hidden", "==", row.hidden),
            ("seed", "==", row.seed),
        ],
    )
    assert list(by_value.trials["trial_id"]) == held[:1]

    for kind in ("history", "sharpness"):
        (copied / kind / holder).write_bytes(b"not parquet")
    nothing = gdsearch.load_results(copied, filters=[("lr", ">", 1e9)])
    assert nothing.trials.empty and nothing.history.empty and nothing.sharpness.empty
    assert nothing.history.dtypes.equals(everything.history.dtypes)
    assert nothing.sharpness.dtypes.equals(everything.sharpness.dtypes)


def test_history_rows_without_a_committed_trials_row_are_left_out(
    copied: Path, everything: gdsearch.Results
) -> None:
    """A unit whose trials part was never written (its run died in between) is not stored."""
    lost = sorted((copied / "trials").iterdir())[3]
    gone = set(pd.read_parquet(lost)["trial_id"])
    lost.unlink()
    loaded = gdsearch.load_results(copied)
    kept = everything.trials[~everything.trials["trial_id"].isin(gone)]["trial_id"]
    pd.testing.assert_frame_equal(loaded.history, _rows_of(everything.history, kept))
    pd.testing.assert_frame_equal(loaded.sharpness, _rows_of(everything.sharpness, kept))


def test_a_trials_part_written_before_the_update_rule_columns_matches_their_implied_values(
    copied: Path, everything: gdsearch.Results
) -> None:
    old = sorted((copied / "trials").iterdir())[0]
    table = pq.read_table(old)
    pq.write_table(table.drop_columns(["momentum", "nesterov", "lr_schedule"]), old)
    implied = [("momentum", "==", 0), ("nesterov", "==", False), ("lr_schedule", "==", "constant")]
    loaded = gdsearch.load_results(copied, filters=implied)
    pd.testing.assert_frame_equal(loaded.trials, everything.trials)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"filters": "lr >= 0.1"}, "filters: a list of"),
    ({"filters": []}, "filters: a list of"),
    ({"filters": [("lr", ">=")]}, "filters: ('lr', '>=') is not a (column, op, value) tuple"),
    ({"filters": [("learning_rate", ">=", 0.1)]}, "column 'learning_rate' is not a trials"),
    ({"filters": [("lr", "=>", 0.1)]}, "operator '=>' is not one of"),
    ({"filters": [("lr", ">=", "big")]}, "filters: ('lr', '>=', 'big'): "),
    ({"filters": [("init", "in", "xavier")]}, "'in' takes a list of values, but got 'xavier'"),
    ({"filters": [("init", "==", ["xavier"])]}, "'==' takes one value, but got ['xavier']"),
    ({"filters": [[("lr", ">", 0)], []]}, "filters: an empty list of tuples"),
    ({"filters": pc.field("nope") > 1}, "filters: <pyarrow.compute.Expression (nope > 1)>"),
    ({"trial_ids": "0123abcd"}, "trial_ids: a list of trial_id strings, but got '0123abcd'"),
    ({"trial_ids": [12]}, "trial_ids: each must be a string, but got 12"),
    ({"trial_ids": ["0123abcd"]}, "trial_ids: not stored in "),
    ({"columns": "sse"}, "columns: a list of history column names, but got 'sse'"),
    ({"columns": ["sharpness"]}, "columns: 'sharpness' is not a history column"),
    ({"every": 0}, "every: a whole number of epochs, at least 1, but got 0"),
    ({"every": 2.5}, "every: a whole number of epochs, at least 1, but got 2.5"),
    ({"every": True}, "every: a whole number of epochs, at least 1, but got True"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD, ids=[str(a) for a, _ in BAD])
def test_a_bad_selection_is_an_input_error_naming_the_argument_and_value(
    stored: Path, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError) as info:
        gdsearch.load_results(stored, **arguments)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_bad_arguments_are_refused_before_the_location_is_read(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^every: "):
        gdsearch.load_results(tmp_path / "nowhere", every=0)
    with pytest.raises(ResultsError, match="no results here"):
        gdsearch.load_results(tmp_path / "nowhere", every=2)
