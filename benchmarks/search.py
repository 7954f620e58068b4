"""gdsearch against itself: successive halving, a small job's executor, the update rules, the
ways of doing the arithmetic, and another source tree's gdsearch."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    SEED,
    W1,
    W1_HALVING,
    child,
    cli_child,
    job_variant,
    median_child,
    table,
)


def halving(runs: int) -> None:
    """W1 with and without successive halving, on an embedded Ray: compute spent, and the best
    lr per init."""
    full = median_child("gdsearch-on-ray", runs, str(W1))
    halved = median_child("gdsearch-on-ray", runs, str(W1_HALVING))
    rows = []
    for name, run in (("W1, every trial to the end", full), ("W1, halving", halved)):
        best = ", ".join(f"{init} {lr:.3g}" for init, lr in sorted(run["best_lr"].items()))
        share = f"{run['trial_epochs'] / full['trial_epochs']:.0%}"
        rows.append([name, run["trial_epochs"], share, run["wall_s"], f"{run['busy']:.0%}", best])
    table(
        f"W1 with successive halving ({W1_HALVING.name}: rungs 30, 90, 270, 810; η = 3; "
        f"embedded Ray; median of {runs})",
        ["run", "trial-epochs", "of W1", "wall s", "CPUs busy training", "best lr per init"],
        rows,
    )
    same = sorted(i for i in full["best_lr"] if halved["best_lr"].get(i) == full["best_lr"][i])
    print(
        f"\nsame best lr under halving: {len(same)} of {len(full['best_lr'])} inits"
        f" ({', '.join(same) or 'none'})"
    )


def small_job(runs: int) -> None:
    """The seed job end to end as `gdsearch run` chooses (in this process) and forced onto an
    embedded Ray; whole processes, imports in."""
    auto = median_child("gdsearch-run", runs, str(SEED), "auto")
    on_ray = median_child("gdsearch-run", runs, str(SEED), "ray")
    assert auto["digest"] == on_ray["digest"], "histories differ"
    table(
        f"A small job end to end ({SEED.name}: 13 trials x 20,000 epochs; median of {runs}, "
        "whole processes)",
        ["how", "wall s", "run_search s"],
        [
            [
                f"gdsearch run, --executor auto (chose {auto['executor']})",
                auto["wall_s"],
                auto["search_s"],
            ],
            ["gdsearch run, --executor ray", on_ray["wall_s"], on_ray["search_s"]],
        ],
    )


UPDATE_RULES = {
    "plain gradient descent": "",
    "momentum 0.9": "momentum = 0.9",
    "Nesterov 0.9, weight decay 1e-4, cosine": (
        'momentum = 0.9\nnesterov = true\nweight_decay = 1e-4\nlr_schedule = "cosine"'
    ),
    "mini-batches of 32": "batch_size = 32",
    "plain, sharpness measured every 10 epochs": "sharpness_every = 10",
}
"""W1 under each update rule, and with its sharpness measured, for the cost of a trial-epoch."""


def update_rules(folder: Path, runs: int) -> None:
    """The cost of a trial-epoch under each update rule: W1 in one process, no Ray."""
    rows: list[list[Any]] = []
    for name, settings in UPDATE_RULES.items():
        job = job_variant(
            W1, folder, f"rule-{len(rows)}", **{"epochs = 1000": f"epochs = 1000\n{settings}"}
        )
        r = median_child("populations", runs, str(job))
        cost = r["train_s"] / r["trial_epochs"] * 1e6
        rows.append(
            [name, r["trial_epochs"], r["train_s"], cost, cost / (rows[0][3] if rows else cost)]
        )
    table(
        f"W1 per update rule (gdsearch, one process, no Ray; training alone; median of {runs})",
        ["update rule", "trial-epochs", "training s", "µs per trial-epoch", "× plain"],
        rows,
    )


NETWORKS = {"2-16-1 tanh (W1)": "[16]", "2-16-16-1 tanh": "[16, 16]", "2-64-1 tanh": "[64]"}
WAYS = {
    "compiled kernel": ("portable", {}),
    "numpy portable path": ("portable", {"GDSEARCH_KERNEL": "numpy"}),
    'numerics = "blas"': ("blas", {}),
}
"""The ways gdsearch can do its arithmetic: the first two give the same bits on any machine."""


def numerics(folder: Path, runs: int) -> None:
    """The cost of a trial-epoch each way gdsearch can train, per network: one process, no
    Ray, the ways' runs interleaved."""
    rows: list[list[Any]] = []
    for name, hidden in NETWORKS.items():
        timed: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
        for _ in range(runs):
            for way, (path, env) in WAYS.items():
                job = job_variant(
                    W1,
                    folder,
                    f"numerics-{len(rows)}-{path}",
                    **{
                        "epochs = 1000": f'epochs = 1000\nnumerics = "{path}"',
                        "hidden = [[16]]": f"hidden = [{hidden}]",
                    },
                )
                timed[way].append(child("populations", str(job), env=env))
        cost = {
            w: statistics.median(r["train_s"] / r["trial_epochs"] * 1e6 for r in rs)
            for w, rs in timed.items()
        }
        same = timed["compiled kernel"][0]["digest"] == timed["numpy portable path"][0]["digest"]
        rows.append(
            [
                name,
                *cost.values(),
                cost["compiled kernel"] / cost['numerics = "blas"'],
                "yes" if same else "**no**",
            ]
        )
    table(
        f"A trial-epoch each way gdsearch trains (µs; one process, no Ray; median of {runs}, "
        "interleaved)",
        ["network", *WAYS, "kernel / blas", "kernel's bits = numpy path's"],
        rows,
    )


def against(tree: Path, runs: int) -> None:
    """`gdsearch run` on W1 with this tree's gdsearch and another's (a git worktree of an
    earlier commit, say), each run of one followed by one of the other; whole processes."""
    mine: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(runs):
            for timings, source in ((mine, None), (theirs, tree)):
                results = Path(folder) / f"{i}-{'other' if source else 'this'}"
                timings.append(cli_child(["run", str(W1), "--results-dir", str(results)], source))
    a = statistics.median(r["wall_s"] for r in mine)
    b = statistics.median(r["wall_s"] for r in theirs)
    table(
        f"`gdsearch run` on W1, this tree against {tree} (median of {runs}, interleaved)",
        ["", "this tree s", "other tree s", "this / other"],
        [["end to end", a, b, a / b]],
    )
