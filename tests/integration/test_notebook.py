"""The worked notebook: committed without outputs, and run end to end as a user runs it."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.processes import processes_of

NOTEBOOK = REPO / "examples" / "learning_rates.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"
WIDGET = "application/vnd.jupyter.widget-view+json"

nbformat = pytest.importorskip("nbformat")


def test_the_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} has outputs: clear them before committing"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"
    assert "widgets" not in notebook.metadata  # a widget's saved state is an output too


def _outputs(notebook: Any) -> dict[str, list[Any]]:
    return {cell.id: cell.outputs for cell in notebook.cells if cell.cell_type == "code"}


def _data(outputs: list[Any], mime: str) -> list[Any]:
    return [o["data"][mime] for o in outputs if mime in o.get("data", {})]


@pytest.mark.ray
def test_the_notebook_runs_and_shows_progress_best_rates_and_figures_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in a fresh kernel in an empty folder, with a Ray temp dir of its own (a short path:
    Ray's socket names must fit), which nothing is left running in afterwards."""
    nbclient = pytest.importorskip("nbclient")
    ray_tmp = tempfile.mkdtemp(prefix="gdnb-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    try:
        client = nbclient.NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()
        assert processes_of(ray_tmp) == []  # run_search stopped the Ray it started
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    out = _outputs(notebook)
    assert _data(out["job"], "text/plain") == ["36"]
    assert _data(out["run"], WIDGET), "the progress bar is a widget in a notebook"
    assert "ran=36" in _data(out["run"], "text/plain")[-1]
    (summary,) = _data(out["results"], "text/html")
    assert "<strong>notebook-sine</strong>: 36 trials" in summary and "tie: 4 rates" in summary
    (best,) = _data(out["best"], "text/html")
    assert "best_lrs" in best
    for figure in ("curves", "final", "linear"):
        (image,) = _data(out[figure], "image/png")  # inline, and once
        assert base64.b64decode(image).startswith(PNG)
    stored = tmp_path / "results" / "notebook-sine"
    assert (stored / "job.toml").is_file() and (stored / "manifest.json").is_file()
    assert not [o for cell in out.values() for o in cell if o.get("output_type") == "error"]
