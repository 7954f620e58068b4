"""The search driver: expand a job, fan its work units out over Ray, store every finished one.

The driver is the single writer of a results directory, and holds its lock (``gdsearch.lock``)
while it writes, so a second run there waits or is refused. It keeps a bounded number of units in
flight, commits each finished unit as one Parquet part as soon as it arrives (so it never holds
all histories), and skips trials that are already stored, so running a job again resumes it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import ray

from gdsearch import __version__
from gdsearch.data import data_digest
from gdsearch.errors import InputError, ResultsError, RunError, shown
from gdsearch.lock import ResultsLock
from gdsearch.progress import Progress
from gdsearch.remote import train_unit_task
from gdsearch.spec import JobSpec, load_job
from gdsearch.store import ResultsStore, join
from gdsearch.trial import Trial
from gdsearch.unit import plan_units

log = logging.getLogger("gdsearch")

IN_FLIGHT_PER_CPU = 2
CONNECT_TIMEOUT_S = 5.0


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
    """

    path: str
    total: int
    skipped: int
    ran: int
    counts: dict[str, int]
    wall_s: float


def run_search(
    job: JobSpec | str | Path,
    results_root: str | Path = "results",
    *,
    address: str | None = None,
    fresh: bool = False,
    show_progress: bool = True,
    wait: bool = False,
    break_lock: bool = False,
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
            refusing (see :mod:`gdsearch.lock`).
        break_lock: take over the result set's lock from a run on another host that is gone.

    Returns:
        A :class:`RunSummary`.
    """
    started = time.perf_counter()
    started_at = _now()
    spec = job if isinstance(job, JobSpec) else load_job(job)
    store = ResultsStore(join(str(results_root), spec.name))
    X, Y = spec.load_data()  # a bad data file stops us before anything is touched
    trials = spec.trials()
    compat = _compat_key(spec, X, Y)
    _check_compatible(store, compat, fresh)
    with ResultsLock(store, wait=wait, break_foreign=break_lock):
        _check_compatible(store, compat, fresh)  # a run we waited for may have stored others
        ran, counts = _run_locked(
            spec, store, X, Y, trials, compat,
            address=address, fresh=fresh, show_progress=show_progress,
            started=started, started_at=started_at,
        )  # fmt: skip
    wall = time.perf_counter() - started
    return RunSummary(store.location, len(trials), len(trials) - ran, ran, counts, wall)


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
) -> tuple[int, dict[str, int]]:
    """The run proper, under the lock: returns how many trials it trained and the counts."""
    started_ray = _connect(address)  # so is an address where no cluster answers
    try:
        if fresh:
            store.remove()
        store.prepare(spec.source)
        stored = store.stored_trial_ids()
        todo = [t for t in trials if t.trial_id not in stored]
        previous = store.read_manifest()
        cluster = _cluster_info()
        manifest = _manifest(spec, compat, previous, started_at, cluster, X, Y, len(trials))
        store.write_manifest({**manifest, "status": "running"})
        units = plan_units(todo, cluster["cpus"])
        _log_plan(units, len(trials), cluster["cpus"])
        try:
            _run_units(units, X, Y, store, cluster["cpus"], len(todo), show_progress)
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
    run = {"started_at": started_at, "finished_at": _now(), "wall_s": round(wall, 3),
           "trials_run": len(todo), "units": len(units)}  # fmt: skip
    manifest.update(
        runs=[*previous.get("runs", []), run],
        status="complete",
        finished_at=run["finished_at"],
        counts=counts,
    )
    store.write_manifest(manifest)
    return len(todo), counts


def _log_plan(units: list[list[Trial]], total: int, cpus: int) -> None:
    if not units:
        log.info("all %d trials are stored already", total)
        return
    sizes = [len(u) for u in units]
    log.info(
        "%d trials to run (%d already stored) in %d work units of %d-%d trials on %d CPUs",
        sum(sizes), total - sum(sizes), len(units), min(sizes), max(sizes), cpus,
    )  # fmt: skip


def _run_units(
    units: list[list[Trial]],
    X: np.ndarray,
    Y: np.ndarray,
    store: ResultsStore,
    cpus: int,
    total: int,
    show_progress: bool,
) -> None:
    """Submit units with at most ``IN_FLIGHT_PER_CPU`` per CPU pending; commit each as it ends."""
    progress = Progress(total) if show_progress and total else None
    data = ray.put((X, Y))
    pending: list[ray.ObjectRef] = []

    def commit_one() -> None:
        nonlocal pending
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            trials_table, history_table = ray.get(ready[0])
        except ray.exceptions.RayError as exc:
            raise RunError(f"a work unit failed: {str(exc).strip().splitlines()[-1]}") from exc
        store.write_part(trials_table, history_table)
        if progress:
            diverged = pc.sum(pc.equal(trials_table.column("status"), "diverged")).as_py() or 0
            progress.update(trials_table.num_rows, diverged)

    try:
        for unit in units:
            if len(pending) >= IN_FLIGHT_PER_CPU * cpus:
                commit_one()
            pending.append(train_unit_task.remote(data, unit))
        while pending:
            commit_one()
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if progress:
            progress.close()


def _connect(address: str | None) -> bool:
    """Join or start Ray unless this process already has it; True if we started it.

    BLAS is held to one thread inside every training (``gdsearch.mlp``), so workers need no
    runtime_env of their own, which would make Ray start fresh worker processes for us.
    """
    if ray.is_initialized():
        return False
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        _check_reachable(target)
    try:
        if target:
            ray.init(address=target, logging_level=logging.WARNING)
        else:
            ray.init(
                address="local",
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
    except (ConnectionError, OSError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if target:
            raise InputError(
                f"--address {target!r}: cannot join the Ray cluster: {reason}"
            ) from exc
        raise RunError(f"cannot start a local Ray instance: {reason}") from exc
    return True


def _check_reachable(address: str) -> None:
    """Fail fast with one line where nothing listens (Ray itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"--address {address!r}: nothing answers at {host}:{port} ({reason})"
        ) from None


def _cluster_info() -> dict[str, Any]:
    nodes = [
        {
            "node_id": node["NodeID"],
            "address": node["NodeManagerAddress"],
            "cpus": node.get("Resources", {}).get("CPU", 0),
        }
        for node in ray.nodes()
        if node.get("Alive")
    ]
    return {
        "ray_version": ray.__version__,
        "cpus": max(1, int(ray.cluster_resources().get("CPU", 1))),
        "nodes": nodes,
    }


def _compat_key(spec: JobSpec, X: np.ndarray, Y: np.ndarray) -> dict[str, Any]:
    """The settings every stored trial of a result set must share, the data's content too."""
    return {
        "job_seed": spec.seed,
        "data": {"dataset": spec.dataset, **spec.data_options},
        "data_sha256": data_digest(X, Y),
        "epochs": spec.epochs,
        "grad_scale": spec.grad_scale,
        "divergence_factor": spec.divergence_factor,
    }


def _check_compatible(store: ResultsStore, wanted: dict[str, Any], fresh: bool) -> None:
    """Refuse to add trials to results computed under other settings or on other data.

    A setting that an older manifest does not record is not compared.
    """
    if fresh or not store.exists():
        return
    stored = store.read_manifest().get("compat")
    if stored is None:
        return
    changed = sorted(k for k in wanted if k in stored and stored[k] != wanted[k])
    if not changed:
        return
    differences = [
        "data contents (the data changed since they were stored: sha256 "
        f"{str(stored[k])[:12]}… then, {wanted[k][:12]}… now)"
        if k == "data_sha256"
        else f"{k} (stored {shown(stored[k])}, now {shown(wanted[k])})"
        for k in changed
    ]
    raise ResultsError(
        f"{store.location}: holds results of this job name with other "
        f"{'; '.join(differences)}; run with --fresh to start over, or give the job another "
        "[job] name"
    )


def _manifest(
    spec: JobSpec,
    compat: dict[str, Any],
    previous: dict[str, Any],
    started_at: str,
    cluster: dict[str, Any],
    X: np.ndarray,
    Y: np.ndarray,
    total: int,
) -> dict[str, Any]:
    return {
        "format": 1,
        "gdsearch_version": __version__,
        "name": spec.name,
        "job_file": spec.path,
        "spec": spec.document,
        "compat": compat,
        "data_shape": {
            "n_samples": int(X.shape[0]),
            "n_inputs": int(X.shape[1]),
            "n_outputs": int(Y.shape[1]),
        },
        "trials_total": total,
        "created_at": previous.get("created_at", started_at),
        "started_at": started_at,
        "cluster": cluster,
        "runs": previous.get("runs", []),
        **({"repairs": previous["repairs"]} if "repairs" in previous else {}),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
