"""What a buffer tells about itself: the counters of ``stats()``, and one log line when an
outage starts and one when it ends (never one per kick or per flush).

Why on its own: every part of the buffer reports here (a kick dropped while waiting for room, a
flush refused, a call confirmed), and the admin dashboard and monitoring read it; one place
keeps the counts and the outage state consistent under the buffer's lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from staste import conf, connection
from staste.exceptions import NotReplicated

logger = logging.getLogger("staste")


class Status:
    """The counters and the outage state of one buffer (see ``Buffer.stats()``)."""

    def __init__(self, lock: threading.Lock, pending: Callable[[], int]) -> None:
        self._lock = lock  # the buffer's
        self._pending = pending  # how many kicks the buffer holds (for the log lines)
        self.dropped = 0
        self.dropped_before_outage = 0
        self.waits = 0
        self.dropped_ids = 0
        self.quarantined = 0
        self.quarantine_error: BaseException | None = None  # why the last batch was quarantined
        self.flushes = 0
        self.failed_flushes = 0
        self.written = 0
        self.error: BaseException | None = None  # why the last flush failed (None: it did not)
        self.last_flush: float | None = None
        self.failing = False  # the last flush failed: Redis is away or refuses writes
        self.full_reported = False
        self.progress = 0.0  # when a call last went through (monotonic)

    def counters(self) -> dict[str, Any]:
        """The part of ``stats()`` kept here (under the buffer's lock)."""
        return {
            "dropped": self.dropped,
            "waits": self.waits,
            "flushes": self.flushes,
            "failed_flushes": self.failed_flushes,
            "quarantined": self.quarantined,
            "written": self.written,
            "last_error": self.last_error,
            "last_quarantine": describe(self.quarantine_error),
            "last_flush": self.last_flush,
        }

    @property
    def last_error(self) -> str | None:
        return describe(self.error)

    def reachable(self) -> None:
        """A call went through: Redis takes writes again, so a full buffer waits, not drops."""
        self.progress = time.monotonic()
        if not self.failing:
            return
        with self._lock:
            recovered, unreplicated = self.failing, isinstance(self.error, NotReplicated)
            dropped = self.dropped - self.dropped_before_outage
            self.failing = False
            self.full_reported = False
            self.error = None
        if recovered:
            logger.warning(
                "staste: the replicas of Redis at %s confirm writes again: writing %d held kicks; %d were dropped "
                "meanwhile"
                if unreplicated
                else "staste: Redis at %s is back: writing %d held kicks; %d were dropped while it was away",
                connection.describe(),
                self._pending(),
                dropped,
            )

    def succeeded(self, written: int) -> None:
        with self._lock:
            self.error = None
            self.flushes += 1
            self.written += written
            self.last_flush = time.time()

    def failed(self, exc: BaseException, dropped: int = 0) -> None:
        """A flush failed: what it held is kept (queued or held again), or ``dropped``."""
        with self._lock:
            starting = not self.failing
            if starting:
                self.failing = True
                self.dropped_before_outage = self.dropped
            self.failed_flushes += 1
            self.error = exc
        if not dropped and starting:
            logger.warning(
                "staste: cannot write buffered kicks (%s); holding %d until %s (at most "
                "STASTE_BUFFER_MAX_KEYS=%s distinct kicks and STASTE_BUFFER_MAX_BYTES=%s bytes)",
                exc,
                self._pending(),
                "replicas confirm them" if isinstance(exc, NotReplicated) else "Redis is back",
                conf.get("STASTE_BUFFER_MAX_KEYS"),
                conf.get("STASTE_BUFFER_MAX_BYTES"),
            )

    def quarantine(self, kicks: int, exc: BaseException) -> None:
        """A flush raised what no Redis answer explains (a bug, a kick no check caught): its
        ``kicks`` are set aside, never sent again, so that the kicks after them are written.
        Counted apart from ``dropped`` (which Redis caused), and the flush counts as failed."""
        with self._lock:
            self.quarantined += kicks
            self.quarantine_error = exc
            self.failed_flushes += 1

    def drop(self, kicks: int) -> None:
        """``kicks`` will never be written (the caller logs why)."""
        with self._lock:
            self.dropped += kicks

    def drop_for_room(self, timed_out: bool) -> None:
        """A kick found the buffer full and could not wait for room: dropped, said once."""
        with self._lock:
            self.dropped += 1
            report = not self.full_reported
            self.full_reported = True
        if report:
            logger.warning(
                "staste: the kick buffer is full (STASTE_BUFFER_MAX_KEYS=%s distinct kicks, STASTE_BUFFER_MAX_BYTES=%s "
                "bytes); dropping new ones until it can be written (%s)",
                conf.get("STASTE_BUFFER_MAX_KEYS"),
                conf.get("STASTE_BUFFER_MAX_BYTES"),
                f"Redis took no call for STASTE_BUFFER_MAX_WAIT={conf.get('STASTE_BUFFER_MAX_WAIT')}s"
                if timed_out
                else self.last_error,
            )


def describe(exc: BaseException | None) -> str | None:
    """An error as ``stats()`` shows it: its class and message."""
    return None if exc is None else f"{type(exc).__name__}: {exc}"
