"""Training speed against what a user would write instead, and the targets it is held to.

The comparators are :mod:`benchmarks.plain` (a numpy MLP a user writes: ``@`` through BLAS,
``np.tanh``) in a loop and stacked, and Ray Tune running that plain trainable; gdsearch's own
code is never its own comparator. Every figure is the median of ``runs`` fresh processes (one
BLAS thread each), the methods' runs interleaved so that a drift of the machine's speed falls
on all; the ratios are between rows measured in the same invocation.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    SEED,
    W1,
    child,
    gdsearch_run,
    job_variant,
    median_child,
    median_of,
    scaled_w1,
    table,
)
from benchmarks.measures import write_inputs

NETWORKS = {
    "2-16-1 tanh (W1)": ("W1 trial-epoch", {}),
    "2-16-16-1 tanh": ("2-16-16-1 trial-epoch", {"hidden = [[16]]": "hidden = [[16, 16]]"}),
}
"""Networks whose trial-epoch is timed (the key of their target, the job's edits): W1, and W1
one hidden layer deeper."""
SHARPNESS = {"epochs = 1000": "epochs = 1000\nsharpness_every = 10"}
TARGETS: list[tuple[str, str, float]] = [
    ("W1 trial-epoch, gdsearch / stacked numpy", "<=", 0.33),
    ("2-16-16-1 trial-epoch, gdsearch / stacked numpy", "<=", 0.5),
    ("W1 end to end, plain loop / gdsearch", ">=", 2.0),
    ("W1 end to end, Ray Tune with reuse_actors / gdsearch", ">=", 3.0),
    ("W1 x 16 end to end, plain loop / gdsearch", ">=", 5.0),
    ("seed job end to end, gdsearch / stacked numpy (warm cache)", "<=", 2.5),
    ("W1 trial-epoch, sharpness every 10 epochs / without", "<=", 1.5),
]
"""Each speed target: what is measured, and the bound it must meet."""


def trial_epochs(folder: Path, runs: int, reference: bool = True) -> dict[str, float]:
    """Print the cost of a trial-epoch in one process, no Ray, per network: gdsearch (and its
    numpy reference path, ``reference``), the plain loop and plain stacked numpy; return the
    targets' ratios."""
    rows: list[list[Any]] = []
    ratios: dict[str, float] = {}
    for name, (key, edits) in NETWORKS.items():
        job = job_variant(W1, folder, f"speed-{len(rows)}", **edits)
        inputs = str(write_inputs(job, folder / f"{job.stem}.npz"))
        kinds: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
            "gdsearch": ("populations", (str(job),), {}),
            "plain loop": ("plain-loop", (inputs,), {}),
            "stacked numpy": ("plain-stacked", (inputs,), {}),
        }
        if reference:
            kinds["gdsearch, numpy path"] = (
                "populations",
                (str(job),),
                {"GDSEARCH_KERNEL": "numpy"},
            )
        timed = _interleaved(kinds, runs)
        cost = {k: r["train_s"] / r["trial_epochs"] * 1e6 for k, r in timed.items()}
        assert timed["gdsearch"].get("kernel"), "the compiled kernel did not run"
        if reference:
            assert timed["gdsearch"]["digest"] == timed["gdsearch, numpy path"]["digest"]
        ratio = cost["gdsearch"] / cost["stacked numpy"]
        ratios[key] = ratio
        rows.append(
            [
                name,
                timed["gdsearch"]["trial_epochs"],
                cost["gdsearch"],
                cost.get("gdsearch, numpy path", float("nan")),
                cost["plain loop"],
                cost["stacked numpy"],
                ratio,
            ]
        )
        _agreement(name, timed["gdsearch"], timed["plain loop"])
    table(
        f"The cost of a trial-epoch, one process, no Ray: µs (median of {runs}, interleaved)",
        [
            "network",
            "gdsearch trial-epochs",
            "gdsearch",
            "gdsearch's numpy path",
            "plain loop",
            "stacked numpy",
            "gdsearch / stacked",
        ],
        rows,
    )
    sharp = job_variant(W1, folder, "speed-sharpness", **SHARPNESS)
    timed = _interleaved(
        {"with": ("populations", (str(sharp),), {}), "without": ("populations", (str(W1),), {})},
        runs,
    )
    per = {k: r["train_s"] / r["trial_epochs"] * 1e6 for k, r in timed.items()}
    ratios["sharpness"] = per["with"] / per["without"]
    table(
        "W1 with its sharpness measured every 10 epochs (gdsearch, one process, no Ray)",
        ["", "µs per trial-epoch", "× without"],
        [
            ["without", per["without"], 1.0],
            ["sharpness every 10 epochs", per["with"], ratios["sharpness"]],
        ],
    )
    return ratios


def _interleaved(
    kinds: dict[str, tuple[str, tuple[str, ...], dict[str, str]]], runs: int
) -> dict[str, dict[str, Any]]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in kinds}
    for _ in range(runs):
        for name, (kind, args, env) in kinds.items():
            results[name].append(child(kind, *args, env=env))
    return {name: median_of(rs) for name, rs in results.items()}


def _agreement(label: str, gdsearch: dict[str, Any], other: dict[str, Any]) -> None:
    """How far a plain comparator's histories are from gdsearch's: they use BLAS and np.tanh,
    so they agree to rounding, and may differ at near-critical rates on whether they diverge."""
    if "finals" not in gdsearch:
        return
    close = differ = 0
    for trial_id, (length, final) in other["finals"].items():
        mine = gdsearch["finals"].get(trial_id)
        if mine is None:
            continue
        if mine[0] != length:
            differ += 1
        elif final is not None and abs(mine[1] - final) <= 1e-6 * abs(mine[1]):
            close += 1
    print(
        f"\n{label}: the plain loop ends within 1e-6 (relative) of gdsearch on {close} of "
        f"{len(other['finals'])} trials; {differ} stop at another epoch"
    )


def end_to_end(folder: Path, runs: int, scale: int, tune_trials: int) -> dict[str, float]:
    """Print whole processes: `gdsearch run` (the kernel's cache warm) against the plain loop,
    stacked numpy and Ray Tune on W1, W1 x ``scale`` and the seed job; return the targets'
    ratios."""
    ratios: dict[str, float] = {}
    rows: list[list[Any]] = []
    jobs = [("W1", W1, False), ("seed job", SEED, False)]
    if scale > 1:
        jobs.insert(1, (f"W1 x {scale}", scaled_w1(scale, folder), True))
    for label, job, large in jobs:
        inputs = str(write_inputs(job, folder / f"{job.stem}-e2e.npz"))
        gdsearch_run(job, folder)  # the kernel compiled and cached beforehand
        gd = _median([gdsearch_run(job, folder) for _ in range(runs)])
        methods: list[tuple[str, dict[str, Any]]] = [("gdsearch run", gd)]
        if label == "W1":
            on_ray = _median([gdsearch_run(job, folder, "--executor", "ray") for _ in range(runs)])
            methods.append(("gdsearch run --executor ray", on_ray))
        loop = median_child("plain-loop", 1 if large else runs, inputs)
        trials = loop["trials"]
        methods.append(("plain loop", loop))
        if not large:
            methods.append(("stacked numpy", median_child("plain-stacked", runs, inputs)))
        if label == "W1" and tune_trials:
            every = max(1, trials // tune_trials)
            for reuse in ("1", "0"):
                step = "1" if reuse == "1" else str(every)  # Tune's defaults: a sample, scaled
                t = child("tune", inputs, "0", reuse, step)
                t["wall_s"] = t["ray_start_s"] + t["search_s"] * trials / t["trials"]
                name = "Ray Tune, " + ("reuse_actors" if reuse == "1" else "defaults")
                if t["trials"] < trials:
                    name += f" (scaled from {t['trials']} trials)"
                methods.append((name, t))
        base = gd["wall_s"]
        for name, r in methods:
            rows.append([label, name, r.get("trials", trials), r["wall_s"], r["wall_s"] / base])
        walls = {name.split(" (")[0]: r["wall_s"] for name, r in methods}
        if label == "W1":
            ratios["W1 loop"] = walls["plain loop"] / base
            if tune_trials:
                ratios["W1 tune"] = walls["Ray Tune, reuse_actors"] / base
        elif large:
            ratios["W1 x 16 loop"] = walls["plain loop"] / base
        else:
            ratios["seed"] = base / walls["stacked numpy"]
    table(
        f"End to end, whole processes (imports and start-up in; median of {runs}; the kernel "
        "compiled beforehand)",
        ["workload", "method", "trials", "wall s", "× gdsearch"],
        rows,
    )
    return ratios


def cold_compile(folder: Path, runs: int) -> None:
    """Print `gdsearch run` on the seed job and W1 with the kernel's cache empty, against warm."""
    rows = []
    for label, job in (("seed job", SEED), ("W1", W1)):
        empty = [
            gdsearch_run(job, folder, env={"NUMBA_CACHE_DIR": tempfile.mkdtemp(dir=folder)})
            for _ in range(runs)
        ]
        warm = _median([gdsearch_run(job, folder) for _ in range(runs)])
        cold = statistics.median(r["wall_s"] for r in empty)
        rows.append([label, cold, warm["wall_s"], cold - warm["wall_s"]])
    table(
        "The kernel compiled from an empty cache (`gdsearch run`, whole process; median of "
        f"{runs})",
        ["job", "empty cache s", "warm cache s", "compiling s"],
        rows,
    )


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def targets(ratios: dict[str, float]) -> None:
    """Print each target, what was measured and whether it holds."""
    measured = [
        ratios.get(k, float("nan"))
        for k in (
            "W1 trial-epoch",
            "2-16-16-1 trial-epoch",
            "W1 loop",
            "W1 tune",
            "W1 x 16 loop",
            "seed",
            "sharpness",
        )
    ]
    rows = []
    for (what, sense, bound), value in zip(TARGETS, measured, strict=True):
        holds = value <= bound if sense == "<=" else value >= bound
        rows.append([what, f"{sense} {bound}", value, "yes" if holds else "**no**"])
    table("Targets", ["target", "bound", "measured", "holds"], rows)
