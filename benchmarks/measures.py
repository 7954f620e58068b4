"""The measurements, each run in a process of its own by ``bench.py _measure KIND ARGS...``.

A measurement prints one JSON object; the parent adds the process's wall time. Those that time
what a user would write instead of gdsearch (``plain-*``, ``tune``) import numpy and
:mod:`benchmarks.plain` only (Tune also Ray): their inputs, the job's data and each trial's
initial weights, come from a file the parent wrote (:func:`write_inputs`).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import digest


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_ray(logging_level: int) -> None:
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


# --- gdsearch ---------------------------------------------------------------------------------


def gdsearch_on_ray(job: str) -> dict[str, Any]:
    """Embedded Ray as `gdsearch run` starts it; times start-up, the search and shutdown."""
    import logging

    import ray

    import gdsearch
    from gdsearch import analysis
    from gdsearch.search.driver import run_search

    results = tempfile.mkdtemp(prefix="gdsearch-bench-")
    t0 = time.perf_counter()
    start_ray(logging.WARNING)
    t1 = time.perf_counter()
    summary = run_search(job, results, show_progress=False)
    t2 = time.perf_counter()
    driver_peak = peak_rss_mib()  # before loading the results back, which is not the driver's
    ray.shutdown()
    t3 = time.perf_counter()
    res = gdsearch.load_results(summary.path)
    histories = {str(k): v.to_numpy() for k, v in res.history.groupby("trial_id")["sse"]}
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
        "digest": digest(histories),
        "results": summary.path,
    }


def gdsearch_run(job: str, executor: str) -> dict[str, Any]:
    """`gdsearch run` as a user starts it: no Ray started beforehand, the executor chosen as
    asked (``auto``: in this process for a small job)."""
    import gdsearch
    from gdsearch.search.driver import run_search

    results = tempfile.mkdtemp(prefix="gdsearch-bench-")
    t0 = time.perf_counter()
    summary = run_search(job, results, show_progress=False, executor=executor)
    elapsed = time.perf_counter() - t0
    res = gdsearch.load_results(summary.path)
    histories = {str(k): v.to_numpy() for k, v in res.history.groupby("trial_id")["sse"]}
    return {**_trained(histories, elapsed), "executor": summary.executor, "results": summary.path}


def populations(job: str) -> dict[str, Any]:
    """Every trial of the job trained in this process as gdsearch's work units train them, no
    Ray: ``train_s`` is the training alone (``GDSEARCH_KERNEL=numpy`` picks the numpy path)."""
    from gdsearch.job.spec import load_job
    from gdsearch.mlp import compiled
    from gdsearch.search.plan import Shape, plan_units
    from gdsearch.search.unit import train_unit

    spec = load_job(job)
    X, Y, holdout = spec.held_out(*spec.load_data())
    trials = spec.trials()
    units = plan_units(trials, 1, shape=Shape.of(X, Y))
    compiled.available()  # the kernel loaded (or compiled) before the clock starts
    t0 = time.perf_counter()
    tables = [train_unit(X, Y, unit, holdout=holdout)[1] for unit in units]
    elapsed = time.perf_counter() - t0
    histories: dict[str, Any] = {}
    for history in tables:
        frame = history.to_pandas()
        histories.update({str(k): v.to_numpy() for k, v in frame.groupby("trial_id")["sse"]})
    return {**_trained(histories, elapsed), "train_s": elapsed, "kernel": compiled.available()}


def _trained(histories: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
        "search_s": elapsed,
        "trial_epochs": sum(len(h) - 1 for h in histories.values()),
        "trials": len(histories),
        "peak_rss_mib": peak_rss_mib(),
        "digest": digest(histories),
        "finals": _finals(histories),
    }


LOADS: dict[str, dict[str, Any]] = {
    "load_results, everything": {},
    "load_results, one init (filters)": {"filters": [("init", "==", "xavier")]},
    "load_results, every 10th epoch": {"every": 10},
}
"""The loads timed against ``pandas.read_parquet`` of the same history directory."""


def load(results: str, repeats: str) -> dict[str, Any]:
    """``pandas.read_parquet(results/history)`` and each of LOADS on one result set, in turns
    (so that a drift of the machine's speed falls on all), after one warm-up load of each;
    medians of ``repeats`` loads. The full load is checked equal to pandas' table sorted."""
    import pandas as pd

    import gdsearch

    history = f"{results}/history"
    calls: dict[str, Callable[[], Any]] = {
        "pandas.read_parquet(history)": lambda: pd.read_parquet(history)
    }
    for name, selection in LOADS.items():
        calls[name] = functools.partial(gdsearch.load_results, results, **selection)
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


# --- what a user would write instead ------------------------------------------------------------


def write_inputs(job: Path, path: Path) -> Path:
    """The job's data, learning rates and each trial's initial weights in one .npz file, for
    the processes that time plain numpy and Ray Tune (run by the parent, with gdsearch)."""
    import numpy as np

    from gdsearch.job.spec import load_job

    spec = load_job(job)
    X, Y = spec.load_data()
    trials = spec.trials()
    shapes = {(t.hidden, t.activation, t.train) for t in trials}
    assert len(shapes) == 1, "the plain comparators train one architecture and setting"
    hidden, activation, train = shapes.pop()
    assert activation == "tanh" or not hidden, "the plain comparators' hidden layers are tanh"
    assert not (train.momentum or train.weight_decay or train.batch_size), "plain descent only"
    params = [t.initial_params(X.shape[1], Y.shape[1]) for t in trials]
    layers = {}
    for layer in range(len(params[0])):
        layers[f"W{layer}"] = np.stack([p[layer][0] for p in params])
        layers[f"b{layer}"] = np.stack([p[layer][1] for p in params])
    arrays: dict[str, Any] = {
        "X": X,
        "Y": Y,
        "lrs": np.array([t.lr for t in trials]),
        "trial_ids": np.array([t.trial_id for t in trials]),
        "epochs": train.epochs,
        "divergence_factor": train.divergence_factor,
        "layers": len(params[0]),
        **layers,
    }
    np.savez(path, **arrays)
    return path


def _inputs(path: str) -> tuple[Any, Any, Any, list[Any], list[str], int, float]:
    import numpy as np

    data = np.load(path)
    params = [
        [(data[f"W{layer}"][k], data[f"b{layer}"][k]) for layer in range(int(data["layers"]))]
        for k in range(len(data["lrs"]))
    ]
    trial_ids = [str(t) for t in data["trial_ids"]]
    return (
        data["X"],
        data["Y"],
        data["lrs"],
        params,
        trial_ids,
        int(data["epochs"]),
        float(data["divergence_factor"]),
    )


def plain_loop(inputs: str) -> dict[str, Any]:
    """The plain numpy MLP, one trial at a time (:func:`benchmarks.plain.train_one`)."""
    from benchmarks import plain

    X, Y, lrs, params, trial_ids, epochs, factor = _inputs(inputs)
    t0 = time.perf_counter()
    histories = {
        trial_id: plain.train_one(p, X, Y, float(lr), epochs, factor)
        for trial_id, p, lr in zip(trial_ids, params, lrs, strict=True)
    }
    elapsed = time.perf_counter() - t0
    return {**_trained(histories, elapsed), "train_s": elapsed, "finals": _finals(histories)}


def plain_stacked(inputs: str) -> dict[str, Any]:
    """The plain numpy MLP, every trial at once (:func:`benchmarks.plain.train_stacked`); all
    trials run every epoch, so its trial-epochs are trials × epochs.

    All at once is how a user would write it and, in a fresh process, the fastest form found
    here: on W1, chunks of 32 or 64 trials took 1.2 to 1.5 times as long."""
    import numpy as np

    from benchmarks import plain

    X, Y, lrs, params, trial_ids, epochs, factor = _inputs(inputs)
    t0 = time.perf_counter()
    stacked = plain.train_stacked(params, X, Y, lrs, epochs)
    elapsed = time.perf_counter() - t0
    histories = {}
    for trial_id, values in zip(trial_ids, stacked, strict=True):
        bad = ~np.isfinite(values) | (values > factor * values[0])
        histories[trial_id] = values[: int(np.argmax(bad))] if bad.any() else values
    return {
        "search_s": elapsed,
        "train_s": elapsed,
        "trial_epochs": len(trial_ids) * epochs,
        "trials": len(trial_ids),
        "peak_rss_mib": peak_rss_mib(),
        "digest": digest(histories),
        "finals": _finals(histories),
    }


def _finals(histories: dict[str, Any]) -> dict[str, Any]:
    """Each trial's epochs and last SSE, for comparing methods that agree to rounding."""
    return {k: [len(h), float(h[-1]) if len(h) else None] for k, h in histories.items()}


def tune(inputs: str, per_epoch: str, reuse: str, every: str) -> dict[str, Any]:
    """Ray Tune running the plain numpy trainable on every ``every``-th trial: one report per
    trial (the whole history) or one per epoch; Tune's defaults or ``reuse_actors``."""
    import logging

    import numpy as np
    import ray
    from ray import tune as ray_tune

    from benchmarks import plain

    X, Y, lrs, params, trial_ids, epochs, factor = _inputs(inputs)
    sample = list(range(0, len(trial_ids), int(every)))
    by_epoch = bool(int(per_epoch))

    def trainable(config: dict[str, Any]) -> None:
        k = config["index"]
        descent = plain.descend(params[k], X, Y, float(lrs[k]), epochs, factor)
        if by_epoch:  # one report per epoch
            for sse in descent:
                ray_tune.report({"sse": sse})
        else:  # one report per trial: its whole history
            ray_tune.report({"history": list(descent)})

    storage = tempfile.mkdtemp(prefix="tune-bench-")
    t0 = time.perf_counter()
    start_ray(logging.ERROR)
    t1 = time.perf_counter()
    tuner = ray_tune.Tuner(
        trainable,
        param_space={"index": ray_tune.grid_search(sample)},
        tune_config=ray_tune.TuneConfig(reuse_actors=bool(int(reuse))),
        run_config=ray_tune.RunConfig(storage_path=storage, verbose=0),
    )
    grid = tuner.fit()
    t2 = time.perf_counter()
    finals = {}
    for index in range(len(grid)):
        result = grid[index]
        config, metrics, frame = (
            result.config or {},
            result.metrics or {},
            result.metrics_dataframe,
        )
        k = config["index"]
        if by_epoch:
            has = frame is not None and "sse" in frame
            values = frame["sse"].to_numpy() if has and frame is not None else np.array([])
        else:
            values = np.asarray(metrics["history"])
        finals[trial_ids[k]] = [len(values), float(values[-1]) if len(values) else None]
    ray.shutdown()
    return {
        "ray_start_s": t1 - t0,
        "search_s": t2 - t1,
        "trials": len(sample),
        "peak_rss_mib": peak_rss_mib(),
        "finals": finals,
        "digest": {},
    }


def optuna_loop(job: str, budget: str) -> dict[str, Any]:
    """Optuna's own sequential loop, as a user writes it: TPE suggests the job's axes, one trial
    at a time, and the objective trains the plain numpy MLP (:func:`benchmarks.plain.fit`, with
    momentum) and returns its held-out SSE (+inf where it diverged). Only the data, the split
    and each trial's initial weights come from the job."""
    import math

    import optuna

    from benchmarks import plain
    from gdsearch.job.spec import load_job
    from gdsearch.job.trial import initial_params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_job(job)
    X, Y = spec.load_data()
    X_fit, Y_fit, held = spec.held_out(X, Y)
    assert held is not None, "the objective is the held-out SSE"
    axes = spec.axes
    widths = {"-".join(map(str, h)): h for h in axes["hidden"].values}

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", axes["lr"].low, axes["lr"].high, log=True)
        init = trial.suggest_categorical("init", list(axes["init"].values))
        hidden = widths[trial.suggest_categorical("hidden", list(widths))]
        momentum = trial.suggest_categorical("momentum", list(axes["momentum"].values))
        params = initial_params(spec.seed, init, hidden, 0, None, X.shape[1], Y.shape[1])
        final = plain.fit(params, X_fit, Y_fit, lr, spec.train.epochs, momentum)
        return math.inf if final is None else plain.sse(final, held.X, held.Y)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=int(budget))
    elapsed = time.perf_counter() - t0
    return {"train_s": elapsed, "best": study.best_value, "trials": int(budget)}


def landscape_evaluations(job: str, trials: str, points: str) -> dict[str, Any]:
    """The SSE at ``points`` weight vectors for each of ``trials`` trials of the job's network,
    evaluated as `gdsearch landscape` evaluates its grids (the kernel's forward pass): the
    floor under drawing their landscapes, whatever else it does."""
    import numpy as np

    from gdsearch.job.spec import load_job
    from gdsearch.mlp.landscape import Evaluator
    from gdsearch.mlp.network import layer_sizes

    spec = load_job(job)
    X, Y = spec.load_data()
    trial = spec.trials()[0]
    sizes = layer_sizes(X.shape[1], trial.hidden, Y.shape[1])
    evaluate = Evaluator(X, Y, sizes, trial.activation, trial.train.numerics)
    P = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    thetas = np.random.default_rng(0).normal(size=(int(points), P))
    evaluate(thetas[:2])  # the kernel loaded before the clock starts
    t0 = time.perf_counter()
    for _ in range(int(trials)):
        evaluate(thetas)
    elapsed = time.perf_counter() - t0
    return {"train_s": elapsed, "per_pass_us": elapsed / int(trials) / int(points) * 1e6}


def sampled_run(job: str, twice: str = "") -> dict[str, Any]:
    """``gdsearch.run_search`` of a sampler's job in this process, ``twice`` if given: the
    first run's wall time (it imports gdsearch's modules and loads the compiled kernel) and
    the second's (the run itself, as Optuna's loop is timed after its imports), and the
    lowest objective its trials reached."""
    import gdsearch

    def run() -> tuple[Any, float]:
        t0 = time.perf_counter()
        summary = gdsearch.run_search(
            job, tempfile.mkdtemp(prefix="sampled-"), executor="local", show_progress=False
        )
        return summary, time.perf_counter() - t0

    summary, first = run()
    if twice:
        summary, elapsed = run()
    else:
        elapsed = first
    trials = gdsearch.load_results(summary.path).trials
    spec = gdsearch.load_job(job)
    assert spec.sampling is not None
    ok = trials[trials["status"] != "diverged"]
    return {
        "train_s": elapsed,
        "first_s": first,
        "best": float(ok[spec.sampling.objective].min()),
        "trials": len(trials),
    }


MEASURES: dict[str, Callable[..., dict[str, Any]]] = {
    "gdsearch-on-ray": gdsearch_on_ray,
    "gdsearch-run": gdsearch_run,
    "populations": populations,
    "load": load,
    "plain-loop": plain_loop,
    "plain-stacked": plain_stacked,
    "tune": tune,
    "optuna-loop": optuna_loop,
    "sampled-run": sampled_run,
    "landscape-evaluations": landscape_evaluations,
}
"""Each measurement by the kind ``bench.py _measure`` is given."""


def run_measure(kind: str, args: list[str]) -> None:
    """Run one measurement and print its result as one line of JSON."""
    print(json.dumps(MEASURES[kind](*args)))
