"""The search driver, a thin front: check a job, take the results lock, run its policy on Ray
or, for a small job, in this process.

The driver is the single writer of a results directory, and holds its lock
(:mod:`gdsearch.results.lock`) while it writes, so a second run there waits or is refused. It
skips trials that are already stored, so running a job again resumes it. What runs is a policy
(:mod:`gdsearch.search.policy`: the plain run, halving, or bracket rounds) in the one executor
loop (:mod:`gdsearch.search.loop`), which keeps a bounded number of units in flight, commits
each finished unit as one Parquet part, and applies the failure policy: nothing a unit does ends
the run; its trials are stored as ``failed`` with their error and tried again by the next run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdsearch.errors import InputError
from gdsearch.job.mapping import read_job
from gdsearch.job.spec import JobSpec
from gdsearch.job.trial import Trial
from gdsearch.mlp.numerics import machine_label
from gdsearch.mlp.stopping import Status
from gdsearch.results.files import join
from gdsearch.results.lock import ResultsLock
from gdsearch.results.manifest import (
    check_compatible,
    check_numerics,
    new_manifest,
    now,
    numerics_counts,
)
from gdsearch.results.store import ResultsStore
from gdsearch.search.bracket import BracketRounds
from gdsearch.search.connection import check_address, local_facts, ray_running
from gdsearch.search.halving import SuccessiveHalving
from gdsearch.search.landscapes import LandscapeSummary
from gdsearch.search.loop import Backend, LocalBackend, execute
from gdsearch.search.plain import PlainRun
from gdsearch.search.plan import Shape, plan_units, unit_seconds
from gdsearch.search.policy import Policy

log = logging.getLogger("gdsearch")

EXECUTORS = ("auto", "local", "ray")
"""Where a run trains: ``local`` in this process, ``ray`` on Ray, ``auto`` in this process
when no cluster is named and the job is small (``LOCAL_BELOW_S``), else on Ray."""
LOCAL_BELOW_S = 3.0
"""``auto`` trains a job in this process when its modelled single-core time is below this:
less than an embedded Ray takes to start (about 5 s on a laptop) before it trains anything."""


@dataclass(frozen=True)
class RunSummary:
    """What a run did.

    Attributes:
        path: the results directory.
        total: trials in the job.
        skipped: trials already stored before this run (resumed).
        ran: trials trained by this run.
        counts: stored trials by status after the run.
        wall_s: the run's wall time in seconds, Ray start-up included.
        retried: failed trials of an earlier run that this run trained again.
        first_error: the error text of one trial that failed in this run, if any did.
        executor: where it trained: ``"local"`` or ``"ray"``.
        landscapes: what drawing the job's ``[landscape]`` did (None without one).
    """

    path: str
    total: int
    skipped: int
    ran: int
    counts: dict[str, int]
    wall_s: float
    retried: int = 0
    first_error: str | None = None
    executor: str = "ray"
    landscapes: LandscapeSummary | None = None


def run_search(
    job: JobSpec | Mapping[str, Any] | str | Path,
    results_root: str | Path = "results",
    *,
    address: str | None = None,
    fresh: bool = False,
    show_progress: bool = True,
    wait: bool = False,
    break_lock: bool = False,
    num_cpus: int | None = None,
    executor: str = "auto",
    allow_numerics_change: bool = False,
) -> RunSummary:
    """Run a search job and store its results under ``results_root/NAME``.

    Args:
        job: a checked :class:`JobSpec`, a mapping of a job file's tables
            (:func:`gdsearch.job_from_dict` checks it), or the path of a job file.
        results_root: the folder (or filesystem URI, e.g. ``s3://bucket/prefix``) that holds
            one result set per job name.
        address: a Ray cluster to join; by default ``RAY_ADDRESS``, else an embedded local
            Ray on all cores. If Ray is already initialised in this process, it is used.
        fresh: delete what is stored for this job first, instead of resuming.
        show_progress: draw a progress bar on stderr.
        wait: if another run writes to the same result set, wait for it to end instead of
            refusing (see :mod:`gdsearch.results.lock`).
        break_lock: take over the result set's lock from a run on another host that is gone.
        num_cpus: cores of the embedded Ray (default: all); not with a cluster.
        executor: ``"local"`` trains in this process, ``"ray"`` on Ray, ``"auto"`` (the
            default) in this process where no cluster is named, Ray is not running here and
            the job's modelled work is under ``LOCAL_BELOW_S`` seconds. Histories are the
            same either way, bit for bit.
        allow_numerics_change: add trials to results whose stored trials were computed with
            other numerics (see :mod:`gdsearch.results.manifest`); refused otherwise.

    Returns:
        A :class:`RunSummary`.
    """
    started = time.perf_counter()
    started_at = now()
    if executor not in EXECUTORS:
        raise InputError(f"--executor: one of {', '.join(EXECUTORS)}, but got {executor!r}")
    if not ray_running():
        check_address(address, num_cpus)  # before anything is touched
    spec = read_job(job)
    if spec.sampling is not None:
        from gdsearch.results.study import optuna_module

        optuna_module()  # a missing Optuna stops us before anything is touched
    store = ResultsStore(join(str(results_root), spec.name))
    X, Y = spec.load_data()  # a bad data file stops us before anything is touched
    trials = spec.trials()
    refuse_local_with_cluster(executor, address)
    compat = spec.compat_key(X, Y)
    numerics = machine_label(spec.train.numerics)  # the workers' too, but for BLAS elsewhere
    check_compatible(store, compat, fresh)
    check_numerics(store, numerics, allow_numerics_change or fresh)
    with ResultsLock(store, wait=wait, break_foreign=break_lock):
        check_compatible(store, compat, fresh)  # a run we waited for may have stored others
        check_numerics(store, numerics, allow_numerics_change or fresh)
        return _run_locked(
            spec,
            store,
            X,
            Y,
            trials,
            compat,
            address=address,
            fresh=fresh,
            show_progress=show_progress,
            started=started,
            started_at=started_at,
            num_cpus=num_cpus,
            executor=executor,
        )


def choose_executor(
    executor: str,
    address: str | None,
    spec: JobSpec,
    trials: list[Trial],
    shape: Shape,
) -> str:
    """Where the run trains (see :data:`EXECUTORS`), its cost modelled on ``trials``."""

    def seconds() -> float:
        rounds = 1 + (spec.bracket.rounds if spec.bracket is not None else 0)
        units = plan_units(trials, 1, shape=shape)
        modelled = rounds * sum(unit_seconds(u, shape) for u in units)
        if spec.landscape is not None:  # trained again, and the slices: about as much again
            modelled *= 1 + 2 * (1.0 if spec.landscape.trials == "all" else 0.1)
        return modelled

    return pick_executor(executor, address, seconds, LOCAL_BELOW_S, "training")


def refuse_local_with_cluster(executor: str, address: str | None) -> None:
    """``--executor local`` with a cluster named (``--address`` or ``RAY_ADDRESS``): an
    InputError, before anything is touched."""
    named = address or os.environ.get("RAY_ADDRESS")
    if executor == "local" and named:
        raise InputError(
            f"--executor local: runs in this process, but a cluster is named ({named!r}); "
            "drop one of them"
        )


def pick_executor(
    executor: str,
    address: str | None,
    seconds: Callable[[], float],
    below: float,
    work: str,
) -> str:
    """``executor``, or for ``auto``: Ray where a cluster is named or running, else this
    process where the modelled ``seconds()`` of ``work`` on one core are under ``below``.
    ``--executor local`` with a cluster named is refused (InputError)."""
    refuse_local_with_cluster(executor, address)
    if executor != "auto":
        return executor
    if address or os.environ.get("RAY_ADDRESS") or ray_running():
        return "ray"
    modelled = seconds()
    chosen = "local" if modelled < below else "ray"
    log.info(
        "about %.1f s of %s on one core: running it %s",
        modelled,
        work,
        "in this process" if chosen == "local" else "on Ray",
    )
    return chosen


def _run_locked(
    spec: JobSpec,
    store: ResultsStore,
    X: np.ndarray,
    Y: np.ndarray,
    trials: list[Trial],
    compat: dict[str, Any],
    *,
    address: str | None,
    fresh: bool,
    show_progress: bool,
    started: float,
    started_at: str,
    num_cpus: int | None = None,
    executor: str = "auto",
) -> RunSummary:
    """The run proper, under the lock."""
    X_fit, Y_fit, holdout = spec.held_out(X, Y)  # X, Y: all the data, as the manifest names it
    cost = spec.cost_trials(trials)
    executor = choose_executor(executor, address, spec, cost, Shape.of(X_fit, Y_fit))
    started_ray = False
    drawn: LandscapeSummary | None = None
    try:
        if executor == "ray":
            from gdsearch.search.connection import cluster_facts, connect
            from gdsearch.search.remote import RayBackend

            started_ray = connect(address, num_cpus)  # so is an address where none answers
            cluster = cluster_facts()
        else:
            cluster = local_facts()
        if fresh:
            store.remove()
        store.prepare(spec.source)
        previous = store.read_manifest()
        total = spec.n_trials if spec.sampling is not None else len(trials)  # expanded once
        manifest = new_manifest(spec, compat, previous, started_at, cluster, X, Y, total)
        manifest["executor"] = executor
        store.write_manifest({**manifest, "status": "running"})
        try:
            policy = _policy(spec, trials, store, cluster["cpus"], Shape.of(X_fit, Y_fit))
            backend: Backend = (
                RayBackend(X_fit, Y_fit, cluster["cpus"], holdout, own_session=started_ray)
                if executor == "ray"
                else LocalBackend(X_fit, Y_fit, holdout)
            )
            execute(policy, backend, store, show_progress)
            if spec.lr_range is not None:
                from gdsearch.search.range_test import store_range_tests

                store_range_tests(store, trials, X_fit, Y_fit, spec.lr_range)
            if spec.landscape is not None:
                drawn = _landscapes(
                    spec, store, backend, cluster["cpus"], X_fit, Y_fit, show_progress
                )
        except BaseException:
            store.write_manifest(
                {**manifest, "status": "interrupted", "counts": store.status_counts()}
            )
            raise
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    counts = store.status_counts()
    wall = time.perf_counter() - started
    rounds = policy.rounds()
    total = sum(r.trials for r in rounds)
    ran = sum(r.ran for r in rounds)
    run = {
        "started_at": started_at,
        "finished_at": now(),
        "wall_s": round(wall, 3),
        "trials_run": ran,
        "units": sum(r.units for r in rounds),
        "executor": executor,
        "numerics": spec.train.numerics,
    }
    manifest.update(
        runs=[*previous.get("runs", []), run],
        status="complete",
        finished_at=run["finished_at"],
        counts=counts,
        trials_total=total,
        numerics=numerics_counts(store.read_table("trials", ["numerics"]).column(0).to_pylist()),
    )
    if spec.bracket is not None:
        manifest["bracket_rounds"] = [r.record() for r in rounds]
    store.write_manifest(manifest)
    retried = sum(r.retried for r in rounds)
    first_error = next((r.first_error for r in rounds if r.first_error), None)
    return RunSummary(
        store.location,
        total,
        total - ran,
        ran,
        counts,
        wall,
        retried,
        first_error,
        executor,
        drawn,
    )


def _landscapes(
    spec: JobSpec,
    store: ResultsStore,
    backend: Backend,
    cpus: int,
    X: np.ndarray,
    Y: np.ndarray,
    show_progress: bool,
) -> LandscapeSummary:
    """Draw the landscapes the job's ``[landscape]`` table asks for, on the run's backend."""
    from gdsearch.results.loading import open_results
    from gdsearch.search.landscapes import default_trials, draw_chosen

    assert spec.landscape is not None
    results = open_results(store.location)
    chosen = results.trials
    if spec.landscape.trials == "default":
        chosen = default_trials(chosen)
    chosen = chosen[chosen["status"] != Status.FAILED.value]
    log.info("drawing the loss landscapes of %d trials", len(chosen))
    return draw_chosen(
        store,
        results,
        spec,
        chosen,
        spec.landscape.settings,
        backend,
        cpus,
        Shape.of(X, Y),
        show_progress=show_progress,
    )


def _policy(
    spec: JobSpec, trials: list[Trial], store: ResultsStore, cpus: int, shape: Shape
) -> Policy:
    """The job's policy: bracket rounds, successive halving, or the plain run."""
    if spec.sampling is not None:
        from gdsearch.search.sampled import SampledSearch

        return SampledSearch(spec, store, cpus, shape)
    if spec.bracket is not None:
        return BracketRounds(spec, trials, store, cpus, shape)
    if spec.halving is not None:
        return SuccessiveHalving(spec, trials, store, cpus, shape)
    return PlainRun(trials, store, cpus, shape=shape)
