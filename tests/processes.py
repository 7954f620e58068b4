"""Run `gdsearch` as a user does, in a process of its own, and clean up exactly what it left.

Each run gets its own temp dir, passed as RAY_TMPDIR, so the embedded Ray it starts lives under
that dir. After a SIGKILL of the driver, Ray's raylet and GCS die with it, but its agents and
workers may outlive it (they are in process groups of their own); they still carry RAY_TMPDIR in
their environment or the temp dir in their command line, which is how they are found and killed
here: by pid, only those.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Driver:
    """A `gdsearch` process with its own Ray temp dir; stdout and stderr go to files."""

    args: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    base_env: dict[str, str] | None = None  # default: this process's environment
    temp_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="gdsk-", dir="/tmp"))

    def __post_init__(self) -> None:
        base = os.environ if self.base_env is None else self.base_env
        env = {**base, "RAY_TMPDIR": self.temp_dir, **self.extra_env}
        env.pop("RAY_ADDRESS", None)
        self.stdout_path = Path(self.temp_dir) / "stdout.txt"
        self.stderr_path = Path(self.temp_dir) / "stderr.txt"
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self.leftovers: list[int] = []  # pids that outlived the driver, killed by the sweep
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gdsearch.cli", *self.args],
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait(self, timeout: float = 300) -> int:
        """Wait for the run to end by itself; then clean up whatever it left."""
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the driver's process group, then every process left under its temp dir."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.leftovers += kill_leftovers(self.temp_dir)

    def remove(self) -> None:
        """Delete the temp dir (after :meth:`kill` or :meth:`wait`)."""
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def sigint_default() -> None:
    """For ``preexec_fn``: in the child, before exec, SIGINT back to its default, as a terminal
    gives it. A test run started as a background job of a non-interactive shell (``pytest &`` in
    a script, as CI may) starts with SIGINT ignored, and a process keeps an ignored signal across
    exec (Python then installs no handler of its own), so an interrupt sent to it would do
    nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def processes_of(temp_dir: str, variable: str = "RAY_TMPDIR") -> list[int]:
    """Live processes, other than this one, whose environment has ``variable=temp_dir`` or whose
    command line names temp_dir."""
    marker = f"{variable}={temp_dir}".encode()
    path = temp_dir.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ or path in cmdline:
            found.append(int(entry))
    return found


def kill_leftovers(
    temp_dir: str, variable: str = "RAY_TMPDIR", timeout: float = 30.0
) -> list[int]:
    """SIGKILL every process of ``temp_dir`` (see :func:`processes_of`) until none is left;
    returns the pids killed."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := processes_of(temp_dir, variable):
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes of {temp_dir} survive SIGKILL: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return killed
