"""One writer per result set: a lock file created exclusively in the results directory.

``results/NAME/.lock`` holds the host, pid and start time of the run that writes there. It is
created with ``O_CREAT | O_EXCL``, which the kernel (or, on a shared volume, the file server:
NFS v3 and later, CephFS, Lustre, SMB) makes atomic, so of two runs that start together exactly
one gets it. The other refuses, naming the holder, or waits for it with ``wait=True``.

A lock whose holder is gone is dealt with so:

- held by a process of this host that is no longer alive (killed, or its pid now belongs to a
  later process): taken over, with a log line;
- held by another host: this host cannot tell whether that run still lives, so the lock stays
  until the user breaks it (``gdsearch run --break-lock`` or ``gdsearch repair``).

Hosts are told apart by their hostname: containers that share a hostname must not share a
results directory.

On an object store (``s3://``) there is no exclusive create. The lock is then written, read
back after a moment, and kept only if it still holds this run's token: two runs that start
within that moment of each other may both go on. Start one run per result set there.
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

import pyarrow as pa
import pyarrow.fs as pafs

from gdsearch.errors import ResultsError
from gdsearch.results.store import LOCK, ResultsStore

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
    process: str = ""  # this host's boot and the process's start, to tell a reused pid

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

    def __enter__(self) -> ResultsLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise :class:`ResultsError` naming the run that holds it."""
        waiting = False
        while True:
            mine = _me()
            if self._create(mine):
                self.mine = mine
                return
            held = self._read()
            if held is None:
                continue  # released between our attempt and our look
            if self._stale(held):
                log.warning("taking over %s: its run (%s) is no longer alive", self.path, held)
                self._remove(held)
                continue
            if self.break_foreign and held.host != socket.gethostname():
                log.warning("breaking %s, held by %s, as asked", self.path, held)
                self._remove(held)
                continue
            if not self.wait:
                raise ResultsError(
                    f"{self.store.location}: in use by another run ({held}; lock file "
                    f"{self.path}); wait for it to end or pass --wait; if that run is gone, "
                    f"`gdsearch repair {self.store.location}` or --break-lock frees it"
                )
            if not waiting:
                log.info("waiting for %s, held by %s", self.store.location, held)
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
        if self._made_root:
            with contextlib.suppress(OSError):  # a run that stored nothing leaves no directory
                os.rmdir(self.store.root)

    def holder(self) -> Holder | None:
        """Who holds the lock now, or None."""
        return self._read()

    # --- the lock file on a local or shared disk, or on an object store ----------------------

    def _create(self, mine: Holder) -> bool:
        if not self.store.local:
            return self._create_on_object_store(mine)
        try:
            if not os.path.isdir(self.store.root):
                os.makedirs(self.store.root, exist_ok=True)
                self._made_root = True
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

    def _stale(self, held: Holder) -> bool:
        """Whether the holder is a process of this host that is no longer alive."""
        return held.host == socket.gethostname() and not _alive(held.pid, held.process)

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
        process=_process_identity(os.getpid()),
    )


def _alive(pid: int, process: str) -> bool:
    """Whether ``pid`` is a live process of this host, and the same one that took the lock."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    now = _process_identity(pid)
    return not (process and now and now != process)


def _process_identity(pid: int) -> str:
    """This boot's id and the process's start time (Linux), or "" where they are unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="utf-8") as handle:
            boot = handle.read().strip()
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            start = handle.read().rpartition(")")[2].split()[19]  # field 22, starttime
    except (OSError, IndexError):
        return ""
    return f"{boot}/{start}"
