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


def curves_figure(
    trials: pd.DataFrame, curves: Curves, selector: bool = False, what: str = "SSE"
) -> go.Figure:
    """SSE (or ``what`` the curves hold: the held-out SSE) against epoch: a line per trial
    (few trials) or per group and lr (medians); with ``selector``, one comparison group at a
    time, picked from a menu (where there are two or more), rather than every group's lines in
    one panel."""
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
    menus = [*_scale_buttons("x", epoch_scale), *_scale_buttons("y", "log")]
    if selector:
        menus += _group_menu(fig)
    fig.update_layout(
        title=f"{what} per epoch" + ("" if curves.per_trial else " (median over seeds)"),
        xaxis={"title": "epoch", "type": epoch_scale},
        yaxis={"title": what, "type": "log"},
        updatemenus=menus,
        hovermode="closest",
        legend={"groupclick": "toggleitem"},
        height=560,
    )
    return fig


def _group_menu(fig: go.Figure) -> list[dict[str, Any]]:
    """A menu that shows one comparison group's traces at a time (the first at the start);
    none where the figure holds one group."""
    labels = list(dict.fromkeys(trace.legendgroup for trace in fig.data))
    if len(labels) < 2:
        return []
    for trace in fig.data:
        trace.visible = trace.legendgroup == labels[0]
    buttons = [
        {
            "label": label,
            "method": "restyle",
            "args": [{"visible": [trace.legendgroup == label for trace in fig.data]}],
        }
        for label in labels
    ]
    return [
        {
            "type": "dropdown",
            "active": 0,
            "buttons": buttons,
            "x": 0.0,
            "xanchor": "left",
            "y": 1.12,
            "yanchor": "bottom",
            "name": "group",
        }
    ]


def landscape_figure(results: Results) -> go.Figure | None:
    """Each drawn trial's landscape, one trial at a time, picked from a menu: the SSE over the
    plane of its path with the path on it, and over its random filter-normalised slice (hover:
    α, β, SSE). None where the result set holds no landscape."""
    from plotly.subplots import make_subplots

    from gdsearch.mlp.landscape import Slice
    from gdsearch.report.landscapes import drawn_trials, records

    drawn = drawn_trials(results)
    if not drawn:
        return None
    rows = results.landscapes
    by_trial = {str(t): frame for t, frame in rows.groupby("trial_id")}
    go = plotly()
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("the plane of the path", "a random filter-normalised slice"),
        horizontal_spacing=0.12,
    )
    labels, counts = [], []
    hover = "α %{x:.4g}<br>β %{y:.4g}<br>SSE %{customdata:.6g}<extra></extra>"
    for label, frame in drawn:
        for trial in records(frame):
            name = f"{label}; lr {trial.lr:.4g} ({trial.status})"
            mine = by_trial[trial.trial_id]
            traces = []
            for kind, col in ((Slice.PLANE, 1), (Slice.RANDOM, 2)):
                grid = mine[mine["kind"] == kind.value]
                xs, ys = np.unique(grid["x"]), np.unique(grid["y"])
                sse = grid["sse"].to_numpy().reshape(len(xs), len(ys)).T  # (y, x)
                with np.errstate(all="ignore"):
                    z = np.log10(np.where(sse > 0, sse, np.nan))
                traces.append(
                    (
                        go.Contour(
                            x=xs,
                            y=ys,
                            z=z,
                            customdata=sse,
                            hovertemplate=hover,
                            colorscale="Viridis",
                            colorbar={"title": "log10 SSE", "x": 0.44 if col == 1 else 1.0},
                            name=name,
                        ),
                        col,
                    )
                )
            path = mine[mine["kind"] == Slice.PATH.value].sort_values("epoch")
            traces.append(
                (
                    go.Scatter(
                        x=path["x"],
                        y=path["y"],
                        mode="lines+markers",
                        marker={"size": 3, "color": "#e8442e"},
                        line={"color": "#e8442e", "width": 1},
                        customdata=np.stack([path["epoch"], path["sse"]], axis=1),
                        hovertemplate="epoch %{customdata[0]}<br>α %{x:.4g}<br>β %{y:.4g}"
                        "<br>SSE %{customdata[1]:.6g}<extra></extra>",
                        name="path",
                        showlegend=False,
                    ),
                    1,
                )
            )
            for trace, col in traces:
                fig.add_trace(trace, row=1, col=col)
            labels.append(name)
            counts.append(len(traces))
    owner = np.repeat(np.arange(len(labels)), counts)
    for trace, k in zip(fig.data, owner, strict=True):
        trace.visible = bool(k == 0)
    buttons = [
        {
            "label": label,
            "method": "restyle",
            "args": [{"visible": [bool(k == i) for k in owner]}],
        }
        for i, label in enumerate(labels)
    ]
    fig.update_layout(
        title="Loss landscapes (pick a trial)",
        updatemenus=[
            {
                "type": "dropdown",
                "active": 0,
                "buttons": buttons,
                "x": 1.0,
                "xanchor": "right",
                "y": 1.12,
                "yanchor": "bottom",
                "name": "trial",
            }
        ],
        hovermode="closest",
        height=520,
    )
    fig.update_xaxes(title_text="α (first direction)")
    fig.update_yaxes(title_text="β (second direction)")
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
    charts = [
        curves_figure(results.trials, read_curves(results), selector=True),
        ucurve_figure(results.trials),
        parallel_figure(results.trials),
    ]
    landscapes = landscape_figure(results)
    return charts if landscapes is None else [*charts, landscapes]


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
