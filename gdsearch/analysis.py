"""Tables that compare learning rates, computed from a result set's trials."""

from __future__ import annotations

import pandas as pd

GROUP = ["init", "hidden", "activation", "lr"]


def lr_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (init, hidden, activation, lr): trials, median final SSE, diverged count.

    Args:
        trials: a result set's trials table.

    Returns:
        A DataFrame with columns init, hidden, activation, lr, trials, median_final_sse
        (over trials that did not diverge; NaN if all did), min_final_sse and diverged.
    """
    frame = trials.assign(
        converged_sse=trials["final_sse"].where(trials["status"] != "diverged"),
        is_diverged=trials["status"] == "diverged",
    )
    table = frame.groupby(GROUP, sort=True, dropna=False).agg(
        trials=("trial_id", "size"),
        median_final_sse=("converged_sse", "median"),
        min_final_sse=("converged_sse", "min"),
        diverged=("is_diverged", "sum"),
    )
    return table.reset_index()
