"""What the interactive curves chart draws, read part by part: never the whole history.

A curve of E epochs is drawn at a few hundred of them at most (:func:`epochs_to_draw`: every
early epoch, fewer later) and at its last, so the chart needs each trial's SSE at those epochs,
not its history. Up to :data:`TRIAL_LINES` trials it draws a line per trial: their histories are
read block by block and thinned as they come (:class:`Drawn`). Beyond, it draws the median over
seeds per group and learning rate, from :func:`gdsearch.analysis.histories.sse_curves` (which reads
a batch of curves at a time), kept at the drawn epochs and each curve's last. The live view
keeps each part's thinned block and takes the medians from those (:func:`medians_of`).

Whether the epoch axis starts log is read from the same pass (:func:`falls_early`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gdsearch.analysis.comparison import GROUP
from gdsearch.analysis.histories import (
    HistoryBlock,
    Results,
    history_blocks,
    history_lengths,
    sse_curves,
)

TRIAL_LINES = 200
"""Up to this many trials, the curves chart draws each trial; beyond, medians over seeds."""
CURVE_POINTS = 400
"""Points per curve at most: a long history is thinned on a log-spaced grid of epochs."""
LOG_EPOCHS_FROM = 200
"""Histories shorter than this many epochs keep a linear epoch axis."""


def epochs_to_draw(last: int, points: int = CURVE_POINTS) -> np.ndarray:
    """Epochs 0 … last, thinned to about ``points`` on a log-spaced grid (every early epoch,
    where the action is; fewer later), the last always kept."""
    if last + 1 <= points:
        return np.arange(last + 1)
    grid = np.unique(np.round(np.geomspace(1, last, points - 1)).astype(int))
    return np.unique(np.concatenate([[0], grid, [last]]))


@dataclass(frozen=True)
class Drawn:
    """Trials' histories as the chart draws them: SSE at the drawn epochs, and the last."""

    trial_ids: np.ndarray  # (trials,)
    epochs: np.ndarray  # (drawn,) ascending
    sse: np.ndarray  # (trials, drawn), NaN past a trial's last epoch
    last_epoch: np.ndarray  # (trials,)
    last_sse: np.ndarray  # (trials,)

    @classmethod
    def of(cls, block: HistoryBlock, epochs: np.ndarray) -> Drawn:
        """A history block (trial_ids, SSE (trials, epochs + 1)) kept at these epochs."""
        ids, sse = block
        width = sse.shape[1]
        last = width - 1 - np.argmax(~np.isnan(sse[:, ::-1]), axis=1)  # (trials,)
        inside = epochs[epochs < width]
        drawn = np.full((len(ids), len(epochs)), np.nan)  # (trials, drawn)
        drawn[:, : len(inside)] = sse[:, inside]
        return cls(ids, epochs, drawn, last, sse[np.arange(len(ids)), last])

    @classmethod
    def join(cls, parts: Iterable[Drawn], epochs: np.ndarray) -> Drawn:
        """One Drawn of several, all kept at ``epochs``."""
        parts = list(parts)
        assert all(np.array_equal(p.epochs, epochs) for p in parts)
        if not parts:
            none = np.empty(0)
            return cls(
                none.astype(object),
                epochs,
                np.empty((0, len(epochs))),
                none.astype(np.int64),
                none,
            )
        return cls(
            np.concatenate([p.trial_ids for p in parts]),
            epochs,
            np.concatenate([p.sse for p in parts]),
            np.concatenate([p.last_epoch for p in parts]),
            np.concatenate([p.last_sse for p in parts]),
        )

    def lines(self) -> pd.DataFrame:
        """trial_id, epoch, sse: each trial at the drawn epochs it reaches, and at its last."""
        rows, columns = np.nonzero(~np.isnan(self.sse))
        off_grid = ~np.isin(self.last_epoch, self.epochs)
        frame = pd.DataFrame(
            {
                "trial_id": np.concatenate([self.trial_ids[rows], self.trial_ids[off_grid]]),
                "epoch": np.concatenate([self.epochs[columns], self.last_epoch[off_grid]]).astype(
                    np.int32  # as the history stores it
                ),
                "sse": np.concatenate([self.sse[rows, columns], self.last_sse[off_grid]]),
            }
        )
        return frame.sort_values(["trial_id", "epoch"], ignore_index=True)


def falls_early(drawn: Drawn, last: int) -> bool:
    """Whether the action is early: in a history of ``LOG_EPOCHS_FROM`` epochs or more, the
    median SSE has done over half its fall (from epoch 0 to the trials' last SSE) by the drawn
    epoch nearest a tenth of the epochs. Such curves read better on a log epoch axis."""
    if not len(drawn.trial_ids) or last < LOG_EPOCHS_FROM or drawn.epochs[0] != 0:
        return False
    near = int(np.argmin(np.abs(drawn.epochs - last // 10)))
    start, tenth, end = (_median(v) for v in (drawn.sse[:, 0], drawn.sse[:, near], drawn.last_sse))
    return bool(np.isfinite([start, tenth, end]).all() and start - tenth > 0.5 * (start - end))


def _median(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if len(values) else np.nan


def _probe_epochs(epochs: np.ndarray, last: int) -> np.ndarray:
    """The drawn epochs :func:`falls_early` reads: 0 and the one nearest a tenth of ``last``."""
    return np.unique(epochs[[0, int(np.argmin(np.abs(epochs - last // 10)))]])


@dataclass(frozen=True)
class Curves:
    """What the curves chart draws: a line per trial (trial_id, epoch, sse) or, over
    :data:`TRIAL_LINES` trials, medians over seeds (group columns, lr, epoch, median_sse); and
    whether the epoch axis starts log."""

    per_trial: bool
    frame: pd.DataFrame
    log_epochs: bool


def read_curves(results: Results) -> Curves:
    """The curves chart's data of a loaded or opened result set, its histories read block by
    block (part by part, for an opened one)."""
    trials = results.trials
    lengths = history_lengths(results, trials)  # the trials table's final_epoch where stored
    last = int(lengths.max()) - 1 if len(lengths) else 0
    epochs = epochs_to_draw(last)
    if len(trials) <= TRIAL_LINES:
        blocks = history_blocks(results, trials["trial_id"])
        drawn = Drawn.join((Drawn.of(block, epochs) for block in blocks), epochs)
        return Curves(True, drawn.lines(), falls_early(drawn, last))
    probe = _probe_epochs(epochs, last)
    seen: list[Drawn] = []
    tapped = _Tapped(results, lambda block: seen.append(Drawn.of(block, probe)))
    curves = sse_curves(tapped, trials)
    keys = [*_group_columns(trials), "lr"]
    end = curves.groupby(keys, dropna=False, sort=False)["epoch"].transform("max")
    kept = curves[curves["epoch"].isin(epochs) | (curves["epoch"] == end)]
    frame = kept[[*keys, "epoch", "median_sse"]].astype({"epoch": np.int32})
    return Curves(False, frame, falls_early(_once(Drawn.join(seen, probe)), last))


def medians_of(drawn: Drawn, trials: pd.DataFrame) -> pd.DataFrame:
    """The median over seeds per group and lr at each drawn epoch its trials reach and at its
    last, from thinned histories: what :func:`read_curves` gives, for the live view."""
    keys = [*_group_columns(trials), "lr"]
    if not len(drawn.trial_ids):
        return pd.DataFrame(columns=[*keys, "epoch", "median_sse"])
    rows = trials.set_index("trial_id").reindex(drawn.trial_ids)[keys].reset_index(drop=True)
    by_key = rows.groupby(keys, dropna=False, sort=True)
    heads = by_key.size().reset_index()[keys]
    code = by_key.ngroup().to_numpy()  # (trials,) which curve each trial is in
    order = np.argsort(code, kind="stable")
    frames = []
    for k, members in enumerate(np.split(order, np.cumsum(np.bincount(code))[:-1])):
        sse = drawn.sse[members]  # (seeds, drawn)
        reached = np.flatnonzero((~np.isnan(sse)).any(axis=0))
        median = np.nanmedian(sse[:, reached], axis=0)
        end = drawn.last_epoch[members].max()
        epochs = drawn.epochs[reached]
        if end not in epochs:  # only the trials that end there reach it
            ending = drawn.last_sse[members][drawn.last_epoch[members] == end]
            epochs, median = np.append(epochs, end), np.append(median, np.median(ending))
        frames.append(pd.DataFrame({"code": k, "epoch": epochs, "median_sse": median}))
    curves = pd.concat(frames, ignore_index=True)
    return curves.join(heads, on="code")[[*keys, "epoch", "median_sse"]].astype(
        {"epoch": np.int32}
    )


def _group_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in GROUP if c in trials.columns]


def _once(drawn: Drawn) -> Drawn:
    """Each trial once (a reader that met one twice must not count it twice)."""
    _, first = np.unique(drawn.trial_ids.astype(str), return_index=True)
    return Drawn(
        drawn.trial_ids[first],
        drawn.epochs,
        drawn.sse[first],
        drawn.last_epoch[first],
        drawn.last_sse[first],
    )


class _Tapped:
    """A result set whose history blocks, as they are read, are also shown to ``watch``: so
    that one pass over the histories gives the curves and what the epoch axis is chosen from."""

    def __init__(self, results: Results, watch: Callable[[HistoryBlock], None]) -> None:
        self.results = results
        self.watch = watch

    @property
    def trials(self) -> pd.DataFrame:
        return self.results.trials

    @property
    def history(self) -> pd.DataFrame:
        return self.results.history

    def history_blocks(self, trial_ids: Iterable[str]) -> Iterator[HistoryBlock]:
        for block in history_blocks(self.results, trial_ids):
            self.watch(block)
            yield block
