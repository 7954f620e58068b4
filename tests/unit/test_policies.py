"""Search policies are Ray-free: driven here by an in-process executor of a dozen lines, the
same policy objects the Ray loop runs give the results their rules say."""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

import gdsearch
from gdsearch.analysis import convergence as analysis
from gdsearch.job.spec import JobSpec, parse_job
from gdsearch.results.store import ResultsStore
from gdsearch.search.bracket import BracketRounds
from gdsearch.search.halving import SuccessiveHalving
from gdsearch.search.plain import PlainRun
from gdsearch.search.policy import Outcome, Policy
from gdsearch.search.unit import UnitState, advance_unit, start_unit, train_unit
from tests.unit.test_halving import HALVING_JOB, _outcome, _reference


def run_in_process(policy: Policy, spec: JobSpec, store: ResultsStore) -> int:
    """Run every step the policy gives, one at a time, in this process; returns the steps."""
    X, Y = spec.load_data()
    states: dict[int, UnitState] = {}
    handles = itertools.count()
    steps = 0
    while batch := policy.next_steps():
        for step in batch:
            start = states[step.state] if step.state is not None else None
            state = copy.deepcopy(start) if start else start_unit(X, Y, step.trials)
            rows, metrics, state = advance_unit(X, Y, state, step.until, step.prune, policy.metric)
            handle = next(handles) if step.carry else None
            if handle is not None:
                states[handle] = state
            if rows is not None:
                store.write_part(*rows)
            policy.on_result(step, Outcome(rows, metrics, handle))
            steps += 1
    policy.check_finished()
    return steps


def _store(tmp_path: Path, spec: JobSpec) -> ResultsStore:
    store = ResultsStore(tmp_path / spec.name)
    store.prepare(spec.source)
    return store


def test_halving_policy_in_process_prunes_exactly_what_the_rule_prunes(tmp_path: Path) -> None:
    spec = parse_job(HALVING_JOB)
    store = _store(tmp_path, spec)
    policy = SuccessiveHalving(spec, spec.trials(), store, cpus=2)
    steps = run_in_process(policy, spec, store)
    assert steps > len(policy.pool)  # units were carried on across rungs
    outcome = _outcome(gdsearch.load_results(store.location))
    pd.testing.assert_frame_equal(
        outcome.sort_index(),
        _reference(HALVING_JOB).sort_index(),
        check_dtype=False,
        check_names=False,
    )
    [round_] = policy.rounds()
    assert (round_.trials, round_.ran) == (len(spec.trials()), len(spec.trials()))


def test_plain_policy_in_process_stores_what_training_the_units_directly_gives(
    tmp_path: Path,
) -> None:
    spec = parse_job(
        HALVING_JOB.replace('scheduler = "halving"\n', "").replace(
            "min_epochs = 10\nreduction_factor = 3\n", ""
        )
    )
    store = _store(tmp_path, spec)
    policy = PlainRun(spec.trials(), store, cpus=2)
    run_in_process(policy, spec, store)
    X, Y = spec.load_data()
    _, history, _ = train_unit(X, Y, spec.trials())
    expected = history.to_pandas().sort_values(["trial_id", "epoch"], ignore_index=True)
    pd.testing.assert_frame_equal(gdsearch.load_results(store.location).history, expected)
    again = PlainRun(spec.trials(), store, cpus=2)  # all stored: nothing to run
    assert again.next_steps() == [] and again.rounds()[0].ran == 0


BRACKET_JOB = """
[job]
name = "bracket-in-process"
seed = 2
[data]
dataset = "sine"
[train]
epochs = 300
[search]
mode = "bracket"
bracket_width = 0.05
bracket_points = 2
bracket_rounds = 6
lr = [0.001, 0.01, 0.1]
init = ["normal"]
hidden = [[]]
seed = [0, 1]
"""


def test_bracket_policy_in_process_narrows_to_the_exact_linear_limit(tmp_path: Path) -> None:
    from gdsearch.stability.limits import linear_lr_limit

    spec = parse_job(BRACKET_JOB)
    store = _store(tmp_path, spec)
    policy = BracketRounds(spec, spec.trials(), store, cpus=2)
    run_in_process(policy, spec, store)
    rounds = policy.rounds()
    assert 2 <= len(rounds) <= 7 and [r.index for r in rounds] == list(range(len(rounds)))
    assert all(r.ran == 2 * 2 for r in rounds[1:])  # 2 new rates, each for both seeds
    results = gdsearch.load_results(store.location)
    ((lo, hi),) = analysis.critical_lr(results)[["lr_converged", "lr_diverged"]].to_numpy()
    X, _ = spec.load_data()
    limit = linear_lr_limit(X)  # the linear model's critical lr, exactly
    assert lo < limit <= hi
    assert hi / lo - 1 <= 0.05 * (1 + 1e-9) or len(rounds) == 7
    assert math.isclose(lo, limit, rel_tol=0.1)
    assert np.isin(results.trials["status"], ["ok", "diverged"]).all()


def test_a_halving_policy_whose_trials_are_all_stored_has_nothing_to_run(tmp_path: Path) -> None:
    spec = parse_job(HALVING_JOB)
    store = _store(tmp_path, spec)
    run_in_process(SuccessiveHalving(spec, spec.trials(), store, cpus=2), spec, store)
    again = SuccessiveHalving(spec, spec.trials(), store, cpus=2)
    assert again.next_steps() == [] and again.planned() == 0
    again.check_finished()


def test_halving_ranks_each_update_rule_in_its_own_group(tmp_path: Path) -> None:
    """With momentum searched, a comparison group is one (init, momentum): halving prunes
    within it, as the rule applied by hand to full histories says."""
    text = HALVING_JOB.replace("seed = [0, 1]\n", "seed = [0, 1]\nmomentum = [0.0, 0.8]\n")
    spec = parse_job(text)
    assert {t.train.momentum for t in spec.trials()} == {0.0, 0.8}
    store = _store(tmp_path, spec)
    run_in_process(SuccessiveHalving(spec, spec.trials(), store, cpus=2), spec, store)
    outcome = _outcome(gdsearch.load_results(store.location))
    pd.testing.assert_frame_equal(
        outcome.sort_index(), _reference(text).sort_index(), check_dtype=False, check_names=False
    )


def test_bracket_narrows_each_update_rules_own_limit(tmp_path: Path) -> None:
    from gdsearch.stability.limits import linear_lr_limit

    text = BRACKET_JOB.replace("seed = [0, 1]\n", "seed = [0, 1]\nmomentum = [0.0, 0.5]\n")
    spec = parse_job(text.replace("bracket_rounds = 6", "bracket_rounds = 8"))
    store = _store(tmp_path, spec)
    run_in_process(BracketRounds(spec, spec.trials(), store, cpus=2), spec, store)
    X, _ = spec.load_data()
    brackets = analysis.critical_lr(gdsearch.load_results(store.location))
    assert sorted(brackets["momentum"]) == [0.0, 0.5]
    for row in brackets.itertuples():
        limit = linear_lr_limit(X, "mean", row.momentum)
        assert row.lr_converged < limit <= row.lr_diverged
        assert row.lr_diverged / row.lr_converged - 1 <= 0.05 * (1 + 1e-9)
