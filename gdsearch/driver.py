"""The search driver: expand a job, fan its work units out over Ray, store every finished one.

The driver is the single writer of a results directory. It keeps a bounded number of units in
flight, commits each finished unit as one Parquet part as soon as it arrives (so it never holds
all histories), and skips trials that are already stored, so running a job again resumes it.

Nothing a unit does ends the run. Ray runs a unit again when its worker or node dies
(``remote.TASK_RETRIES``); if that is not enough, the driver submits it afresh up to
``RESUBMITS`` times, and then records its trials as ``failed``, as it does when a unit raises.
Failed trials are stored with their error and tried again by the next run of the job.
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
import pyarrow as pa
import pyarrow.compute as pc
import ray

from gdsearch import __version__
from gdsearch.errors import InputError, ResultsError, RunError
from gdsearch.progress import Progress
from gdsearch.remote import train_unit_task
from gdsearch.spec import JobSpec, load_job
from gdsearch.store import ResultsStore, join
from gdsearch.trial import Trial
from gdsearch.unit import failed_tables, plan_units

log = logging.getLogger("gdsearch")

IN_FLIGHT_PER_CPU = 2
CONNECT_TIMEOUT_S = 5.0
RESUBMITS = 2
"""How often the driver submits a unit again after Ray's own retries ended in a lost worker,
node or object."""
LOST = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OutOfMemoryError,
)


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

    Returns:
        A :class:`RunSummary`.
    """
    started = time.perf_counter()
    started_at = _now()
    spec = job if isinstance(job, JobSpec) else load_job(job)
    store = ResultsStore(join(str(results_root), spec.name))
    X, Y = spec.load_data()  # a bad data file stops us before anything is touched
    trials = spec.trials()
    _check_compatible(store, spec, fresh)
    started_ray = _connect(address)  # so is an address where no cluster answers
    try:
        if fresh:
            store.remove()
        store.prepare(spec.source)
        retried = store.drop_failed({t.trial_id for t in trials})
        stored = store.stored_trial_ids()
        todo = [t for t in trials if t.trial_id not in stored]
        previous = store.read_manifest()
        cluster = _cluster_info()
        manifest = _manifest(spec, previous, started_at, cluster, X, Y, len(trials))
        store.write_manifest({**manifest, "status": "running"})
        units = plan_units(todo, cluster["cpus"])
        _log_plan(units, len(trials), cluster["cpus"], retried)
        try:
            first_error = _run_units(units, X, Y, store, cluster["cpus"], len(todo), show_progress)
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
    skipped = len(trials) - len(todo)
    return RunSummary(
        store.location, len(trials), skipped, len(todo), counts, wall, retried, first_error
    )


def _log_plan(units: list[list[Trial]], total: int, cpus: int, retried: int) -> None:
    if not units:
        log.info("all %d trials are stored already", total)
        return
    sizes = [len(u) for u in units]
    again = f", {retried} of them failed before and tried again" if retried else ""
    log.info(
        "%d trials to run%s (%d already stored) in %d work units of %d-%d trials on %d CPUs",
        sum(sizes), again, total - sum(sizes), len(units), min(sizes), max(sizes), cpus,
    )  # fmt: skip


def _run_units(
    units: list[list[Trial]],
    X: np.ndarray,
    Y: np.ndarray,
    store: ResultsStore,
    cpus: int,
    total: int,
    show_progress: bool,
) -> str | None:
    """Submit units with at most ``IN_FLIGHT_PER_CPU`` per CPU pending; commit each as it ends.

    Returns the error text of one trial that failed, or None if none did.
    """
    progress = Progress(total) if show_progress and total else None
    data = ray.put((X, Y))
    pending: dict[ray.ObjectRef, tuple[list[Trial], int]] = {}  # unit and its resubmissions
    first_error: str | None = None

    def submit(unit: list[Trial], resubmissions: int) -> None:
        pending[train_unit_task.remote(data, unit)] = (unit, resubmissions)

    def commit_one() -> None:
        nonlocal first_error
        [ref], _ = ray.wait(list(pending), num_returns=1)
        unit, resubmissions = pending.pop(ref)
        tables = _unit_tables(ref, unit, resubmissions)
        if tables is None:
            submit(unit, resubmissions + 1)
            return
        trials_table, history_table = tables
        store.write_part(trials_table, history_table)
        status = trials_table.column("status")
        failed = pc.sum(pc.equal(status, "failed")).as_py() or 0
        if failed and first_error is None:
            first_error = pc.drop_null(trials_table.column("error"))[0].as_py()
        if progress:
            diverged = pc.sum(pc.equal(status, "diverged")).as_py() or 0
            progress.update(trials_table.num_rows, diverged, failed)

    try:
        for unit in units:
            if len(pending) >= IN_FLIGHT_PER_CPU * cpus:
                commit_one()
            submit(unit, 0)
        while pending:
            commit_one()
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if progress:
            progress.close()
    return first_error


def _unit_tables(
    ref: ray.ObjectRef, unit: list[Trial], resubmissions: int
) -> tuple[pa.Table, pa.Table] | None:
    """A finished unit's tables; its trials as failed if it raised or was lost too often;
    None if it was lost and should be submitted again."""
    try:
        trials_table, history_table = ray.get(ref)
        return trials_table, history_table
    except LOST as exc:
        if resubmissions < RESUBMITS:
            log.warning("a work unit was lost (%s); submitting it again", _last_line(exc))
            return None
        reason = f"lost {resubmissions + 1} times: {_last_line(exc)}"
    except ray.exceptions.RayTaskError as exc:
        reason = _last_line(exc)
    except ray.exceptions.RayError as exc:
        raise RunError(f"a work unit failed: {_last_line(exc)}") from exc
    log.warning("%d trials failed: %s", len(unit), reason)
    return failed_tables(unit, reason)


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[-1].strip() if lines else type(exc).__name__


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


def _compat_key(spec: JobSpec) -> dict[str, Any]:
    """The settings every stored trial of a result set must share."""
    return {
        "job_seed": spec.seed,
        "data": {"dataset": spec.dataset, **spec.data_options},
        "epochs": spec.epochs,
        "grad_scale": spec.grad_scale,
        "divergence_factor": spec.divergence_factor,
    }


def _check_compatible(store: ResultsStore, spec: JobSpec, fresh: bool) -> None:
    if fresh or not store.exists():
        return
    stored = store.read_manifest().get("compat")
    wanted = _compat_key(spec)
    if stored is not None and stored != wanted:
        changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
        raise ResultsError(
            f"{store.location}: holds results of this job name with other {', '.join(changed)} "
            f"(stored {', '.join(f'{k}={stored.get(k)!r}' for k in changed)}); "
            "run with --fresh to start over, or give the job another [job] name"
        )


def _manifest(
    spec: JobSpec,
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
        "compat": _compat_key(spec),
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
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
