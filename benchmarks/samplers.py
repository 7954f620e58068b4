"""Model-based search: TPE against random and grid search within one budget, and gdsearch's TPE
in batches against Optuna's own sequential loop running a plain numpy trainable."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.harness import REPO, child, cli_child, job_variant, table

JOB = REPO / "jobs" / "moons_tpe.toml"
SEEDS = 5
GRID = {  # 4 lr × 2 init × 4 widths × 2 momenta: the budget's 64 points
    'sampler = "tpe"': 'sampler = "grid"',
    "budget = 64\n": "",
    "batch = 8\n": "",
    'objective = "final_val_sse"\n': "",
    "lr = { loguniform = [1e-3, 3.0] }": "lr = { log = [1e-3, 3.0], num = 4 }",
    'init = ["xavier", "he", "normal"]': 'init = ["xavier", "he"]',
    "momentum = [0.0, 0.5, 0.9]": "momentum = [0.0, 0.9]",
}
WALL_TARGET = 0.2
"""gdsearch's TPE in batches within this share of Optuna's sequential loop's time."""


def samplers(folder: Path, runs: int, seeds: int = SEEDS) -> dict[str, float]:
    """The lowest held-out SSE each way of searching finds within 64 trials of the moons
    problem (median over ``seeds`` job seeds, which seed the samplers; the data stay the same),
    and the time gdsearch's TPE takes against Optuna's sequential loop (median of ``runs``)."""
    found: dict[str, list[float]] = {"tpe": [], "random": [], "grid": []}
    for seed in range(seeds):
        seeded = {"seed = 0\n": f"seed = {seed}\n", "noise = 0.1\n": "noise = 0.1\nseed = 0\n"}
        for sampler in ("tpe", "random"):
            job = job_variant(
                JOB,
                folder,
                f"moons-{sampler}-{seed}",
                **seeded,
                **{'sampler = "tpe"': f'sampler = "{sampler}"'},
            )
            found[sampler].append(child("sampled-run", str(job))["best"])
        grid = job_variant(JOB, folder, f"moons-grid-{seed}", **seeded, **GRID)
        found["grid"].append(_grid_best(grid))
    medians = {k: statistics.median(v) for k, v in found.items()}
    table(
        f"Best held-out SSE within 64 trials, moons (median of {seeds} seeds)",
        ["search", "median", *[f"seed {s}" for s in range(seeds)]],
        [[name, medians[name], *values] for name, values in found.items()],
    )
    ours = [child("sampled-run", str(JOB), "twice") for _ in range(runs)]
    loop = [child("optuna-loop", str(JOB), "64") for _ in range(runs)]
    whole = [
        cli_child(["run", str(JOB), "--results-dir", str(folder / "w"), "--fresh"])
        for _ in range(runs)
    ]
    walls = {
        "gdsearch TPE, batches of 8 (the run)": _median(ours, "train_s"),
        "gdsearch, its process's first run (imports, kernel load)": _median(ours, "first_s"),
        "Optuna's loop, plain numpy (optimize)": _median(loop, "train_s"),
        "gdsearch run (whole process)": statistics.median(w["wall_s"] for w in whole),
        "Optuna's loop (whole process)": _median(loop, "wall_s"),
    }
    base = walls["Optuna's loop, plain numpy (optimize)"]
    table(
        f"64 trials of moons by TPE (median of {runs} runs)",
        ["method", "wall s", "× Optuna's loop"],
        [[what, wall, wall / base] for what, wall in walls.items()],
    )
    ratio = walls["gdsearch TPE, batches of 8 (the run)"] / base
    table(
        "Targets",
        ["target", "bound", "measured", "holds"],
        [
            [
                "TPE's best below random's (median)",
                "<",
                medians["tpe"] / medians["random"],
                "yes" if medians["tpe"] < medians["random"] else "**no**",
            ],
            [
                "gdsearch TPE ÷ Optuna's loop",
                f"<= {WALL_TARGET}",
                ratio,
                "yes" if ratio <= WALL_TARGET else "**no**",
            ],
        ],
    )
    return {"tpe / random": medians["tpe"] / medians["random"], "tpe wall": ratio}


def _grid_best(job: Path) -> float:
    """The lowest held-out SSE of a grid's trials that did not diverge."""
    import tempfile

    import gdsearch

    summary = gdsearch.run_search(
        job, tempfile.mkdtemp(prefix="grid-"), executor="local", show_progress=False
    )
    trials = gdsearch.load_results(summary.path).trials
    return float(trials.loc[trials["status"] != "diverged", "final_val_sse"].min())


def _median(results: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in results)
