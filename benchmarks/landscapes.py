"""Loss landscapes: `gdsearch landscape` on W1 against training W1 itself, whole processes."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import W1, child, cli_child, gdsearch_run, table

TARGET = 2.0
"""The four kinds for all of W1's trials at 51 × 51, end to end, within this many times the
time of training W1 (``gdsearch run``) in the same invocation."""


def landscapes(folder: Path, runs: int, resolution: int = 51) -> dict[str, float]:
    """`gdsearch run` of W1 (in this process, as auto picks for it) against `gdsearch
    landscape --all` of its 256 trials at ``resolution`` × ``resolution``, in this process and
    on an embedded Ray, and the default choice (each group's three rates); medians of ``runs``
    whole processes. Returns each row's ratio to training."""
    stored = Path(tempfile.mkdtemp(prefix="landscape-", dir=folder))
    cli_child(["run", str(W1), "--results-dir", str(stored), "--no-progress"])
    results = str(stored / "moons-lr-init")

    def median(command: list[str]) -> float:
        return statistics.median(cli_child(command)["wall_s"] for _ in range(runs))

    common = ["landscape", results, "--fresh", "--no-progress", "--resolution", str(resolution)]
    training = statistics.median(
        gdsearch_run(W1, folder, "--executor", "local")["wall_s"] for _ in range(runs)
    )
    measured = {
        "gdsearch run W1 (training, in this process)": training,
        f"landscape --all ({resolution}²), in this process": median(
            [*common, "--all", "--executor", "local"]
        ),
        f"landscape --all ({resolution}²), embedded Ray": median(
            [*common, "--all", "--executor", "ray"]
        ),
        f"landscape, default choice ({resolution}²)": median([*common, "--executor", "local"]),
    }
    # The floor: the SSE at every grid point of every trial, by the kernel's forward pass.
    points = points_per_trial(results)
    floor = [child("landscape-evaluations", str(W1), "256", str(points)) for _ in range(runs)]
    measured[f"its {points:,} SSE evaluations a trial alone (the floor)"] = statistics.median(
        f["train_s"] for f in floor
    )
    rows = [[what, wall, wall / training] for what, wall in measured.items()]
    table(
        f"Loss landscapes of W1 (whole processes; median of {runs} runs)",
        ["command", "wall s", "× training"],
        rows,
    )
    best = min(wall for what, wall in measured.items() if "--all" in what) / training
    table(
        "Target",
        ["target", "bound", "measured", "holds"],
        [
            [
                f"all four kinds, W1, {resolution}² ÷ training W1",
                f"<= {TARGET}",
                best,
                "yes" if best <= TARGET else "**no**",
            ]
        ],
    )
    return {what: wall / training for what, wall in measured.items()}


def points_per_trial(results: str) -> int:
    """How many weight vectors a trial's stored landscapes evaluated (every row but the
    path's, which training measured)."""
    import gdsearch

    grids = gdsearch.load_results(results).landscapes
    grids = grids[grids["kind"] != "path"]
    return len(grids) // grids["trial_id"].nunique()
