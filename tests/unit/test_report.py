"""Reports: self-contained HTML whose images decode as PNGs, Markdown with PNG files, the CLI."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gdsearch import cli
from gdsearch.job.spec import parse_job
from gdsearch.report import build, predicted_limits
from gdsearch.report.panels import png
from gdsearch.results.loading import load_results
from gdsearch.results.store import ResultsStore
from gdsearch.search.unit import train_unit

PNG = b"\x89PNG\r\n\x1a\n"

JOB = """
[job]
name = "report-test"
seed = 1

[data]
dataset = "moons"
n_samples = 50

[train]
epochs = 80

[search]
lr = [0.01, 0.1, 1.0, 30.0]
init = ["xavier", "normal"]
hidden = [[], [4]]
seed = [0, 1]
"""


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A result set written through the store, trained without Ray (the report never needs it)."""
    job = tmp_path / "report.toml"
    job.write_text(JOB)
    spec = parse_job(JOB, str(job))
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / "results" / spec.name)
    store.prepare(spec.source)
    for hidden in ((), (4,)):
        unit = [t for t in spec.trials() if t.hidden == hidden]
        store.write_part(*train_unit(X, Y, unit))
    store.write_manifest({"name": spec.name, "job_file": str(job)})
    return Path(store.location)


def test_html_report_is_one_file_with_decodable_pngs_and_no_network(
    results_dir: Path, tmp_path: Path
) -> None:
    out = build(load_results(results_dir), tmp_path / "r.html")
    text = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3
    assert all(base64.b64decode(image).startswith(PNG) for image in images)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "Summary" in text and "smallest lr that diverged" in text
    assert text.count("<h2>") == 5


def test_markdown_report_writes_pngs_beside_it(results_dir: Path, tmp_path: Path) -> None:
    out = build(load_results(results_dir), tmp_path / "md" / "r.md", "md")
    linked = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", out.read_text())
    assert len(linked) == 3
    assert all((out.parent / name).read_bytes().startswith(PNG) for name in linked)


def test_predicted_limit_of_the_linear_groups_is_the_exact_one(results_dir: Path) -> None:
    from gdsearch.stability.limits import linear_lr_limit

    limits = predicted_limits(load_results(results_dir))
    X, _ = parse_job(JOB).load_data()
    linear = {k: v for k, v in limits.items() if "linear" in k}
    assert len(linear) == 2 and len(limits) == 4
    assert all(v == pytest.approx(linear_lr_limit(X)) for v in linear.values())
    assert all(np.isfinite(v) and v > 0 for v in limits.values())


def test_cli_report_writes_into_the_results_and_rejects_a_bad_format(
    results_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(results_dir)]) == 0
    assert (results_dir / "report.html").read_bytes().startswith(b"<!DOCTYPE html>")
    with pytest.raises(SystemExit) as bad:
        cli.main(["report", str(results_dir), "--format", "pdf"])
    assert bad.value.code == 2


def test_compare_puts_result_sets_on_shared_axes_in_one_html(
    results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gdsearch.report import compare

    other = tmp_path / "copy"
    shutil.copytree(results_dir, other)
    out = compare([load_results(results_dir), load_results(other)], tmp_path / "c.html")
    text = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert text.count("<td>report-test</td>") == 8  # 4 groups from each of the two sets
    assert cli.main(["compare", str(results_dir), "-o", str(tmp_path / "one.html")]) == 2
    assert "two or more" in capsys.readouterr().err


def test_facets_put_architectures_in_rows_and_inits_in_columns(results_dir: Path) -> None:
    from gdsearch.report.panels import facet_panels, groups

    results = load_results(results_dir)
    fig, axes, panels = facet_panels(groups(results.trials))
    assert axes.shape == (2, 2)
    places = {label: ax.get_subplotspec().get_geometry()[2] for label, _, ax in panels}
    # rows: linear, then hidden 4; columns: normal, then xavier
    assert places == {
        "normal, hidden none (linear), tanh, scale 1": 0,
        "xavier, hidden none (linear), tanh": 1,
        "normal, hidden 4, tanh, scale 1": 2,
        "xavier, hidden 4, tanh": 3,
    }
    plt.close(fig)


SINE_JOB = """
[job]
name = "sine-report"

[data]
dataset = "sine"

[train]
epochs = 400

[search]
lr = [0.001, 0.01, 0.03, 0.05]
init = ["normal"]
seed = [0, 1]
"""


def test_linear_one_input_jobs_get_the_seed_notebook_pictures(tmp_path: Path) -> None:
    job = tmp_path / "sine.toml"
    job.write_text(SINE_JOB)
    spec = parse_job(SINE_JOB, str(job))
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / "results" / spec.name)
    store.prepare(spec.source)
    store.write_part(*train_unit(X, Y, spec.trials()))
    store.write_manifest({"name": spec.name, "job_file": str(job)})
    out = build(load_results(store.location), tmp_path / "r.md", "md")
    text = out.read_text()
    assert "## The linear model: SSE, its derivative, gradient-descent paths" in text
    assert (tmp_path / "r_linear.png").read_bytes().startswith(PNG)


def test_a_report_of_a_study_where_every_rate_diverged_is_written(tmp_path: Path) -> None:
    text = (
        '[job]\nname = "all-diverged"\n[data]\ndataset = "sine"\n[train]\nepochs = 50\n'
        "sharpness_every = 5\n[search]\nlr = [5.0, 10.0]\nhidden = [[3]]\n"
    )
    spec = parse_job(text, str(tmp_path / "job.toml"))
    X, Y = spec.load_data()
    store = ResultsStore(tmp_path / spec.name)
    store.prepare(text)
    store.write_part(*train_unit(X, Y, spec.trials()))
    results = load_results(store.location)
    assert set(results.trials["status"]) == {"diverged"}
    page = build(results, tmp_path / "report.html").read_text()
    assert "<h2>Summary</h2>" in page and "Sharpness during training" not in page


# --- figures: matplotlib Figures, scales from the data, ties said as ties --------------------


def _drawn(fig: Figure) -> Figure:
    """The figure laid out and drawn, as the report draws it, so its tick labels exist."""
    assert png(fig).startswith(PNG)
    return fig


def _legend_texts(fig: Figure) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def test_every_figure_is_a_matplotlib_figure_that_a_notebook_shows_and_pyplot_never_holds(
    results_dir: Path,
) -> None:
    from gdsearch.report import (
        figure_curves,
        figure_epochs_to_tolerance,
        figure_final_vs_lr,
    )

    results = load_results(results_dir)
    for make in (figure_curves, figure_final_vs_lr, figure_epochs_to_tolerance):
        fig = make(results)
        assert isinstance(fig, Figure)
        assert fig._repr_png_().startswith(PNG)  # what IPython shows inline
    assert plt.get_fignums() == []


def test_final_sse_equal_but_for_the_last_digits_is_plotted_relative_and_called_a_tie(
    tmp_path: Path,
) -> None:
    """The seed job's trouble: every tick read 4.31083 and one of equal fits was "best"."""
    from gdsearch.report import figure_final_vs_lr
    from tests.unit.test_summary import TIED, stored

    results = stored(tmp_path, TIED)
    fig = _drawn(figure_final_vs_lr(results))
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog" and "final SSE / lowest − 1" in ax.get_ylabel()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks)
    texts = _legend_texts(fig)
    assert "tie: 3 rates within 1e-6" in texts
    assert not any(text.startswith("best") for text in texts)
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "median over seeds"]
    excess = dict(zip(line.get_xdata(), line.get_ydata(), strict=True))
    assert all(excess[lr] <= 1e-6 for lr in (0.01, 0.02, 0.03))
    assert excess[0.001] > excess[0.002] > 1e-6  # the slow rates, still short of the line
    page = build(results, tmp_path / "tied.html").read_text(encoding="utf-8")
    assert "tie: 3 rates, 0.01 to 0.03" in page


def test_a_clear_winner_is_starred_with_its_rate(tmp_path: Path) -> None:
    from gdsearch.report import figure_final_vs_lr
    from tests.unit.test_summary import SPREAD, stored

    results = stored(tmp_path, SPREAD)
    texts = _legend_texts(_drawn(figure_final_vs_lr(results)))
    assert sorted(t for t in texts if t.startswith("best")) == sorted(
        f"best: lr {lr:.3g}" for lr in results.best()["lr"]
    )


def test_sse_curves_put_epochs_on_a_log_axis_where_the_action_is_early(tmp_path: Path) -> None:
    from gdsearch.report import figure_curves
    from tests.unit.test_summary import TIED, stored

    fig = _drawn(figure_curves(stored(tmp_path, TIED)))
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog"
    names = _legend_texts(fig)
    assert names == ["0.001", "0.002", "0.01", "0.02", "0.03", "0.05 (diverged)"]


def test_scales_follow_the_data() -> None:
    from gdsearch.report.panels import new_figure
    from gdsearch.report.scales import action_is_early, final_view, sse_axis

    epochs = np.arange(2001)
    fast = pd.DataFrame({0.1: 5 + 10 * 0.9**epochs, 0.03: 5 + 10 * 0.97**epochs}, index=epochs)
    slow = pd.DataFrame({0.1: 15 - epochs / 200.0}, index=epochs)
    assert action_is_early(fast) and not action_is_early(slow)
    assert not action_is_early(fast.iloc[:40])  # too few epochs for a log axis
    assert final_view(np.array([4.31, 4.3101, np.nan])) == "relative"
    fig = new_figure((4, 3))
    ax = fig.subplots()
    curves = pd.DataFrame({0.01: 10 - epochs[:5], 1.0: 10 * 100.0 ** epochs[:5]})
    sse_axis(ax, curves, kept=[0.01])
    assert ax.get_yscale() == "linear" and ax.get_ylim()[1] < 11  # the diverging one leaves
    assert final_view(np.array([4.31, 4.6])) == "linear"
    assert final_view(np.array([0.5, 40.0])) == "log"
    assert final_view(np.array([4.31])) == "linear"


def test_few_rates_get_distinct_styles_and_a_legend_and_many_a_colour_bar() -> None:
    from gdsearch.report.panels import LrStyles, new_figure

    few = LrStyles(pd.Series(np.geomspace(1e-3, 1e-1, 13)))
    styles = {(few.color(lr), few.line(lr)["linestyle"]) for lr in few.rates}
    assert len(styles) == 13
    fig = new_figure((4, 3))
    few.key(fig, fig.subplots())
    assert len(fig.legends) == 1 and len(fig.axes) == 1
    many = LrStyles(pd.Series(np.geomspace(1e-3, 1e-1, 40)))
    fig = new_figure((4, 3))
    many.key(fig, fig.subplots())
    assert not fig.legends and len(fig.axes) == 2  # the colour bar
    close = LrStyles(pd.Series([0.0100001, 0.0100002, 0.02]))
    assert [close.name(lr) for lr in close.rates] == ["0.0100001", "0.0100002", "0.02"]


def test_the_report_shows_each_landscape_figure_there_is(
    results_dir: Path, tmp_path: Path
) -> None:
    from gdsearch.search.landscapes import draw_landscapes

    trials = load_results(results_dir).trials
    assert (trials["status"] == "diverged").any()
    draw_landscapes(
        results_dir, filters=[("status", "==", "diverged")], executor="local", show_progress=False
    )
    text = build(load_results(results_dir), tmp_path / "r.html").read_text()
    assert "descent on the SSE over the plane of its path" in text
    assert "initial (α = 0) to its final weights" in text
    assert "sharpest direction" not in text  # no profile: every drawn trial diverged


def test_landscapes_get_three_figures_in_the_report_on_one_colour_scale(
    results_dir: Path, tmp_path: Path
) -> None:
    from gdsearch.report import figure_landscape_lines, figure_landscape_paths, figure_sharpest
    from gdsearch.search.landscapes import draw_landscapes

    results = load_results(results_dir)
    assert figure_landscape_paths(results) is None  # nothing drawn yet: no figure
    draw_landscapes(results_dir, executor="local", show_progress=False)
    results = load_results(results_dir)
    drawn = len(results.landscape_trials)
    paths = figure_landscape_paths(results)
    assert isinstance(paths, Figure)
    contours = [ax for ax in paths.axes if ax.collections and ax.get_title()]
    assert len(contours) == drawn  # a panel per drawn trial
    norms = {(c.norm.vmin, c.norm.vmax) for ax in contours for c in ax.collections[:1]}
    assert len(norms) == 1  # one colour scale for every panel
    for make in (figure_landscape_lines, figure_sharpest):
        fig = make(results)
        assert isinstance(fig, Figure) and fig._repr_png_().startswith(PNG)
    text = build(results, tmp_path / "r.html").read_text()
    assert text.count("data:image/png") == 6 and "Loss landscapes" in text
    assert plt.get_fignums() == []
