"""The best learning rate, and when there are several: ties within a relative tolerance.

Rates that reach the same minimum end with SSEs that differ only in their last digits: on the
seed notebook's sine fit ten rates end at 4.310834707513 and one at 4.310834707548. Calling the
lowest of them "the best" would name noise. Here a value within ``tolerance`` of the lowest,
relative to it (|v - lowest| <= tolerance * |lowest|), is tied with it, and a tie is reported as
a tie: every rate in it, and no single winner.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas loads when a table is ranked
    import pandas as pd

TIE_TOLERANCE = 1e-6
"""Values within this of the lowest, relative to it, are tied with it."""


def tied_with_lowest(values: Any, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Whether each value is tied with the lowest (NaN and infinities never are).

    Args:
        values: numbers, lower is better.
        tolerance: the relative distance from the lowest that still ties.

    Returns:
        A boolean array of the values' shape; all False where no value is finite.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros(v.shape, dtype=bool)
    lowest = v[finite].min()
    with np.errstate(invalid="ignore"):
        return finite & (v - lowest <= tolerance * abs(lowest))


def relative_excess(values: Any, lowest: float) -> np.ndarray:
    """(v - lowest) / |lowest|: how far each value lies above the lowest, relative to it (0 for
    the lowest itself; infinity above a lowest of 0)."""
    v = np.asarray(values, dtype=np.float64)
    if lowest == 0:
        return np.where(v == 0, 0.0, np.inf)
    return (v - lowest) / abs(lowest)


def mark_ties(
    values: pd.Series, keys: list[pd.Series], tolerance: float = TIE_TOLERANCE
) -> pd.Series:
    """Per group of ``keys``, whether each value is tied with its group's lowest."""
    import pandas as pd

    if values.empty:
        return pd.Series(False, index=values.index, dtype=bool)
    return (
        values.groupby(keys, dropna=False)
        .transform(
            lambda group: pd.Series(
                tied_with_lowest(group.to_numpy(), tolerance), index=group.index
            )
        )
        .astype(bool)
    )


def best_rates(
    candidates: pd.DataFrame, keys: list[str], value: str, tolerance: float = TIE_TOLERANCE
) -> pd.DataFrame:
    """Per group of ``keys``, the learning rates whose ``value`` is the lowest, ties included.

    Args:
        candidates: one row per group and lr, with the ``keys`` columns, ``lr`` and ``value``
            (NaN where the rate is not a candidate: it diverged, say).
        keys: the columns that make a group.
        value: the column to rank by, lower is better.
        tolerance: see :func:`tied_with_lowest`.

    Returns:
        One row per group: the ``keys``; ``lr`` (the best learning rate, or NaN on a tie or
        where no rate is a candidate); ``tie`` (True where several rates tie); ``best_lrs``
        (a tuple of every rate tied with the lowest, ascending: one on a clear win); ``value``
        (the lowest value); ``margin`` (how far the next rate outside the tie lies above it,
        relative to it; NaN where there is none).
    """
    import pandas as pd

    columns = [*keys, "lr", "tie", "best_lrs", value, "margin"]
    rows = []
    for key, frame in candidates.groupby(keys, dropna=False, sort=True):
        values = frame[value].to_numpy(dtype=np.float64)
        tied = tied_with_lowest(values, tolerance)
        lrs = tuple(sorted(float(lr) for lr in frame["lr"].to_numpy()[tied]))
        lowest = float(values[tied].min()) if tied.any() else math.nan
        rest = values[~tied & np.isfinite(values)]
        margin = float(relative_excess(rest, lowest).min()) if rest.size else math.nan
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "lr": lrs[0] if len(lrs) == 1 else math.nan,
                "tie": len(lrs) > 1,
                "best_lrs": lrs,
                value: lowest,
                "margin": margin,
            }
        )
    return pd.DataFrame(rows, columns=columns)
