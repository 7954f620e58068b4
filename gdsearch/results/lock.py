"""One writer per result set: a lock file created exclusively in the results directory.

``results/NAME/.lock`` holds the host, pid and start time of the run that writes there. It is
created with ``O_CREAT | O_EXCL``, which the kernel (or, on a shared volume, the file server:
NFS v3 and later, CephFS, Lustre, SMB) makes atomic, so of two runs that start together exactly
one gets it. The other refuses, naming the holder, or waits for it with ``wait=True``.

Whether the holder still lives is the operating system's answer, not a guess from its pid: for
as long as it runs, the holder keeps an OS file lock (:class:`filelock.FileLock`: ``flock`` on
POSIX, ``LockFileEx`` on Windows) on ``results/NAME/.lock.alive``, which the kernel drops when the
process ends however it ends. A run takes that OS lock before it looks at ``.lock``, so:

- ``.lock`` names this host and the OS lock was free: its holder is gone (killed, crashed) and
  the lock is taken over, with a log line;
- the OS lock is held: a live run of this host writes here, and this one refuses or waits;
- ``.lock`` names another host: this host cannot tell whether that run still lives (OS locks are
  not shared between hosts on every shared filesystem), so the lock stays until the user breaks
  it (``gdsearch run --break-lock`` or ``gdsearch repair``).

``.lock.alive`` stays in place between runs (removing it could let two runs lock two different
files of one name); it holds nothing.

Hosts are told apart by their hostname: containers that share a hostname must not share a
results directory.

On an object store (``s3://``) there is neither an exclusive create nor an OS lock. The lock is
then written, read back after a moment, and kept only if it still holds this run's token: two
runs that start within that moment of each other may both go on, and a killed run's lock stays
until it is broken. Start one run per result set there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import filelock
import pyarrow as pa
import pyarrow.fs as pafs

from gdsearch.errors import ResultsError
from gdsearch.results.store import ALIVE, LOCK, ResultsStore

log = logging.getLogger("gdsearch")

POLL_S = 1.0
"""How often a waiting run looks at the lock again."""
SETTLE_S = 0.5
"""On an object store, how long a new lock stands before it is read back."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: where, which process, since when, and the token it wrote."""

    host: str
    pid: int
    since: str
    token: str
    process: str = ""  # written by 0.1.0 (to tell a reused pid); read and ignored

    def __str__(self) -> str:
        if not self.host:
            return "an unknown run: the lock file is empty or damaged"
        return f"pid {self.pid} on host {self.host} since {self.since}"

    @staticmethod
    def parse(data: bytes) -> Holder:
        """The holder a lock file names; an unreadable one (a run killed between creating and
        writing it) names no host, and its token is its content."""
        try:
            holder = Holder(**json.loads(data))
        except (ValueError, TypeError):
            holder = None
        fields = (holder.host, holder.since, holder.token, holder.process) if holder else ()
        if holder and isinstance(holder.pid, int) and all(isinstance(f, str) for f in fields):
            return holder
        return Holder(host="", pid=0, since="", token=f"unreadable {data!r}")

    def encode(self) -> bytes:
        """The lock file's content."""
        return json.dumps(asdict(self)).encode()


class ResultsLock:
    """The lock of one result set; a context manager that releases it on any exit.

    Args:
        store: the result set.
        wait: if another run holds the lock, wait for it rather than refuse.
        break_foreign: take the lock of a run on another host, which is assumed gone.
    """

    def __init__(self, store: ResultsStore, *, wait: bool = False, break_foreign: bool = False):
        self.store = store
        self.path = f"{store.root}/{LOCK}"
        self.wait = wait
        self.break_foreign = break_foreign
        self.mine: Holder | None = None
        self._made_root = False
        self._alive: filelock.BaseFileLock | None = None

    def __enter__(self) -> ResultsLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise :class:`ResultsError` naming the run that holds it."""
        here = socket.gethostname()
        waiting = False
        while True:
            mine = _me()
            alone = self._lock_alive()  # None on an object store, which has no OS locks
            held = None
            if alone is not False:
                if self._create(mine):
                    self.mine = mine
                    return
                held = self._read()
                if held is None:
                    self._unlock_alive()
                    continue  # released between our attempt and our look
                if alone and held.host == here:
                    log.warning("taking over %s: its run (%s) is no longer alive", self.path, held)
                    self._remove(held)
                    self._unlock_alive()
                    continue
                if self.break_foreign:
                    log.warning("breaking %s, held by %s, as asked", self.path, held)
                    self._remove(held)
                    self._unlock_alive()
                    continue
                self._unlock_alive()
            else:
                held = self._read()
            who = str(held)
            if alone is False and not (held and held.host):  # it has not written .lock yet
                who = f"a live run of this host ({ALIVE} is locked)"
            if not self.wait:
                raise ResultsError(
                    f"{self.store.location}: in use by another run ({who}; lock file "
                    f"{self.path}); wait for it to end or pass --wait; if that run is gone, "
                    f"`gdsearch repair {self.store.location}` or --break-lock frees it"
                )
            if not waiting:
                log.info("waiting for %s, held by %s", self.store.location, who)
                waiting = True
            time.sleep(POLL_S)

    def release(self) -> None:
        """Give the lock back, if this run still holds it."""
        if self.mine is None:
            return
        held = self._read()
        if held is not None and held.token == self.mine.token:
            self._delete(self.path)
        self.mine = None
        if self._made_root and self._only_alive_left():  # a run that stored nothing leaves no
            with contextlib.suppress(OSError):  # directory (its OS lock file goes while held)
                os.unlink(f"{self.store.root}/{ALIVE}")
        self._unlock_alive()
        if self._made_root:
            with contextlib.suppress(OSError):
                os.rmdir(self.store.root)

    def holder(self) -> Holder | None:
        """Who holds the lock now, or None."""
        return self._read()

    # --- the lock file on a local or shared disk, or on an object store ----------------------

    def _create(self, mine: Holder) -> bool:
        if not self.store.local:
            return self._create_on_object_store(mine)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise ResultsError(f"{self.path}: cannot create the lock: {exc.strerror}") from None
        try:
            os.write(fd, mine.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _create_on_object_store(self, mine: Holder) -> bool:
        if self._read() is not None:
            return False
        with self.store.fs.open_output_stream(self.path) as stream:
            stream.write(mine.encode())
        time.sleep(SETTLE_S)  # a run that wrote at the same moment has overwritten ours by now
        held = self._read()
        return held is not None and held.token == mine.token

    def _read(self) -> Holder | None:
        try:
            with self.store.fs.open_input_stream(self.path) as stream:
                text = stream.read()
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            if self.store.fs.get_file_info(self.path).type == pafs.FileType.NotFound:
                return None
            raise ResultsError(f"{self.path}: cannot be read: {exc}") from None
        return Holder.parse(text)

    def _lock_alive(self) -> bool | None:
        """Take the OS lock that says a run of this host lives: True if taken (no live run of
        this host holds the set), False if another live process has it, None on an object
        store, where there is none."""
        if not self.store.local:
            return None
        if not os.path.isdir(self.store.root):
            try:
                os.makedirs(self.store.root, exist_ok=True)
            except OSError as exc:
                raise ResultsError(f"{self.path}: cannot create the lock: {exc.strerror}") from exc
            self._made_root = True
        lock = filelock.FileLock(f"{self.store.root}/{ALIVE}", timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            return False
        except OSError as exc:
            raise ResultsError(
                f"{self.store.root}/{ALIVE}: cannot take the OS lock: {exc.strerror or exc}"
            ) from None
        self._alive = lock
        return True

    def _unlock_alive(self) -> None:
        if self._alive is not None:
            self._alive.release()
            self._alive = None

    def _only_alive_left(self) -> bool:
        try:
            return os.listdir(self.store.root) == [ALIVE]
        except OSError:
            return False

    def _remove(self, held: Holder) -> None:
        """Delete the lock if it is still the one ``held`` wrote (another run may have taken
        it over meanwhile)."""
        if not self.store.local:
            again = self._read()
            if again is not None and again.token == held.token:
                self._delete(self.path)
            return
        aside = f"{self.path}.{uuid.uuid4().hex}"
        try:
            os.rename(self.path, aside)  # atomic: of two runs taking over, one moves it
        except FileNotFoundError:
            return
        with open(aside, "rb") as handle:
            moved = Holder.parse(handle.read())
        if moved.token == held.token:
            os.unlink(aside)
            return
        try:  # a run took the lock over since we looked: put its lock back
            os.link(aside, self.path)
            os.unlink(aside)
        except OSError:
            os.replace(aside, self.path)

    def _delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.store.fs.delete_file(path)


def _me() -> Holder:
    return Holder(
        host=socket.gethostname(),
        pid=os.getpid(),
        since=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        token=uuid.uuid4().hex,
    )
