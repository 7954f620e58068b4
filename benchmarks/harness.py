"""What every section of the benchmark shares: the jobs, fresh processes and their medians,
the machine's description, and tables.

Each measurement runs in a process of its own (``bench.py _measure KIND ARGS...``, dispatched
to :data:`benchmarks.measures.MEASURES`), with one BLAS thread, so that imports, caches and
start-up are counted where a user would meet them and one measurement never warms another.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks" / "bench.py"
W1 = REPO / "jobs" / "moons_lr_init.toml"
W1_HALVING = REPO / "jobs" / "moons_halving.toml"
SEED = REPO / "jobs" / "seed_sine.toml"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def child(kind: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One measurement in a fresh process: its JSON result, and ``wall_s``, the whole process."""
    environment = {**os.environ, **ONE_THREAD, **(env or {})}
    environment.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(BENCH), "_measure", kind, *args],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{kind} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


TIMES = ("wall_s", "search_s", "ray_start_s", "ray_stop_s", "peak_rss_mib", "train_s")


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The first result, its times replaced by the medians over all (whose digests agree)."""
    digests = [r.get("digest") for r in results]
    assert all(d == digests[0] for d in digests), "runs of one measurement differ"
    merged = dict(results[0])
    for key in TIMES:
        if key in merged:
            merged[key] = statistics.median(r[key] for r in results)
    merged["runs"] = len(results)
    return merged


def median_child(
    kind: str, runs: int, *args: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    return median_of([child(kind, *args, env=env) for _ in range(runs)])


def digest(histories: dict[str, Any]) -> dict[str, str]:
    """A hash of each trial's history, so that methods can be compared value for value."""
    import numpy as np

    return {
        trial_id: hashlib.sha256(np.asarray(values, dtype=np.float64).tobytes()).hexdigest()[:16]
        for trial_id, values in histories.items()
    }


def machine() -> str:
    """The CPU, its cores, Python, numpy's BLAS and the compiler of the kernel."""
    import numpy  # noqa: F401  (so that threadpoolctl sees its BLAS)
    from threadpoolctl import threadpool_info

    blas = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} kernel)"
        for i in threadpool_info()
    ]
    cpu = _cpu_name() or platform.processor() or platform.machine()
    parts = [f"{cpu}, {os.cpu_count()} cores", f"Python {platform.python_version()}"]
    try:
        import llvmlite.binding as llvm
        import numba

        parts.append(f"numba {numba.__version__} (LLVM target {llvm.get_host_cpu_name()})")
    except ImportError:
        parts.append("numba not installed")
    return ", ".join([*parts, f"BLAS {', '.join(blas)} (1 thread per process)"])


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def job_variant(base: Path, folder: Path, name: str, **edits: str) -> Path:
    """A copy of a job file under a new name, each ``old=new`` edit applied (and checked)."""
    text = base.read_text()
    for old, new in edits.items():
        assert old in text, f"{old!r} not in {base.name}"
        text = text.replace(old, new)
    old_name = next(line for line in text.splitlines() if line.startswith("name = "))
    text = text.replace(old_name, f'name = "{name}"')
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def scaled_w1(factor: int, folder: Path) -> Path:
    """W1 with ``factor`` times its seeds (W1 x 16: 4,096 trials)."""
    seeds = ", ".join(str(s) for s in range(4 * factor))
    return job_variant(
        W1, folder, f"moons-lr-init-x{factor}", **{"seed = [0, 1, 2, 3]": f"seed = [{seeds}]"}
    )


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    print(f"\n{title}\n")
    print(f"| {' | '.join(columns)} |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for row in rows:
        print(f"| {' | '.join(_cell(v) for v in row)} |")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- gdsearch as a command, a process of its own -----------------------------------------


LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(child.pid, 0)
error = child.stderr.read().decode()[-3000:]
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss, error]))
"""
"""Runs a command and prints its exit code, peak RSS (KiB) and stderr's tail. A child's peak RSS
counts what it held before exec, a copy of its parent's: this small process is the parent, so
that the figure is the command's own, not the benchmark's."""


def cli_child(
    command: list[str], tree: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, float]:
    """``python -m gdsearch COMMAND`` in a fresh process (with another source tree's gdsearch,
    ``tree``): its wall time and peak RSS."""
    environment = {**os.environ, **ONE_THREAD, **(env or {})}
    environment.pop("RAY_ADDRESS", None)
    if tree is not None:
        paths = [str(tree), environment.get("PYTHONPATH", "")]
        environment["PYTHONPATH"] = os.pathsep.join(paths).rstrip(os.pathsep)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "gdsearch", *command],
        env=environment,
        cwd=str(tree or REPO),
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    code, peak_kib, error = json.loads(done.stdout)
    if code != 0:
        raise SystemExit(f"gdsearch {' '.join(command)} failed:\n{error}")
    return {"wall_s": wall, "peak_rss_mib": peak_kib / 1024}


def median_cli(
    command: list[str], runs: int, tree: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, float]:
    results = [cli_child(command, tree, env) for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def gdsearch_run(
    job: Path, folder: Path, *options: str, env: dict[str, str] | None = None
) -> dict[str, float]:
    """`gdsearch run JOB` as a user types it, into a results folder of its own (nothing stored
    to resume from): the whole process's wall time and peak RSS."""
    results = tempfile.mkdtemp(prefix="run-", dir=folder)
    return cli_child(
        ["run", str(job), "--results-dir", results, "--no-progress", *options], env=env
    )
