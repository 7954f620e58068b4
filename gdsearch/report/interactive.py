"""Interactive charts of a result set, with Plotly: one self-contained HTML file, no network.

Three charts, each with Plotly's own zoom, pan and hover, and buttons that switch an axis
between log and linear:

- the SSE curves: one line per trial where there are few (hover: lr, init, seed, status), else
  the median over seeds per group and learning rate;
- the U-curve: each trial's final SSE against its learning rate, one trace per comparison group
  (hover: lr, init, hidden, seed, status, final SSE);
- parallel coordinates of the searched axes against final SSE, as Optuna and W&B draw them.

The charts take a result set opened by ``gdsearch.open_results`` (or one loaded whole): the
U-curve and the parallel coordinates need only the trials table, and the curves only the
history they draw, read part by part (:mod:`gdsearch.report.drawn`). The figures are plain data
(``plotly.graph_objects.Figure``), so the live view (:mod:`gdsearch.report.live`) draws the same
ones, updated as parts land. Plotly's JavaScript is inlined from the ``plotly`` package; the
page fetches nothing.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gdsearch.errors import InputError
from gdsearch.mlp.stopping import Status
from gdsearch.report.drawn import Curves, read_curves
from gdsearch.report.panels import groups

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from gdsearch.results.resultset import Results

STATUS_SYMBOLS = {
    Status.OK: "circle",
    Status.DIVERGED: "x",
    Status.PRUNED: "triangle-down",
    Status.FAILED: "square",
}
AXES = ("lr", "init", "hidden", "seed", "activation", "init_scale", "batch_size", "momentum")


def plotly() -> Any:
    """The ``plotly.graph_objects`` module, or a one-line InputError saying how to get it."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise InputError(
            "--interactive: needs Plotly; pip install 'gdsearch[interactive]'"
        ) from None
    return go


def _hidden(value: Any) -> str:
    """Hidden layer widths as the trials table stores them ("16-16"; "" for the linear model),
    or as a sequence of widths."""
    if isinstance(value, str):
        return value or "none"
    return "-".join(str(int(v)) for v in value) if len(value) else "none"


def _hover(frame: pd.DataFrame) -> list[str]:
    """A trial's hover text: lr, init, hidden, seed, status and final SSE."""
    return [
        f"lr {row.lr:.4g}<br>init {row.init}<br>hidden {_hidden(row.hidden)}<br>seed {row.seed}"
        f"<br>status {row.status}<br>final SSE {row.final_sse:.6g}"
        for row in frame.itertuples()
    ]


def _scale_buttons(axis: str, start: str) -> list[dict[str, Any]]:
    """Buttons that switch ``axis`` ("x" or "y") between log and linear."""
    order = [start, "linear" if start == "log" else "log"]
    buttons = [
        {"label": f"{axis} {scale}", "method": "relayout", "args": [{f"{axis}axis.type": scale}]}
        for scale in order
    ]
    return [
        {
            "type": "buttons",
            "direction": "right",
            "showactive": True,
            "x": 1.0,
            "xanchor": "right",
            "y": 1.12 if axis == "y" else 1.2,
            "yanchor": "bottom",
            "buttons": buttons,
        }
    ]


def curves_figure(trials: pd.DataFrame, curves: Curves) -> go.Figure:
    """SSE against epoch: a line per trial (few trials) or per group and lr (medians)."""
    go = plotly()
    fig = go.Figure()
    if curves.per_trial:
        for label, frame in groups(curves.frame.merge(trials, on="trial_id")):
            ordered = frame.sort_values(["lr", "seed", "trial_id", "epoch"], kind="stable")
            for trial_id, curve in ordered.groupby("trial_id", sort=False):
                first = curve.iloc[0]
                fig.add_trace(
                    go.Scattergl(
                        x=curve["epoch"],
                        y=curve["sse"],
                        mode="lines",
                        name=f"lr {first.lr:.4g}",
                        legendgroup=label,
                        legendgrouptitle_text=label,
                        hovertext=_hover(curve.iloc[:1]) * len(curve),
                        hoverinfo="text+x+y",
                        line={"width": 1},
                        meta=trial_id,
                    )
                )
    else:
        for label, frame in groups(curves.frame):
            for lr, curve in frame.groupby("lr"):
                fig.add_trace(
                    go.Scattergl(
                        x=curve["epoch"],
                        y=curve["median_sse"],
                        mode="lines",
                        name=f"lr {lr:.4g}",
                        legendgroup=label,
                        legendgrouptitle_text=label,
                        hovertext=f"{label}<br>lr {lr:.4g} (median over seeds)",
                        hoverinfo="text+x+y",
                        line={"width": 1},
                    )
                )
    epoch_scale = "log" if curves.log_epochs else "linear"
    fig.update_layout(
        title="SSE per epoch" + ("" if curves.per_trial else " (median over seeds)"),
        xaxis={"title": "epoch", "type": epoch_scale},
        yaxis={"title": "SSE", "type": "log"},
        updatemenus=[*_scale_buttons("x", epoch_scale), *_scale_buttons("y", "log")],
        hovermode="closest",
        legend={"groupclick": "toggleitem"},
        height=560,
    )
    return fig


def ucurve_figure(trials: pd.DataFrame) -> go.Figure:
    """Final SSE against learning rate, one trace per comparison group, a marker per trial."""
    go = plotly()
    fig = go.Figure()
    held = "final_val_sse" in trials.columns and bool(trials["final_val_sse"].notna().any())
    for label, frame in groups(trials):
        frame = frame.sort_values("lr")
        fig.add_trace(
            go.Scatter(
                x=frame["lr"],
                y=frame["final_sse"],
                mode="markers",
                name=label,
                hovertext=_hover(frame),
                hoverinfo="text",
                marker={
                    "symbol": [STATUS_SYMBOLS.get(s, "circle") for s in frame["status"]],
                    "size": 8,
                },
                customdata=frame["trial_id"],
            )
        )
        if held:
            fig.add_trace(
                go.Scatter(
                    x=frame["lr"],
                    y=frame["final_val_sse"],
                    mode="markers",
                    name=f"{label}, held out",
                    hovertext=_hover(frame),
                    hoverinfo="text",
                    marker={"symbol": "circle-open", "size": 8},
                    customdata=frame["trial_id"],
                )
            )
    fig.update_layout(
        title="Final SSE against learning rate (x: diverged"
        + ("; open: on the held-out data)" if held else ")"),
        xaxis={"title": "learning rate", "type": "log"},
        yaxis={"title": "final SSE", "type": "log"},
        updatemenus=_scale_buttons("y", "log"),
        hovermode="closest",
        height=480,
    )
    return fig


def parallel_figure(trials: pd.DataFrame) -> go.Figure:
    """Parallel coordinates: each searched axis, and final SSE (log), a line per trial."""
    go = plotly()
    finite = trials[
        (trials["status"] != Status.DIVERGED)
        & np.isfinite(trials["final_sse"])
        & (trials["final_sse"] > 0)
    ]
    dimensions = []
    for axis in AXES:
        if axis not in finite or finite[axis].astype(str).nunique() < 2:
            continue
        values = finite[axis]
        if axis == "lr":
            dimensions.append({"label": "log10 lr", "values": np.log10(values)})
        elif axis == "hidden" or values.dtype == object:
            names = values.map(_hidden) if axis == "hidden" else values.astype(str)
            order = sorted(names.unique())
            codes = names.map(order.index)
            ticks = list(range(len(order)))
            dimensions.append(
                {"label": axis, "values": codes, "tickvals": ticks, "ticktext": order}
            )
        else:
            dimensions.append({"label": axis, "values": values})
    score = np.log10(finite["final_sse"])
    dimensions.append({"label": "log10 final SSE", "values": score})
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": score,
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": "log10 SSE"},
            },
            dimensions=dimensions,
        )
    )
    fig.update_layout(
        title="The searched axes against final SSE (diverged trials left out)", height=440
    )
    return fig


def figures(results: Results) -> list[go.Figure]:
    """The interactive report's charts, of a loaded or opened result set; histories are read
    block by block (part by part, for an opened one), and only what the curves draw is kept."""
    return [
        curves_figure(results.trials, read_curves(results)),
        ucurve_figure(results.trials),
        parallel_figure(results.trials),
    ]


def plotly_js() -> str:
    """Plotly's JavaScript, from the installed package (nothing is fetched)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def write_interactive(results: Results, out: Path) -> Path:
    """One self-contained HTML file with the charts, Plotly's JavaScript inlined.

    Args:
        results: a result set opened by ``gdsearch.open_results`` (its histories are read part
            by part, never whole) or loaded by ``gdsearch.load_results``.
        out: the file to write.

    Returns:
        ``out``.
    """
    name = html.escape(str(results.manifest.get("name") or Path(results.path).name))
    counts = results.trials["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    divs = [
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"chart-{i}",
            config={"displaylogo": False},
        )
        for i, fig in enumerate(figures(results))
    ]
    page = PAGE.format(
        title=name,
        summary=html.escape(f"{len(results.trials)} trials: {summary}"),
        plotly=plotly_js(),
        charts="\n".join(divs),
    )
    out.write_text(page, encoding="utf-8")
    return out


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: gdsearch</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
h1 {{ font-size: 1.4em; }} .chart {{ margin-bottom: 1.5em; }}</style>
<script>{plotly}</script></head>
<body><h1>{title}</h1><p id="summary">{summary}</p>
{charts}
</body></html>
"""
