"""The search driver, a thin front: check a job, take the results lock, run its policy on Ray.

The driver is the single writer of a results directory, and holds its lock
(:mod:`gdsearch.results.lock`) while it writes, so a second run there waits or is refused. It
skips trials that are already stored, so running a job again resumes it. What runs is a policy
(:mod:`gdsearch.search.policy`: the plain run, halving, or bracket rounds) in the one executor
loop (:mod:`gdsearch.search.loop`), which keeps a bounded number of units in flight, commits
each finished unit as one Parquet part, and applies the failure policy: nothing a unit does ends
the run; its trials are stored as ``failed`` with their error and tried again by the next run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray

from gdsearch.job.spec import JobSpec, load_job
from gdsearch.job.trial import Trial
from gdsearch.model.numerics import machine_label
from gdsearch.results.lock import ResultsLock
from gdsearch.results.manifest import (
    check_compatible,
    check_numerics,
    new_manifest,
    now,
    numerics_counts,
)
from gdsearch.results.store import ResultsStore, join
from gdsearch.search.bracket import BracketRounds
from gdsearch.search.connection import check_address, cluster_facts, connect
from gdsearch.search.halving import SuccessiveHalving
from gdsearch.search.loop import execute
from gdsearch.search.plain import PlainRun
from gdsearch.search.policy import Policy


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
    """

    path: str
    total: int
    skipped: int
    ran: int
    counts: dict[str, int]
    wall_s: float
    retried: int = 0
    first_error: str | None = None


def run_search(
    job: JobSpec | str | Path,
    results_root: str | Path = "results",
    *,
    address: str | None = None,
    fresh: bool = False,
    show_progress: bool = True,
    wait: bool = False,
    break_lock: bool = False,
    num_cpus: int | None = None,
    allow_numerics_change: bool = False,
) -> RunSummary:
    """Run a search job on Ray and store its results under ``results_root/NAME``.

    Args:
        job: a checked :class:`JobSpec` or the path of a job file.
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
        allow_numerics_change: add trials to results whose stored trials were computed with
            other numerics (see :mod:`gdsearch.results.manifest`); refused otherwise.

    Returns:
        A :class:`RunSummary`.
    """
    started = time.perf_counter()
    started_at = now()
    if not ray.is_initialized():
        check_address(address, num_cpus)  # before anything is touched
    spec = job if isinstance(job, JobSpec) else load_job(job)
    store = ResultsStore(join(str(results_root), spec.name))
    X, Y = spec.load_data()  # a bad data file stops us before anything is touched
    trials = spec.trials()
    compat = spec.compat_key(X, Y)
    numerics = machine_label(spec.train.numerics)  # the workers' too, but for BLAS elsewhere
    check_compatible(store, compat, fresh)
    check_numerics(store, numerics, allow_numerics_change or fresh)
    with ResultsLock(store, wait=wait, break_foreign=break_lock):
        check_compatible(store, compat, fresh)  # a run we waited for may have stored others
        check_numerics(store, numerics, allow_numerics_change or fresh)
        return _run_locked(
            spec, store, X, Y, trials, compat,
            address=address, fresh=fresh, show_progress=show_progress,
            started=started, started_at=started_at, num_cpus=num_cpus,
        )  # fmt: skip


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
) -> RunSummary:
    """The run proper, under the lock."""
    started_ray = connect(address, num_cpus)  # so is an address where no cluster answers
    try:
        if fresh:
            store.remove()
        store.prepare(spec.source)
        previous = store.read_manifest()
        cluster = cluster_facts()
        manifest = new_manifest(spec, compat, previous, started_at, cluster, X, Y, len(trials))
        store.write_manifest({**manifest, "status": "running"})
        try:
            policy = _policy(spec, trials, store, cluster["cpus"])
            execute(policy, X, Y, store, cluster["cpus"], show_progress)
        except BaseException:
            store.write_manifest(
                {**manifest, "status": "interrupted", "counts": store.status_counts()}
            )
            raise
    finally:
        if started_ray:
            ray.shutdown()
    counts = store.status_counts()
    wall = time.perf_counter() - started
    rounds = policy.rounds()
    total = sum(r.trials for r in rounds)
    ran = sum(r.ran for r in rounds)
    run = {"started_at": started_at, "finished_at": now(), "wall_s": round(wall, 3),
           "trials_run": ran, "units": sum(r.units for r in rounds),
           "numerics": spec.train.numerics}  # fmt: skip
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
    return RunSummary(store.location, total, total - ran, ran, counts, wall, retried, first_error)


def _policy(spec: JobSpec, trials: list[Trial], store: ResultsStore, cpus: int) -> Policy:
    """The job's policy: bracket rounds, successive halving, or the plain run."""
    if spec.bracket is not None:
        return BracketRounds(spec, trials, store, cpus)
    if spec.halving is not None:
        return SuccessiveHalving(spec, trials, store, cpus)
    return PlainRun(trials, store, cpus)
