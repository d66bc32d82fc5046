"""Who a synchronous kick comes from, so that Redis counts it exactly once.

A kick whose reply is lost (a socket timeout while Redis is stalled, a connection reset) is
sent again by redis-py's one quick retry; without more, a call that had run would then be
counted twice while ``kick()`` returns normally.  So every synchronous kick.lua call carries
a *writer id* and a *call number*, increasing per writer (staste.numbering): kick.lua
remembers each writer's last number (the key ``keys.writer_key(base, writer_id)``, in the
metrica's hash slot) and skips a call numbered no higher.  A synchronous call names no
predecessor: it is the only call its writer has in flight.  The buffer numbers its flushes'
calls the same way, with a writer of its own (staste.buffer.chain).

One writer serves one thread at a time: two threads sharing a number sequence could reach
Redis out of order, and the later number would make kick.lua skip the earlier call.  A
thread leases a writer from its process' pool on its first kick and gives it back when it
ends, so a server that starts a thread per request (``runserver``) reuses a few writers
rather than making a new one per request: a process has at most as many writers as it ever
had threads kicking at once.  Redis holds one small string (about 100 bytes) per writer
and metrica it kicked, for ``numbering.SYNC_TTL`` after that writer's last kick.

After ``fork()`` the child starts a new pool under a new process id: a child reusing its
parent's writer would send the parent's next numbers, and one of the two calls would be
skipped.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator

from staste import keys, numbering


class Writer:
    """One sequence of numbered calls: used by one thread at a time."""

    __slots__ = ("calls", "id")

    def __init__(self, writer_id: str) -> None:
        self.id = writer_id
        self.calls = 0

    def numbers(self, base: str) -> numbering.Numbers:
        """The numbers of this writer's next call, to the metrica of ``base``: they start at 1
        and only grow."""
        self.calls += 1
        return numbering.Numbers(keys.writer_key(base, self.id), self.calls, numbering.SYNC_TTL)

    def __repr__(self) -> str:
        return f"<Writer {self.id} calls={self.calls}>"


class _Pool:
    """The writers of one process, free ones ready for the next thread."""

    def __init__(self) -> None:
        self.process = uuid.uuid4().hex[:16]  # 64 random bits tell processes apart
        self.free: list[Writer] = []
        self.made = 0
        self.lock = threading.Lock()

    def take(self) -> Writer:
        with self.lock:
            if self.free:
                return self.free.pop()
            self.made += 1
            return Writer(f"{self.process}.{self.made}")


class _Lease:
    """A thread's hold on a writer; gives it back to its own pool when the thread ends.

    It lives in a ``threading.local``, whose per-thread values are dropped when their thread
    ends.  It names its pool rather than the module's, so a lease dropped in a forked child
    returns the parent's writer to the parent's (no longer used) pool, never to the child's.
    """

    __slots__ = ("pool", "writer")

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.writer = pool.take()

    def __del__(self) -> None:
        self.pool.free.append(self.writer)  # list.append is atomic: no lock in a finalizer


_pool = _Pool()
_local = threading.local()


def current() -> Writer:
    """This thread's writer, leased on its first call."""
    try:
        return _local.lease.writer
    except AttributeError:
        _local.lease = _Lease(_pool)
        return _local.lease.writer


@contextlib.contextmanager
def borrowed() -> Iterator[Writer]:
    """A writer of this process' pool for one call, given back when the call is over.

    For async kicks (``Metrica.akick``): the coroutines of one event loop share its thread, and
    run their calls concurrently on several connections, so they cannot share the thread's
    writer (a later number reaching Redis first would make kick.lua skip the earlier call).
    Each call holds a writer of its own while it runs, so a loop has at most as many writers
    as it ever had kicks in flight at once.
    """
    pool = _pool
    writer = pool.take()
    try:
        yield writer
    finally:
        pool.free.append(writer)


def stats() -> dict[str, int]:
    """How many writers this process has made and how many are free (for tests and monitoring)."""
    return {"made": _pool.made, "free": len(_pool.free)}


def _after_fork_in_child() -> None:
    global _pool, _local
    _pool = _Pool()
    _local = threading.local()


os.register_at_fork(after_in_child=_after_fork_in_child)
