"""ordering.in_order against pandas: the rows of the selected trials, sorted by trial_id then
epoch, whether parts hold each trial as one run of ascending epochs (as the store writes them),
split over row groups, shuffled, or interleaved across parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gdsearch.results import ordering
from gdsearch.results.schema import HISTORY_SCHEMA

TRIALS = [f"{n:016x}" for n in (0x3F, 0x0A, 0xC2, 0x77, 0x15)]


def _history(trial_id: str, epochs: range) -> pd.DataFrame:
    sse = [hash((trial_id, e)) % 1000 / 7.0 for e in epochs]
    return pd.DataFrame({"trial_id": trial_id, "epoch": np.array(epochs, np.int32), "sse": sse})


def _parts(frames: list[pd.DataFrame], folder: Path, row_group_size: int = 1000) -> list[pa.Table]:
    """Each frame through a Parquet file and back, trial_id dictionary-encoded, as the store
    reads a part."""
    parts = []
    for index, frame in enumerate(frames):
        path = folder / f"part-{index}.parquet"
        table = pa.Table.from_pandas(frame, HISTORY_SCHEMA, preserve_index=False)
        pq.write_table(table, path, row_group_size=row_group_size)
        parts.append(pq.ParquetFile(path, read_dictionary=["trial_id"]).read())
    return parts


def _expected(frames: list[pd.DataFrame], ids: list[str], every: int) -> pd.DataFrame:
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["trial_id"].isin(ids)]
    rows = rows.sort_values(["trial_id", "epoch"], kind="stable", ignore_index=True)
    last = rows.groupby("trial_id")["epoch"].transform("max")
    return rows[(rows["epoch"] % every == 0) | (rows["epoch"] == last)].reset_index(drop=True)


def _ids(chosen: list[str]) -> pa.Array:
    return pa.array(sorted(chosen), pa.string())


def _stored_as_units() -> list[pd.DataFrame]:
    """Three units as the store writes them: each trial one run, trials in no sorted order."""
    lengths = {TRIALS[0]: 11, TRIALS[1]: 30, TRIALS[2]: 1, TRIALS[3]: 30, TRIALS[4]: 17}
    units = [[TRIALS[3], TRIALS[0]], [TRIALS[2]], [TRIALS[4], TRIALS[1]]]
    return [pd.concat([_history(t, range(lengths[t])) for t in unit]) for unit in units]


def _shuffled() -> list[pd.DataFrame]:
    frames = _stored_as_units()
    frames[0] = frames[0].sample(frac=1.0, random_state=np.random.RandomState(0))
    return frames


def _interleaved() -> list[pd.DataFrame]:
    """One trial's even epochs in one part and odd ones in another."""
    frames = _stored_as_units()
    frames.append(_history(TRIALS[2], range(1, 40, 2)))
    frames[1] = _history(TRIALS[2], range(0, 40, 2))
    return frames


CASES = {"units": _stored_as_units, "shuffled": _shuffled, "interleaved": _interleaved}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("row_group_size", [1000, 7])
@pytest.mark.parametrize("every", [1, 4])
@pytest.mark.parametrize("chosen", [TRIALS, TRIALS[1:4], TRIALS[2:3]])
def test_rows_come_sorted_by_trial_then_epoch_as_pandas_sorts_them(
    tmp_path: Path, case: str, row_group_size: int, every: int, chosen: list[str]
) -> None:
    frames = CASES[case]()
    parts = _parts(frames, tmp_path, row_group_size)
    got = ordering.in_order(parts, _ids(chosen), HISTORY_SCHEMA, every).to_pandas()
    pd.testing.assert_frame_equal(got, _expected(frames, chosen, every))


@pytest.mark.parametrize(
    ("case", "by_runs"), [("units", True), ("shuffled", False), ("interleaved", False)]
)
def test_parts_written_as_runs_are_ordered_by_moving_runs_and_others_row_by_row(
    tmp_path: Path, case: str, by_runs: bool
) -> None:
    batches = [b for part in _parts(CASES[case](), tmp_path, 7) for b in part.to_batches()]
    assert (ordering._runs(batches, _ids(TRIALS)) is not None) == by_runs


def test_rows_of_no_selected_trial_give_an_empty_table_of_the_schema(tmp_path: Path) -> None:
    parts = _parts(_stored_as_units(), tmp_path)
    for chosen in ([], ["ffffffffffffffff"]):
        for every in (1, 3):
            got = ordering.in_order(parts, _ids(chosen), HISTORY_SCHEMA, every)
            assert got.num_rows == 0 and got.schema.equals(HISTORY_SCHEMA)
    assert ordering.in_order([], _ids(TRIALS), HISTORY_SCHEMA).schema.equals(HISTORY_SCHEMA)


def test_a_missing_epoch_goes_last_in_its_trial_as_pandas_puts_it(tmp_path: Path) -> None:
    frame = _history(TRIALS[0], range(5)).astype({"epoch": "Int32"})
    frame.loc[1, "epoch"] = pd.NA
    table = pa.Table.from_pandas(frame, HISTORY_SCHEMA, preserve_index=False)
    pq.write_table(table, tmp_path / "part.parquet")
    part = pq.ParquetFile(tmp_path / "part.parquet", read_dictionary=["trial_id"]).read()
    got = ordering.in_order([part], _ids(TRIALS[:1]), HISTORY_SCHEMA).to_pandas()
    assert got["epoch"].tolist()[:4] == [0, 2, 3, 4] and np.isnan(got["epoch"].iloc[4])
    assert got["sse"].iloc[4] == frame["sse"].iloc[1]
