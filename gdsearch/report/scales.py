"""Axis scales chosen from the data, so that a figure shows where the differences are.

- Epochs: on a log axis when the action is early, that is, when most rates have done
  ``ACTION_SHARE`` of their fall within the first ``EARLY_FRACTION`` of the epochs (the seed
  notebook's sine fit: 20,000 epochs, every rate settled within 100); linear otherwise.
- SSE curves: limits from the curves that did not diverge (a diverging curve leaves through the
  top instead of squeezing the rest into the bottom pixels); a log axis where they span more
  than ``LOG_SPAN`` times, linear below that.
- Final SSE against lr: where the values differ by less than ``RELATIVE_BELOW`` of the lowest,
  an absolute axis would label every tick alike ("4.31083"), so the figure plots the relative
  excess (SSE - lowest) / lowest instead, on a symmetric-log axis whose linear band
  [0, tolerance] holds the ties; otherwise SSE itself, on a log axis past ``LOG_SPAN``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

EARLY_FRACTION = 0.05
ACTION_SHARE = 0.9
MIN_EPOCHS_FOR_LOG = 50
LOG_SPAN = 10.0
RELATIVE_BELOW = 1e-2


def settled_epoch(curve: np.ndarray) -> float:
    """The first epoch by which a falling curve has done ``ACTION_SHARE`` of its fall; NaN for
    a curve that did not fall."""
    curve = curve[np.isfinite(curve)]
    if curve.size < 2 or not curve[-1] < curve[0]:
        return np.nan
    left = curve - curve[-1]
    return float(np.argmax(left <= (1 - ACTION_SHARE) * left[0]))


def action_is_early(curves: pd.DataFrame) -> bool:
    """Whether most falling curves (columns, indexed by epoch) settle in the first
    ``EARLY_FRACTION`` of the epochs."""
    epochs = float(curves.index.max()) if len(curves) else 0.0
    settled = [settled_epoch(curves[c].to_numpy(dtype=np.float64)) for c in curves.columns]
    settled = [t for t in settled if np.isfinite(t)]
    if epochs < MIN_EPOCHS_FOR_LOG or not settled:
        return False
    return float(np.median(settled)) <= EARLY_FRACTION * epochs


def epoch_axis(ax: Axes, curves: pd.DataFrame) -> None:
    """Epochs on a log axis where the action is early (symmetric-log, so epoch 0 stays), else
    linear."""
    if action_is_early(curves):
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ax.set_xlim(0, float(curves.index.max()))
        ax.set_xlabel("epoch (log scale)")
    else:
        ax.set_xlabel("epoch")


def sse_axis(ax: Axes, curves: pd.DataFrame, kept: list[float]) -> None:
    """Limits and scale of an SSE axis: from the ``kept`` columns (the curves that did not
    diverge) and every curve's start; log where they span more than ``LOG_SPAN`` times."""
    starts = curves.bfill().iloc[0].to_numpy(dtype=np.float64) if len(curves) else np.array([])
    shown = curves[[c for c in curves.columns if c in kept]].to_numpy(dtype=np.float64)
    values = np.concatenate([shown.ravel(), starts])
    values = values[np.isfinite(values)]
    if not kept or values.size == 0:  # every rate diverged: show them whole
        values = curves.to_numpy(dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
    if values.size == 0:
        return
    low, high = float(values.min()), float(values.max())
    if low > 0 and high / low > LOG_SPAN:
        ax.set_yscale("log")
        ax.set_ylim(low / 1.5, high * 1.5)
    else:
        pad = 0.06 * (high - low) or 0.06 * abs(high) or 1.0
        ax.set_ylim(low - pad, high + pad)
        ax.ticklabel_format(axis="y", useOffset=False)


def final_view(values: np.ndarray) -> str:
    """How to draw final SSE against lr: ``"relative"`` (the relative excess over the lowest:
    values within ``RELATIVE_BELOW`` of each other), ``"log"`` (spanning more than
    ``LOG_SPAN`` times) or ``"linear"``."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "linear"
    low, high = float(values.min()), float(values.max())
    if values.size > 1 and low > 0 and (high - low) / low < RELATIVE_BELOW:
        return "relative"
    if low > 0 and high / low > LOG_SPAN:
        return "log"
    return "linear"
