"""Job files: every rule a job may break, the shipped jobs, and the identity of trials."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _pytest.mark import ParameterSet

from gdsearch.cli import main
from gdsearch.errors import DataError, JobError
from gdsearch.job.spec import JobSpec, load_job
from gdsearch.mlp import init_params, layer_sizes
from tests.conftest import JOBS


def job_text(
    *,
    job: str = 'name = "t"',
    data: str = 'dataset = "sine"',
    model: str | None = None,
    train: str | None = None,
    search: str = "lr = [0.1]",
    extra: str = "",
) -> str:
    """A small job file; each argument is the body of its table (None leaves the table out)."""
    parts = [f"[job]\n{job}\n", f"[data]\n{data}\n"]
    if model is not None:
        parts.append(f"[model]\n{model}\n")
    if train is not None:
        parts.append(f"[train]\n{train}\n")
    parts.append(f"[search]\n{search}\n")
    parts.append(extra)
    return "\n".join(parts)


def write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def bad(case_id: str, text: str, key: str, value: str, raised_by: str = "job") -> ParameterSet:
    """One bad job: its text, a fragment naming the key and one naming the offending value.

    ``raised_by`` "job" fails in load_job; "data" loads, and fails when the data is loaded.
    """
    return pytest.param(text, key, value, raised_by, id=case_id)


def searching(*lines: str) -> str:
    """A job that searches lr = [0.1] and the given extra axes."""
    return job_text(search="\n".join(["lr = [0.1]", *lines]))


SEEDS_200 = "seed = [" + ", ".join(map(str, range(200))) + "]"

BAD_JOBS = [
    bad("unknown-table", job_text(extra="[optim]\nmomentum = 0.9"), "unknown table", "[optim]"),
    bad(
        "unknown-key-train",
        job_text(train="dampening = 0.1"),
        "[train] unknown key",
        "'dampening'",
    ),
    bad("unknown-key-model", job_text(model="dropout = 0.5"), "[model] unknown key", "'dropout'"),
    bad("unknown-key-job", job_text(job='name = "t"\nowner = 1'), "[job] unknown key", "'owner'"),
    bad(
        "unknown-key-search", searching("dampening = [0.1]"), "[search] unknown key", "'dampening'"
    ),
    bad("epochs-string", job_text(train='epochs = "ten"'), "[train] epochs", "'ten'"),
    bad("seed-float", job_text(job='name = "t"\nseed = 1.5'), "[job] seed", "1.5"),
    bad("lr-string-not-list", job_text(search='lr = "0.1"'), "[search] lr", "'0.1'"),
    bad("lr-empty", job_text(search="lr = []"), "[search] lr", "but got []"),
    bad("lr-zero", job_text(search="lr = [0.1, 0]"), "[search] lr", "but got 0"),
    bad("lr-negative", job_text(search="lr = [-0.1]"), "[search] lr", "but got -0.1"),
    bad("lr-nan", job_text(search="lr = [nan]"), "[search] lr", "but got nan"),
    bad("lr-inf", job_text(search="lr = [0.1, inf]"), "[search] lr", "but got inf"),
    bad("dataset-unknown", job_text(data='dataset = "mnist"'), "[data] dataset", "'mnist'"),
    bad(
        "data-seed-negative",
        job_text(data='dataset = "moons"\nseed = -1'),
        "[data] `seed`",
        "but got -1",
    ),
    bad("init-unknown", searching('init = ["glorot"]'), "[search] init", "'glorot'"),
    bad(
        "landscape-resolution-even",
        job_text(extra="[landscape]\nresolution = 50"),
        "[landscape] resolution: must be an odd integer in [3, 501]",
        "but got 50",
    ),
    bad(
        "landscape-biases-not-bool",
        job_text(extra="[landscape]\nbiases = 1"),
        "[landscape] biases: must be bool",
        "but got 1",
    ),
    bad(
        "landscape-trials-unknown",
        job_text(extra='[landscape]\ntrials = "best"'),
        "[landscape] trials",
        "'best'",
    ),
    bad(
        "landscape-line-inside",
        job_text(extra="[landscape]\nline_to = 0.5"),
        "[landscape] line_to",
        "but got 0.5",
    ),
    bad(
        "landscape-unknown-key",
        job_text(extra="[landscape]\ndirections = 3"),
        "[landscape] unknown key",
        "'directions'",
    ),
    bad(
        "activation-unknown-model", job_text(model='activation = "swish"'), "activation", "'swish'"
    ),
    bad(
        "activation-unknown-search",
        searching('activation = ["tanh", "swish"]'),
        "[search] activation",
        "'swish'",
    ),
    bad("hidden-zero-width", searching("hidden = [[0]]"), "[search] hidden", "but got [0]"),
    bad("hidden-not-nested", searching("hidden = [16]"), "[search] hidden", "but got 16"),
    bad("hidden-negative-width", searching("hidden = [[-1]]"), "[search] hidden", "got [-1]"),
    bad(
        "log-range-lo-above-hi",
        job_text(search="lr = { log = [1e-1, 1e-3], num = 3 }"),
        "[search] lr.log",
        "[0.1, 0.001]",
    ),
    bad(
        "log-range-without-num",
        job_text(search="lr = { log = [1e-3, 1e-1] }"),
        "[search] lr.num",
        "but got None",
    ),
    bad(
        "loguniform-in-grid-mode",
        job_text(search="lr = { loguniform = [1e-3, 1e-1] }"),
        "[search] lr: {loguniform",
        "mode is 'grid'",
    ),
    bad(
        "random-mode-without-samples",
        job_text(search='mode = "random"\nlr = [0.1, 0.01]'),
        "[search] samples",
        "but got 0",
    ),
    bad(
        "bracket-key-outside-bracket-mode",
        job_text(search="lr = [0.1, 0.01]\nbracket_width = 0.1"),
        "[search] bracket_width",
        'only for mode = "bracket"',
    ),
    bad(
        "bracket-mode-one-lr",
        job_text(search='mode = "bracket"\nlr = [0.1]'),
        "[search] lr",
        "at least 2",
    ),
    bad(
        "bracket-width-zero",
        job_text(search='mode = "bracket"\nlr = [0.1, 1.0]\nbracket_width = 0'),
        "[search] bracket_width",
        "but got 0",
    ),
    bad(
        "bracket-points-too-many",
        job_text(search='mode = "bracket"\nlr = [0.1, 1.0]\nbracket_points = 1000'),
        "[search] bracket_points",
        "but got 1000",
    ),
    bad(
        "scheduler-unknown",
        job_text(search='lr = [0.1, 1.0]\nscheduler = "asha"'),
        "[search] scheduler",
        "'asha'",
    ),
    bad(
        "halving-without-min-epochs",
        job_text(search='lr = [0.1, 1.0]\nscheduler = "halving"'),
        "[search] min_epochs",
        "missing",
    ),
    bad(
        "halving-min-epochs-not-below-epochs",
        job_text(train="epochs = 50", search='lr = [0.1]\nscheduler = "halving"\nmin_epochs = 50'),
        "[search] min_epochs",
        "but got 50",
    ),
    bad(
        "halving-factor-one",
        job_text(search='lr = [0.1]\nscheduler = "halving"\nmin_epochs = 5\nreduction_factor = 1'),
        "[search] reduction_factor",
        "but got 1",
    ),
    bad(
        "halving-metric-unknown",
        job_text(search='lr = [0.1]\nscheduler = "halving"\nmin_epochs = 5\nrung_metric = "acc"'),
        "[search] rung_metric",
        "'acc'",
    ),
    bad(
        "halving-key-without-scheduler",
        job_text(search="lr = [0.1]\nmin_epochs = 5"),
        "[search] min_epochs",
        'only with scheduler = "halving"',
    ),
    bad(
        "halving-with-bracket",
        job_text(
            search='mode = "bracket"\nlr = [0.1, 1.0]\nscheduler = "halving"\nmin_epochs = 5'
        ),
        "[search] scheduler",
        'mode = "bracket"',
    ),
    bad("patience-negative", job_text(train="patience = -1"), "[train] patience", "but got -1"),
    bad(
        "patience-tolerance-one",
        job_text(train="patience = 5\npatience_tolerance = 1.0"),
        "[train] patience_tolerance",
        "but got 1.0",
    ),
    bad(
        "mode-unknown",
        job_text(search='mode = "bisect"\nlr = [0.1, 1.0]'),
        "[search] mode",
        "'bisect'",
    ),
    bad(
        "axis-fixed-and-searched",
        job_text(model='activation = "tanh"', search='lr = [0.1]\nactivation = ["relu"]'),
        "[search] activation",
        "also fixed in [model]",
    ),
    bad("name-with-path", job_text(job='name = "../../etc"'), "[job] name", "'../../etc'"),
    bad("epochs-zero", job_text(train="epochs = 0"), "[train] epochs", "but got 0"),
    bad("momentum-one", job_text(train="momentum = 1.0"), "[train] momentum", "but got 1.0"),
    bad("momentum-negative", searching("momentum = [0.5, -0.1]"), "[search] momentum", "-0.1"),
    bad("nesterov-no-momentum", job_text(train="nesterov = true"), "[train] nesterov", "= 0"),
    bad("nesterov-not-bool", searching("nesterov = [1]"), "[search] nesterov", "but got 1"),
    bad(
        "weight-decay-negative",
        job_text(train="weight_decay = -1e-3"),
        "[train] weight_decay",
        "-0.001",
    ),
    bad(
        "schedule-unknown",
        job_text(train='lr_schedule = "linear"'),
        "[train] lr_schedule",
        "'linear'",
    ),
    bad(
        "step-without-step-size",
        job_text(train='lr_schedule = "step"'),
        "[train] lr_schedule",
        "step_size",
    ),
    bad(
        "step-size-without-step",
        job_text(train="step_size = 10"),
        "[train] step_size",
        'only with lr_schedule = "step"',
    ),
    bad(
        "gamma-zero",
        job_text(train='lr_schedule = "step"\nstep_size = 5\ngamma = 0'),
        "[train] gamma",
        "but got 0",
    ),
    bad("warmup-negative", job_text(train="warmup_epochs = -2"), "[train] warmup_epochs", "-2"),
    bad("epochs-huge", job_text(train=f"epochs = {'9' * 400}"), "[train] epochs", "but got 999"),
    bad(
        "grad-scale-unknown",
        job_text(train='grad_scale = "median"'),
        "[train] grad_scale",
        "'median'",
    ),
    bad(
        "dataset-option-unknown",
        job_text(data='dataset = "moons"\nnoize = 0.1'),
        "[data] dataset 'moons'",
        "option 'noize'",
    ),
    bad("invalid-toml", '[job]\nname "t"\n', "not valid TOML", "line 2"),
    bad("name-missing", job_text(job="seed = 1"), "[job] name", "missing"),
    bad("lr-missing", job_text(search='init = ["he"]'), "[search] lr", "missing"),
    bad(
        "grid-too-big",
        job_text(search=f"lr = {{ log = [1e-4, 1.0], num = 10000 }}\n{SEEDS_200}"),
        "[search] the grid",
        "2,000,000 trials",
    ),
    bad(
        "data-file-missing",
        job_text(data='dataset = "file"\npath = "missing.csv"\ntarget = "y"'),
        "[data] data file",
        "missing.csv",
        raised_by="data",
    ),
]


@pytest.mark.parametrize(("text", "key", "value", "raised_by"), BAD_JOBS)
def test_bad_job_raises_error_naming_file_key_and_value(
    tmp_path: Path, text: str, key: str, value: str, raised_by: str
) -> None:
    path = write(tmp_path, text)
    if raised_by == "job":
        with pytest.raises(JobError) as info:
            load_job(path)
    else:
        spec = load_job(path)
        with pytest.raises(DataError) as info:
            spec.load_data()
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert key in message
    assert value in message


@pytest.mark.parametrize(("text", "key", "value", "raised_by"), BAD_JOBS)
def test_validate_bad_job_exits_2_with_one_error_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    key: str,
    value: str,
    raised_by: str,
) -> None:
    path = write(tmp_path, text)
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gdsearch: error: {path}: ")
    assert key in lines[0]
    assert value in lines[0]


def test_bad_job_table_has_at_least_18_distinct_cases() -> None:
    ids = [case.id for case in BAD_JOBS]
    texts = [case.values[0] for case in BAD_JOBS]
    assert len(ids) >= 18
    assert len(set(ids)) == len(ids)
    assert len(set(texts)) == len(texts)


SHIPPED = {
    "moons_lr_init": 256,
    "moons_halving": 256,
    "seed_sine": 13,
    "iris_arch": 150,
    "iris_validation": 24,
    "sine_bracket": 10,
    "sine_momentum": 200,
    "moons_momentum": 512,
    "edge_of_stability": 27,
    "landscapes": 7,
    "moons_tpe": 64,
}
FOLDED = {"sine_momentum": 40}
"""Grid points that are another point's trial: Nesterov at momentum 0 is plain descent."""


def test_every_shipped_job_is_listed_here() -> None:
    assert {p.stem for p in JOBS.glob("*.toml")} == set(SHIPPED)


@pytest.mark.parametrize(("stem", "expected"), SHIPPED.items())
def test_shipped_job_trial_count_is_product_of_axis_lengths(stem: str, expected: int) -> None:
    spec = load_job(JOBS / f"{stem}.toml")
    if spec.sampling is not None:  # proposed as the run goes: its budget
        assert spec.n_trials == spec.sampling.budget == expected and spec.trials() == []
        return
    assert spec.mode in ("grid", "bracket")  # bracket mode's first round is its grid
    grid = math.prod(len(axis) for axis in spec.axes.values())
    assert grid - FOLDED.get(stem, 0) == expected
    assert spec.n_trials == expected
    assert len(spec.trials()) == expected


@pytest.mark.parametrize(("stem", "expected"), SHIPPED.items())
def test_validate_shipped_job_prints_trial_count_and_exits_0(
    capsys: pytest.CaptureFixture[str], stem: str, expected: int
) -> None:
    path = JOBS / f"{stem}.toml"
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert f"{path}: OK — {expected} trials" in out


def test_log_range_includes_both_ends_exactly(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, job_text(search="lr = { log = [1e-3, 1e-1], num = 3 }")))
    assert list(spec.axes["lr"].values) == [0.001, 0.01, 0.1]


def test_linear_range_includes_both_ends_exactly(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, job_text(search="lr = { linear = [0.1, 0.5], num = 5 }")))
    assert list(spec.axes["lr"].values) == [0.1, 0.2, 0.3, 0.4, 0.5]


# --- trial identity --------------------------------------------------------------------------

IDENTITY_JOB = """
[job]
name = "ident"
seed = 3

[data]
dataset = "moons"
n_samples = 50
noise = 0.2

[model]
activation = "tanh"

[train]
epochs = 20
grad_scale = "mean"

[search]
lr = { log = [1e-3, 1e-1], num = 3 }
init = ["normal", "xavier"]
hidden = [[4], [8]]
seed = [0, 1]
"""

# The same job with tables, and keys inside tables, in another order.
IDENTITY_JOB_REORDERED = """
[search]
seed = [0, 1]
hidden = [[4], [8]]
init = ["normal", "xavier"]
lr = { num = 3, log = [1e-3, 1e-1] }

[train]
grad_scale = "mean"
epochs = 20

[model]
activation = "tanh"

[data]
noise = 0.2
n_samples = 50
dataset = "moons"

[job]
seed = 3
name = "ident"
"""


def ids_of(spec: JobSpec) -> list[str]:
    return [trial.trial_id for trial in spec.trials()]


def test_trial_ids_are_unique_within_a_job(tmp_path: Path) -> None:
    ids = ids_of(load_job(write(tmp_path, IDENTITY_JOB)))
    assert len(ids) == 3 * 2 * 2 * 2
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def test_trial_ids_are_stable_across_loads(tmp_path: Path) -> None:
    first = ids_of(load_job(write(tmp_path, IDENTITY_JOB, "a.toml")))
    second = ids_of(load_job(write(tmp_path, IDENTITY_JOB, "b.toml")))
    assert first == second


def test_trial_ids_do_not_depend_on_key_order(tmp_path: Path) -> None:
    plain = ids_of(load_job(write(tmp_path, IDENTITY_JOB, "a.toml")))
    reordered = ids_of(load_job(write(tmp_path, IDENTITY_JOB_REORDERED, "b.toml")))
    assert reordered == plain


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("epochs = 20", "epochs = 21", id="epochs"),
        pytest.param("noise = 0.2", "noise = 0.25", id="data-noise"),
        pytest.param("n_samples = 50", "n_samples = 60", id="data-n_samples"),
        pytest.param("seed = 3", "seed = 4", id="job-seed"),
    ],
)
def test_trial_ids_change_when_a_shared_setting_changes(
    tmp_path: Path, old: str, new: str
) -> None:
    assert IDENTITY_JOB.count(old) == 1
    base = set(ids_of(load_job(write(tmp_path, IDENTITY_JOB, "a.toml"))))
    changed = set(ids_of(load_job(write(tmp_path, IDENTITY_JOB.replace(old, new), "b.toml"))))
    assert len(changed) == len(base)
    assert base.isdisjoint(changed)


def test_trial_ids_do_not_depend_on_int_or_float_spelling_of_data_options(
    tmp_path: Path,
) -> None:
    as_float = job_text(data='dataset = "moons"\nnoise = 0.0')
    as_int = job_text(data='dataset = "moons"\nnoise = 0')
    a = ids_of(load_job(write(tmp_path, as_float, "a.toml")))
    b = ids_of(load_job(write(tmp_path, as_int, "b.toml")))
    assert a == b


def test_n_trials_counts_the_trials_a_run_executes(tmp_path: Path) -> None:
    text = job_text(search='lr = [0.1, 0.01]\ninit = ["xavier"]\ninit_scale = [0.5, 1.0]')
    spec = load_job(write(tmp_path, text))
    assert len(spec.trials()) == 2
    assert spec.n_trials == len(spec.trials())


@pytest.mark.parametrize(
    ("model", "train", "table"),
    [
        pytest.param('activation = "swish"', None, "[model]", id="model-activation"),
        pytest.param("init_scale = -1.0", None, "[model]", id="model-init_scale"),
        pytest.param(None, "batch_size = 0", "[train]", id="train-batch_size"),
    ],
)
def test_bad_fixed_axis_value_is_reported_in_its_own_table(
    tmp_path: Path, model: str | None, train: str | None, table: str
) -> None:
    path = write(tmp_path, job_text(model=model, train=train))
    with pytest.raises(JobError) as info:
        load_job(path)
    assert table in str(info.value)
    assert "[search]" not in str(info.value)


# --- random mode -----------------------------------------------------------------------------

RANDOM_JOB = """
[job]
name = "rand"
seed = {seed}

[data]
dataset = "xor"

[search]
mode = "random"
samples = 20
lr = {{ loguniform = [1e-4, 1e-1] }}
init = {{ choice = ["normal", "xavier", "he"] }}
hidden = [[4]]
"""


def test_random_job_gives_the_same_trials_when_loaded_twice(tmp_path: Path) -> None:
    path = write(tmp_path, RANDOM_JOB.format(seed=0))
    first, second = load_job(path).trials(), load_job(path).trials()
    assert len(first) == 20
    assert [t.config() for t in first] == [t.config() for t in second]
    assert {t.init for t in first} <= {"normal", "xavier", "he"}
    assert len({t.init for t in first}) > 1


def test_random_job_with_another_seed_draws_other_learning_rates(tmp_path: Path) -> None:
    a = load_job(write(tmp_path, RANDOM_JOB.format(seed=0), "a.toml")).trials()
    b = load_job(write(tmp_path, RANDOM_JOB.format(seed=1), "b.toml")).trials()
    assert {t.lr for t in a}.isdisjoint({t.lr for t in b})


def test_random_job_learning_rates_lie_within_bounds(tmp_path: Path) -> None:
    trials = load_job(write(tmp_path, RANDOM_JOB.format(seed=7))).trials()
    lrs = np.array([t.lr for t in trials])
    assert np.all((lrs >= 1e-4) & (lrs <= 1e-1))
    assert len(set(lrs.tolist())) == len(lrs)
    # a log-uniform draw of 20 over three decades spans more than one decade
    assert lrs.max() / lrs.min() > 10


# --- initial weights do not depend on the learning rate -------------------------------------


def test_trials_differing_only_in_lr_start_from_the_same_weights(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, IDENTITY_JOB))
    groups: dict[tuple[object, ...], list] = {}
    for trial in spec.trials():
        others = {k: v for k, v in trial.config().items() if k != "lr"}
        groups.setdefault(tuple(sorted((k, repr(v)) for k, v in others.items())), []).append(trial)
    assert len(groups) == 2 * 2 * 2
    for trials in groups.values():
        assert len({t.lr for t in trials}) == 3
        first = trials[0]
        sizes = layer_sizes(2, first.hidden, 1)
        state = first.init_seed().generate_state(4)
        weights = init_params(sizes, first.init, first.init_seed(), first.init_scale)
        for other in trials[1:]:
            assert np.array_equal(other.init_seed().generate_state(4), state)
            again = init_params(sizes, other.init, other.init_seed(), other.init_scale)
            for (W1, b1), (W2, b2) in zip(weights, again, strict=True):
                assert np.array_equal(W1, W2)
                assert np.array_equal(b1, b2)


def test_trials_with_different_replicate_seeds_start_from_different_weights(
    tmp_path: Path,
) -> None:
    spec = load_job(write(tmp_path, IDENTITY_JOB))
    trials = [t for t in spec.trials() if t.init == "normal" and t.hidden == (4,)]
    by_seed = {t.seed: t for t in trials}
    assert set(by_seed) == {0, 1}
    a = init_params([2, 4, 1], "normal", by_seed[0].init_seed())
    b = init_params([2, 4, 1], "normal", by_seed[1].init_seed())
    assert not np.array_equal(a[0][0], b[0][0])
