"""The portable numerics give the same bits in a process with numpy's optional CPU features off
as with them on (the rest of the numerics: tests/unit/test_numerics.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gdsearch.mlp import numerics
from tests.conftest import REPO

# --- no BLAS on the portable path ----------------------------------------------------------


# --- the same bits whatever SIMD numpy may use -----------------------------------------------

PROBE = """
import hashlib, json, sys
import numpy as np
from gdsearch import mlp
from gdsearch.data import load_dataset

X, Y = load_dataset("moons", n_samples=100, noise=0.2, seed=0)
stacked = mlp.stack_params([mlp.init_params([2, 12, 1], "xavier", s) for s in range(3)])
lrs = np.geomspace(0.05, 3.0, 6)
out = {}
for numerics in ("portable", "blas"):
    digest = hashlib.sha256()
    for settings in ({}, {"activation": "sigmoid", "batch_size": 25}, {"momentum": 0.9},
                     {"sharpness_every": 20}):
        activation = settings.pop("activation", "tanh")
        config = mlp.TrainConfig(epochs=150, numerics=numerics, **settings)
        rngs = [np.random.default_rng(i) for i in range(18)] if config.batch_size else None
        params = [np.repeat(Wb, 6, axis=0) for Wb in stacked]  # each start under 6 rates
        result = mlp.train_population(params, X, Y, np.tile(lrs, 3), config, activation, rngs)
        digest.update(result.histories.tobytes())
        if result.sharpness is not None:
            digest.update(result.sharpness.tobytes())
    out[numerics] = digest.hexdigest()
x = np.random.default_rng(0).normal(scale=3.0, size=100_000)
out["np.tanh"] = hashlib.sha256(np.tanh(x).tobytes()).hexdigest()
print(json.dumps(out))
"""


def optional_cpu_features() -> list[str]:
    """numpy's dispatch targets above its build's baseline that this CPU has: the ones
    NPY_DISABLE_CPU_FEATURES can turn off."""
    return numerics.fingerprint("blas")["simd"]


def _probe(disabled: list[str]) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("NPY_DISABLE_CPU_FEATURES", None)
    if disabled:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disabled)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_histories_are_bit_identical_with_numpys_optional_cpu_features_off_and_on() -> None:
    """The same trials (tanh, sigmoid with mini-batches, momentum, sharpness) in two processes:
    one with every SIMD target numpy may dispatch to on this CPU, one with all of them off."""
    features = optional_cpu_features()
    if not features:
        pytest.skip("this CPU offers numpy no SIMD targets above its baseline")
    on, off = _probe([]), _probe(features)
    if on["np.tanh"] == off["np.tanh"] and on["blas"] == off["blas"]:
        pytest.skip(f"turning off {features} changes nothing numpy computes here")
    assert on["portable"] == off["portable"]
    assert on["blas"] != off["blas"]  # what the portable path is for
