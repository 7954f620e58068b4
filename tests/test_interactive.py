"""The interactive report's charts: what they draw, read part by part."""

from __future__ import annotations

from pathlib import Path

import pytest

from gdsearch.job.spec import parse_job
from gdsearch.results.store import ResultsStore, load_results
from gdsearch.search.unit import train_unit

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
