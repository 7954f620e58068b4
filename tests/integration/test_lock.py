"""The results lock, with real processes: one holding it, one killed while holding it, a second
`gdsearch run` refused while the first runs, and locks of other hosts and of reused pids."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import gdsearch
from gdsearch.cli import main
from gdsearch.errors import ResultsError
from gdsearch.results.lock import Holder, ResultsLock
from gdsearch.results.repair import repair_results
from gdsearch.results.store import ALIVE, LOCK, ResultsStore
from tests.conftest import REPO
from tests.processes import sigint_default

HOLD = """
import sys, time
from gdsearch.results.lock import ResultsLock
from gdsearch.results.store import ResultsStore
lock = ResultsLock(ResultsStore(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def environment() -> dict[str, str]:
    """This process's environment, with this checkout first on the import path."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    return env


Hold = Callable[[Path, float], "subprocess.Popen[str]"]


@pytest.fixture
def hold() -> Iterator[Hold]:
    """Start processes that take a result set's lock and keep it for some seconds."""
    started: list[subprocess.Popen[str]] = []

    def start(results: Path, seconds: float) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(results), str(seconds)],
            env=environment(),
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def write_lock(results: Path, **fields: object) -> None:
    results.mkdir(parents=True, exist_ok=True)
    holder = {"host": socket.gethostname(), "pid": 0, "since": "2020-01-01T00:00:00+00:00"}
    (results / LOCK).write_text(json.dumps({**holder, "token": "t", **fields}))


def test_second_taker_is_refused_with_host_pid_and_since(tmp_path: Path, hold: Hold) -> None:
    results = tmp_path / "results" / "job"
    holder = hold(results, 30)
    with pytest.raises(ResultsError) as info:
        ResultsLock(ResultsStore(results)).acquire()
    message = str(info.value)
    assert f"pid {holder.pid} on host {socket.gethostname()} since 20" in message
    assert "--wait" in message and "gdsearch repair" in message


def test_lock_of_a_process_killed_by_sigkill_is_taken_over_with_a_log_line(
    tmp_path: Path, hold: Hold, caplog: pytest.LogCaptureFixture
) -> None:
    results = tmp_path / "results" / "job"
    holder = hold(results, 30)
    holder.kill()
    holder.wait()
    assert json.loads((results / LOCK).read_text())["pid"] == holder.pid  # left behind
    lock = ResultsLock(ResultsStore(results))
    with caplog.at_level(logging.WARNING, logger="gdsearch"):
        lock.acquire()
    assert f"pid {holder.pid}" in caplog.text and "no longer alive" in caplog.text
    assert lock.holder() == lock.mine
    lock.release()
    assert not (results / LOCK).exists()


def test_a_lock_naming_a_live_pid_of_this_host_is_taken_over_when_no_run_holds_the_os_lock(
    tmp_path: Path,
) -> None:
    """Liveness is the OS lock's, not a pid probe's: a lock naming a live pid (this test's own,
    as a reused pid would) but without its OS lock held is a dead run's."""
    results = tmp_path / "job"
    write_lock(results, pid=os.getpid())
    with ResultsLock(ResultsStore(results)) as lock:
        assert lock.holder() == lock.mine
    assert not (results / LOCK).exists()


def test_the_lock_never_signals_the_holders_pid(
    tmp_path: Path, hold: Hold, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.kill(pid, 0) probes a process on POSIX but ends it on Windows: never called."""
    calls: list[tuple[int, int]] = []
    results = tmp_path / "job"
    holder = hold(results, 30)
    with monkeypatch.context() as patch:
        patch.setattr(os, "kill", lambda pid, sig: calls.append((pid, sig)))
        with pytest.raises(ResultsError, match=f"pid {holder.pid}"):
            ResultsLock(ResultsStore(results)).acquire()
    holder.kill()
    holder.wait()
    with monkeypatch.context() as patch:
        patch.setattr(os, "kill", lambda pid, sig: calls.append((pid, sig)))
        with ResultsLock(ResultsStore(results)) as lock:
            assert lock.holder() == lock.mine
    assert calls == []


def test_wait_takes_the_lock_once_its_holder_ends(tmp_path: Path, hold: Hold) -> None:
    results = tmp_path / "job"
    holder = hold(results, 2.0)
    started = time.perf_counter()
    with ResultsLock(ResultsStore(results), wait=True) as lock:
        waited = time.perf_counter() - started
        assert holder.wait(timeout=10) == 0
        assert lock.holder() == lock.mine
    assert waited > 0.5
    assert not (results / LOCK).exists()


def test_lock_of_another_host_is_kept_until_broken_on_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results = tmp_path / "job"
    write_lock(results, host="elsewhere.invalid", pid=4242)
    with pytest.raises(ResultsError, match=r"pid 4242 on host elsewhere\.invalid"):
        ResultsLock(ResultsStore(results)).acquire()
    with caplog.at_level(logging.WARNING, logger="gdsearch"):
        ResultsLock(ResultsStore(results), break_foreign=True).acquire()
    assert "breaking" in caplog.text and "elsewhere.invalid" in caplog.text
    assert Holder.parse((results / LOCK).read_bytes()).pid == os.getpid()


def test_breaking_never_takes_the_lock_of_a_live_run_on_this_host(
    tmp_path: Path, hold: Hold
) -> None:
    results = tmp_path / "job"
    holder = hold(results, 30)
    with pytest.raises(ResultsError, match=f"pid {holder.pid}"):
        ResultsLock(ResultsStore(results), break_foreign=True).acquire()


def test_repair_frees_a_lock_of_another_host_but_not_a_live_one_here(
    tmp_path: Path, hold: Hold
) -> None:
    results = tmp_path / "job"
    (results / "trials").mkdir(parents=True)
    write_lock(results, host="elsewhere.invalid", pid=4242)
    assert repair_results(results).dropped == ()
    assert not (results / LOCK).exists()
    hold(results, 30)
    with pytest.raises(ResultsError, match="in use by another run"):
        repair_results(results)


def test_unreadable_lock_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """A run killed between creating the lock file and writing it leaves it empty."""
    results = tmp_path / "job"
    results.mkdir()
    (results / LOCK).write_bytes(b"")
    with pytest.raises(ResultsError, match=r"empty or damaged.*--break-lock"):
        ResultsLock(ResultsStore(results)).acquire()
    with ResultsLock(ResultsStore(results), break_foreign=True) as lock:
        assert lock.holder() == lock.mine


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_lock_is_released_on_any_exception_and_leaves_no_empty_folder(
    tmp_path: Path, error: type[BaseException]
) -> None:
    results = tmp_path / "results" / "job"
    with pytest.raises(error), ResultsLock(ResultsStore(results)):
        assert (results / LOCK).exists()
        raise error()
    assert not results.exists()  # the lock made it, nothing else was stored


def test_fresh_start_removes_everything_but_the_lock(tmp_path: Path) -> None:
    results = tmp_path / "job"
    store = ResultsStore(results)
    with ResultsLock(store):
        store.prepare("[job]\n")
        store.write_manifest({"name": "job"})
        store.remove()
        assert sorted(p.name for p in results.iterdir()) == [LOCK, ALIVE]
    assert not results.exists()  # the lock made the folder, and nothing is left in it


# --- two real `gdsearch run` processes on one result set --------------------------------------

LONG_JOB = """
[job]
name = "long"

[data]
dataset = "moons"
n_samples = 400

[train]
epochs = 20000

[search]
lr = { log = [1e-3, 1.0], num = 8 }
hidden = [[16]]
seed = [0, 1, 2, 3]
"""
"""Long enough on Ray (the first run is sent there, where an interrupt ends the wait for a
unit at once) that the run is still going when its first unit is stored (about 5 s of work)."""


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def manifest_status(results: Path) -> str | None:
    try:
        return str(json.loads((results / "manifest.json").read_text())["status"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.ray
def test_second_run_is_refused_while_the_first_runs_and_an_interrupt_frees_the_lock(
    local_ray: None, tmp_path: Path
) -> None:
    job = tmp_path / "long.toml"
    job.write_text(LONG_JOB)
    root = tmp_path / "results"
    results = root / "long"
    ray_tmp = tempfile.mkdtemp(prefix="gdsr-", dir="/tmp")  # socket paths stay short
    command = [
        *[sys.executable, "-m", "gdsearch.cli", "run", str(job), "--results-dir", str(root)],
        *["--executor", "ray"],
    ]
    env = {**environment(), "RAY_TMPDIR": ray_tmp}
    first = subprocess.Popen(
        [*command, "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A process started with SIGINT ignored keeps it ignored (Python installs its handler
        # only where it is not), and a whole test run may have come to ignore it by now.
        preexec_fn=sigint_default,
    )
    try:
        wait_for(lambda: (results / LOCK).exists() or first.poll() is not None, 120, "the lock")
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second was refused"
        assert second.returncode == 2
        assert second.stdout == ""
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        assert f"pid {first.pid} on host {socket.gethostname()}" in lines[0]
        assert "in use by another run" in lines[0]

        # Interrupted once a unit is stored: then it waits on Ray for the others, where an
        # interrupt ends it at once.
        trials = results / "trials"
        wait_for(lambda: any(trials.glob("part-*.parquet")), 120, "the first unit")
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 130, err.decode(errors="replace")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not (results / LOCK).exists()
    assert manifest_status(results) == "interrupted"
    stored = len(gdsearch.load_results(results).trials)
    resumed = gdsearch.run_search(job, root, show_progress=False)
    assert (resumed.skipped, resumed.ran) == (stored, 32 - stored)
    assert not (results / LOCK).exists()
    assert gdsearch.load_results(results).trials["trial_id"].is_unique
    assert main(["repair", str(results)]) == 0
