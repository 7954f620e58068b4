"""A result set at a glance: the best learning rate of each group, and a compact summary.

:func:`best` answers "which learning rate is best?" per comparison group (or per group and
replicate seed), by final SSE, lowest SSE or epochs to tolerance, and says a tie where rates
tie (:mod:`gdsearch.analysis.ranking`). :func:`summary_html` and :func:`summary_line` are what
a notebook shows of a :class:`~gdsearch.results.resultset.Results`: its job, trials by status,
epochs, the best rates, and where it is stored. ``Results.best`` and its ``_repr_html_`` call
these.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from gdsearch.analysis.comparison import GROUP
from gdsearch.analysis.convergence import STOPPED_EARLY, check_rank, trial_metrics
from gdsearch.analysis.ranking import TIE_TOLERANCE, best_rates
from gdsearch.errors import InputError
from gdsearch.mlp.stopping import Status


class Results(Protocol):
    """What a summary reads of a result set: its tables (:class:`gdsearch.analysis.histories.
    Results`), its manifest and where it is stored."""

    trials: pd.DataFrame
    manifest: dict[str, Any]
    path: str

    @property
    def history(self) -> pd.DataFrame: ...


BY = {
    "final_sse": "the SSE at the end of training",
    "min_sse": "the lowest SSE during training",
    "epochs_to_tolerance": "the first epoch within 5% of the group's lowest SSE",
    "final_val_sse": "the SSE on the held-out data at the end of training",
    "min_val_sse": "the lowest SSE on the held-out data during training",
}
"""What :func:`best` ranks by (lower is better), each a median over seeds."""
PER = {
    "group": "each comparison group (trials that differ only in lr and seed)",
    "seed": "each comparison group and replicate seed",
}
SHOWN = ("init", "hidden", "activation")
"""A group's columns always shown; the rest of ``GROUP`` only where they vary."""


def group_columns(trials: pd.DataFrame) -> list[str]:
    """The columns that tell this result set's groups apart: init, hidden and activation, and
    every other group column whose value varies."""
    rest = [c for c in GROUP if c in trials.columns and c not in SHOWN]
    return [*SHOWN, *(c for c in rest if trials[c].nunique(dropna=False) > 1)]


def best(
    results: Results,
    by: str = "final_sse",
    per: str = "group",
    tolerance: float = TIE_TOLERANCE,
) -> pd.DataFrame:
    """The best learning rate of each comparison group, with ties said as ties.

    A rate is a candidate where none of its trials diverged; its value is the median over
    seeds of ``by``, taken over the trials that trained to the end (not pruned, not failed).
    Rates whose values lie within ``tolerance`` of the lowest, relative to it, are tied, and
    then no single rate is named.

    Args:
        results: a loaded result set.
        by: ``"final_sse"``, ``"min_sse"``, ``"epochs_to_tolerance"``, or where the job held
            data out, ``"final_val_sse"`` or ``"min_val_sse"`` (the held-out SSE at the end,
            or its lowest during training); lower is better.
        per: ``"group"`` (one row per comparison group) or ``"seed"`` (per group and seed).
        tolerance: the relative distance from the lowest value that still ties.

    Returns:
        One row per group: its columns (init, hidden, activation and any that vary; seed with
        ``per="seed"``), ``lr`` (NaN on a tie, or where every rate diverged), ``tie``,
        ``best_lrs`` (every tied rate, ascending), the lowest value of ``by``, and ``margin``
        (how far the next rate lies above it, relative to it).

    Raises:
        InputError: an unknown ``by`` or ``per``, or a tolerance that is not a number >= 0.
    """
    if by not in BY:
        raise InputError(f"by: must be one of {', '.join(BY)}, but got {by!r}")
    if per not in PER:
        raise InputError(f"per: must be one of {', '.join(PER)}, but got {per!r}")
    if not (isinstance(tolerance, int | float) and tolerance >= 0):
        raise InputError(f"tolerance: must be a number >= 0, but got {tolerance!r}")
    trials = results.trials
    if by.endswith("_val_sse"):
        check_rank(by, trials)
    keys = [*group_columns(trials), *(["seed"] if per == "seed" else [])]
    if by == "epochs_to_tolerance" and not trials.empty:
        trials = trial_metrics(results)
    kept = trials[by].where(~trials["status"].isin(STOPPED_EARLY))
    candidates = (
        trials.assign(value=kept, diverged=trials["status"] == Status.DIVERGED)
        .groupby([*keys, "lr"], dropna=False, sort=True)
        .agg(value=("value", "median"), diverged=("diverged", "any"))
        .reset_index()
    )
    candidates[by] = candidates["value"].where(~candidates["diverged"])
    return best_rates(candidates, keys, by, tolerance)


def summary_line(results: Results) -> str:
    """One line: the job, its trials by status, epochs, and where it is stored."""
    return f"<Results {_name(results)}: {_trials(results)}{_epochs(results)}, at {results.path}>"


def summary_html(results: Results) -> str:
    """A compact HTML summary: the job, trials by status, epochs, where it is stored, and the
    best learning rate of each group by final SSE."""
    head = (
        f"<p><strong>{html.escape(_name(results))}</strong>: "
        f"{html.escape(_trials(results) + _epochs(results))}<br>"
        f"stored at <code>{html.escape(results.path)}</code></p>"
    )
    if results.trials.empty:
        return f"<div>{head}</div>"
    shown = best(results).copy()
    shown["hidden"] = shown["hidden"].replace("", "none (linear)")
    shown["best lr"] = [
        _rates(float(lr), tuple(lrs))
        for lr, lrs in zip(shown["lr"], shown["best_lrs"], strict=True)
    ]
    shown["final SSE"] = shown["final_sse"].map(lambda v: "" if math.isnan(v) else f"{v:.6g}")
    keys = [c for c in shown.columns if c in GROUP]
    cells = shown[[*keys, "best lr", "final SSE"]].astype(object).where(shown.notna(), "")
    table = cells.to_html(index=False, border=0)
    note = (
        f"<p>best learning rate per group: the lowest median final SSE over seeds among rates "
        f"that never diverged; rates within {TIE_TOLERANCE:g} of it, relative to it, tie "
        f"(<code>.best()</code> for more)</p>"
    )
    return f"<div>{head}{note}{table}</div>"


def _name(results: Results) -> str:
    return str(results.manifest.get("name") or Path(results.path).name or "results")


def _trials(results: Results) -> str:
    counts = results.trials["status"].value_counts()
    if counts.empty:
        return "no trials stored yet"
    total = results.manifest.get("trials_total")
    stored = len(results.trials)
    of = f" of {total:,}" if isinstance(total, int) and total != stored else ""
    statuses = ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))
    state = results.manifest.get("status")
    return f"{stored:,}{of} trials ({statuses})" + (f", {state}" if state else "")


def _epochs(results: Results) -> str:
    epochs = sorted(results.trials["epochs"].dropna().unique())
    if not epochs:
        return ""
    if len(epochs) == 1:
        return f"; {int(epochs[0]):,} epochs"
    return f"; {int(epochs[0]):,} to {int(epochs[-1]):,} epochs"


def _rates(lr: float, lrs: tuple[float, ...]) -> str:
    """``0.0316``, or ``tie: 10 rates, 0.001 to 0.0316``, or ``none`` where no rate trained
    to the end without diverging."""
    if not lrs:
        return "none: every rate diverged or stopped early"
    if not math.isnan(lr):
        return f"{lr:.4g}"
    return f"tie: {len(lrs)} rates, {lrs[0]:.4g} to {lrs[-1]:.4g}"
