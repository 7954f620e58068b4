"""Jobs given as dicts: the same checks, messages and trials as job files, and a job copy kept."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import gdsearch
from gdsearch.errors import JobError
from gdsearch.job.spec import load_job, parse_job
from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SINE: dict[str, Any] = {
    "job": {"name": "sine-dict", "seed": 3},
    "data": {"dataset": "sine"},
    "train": {"epochs": 300},
    "search": {"lr": {"log": [1e-3, 1e-1], "num": 5}, "init": ["normal"], "hidden": [[], [3]]},
}


@pytest.mark.parametrize("name", ["seed_sine", "moons_halving", "sine_momentum", "iris_arch"])
def test_a_job_files_tables_as_a_dict_give_the_same_trials(name: str) -> None:
    path = REPO / "jobs" / f"{name}.toml"
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    from_file = load_job(path)
    from_dict = gdsearch.job_from_dict(document)
    assert [t.trial_id for t in from_dict.trials()] == [t.trial_id for t in from_file.trials()]
    assert from_dict.document == from_file.document
    assert tomllib.loads(from_dict.source) == document  # the copy the results keep


def test_numpy_numbers_and_tuples_are_taken_as_the_numbers_and_arrays_they_are() -> None:
    lrs = np.geomspace(1e-3, 1e-1, 5)
    spec = gdsearch.job_from_dict(
        {
            **SINE,
            "job": {"name": "np", "seed": np.int64(3)},
            "search": {"lr": lrs, "seed": (np.int32(0), 1), "hidden": [()]},
        }
    )
    assert spec.seed == 3 and type(spec.seed) is int
    assert list(spec.axes["lr"].values) == lrs.tolist()
    assert list(spec.axes["seed"].values) == [0, 1]
    plain = gdsearch.job_from_dict(
        {
            **SINE,
            "job": {"name": "np", "seed": 3},
            "search": {"lr": lrs.tolist(), "seed": [0, 1], "hidden": [[]]},
        }
    )
    assert [t.trial_id for t in spec.trials()] == [t.trial_id for t in plain.trials()]


BAD = [
    (  # a value out of range
        {"job": {"name": "b"}, "data": {"dataset": "sine"}, "search": {"lr": [0.1, -0.1]}},
        '[job]\nname = "b"\n[data]\ndataset = "sine"\n[search]\nlr = [0.1, -0.1]\n',
    ),
    (  # an unknown key
        {"job": {"name": "b"}, "data": {"dataset": "sine"}, "train": {"epoch": 5},
         "search": {"lr": [0.1]}},
        '[job]\nname = "b"\n[data]\ndataset = "sine"\n[train]\nepoch = 5\n[search]\nlr = [0.1]\n',
    ),
    (  # a wrong type
        {"job": {"name": "b"}, "data": {"dataset": "sine"}, "train": {"epochs": "many"},
         "search": {"lr": [0.1]}},
        '[job]\nname = "b"\n[data]\ndataset = "sine"\n[train]\nepochs = "many"\n'
        "[search]\nlr = [0.1]\n",
    ),
    (  # an unknown table
        {"job": {"name": "b"}, "data": {"dataset": "sine"}, "optim": {}, "search": {"lr": [0.1]}},
        '[job]\nname = "b"\n[data]\ndataset = "sine"\n[optim]\n[search]\nlr = [0.1]\n',
    ),
    (  # a table that is not one
        {"job": "b", "data": {"dataset": "sine"}, "search": {"lr": [0.1]}},
        'job = "b"\n[data]\ndataset = "sine"\n[search]\nlr = [0.1]\n',
    ),
    (  # a name that could leave the results root
        {"job": {"name": "../up"}, "data": {"dataset": "sine"}, "search": {"lr": [0.1]}},
        '[job]\nname = "../up"\n[data]\ndataset = "sine"\n[search]\nlr = [0.1]\n',
    ),
    (  # a range form gone wrong
        {"job": {"name": "b"}, "data": {"dataset": "sine"},
         "search": {"lr": {"log": [1e-3, 1e-1], "num": 0}}},
        '[job]\nname = "b"\n[data]\ndataset = "sine"\n[search]\n'
        "lr = { log = [1e-3, 1e-1], num = 0 }\n",
    ),
    (  # a data set's option
        {"job": {"name": "b"}, "data": {"dataset": "moons", "noise": -1.0},
         "search": {"lr": [0.1]}},
        '[job]\nname = "b"\n[data]\ndataset = "moons"\nnoise = -1.0\n[search]\nlr = [0.1]\n',
    ),
]  # fmt: skip


@pytest.mark.parametrize(("mapping", "text"), BAD, ids=range(len(BAD)))
def test_a_bad_dict_is_refused_with_the_job_files_message(mapping: dict, text: str) -> None:
    with pytest.raises(JobError) as from_file:
        parse_job(text, "bad.toml")
    with pytest.raises(JobError) as from_dict:
        gdsearch.job_from_dict(mapping)
    assert str(from_file.value).startswith("bad.toml: ")
    assert str(from_dict.value) == str(from_file.value).replace("bad.toml: ", "<dict>: ", 1)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({**SINE, "train": {"epochs": None}}, r"^<dict>: \[train\] epochs: TOML cannot hold None"),
        ({**SINE, "search": {"lr": [0.1, {0.2}]}}, r"lr\[1\]: TOML cannot hold \{0.2\}"),
        ({**SINE, "search": {"lr": {"log": [1e-3, object()]}}}, r"\[search\] lr.log\[1\]: TOML"),
        ({**SINE, "data": {1: "sine"}}, r"\[data\]: keys must be strings, but got 1"),
        ([("job", {})], r"^<dict>: a job is a mapping of tables, but got \["),
    ],
)
def test_a_value_toml_cannot_hold_is_named_where_it_stands(mapping: Any, message: str) -> None:
    with pytest.raises(JobError, match=message):
        gdsearch.job_from_dict(mapping)


def test_a_dict_nested_past_reason_or_holding_itself_is_one_error() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(100_000):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(JobError, match="nested too deeply"):
        gdsearch.job_from_dict({**SINE, "data": deep})
    looped: list[Any] = [0.1]
    looped.append(looped)
    with pytest.raises(JobError, match="nested too deeply"):
        gdsearch.job_from_dict({**SINE, "search": {"lr": looped}})
