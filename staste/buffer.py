"""The buffered writer: kicks kept in memory, merged, and written in one round trip per flush.

Why: a synchronous kick pays a Redis round trip on the request path; a buffered kick costs a
dictionary update.  Kicks that land on the same counters (same metrica, time buckets, families
and axis values: ``Kick.merge_key()``) are merged by adding their increments, so a busy view
adds to one entry a minute however many requests it serves.  A daemon thread writes the buffer
every ``STASTE_FLUSH_INTERVAL`` seconds, and the process writes it once more when it exits.

What a flush promises:

* one kick.lua call writes the whole buffer (cut into calls of at most ``MAX_KICKS_PER_CALL``
  kicks after a long outage, and into one call per metrica on a Redis Cluster, where a script
  only reaches one hash slot); a call is atomic, so each kick is written entirely or not at all;
* when Redis cannot be reached, what was not written goes back into the buffer and the next
  flush retries it: nothing is lost and nothing counted twice.  The call whose reply was lost
  (a timeout, a connection reset after Redis ran it) is sent again as it was, first, under its
  number: kick.lua remembers each writer's last call number (``<base>w:<writer>``) and skips
  a call that already ran.  One warning is logged when the outage starts and one line when it
  ends;
* the buffer is bounded: past ``STASTE_BUFFER_MAX_KEYS`` distinct kicks, new kicks (not merges
  into held ones) are dropped and counted (``stats()["dropped"]``, logged);
* a reply Redis gives that says the script may have run partly (anything but "unreachable" or
  a refusal before the first write) drops the batch with an error log rather than risk
  counting it twice.

Each process has its own buffer: after ``fork()`` the child starts empty (what the parent held
is the parent's to write) with its own thread, so gunicorn or multiprocessing workers each
write their own counts and Redis adds them up.  A process killed without exiting (SIGKILL,
``os._exit``) loses at most one interval of kicks.

>>> visits.kick(page="home", buffered=True)     # doctest: +SKIP
>>> staste.buffer.flush()                        # doctest: +SKIP
1
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import redis
import redis.cluster

from staste import conf, connection, scripts, shutdown
from staste.exceptions import RedisUnavailable
from staste.kicks import Kick, batch_keys_and_args

logger = logging.getLogger("staste")

#: Most kicks one script call writes.  Redis serves nobody else while a script runs, so the
#: backlog of a long outage is written in slices (each one atomic, each retried on its own).
MAX_KICKS_PER_CALL = 500

_buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RedisUnavailable) or scripts.refused_before_writing(exc)


class Buffer:
    """One process' buffered kicks; ``staste.buffer.add()`` and friends use the default one.

    ``background=False`` writes only on ``flush()`` (and at exit): for benchmarks, and for
    code that decides itself when to write.
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._reset()
        _buffers.add(self)

    def _reset(self) -> None:
        """Fresh state; also what the child gets after fork() (new locks: the old may be held)."""
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        # key -> [kick, increment, increment...]: the kick's counters and the sums held for them
        self._pending: dict[Hashable, list[Any]] = {}
        # The call that failed without telling whether Redis ran it: (its number, its kicks),
        # sent again as it is, before anything newer, by the next flush.
        self._in_doubt: tuple[int, list[tuple[Hashable, Kick]]] | None = None
        # Who this writer is to Redis, and the number of its last call: unique per process.
        self._writer_id = uuid.uuid4().hex
        self._calls_made = 0
        self._in_flight = 0
        self._dropped = 0
        self._dropped_before_outage = 0
        self._flushes = 0
        self._failed_flushes = 0
        self._written = 0
        self._last_error: str | None = None
        self._last_flush: float | None = None
        self._failing = False
        self._full_reported = False
        self._pid = os.getpid()
        self._started = False
        self._stopping = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _in_doubt_count(self) -> int:
        return len(self._in_doubt[1]) if self._in_doubt else 0

    def __repr__(self) -> str:
        return f"<Buffer pending={len(self._pending)} dropped={self._dropped}>"

    # -- the hot path ------------------------------------------------------------------------

    def add(self, kick: Kick, key: Hashable = None) -> None:
        """Hold ``kick`` until the next flush, merged into the kick held under the same ``key``.

        ``key`` defaults to ``kick.merge_key()``; a caller that knows a cheaper key naming the
        same counters (see :meth:`bump`) passes it.
        """
        if key is None:
            key = kick.merge_key()
        full = False
        with self._lock:
            pending = self._pending
            held = pending.get(key)
            if held is not None:
                for index, increment in enumerate(kick.increments, 1):
                    held[index] += increment
            else:
                limit = conf.get("STASTE_BUFFER_MAX_KEYS")
                if len(pending) < limit:
                    pending[key] = [kick, *kick.increments]
                    if len(pending) * 2 >= limit and not self._failing:
                        self._wake.set()  # half full: write now rather than at the next tick
                else:
                    self._dropped += 1
                    full = not self._full_reported
                    self._full_reported = True
        if full:
            logger.warning(
                "staste: the kick buffer holds STASTE_BUFFER_MAX_KEYS (%s) distinct kicks; dropping new ones "
                "until it can be written (%s)",
                conf.get("STASTE_BUFFER_MAX_KEYS"),
                self._last_error or "Redis is slow to take them",
            )
        if not self._started:
            self._start()

    def bump(self, key: Hashable, increments: Sequence[int]) -> bool:
        """Add ``increments`` to the kick held under ``key``; False (nothing done) when none is.

        The hot path of callers that kick the same counters over and over (the response-time
        middleware): a key cheaper than ``merge_key()`` and no Kick to build until a key is
        new, when the caller prepares the kick and ``add()``s it under that key.  Every kick
        added under one key must bump the same counters (metrica, buckets, families, axis
        values) and have increments of the same length.
        """
        with self._lock:
            held = self._pending.get(key)
            if held is None:
                return False
            if len(increments) == 3:  # sum, count, histogram bucket: the middleware's kicks
                held[1] += increments[0]
                held[2] += increments[1]
                held[3] += increments[2]
            else:
                for index, increment in enumerate(increments, 1):
                    held[index] += increment
            return True

    # -- writing -----------------------------------------------------------------------------

    def flush(self) -> int:
        """Write every kick held now; returns how many (distinct, merged) kicks were written.

        Never raises because Redis is unreachable: what could not be written stays held for
        the next flush (see ``stats()``).  When it returns, every kick added before the call
        is in Redis, or still held.
        """
        if self._pid != os.getpid():  # forked by something that skipped os.register_at_fork
            self._reset()
        with self._flush_lock:
            with self._lock:
                held, in_doubt = self._pending, self._in_doubt
                if not held and in_doubt is None:
                    return 0
                self._pending, self._in_doubt = {}, None
                self._in_flight = len(held) + (len(in_doubt[1]) if in_doubt else 0)
            batch = [(key, entry[0]._replace(increments=tuple(entry[1:]))) for key, entry in held.items()]
            settled = refused = 0  # kicks of the calls made so far; those kick.lua refused
            calls: list[tuple[int, list[tuple[Hashable, Kick]]]] = []
            done = 0  # calls written
            try:
                calls = list(self._numbered(in_doubt, self._calls(batch)))
                for number, items in calls:
                    refused_here = self._write(items, (self._writer_id, number))
                    done += 1
                    settled += len(items)
                    if refused_here:
                        refused += refused_here
                        with self._lock:
                            self._dropped += refused_here
            except Exception as exc:
                if calls:
                    unsent = [item for _, items in calls[done + 1 :] for item in items]
                    self._failed(exc, calls[done], unsent, settled - refused)
                else:  # failed before a call was made: nothing new is in doubt
                    self._failed(exc, in_doubt, batch, 0)
            else:
                self._succeeded(settled - refused)
            return settled - refused

    def _numbered(
        self, in_doubt: tuple[int, list[tuple[Hashable, Kick]]] | None, calls: Iterator[list[tuple[Hashable, Kick]]]
    ) -> Iterator[tuple[int, list[tuple[Hashable, Kick]]]]:
        """The calls of a flush with their numbers: the call in doubt first, under its own."""
        if in_doubt is not None:
            yield in_doubt
        for items in calls:
            self._calls_made += 1
            yield self._calls_made, items

    @staticmethod
    def _calls(batch: list[tuple[Hashable, Kick]]) -> Iterator[list[tuple[Hashable, Kick]]]:
        """The kicks of one flush cut into script calls, written in the order of ``batch``."""
        groups: Sequence[list[tuple[Hashable, Kick]]]
        if isinstance(connection.get_redis(), redis.cluster.RedisCluster):
            by_metrica: dict[str, list[tuple[Hashable, Kick]]] = {}
            for item in batch:
                by_metrica.setdefault(item[1].metrica.base, []).append(item)
            groups = list(by_metrica.values())
            batch[:] = [item for group in groups for item in group]
        else:
            groups = [batch]
        for group in groups:
            for start in range(0, len(group), MAX_KICKS_PER_CALL):
                yield group[start : start + MAX_KICKS_PER_CALL]

    @staticmethod
    def _write(items: list[tuple[Hashable, Kick]], writer: tuple[str, int]) -> int:
        """Write one call's kicks; returns how many kick.lua refused (they would overflow a
        counter: it took each back whole and wrote the others, so nothing is retried)."""
        kicks = [kick for _, kick in items]
        for metrica in {id(kick.metrica): kick.metrica for kick in kicks}.values():
            metrica.record_signature()  # once per process and metrica
        script_keys, args = batch_keys_and_args(kicks, writer=writer)
        try:
            if scripts.run("kick", script_keys, args) == -1:
                logger.info("staste: buffered call %d had already been written; not written again", writer[1])
        except redis.ResponseError as exc:
            if not str(exc).startswith(scripts.OVERFLOW):
                raise
            refused = [kicks[int(number) - 1] for number in str(exc).split()[1:]]
            logger.error(
                "staste: dropped %d buffered kicks of %s: they would push a counter past Redis' limit (2**63 - 1)",
                len(refused),
                ", ".join(sorted({kick.metrica.name for kick in refused})),
            )
            return len(refused)
        return 0

    def _succeeded(self, written: int) -> None:
        with self._lock:
            recovered = self._failing
            dropped = self._dropped - self._dropped_before_outage
            self._in_flight = 0
            self._failing = False
            self._full_reported = False
            self._last_error = None
            self._flushes += 1
            self._written += written
            self._last_flush = time.time()
        if recovered:
            logger.warning(
                "staste: Redis at %s is back: wrote %d buffered kicks; %d were dropped while it was away",
                connection.describe(),
                written,
                dropped,
            )

    def _failed(
        self,
        exc: Exception,
        call: tuple[int, list[tuple[Hashable, Kick]]] | None,
        unsent: list[tuple[Hashable, Kick]],
        written: int,
    ) -> None:
        """``call`` failed (Redis may or may not have run it); ``unsent`` never left."""
        retry = _retryable(exc)
        dropped = 0 if retry else len(call[1] if call else []) + len(unsent)
        with self._lock:
            self._in_flight = 0
            if retry:
                self._in_doubt = call
                pending = self._pending
                for key, kick in unsent:
                    held = pending.get(key)
                    if held is None:
                        pending[key] = [kick, *kick.increments]
                    else:
                        for index, increment in enumerate(kick.increments, 1):
                            held[index] += increment
            else:
                self._dropped += dropped
            starting = not self._failing
            if starting:
                self._failing = True
                self._dropped_before_outage = self._dropped
            self._written += written
            self._failed_flushes += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            held_now = len(self._pending) + self._in_doubt_count()
        if not retry:
            logger.error("staste: dropped %d buffered kicks that Redis refused", dropped, exc_info=exc)
        elif starting:
            logger.warning(
                "staste: cannot write buffered kicks (%s); holding %d until Redis is back (at most "
                "STASTE_BUFFER_MAX_KEYS=%s)",
                exc,
                held_now,
                conf.get("STASTE_BUFFER_MAX_KEYS"),
            )

    # -- the background thread and the exit -------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            if self._pid != os.getpid():
                self._reset()
            self._started = True
            shutdown.install()  # SIGTERM skips atexit: write the buffer on it (main thread only)
            # multiprocessing's forked children leave with os._exit(), past atexit; they run
            # its finalizers (registered here, after the child cleared the parent's).
            mp_util = sys.modules.get("multiprocessing.util")
            if mp_util is not None:
                mp_util.Finalize(None, self.close, exitpriority=10)
            if self.background:
                self._thread = threading.Thread(target=self._run, name="staste-buffer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            try:
                interval = max(0.001, float(conf.get("STASTE_FLUSH_INTERVAL")))
            except (TypeError, ValueError):
                interval = 1.0
            remaining = interval - (time.monotonic() - last)
            # Wait at most a second at a time, so a changed interval applies within a second.
            if remaining > 0 and not self._wake.wait(min(remaining, 1.0)) and remaining > 1.0:
                if self._stopping:
                    return
                continue
            self._wake.clear()
            if self._stopping:
                return
            last = time.monotonic()
            try:
                self.flush()
            except Exception:  # a bug must not stop the thread: later kicks still need writing
                logger.exception("staste: flushing the kick buffer failed")

    def wake(self) -> None:
        """Have the background thread flush now rather than at its next tick."""
        self._wake.set()

    def close(self) -> None:
        """Stop the background thread and write what is held (at exit)."""
        self._stopping = True
        self._wake.set()
        if not self._pending and self._in_doubt is None:
            return
        self.flush()
        lost = len(self._pending) + self._in_doubt_count()
        if lost:
            logger.error("staste: %d buffered kicks are lost: the process exits and Redis cannot be reached", lost)

    # -- inspection --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the buffer holds and has done in this process, for the admin and monitoring.

        ``pending``: distinct kicks held (a merged kick counts once); ``dropped``: kicks lost
        because the buffer was full or Redis refused them; ``flushes``: successful writes;
        ``failed_flushes``: flushes that failed (what they held was kept, or dropped when
        Redis refused it); ``written``: kicks written; ``last_error``: why the last flush
        failed, None once a flush succeeds again (so: Redis is unreachable right now);
        ``last_flush``: when the last successful flush ended (epoch seconds, None before the
        first).
        """
        with self._lock:
            return {
                "pending": len(self._pending) + self._in_flight + self._in_doubt_count(),
                "dropped": self._dropped,
                "flushes": self._flushes,
                "failed_flushes": self._failed_flushes,
                "written": self._written,
                "last_error": self._last_error,
                "last_flush": self._last_flush,
            }

    def reset(self) -> int:
        """Forget every kick held (not counted as dropped) and zero the counters of ``stats()``.

        For tests, and for code that must start afresh; returns how many kicks were forgotten.
        """
        with self._lock:
            count = len(self._pending) + self._in_doubt_count()
            self._pending, self._in_doubt = {}, None
            self._dropped = self._dropped_before_outage = self._flushes = self._failed_flushes = self._written = 0
            self._last_error = self._last_flush = None
            self._failing = self._full_reported = False
        return count


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


def flush() -> int:
    """Write the process' buffer now; the number of kicks written (see :meth:`Buffer.flush`)."""
    return default.flush()


def stats() -> dict[str, Any]:
    """The counters of the process' buffer (see :meth:`Buffer.stats`)."""
    return default.stats()


def reset() -> int:
    """Forget what the process' buffer holds and its counters (tests); see :meth:`Buffer.reset`."""
    return default.reset()
