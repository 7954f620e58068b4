"""The search driver: expand a job, fan its work units out over Ray, store every finished one.

The driver is the single writer of a results directory, and holds its lock (``gdsearch.lock``)
while it writes, so a second run there waits or is refused. It keeps a bounded number of units in
flight, commits each finished unit as one Parquet part as soon as it arrives (so it never holds
all histories), and skips trials that are already stored, so running a job again resumes it.

Nothing a unit does ends the run. Ray runs a unit again when its worker or node dies
(``remote.TASK_RETRIES``); if that is not enough, the driver submits it afresh up to
``RESUBMITS`` times, and then records its trials as ``failed``, as it does when a unit raises.
Failed trials are stored with their error and tried again by the next run of the job.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from gdsearch import __version__, halving
from gdsearch.bracket import comparison_key, next_round
from gdsearch.data import data_digest
from gdsearch.errors import InputError, ResultsError, RunError, shown
from gdsearch.lock import ResultsLock
from gdsearch.progress import Progress
from gdsearch.remote import advance_unit_task, train_unit_task
from gdsearch.spec import JobSpec, load_job
from gdsearch.store import ResultsStore, join
from gdsearch.trial import Trial
from gdsearch.unit import abandon_unit, failed_tables, plan_units

log = logging.getLogger("gdsearch")

IN_FLIGHT_PER_CPU = 2
SWITCHES = ("patience", "scheduler")
"""Compatibility keys present only when the feature is on (so other result sets still match)."""
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
        return _run_locked(
            spec, store, X, Y, trials, compat,
            address=address, fresh=fresh, show_progress=show_progress,
            started=started, started_at=started_at,
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
) -> RunSummary:
    """The run proper, under the lock."""
    started_ray = _connect(address)  # so is an address where no cluster answers
    try:
        if fresh:
            store.remove()
        store.prepare(spec.source)
        previous = store.read_manifest()
        cluster = _cluster_info()
        manifest = _manifest(spec, compat, previous, started_at, cluster, X, Y, len(trials))
        store.write_manifest({**manifest, "status": "running"})
        try:
            rounds = _run_rounds(spec, trials, X, Y, store, cluster["cpus"], show_progress)
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
    total = sum(r["trials"] for r in rounds)
    ran = sum(r["ran"] for r in rounds)
    run = {"started_at": started_at, "finished_at": _now(), "wall_s": round(wall, 3),
           "trials_run": ran, "units": sum(r["units"] for r in rounds)}  # fmt: skip
    manifest.update(
        runs=[*previous.get("runs", []), run],
        status="complete",
        finished_at=run["finished_at"],
        counts=counts,
        trials_total=total,
    )
    if spec.mode == "bracket":
        manifest["bracket_rounds"] = rounds
    store.write_manifest(manifest)
    retried = sum(r["retried"] for r in rounds)
    first_error = next((r["first_error"] for r in rounds if r["first_error"]), None)
    return RunSummary(store.location, total, total - ran, ran, counts, wall, retried, first_error)


def _run_rounds(
    spec: JobSpec,
    trials: list[Trial],
    X: np.ndarray,
    Y: np.ndarray,
    store: ResultsStore,
    cpus: int,
    show_progress: bool,
) -> list[dict[str, Any]]:
    """Train the job's trials not stored yet; in bracket mode, then round after round of new
    learning rates inside each bracket still too wide. Returns what each round did."""
    rounds: list[dict[str, Any]] = []
    known = list(trials)
    current = trials
    while True:
        retried = 0
        if spec.scheduler != "halving":
            retried = store.drop_failed({t.trial_id for t in current})
        else:  # their groups' later rungs were decided without them: see gdsearch.halving
            _warn_failed_not_retried(store, current)
        stored = store.stored_trial_ids()
        todo = [t for t in current if t.trial_id not in stored]
        halving = spec.scheduler == "halving"
        units = plan_units(todo, cpus, apart=comparison_key if halving else None)
        if spec.mode == "bracket":
            log.info("bracket round %d: %d trials", len(rounds), len(current))
        _log_plan(units, len(current), cpus, retried)
        if halving:
            first_error = _run_halving(spec, current, units, X, Y, store, cpus, show_progress)
        else:
            first_error = _run_units(units, X, Y, store, cpus, len(todo), show_progress)
        rounds.append({"round": len(rounds), "trials": len(current), "ran": len(todo),
                       "units": len(units), "retried": retried,
                       "first_error": first_error})  # fmt: skip
        if spec.mode != "bracket" or len(rounds) > spec.bracket_rounds:
            return rounds
        # A round whose trials all failed leaves its brackets as they were, and would ask
        # for the same trials again: those are left to the next run, which retries them.
        seen = {t.trial_id for t in known}
        current = [t for t in next_round(spec, known, store.trial_statuses())
                   if t.trial_id not in seen]  # fmt: skip
        if not current:
            return rounds
        known.extend(current)


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
        first_error = first_error or _count(progress, trials_table)

    try:
        for unit in units:
            if len(pending) >= IN_FLIGHT_PER_CPU * cpus:
                commit_one()
            submit(unit, 0)
        while pending:
            commit_one()
    finally:
        _wind_up(pending, progress)
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


@dataclass
class _HalvingUnit:
    """A unit between rungs: its trials (before it starts) or its state in Ray's object store,
    the rung it trains to next, and its trials still training."""

    state: Any
    live: set[str]
    rung: int = 0


def _run_halving(
    spec: JobSpec,
    trials: list[Trial],
    units: list[list[Trial]],
    X: np.ndarray,
    Y: np.ndarray,
    store: ResultsStore,
    cpus: int,
    show_progress: bool,
) -> str | None:
    """Train units rung by rung; at each rung, stop all but the best of each comparison group.

    A group decides a rung once all its trials still training have reached it, counting stored
    trials' histories too (:mod:`gdsearch.halving`), so a resumed run decides the same. A unit
    goes on as soon as its trials' groups have decided; meanwhile the other units train.
    Failures are handled as in :func:`_run_units`; returns one failed trial's error, if any.
    """
    rung_epochs = halving.rungs(spec.min_epochs, spec.reduction_factor, spec.epochs)
    targets = [*rung_epochs, spec.epochs]
    group_of = {t.trial_id: comparison_key(t) for t in trials}
    metrics: list[dict[Any, dict[str, float]]] = [defaultdict(dict) for _ in rung_epochs]
    for k, values in enumerate(_stored_rung_metrics(spec, store, group_of, rung_epochs)):
        for trial_id, value in values.items():
            metrics[k][group_of[trial_id]][trial_id] = value
    outstanding: list[Counter[Any]] = [Counter() for _ in targets]  # live trials yet to report
    outstanding[0].update(group_of[t.trial_id] for unit in units for t in unit)
    reached: list[dict[Any, set[str]]] = [defaultdict(set) for _ in rung_epochs]
    kept: list[dict[Any, set[str]]] = [{} for _ in rung_epochs]
    pool = [_HalvingUnit(list(unit), {t.trial_id for t in unit}) for unit in units]
    ready: deque[tuple[int, list[str]]] = deque((i, []) for i in range(len(pool)))
    waiting: set[int] = set()
    progress = Progress(sum(map(len, units))) if show_progress and units else None
    data = ray.put((X, Y))
    by_id = {t.trial_id: t for unit in units for t in unit}
    in_flight: dict[ray.ObjectRef, tuple[int, ray.ObjectRef, Any, list[str], int]] = {}
    first_error: str | None = None

    def submit(index: int, stop: list[str], resubmissions: int) -> None:
        unit = pool[index]
        before = unit.state
        refs = advance_unit_task.remote(data, before, targets[unit.rung], stop, spec.rung_metric)
        rows_ref, rung_ref, unit.state = cast(list[ray.ObjectRef], refs)
        in_flight[rung_ref] = (index, rows_ref, before, stop, resubmissions)

    def decide(k: int) -> None:
        """Take every rung-k decision that can be taken, and send on the units it frees."""
        for group, count in outstanding[k].items():
            if count == 0 and group not in kept[k]:
                kept[k][group] = halving.survivors(metrics[k][group], spec.reduction_factor)
                going_on = reached[k][group] & kept[k][group]
                outstanding[k + 1][group] += len(going_on)
        for index in sorted(waiting):
            unit = pool[index]
            groups = {group_of[t] for t in unit.live}
            if unit.rung - 1 != k or not groups <= kept[k].keys():
                continue
            waiting.discard(index)
            stop = sorted(t for t in unit.live if t not in kept[k][group_of[t]])
            unit.live -= set(stop)
            if unit.live or stop:
                ready.append((index, stop))

    try:
        while ready or in_flight:
            while ready and len(in_flight) < IN_FLIGHT_PER_CPU * cpus:
                submit(*ready.popleft(), 0)
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            index, rows_ref, before, stop, resubmissions = in_flight.pop(done)
            unit = pool[index]
            try:
                at_rung, rows = ray.get(done), ray.get(rows_ref)
            except (*LOST, ray.exceptions.RayTaskError) as exc:
                if isinstance(exc, LOST) and resubmissions < RESUBMITS:
                    log.warning("a work unit was lost (%s); submitting it again", _last_line(exc))
                    unit.state = before
                    submit(index, stop, resubmissions + 1)
                    continue
                log.warning("a work unit failed: %s", _last_line(exc))
                at_rung, rows = {}, _abandon(before, stop, _last_line(exc), unit.live, by_id)
            except ray.exceptions.RayError as exc:
                raise RunError(f"a work unit failed: {_last_line(exc)}") from exc
            if rows is not None:
                store.write_part(*rows)
                first_error = first_error or _count(progress, rows[0])
            k = unit.rung
            if k == len(rung_epochs):
                continue  # the last stretch: every trial of the unit has finished
            outstanding[k].subtract(group_of[t] for t in unit.live)
            for trial_id, value in at_rung.items():
                metrics[k][group_of[trial_id]][trial_id] = value
                reached[k][group_of[trial_id]].add(trial_id)
            unit.live = set(at_rung)
            unit.rung = k + 1
            waiting.add(index)
            decide(k)
        if waiting:  # every unit either finished or was sent on; anything else is a bug
            raise RunError(f"halving stopped with {len(waiting)} work units still waiting")
    finally:
        _wind_up(in_flight, progress)
    return first_error


def _abandon(
    before: Any, stop: list[str], error: str, live: set[str], by_id: dict[str, Trial]
) -> tuple[pa.Table, pa.Table] | None:
    """The rows of a unit that cannot go on: from its state at the last rung if there is one
    (its trials to prune pruned, the rest failed with their histories so far), else all its
    trials failed with no history."""
    if isinstance(before, ray.ObjectRef):
        try:
            return abandon_unit(copy.deepcopy(ray.get(before)), stop, error)
        except ray.exceptions.RayError:
            pass  # the state is gone too
    return failed_tables([by_id[t] for t in sorted(live | set(stop))], error)


def _warn_failed_not_retried(store: ResultsStore, trials: list[Trial]) -> None:
    statuses = store.trial_statuses()
    failed = sum(statuses.get(t.trial_id) == "failed" for t in trials)
    if failed:
        log.warning(
            "%d trials of this halving job failed in an earlier run and are not retried (their "
            "groups' later rungs were decided without them); --fresh trains everything again",
            failed,
        )


def _stored_rung_metrics(
    spec: JobSpec, store: ResultsStore, group_of: dict[str, Any], rung_epochs: list[int]
) -> list[dict[str, float]]:
    """Rung metrics of this round's trials that are stored already (a resumed run)."""
    stored_ids = store.stored_trial_ids() & group_of.keys()
    if not stored_ids:
        return [{} for _ in rung_epochs]
    wanted = pc.field("trial_id").isin(pa.array(sorted(stored_ids)))
    trials = store.read_filtered("trials", wanted)
    history = store.read_filtered("history", wanted & (pc.field("epoch") <= rung_epochs[-1]))
    return halving.stored_metrics(
        trials.to_pandas(), history.to_pandas(), rung_epochs, spec.rung_metric
    )


def _wind_up(refs: Iterable[ray.ObjectRef], progress: Progress | None) -> None:
    """Cancel the tasks still in flight (after an error or an interrupt) and end the bar."""
    for ref in refs:
        ray.cancel(ref, force=True)
    if progress:
        progress.close()


def _count(progress: Progress | None, trials_table: pa.Table) -> str | None:
    """Move the progress bar on by a stored part's trials; returns one failed trial's error."""
    status = trials_table.column("status")
    failed = pc.sum(pc.equal(status, "failed")).as_py() or 0
    if progress:
        diverged = pc.sum(pc.equal(status, "diverged")).as_py() or 0
        progress.update(trials_table.num_rows, diverged, failed)
    return pc.drop_null(trials_table.column("error"))[0].as_py() if failed else None


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
    key: dict[str, Any] = {
        "job_seed": spec.seed,
        "data": {"dataset": spec.dataset, **spec.data_options},
        "data_sha256": data_digest(X, Y),
        "epochs": spec.epochs,
        "grad_scale": spec.grad_scale,
        "divergence_factor": spec.divergence_factor,
    }
    if spec.patience:  # keys only when set, so that older result sets still match
        key["patience"] = [spec.patience, spec.patience_tolerance]
    if spec.scheduler != "none":
        key["scheduler"] = [spec.scheduler, spec.min_epochs, spec.reduction_factor,
                            spec.rung_metric]  # fmt: skip
    return key


def _check_compatible(store: ResultsStore, wanted: dict[str, Any], fresh: bool) -> None:
    """Refuse to add trials to results computed under other settings or on other data.

    A setting that an older manifest does not record is not compared, except ``SWITCHES``,
    which are recorded only when on.
    """
    if fresh or not store.exists():
        return
    stored = store.read_manifest().get("compat")
    if stored is None:
        return
    keys = wanted.keys() | (stored.keys() & set(SWITCHES))
    changed = sorted(
        k for k in keys if (k in stored or k in SWITCHES) and stored.get(k) != wanted.get(k)
    )
    if not changed:
        return
    differences = [
        "data contents (the data changed since they were stored: sha256 "
        f"{str(stored[k])[:12]}… then, {wanted[k][:12]}… now)"
        if k == "data_sha256"
        else f"{k} (stored {shown(stored.get(k, 'off'))}, now {shown(wanted.get(k, 'off'))})"
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
