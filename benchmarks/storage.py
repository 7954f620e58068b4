"""Reading results back: `load_results` against `pandas.read_parquet` of the same files, and a
result set of many small parts before and after `gdsearch compact`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import W1, child, table


def loading(sets: dict[str, str], repeats: int) -> None:
    """load_results against pandas.read_parquet of the same history, on each result set: one
    process per result set, loads of each kind in turns, medians of ``repeats``."""
    rows = []
    for label, results in sets.items():
        r = child("load", results, str(repeats))
        base = r["median_s"]["pandas.read_parquet(history)"]
        for name, median in r["median_s"].items():
            rows.append([label, r["rows"], r["parts"], name, median * 1e3, median / base])
    table(
        f"Loading results back (one process per result set; median of {repeats} loads of each, "
        "in turns)",
        ["result set", "history rows", "parts", "load", "median ms", "× read_parquet"],
        rows,
    )
    print("\nload_results' history equals pandas' table sorted by trial_id, epoch")


def compaction(folder: Path, runs: int) -> None:
    """Reading a result set of many small parts (one per trial, as a long run of one-trial units
    or many resumes leave it) before and after `gdsearch compact`."""
    import pandas as pd
    import pyarrow.compute as pc

    import gdsearch
    from gdsearch.results.compact import compact_results
    from gdsearch.results.store import ResultsStore

    summary = gdsearch.run_search(W1, folder / "compaction", show_progress=False, executor="local")
    whole = ResultsStore(summary.path)
    trials, history = whole.read_table("trials"), whole.read_table("history")
    many = ResultsStore(folder / "many" / "w1")
    many.prepare(W1.read_text())
    many.write_manifest(whole.read_manifest())
    for trial_id in trials.column("trial_id").to_pylist():
        mine = pc.equal(trials.column("trial_id"), trial_id)
        its = pc.equal(history.column("trial_id"), trial_id)
        many.write_part(trials.filter(mine), history.filter(its))

    def timed(read: Callable[[], Any]) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            read()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    location = folder / "many" / "w1"
    rows: list[list[Any]] = []
    for when in ("256 parts, one per trial", "after gdsearch compact"):
        if when.startswith("after"):
            compact_results(location)
        loaded = timed(lambda: gdsearch.load_results(location))
        plain = timed(lambda: pd.read_parquet(location / "history"))
        rows.append([when, len(many.parts("trials")), loaded, plain])
    for row in rows:
        row.append(row[2] / rows[0][2])
    table(
        f"Reading W1 ({history.num_rows:,} history rows) from many parts and compacted "
        f"(median of {runs} reads)",
        ["result set", "parts", "load_results s", "pandas.read_parquet(history) s", "× first"],
        rows,
    )
