"""The compiled kernel seen from outside, each check in processes of its own: the same bits
whatever the compiler targets or the C library and numpy dispatch to, no fused multiply-add
and no libm call in its machine code, the numpy path where numba is missing, and one compile
per machine however many processes start at once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytest.importorskip("numba")

PROBE = """
import hashlib, json, sys
import numpy as np
from gdsearch import mlp
from gdsearch.mlp import compiled
from gdsearch.data import load_dataset
from gdsearch.data.holdout import split

X, Y = load_dataset("moons", n_samples=150, noise=0.2, seed=0)
X, Y, holdout = split(X, Y, 0.2, seed=0)
digest = hashlib.sha256()
cases = [([2, 12, 1], "tanh", {}), ([2, 12, 1], "sigmoid", {"batch_size": 25}),
         ([2, 6, 5, 1], "relu", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
         ([2, 8, 1], "tanh", {"sharpness_every": 20, "patience": 10})]
for sizes, activation, settings in cases:
    config = mlp.TrainConfig(epochs=120, **settings)
    starts = [mlp.init_params(sizes, "xavier", s) for s in range(3) for _ in range(6)]
    params = mlp.stack_params(starts)
    lrs = np.tile(np.geomspace(0.05, 6.0, 6), 3)
    rngs = [np.random.default_rng(i) for i in range(18)] if config.batch_size else None
    result = mlp.train_population(params, X, Y, lrs, config, activation, rngs, holdout)
    for values in (result.histories, result.sharpness, result.val_sse, *result.params):
        if values is not None:
            digest.update(np.nan_to_num(values, nan=7.0).tobytes())
out = {"digest": digest.hexdigest(), "kernel": compiled.available()}
if "--registers" in sys.argv:  # which vector registers the freshly compiled kernel uses
    from gdsearch.mlp import kernel
    asm = "".join(kernel.advance.inspect_asm(s) for s in kernel.advance.signatures)
    out["registers"] = sorted({r for r in ("xmm", "ymm", "zmm") if r in asm})
print(json.dumps(out))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _probe(cache: Path, *args: str, **variables: str) -> dict[str, Any]:
    """The probe's digest in a process of its own, with numba's cache in ``cache``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), **variables}
    for name in (
        "NUMBA_CPU_NAME",
        "NUMBA_CPU_FEATURES",
        "NPY_DISABLE_CPU_FEATURES",
        "GLIBC_TUNABLES",
        "GDSEARCH_KERNEL",
    ):
        if name not in variables:
            env.pop(name, None)
    done = _run(PROBE, *args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_histories_are_the_same_bits_whatever_the_compiler_targets_and_libraries_dispatch_to(
    tmp_path: Path,
) -> None:
    """Compiled for this CPU and for a generic x86-64; with numpy's SIMD targets off; with
    glibc's FMA paths masked: the numpy reference's bits every time."""
    from tests.integration.test_numerics import optional_cpu_features

    host = _probe(tmp_path / "host")
    reference = _probe(tmp_path / "host", GDSEARCH_KERNEL="numpy")
    assert host["kernel"] and not reference["kernel"]
    assert host["digest"] == reference["digest"]
    if os.uname().machine in ("x86_64", "AMD64"):
        generic = _probe(tmp_path / "generic", "--registers", NUMBA_CPU_NAME="generic")
        assert generic["registers"] == ["xmm"]  # SSE2 alone: the generic target took effect
        assert generic["digest"] == host["digest"]
    features = optional_cpu_features()
    if features:
        disabled = _probe(tmp_path / "host", NPY_DISABLE_CPU_FEATURES=" ".join(features))
        assert disabled["digest"] == host["digest"]
    masked = _probe(tmp_path / "host", GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX2,-FMA")
    assert masked["digest"] == host["digest"]


ENTRIES = ("advance", "advance_batches", "gradients", "lanczos_step", "sse_of")
"""The kernel's entry points: every compiled function training calls."""

INSPECT = """
import json, re, sys
import numpy as np
from numba import njit
from gdsearch import mlp
from gdsearch.mlp import kernel
from gdsearch.data import load_dataset
from gdsearch.data.holdout import split

X, Y = load_dataset("moons", n_samples=60, noise=0.2, seed=0)
X, Y, holdout = split(X, Y, 0.2, seed=0)
params = mlp.stack_params([mlp.init_params([2, 5, 1], "he", s) for s in range(2)])
for settings in ({"sharpness_every": 5}, {"batch_size": 10}):
    config = mlp.TrainConfig(epochs=10, **settings)
    rngs = [np.random.default_rng(i) for i in range(2)] if config.batch_size else None
    mlp.train_population(params, X, Y, np.array([0.1, 1.0]), config, "sigmoid", rngs, holdout)
net = kernel.make_net([2, 5, 1], "tanh")
targets = np.ones((1, 7))
thetas, ws = np.ones((2, kernel.parameters(net))), kernel.workspace(net, 7, np.ones((2, 7)))
kernel.sse_of(thetas, net, targets, ws, np.empty(2))
kernel.gradients(thetas, net, targets, 1.0, ws, np.empty_like(thetas))
code = {}
for name in sys.argv[1:]:
    function = getattr(kernel, name)
    assert function.signatures, name
    code[name] = {"asm": "".join(function.inspect_asm(s) for s in function.signatures),
                  "llvm": "".join(function.inspect_llvm(s) for s in function.signatures)}

@njit(fastmath=True)
def fused(a, b, c):
    return a * b + c

fused(1.0, 2.0, 3.0)
code["control"] = {"asm": fused.inspect_asm(fused.signatures[0]),
                   "llvm": fused.inspect_llvm(fused.signatures[0])}
print(json.dumps(code))
"""

FUSED = re.compile(r"\bv?fn?m(add|sub)\w*", re.IGNORECASE)
LIBM = re.compile(r"\b(call|jmp)\w*\s+\S*?\b(exp|expm1|tanh|log|pow|sinh|cosh|exp2)\w*")
LLVM_MATH = re.compile(r"@(llvm\.(fma|fmuladd|exp|exp2|log|pow)|exp|expm1|tanh)\b")
FAST_FLAGS = re.compile(
    r"\b(fadd|fsub|fmul|fdiv|frem|fneg|fcmp|call)\s+(fast|reassoc|nnan|ninf|nsz|arcp|contract|afn)\b"
)


def _faults(asm: str, llvm: str) -> list[str]:
    """What in this machine code or IR could move a bit between machines."""
    faults = [f"fused multiply-add: {m.group(0)}" for m in FUSED.finditer(asm)]
    faults += [f"library call: {m.group(0)}" for m in LIBM.finditer(asm)]
    faults += [f"LLVM intrinsic or call: {m.group(0)}" for m in LLVM_MATH.finditer(llvm)]
    faults += [f"fast-math flag: {m.group(0)}" for m in FAST_FLAGS.finditer(llvm)]
    return faults


def test_the_kernels_machine_code_has_no_fused_multiply_add_and_calls_no_libm(
    tmp_path: Path,
) -> None:
    """Every entry point, freshly compiled for this CPU; a fast-math function beside them
    shows that the checks see a fused multiply-add where there is one."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = _run(INSPECT, *ENTRIES, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    code = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ENTRIES:
        assert _faults(code[name]["asm"], code[name]["llvm"]) == [], name
    control = _faults(code["control"]["asm"], code["control"]["llvm"])
    assert any(f.startswith("fast-math flag") for f in control)
    if "fma" in _cpu_flags():
        assert any(f.startswith("fused multiply-add") for f in control)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((row for row in text.splitlines() if row.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


WITHOUT_NUMBA = "import sys; sys.modules['numba'] = None\n" + PROBE


def test_without_numba_training_runs_on_the_numpy_path_with_one_warning_line(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("GDSEARCH_KERNEL", None)
    done = _run(WITHOUT_NUMBA, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "compiled kernel is unavailable" in lines[0], done.stderr
    assert "numpy portable path" in lines[0]
    without = json.loads(done.stdout.strip().splitlines()[-1])
    assert not without["kernel"]
    assert without["digest"] == _probe(tmp_path)["digest"]


ONE_COMPILE = """
import json
import numpy as np
from gdsearch import mlp
from gdsearch.mlp import kernel
from gdsearch.data import load_dataset

X, Y = load_dataset("moons", n_samples=40, noise=0.2, seed=0)
params = mlp.stack_params([mlp.init_params([2, 4, 1], "he", 0)])
mlp.train_population(params, X, Y, np.array([0.1]), mlp.TrainConfig(epochs=3), "tanh")
stats = kernel.advance.stats
print(json.dumps({"compiled": sum(stats.cache_misses.values()),
                  "loaded": sum(stats.cache_hits.values())}))
"""


def test_processes_that_start_together_compile_the_kernel_once(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", ONE_COMPILE],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["compiled"] for r in results) == [0, 0, 1]
    assert sorted(r["loaded"] for r in results) == [0, 1, 1]


def test_the_cache_directory_changes_with_any_source_the_kernel_is_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gdsearch.mlp.kernel import cache

    sources = []
    for path in cache.SOURCES:
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        sources.append(copy)
    monkeypatch.setattr(cache, "SOURCES", tuple(sources))
    before = cache.directory()
    sources[-1].write_bytes(sources[-1].read_bytes() + b"\n# a change\n")
    assert cache.directory() != before
    assert {p.name for p in sources} >= {"sums.py", "scalar.py", "elementary.py", "stopping.py"}
