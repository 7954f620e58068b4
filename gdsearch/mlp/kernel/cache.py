"""Where the compiled kernel is kept on disk, and one process at a time compiling it.

numba keys a cached function by its own source file alone: a change to a function it calls in
another file, or to a constant it compiles in, would go unnoticed and the stale code would
load. So the kernel is cached in a directory of its own, named by a hash of every source its
compiled code is made from (:data:`SOURCES`): a changed kernel compiles afresh, and two
versions of gdsearch on one machine never share code. The directory is under
``NUMBA_CACHE_DIR`` where that is set, else under ``$XDG_CACHE_HOME`` (``~/.cache``).

The first process to need a function compiles it while holding a lock on the directory;
others wait, then load what it wrote: a machine compiles once, however many Ray workers start
at the same moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from numba.core import config

_MLP = Path(__file__).resolve().parent.parent
SOURCES = (
    *sorted(Path(__file__).resolve().parent.glob("*.py")),
    _MLP / "elementary.py",
    _MLP / "stopping.py",
)
"""Every file whose code or constants the kernel's compiled code is made from."""


def directory() -> Path:
    """The kernel's cache directory on this machine (not made here)."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gdsearch"
    )
    return Path(base) / f"kernel-{digest.hexdigest()[:16]}"


@contextlib.contextmanager
def cached_here() -> Iterator[Path]:
    """While the kernel's functions are defined: numba caches them in :func:`directory` (and
    the user's own numba functions where numba would anyway)."""
    path = directory()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield path  # not writable: numba falls back to its own places
        return
    before, config.CACHE_DIR = config.CACHE_DIR, str(path)  # type: ignore[attr-defined]
    try:
        yield path
    finally:
        config.CACHE_DIR = before  # type: ignore[attr-defined]


@contextlib.contextmanager
def compiling() -> Iterator[None]:
    """Hold the cache directory's lock (an OS lock, released if the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: each process compiles for itself
        yield
        return
    path = directory()
    try:
        handle = open(path / "compile.lock", "a")  # noqa: SIM115 (held across the yield)
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_ready: set[Any] = set()


def call(function: Any, *args: Any) -> Any:
    """``function(*args)``, a kernel entry point; the first call in a process compiles it for
    these argument types (or loads it from the cache) while holding :func:`compiling`."""
    if function not in _ready:
        if not function.signatures:
            with compiling():
                function.compile(tuple(function.typeof_pyval(arg) for arg in args))
        _ready.add(function)
    return function(*args)
