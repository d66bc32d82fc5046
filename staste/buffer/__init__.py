"""The buffered writer: kicks kept in memory, merged, and written in few short script calls.

Why: a synchronous kick pays a Redis round trip on the request path; a buffered kick costs a
dictionary update.  Kicks that land on the same counters are merged by adding their increments
(staste/buffer/held.py), so a busy view adds to one entry a minute however many requests it
serves.  A daemon thread writes the buffer ``STASTE_FLUSH_INTERVAL`` seconds after its first
kick came in (at once when it is half full), a kick that finds it full waits for room
(staste/buffer/schedule.py), and the process writes it once more when it exits.

A flush merges again, at the level of the counters: every combination of every kick held is
expanded in Python, and each distinct counter (bucket x field x family) is incremented once, by
the sum of what its kicks add to it (counters.lua), in calls cut by the work they give Redis
(staste/buffer/calls.py), sent several ahead of their replies: Redis bumps the counters of one
call while Python adds up the next (staste/buffer/flushes.py).

What a flush promises:

* nothing lost while Redis takes writes: a full buffer slows a kicking thread to Redis' pace;
  a kick is dropped (counted in ``stats()["dropped"]``, logged) only while Redis is unreachable
  or refuses writes, or when no call went through for ``STASTE_BUFFER_MAX_WAIT`` seconds;
* no long call: a call takes about a millisecond of Redis, the backlog of a long outage
  included; on a Redis Cluster a call holds one metrica (a script reaches one hash slot);
* a bad kick never stops the writer: a flush that raises what no Redis answer explains (a bug,
  a kick no check caught) is quarantined, counted in ``stats()["quarantined"]`` and shown on the
  dashboard, and the flushes after it are written as usual;
* nothing counted twice, and nothing lost without a word: the calls of a buffer are numbered
  and each names the call before it under its writer key (staste/buffer/chain.py, which lists
  every case: refused calls, lost replies, scripts or writer keys Redis lost, failovers).  What
  Redis did not take is kept and sent again by the next flush, in order, under the same
  numbers; a kick is dropped, counted and logged, only when a counter it bumps would pass
  Redis' 64-bit limit, when Redis answered an error that may follow a partial write, or when a
  call whose reply was lost finds its writer key gone;
* a reader may see a flush half written for the few milliseconds between its calls; each call
  is atomic.

Each process has its own buffer: after ``fork()`` the child starts empty (what the parent held
is the parent's to write) with its own thread, so gunicorn or multiprocessing workers each write
their own counts and Redis adds them up.  A process killed without exiting (SIGKILL,
``os._exit``) loses at most one interval of kicks.

>>> visits.kick(page="home", buffered=True)     # doctest: +SKIP
>>> staste.buffer.flush()                        # doctest: +SKIP
1
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from staste import conf
from staste.buffer.flushes import Flushes
from staste.buffer.held import Held
from staste.buffer.schedule import Schedule
from staste.buffer.status import Status
from staste.exceptions import NotReplicated
from staste.kicks import Kick

logger = logging.getLogger("staste")

_buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()


class Buffer:
    """One process' buffered kicks; ``staste.buffer.add()`` and friends use the default one.

    ``background=False`` writes only on ``flush()`` (at exit, and when a kick finds it full):
    for benchmarks, and for code that decides itself when to write.
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._reset()
        _buffers.add(self)

    def _reset(self) -> None:
        """Fresh state; also what the child gets after fork() (new locks: the old may be held)."""
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._status = Status(self._lock, self._pending)
        self._flushes = Flushes(self._lock, self._status)
        self._held = Held()  # (its limit set by its first kick: settings may not be ready yet)
        self._schedule = Schedule(self)
        self._pid = os.getpid()

    def _room(self) -> int:
        """The bytes kicks may be held in: STASTE_BUFFER_MAX_BYTES, less what the flush under
        way (or waiting for Redis) keeps."""
        return conf.get("STASTE_BUFFER_MAX_BYTES") - self._flushes.bytes

    def _pending(self) -> int:
        return len(self._held) + self._flushes.pending

    def __repr__(self) -> str:
        return f"<Buffer pending={len(self._held)} dropped={self._status.dropped}>"

    # -- the hot path ------------------------------------------------------------------------

    def add(self, kick: Kick, key: Hashable = None) -> None:
        """Hold ``kick`` until the next flush, merged into the kick held under the same ``key``.

        ``key`` defaults to ``kick.merge_key()``; a caller that knows a cheaper key naming the
        same counters (see :meth:`bump`) passes it.  When the buffer is full, this waits for
        room (see staste/buffer/schedule.py).
        """
        if key is None:
            key = kick.merge_key()
        wake = self._schedule.wake
        with self._lock:
            held = self._held
            if kick.unique and not self._status.failing and not held.fits(kick.unique):
                kept = False  # no room for its ids while Redis takes writes: wait for a flush
            elif held.add(key, kick.increments, kick.unique):
                kept = True
                if kick.unique and held.half_full and not self._status.failing and not wake.is_set():
                    wake.set()  # half the bytes it may hold: write now
            else:
                limit = conf.get("STASTE_BUFFER_MAX_KEYS")
                held.limit = self._room()
                kept = held.room(limit - len(self._flushes.parked))
                if kept:
                    held.hold(key, kick)
                    if (len(held) * 2 >= limit or held.half_full) and not self._status.failing and not wake.is_set():
                        wake.set()  # half full: write now rather than at the next tick
        if not kept:
            self._schedule.wait_for_room(kick, key)
        if not self._schedule.started:
            self._schedule.start()

    def bump(self, key: Hashable, increments: Sequence[int]) -> bool:
        """Add ``increments`` to the kick held under ``key``; False (nothing done) when none is.

        The hot path of callers that kick the same counters over and over (the response-time
        middleware): a key cheaper than ``merge_key()`` and no Kick to build until a key is
        new, when the caller prepares the kick and ``add()``s it under that key.  Every kick
        added under one key must bump the same counters (metrica, buckets, families, axis
        values) and have increments of the same length.
        """
        with self._lock:
            return self._held.add(key, increments)

    # -- writing -----------------------------------------------------------------------------

    def flush(self) -> int:
        """Write every kick held now; returns how many (distinct, merged) kicks were written.

        Never raises because Redis is unreachable: what could not be written stays held for
        the next flush (see ``stats()``).  When it returns, every kick added before the call
        is in Redis, or still held, or counted as dropped.
        """
        if self._pid != os.getpid():  # forked by something that skipped os.register_at_fork
            self._reset()
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        """flush(), under the flush lock: first what an earlier flush left (its first calls
        maybe in doubt, or its kicks parked), then the kicks held now."""
        flushes = self._flushes
        flushes.started = time.monotonic()
        try:
            if not flushes.resend():
                return flushes.written
            written = flushes.written
            if flushes.parked:
                flushes.write(flushes.unpark())
                written += flushes.written
                if flushes.parked or flushes.chain.queue:
                    return written  # Redis is still away
            with self._lock:
                held = self._held
                if not held:
                    return written
                flushes.bytes += held.bytes
                self._held = Held(self._room())
                flushes.in_flight = len(held)
                self._status.dropped_ids += held.ids_dropped
            flushes.write(held.kicks())
            return written + flushes.written
        finally:
            with self._lock:  # what the flush keeps now leaves the rest to new kicks
                self._held.limit = self._room()

    def close(self) -> None:
        """Stop the background thread and write what is held (at exit)."""
        self._schedule.stop()
        if not self._held and not self._flushes.chain.queue and not self._flushes.parked:
            return
        self.flush()
        lost = len(self._held) + self._flushes.queued + len(self._flushes.parked)
        if lost:
            logger.error("staste: %d buffered kicks are lost: the process exits and Redis cannot be reached", lost)

    # -- inspection --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the buffer holds and has done in this process, for the admin and monitoring.

        ``pending``: distinct kicks held (a merged kick counts once); ``bytes``: what
        everything held takes, estimated (at most ``STASTE_BUFFER_MAX_BYTES``); ``dropped``:
        kicks lost because the buffer was full while Redis failed, or Redis refused them, or a call whose
        reply was lost found its writer key gone; ``waits``: kicks that found the buffer full
        and waited for a flush to make room (backpressure); ``dropped_ids``: unique ids not
        held because the buffer held ``STASTE_BUFFER_MAX_BYTES`` (their kicks were counted);
        ``flushes``: successful writes; ``failed_flushes``: flushes that failed (what they held
        was kept, or dropped when Redis refused it, or quarantined); ``quarantined``: kicks set
        aside because writing them raised what no Redis answer explains (a bug, a kick no check
        caught), so that the kicks after them are written; ``last_quarantine``: why, the last
        time (it stays); ``written``: kicks written; ``last_error``: why the last flush failed,
        None once a flush succeeds again (so: Redis is unreachable right now); ``last_flush``:
        when the last successful flush ended (epoch seconds, None before the first).
        """
        with self._lock:
            return {
                "pending": self._pending(),
                "bytes": self._held.bytes + self._flushes.bytes,
                "dropped_ids": self._status.dropped_ids + self._held.ids_dropped,
                **self._status.counters(),
            }

    def reset(self) -> int:
        """Forget every kick held (not counted as dropped) and zero the counters of ``stats()``.

        For tests, and for code that must start afresh; returns how many kicks were forgotten.
        """
        with self._lock:
            count = len(self._held) + self._flushes.queued + len(self._flushes.parked)
            self._status = Status(self._lock, self._pending)
            self._flushes = Flushes(self._lock, self._status)
            self._held = Held()
        return count


def write(kicks: Iterable[Kick]) -> int:
    """Write prepared ``kicks`` now, merged as a flush merges them, through a writer of their
    own; returns how many (distinct, merged) kicks were written.

    The way to put many kicks into Redis at once (data imported, a demo's or a test's history):
    one short call per ``calls.counters_budget()`` counters rather than one call per kick.  Raises
    what kept Redis from taking them all (RedisUnavailable, or the error Redis answered).  With
    ``STASTE_WAIT_REPLICAS``, calls the replicas have not confirmed are sent again (Redis answers
    "already written") for up to ``STASTE_BUFFER_MAX_WAIT`` seconds; then NotReplicated: the
    kicks are on the primary, not yet confirmed by its replicas (write them again and they
    would count twice).
    """
    held = Held()
    for kick in kicks:
        held.merge(kick)
    lock = threading.Lock()
    status = Status(lock, lambda: flushes.pending)
    flushes = Flushes(lock, status)
    flushes.in_flight = len(held)
    flushes.write(held.kicks())
    written = flushes.written
    deadline = time.monotonic() + float(conf.get("STASTE_BUFFER_MAX_WAIT"))
    while isinstance(status.error, NotReplicated) and flushes.chain.queue and time.monotonic() < deadline:
        flushes.resend()
        written += flushes.written
    if status.error is not None:
        raise status.error
    if status.quarantine_error is not None:
        raise status.quarantine_error
    return written


def _before_fork() -> None:
    for buffer in list(_buffers):
        buffer._lock.acquire()


def _after_fork_in_parent() -> None:
    for buffer in list(_buffers):
        buffer._lock.release()


def _after_fork_in_child() -> None:
    for buffer in list(_buffers):
        buffer._reset()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def _close_all() -> None:
    for buffer in list(_buffers):
        buffer.close()


atexit.register(_close_all)

#: The process' buffer, used by ``kick(buffered=True)`` and the response-time middleware.
default = Buffer()


def add(kick: Kick, key: Hashable = None) -> None:
    """Hold ``kick`` in the process' buffer (see :meth:`Buffer.add`)."""
    default.add(kick, key)


def bump(key: Hashable, increments: Sequence[int]) -> bool:
    """Add to the kick the process' buffer holds under ``key`` (see :meth:`Buffer.bump`)."""
    return default.bump(key, increments)


def flush() -> int:
    """Write the process' buffer now; the number of kicks written (see :meth:`Buffer.flush`)."""
    return default.flush()


def stats() -> dict[str, Any]:
    """The counters of the process' buffer (see :meth:`Buffer.stats`)."""
    return default.stats()


def reset() -> int:
    """Forget what the process' buffer holds and its counters (tests); see :meth:`Buffer.reset`."""
    return default.reset()
