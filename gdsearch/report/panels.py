"""Shared plotting: group labels, the facet grid of panels, each learning rate's line style,
and the figures themselves.

Figures are made without pyplot: nothing is kept in pyplot's registry, no backend is chosen for
the process, and a figure returned in a notebook is drawn once, by its ``_repr_png_``, whether or
not the notebook has set up matplotlib.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gdsearch.analysis.comparison import GROUP

DPI = 110

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
) -> tuple[Figure, np.ndarray, list[tuple[str, pd.DataFrame, Axes]]]:
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
    fig = new_figure(figsize=(5.2 * n_cols, 3.8 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
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


class InlineFigure(Figure):
    """A matplotlib Figure that a notebook shows as a PNG (IPython asks for ``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        return png(self)


def new_figure(figsize: tuple[float, float]) -> Figure:
    """An empty figure with constrained layout, kept by nobody but its caller."""
    return InlineFigure(figsize=figsize, layout="constrained")


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


QUALITATIVE = tuple(matplotlib.colormaps["tab10"](i) for i in range(10))
DASHES = ("-", "--")
MAX_LEGEND = len(QUALITATIVE) * len(DASHES)
"""Up to this many learning rates, each gets a colour of a qualitative palette (and past ten a
dashed line) and the figure a legend; more, and a colour scale ordered by lr with a colour bar."""


class LrStyles:
    """How each learning rate of a result set is drawn, the same in every panel and figure.

    Few rates are told apart by colour (and dash) and named in a legend; many are coloured on a
    log scale of lr (viridis) with a colour bar, where the order of the colours is what tells.
    """

    def __init__(self, lrs: pd.Series, diverged: set[float] | None = None) -> None:
        self.rates = sorted(float(lr) for lr in pd.unique(lrs))
        self.diverged = diverged or set()
        self.legend = len(self.rates) <= MAX_LEGEND
        self.norm = lr_norm(lrs)
        self.names = _distinct_labels(self.rates)

    def color(self, lr: float) -> Any:
        """The rate's colour."""
        if not self.legend:
            return matplotlib.colormaps["viridis"](self.norm(lr))
        index = self.rates.index(float(lr))
        return QUALITATIVE[index % len(QUALITATIVE)]

    def line(self, lr: float) -> dict[str, Any]:
        """Keyword arguments of ``Axes.plot`` for the rate's line."""
        if not self.legend:
            return {"color": self.color(lr)}
        index = self.rates.index(float(lr))
        return {"color": self.color(lr), "linestyle": DASHES[index // len(QUALITATIVE)]}

    def name(self, lr: float) -> str:
        """The rate as the legend writes it, with enough digits to tell it from its neighbours."""
        label = self.names[self.rates.index(float(lr))]
        return f"{label} (diverged)" if float(lr) in self.diverged else label

    def key(self, fig: Figure, axes: Any, shown: set[float] | None = None) -> None:
        """The figure's legend of rates (those ``shown``, or all), or its colour bar."""
        if not self.legend:
            fig.colorbar(
                ScalarMappable(norm=self.norm, cmap="viridis"), ax=axes, label="learning rate"
            )
            return
        rates = [lr for lr in self.rates if shown is None or lr in shown]
        handles = [Line2D([], [], linewidth=1.5, **self.line(lr)) for lr in rates]
        fig.legend(
            handles,
            [self.name(lr) for lr in rates],
            title="learning rate",
            loc="outside right upper",
            fontsize=8,
            title_fontsize=8,
        )


def _distinct_labels(rates: list[float]) -> list[str]:
    """The rates with as few significant digits (3 at least) as tell every one apart."""
    for digits in range(3, 17):
        labels = [f"{lr:.{digits}g}" for lr in rates]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(lr) for lr in rates]
