"""When a buffer is written: by its thread ``STASTE_FLUSH_INTERVAL`` after its first kick came
in (at once when it is half full), and by a kicking thread that finds it full (backpressure).

Why: the interval bounds how long a kick waits to be written, and the longer a flush's window,
the more its kicks share counters.  A full buffer (``STASTE_BUFFER_MAX_KEYS`` distinct kicks)
makes the kicking thread wait for room rather than lose its kick: for the flush under way,
then it writes the buffer itself, as long as Redis takes the flush's calls, so at most what one
full buffer takes to write.  A thread that kicks faster than Redis takes the counters is slowed
to Redis' pace.  Only while Redis is unreachable or refuses writes (the last flush failed), or
when no call went through for ``STASTE_BUFFER_MAX_WAIT`` seconds (a stalled Redis), is a kick
that finds the buffer full dropped, counted and logged.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING

from staste import conf, shutdown
from staste.kicks import Kick

if TYPE_CHECKING:
    from staste.buffer import Buffer

logger = logging.getLogger("staste")


class Schedule:
    """A buffer's background thread and its waits for room."""

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self.wake = threading.Event()
        self._start_lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """At the buffer's first kick: the thread (when it has one), and the exit hooks."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
            shutdown.install()  # SIGTERM skips atexit: write the buffer on it (main thread only)
            # multiprocessing's forked children leave with os._exit(), past atexit; they run
            # its finalizers (registered here, after the child cleared the parent's).
            mp_util = sys.modules.get("multiprocessing.util")
            if mp_util is not None:
                mp_util.Finalize(None, self.buffer.close, exitpriority=10)
            if self.buffer.background:
                self._thread = threading.Thread(target=self._run, name="staste-buffer", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    def _run(self) -> None:
        """Write the buffer STASTE_FLUSH_INTERVAL seconds after its first kick came in (and at
        least that long after the last write began, by whichever thread: a failing Redis is
        tried once an interval), or at once when woken (the buffer is half full)."""
        buffer = self.buffer
        while True:
            try:
                interval = max(0.001, float(conf.get("STASTE_FLUSH_INTERVAL")))
            except (TypeError, ValueError):
                interval = 1.0
            flushes = buffer._flushes
            since = buffer._held.since
            if since is None and flushes.chain.queue:
                since = flushes.started  # calls left by a failed flush: retried
            remaining = interval if since is None else interval - (time.monotonic() - since)
            remaining = max(remaining, interval - (time.monotonic() - flushes.started))
            if remaining > 0:
                # At most a second at a time, so a changed interval applies within a second.
                woken = self.wake.wait(min(remaining, 1.0))
                if self._stopping:
                    return
                if not woken:
                    continue
            self.wake.clear()
            if self._stopping:
                return
            try:
                buffer.flush()
            except Exception:  # a bug must not stop the thread: later kicks still need writing
                logger.exception("staste: flushing the kick buffer failed")
                flushes.started = time.monotonic()  # (not at once again)

    def wait_for_room(self, kick: Kick, key: Hashable) -> None:
        """Backpressure: hold ``kick`` once a flush made room; drop it only when Redis fails.

        The kicking thread waits for the flush under way, then writes the buffer itself.  It
        waits as long as Redis takes the calls of the flush under way, and gives up (drops the
        kick) when no call went through for ``STASTE_BUFFER_MAX_WAIT`` seconds: so the longest
        wait is what writing one full buffer takes, and a stalled Redis costs a kick that wait.
        """
        buffer = self.buffer
        status = buffer._status
        patience = max(0.0, float(conf.get("STASTE_BUFFER_MAX_WAIT")))
        deadline = time.monotonic() + patience
        waited = False
        while True:
            with buffer._lock:
                held = buffer._held
                failing = status.failing
                held.limit = buffer._room()
                limit = conf.get("STASTE_BUFFER_MAX_KEYS") - len(buffer._flushes.parked)
                fits = failing or not kick.unique or held.fits(kick.unique)  # (ids are dropped while Redis fails)
                if fits and (held.add(key, kick.increments, kick.unique) or held.room(limit)):
                    if key not in held.entries:
                        held.hold(key, kick)
                    status.waits += waited
                    return
            deadline = max(deadline, status.progress + patience)  # a call went through: Redis takes writes
            remaining = deadline - time.monotonic()
            if failing or remaining <= 0:
                status.drop_for_room(timed_out=not failing)
                return
            waited = True
            if not buffer._flush_lock.acquire(timeout=min(remaining, 0.1)):
                continue
            try:
                with buffer._lock:
                    held = buffer._held
                    full = not held.room(conf.get("STASTE_BUFFER_MAX_KEYS") - len(buffer._flushes.parked)) or (
                        bool(kick.unique) and not held.fits(kick.unique)
                    )
                if full:  # nobody else made room meanwhile
                    buffer._flush()
            finally:
                buffer._flush_lock.release()
