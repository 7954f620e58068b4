"""Benchmark gdsearch against a plain numpy loop and Ray Tune on the moons learning-rate study.

    python benchmarks/bench.py                 # W1 and W1 x 16, Ray Tune on a sample of W1
    python benchmarks/bench.py --quick         # W1 only, one run each, no Tune
    python benchmarks/bench.py --loading-only  # only load_results against pandas.read_parquet
    python benchmarks/bench.py --numerics      # only the cost of the portable numerics
    python benchmarks/bench.py --reports       # gdsearch report, report --interactive and
                                               # show on W1, W1 x 16 and a synthetic
                                               # 100,000-trial set

W1 is jobs/moons_lr_init.toml (256 trials, 2-16-1 tanh, 1000 epochs); W1 x 16 the same job with
16 times the seeds (4,096 trials). Every measurement runs in a fresh Python process with one BLAS
thread per process; "wall" is that whole process (imports, Ray start-up and shutdown included)
unless a row says otherwise ("excluding Ray start-up" leaves out ray.init and the wait until its
workers take tasks), and each figure is the median of --runs runs. The table's ratios
are between rows measured in the same invocation. Every method's histories are checked to be
bit-identical, trial by trial, to the plain loop's (Tune's on the trials it ran).

Ray Tune (pip install -e '.[bench]') runs the same trainable, reporting once per trial (the whole
history in one report) or once per epoch, under Tune's defaults and with reuse_actors=True. Tune
spends about a second per trial under its defaults, so except for its fastest setting
(reuse_actors, one report per trial, run on all of W1) it runs on every k-th trial of W1
(--tune-trials, default 32) and its W1 figures are scaled: Ray start-up + fit time x 256 / trials.
The "wall s" of a Tune row is then that estimate; Tune's per-trial cost is flat, so it is close.

The loading table times gdsearch.load_results (everything, one init selected by a filter, every
10th epoch) against pandas.read_parquet of the same history directory, on the result sets the
gdsearch rows wrote: in one fresh process per result set, loads of each kind in turns, medians
of --load-repeats.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
W1 = REPO / "jobs" / "moons_lr_init.toml"
W1_HALVING = REPO / "jobs" / "moons_halving.toml"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- measurements, each run in its own process ------------------------------------------------


def _digest(histories: dict[str, Any]) -> dict[str, str]:
    """A hash of each trial's history, so that methods can be compared value for value."""
    import numpy as np

    return {
        trial_id: hashlib.sha256(np.asarray(values, dtype=np.float64).tobytes()).hexdigest()[:16]
        for trial_id, values in histories.items()
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_ray(logging_level: int) -> None:
    """Start an embedded Ray and wait until every CPU has run a task.

    ray.init returns before its worker processes can take work (here about 0.6 s later); that
    wait is Ray's start-up, not the search's, so both start-up figures include it.
    """
    import ray

    ray.init(address="local", include_dashboard=False, logging_level=logging_level)

    @ray.remote(num_cpus=1)
    def ready() -> int:
        return 1

    ray.get([ready.remote() for _ in range(int(ray.cluster_resources()["CPU"]))])


def measure_gdsearch(job: str) -> dict[str, Any]:
    """Embedded Ray as `gdsearch run` starts it; times start-up, the search and shutdown."""
    import logging

    import ray

    import gdsearch
    from gdsearch import analysis
    from gdsearch.search.driver import (
        run_search,  # imported before the clock starts, as the CLI does
    )

    results = tempfile.mkdtemp(prefix="gdsearch-bench-")
    t0 = time.perf_counter()
    _start_ray(logging.WARNING)
    t1 = time.perf_counter()
    summary = run_search(job, results, show_progress=False)
    t2 = time.perf_counter()
    driver_peak = _peak_rss_mib()  # before loading the results back, which is not the driver's
    ray.shutdown()
    t3 = time.perf_counter()
    res = gdsearch.load_results(summary.path)
    histories = {k: v.to_numpy() for k, v in res.history.groupby("trial_id")["sse"]}
    table = analysis.convergence_table(res)
    best = {row.init: row.lr for row in table[table["best"]].itertuples()}
    cpus = len(os.sched_getaffinity(0))
    return {
        "best_lr": best,
        "busy": float(res.trials["wall_s"].sum()) / (cpus * (t2 - t1)),
        "ray_start_s": t1 - t0,
        "search_s": t2 - t1,
        "ray_stop_s": t3 - t2,
        "trial_epochs": len(res.history) - len(res.trials),
        "trials": len(res.trials),
        "peak_rss_mib": driver_peak,
        "digest": _digest(histories),
        "results": summary.path,
    }


LOADS = {
    "load_results, everything": {},
    "load_results, one init (filters)": {"filters": [("init", "==", "xavier")]},
    "load_results, every 10th epoch": {"every": 10},
}
"""The loads timed against ``pandas.read_parquet`` of the same history directory."""


def measure_load(results: str, repeats: str) -> dict[str, Any]:
    """``pandas.read_parquet(results/history)`` and each of LOADS on one result set, in turns
    (so that a drift of the machine's speed falls on all), after one warm-up load of each;
    medians of ``repeats`` loads. The full load is checked equal to pandas' table sorted."""
    import pandas as pd

    import gdsearch

    history = f"{results}/history"
    calls = {"pandas.read_parquet(history)": lambda: pd.read_parquet(history)}
    for name, selection in LOADS.items():
        calls[name] = lambda selection=selection: gdsearch.load_results(results, **selection)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up: imports, the file cache, the reader threads
        call()
    for _ in range(int(repeats)):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    plain = pd.read_parquet(history).sort_values(["trial_id", "epoch"], ignore_index=True)
    pd.testing.assert_frame_equal(gdsearch.load_results(results).history, plain)
    parts = len([p for p in os.listdir(history) if p.startswith("part-")])
    return {
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "rows": len(plain),
        "parts": parts,
        "repeats": int(repeats),
        "digest": {},
    }


def measure_run(job: str, executor: str) -> dict[str, Any]:
    """`gdsearch run` as a user starts it: no Ray started beforehand, the executor chosen as
    asked (``auto``: in this process for a small job)."""
    import gdsearch
    from gdsearch.search.driver import run_search

    results = tempfile.mkdtemp(prefix="gdsearch-bench-")
    t0 = time.perf_counter()
    summary = run_search(job, results, show_progress=False, executor=executor)
    elapsed = time.perf_counter() - t0
    res = gdsearch.load_results(summary.path)
    histories = {k: v.to_numpy() for k, v in res.history.groupby("trial_id")["sse"]}
    return {**_in_process_result(histories, elapsed), "executor": summary.executor}


def _trials_and_data(job: str) -> tuple[list[Any], Any, Any, Any]:
    from gdsearch.job.spec import load_job

    spec = load_job(job)
    X, Y = spec.load_data()
    return spec.trials(), X, Y, spec


def _in_process_result(histories: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
        "search_s": elapsed,
        "trial_epochs": sum(len(h) - 1 for h in histories.values()),
        "trials": len(histories),
        "peak_rss_mib": _peak_rss_mib(),
        "digest": _digest(histories),
    }


def measure_loop(job: str) -> dict[str, Any]:
    """The same maths one trial at a time: gdsearch.mlp.train in a plain loop."""
    from gdsearch import mlp

    trials, X, Y, spec = _trials_and_data(job)
    t0 = time.perf_counter()
    histories = {}
    for trial in trials:
        params = trial.initial_params(X.shape[1], Y.shape[1])
        histories[trial.trial_id], _ = mlp.train(
            params, X, Y, lr=trial.lr, epochs=spec.train.epochs, activation=trial.activation
        )
    return _in_process_result(histories, time.perf_counter() - t0)


def measure_stacked(job: str) -> dict[str, Any]:
    """Every trial in one process as gdsearch's work units train them, without Ray."""
    from gdsearch.search.plan import Shape, plan_units
    from gdsearch.search.unit import train_unit

    trials, X, Y, _ = _trials_and_data(job)
    t0 = time.perf_counter()
    histories: dict[str, Any] = {}
    for unit in plan_units(trials, 1, shape=Shape.of(X, Y)):
        _, history, _ = train_unit(X, Y, unit)
        frame = history.to_pandas()
        histories.update({k: v.to_numpy() for k, v in frame.groupby("trial_id")["sse"]})
    return _in_process_result(histories, time.perf_counter() - t0)


def measure_tune(job: str, per_epoch: bool, reuse: bool, every: int) -> dict[str, Any]:
    """Ray Tune running the same training, on every ``every``-th trial of the job."""
    import logging

    import numpy as np
    import ray
    from ray import tune

    from gdsearch import mlp

    trials, X, Y, spec = _trials_and_data(job)
    sample = trials[::every]
    epochs = spec.train.epochs

    def trainable(config: dict[str, Any]) -> None:
        trial = sample[config["index"]]
        params = trial.initial_params(X.shape[1], Y.shape[1])
        if not per_epoch:
            history, _ = mlp.train(params, X, Y, lr=trial.lr, epochs=epochs)
            tune.report({"history": history.tolist()})
            return
        limit = None
        for _ in range(epochs + 1):  # one epoch at a time, one report each
            step, new = mlp.train(params, X, Y, lr=trial.lr, epochs=1, divergence_factor=np.inf)
            sse = step[0] if len(step) else np.inf
            limit = sse * spec.train.divergence_factor if limit is None else limit
            if not np.isfinite(sse) or sse > limit:
                return
            tune.report({"sse": float(sse)})
            params = new

    storage = tempfile.mkdtemp(prefix="tune-bench-")
    t0 = time.perf_counter()
    _start_ray(logging.ERROR)
    t1 = time.perf_counter()
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(sample))))},
        tune_config=tune.TuneConfig(reuse_actors=reuse),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    grid = tuner.fit()
    t2 = time.perf_counter()
    histories = {}
    for result in grid:
        trial = sample[result.config["index"]]
        if per_epoch:
            frame = result.metrics_dataframe
            histories[trial.trial_id] = frame["sse"].to_numpy() if "sse" in frame else []
        else:
            histories[trial.trial_id] = result.metrics["history"]
    ray.shutdown()
    return {
        "ray_start_s": t1 - t0,
        "search_s": t2 - t1,
        "trials": len(sample),
        "peak_rss_mib": _peak_rss_mib(),
        "digest": _digest(histories),
    }


# --- the parent: run each measurement in a fresh process, take medians, print the table -------


def _child(kind: str, job: Path, *extra: str, tree: Path | None = None) -> dict[str, Any]:
    """One measurement in a fresh process; ``tree``: with another source tree's gdsearch (and
    that tree's own bench.py, so each version measures itself through its own API)."""
    env = {**os.environ, **ONE_THREAD}
    env.pop("RAY_ADDRESS", None)
    script, cwd = __file__, None
    if tree is not None:  # Ray's workers put the driver's folder first on sys.path: be there
        cwd = str(tree)
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(":")
        script = str(tree / "benchmarks" / "bench.py")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, script, "_measure", kind, str(job), *extra],
        env=env, capture_output=True, text=True, check=False, cwd=cwd,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def _median_run(kind: str, job: Path, runs: int, *extra: str) -> dict[str, Any]:
    results = [_child(kind, job, *extra) for _ in range(runs)]
    assert all(r["digest"] == results[0]["digest"] for r in results), f"{kind}: runs differ"
    merged = dict(results[0])
    for key in ("wall_s", "search_s", "ray_start_s", "ray_stop_s", "peak_rss_mib"):
        if key in merged:
            merged[key] = statistics.median(r[key] for r in results)
    merged["runs"] = runs
    return merged


UPDATE_RULES = {
    "plain gradient descent": "",
    "momentum 0.9": "momentum = 0.9",
    "Nesterov 0.9, weight decay 1e-4, cosine": (
        'momentum = 0.9\nnesterov = true\nweight_decay = 1e-4\nlr_schedule = "cosine"'
    ),
    "plain, sharpness measured every 10 epochs": "sharpness_every = 10",
}
"""W1 under each update rule, and with its sharpness measured, for the cost of a trial-epoch
(an update rule's histories differ, by design; measuring the sharpness changes none)."""


def _rule_job(name: str, settings: str, folder: Path) -> Path:
    text = W1.read_text().replace("epochs = 1000", f"epochs = 1000\n{settings}")
    path = folder / f"w1_{len(list(folder.iterdir()))}.toml"
    path.write_text(text.replace('name = "moons-lr-init"', f'name = "w1-{path.stem}"'))
    return path


def _print_update_rules(folder: Path, runs: int) -> None:
    """The cost of a trial-epoch under each update rule: W1 in one process, no Ray."""
    print("\nW1 per update rule and with sharpness (populations, one process, no Ray; median of",
          runs, "runs)\n")  # fmt: skip
    print("| update rule | trial-epochs | training s | µs per trial-epoch | × plain |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for name, settings in UPDATE_RULES.items():
        r = _median_run("stacked", _rule_job(name, settings, folder), runs)
        cost = r["search_s"] / r["trial_epochs"] * 1e6  # training only, imports left out
        base = base or cost
        print(f"| {name} | {r['trial_epochs']:,} | {r['search_s']:.2f} | {cost:.2f} | "
              f"{cost / base:.2f} |")  # fmt: skip


NUMERICS_JOBS = {
    "2-16-1 tanh (W1)": ("", "[16]"),
    "2-16-16-1 tanh": ("", "[16, 16]"),
    "2-16-1 tanh, sharpness every 10 epochs": ("sharpness_every = 10", "[16]"),
}
"""Networks whose trial-epoch is timed under each numerics: W1, W1 one hidden layer deeper (a
16 × 16 product, where BLAS gains most), and W1 with its sharpness measured."""


def _numerics_job(settings: str, hidden: str, numerics: str, folder: Path) -> Path:
    text = (
        W1.read_text()
        .replace("epochs = 1000", f'epochs = 1000\nnumerics = "{numerics}"\n{settings}')
        .replace("hidden = [[16]]", f"hidden = [{hidden}]")
    )
    path = folder / f"w1_{len(list(folder.iterdir()))}.toml"
    path.write_text(text.replace('name = "moons-lr-init"', f'name = "w1-{path.stem}"'))
    return path


def _print_numerics(folder: Path, runs: int) -> None:
    """The cost of a trial-epoch on the portable path against the BLAS path: W1-like jobs in
    one process, no Ray, the two paths' runs interleaved (so that a drift of the machine's
    speed falls on both)."""
    print(f"\nthe portable numerics against BLAS (populations, one process, no Ray; median of "
          f"{runs} runs, interleaved)\n")  # fmt: skip
    print("| network | trial-epochs | portable µs per trial-epoch | BLAS µs per trial-epoch | "
          "portable / BLAS |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for name, (settings, hidden) in NUMERICS_JOBS.items():
        jobs = {n: _numerics_job(settings, hidden, n, folder) for n in ("portable", "blas")}
        timed: dict[str, list[dict[str, Any]]] = {"portable": [], "blas": []}
        for _ in range(runs):
            for numerics, job in jobs.items():
                timed[numerics].append(_child("stacked", job))
        cost = {n: statistics.median(r["search_s"] / r["trial_epochs"] * 1e6 for r in rs)
                for n, rs in timed.items()}  # fmt: skip
        epochs = timed["portable"][0]["trial_epochs"]
        print(f"| {name} | {epochs:,} | {cost['portable']:.1f} | {cost['blas']:.1f} | "
              f"{cost['portable'] / cost['blas']:.2f} |")  # fmt: skip


def _scaled_job(factor: int, folder: Path) -> Path:
    text = W1.read_text()
    seeds = ", ".join(str(s) for s in range(4 * factor))
    scaled = text.replace("seed = [0, 1, 2, 3]", f"seed = [{seeds}]")
    scaled = scaled.replace('name = "moons-lr-init"', f'name = "moons-lr-init-x{factor}"')
    assert scaled != text
    path = folder / f"moons_lr_init_x{factor}.toml"
    path.write_text(scaled)
    return path


def _machine() -> str:
    import numpy  # noqa: F401  (so that threadpoolctl sees its BLAS)
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} kernel)"
            for i in threadpool_info()]  # fmt: skip
    import ray

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Ray {ray.__version__}, BLAS {', '.join(blas)} "
        "(1 thread per process)"
    )


def _row(
    name: str, r: dict[str, Any], trials: int, epochs: int, wall: float, note: str = ""
) -> dict[str, Any]:
    return {
        "method": name,
        "trials": trials,
        "wall_s": wall,
        "trials_per_s": trials / wall,
        "trial_epochs_per_s": epochs / wall,
        "rss": r.get("peak_rss_mib"),
        "note": note,
    }


def _print_table(title: str, rows: list[dict[str, Any]], baseline: str) -> None:
    base = next(r for r in rows if r["method"] == baseline)
    print(f"\n{title}\n")
    columns = ["method", "trials", "wall s", "trials/s", "trial-epochs/s", "driver peak RSS MiB"]
    print(f"| {' | '.join(columns)} | × loop | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        rss = f"{r['rss']:.0f}" if r["rss"] else ""
        ratio = r["trials_per_s"] / base["trials_per_s"]
        print(
            f"| {r['method']} | {r['trials']} | {r['wall_s']:.2f} | {r['trials_per_s']:.1f} | "
            f"{r['trial_epochs_per_s']:,.0f} | {rss} | {ratio:.2f} | {r['note']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--scale", type=int, default=16, help="W1 x SCALE is the large workload")
    parser.add_argument(
        "--large-loop-runs", type=int, default=1, help="runs of the slow loop on W1 x SCALE"
    )
    parser.add_argument(
        "--tune-trials", type=int, default=32, help="W1 trials Ray Tune runs (0: none)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="W1 only, one run each (unless --runs), no Tune"
    )
    parser.add_argument(
        "--load-repeats", type=int, default=15, help="loads of each kind per result set (median)"
    )
    parser.add_argument(
        "--loading-only",
        action="store_true",
        help="only the loading table: run W1 (and W1 x SCALE) once each to have their results",
    )
    parser.add_argument(
        "--numerics", action="store_true", help="only the portable numerics' cost against BLAS"
    )
    parser.add_argument(
        "--targets",
        action="store_true",
        help="only the rows the speed targets rest on: W1 against Ray Tune (reuse_actors, one "
        "report per trial, all trials) and W1 x SCALE against the plain loop",
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="TREE",
        help="also measure W1 with the gdsearch of another source tree (e.g. a git worktree "
        "of an earlier commit), runs interleaved with this tree's, and compare",
    )
    parser.add_argument(
        "--reports",
        action="store_true",
        help="only the reports section: gdsearch report, report --interactive and show on W1, "
        "W1 x SCALE and a synthetic set of --synthetic trials",
    )
    parser.add_argument(
        "--synthetic", type=int, default=100_000, help="trials of the synthetic set (0: none)"
    )
    parser.add_argument(
        "--reports-against",
        type=Path,
        metavar="TREE",
        help="also run the reports and show of W1 and W1 x SCALE with another source tree's "
        "gdsearch",
    )
    args = parser.parse_args()
    if args.reports:
        print(f"machine: {_machine()}")
        with tempfile.TemporaryDirectory() as folder:
            _print_reports(Path(folder), args.runs, args.scale, args.synthetic,
                           args.reports_against)  # fmt: skip
        return
    if args.quick:
        args.scale, args.tune_trials = 0, 0
        args.runs = 1 if "--runs" not in sys.argv else args.runs

    print(f"machine: {_machine()}")
    if args.loading_only:
        with tempfile.TemporaryDirectory() as folder:
            jobs = {"W1": W1}
            if args.scale > 1:
                jobs[f"W1 x {args.scale}"] = _scaled_job(args.scale, Path(folder))
            sets = {label: _child("gdsearch", job)["results"] for label, job in jobs.items()}
            _print_loading(sets, args.load_repeats)
        return
    if args.numerics:
        with tempfile.TemporaryDirectory() as folder:
            _print_numerics(Path(folder), args.runs)
        return
    if args.targets:
        with tempfile.TemporaryDirectory() as folder:
            _print_targets(_scaled_job(max(2, args.scale), Path(folder)), args.runs)
        return
    if args.against:
        _print_against(args.against.resolve(), args.runs)
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        jobs = [("W1", W1)]
        if args.scale > 1:
            jobs.append((f"W1 x {args.scale}", _scaled_job(args.scale, Path(folder))))
        for label, job in jobs:
            large = label != "W1"
            gd = _median_run("gdsearch", job, args.runs)
            loop = _median_run("loop", job, args.large_loop_runs if large else args.runs)
            stacked = _median_run("stacked", job, args.large_loop_runs if large else args.runs)
            assert gd["digest"] == loop["digest"] == stacked["digest"], "histories differ"
            n, te = gd["trials"], gd["trial_epochs"]
            rows = [
                _row(
                    "gdsearch, embedded Ray, end to end", gd, n, te, gd["wall_s"], "whole process"
                ),
                _row(
                    "gdsearch, excluding Ray start-up",
                    gd,
                    n,
                    te,
                    gd["search_s"],
                    "run_search on a started Ray",
                ),
                _row(
                    "plain numpy loop, one trial at a time",
                    loop,
                    n,
                    te,
                    loop["wall_s"],
                    "whole process",
                ),
                _row(
                    "gdsearch populations, one process, no Ray",
                    stacked,
                    n,
                    te,
                    stacked["wall_s"],
                    "whole process",
                ),
            ]
            summary[label] = {"gdsearch": gd, "loop": loop, "stacked": stacked}
            if not large and args.tune_trials:
                every = max(1, n // args.tune_trials)
                for reuse in (False, True):
                    for per_epoch in (False, True):
                        setting = "reuse_actors" if reuse else "defaults"
                        reports = "every epoch" if per_epoch else "once per trial"
                        name = f"Ray Tune, {setting}, report {reports}"
                        step = 1 if reuse and not per_epoch else every  # fast enough for all
                        t = _child("tune", job, str(int(per_epoch)), str(int(reuse)), str(step))
                        tune_digests = t["digest"]
                        scaled = t["ray_start_s"] + t["search_s"] * n / t["trials"]
                        note = (
                            f"scaled from {t['trials']} trials: start {t['ray_start_s']:.1f} s"
                            f" + fit {t['search_s']:.1f} s x {n / t['trials']:.0f}"
                            if t["trials"] < n
                            else f"all: start {t['ray_start_s']:.1f} s + fit {t['search_s']:.1f} s"
                        )
                        rows.append(_row(name, t, n, te, scaled, note))
                        summary[label][name] = t
                        assert len(tune_digests) == t["trials"]
                        assert all(loop["digest"][k] == v for k, v in tune_digests.items()), name
            _print_table(
                f"{label}: {n} trials, {te:,} trial-epochs trained",
                rows,
                "plain numpy loop, one trial at a time",
            )
            summary[label]["rows"] = rows
        _print_ratios(summary)
        sets = {label: summary[label]["gdsearch"]["results"] for label in summary}
        _print_loading(sets, args.load_repeats)
        _print_halving(summary["W1"]["gdsearch"], _median_run("gdsearch", W1_HALVING, args.runs))
        _print_small(args.runs)
        _print_compaction(Path(folder), args.runs)
        rules = Path(folder) / "rules"
        rules.mkdir()
        _print_update_rules(rules, args.runs)
        numerics = Path(folder) / "numerics"
        numerics.mkdir()
        _print_numerics(numerics, args.runs)
        _print_reports(Path(folder), args.runs, args.scale, args.synthetic, None)


SEED = REPO / "jobs" / "seed_sine.toml"


def _print_targets(large: Path, runs: int) -> None:
    """gdsearch end to end against Ray Tune at its best on W1, and against the plain loop on the
    large workload: whole processes, gdsearch's medians of ``runs``, the baselines one run."""
    w1 = _median_run("gdsearch", W1, runs)
    tune = _child("tune", W1, "0", "1", "1")  # reuse_actors, one report per trial, every trial
    big = _median_run("gdsearch", large, runs)
    loop = _median_run("loop", large, 1)
    assert big["digest"] == loop["digest"], "histories differ"
    print("\n| workload | gdsearch end to end s | baseline | baseline s | ratio |")
    print("|---|---:|---|---:|---:|")
    print(f"| W1 | {w1['wall_s']:.1f} | Ray Tune, reuse_actors, one report per trial | "
          f"{tune['wall_s']:.1f} | {tune['wall_s'] / w1['wall_s']:.2f} |")  # fmt: skip
    print(f"| {large.stem} | {big['wall_s']:.1f} | plain numpy loop | {loop['wall_s']:.1f} | "
          f"{loop['wall_s'] / big['wall_s']:.2f} |")  # fmt: skip


def _print_compaction(folder: Path, runs: int) -> None:
    """Reading a result set of many small parts (one per trial, as a long run of one-trial units
    or many resumes leave it) before and after `gdsearch compact`."""
    import pandas as pd
    import pyarrow.compute as pc

    import gdsearch
    from gdsearch.results.compact import compact_results
    from gdsearch.results.store import ResultsStore

    summary = gdsearch.run_search(W1, folder / "compaction", show_progress=False,
                                  executor="local")  # fmt: skip
    whole = ResultsStore(summary.path)
    trials, history = whole.read_table("trials"), whole.read_table("history")
    many = ResultsStore(folder / "many" / "w1")
    many.prepare(W1.read_text())
    many.write_manifest(whole.read_manifest())
    for trial_id in trials.column("trial_id").to_pylist():
        mine = pc.equal(trials.column("trial_id"), trial_id)
        rows = pc.equal(history.column("trial_id"), trial_id)
        many.write_part(trials.filter(mine), history.filter(rows))

    def timed(read: Any) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            read()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    location = folder / "many" / "w1"
    rows = []
    for when in ("256 parts, one per trial", "after gdsearch compact"):
        if when.startswith("after"):
            compact_results(location)
        parts = len(many.parts("trials"))
        loaded = timed(lambda: gdsearch.load_results(location))
        plain = timed(lambda: pd.read_parquet(location / "history"))
        rows.append((when, parts, loaded, plain))
    print(f"\nReading W1 ({history.num_rows:,} history rows) from many parts and compacted "
          f"(median of {runs} reads)\n")  # fmt: skip
    print("| result set | parts | load_results s | pandas.read_parquet(history) s | × first |")
    print("|---|---:|---:|---:|---:|")
    for when, parts, loaded, plain in rows:
        print(f"| {when} | {parts} | {loaded:.2f} | {plain:.2f} | {loaded / rows[0][2]:.2f} |")


def _print_small(runs: int) -> None:
    """A small job end to end: `gdsearch run` as it chooses (in this process), forced onto an
    embedded Ray, and its trials stacked in one process by hand; whole processes, imports in."""
    print(f"\nA small job end to end ({SEED.name}: 13 trials x 20,000 epochs; median of {runs} "
          "runs, whole processes)\n")  # fmt: skip
    auto = _median_run("run", SEED, runs, "auto")
    on_ray = _median_run("run", SEED, runs, "ray")
    stacked = _median_run("stacked", SEED, runs)
    assert auto["digest"] == on_ray["digest"] == stacked["digest"], "histories differ"
    print("| how | wall s | run_search s | × stacked |")
    print("|---|---:|---:|---:|")
    for name, r in ((f"gdsearch run, --executor auto (chose {auto['executor']})", auto),
                    ("gdsearch run, --executor ray", on_ray),
                    ("its trials stacked in one process, no Ray", stacked)):  # fmt: skip
        print(f"| {name} | {r['wall_s']:.2f} | {r['search_s']:.2f} | "
              f"{r['wall_s'] / stacked['wall_s']:.2f} |")  # fmt: skip


def _print_halving(full: dict[str, Any], halved: dict[str, Any]) -> None:
    """W1 with and without successive halving: compute spent, and the best lr per init."""
    print(f"\nW1 with successive halving ({W1_HALVING.name}: rungs 30, 90, 270, 810; η = 3)\n")
    print("| run | trial-epochs | of W1 | wall s | CPUs busy training | best lr per init |")
    print("|---|---:|---:|---:|---:|---|")
    for name, run in (("W1, every trial to the end", full), ("W1, halving", halved)):
        best = ", ".join(f"{init} {lr:.3g}" for init, lr in sorted(run["best_lr"].items()))
        share = run["trial_epochs"] / full["trial_epochs"]
        print(f"| {name} | {run['trial_epochs']:,} | {share:.0%} | {run['wall_s']:.2f} "
              f"| {run['busy']:.0%} | {best} |")  # fmt: skip
    same = sorted(i for i in full["best_lr"] if halved["best_lr"].get(i) == full["best_lr"][i])
    print(f"\nsame best lr under halving: {len(same)} of {len(full['best_lr'])} inits"
          f" ({', '.join(same) or 'none'})")  # fmt: skip


def _print_loading(sets: dict[str, str], repeats: int) -> None:
    """load_results against pandas.read_parquet of the same history, on each result set."""
    print(f"\nLoading results back (one process per result set; median of {repeats} loads of "
          "each, in turns)\n")  # fmt: skip
    print("| result set | history rows | parts | load | median ms | × read_parquet |")
    print("|---|---:|---:|---|---:|---:|")
    for label, results in sets.items():
        r = _child("load", Path(results), str(repeats))
        base = r["median_s"]["pandas.read_parquet(history)"]
        for name, median in r["median_s"].items():
            print(f"| {label} | {r['rows']:,} | {r['parts']} | {name} | {median * 1e3:.1f} | "
                  f"{median / base:.2f} |")  # fmt: skip
    print("\nload_results' history equals pandas' table sorted by trial_id, epoch")


def _print_against(tree: Path, runs: int) -> None:
    """W1 with this tree's gdsearch and another's, each run of one followed by one of the
    other (so that a drift of the machine's speed falls on both), histories checked equal."""
    kinds = {"gdsearch": ("end to end", "wall_s"), "stacked": ("populations, no Ray", "wall_s")}
    print(f"\nW1, this tree against {tree} (median of {runs}, runs interleaved)\n")
    print("| gdsearch W1 | this tree s | other tree s | this / other |")
    print("|---|---:|---:|---:|")
    for kind, (name, key) in kinds.items():
        mine, theirs = [], []
        for _ in range(runs):
            mine.append(_child(kind, W1))
            theirs.append(_child(kind, W1, tree=tree))
        assert all(r["digest"] == mine[0]["digest"] for r in mine + theirs), "histories differ"
        rows = [(name, key), ("excluding Ray start-up", "search_s")] if kind == "gdsearch" else [
            (name, key)]  # fmt: skip
        for label, field in rows:
            a = statistics.median(r[field] for r in mine)
            b = statistics.median(r[field] for r in theirs)
            print(f"| {label} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    print("\nhistories of both trees bit-identical, trial by trial")


# --- reports that scale: gdsearch report, report --interactive and show on large result sets --


LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(child.pid, 0)
error = child.stderr.read().decode()[-3000:]
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss, error]))
"""
"""Runs a command and prints its exit code, peak RSS (KiB) and stderr's tail. A child's peak RSS
counts what it held before exec, a copy of its parent's: this small process is the parent, so
that the figure is the command's own, not the benchmark's."""


def _cli_child(command: list[str], tree: Path | None = None) -> dict[str, float]:
    """``python -m gdsearch COMMAND`` in a fresh process: its wall time and peak RSS."""
    env = {**os.environ, **ONE_THREAD}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(":")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "gdsearch", *command],
        env=env, cwd=str(tree or REPO), capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    code, peak_kib, error = json.loads(done.stdout)
    if code != 0:
        raise SystemExit(f"gdsearch {' '.join(command)} failed:\n{error}")
    return {"wall_s": wall, "peak_rss_mib": peak_kib / 1024}


def _median_cli(command: list[str], runs: int, tree: Path | None = None) -> dict[str, float]:
    results = [_cli_child(command, tree) for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def synthetic_results(folder: Path, trials: int, epochs: int, per_part: int = 1000) -> Path:
    """A result set of ``trials`` trials x ``epochs`` epochs written straight through the store:
    4 init schemes x trials / 400 learning rates x 100 seeds, SSE curves a·exp(−k·t) + c with
    noise, the largest rates diverging. Nothing is trained; the shape is a real search's."""
    import hashlib

    import numpy as np
    import pyarrow as pa

    from gdsearch.model.trajectory import trajectory
    from gdsearch.results.schema import HISTORY_SCHEMA, TRIALS_SCHEMA
    from gdsearch.results.store import ResultsStore

    seeds, inits = 100, ["zeros", "normal", "xavier", "he"]
    lrs = np.geomspace(1e-3, 3.0, max(1, trials // (seeds * len(inits))))
    store = ResultsStore(folder / f"synthetic-{trials}")
    store.prepare("")
    rng = np.random.default_rng(0)
    grid = [(init, lr, seed) for init in inits for lr in lrs for seed in range(seeds)][:trials]
    t = np.arange(epochs + 1)
    for start in range(0, len(grid), per_part):
        chunk = grid[start : start + per_part]
        K = len(chunk)
        lr = np.array([c[1] for c in chunk])
        rate = np.minimum(lr, 1.0) * rng.uniform(0.5, 1.5, K)  # (K,)
        sse = (50 * np.exp(-rate[:, None] * t) + rng.uniform(1, 5, K)[:, None]) * (
            1 + 0.01 * rng.standard_normal((K, epochs + 1))
        )  # (K, epochs + 1)
        diverged = np.where(lr > 1.5, rng.integers(5, 50, K), -1)
        lengths = np.where(diverged >= 0, diverged, epochs + 1)
        sse[t[None, :] >= lengths[:, None]] = np.nan
        ids = [hashlib.sha256(repr(c).encode()).hexdigest() for c in chunk]
        metrics = trajectory(sse)
        rows, cols = np.nonzero(~np.isnan(sse))
        history = pa.Table.from_arrays(
            [pa.array(ids).take(pa.array(rows)), pa.array(cols.astype(np.int32)),
             pa.array(sse[rows, cols])], schema=HISTORY_SCHEMA,
        )  # fmt: skip
        table = {
            "trial_id": ids, "lr": lr, "init": [c[0] for c in chunk], "hidden": ["16"] * K,
            "activation": ["tanh"] * K, "batch_size": [0] * K, "seed": [c[2] for c in chunk],
            "epochs": [epochs] * K, "status": np.where(diverged >= 0, "diverged", "ok"),
            "final_sse": sse[np.arange(K), lengths - 1], "min_sse": np.nanmin(sse, axis=1),
            "diverged_epoch": pa.array(diverged.astype(np.int32), mask=diverged < 0),
            "node": [""] * K, "wall_s": np.zeros(K), "momentum": np.zeros(K),
            "nesterov": [False] * K, "weight_decay": np.zeros(K),
            "lr_schedule": ["constant"] * K, "warmup_epochs": [0] * K,
            **{name: values.astype(np.int32) if name.endswith("_epoch") else values
               for name, values in metrics.items()},
        }  # fmt: skip
        for name in TRIALS_SCHEMA.names:  # settings this search leaves unset
            table.setdefault(name, pa.nulls(K, TRIALS_SCHEMA.field(name).type))
        store.write_part(pa.Table.from_pydict(table, schema=TRIALS_SCHEMA), history)
    store.write_manifest({"name": f"synthetic-{trials}", "status": "complete",
                          "trials_total": trials})  # fmt: skip
    return Path(store.location)


def _print_reports(
    folder: Path, runs: int, scale: int, synthetic: int, against: Path | None
) -> None:
    """gdsearch report, report --interactive and show on W1, W1 x SCALE and a synthetic set of
    SYNTHETIC trials x 1,000 epochs: wall time and peak RSS of each command's whole process
    (median of runs)."""
    sets = []
    for label, job in (("W1", W1), (f"W1 x {scale}", _scaled_job(scale, folder))):
        spec_name = "moons-lr-init" if label == "W1" else f"moons-lr-init-x{scale}"
        results = folder / "results"
        _cli_child(["run", str(job), "--results-dir", str(results)])
        sets.append((label, results / spec_name))
    if synthetic:
        sets.append((f"synthetic {synthetic:,} x 1,000 epochs",
                     synthetic_results(folder, synthetic, 1000)))  # fmt: skip
    print(f"\nReports and show on growing result sets (whole processes; median of {runs} runs)\n")
    head = "| result set | history rows | command | wall s | peak RSS MiB | RSS × W1 |"
    if against:
        head += " before: wall s | before: peak RSS MiB |"
    print(head)
    print("|---|---:|---|---:|---:|---:|" + ("---:|---:|" if against else ""))
    import pyarrow.parquet as pq

    base: dict[str, float] = {}
    for label, path in sets:
        rows = sum(
            pq.ParquetFile(p).metadata.num_rows for p in (path / "history").glob("*.parquet")
        )
        commands = {
            "report": ["report", str(path), "-o", str(folder / "r.html")],
            "report --interactive": ["report", str(path), "--interactive", "-o",
                                     str(folder / "r-interactive.html")],
            "show": ["show", str(path)],
        }  # fmt: skip
        for kind, command in commands.items():
            r = _median_cli(command, runs)
            base.setdefault(kind, r["peak_rss_mib"])
            rss = r["peak_rss_mib"]
            line = (f"| {label} | {rows:,} | {kind} | {r['wall_s']:.2f} | {rss:.0f} | "
                    f"{rss / base[kind]:.2f} |")  # fmt: skip
            if against and not label.startswith("synthetic"):
                old = _median_cli(command, runs, against)
                line += f" {old['wall_s']:.2f} | {old['peak_rss_mib']:.0f} |"
            elif against:
                line += " | |"
            print(line, flush=True)


LOOP = "plain numpy loop, one trial at a time"
E2E = "gdsearch, embedded Ray, end to end"
EXCL = "gdsearch, excluding Ray start-up"
STACKED = "gdsearch populations, one process, no Ray"


def _ratio(label: str, first: dict[str, Any], second: dict[str, Any], what: str) -> None:
    value = first["trials_per_s"] / second["trials_per_s"]
    print(f"- {label}: {first['method']} / {what}: {value:.1f}x")


def _print_ratios(summary: dict[str, Any]) -> None:
    print("\nratios (trials/s of the first over the second)\n")
    w1 = {r["method"]: r for r in summary["W1"]["rows"]}
    tune = [m for m in w1 if m.startswith("Ray Tune")]
    for other in tune:
        _ratio("W1", w1[E2E], w1[other], other)
    _ratio("W1", w1[EXCL], w1[LOOP], LOOP)
    share = w1[EXCL]["wall_s"] / w1[STACKED]["wall_s"]
    print(f"- W1: wall of {EXCL} / wall of {STACKED}: {share:.2f}")
    for label in (k for k in summary if k != "W1"):
        big = {r["method"]: r for r in summary[label]["rows"]}
        _ratio(label, big[E2E], big[LOOP], LOOP)
        for other in (m for m in tune if "once per trial" in m):
            _ratio(label, big[E2E], w1[other], f"{other} (its W1 rate)")
        rss = big[E2E]["rss"] / w1[E2E]["rss"]
        mib = f"{big[E2E]['rss']:.0f} / {w1[E2E]['rss']:.0f} MiB"
        print(f"- driver peak RSS, {label} / W1: {mib} = {rss:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        kind, job = sys.argv[2], sys.argv[3]
        if kind == "tune":
            out = measure_tune(
                job, bool(int(sys.argv[4])), bool(int(sys.argv[5])), int(sys.argv[6])
            )
        elif kind == "run":
            out = measure_run(job, sys.argv[4])
        elif kind == "load":
            out = measure_load(job, sys.argv[4])
        else:
            out = {"gdsearch": measure_gdsearch, "loop": measure_loop, "stacked": measure_stacked}[
                kind
            ](job)
        print(json.dumps(out))
    else:
        main()
