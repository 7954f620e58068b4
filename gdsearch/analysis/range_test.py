"""What a learning-rate range test suggests, by fast.ai's rules, and where its loss turned up.

fast.ai's ``lr_find`` (fastai.callback.schedule) reads the smoothed loss of the sweep between a
tenth of the way in and five steps before its end, and suggests:

- ``minimum``: the rate of the lowest loss, divided by 10;
- ``steep``: the rate where the loss falls fastest against log lr;
- ``valley``: two thirds of the way along the longest stretch over which the loss keeps
  falling (the longest decreasing subsequence), after fast.ai's default since 2.5.

``turned_up`` is the rate of the step after which the loss (the SSE, unsmoothed) never again went
as low: where the sweep left the valley for good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SUGGESTIONS = ("minimum", "steep", "valley")


def suggestions(
    rates: np.ndarray, smoothed: np.ndarray, planned: int | None = None
) -> dict[str, float]:
    """fast.ai's three suggestions from one sweep's rates and smoothed losses (the steps it
    took, of ``planned``, default as many), read from a tenth of the planned steps in to five
    before the last taken, as ``lr_find`` reads them; NaN each where that leaves too little."""
    kept = np.isfinite(smoothed)
    rates, losses = rates[kept], smoothed[kept]
    n = len(losses)
    skip = (planned or n) // 10
    rates, losses = rates[skip : n - 5], losses[skip : n - 5]
    if len(losses) < 2:
        return dict.fromkeys(SUGGESTIONS, float("nan"))
    slopes = np.diff(losses) / np.diff(np.log(rates))
    return {
        "minimum": float(rates[np.argmin(losses)] / 10),
        "steep": float(rates[np.argmin(slopes)]),
        "valley": float(rates[_valley(losses)]),
    }


def _valley(losses: np.ndarray) -> int:
    """fast.ai's valley: the longest decreasing subsequence's span, two thirds along it."""
    n = len(losses)
    longest = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end = i
                start = end - longest[end]
    sections = (end - start) / 3
    return start + int(sections) + int(sections / 2)


def turned_up(rates: np.ndarray, losses: np.ndarray) -> float:
    """The rate of the step after the sweep's lowest loss: from there on it never went as
    low again (NaN for a sweep with no finite loss)."""
    finite = np.isfinite(losses)
    if not finite.any():
        return float("nan")
    lowest = int(np.nanargmin(np.where(finite, losses, np.nan)))
    return float(rates[min(lowest + 1, len(rates) - 1)])


def range_summary(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per range test (each group and seed, ``keys``): its suggestions (from the smoothed
    loss) and where its loss turned up (the SSE), from the lr_range table's rows."""
    import pandas as pd

    rows = []
    for key, run in table.sort_values([*keys, "step"]).groupby(keys, dropna=False, sort=True):
        rates, smoothed = run["lr"].to_numpy(), run["smoothed_sse"].to_numpy()
        found = suggestions(rates, smoothed, int(run["planned"].iloc[0]))
        values: tuple[object, ...] = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(keys, values, strict=True))
        row.update(found)
        row["turned_up"] = turned_up(rates, run["sse"].to_numpy())
        row["steps"] = len(run)
        rows.append(row)
    return pd.DataFrame(rows)
