"""Writing what a buffer held: stored values decided, counters merged and sent in numbered
calls, and what a refused or failed call means for the kicks of its flush.

Why on its own: this is where a kick's fate is settled.  A flush first decides, in Redis, under
which part each stored axis' value counts (choices.lua, kick.lua's rule, in kick order); then
merges its kicks' counters (staste.kicks) and sends them, one value of the first axis at a
time, as soon as they are complete, in calls cut by their work (staste/buffer/calls.py), through
the buffer's chain of numbered calls (staste/buffer/chain.py).  From each call's outcome:

* confirmed: once every call of a flush is, its kicks are written;
* refused before writing, or Redis unreachable: the calls stay queued, sent again first by the
  next flush (nothing lost, nothing counted twice); a flush whose stored values could not even
  be decided is parked as it is, written first by the next flush;
* NOSCRIPT, or a writer key Redis lost: sent again at once (at most ``RESENDS`` times a flush);
* a counter that would overflow: the flush's calls already written are taken back, and its
  kicks written one by one through kick.lua, which refuses exactly those that overflow
  (counted as dropped);
* any other error (the call may have written part of its work), or a call in doubt whose
  writer key is gone: the flush's kicks are dropped, counted and logged, rather than risk
  counting them twice;
* an exception that is no answer of Redis (a call that cannot be encoded, a bug): the flush's
  kicks are quarantined, counted in ``stats()["quarantined"]``, logged with the traceback and
  never sent again, so that the flushes after it are written as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from staste import conf, kicks, scripts, timescale
from staste.buffer import calls
from staste.buffer.chain import Call, Chain, Failure, Outcome
from staste.buffer.status import Status
from staste.cohorts import layout, marks
from staste.exceptions import RedisUnavailable
from staste.kicks import Kick

logger = logging.getLogger("staste")

#: What one argument of a queued call takes, about (a str of a field and its amount, its slot).
CALL_ARG_BYTES = 96
#: Most times a flush sends its queue again at once (after NOSCRIPT, a lost writer key, an
#: overflow); then it waits for the next flush.
RESENDS = 4


def retryable(exc: BaseException) -> bool:
    """Whether a failure leaves the kicks to be written later (nothing was written)."""
    return isinstance(exc, RedisUnavailable) or scripts.refused_before_writing(exc)


@dataclass(eq=False)
class Flush:
    """The kicks of one flush, and its calls confirmed so far (taken back if one overflows)."""

    kicks: list[Kick]
    written: list[Call] = field(default_factory=list)
    refused: int = 0  # kicks refused: they would overflow a counter
    unconfirmed: int = 0  # its calls queued and not confirmed yet
    whole: bool = False  # its last call is queued: written once none is unconfirmed


@dataclass(eq=False)
class Part:
    """What one call writes of its flush (a chain Call's ``work``)."""

    flush: Flush
    chunks: list[kicks.Chunk] = field(default_factory=list)  # counters: what they bump
    batch: Sequence[Kick] = ()  # kick.lua: its kicks (to name those refused)
    last: bool = False  # the flush's last call


class Flushes:
    """The flushes of one buffer: the chain of its calls, and the kicks they carry."""

    def __init__(self, lock: threading.Lock, status: Status) -> None:
        self._lock = lock  # the buffer's
        self._status = status
        self.chain = Chain(lock)
        self.queued = 0  # kicks of the flush whose calls are queued
        self.in_flight = 0  # kicks taken from the buffer, not queued yet (being decided)
        #: Kicks taken from the buffer whose stored values Redis could not decide (it was away):
        #: written first by the next flush, as they are (never merged back into the buffer,
        #: which would cost the kicking threads a wait under the lock).
        self.parked: list[Kick] = []
        #: What the kicks taken from the buffer (in flight, queued or parked) and the calls
        #: queued take, estimated (held.ENTRY_BYTES a kick, CALL_ARG_BYTES an argument).
        self.bytes = 0
        self.started = time.monotonic()  # when the last flush began, by any thread
        self._written = 0  # kicks written by the send under way

    @property
    def pending(self) -> int:
        return self.queued + self.in_flight + len(self.parked)

    def unpark(self) -> list[Kick]:
        """The parked kicks, taken to be written (in flight again)."""
        with self._lock:
            batch, self.parked = self.parked, []
            self.in_flight = len(batch)
        return batch

    def resend(self) -> bool:
        """Send what earlier flushes left queued; whether it is all written now."""
        return self._send(())

    @property
    def written(self) -> int:
        """Kicks written by the last :meth:`resend` or :meth:`write`."""
        return self._written

    def write(self, batch: list[Kick]) -> None:
        """Write ``batch``, kicks taken from the buffer (``in_flight``, their bytes counted);
        parked when their stored values could not be decided (Redis is away)."""
        flush = Flush(batch)
        try:
            for metrica in {id(kick.metrica): kick.metrica for kick in batch}.values():
                metrica.record_signature()  # once per process and metrica
            depths = calls.decide(batch, calls.DECISIONS_PER_CALL, self._status.reachable)
        except Exception as exc:
            retry = retryable(exc)
            with self._lock:
                self.in_flight = 0
                if retry:
                    self.parked = batch
                else:
                    self.bytes = 0
            self._written = 0
            if not retry and not isinstance(exc, redis.RedisError):
                self._quarantine(exc, flush)
                return
            if not retry:
                self._status.drop(len(batch))
                logger.error("staste: dropped %d buffered kicks that Redis refused", len(batch), exc_info=exc)
            self._status.failed(exc, dropped=0 if retry else len(batch))
            return
        with self._lock:
            self.queued, self.in_flight = len(batch), 0
        self._send(self._calls(flush, depths), flush)

    def _calls(self, flush: Flush, depths: dict[kicks.Chain, int]) -> Iterator[Call]:
        """The calls writing a flush, each made as its counters are added up (so that the
        first are sent while the next are added up); the last one marked."""
        decided = kicks.all_decided(flush.kicks, depths)
        made: Call | None = None
        for chunks in calls.counters(kicks.merged_counters(decided), calls.counters_budget()):
            if made is not None:
                yield self._queued(made)
            made = counters_call(flush, chunks)
        # Then the ids of kicks with unique=, in the HyperLogLogs of the same (decided)
        # combinations; PFADD is idempotent, so a call sent again never counts an id twice.
        for items in calls.ids(kicks.merged_uniques(decided), calls.UNIQUES_BUDGET):
            if made is not None:
                yield self._queued(made)
            made = Call("ids", *kicks.ids_keys_and_args(items), base=items[0][0], work=Part(flush))
        for call in users_calls(flush, decided):  # kick(user=...): staste.cohorts
            if made is not None:
                yield self._queued(made)
            made = call
        if made is not None:
            made.work.last = True
            yield self._queued(made)

    def _queued(self, call: Call) -> Call:
        with self._lock:
            self.bytes += CALL_ARG_BYTES * (len(call.keys) + len(call.args))
            call.work.flush.unconfirmed += 1
            call.work.flush.whole = call.work.flush.whole or call.work.last
        return call

    def _send(self, new: Iterable[Call], flush: Flush | None = None) -> bool:
        """Send the queued calls, then ``new`` ones (of ``flush``); whether nothing is left
        queued.  What could not be written stays queued, or was dropped, or quarantined (see
        the module's docstring)."""
        self._written = 0
        if not new and not self.chain.queue:
            return True
        try:
            return self._send_all(new)
        except Exception as exc:  # no Redis answer explains it: the calls themselves fail
            self._quarantine(exc, flush)
            return True

    def _send_all(self, new: Iterable[Call]) -> bool:
        failure: Failure | None = None
        for _ in range(RESENDS):
            failure = self.chain.send(new, self._confirmed)
            new = ()
            if failure is None:
                self._status.succeeded(self._written)
                return True
            if not self._again(failure):
                return False
        assert failure is not None
        self._status.failed(failure.error)
        return False

    def _quarantine(self, exc: Exception, flush: Flush | None) -> None:
        """Set aside the flush whose calls raised ``exc`` (and any flush queued with it), so
        that the kicks after it are written: sent again, its calls would raise again, and
        every later flush waits behind them.  Its kicks are counted in ``stats()["quarantined"]``
        and logged with the traceback; some of their counters may be in Redis already (its
        first calls may have run), which is why they are never sent again."""
        found = {id(call.work.flush): call.work.flush for call in self.chain.queue if call.work is not None}
        if flush is not None:
            found[id(flush)] = flush
        self.chain.replace([])  # (under the keys of calls dropped, the chain opens again)
        with self._lock:
            self.queued = self.in_flight = self.bytes = 0
        batch = [kick for each in found.values() for kick in each.kicks]
        count = sum(len(each.kicks) - each.refused for each in found.values())
        self._status.quarantine(count, exc)
        logger.error(
            "staste: quarantined %d buffered kicks of %s: writing them raised %s (some of their counters may "
            "have been written); later kicks are written as usual",
            count,
            ", ".join(sorted({kick.metrica.name for kick in batch})) or "no metrica",
            type(exc).__name__,
            exc_info=exc,
        )

    def _again(self, failure: Failure) -> bool:
        """Act on the first call a pass could not write: whether to send the queue again now."""
        call, outcome = failure.call, failure.outcome
        if outcome in (Outcome.NO_SCRIPT, Outcome.KEY_LOST):
            return True  # (the chain made the call ready: its script's source, its chain opened again)
        if call.work is not None and outcome is Outcome.OVERFLOW:
            self._overflowed(call.work.flush)
            return True
        if call.work is not None and outcome in (Outcome.FAILED, Outcome.LOST_IN_DOUBT):
            self._give_up(call, outcome, failure.error)
            return False
        # REFUSED, UNREACHABLE (or BEHIND: its predecessor failed first; or an opening call's
        # error, which wrote nothing): kept for the next flush
        self._status.failed(failure.error)
        return False

    def _confirmed(self, call: Call, outcome: Outcome, reply: Any) -> None:
        """Redis ran ``call`` (or had run it): the flush's kicks are written when it was its
        last call unconfirmed (calls of several writer keys may be confirmed out of order)."""
        self._status.reachable()
        part: Part = call.work
        if outcome is Outcome.KICKS_REFUSED:
            self._refused(part, reply)
        elif outcome is Outcome.ALREADY_WRITTEN:
            logger.info("staste: buffered call %d had already been written; not written again", call.number)
        flush = part.flush
        with self._lock:
            flush.written.append(call)
            flush.unconfirmed -= 1
            if flush.unconfirmed or not flush.whole:
                return
            self.queued = self.bytes = 0
        self._written += len(flush.kicks) - flush.refused

    def _refused(self, part: Part, reply: redis.ResponseError) -> None:
        refused = [part.batch[int(number) - 1] for number in str(reply).split()[1:]]
        logger.error(
            "staste: dropped %d buffered kicks of %s: they would push a counter past Redis' limit (2**63 - 1)",
            len(refused),
            ", ".join(sorted({kick.metrica.name for kick in refused})),
        )
        part.flush.refused += len(refused)
        self._status.drop(len(refused))

    def _overflowed(self, flush: Flush) -> None:
        """A counter of the flush would overflow (counters.lua took its call back): take back
        the flush's calls already written, then write its kicks one by one through kick.lua."""
        logger.warning(
            "staste: a buffered flush would push a counter past Redis' limit; writing its %d kicks one by one",
            len(flush.kicks),
        )
        back = [counters_call(flush, done.work.chunks, back=True) for done in flush.written if done.work.chunks]
        one_by_one = [
            Call("kick", *kicks.batch_keys_and_args(batch), base=batch[0].metrica.base, work=Part(flush, batch=batch))
            for batch in calls.kick_by_kick(flush.kicks, calls.counters_budget())
        ]
        one_by_one += users_calls(flush, flush.kicks)  # (kick.lua writes no marks; setting a bit again is harmless)
        flush.written = []
        with self._lock:
            flush.unconfirmed, flush.whole = len(back) + len(one_by_one), True
        self.chain.replace(back + one_by_one)

    def _give_up(self, call: Call, outcome: Outcome, exc: BaseException) -> None:
        """Redis answered what may follow a partial write, or a call in doubt cannot be settled:
        drop the flush's kicks."""
        flush = call.work.flush
        dropped = len(flush.kicks) - flush.refused
        self.chain.replace([])  # (the queue holds one flush: the next starts once it is empty)
        with self._lock:
            self.queued = self.bytes = 0
        self._status.drop(dropped)
        if outcome is Outcome.LOST_IN_DOUBT:
            logger.error(
                "staste: dropped %d buffered kicks: a call whose reply was lost found its writer key gone "
                "(a failover, a restore?), so whether it had been written cannot be known",
                dropped,
            )
        else:
            logger.error("staste: dropped %d buffered kicks that Redis refused", dropped, exc_info=exc)
        self._status.failed(exc, dropped=dropped)


def users_calls(flush: Flush, batch: Sequence[Kick]) -> list[Call]:
    """The users.lua calls setting the bits of the kicks with ``user=`` (staste.cohorts.marks),
    numbered under the users base's writer key (one hash slot for every users key)."""
    found = marks.merged(mark for kick in batch for mark in kick.users)
    if not found:
        return []
    base = layout.users_base(conf.get("STASTE_METRICS_PREFIX"))
    now = timescale.now()
    return [
        Call("users", *marks.keys_and_args(part, now), base=base, work=Part(flush))
        for part in marks.calls(found, marks.CALL_BUDGET)
    ]


def counters_call(flush: Flush, chunks: list[kicks.Chunk], back: bool = False) -> Call:
    """The counters.lua call bumping (``back``: taking back) ``chunks`` of ``flush``."""
    script_keys, args = kicks.counters_keys_and_args(chunks, back=back)
    return Call("counters", script_keys, args, base=chunks[0][0].base, work=Part(flush, chunks=chunks))
