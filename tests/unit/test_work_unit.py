"""Work units without Ray: the tables a unit returns, and how a job is cut into units."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from gdsearch import mlp
from gdsearch.job.spec import JobSpec, parse_job
from gdsearch.job.trial import Trial
from gdsearch.results.schema import HISTORY_SCHEMA, TRIALS_SCHEMA
from gdsearch.search.plan import plan_units
from gdsearch.search.unit import train_unit

EPOCHS = 30

UNIT_JOB = f"""
[job]
name = "unit-test"
seed = 3

[data]
dataset = "moons"
n_samples = 40

[train]
epochs = {EPOCHS}

[search]
lr = [0.01, 0.3, 3.0, 60.0]
init = ["normal", "xavier"]
hidden = [[4]]
seed = [0, 1]
"""

MINIBATCH_JOB = UNIT_JOB.replace("epochs = 30", "epochs = 30\nbatch_size = 16")


def _train_directly(X: np.ndarray, Y: np.ndarray, trial: Trial) -> np.ndarray:
    sizes = mlp.layer_sizes(X.shape[1], trial.hidden, Y.shape[1])
    params = mlp.init_params(sizes, trial.init, trial.init_seed(), trial.init_scale)
    config = trial.train
    history, _ = mlp.train(
        params,
        X,
        Y,
        lr=trial.lr,
        epochs=config.epochs,
        activation=trial.activation,
        grad_scale=config.grad_scale,
        batch_size=config.batch_size or None,
        shuffle_seed=trial.shuffle_seed() if config.batch_size else None,
        divergence_factor=config.divergence_factor,
    )
    return history


def _histories_by_trial(history: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ids = np.array(history.column("trial_id").to_pylist())
    epochs = history.column("epoch").to_numpy()
    sse = history.column("sse").to_numpy()
    return {tid: (epochs[ids == tid], sse[ids == tid]) for tid in dict.fromkeys(ids.tolist())}


def _check_unit_tables(spec: JobSpec, trials: list[Trial]) -> pa.Table:
    X, Y = spec.load_data()
    trials_table, history, _ = train_unit(X, Y, trials, node="node-a")

    assert trials_table.schema.equals(TRIALS_SCHEMA)
    assert history.schema.equals(HISTORY_SCHEMA)
    assert trials_table.num_rows == len(trials)
    assert trials_table.column("trial_id").to_pylist() == [t.trial_id for t in trials]

    rows = trials_table.to_pylist()
    by_trial = _histories_by_trial(history)
    assert set(by_trial) <= {t.trial_id for t in trials}
    for trial, row in zip(trials, rows, strict=True):
        epochs, sse = by_trial.get(trial.trial_id, (np.array([], int), np.array([])))
        length = len(sse)
        assert np.array_equal(epochs, np.arange(length))  # 0..L-1, in order
        assert np.all(np.isfinite(sse))
        assert np.array_equal(sse, _train_directly(X, Y, trial))  # value for value

        assert row["lr"] == trial.lr and row["init"] == trial.init
        assert row["init_scale"] == trial.init_scale
        assert row["hidden"] == trial.hidden_label and row["activation"] == trial.activation
        assert row["batch_size"] == trial.train.batch_size and row["seed"] == trial.seed
        assert row["epochs"] == EPOCHS and row["node"] == "node-a"
        assert row["wall_s"] >= 0.0
        if row["status"] == "ok":
            assert length == EPOCHS + 1
            assert row["diverged_epoch"] is None
        else:
            assert row["status"] == "diverged"
            assert row["diverged_epoch"] == length
            assert 0 <= length <= EPOCHS
        if length:
            assert row["final_sse"] == sse[-1]
            assert row["min_sse"] == sse.min()
        else:
            assert row["final_sse"] is None and row["min_sse"] is None
    assert history.num_rows == sum(len(s) for _, s in by_trial.values())
    return trials_table


@pytest.mark.parametrize(
    ("job", "batch_size"), [(UNIT_JOB, 0), (MINIBATCH_JOB, 16)], ids=["full-batch", "mini-batch"]
)
def test_train_unit_tables_are_consistent_and_equal_direct_training(
    job: str, batch_size: int
) -> None:
    spec = parse_job(job)
    trials = spec.trials()
    assert len(trials) == 16 and {t.train.batch_size for t in trials} == {batch_size}
    table = _check_unit_tables(spec, trials)
    statuses = Counter(table.column("status").to_pylist())
    assert statuses["ok"] > 0 and statuses["diverged"] > 0  # both branches were checked


def test_train_unit_gives_each_trial_the_same_history_in_any_order_or_grouping() -> None:
    spec = parse_job(UNIT_JOB)
    X, Y = spec.load_data()
    trials = spec.trials()
    _, whole, _ = train_unit(X, Y, trials)
    order = np.random.default_rng(8).permutation(len(trials))
    shuffled = [trials[i] for i in order]
    _, first_half, _ = train_unit(X, Y, shuffled[:5])
    _, second_half, _ = train_unit(X, Y, shuffled[5:])
    expected = _histories_by_trial(whole)
    parts = {**_histories_by_trial(first_half), **_histories_by_trial(second_half)}
    assert parts.keys() == expected.keys()
    for tid, (epochs, sse) in expected.items():
        assert np.array_equal(parts[tid][0], epochs) and np.array_equal(parts[tid][1], sse)


PLAN_JOB = """
[job]
name = "plan-test"
seed = 0

[data]
dataset = "moons"

[search]
lr = { log = [1e-3, 1.0], num = 16 }
init = ["zeros", "normal", "xavier", "he"]
hidden = [[4], [8]]
seed = [0, 1]
"""

MIXED_JOB = """
[job]
name = "mixed-plan"
seed = 0

[data]
dataset = "moons"

[search]
lr = [0.01, 0.03, 0.1, 0.3, 1.0]
init = ["xavier", "he"]
hidden = [[], [4], [4, 4]]
activation = ["tanh", "relu"]
batch_size = [8, 32]
seed = [0, 1, 2]
"""


def _check_plan(trials: list[Trial], units: list[list[Trial]], max_size: int) -> None:
    seen = Counter(t.trial_id for unit in units for t in unit)
    assert set(seen) == {t.trial_id for t in trials}
    assert set(seen.values()) == {1}  # every trial in exactly one unit
    for unit in units:
        assert unit, "no empty units"
        assert len({t.population_key() for t in unit}) == 1  # never mixes populations
        assert len(unit) <= max_size


def test_plan_units_cuts_256_trials_on_2_cpus_into_units_of_at_most_32() -> None:
    trials = parse_job(PLAN_JOB).trials()
    assert len(trials) == 256
    units = plan_units(trials, n_cpus=2)
    _check_plan(trials, units, math.ceil(256 / 8))
    assert len(units) >= 8  # enough units to keep 2 CPUs busy for 4 waves
    # round-robin dealing: every unit sees a spread of learning rates, not a run of them
    assert all(len({t.lr for t in unit}) >= 8 for unit in units)


@pytest.mark.parametrize("n_cpus", [1, 3, 7, 64])
def test_plan_units_never_mixes_population_keys(n_cpus: int) -> None:
    trials = parse_job(MIXED_JOB).trials()
    assert len({t.population_key() for t in trials}) == 12
    units = plan_units(trials, n_cpus=n_cpus)
    _check_plan(trials, units, math.ceil(len(trials) / (n_cpus * 4)))
    if n_cpus == 1:
        assert len(units) == 12  # one unit per group when every group fits


def test_plan_units_unit_can_be_trained_as_one_population() -> None:
    spec = parse_job(UNIT_JOB)
    X, Y = spec.load_data()
    units = plan_units(spec.trials(), n_cpus=2)
    assert len(units) > 1
    tables = [train_unit(X, Y, unit)[0] for unit in units]
    combined = pa.concat_tables(tables)
    assert sorted(combined.column("trial_id").to_pylist()) == sorted(
        t.trial_id for t in spec.trials()
    )


def test_plan_units_bounds_a_units_history_memory_for_long_trainings() -> None:
    from gdsearch.search.plan import HISTORY_VALUES_PER_UNIT

    long_job = PLAN_JOB.replace("[search]", "[train]\nepochs = 1000000\n\n[search]")
    trials = parse_job(long_job).trials()
    units = plan_units(trials, 1)
    assert max(len(u) for u in units) * 1_000_001 <= HISTORY_VALUES_PER_UNIT
    assert sorted(t.trial_id for u in units for t in u) == sorted(t.trial_id for t in trials)


def test_a_raising_population_is_retrained_trial_by_trial_and_only_the_raising_trial_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception the maths did not expect, raised for one learning rate inside training."""
    spec = parse_job(UNIT_JOB)
    X, Y = spec.load_data()
    trials = spec.trials()
    real = mlp.Population.advance
    calls = []

    def overflowing(
        self: mlp.Population, X: np.ndarray, Y: np.ndarray, until: int, holdout: None = None
    ) -> None:
        lrs = self.active.rule.lr.ravel()
        calls.append(len(lrs))
        if 0.3 in lrs:
            raise FloatingPointError("overflow encountered in matmul")
        real(self, X, Y, until, holdout)

    monkeypatch.setattr(mlp.Population, "advance", overflowing)
    trials_table, history, _ = train_unit(X, Y, trials, node="node-a")

    assert calls[0] == len(trials) and calls[1:] == [1] * len(trials)  # whole, then one by one
    assert trials_table.schema.equals(TRIALS_SCHEMA) and history.schema.equals(HISTORY_SCHEMA)
    rows = {row["trial_id"]: row for row in trials_table.to_pylist()}
    by_trial = _histories_by_trial(history)
    failing = {t.trial_id for t in trials if t.lr == 0.3}
    assert len(failing) == 4
    for trial in trials:
        row = rows[trial.trial_id]
        if trial.trial_id in failing:
            assert row["status"] == "failed" and trial.trial_id not in by_trial
            assert row["error"] == "FloatingPointError: overflow encountered in matmul"
            assert row["final_sse"] is None and row["min_sse"] is None
            assert row["diverged_epoch"] is None and row["wall_s"] == 0.0
        else:
            assert row["status"] in ("ok", "diverged") and row["error"] is None
            assert np.array_equal(by_trial[trial.trial_id][1], _train_directly(X, Y, trial))


def test_the_fault_variable_fails_exactly_the_trials_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gdsearch.search.unit import FAULT_VARIABLE

    spec = parse_job(UNIT_JOB)
    X, Y = spec.load_data()
    trials = spec.trials()
    named = [trials[2].trial_id, trials[11].trial_id]
    monkeypatch.setenv(FAULT_VARIABLE, ",".join(named))
    trials_table, history, _ = train_unit(X, Y, trials)
    columns = trials_table.to_pydict()
    statuses = dict(zip(columns["trial_id"], columns["status"], strict=True))
    assert {tid for tid, status in statuses.items() if status == "failed"} == set(named)
    errors = [e for e in trials_table.column("error").to_pylist() if e is not None]
    assert sorted(errors) == sorted(
        f"RuntimeError: fault injected by {FAULT_VARIABLE} into trial {tid}" for tid in named
    )
    assert not set(named) & set(history.column("trial_id").to_pylist())
    monkeypatch.delenv(FAULT_VARIABLE)
    _, clean, _ = train_unit(X, Y, trials)
    expected = _histories_by_trial(clean)
    for tid, (epochs, sse) in _histories_by_trial(history).items():
        assert np.array_equal(expected[tid][1], sse) and np.array_equal(expected[tid][0], epochs)


def test_failed_tables_mark_a_whole_unit_failed_with_one_line_of_error() -> None:
    from gdsearch.errors import MAX_LINE_CHARS
    from gdsearch.search.unit import failed_tables

    trials = parse_job(UNIT_JOB).trials()[:3]
    trials_table, history, _ = failed_tables(trials, "WorkerCrashedError:\n  " + "x" * 1000)
    assert trials_table.schema.equals(TRIALS_SCHEMA) and history.num_rows == 0
    assert trials_table.column("status").to_pylist() == ["failed"] * 3
    error = trials_table.column("error")[0].as_py()
    assert "\n" not in error and len(error) == MAX_LINE_CHARS
    assert error.startswith("WorkerCrashedError: xxx") and error.endswith("…")
