"""Loss landscapes of stored trials: each trained again from its seed, its path kept, its SSE
drawn on slices through weight space (:mod:`gdsearch.mlp.landscape`), stored in the result set.

A trial's history is reproducible bit for bit, so its path through weight space never needs to
be stored: a work unit trains its trials again as one population, keeps their weights at the
path's epochs, checks that each reaches the final SSE its trials row holds (else the data or the
code has changed, and the landscape would not be the trial's), and evaluates the slices. Units run
through the executor loop (:mod:`.loop`) on the same backends as training, in this process or on
Ray; each unit's tables are committed as one part (``ResultsStore.write_landscapes``), so a run
killed at any point loses at most its units in flight, and the next run draws only the trials
whose landscape is not stored yet.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from gdsearch.data.holdout import Holdout
from gdsearch.errors import InputError, ResultsError, RunError
from gdsearch.job.spec import JobSpec
from gdsearch.job.trial import LANDSCAPE_STREAM, Trial
from gdsearch.mlp.landscape import (
    Evaluator,
    LandscapeSettings,
    landscape,
    path_epochs,
    sharpest_directions,
)
from gdsearch.mlp.network import flatten, layer_sizes, loss_scale
from gdsearch.mlp.population import one_blas_thread
from gdsearch.mlp.stopping import Status
from gdsearch.results.lock import ResultsLock
from gdsearch.results.schema import LANDSCAPE_SCHEMA, LANDSCAPE_TRIALS_SCHEMA
from gdsearch.results.store import ResultsStore
from gdsearch.search.plan import Round, Shape, plan_units, unit_seconds
from gdsearch.search.policy import Policy, Rows, Step
from gdsearch.search.unit import UnitState, start_population

if TYPE_CHECKING:
    import pandas as pd

    from gdsearch.results.resultset import Results
    from gdsearch.search.loop import Backend

log = logging.getLogger("gdsearch")

PATH_VALUES = 1 << 24
"""A unit keeps at most about this many path values (K trials × epochs kept × P, 128 MiB)."""
LOCAL_BELOW_S = 8.0
"""``executor="auto"`` draws in this process when the modelled work is below this."""


@dataclass(frozen=True)
class Target:
    """Where a stored trial ended: its last epoch and the SSE its trials row holds there."""

    final_epoch: int
    final_sse: float


@dataclass(frozen=True)
class LandscapeWork:
    """What a landscape step does with its trials: where each ended, and the settings."""

    targets: dict[str, Target]
    settings: LandscapeSettings


@dataclass
class LandscapeSummary:
    """What :func:`draw_landscapes` did."""

    path: str
    chosen: int
    drawn: int
    skipped: int
    failed: int
    wall_s: float
    executor: str
    first_error: str | None = None


def draw_unit(
    X: np.ndarray,
    Y: np.ndarray,
    trials: Sequence[Trial],
    work: LandscapeWork,
    node: str = "",
    holdout: Holdout | None = None,
) -> Rows:
    """Train a unit's trials again, keep their paths, and draw their landscapes (BLAS on one
    thread, as training: a unit is one CPU's work, and the sharpness meter's and the plane's
    small LAPACK calls only spin a second thread).

    The trials train again on ``X, Y`` as they first did, measured on ``holdout`` where the
    job holds samples out (their patience may watch them).

    Returns:
        These trials' rows of the landscape_trials table, and their landscapes table.

    Raises:
        RunError: a trial trained again does not reach the final SSE stored for it.
    """
    with one_blas_thread():
        return _draw_unit(X, Y, trials, work, node, holdout)


def _draw_unit(
    X: np.ndarray,
    Y: np.ndarray,
    trials: Sequence[Trial],
    work: LandscapeWork,
    node: str,
    holdout: Holdout | None,
) -> Rows:
    started = time.perf_counter()
    first, settings = trials[0], work.settings
    sizes = layer_sizes(X.shape[1], first.hidden, Y.shape[1])
    targets = [work.targets[t.trial_id] for t in trials]
    kept = [path_epochs(t.final_epoch, settings.path_points) for t in targets]
    population = start_population(X, trials, sizes)
    initial = flatten(population.final)  # (K, P) θ₀
    K, P = initial.shape
    paths = np.empty((K, max(len(epochs) for epochs in kept), P))
    # Which trials keep each epoch, and where in their paths: epoch → (trials, positions).
    slots = np.concatenate([np.arange(len(epochs)) for epochs in kept])
    owners = np.repeat(np.arange(K), [len(epochs) for epochs in kept])
    at_epoch = np.concatenate(kept)
    order = np.argsort(at_epoch, kind="stable")
    bounds = np.flatnonzero(np.diff(at_epoch[order])) + 1
    wanted = {
        int(at_epoch[group[0]]): (owners[group], slots[group]) for group in np.split(order, bounds)
    }

    def keep(epoch: int) -> None:
        ks, ats = wanted[epoch]
        paths[ks, ats] = population.weights()[ks]

    # 1. Train again, keeping each trial's weights at its path's epochs.
    population.watch(wanted, keep)
    population.advance(X, Y, max(t.final_epoch for t in targets), holdout)
    histories = population.histories
    for k, (trial, target) in enumerate(zip(trials, targets, strict=True)):
        again = histories[k, target.final_epoch]
        if not again == target.final_sse:  # NaN never equals: a stored NaN is not a landscape
            raise RunError(
                f"trial {trial.trial_id} trained again reaches SSE {again!r} at epoch "
                f"{target.final_epoch}, not the stored {target.final_sse!r}: its data or "
                "gdsearch's numerics changed since it ran"
            )
    # 2. The sharpest direction at every θ_T at once, then each trial's slices.
    config = first.train
    scale = loss_scale(config.grad_scale, X.shape[0])
    finals = paths[np.arange(K), [len(epochs) - 1 for epochs in kept]]
    values, vectors = sharpest_directions(
        finals, X, Y, sizes, first.activation, scale, config.weight_decay, config.numerics
    )
    evaluate = Evaluator(X, Y, sizes, first.activation, config.numerics)
    grids, rows = [], []
    for k, trial in enumerate(trials):
        rng = np.random.default_rng(
            np.random.SeedSequence([trial.job_seed, LANDSCAPE_STREAM, trial.seed])
        )
        drawn = landscape(
            initial[k],
            paths[k, : len(kept[k])],
            kept[k],
            histories[k, kept[k]],
            rng.normal(size=(2, P)),
            (values[k], vectors[k]),
            sizes,
            evaluate,
            settings,
            scale,
        )
        n = len(drawn.sse)
        grids.append(
            pa.table(
                {
                    "trial_id": pa.array([trial.trial_id] * n, pa.string()),
                    "kind": pa.array(drawn.kind.tolist(), pa.string()),
                    "x": drawn.x,
                    "y": pa.array(drawn.y, from_pandas=True),
                    "epoch": pa.array(drawn.epoch, pa.int32(), mask=drawn.epoch < 0),
                    "sse": drawn.sse,
                },
                schema=LANDSCAPE_SCHEMA,
            )
        )
        rows.append(
            {
                "trial_id": trial.trial_id,
                "lr": trial.lr,
                "final_epoch": targets[k].final_epoch,
                "path_epochs": len(kept[k]),
                "explained": drawn.explained,
                "sharpness": drawn.sharpness,
                "loss_scale": scale,
                **settings_columns(settings),
                "path_points": settings.path_points,
                "node": node,
            }
        )
    wall = (time.perf_counter() - started) / K
    index = pa.Table.from_pylist(
        [{**row, "wall_s": wall} for row in rows], schema=LANDSCAPE_TRIALS_SCHEMA
    )
    return index, pa.concat_tables(grids), None


class DrawLandscapes(Policy):
    """One step per unit of chosen trials; a unit that fails stores nothing (the next run
    draws its trials again) and its error is kept."""

    def __init__(self, units: list[list[Trial]], work: LandscapeWork, total: int):
        self.round = Round(index=0, trials=total, ran=sum(len(u) for u in units), units=len(units))
        self.steps = [
            Step(unit=i, trials=unit, until=0, work=work) for i, unit in enumerate(units)
        ]
        self.failed: list[tuple[int, str]] = []

    def next_steps(self) -> list[Step]:
        steps, self.steps = self.steps, []
        return steps

    def give_up(self, step: Step, error: str, state: UnitState | None) -> Rows | None:
        self.failed.append((len(step.trials), error))
        return None

    def commit(self, store: ResultsStore, rows: Rows) -> None:
        store.write_landscapes(grids=rows[1], index=rows[0])

    def rounds(self) -> list[Round]:
        return [self.round]


def draw_landscapes(
    location: str | Path,
    *,
    trial_ids: Sequence[str] | None = None,
    filters: Any = None,
    settings: LandscapeSettings | None = None,
    fresh: bool = False,
    executor: str = "auto",
    address: str | None = None,
    num_cpus: int | None = None,
    show_progress: bool = True,
    wait: bool = False,
) -> LandscapeSummary:
    """Draw and store the loss landscapes of chosen trials of a result set.

    Args:
        location: the result set (a directory or URI).
        trial_ids: the trials to draw; with ``filters``, those of them that match.
        filters: the trials to draw, as :func:`gdsearch.load_results` takes them. With
            neither, each comparison group's smallest, best and largest non-diverging rates of
            its first replicate seed (:func:`default_trials`).
        settings: resolution and spans (:class:`~gdsearch.mlp.landscape.LandscapeSettings`).
        fresh: delete the stored landscapes first (to draw them with other settings).
        executor: ``"local"``, ``"ray"`` or ``"auto"``, as for :func:`gdsearch.run_search`.
        address: a Ray cluster to join (default ``RAY_ADDRESS``, else an embedded local Ray).
        num_cpus: cores of the embedded Ray.
        show_progress: draw a progress bar on stderr.
        wait: if a run writes to the result set, wait for it rather than refuse.

    Returns:
        A :class:`LandscapeSummary`.

    Raises:
        InputError: a selection that names no stored trial, or settings that differ from those
            the stored landscapes were drawn with (without ``fresh``).
        ResultsError: no result set there, or no job file or data to train its trials again.
    """
    from gdsearch.results.loading import load_results, open_results
    from gdsearch.search.driver import EXECUTORS
    from gdsearch.search.loop import LocalBackend

    started = time.perf_counter()
    settings = settings or LandscapeSettings()
    if executor not in EXECUTORS:
        raise InputError(f"--executor: one of {', '.join(EXECUTORS)}, but got {executor!r}")
    if trial_ids is None and filters is None:
        results = open_results(location)
        chosen = default_trials(results.trials)
    else:
        results = load_results(location, filters=filters, trial_ids=trial_ids, columns=[])
        chosen = results.trials
    chosen = chosen[chosen["status"] != Status.FAILED.value]
    if filters is not None and chosen.empty:
        raise InputError(f"filters: no stored trial that did not fail matches {filters!r}")
    if trial_ids is not None and chosen.empty:
        raise InputError(f"trial_ids: each of {list(trial_ids)!r} failed, so has no landscape")
    spec, X, Y, holdout = results.load_job_and_data()  # an error names the copy, key or file
    store = ResultsStore(location)
    with ResultsLock(store, wait=wait):
        shape = Shape.of(X, Y)
        where = _executor(executor, address, trial_objects(spec, chosen), shape)
        started_ray = False
        try:
            if where == "ray":
                from gdsearch.search.connection import cluster_facts, connect
                from gdsearch.search.remote import RayBackend

                started_ray = connect(address, num_cpus)
                cpus = int(cluster_facts()["cpus"])
                backend: Backend = RayBackend(X, Y, cpus, holdout, own_session=started_ray)
            else:
                cpus, backend = 1, LocalBackend(X, Y, holdout)
            summary = draw_chosen(
                store, results, spec, chosen, settings, backend, cpus, shape, fresh, show_progress
            )
        finally:
            if started_ray:
                import ray

                ray.shutdown()
    summary.wall_s = time.perf_counter() - started
    return summary


def draw_chosen(
    store: ResultsStore,
    results: Results,
    spec: JobSpec,
    chosen: pd.DataFrame,
    settings: LandscapeSettings,
    backend: Backend,
    cpus: int,
    shape: Shape,
    fresh: bool = False,
    show_progress: bool = True,
) -> LandscapeSummary:
    """Draw the landscapes of the chosen trials (rows of ``results.trials``) not stored yet,
    on a backend that holds the samples the job trains on (of this ``shape``) for ``cpus``
    cores; the caller holds the result set's lock."""
    from gdsearch.search.loop import execute

    started = time.perf_counter()
    trials = trial_objects(spec, chosen)
    store.settle_landscapes()
    if fresh:
        store.remove_landscapes()
    stored = store.read_table("landscape_trials").to_pandas()
    _check_settings(store.location, stored, settings)
    done = set(stored["trial_id"])
    todo = [t for t in trials if t.trial_id not in done]
    ends = zip(_final_epochs(results, chosen), chosen["final_sse"].tolist(), strict=True)
    work = LandscapeWork(
        {t.trial_id: Target(e, s) for t, (e, s) in zip(trials, ends, strict=True)}, settings
    )
    policy = DrawLandscapes(_units(todo, cpus, shape, settings), work, len(trials))
    execute(policy, backend, store, show_progress)
    failed = sum(n for n, _ in policy.failed)
    return LandscapeSummary(
        path=store.location,
        chosen=len(trials),
        drawn=len(todo) - failed,
        skipped=len(trials) - len(todo),
        failed=failed,
        wall_s=time.perf_counter() - started,
        executor=backend.name,
        first_error=policy.failed[0][1] if policy.failed else None,
    )


def default_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Each comparison group's trials of its first replicate seed at three rates: the smallest
    (a crawl), the one of lowest final SSE, and the largest that did not diverge (near the
    critical rate); where the best is the largest, the stable rate nearest (on a log scale)
    midway between the smallest and it instead. Fewer where the group has fewer rates."""
    from gdsearch.analysis.convergence import _group_columns

    columns = _group_columns(trials)
    kept = trials[trials["status"] != Status.FAILED.value]
    chosen: list[Any] = []
    for _, group in kept.groupby(columns, dropna=False, sort=True):
        seed = group[group["seed"] == group["seed"].min()].sort_values("lr")
        stable = seed[seed["status"] != Status.DIVERGED.value]
        picks = [seed.index[0]]
        if not stable.empty:
            best, largest = stable["final_sse"].idxmin(), stable.index[-1]
            if best == largest:
                middle = np.sqrt(seed["lr"].iloc[0] * stable["lr"].iloc[-1])
                best = (np.log(stable["lr"]) - np.log(middle)).abs().idxmin()
            picks += [best, largest]
        chosen.extend(dict.fromkeys(picks))
    return trials.loc[sorted(set(chosen), key=chosen.index)]


def trial_objects(spec: JobSpec, rows: pd.DataFrame) -> list[Trial]:
    """The trials of these rows of a result set, rebuilt from its job: each trial the job
    expands to (or a sampler proposed: the trial at the row's values of the job's axes), or (a
    bracket round's) one of them at another learning rate, whose trial_id matches the row's."""
    if spec.sampling is not None:  # proposed by a sampler: rebuilt at the row's point
        from gdsearch.results.study import point_of

        records = [{str(k): v for k, v in r.items()} for r in rows.to_dict("records")]
        expanded = {t.trial_id: t for t in (spec.trial_at(point_of(r, spec)) for r in records)}
    else:
        expanded = {t.trial_id: t for t in spec.trials()}
    out = []
    for trial_id, lr in zip(rows["trial_id"].tolist(), rows["lr"].tolist(), strict=True):
        trial = expanded.get(trial_id)
        if trial is None:
            for base in expanded.values():
                moved = dataclasses.replace(base, lr=float(lr))
                if moved.trial_id == trial_id:
                    trial = moved
                    break
        if trial is None:
            raise ResultsError(
                f"trial {trial_id}: not a trial of the stored job file, so it cannot be "
                "trained again"
            )
        out.append(trial)
    return out


def _final_epochs(results: Results, chosen: pd.DataFrame) -> list[int]:
    """Each chosen trial's last epoch: from its trials row, or, for a row stored before that
    column existed, from its history."""
    ends = chosen["final_epoch"]
    missing = chosen.loc[ends.isna(), "trial_id"].tolist()
    found: dict[str, int] = {}
    for ids, sse in results.history_blocks(missing) if missing else ():
        last = np.where(np.isnan(sse), -1, np.arange(sse.shape[1])).max(axis=1)
        found.update(zip(ids.tolist(), last.tolist(), strict=True))
    return [
        int(end) if end == end else found.get(trial_id, -1)
        for trial_id, end in zip(chosen["trial_id"].tolist(), ends.tolist(), strict=True)
    ]


def settings_columns(settings: LandscapeSettings) -> dict[str, Any]:
    """The settings as the landscape_trials table records them: those two landscapes must
    share to compare (``path_points`` only thins the path, and is recorded beside them)."""
    return {
        "resolution": settings.resolution,
        "span": settings.span,
        "line_from": settings.line[0],
        "line_to": settings.line[1],
        "biases": settings.biases,
        "sharpest_span": settings.sharpest_span,
        "margin": settings.margin,
    }


def _check_settings(location: str, stored: pd.DataFrame, settings: LandscapeSettings) -> None:
    """Refuse settings other than those the stored landscapes were drawn with."""
    if stored.empty:
        return
    first = stored.iloc[0]
    for key, value in settings_columns(settings).items():
        had = first[key].item() if hasattr(first[key], "item") else first[key]
        if had != value:
            raise InputError(
                f"{location}: its landscapes were drawn with {key} = {had!r}, not "
                f"{value!r}; --fresh draws them all again with the new settings"
            )


def _executor(executor: str, address: str | None, trials: list[Trial], shape: Shape) -> str:
    """Where the landscapes are drawn: as asked, or by the modelled work (training them again,
    about as much again for the slices)."""
    from gdsearch.search.driver import pick_executor

    def seconds() -> float:
        return 2 * sum(unit_seconds(u, shape) for u in plan_units(trials, 1, shape=shape))

    return pick_executor(executor, address, seconds, LOCAL_BELOW_S, "landscapes")


def _units(
    trials: list[Trial], cpus: int, shape: Shape, settings: LandscapeSettings
) -> list[list[Trial]]:
    """Units as training plans them, cut further so that each keeps at most ``PATH_VALUES``
    path values."""
    units: list[list[Trial]] = []
    for unit in plan_units(trials, cpus, shape=shape) if trials else []:
        first = unit[0]
        sizes = layer_sizes(shape.inputs, first.hidden, shape.outputs)
        P = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
        points = min(first.train.epochs + 1, settings.path_points)
        per = max(1, PATH_VALUES // (points * P))
        units.extend(unit[i : i + per] for i in range(0, len(unit), per))
    return units
