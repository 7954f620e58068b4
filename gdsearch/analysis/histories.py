"""Histories read block by block, and what is computed across a group's trials from them: the
SSE per epoch over seeds, for each group and learning rate.

A result set opened by ``gdsearch.results.scan.open_results`` hands its history out one part at
a time (``history_blocks``); one loaded whole (``gdsearch.load_results``, or a
:class:`Results` built by hand) is one block. Either way a block is a dense (trials, epochs + 1)
array, so the code below is the same and never needs more than one block, or one batch of
groups, in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import numpy as np
import pandas as pd

from gdsearch.analysis.comparison import GROUP

HistoryBlock = tuple[np.ndarray, np.ndarray]
"""trial_ids (n,) and their SSE (n, epochs + 1), NaN past each trial's last epoch."""
CURVE_ROWS = 1 << 24
"""Curves hold about this many history values (128 MiB of float64) of a batch of groups and
learning rates at a time; a result set with more is read in several passes over its parts."""


class Results(Protocol):
    """What analysis reads of a result set (``gdsearch.load_results`` gives one): the trials
    table and the history table."""

    @property
    def trials(self) -> pd.DataFrame: ...

    @property
    def history(self) -> pd.DataFrame: ...


def history_blocks(results: Results, trial_ids: Iterable[str]) -> Iterator[HistoryBlock]:
    """The histories of these trials as ``(trial_ids, sse)`` blocks, sse (trials, epochs + 1)
    NaN past each trial's end: part by part where the result set reads its history that way
    (it has a ``history_blocks`` method), else one block of the history table."""
    reader = getattr(results, "history_blocks", None)
    if reader is not None:
        yield from reader(trial_ids)
        return
    history = results.history
    history = history[history["trial_id"].isin(list(trial_ids))]
    if history.empty:
        return
    wide = history.pivot(index="trial_id", columns="epoch", values="sse")
    wide = wide.reindex(columns=range(int(history["epoch"].max()) + 1))
    yield wide.index.to_numpy(dtype=object), wide.to_numpy(dtype=np.float64)


def history_lengths(results: Results, trials: pd.DataFrame) -> pd.Series:
    """How many epochs of history each of these trials holds, by trial_id: from the trials
    table's ``final_epoch`` where stored, else counted from the history."""
    known = trials.get("final_epoch", pd.Series(np.nan, index=trials.index))
    lengths = pd.Series(known.to_numpy(dtype=np.float64) + 1, index=trials["trial_id"].to_numpy())
    missing = lengths.index[lengths.isna()]
    if len(missing):
        for ids, sse in history_blocks(results, missing):
            lengths[ids] = np.sum(~np.isnan(sse), axis=1)
    return lengths.dropna().astype(np.int64)


def sse_curves(
    results: Results, trials: pd.DataFrame | None = None, rows: int = CURVE_ROWS
) -> pd.DataFrame:
    """The SSE per epoch over seeds, for each group and learning rate: median and quartiles.

    At each epoch the statistics are over the trials whose history reaches it (a diverged or
    pruned trial stops counting where its history ends), as a group-by of the history table
    on group, lr and epoch gives them; quartiles interpolate linearly, as pandas' do.

    Args:
        results: a loaded or opened result set.
        trials: the trials whose curves to compute (default: all of the result set's).
        rows: history values held at a time (see :data:`CURVE_ROWS`).

    Returns:
        One row per group, lr and epoch reached: the group's columns, ``lr``, ``epoch``,
        ``trials`` (how many reach it), ``median_sse``, ``q25_sse`` and ``q75_sse``; in the
        order of a sorted group-by.
    """
    trials = results.trials if trials is None else trials
    keys = [*[c for c in GROUP if c in trials.columns], "lr"]
    columns = [*keys, "epoch", "trials", "median_sse", "q25_sse", "q75_sse"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    by_key = trials.groupby(keys, dropna=False, sort=True)
    code = by_key.ngroup().to_numpy()  # (trials,) which curve each trial is in
    slot = by_key.cumcount().to_numpy()  # (trials,) its row in that curve's array
    length = history_bound(trials)  # (trials,) an upper bound of its history's length
    per_key = pd.DataFrame({"code": code, "length": length}).groupby("code")["length"]
    width, size = per_key.max().to_numpy(), per_key.sum().to_numpy()
    frames = []
    for batch in _batches(size, rows):
        chosen = np.isin(code, batch)
        ids = trials["trial_id"].to_numpy()[chosen]
        place = dict(zip(ids, zip(code[chosen], slot[chosen], strict=True), strict=True))
        counts = np.bincount(code[chosen], minlength=len(width))
        arrays = {k: np.full((counts[k], width[k]), np.nan) for k in batch}  # (seeds, epochs + 1)
        for block_ids, sse in history_blocks(results, ids):
            for trial_id, values in zip(block_ids, sse, strict=True):
                k, s = place[trial_id]
                span = min(len(values), width[k])
                arrays[k][s, :span] = values[:span]
        frames += [_curve(k, arrays.pop(k)) for k in batch]
    curves = pd.concat(frames, ignore_index=True)
    heads = by_key.size().reset_index()[keys]
    return curves.join(heads, on="code")[columns]


def history_bound(trials: pd.DataFrame) -> np.ndarray:
    """Per trial, its history's length: from ``final_epoch`` where stored, else at most its
    ``epochs`` + 1."""
    bound = trials["epochs"].to_numpy(dtype=np.float64) + 1
    if "final_epoch" in trials.columns:
        bound = np.where(trials["final_epoch"].notna(), trials["final_epoch"] + 1, bound)
    return np.maximum(bound, 1).astype(np.int64)


def _batches(size: np.ndarray, rows: int) -> Iterator[list[int]]:
    """Consecutive curves whose histories hold about ``rows`` values together (one at least)."""
    batch: list[int] = []
    held = 0
    for k, n in enumerate(size):
        if batch and held + n > rows:
            yield batch
            batch, held = [], 0
        batch.append(k)
        held += int(n)
    if batch:
        yield batch


def _curve(code: int, sse: np.ndarray) -> pd.DataFrame:
    """One curve's statistics per epoch, over the rows of ``sse`` (seeds, epochs + 1) that
    reach it."""
    reached = ~np.isnan(sse)
    epochs = np.flatnonzero(reached.any(axis=0))
    ordered = np.sort(sse[:, epochs], axis=0)  # (seeds, epochs reached), NaN last
    n = reached[:, epochs].sum(axis=0)  # (epochs reached,)
    q25, median, q75 = (_quantile(ordered, n, q) for q in (0.25, 0.5, 0.75))
    return pd.DataFrame(
        {
            "code": code,
            "epoch": epochs,
            "trials": n,
            "median_sse": median,
            "q25_sse": q25,
            "q75_sse": q75,
        }
    )


def _quantile(ordered: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Per column, the q-quantile of its first n values (sorted), interpolated linearly between
    the values around position q·(n − 1), as numpy's and pandas' default is (numpy's
    nanquantile loops over columns in Python)."""
    position = q * (n - 1)  # (columns,)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    low = np.take_along_axis(ordered, below[None, :], axis=0)[0]
    high = np.take_along_axis(ordered, above[None, :], axis=0)[0]
    return low + (high - low) * (position - below)
