"""Shared plotting: group labels, the facet grid of panels, the lr colour scale, PNG output."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from gdsearch.model.comparison import GROUP

SETTING_LABELS = {
    "init_scale": "scale {:g}",
    "batch_size": "batch {}",
    "momentum": "momentum {:g}",
    "nesterov": "Nesterov",
    "weight_decay": "wd {:g}",
    "lr_schedule": "{} schedule",
    "step_size": "every {:.0f}",
    "gamma": "× {:g}",
    "warmup_epochs": "warm-up {:.0f}",
}
"""How a group's title shows a setting that is on (a setting that is off, or absent, is not
shown: groups of a job that does not search it look as before)."""


def _on(value: Any) -> bool:
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return not missing and bool(value) and value != "constant"


def label(key: tuple[Any, ...], columns: list[str]) -> str:
    """A comparison group's title, e.g. "xavier, hidden 16, tanh, momentum 0.9"."""
    parts = []
    for column, value in zip(columns, key, strict=True):
        if column == "hidden":
            parts.append(f"hidden {value or 'none (linear)'}")
        elif column in ("init", "activation"):
            parts.append(str(value))
        elif column in SETTING_LABELS and _on(value):
            parts.append(SETTING_LABELS[column].format(value))
    return ", ".join(parts)


def groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The frame split by comparison group, each with its label, in a stable order."""
    columns = [c for c in GROUP if c in frame.columns]
    return [(label(k, columns), g) for k, g in frame.groupby(columns, dropna=False, sort=True)]


FACET_COLUMNS = ("init", "init_scale")
"""A group's facet column: its init scheme; the rest (architecture, activation, batch) sets the
row. One init or one architecture only: the panels wrap, three to a row."""


def facet_panels(
    groups: list[tuple[str, pd.DataFrame]],
) -> tuple[plt.Figure, np.ndarray, list[tuple[str, pd.DataFrame, plt.Axes]]]:
    """One panel per group: a facet grid (rows by architecture, columns by init) where both
    vary, else a wrapped row of panels. Returns the figure, all axes, and each group's axes."""

    def facet_keys(frame: pd.DataFrame) -> tuple[str, str]:
        first = frame.iloc[0]
        columns = [c for c in GROUP if c in frame.columns]
        col = tuple(first[c] for c in columns if c in FACET_COLUMNS)
        row = tuple(first[c] for c in columns if c not in FACET_COLUMNS)
        return repr(row), repr(col)

    keys = [facet_keys(frame) for _, frame in groups]
    rows = list(dict.fromkeys(r for r, _ in keys))
    cols = list(dict.fromkeys(c for _, c in keys))
    if len(rows) > 1 and len(cols) > 1:
        places = [(rows.index(r), cols.index(c)) for r, c in keys]
        n_rows, n_cols = len(rows), len(cols)
    else:
        n_cols = max(1, min(len(groups), 3))
        n_rows = math.ceil(len(groups) / n_cols)
        places = [divmod(i, n_cols) for i in range(len(groups))]
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(5.2 * n_cols, 3.8 * n_rows), squeeze=False, layout="constrained"
    )
    used = set(places)
    for r in range(n_rows):
        for c in range(n_cols):
            axes[r, c].set_visible((r, c) in used)
    panels = [
        (label, frame, axes[place]) for (label, frame), place in zip(groups, places, strict=True)
    ]
    return fig, axes, panels


def lr_norm(lrs: pd.Series) -> LogNorm:
    """The log colour scale of learning rates."""
    return LogNorm(lrs.min(), max(lrs.max(), 1.0001 * lrs.min()))


def png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
