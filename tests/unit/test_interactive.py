"""The interactive report's charts: what they draw, read part by part."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import gdsearch
from gdsearch import cli
from gdsearch.job.spec import parse_job
from gdsearch.report.interactive import write_interactive
from gdsearch.report.live import LiveState
from gdsearch.results import loading as loading_module
from gdsearch.results.loading import load_results, open_results
from gdsearch.results.resultset import ResultSet
from gdsearch.results.store import ResultsStore
from gdsearch.search.unit import train_unit
from tests.conftest import JOBS

pytest.importorskip("plotly")

JOB = """
[job]
name = "interactive-test"
seed = 1

[data]
dataset = "moons"
n_samples = 50

[train]
epochs = 60

[search]
lr = [0.01, 0.3, 30.0]
init = ["xavier"]
hidden = [[], [16], [4, 4]]
seed = [0, 1]
"""


def stored(folder: Path, text: str) -> Path:
    """A result set of ``text``, one part per hidden-layer shape, trained without Ray."""
    spec = parse_job(text, str(folder / "job.toml"))
    X, Y = spec.load_data()
    store = ResultsStore(folder / "results" / spec.name)
    store.prepare(spec.source)
    for hidden in sorted({t.hidden for t in spec.trials()}):
        store.write_part(*train_unit(X, Y, [t for t in spec.trials() if t.hidden == hidden]))
    store.write_manifest({"name": spec.name, "status": "complete"})
    return Path(store.location)


def test_hover_and_parallel_coordinates_name_the_hidden_layers_as_stored(
    tmp_path: Path,
) -> None:
    from gdsearch.report.interactive import parallel_figure, ucurve_figure

    trials = load_results(stored(tmp_path, JOB)).trials
    hovers = [text for trace in ucurve_figure(trials).data for text in trace.hovertext]
    assert {h.split("hidden ")[1].split("<br>")[0] for h in hovers} == {"none", "16", "4-4"}
    (hidden,) = [d for d in parallel_figure(trials).data[0].dimensions if d.label == "hidden"]
    assert sorted(hidden.ticktext) == ["16", "4-4", "none"]


# --- the curves chart and the live view read only what they draw ------------------------------


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """W1 (256 trials: medians over seeds) and the seed job (13 trials of 20,000 epochs: a line
    each), run in this process."""
    root = tmp_path_factory.mktemp("results")
    paths = {}
    for job in ("moons_lr_init", "seed_sine"):
        spec = gdsearch.load_job(JOBS / f"{job}.toml")
        gdsearch.run_search(spec, root, show_progress=False, executor="local")
        paths[job] = root / spec.name
    return paths


def _refuse_whole_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way of reading the whole history fail: ``load_results``, ``.history`` of an
    opened result set, and the store's read of a whole table."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the whole history was read")

    read_table = ResultsStore.read_table

    def read_table_but_history(self: ResultsStore, kind: str, *args: Any, **kw: Any) -> Any:
        if kind == "history":
            refuse()
        return read_table(self, kind, *args, **kw)

    monkeypatch.setattr(loading_module, "load_results", refuse)
    monkeypatch.setattr(ResultSet, "history", property(refuse))
    monkeypatch.setattr(ResultsStore, "read_table", read_table_but_history)


def _traces(figure: dict[str, Any]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Each trace of a figure's JSON form: its name, x and y."""
    return [(t["name"], _array(t["x"]), _array(t["y"])) for t in figure["data"]]


def _array(value: Any) -> np.ndarray:
    if isinstance(value, dict):  # Plotly's binary form of a numpy array
        data = base64.b64decode(value["bdata"])
        return np.frombuffer(data, dtype=np.dtype(value["dtype"])).astype(np.float64)
    return np.asarray(value, dtype=np.float64)


@pytest.mark.parametrize("name", ["moons_lr_init", "seed_sine"])
def test_report_interactive_and_the_live_view_never_read_the_whole_history(
    shipped: dict[str, Path], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interactive report of an opened result set is that of the loaded one, byte for byte,
    and the live view draws the same curves."""
    import plotly.io as pio

    from gdsearch.report.interactive import figures

    whole = write_interactive(load_results(shipped[name]), tmp_path / "loaded.html")
    curves = json.loads(pio.to_json(figures(load_results(shipped[name]))[0]))
    _refuse_whole_history(monkeypatch)
    for whole_history in (
        lambda: gdsearch.load_results(shipped[name]),
        lambda: open_results(shipped[name]).history,
    ):
        with pytest.raises(AssertionError, match="whole history"):
            whole_history()  # the guard holds
    report = tmp_path / "opened.html"
    assert cli.main(["report", str(shipped[name]), "--interactive", "-o", str(report)]) == 0
    assert report.read_bytes() == whole.read_bytes()
    state = LiveState(str(shipped[name])).snapshot()
    assert state["done"] == len(open_results(shipped[name]).trials) and "error" not in state
    live = json.loads(state["figures"][0])
    assert live["layout"] == curves["layout"]
    assert len(_traces(live)) == len(_traces(curves))
    for (name_live, x_live, y_live), (name_report, x, y) in zip(
        _traces(live), _traces(curves), strict=True
    ):
        assert name_live == name_report
        np.testing.assert_array_equal(x_live, x)
        np.testing.assert_allclose(y_live, y, rtol=1e-12)


def test_w1_curves_are_the_medians_over_seeds_of_the_whole_history_at_the_drawn_epochs(
    shipped: dict[str, Path],
) -> None:
    from gdsearch.report.drawn import epochs_to_draw, read_curves

    loaded = load_results(shipped["moons_lr_init"])
    curves = read_curves(open_results(shipped["moons_lr_init"]))
    assert not curves.per_trial and curves.log_epochs  # W1's SSE falls early
    merged = loaded.history.merge(loaded.trials, on="trial_id")
    medians = merged.groupby(["init", "lr", "epoch"])["sse"].median()
    ends = medians.reset_index().groupby(["init", "lr"])["epoch"].transform("max").to_numpy()
    drawn = epochs_to_draw(int(loaded.history["epoch"].max()))
    expected = medians[
        np.isin(medians.index.get_level_values("epoch"), drawn)
        | (medians.index.get_level_values("epoch") == ends)
    ]
    got = curves.frame.set_index(["init", "lr", "epoch"])["median_sse"].sort_index()
    assert len(drawn) < 250 and got.index.equals(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_few_trials_are_drawn_one_line_each_at_the_drawn_epochs_and_their_last(
    shipped: dict[str, Path],
) -> None:
    from gdsearch.report.drawn import epochs_to_draw, read_curves

    loaded = load_results(shipped["seed_sine"])
    curves = read_curves(open_results(shipped["seed_sine"]))
    history = loaded.history
    last = history.groupby("trial_id")["epoch"].transform("max")
    keep = history["epoch"].isin(epochs_to_draw(int(history["epoch"].max())))
    expected = history[keep | (history["epoch"] == last)].reset_index(drop=True)
    assert curves.per_trial and curves.log_epochs  # every rate settles within 100 of 20,000
    assert len(expected) < 13 * 400 and (history["epoch"].max() == 20_000)
    pd.testing.assert_frame_equal(curves.frame, expected[["trial_id", "epoch", "sse"]])


def test_the_live_view_reads_each_part_once_and_follows_a_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh reads only the parts committed since the last one; parts a compaction replaces
    go, the part it writes is read once, and the page shows what it showed before."""
    from gdsearch.results.compact import compact_results

    spec = parse_job(JOB, str(tmp_path / "job.toml"))
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / "results" / spec.name)
    store.prepare(spec.source)
    units = [[t for t in spec.trials() if t.hidden == h] for h in ((), (16,), (4, 4))]
    reads: list[tuple[str, str]] = []
    read_part = ResultsStore.read_part

    def counted(self: ResultsStore, kind: str, name: str, *args: Any, **kw: Any) -> Any:
        reads.append((kind, name))
        return read_part(self, kind, name, *args, **kw)

    monkeypatch.setattr(ResultsStore, "read_part", counted)
    state = LiveState(store.location)
    assert state.snapshot()["done"] == 0 and reads == []
    first = store.write_part(*train_unit(X, Y, units[0]))
    one = state.snapshot()
    assert one["done"] == 6 and sorted(reads) == [("history", first), ("trials", first)]
    reads.clear()
    assert "figures" not in state.snapshot(one["version"]) and reads == []  # nothing new
    new = {store.write_part(*train_unit(X, Y, unit)) for unit in units[1:]}
    three = state.snapshot()
    assert three["done"] == 18 and {name for _, name in reads} == new and len(reads) == 4
    compact_results(store.location)
    (merged,) = store.committed("trials")
    reads.clear()
    after = state.snapshot()
    assert after["done"] == 18 and after["parts"] == 1 and "error" not in after
    assert sorted(reads) == [("history", merged), ("trials", merged)]
    assert after["figures"] == three["figures"]


def test_the_curves_show_one_group_at_a_time_and_the_landscapes_one_trial(
    tmp_path: Path,
) -> None:
    from gdsearch.report.interactive import figures
    from gdsearch.search.landscapes import draw_landscapes

    location = stored(tmp_path, JOB)
    store = ResultsStore(location)
    store.write_manifest({"name": "interactive-test", "job_file": str(tmp_path / "job.toml")})
    (tmp_path / "job.toml").write_text(JOB)
    charts = figures(open_results(location))
    assert len(charts) == 3  # no landscape stored: no landscape chart
    curves = charts[0]
    groups = list(dict.fromkeys(trace.legendgroup for trace in curves.data))
    assert len(groups) == 3  # one per architecture
    shown = [trace.legendgroup for trace in curves.data if trace.visible]
    assert set(shown) == {groups[0]}  # the first group only, at the start
    menu = next(m for m in curves.layout.updatemenus if m.type == "dropdown")
    assert [b.label for b in menu.buttons] == groups
    for button, group in zip(menu.buttons, groups, strict=True):
        visible = button.args[0]["visible"]
        assert [t.legendgroup for t, v in zip(curves.data, visible, strict=True) if v] == [
            t.legendgroup for t in curves.data if t.legendgroup == group
        ]
    draw_landscapes(location, executor="local", show_progress=False)
    landscapes = figures(open_results(location))[3]
    menu = landscapes.layout.updatemenus[0]
    drawn = len(open_results(location).landscape_trials)
    assert len(menu.buttons) == drawn
    shown = [trace for trace in landscapes.data if trace.visible]
    assert [type(t).__name__ for t in shown] == ["Contour", "Contour", "Scatter"]
    plane = shown[0]
    assert "α" in plane.hovertemplate and "β" in plane.hovertemplate
    assert "SSE %{customdata" in plane.hovertemplate


def test_the_live_view_draws_held_out_error_where_the_job_holds_some(tmp_path: Path) -> None:
    job = tmp_path / "held.toml"
    job.write_text(JOB.replace("n_samples = 50", "n_samples = 50\nvalidation = 0.2"))
    ran = gdsearch.run_search(job, tmp_path / "results", executor="local", show_progress=False)
    state = LiveState(ran.path).snapshot()
    assert len(state["figures"]) == 3
    curves = json.loads(state["figures"][2])
    assert curves["layout"]["title"]["text"].startswith("Held-out SSE per epoch")
    assert any(len(trace["y"]) for trace in curves["data"])
    plain = LiveState(str(stored(tmp_path / "plain", JOB))).snapshot()
    assert len(plain["figures"]) == 2  # nothing held out: no held-out chart
