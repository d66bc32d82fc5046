"""The numbered calls of a buffer: each reaches Redis once, never before the call it follows,
and every reply says what became of it (an :class:`Outcome`).

Why: a flush sends its calls ahead of their replies (staste/pipe.py), and a call may fail in
many ways (refused, its reply lost, its script forgotten...).  Whatever happens, a kick must be
counted once, or reported dropped.  The header's format and Redis' rules are
staste.numbering's; this is the writer's side of the protocol.

A buffer is one *writer* (a random id); each call it makes gets the next *number*, and, under
its writer key (one per metrica, since a script reaches one hash slot), names the call before
it there (its *predecessor*).  Calls not confirmed yet stay queued, in order, and are sent again
under the same numbers until Redis confirms them (it ran them now, or had).  Case by case:

* **The first call under a key** (for this writer, or since the key was lost or calls under it
  were dropped) is preceded by an *opening call*: a no-op that names no predecessor, sent alone,
  and which may run twice without harm.  Redis stores its number; every other call names a
  predecessor, so a key found missing is a key lost, never one not made yet.
* **Calls in flight behind a refused one** (OOM, READONLY, BUSY, a cluster down): the refused
  call wrote nothing, so each call after it under its key finds the key short of its
  predecessor, a missing key included, and answers a gap (BEHIND): nothing written.  The queue
  is kept and sent again, in order, by the next flush.  (A missing key used to let the second
  call run when the first call under the key was refused; the first, sent again, then answered
  "already written", and its counters were lost.)
* **A reply lost** (a timeout, a reset connection): every call sent and not answered is *in
  doubt* (UNREACHABLE): it may have run.  They stay first in the queue and are sent again under
  the same numbers; those that ran answer -1 (ALREADY_WRITTEN).
* **NOSCRIPT**: the call did not run; its script's source is sent again (EVAL) at once.
* **Overflow take-back**: counters.lua took itself back and put the key back as it was
  (OVERFLOW); the calls behind it answer a gap.  The flush then takes back its calls already
  written and writes its kicks one by one (staste/buffer/flushes.py): the queue is replaced, and
  under the keys of the calls dropped the chain opens again.
* **A key Redis lost** (its TTL ran out while the writer was idle, a failover to a replica that
  was behind, a restore, an eviction, an operator): a call answers a gap though its predecessor
  was confirmed, and it was not in doubt (KEY_LOST).  Nothing queued under that key can have run
  (each needs the one before it), so the chain under the key starts again: the calls are
  numbered anew, behind a new opening call, and sent at once.
* **A key lost while a call is in doubt**: the gap no longer tells whether that call ran (its
  counters may be in Redis, its number is not), so it is not sent again (LOST_IN_DOUBT): its
  flush's kicks are dropped, counted and logged, rather than risk counting them twice.
* **A failover to a replica** that had every call (a cluster's promoted replica, a Sentinel
  failover): the key came with the counters, in the same replicated transaction, so a call
  either ran there with its number or not at all: the rules above hold as they are.
* **Waiting for replicas** (``STASTE_WAIT_REPLICAS``): a call Redis ran is only *ran*, kept
  queued, until WAIT says enough replicas hold it; then it is confirmed.  When they do not
  (UNREPLICATED), it is sent again with the next flush: the same primary answers -1 (then WAIT
  again), and a replica promoted meanwhile, whose key holds the last call it received, runs it
  then.  So a failover to a replica that was behind loses nothing the writer counted.

What the protocol cannot see: the key set back by hand to the predecessor of a call in doubt
that had run, its counters kept.  Redis' replication never does that (the key and the counters
of a call replicate together).

``tests/test_flush_faults.py`` checks all of this against a model, with faults Redis really
answers.
"""

from __future__ import annotations

import enum
import itertools
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from staste import conf, keys, numbering, scripts
from staste.exceptions import RedisUnavailable
from staste.pipe import Pipe

#: Most calls a flush has sent without having their replies: enough that Redis always has the
#: next call at hand while Python adds up the one after (staste.pipe).
WINDOW = 16


class Outcome(enum.Enum):
    """What became of one call, from its reply."""

    #: It ran now.
    WRITTEN = enum.auto()
    #: It had run already: a copy sent again after its reply was lost (-1).
    ALREADY_WRITTEN = enum.auto()
    #: kick.lua ran it, refusing the kicks that would overflow a counter (STASTE_OVERFLOW n...).
    KICKS_REFUSED = enum.auto()
    #: It wrote nothing: the call it follows has not run (it goes again after that one).
    BEHIND = enum.auto()
    #: It wrote nothing: Redis lost the writer's key, though the call it follows ran.
    KEY_LOST = enum.auto()
    #: It wrote nothing now, but it was in doubt and the key that would tell is gone.
    LOST_IN_DOUBT = enum.auto()
    #: It did not run: Redis lost the script (SCRIPT FLUSH, a restart).
    NO_SCRIPT = enum.auto()
    #: Redis refused it before it wrote anything (OOM, READONLY, BUSY, a cluster down).
    REFUSED = enum.auto()
    #: counters.lua took it back: a counter would pass Redis' 64-bit limit.
    OVERFLOW = enum.auto()
    #: It ran, but fewer replicas than STASTE_WAIT_REPLICAS confirmed it: sent again later.
    UNREPLICATED = enum.auto()
    #: Another error: the call may have written part of its work.
    FAILED = enum.auto()
    #: No reply: it never left, or it and the calls sent after it are in doubt.
    UNREACHABLE = enum.auto()

    @property
    def confirmed(self) -> bool:
        """Whether Redis ran the call (now or before): it is done."""
        return self in _CONFIRMED


_CONFIRMED = frozenset({Outcome.WRITTEN, Outcome.ALREADY_WRITTEN, Outcome.KICKS_REFUSED})


@dataclass(eq=False)
class Call:
    """One script call, kept until Redis confirmed it; numbered when first sent."""

    script: str  # "counters", "ids" or "kick"
    keys: list[str]  # KEYS of the unnumbered call (the writer's key is added when it is sent)
    args: list[Any]  # ARGV of the unnumbered call
    base: str  # the metrica's base: the call's writer key is under it
    work: Any = None  # what the call writes, for its flush (None: an opening call)
    number: int | None = None
    prev: int | None = None  # the call it follows under its key (None: an opening call)
    doubt: bool = False  # sent, and its reply never came: it may have run (until confirmed)
    #: The first outcome and reply that said it ran, kept while replicas are awaited (a copy
    #: sent again answers -1, which would hide a KICKS_REFUSED reply).
    ran: tuple[Outcome, Any] | None = None


def opening(base: str) -> Call:
    """The no-op call that opens a chain under the writer key of ``base`` (counters.lua with
    no counters: it only stores its number)."""
    return Call("counters", [], [numbering.UNNUMBERED, "0|0"], base)


@dataclass
class Failure:
    """Why a pass over the queue stopped: the first call not confirmed, and its outcome."""

    call: Call
    outcome: Outcome
    error: BaseException


class Chain:
    """One buffer's writer: the numbering of its calls and the queue of those not confirmed."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock  # the buffer's: guards queue
        self.writer_id = uuid.uuid4().hex
        self._made = 0
        # Per writer key: the number of the last call numbered (what the next one follows; None
        # or missing: the chain is not open), and the highest number Redis confirmed.
        self._tails: dict[str, int | None] = {}
        self._confirmed: dict[str, int] = {}
        #: The calls not confirmed yet, in order; the first ones may be in doubt.
        self.queue: list[Call] = []

    def writer_key(self, call: Call) -> str:
        return keys.writer_key(call.base, self.writer_id)

    def send(self, new: Iterable[Call], confirmed: Callable[[Call, Outcome, Any], None]) -> Failure | None:
        """Send the queued calls, then ``new`` ones (queued as they come), in order, up to
        WINDOW in flight; ``confirmed(call, outcome, reply)`` is told of each call Redis ran
        (opening calls aside).

        Returns the first failure, or None when every call was confirmed.  Sending stops at a
        failure (the replies of the calls in flight are still read: which ran must be known);
        every call not confirmed stays queued, ready to be sent again: after NO_SCRIPT with its
        script's source, after KEY_LOST in a chain opened again.
        """
        pipe = Pipe()
        flying: deque[Call] = deque()
        failure: Failure | None = None
        lost_keys: set[str] = set()  # opened again once every reply is read
        replicas = int(conf.get("STASTE_WAIT_REPLICAS"))
        awaiting: list[Call] = []  # ran, confirmed once replicas hold them (STASTE_WAIT_REPLICAS)

        def read_reply() -> None:
            nonlocal failure
            call = flying.popleft()
            try:
                reply = pipe.reply()
            except RedisUnavailable as exc:  # this call and those behind it may have run
                for lost in (call, *flying):
                    lost.doubt = lost.work is not None  # (an opening call may run twice)
                flying.clear()
                failure = failure or Failure(call, Outcome.UNREACHABLE, exc)
                return
            outcome = self._outcome(call, reply)
            if outcome.confirmed:
                self._ran(call, outcome, reply)
                if replicas:
                    awaiting.append(call)
                else:
                    self._confirm(call, confirmed)
                return
            if outcome is Outcome.KEY_LOST:
                lost_keys.add(self.writer_key(call))
            # (after NO_SCRIPT the pipe sends the script's source with its next call)
            failure = failure or Failure(call, outcome, reply)

        try:
            with self._lock:
                queued = list(self.queue)
            for call in itertools.chain(queued, self._queued(new)):
                if failure is not None:
                    continue  # (new calls are still made and queued: kept for the next flush)
                for each in self._numbered(call):
                    try:
                        pipe.send(each.script, *numbering.stamped(each.keys, each.args, self._numbers(each)))
                    except RedisUnavailable as exc:  # it never left; those in flight may have run
                        for lost in flying:
                            lost.doubt = lost.work is not None
                        flying.clear()
                        failure = Failure(each, Outcome.UNREACHABLE, exc)
                        break
                    flying.append(each)
                    # An opening call goes alone: the calls after it name it.
                    while flying and (len(flying) > WINDOW or each.prev is None):
                        read_reply()
                    if failure is not None:
                        break
            while flying:
                read_reply()
            if awaiting:  # (those replicated are confirmed, whatever failed after them)
                unreplicated = self._replicated(pipe, awaiting, replicas, confirmed)
                failure = failure or unreplicated
        finally:
            pipe.close()
        for writer_key in lost_keys:
            self._reopen(writer_key)
        return failure

    def _queued(self, new: Iterable[Call]) -> Iterator[Call]:
        for call in new:
            with self._lock:
                self.queue.append(call)
            yield call

    def _numbered(self, call: Call) -> Iterator[Call]:
        """``call`` numbered (when first sent; its numbers never change after), after the call
        that opens its chain when the chain under its key is not open."""
        if call.number is not None:
            yield call
            return
        writer_key = self.writer_key(call)
        if self._tails.get(writer_key) is None:
            opener = opening(call.base)
            with self._lock:
                self.queue.insert(self.queue.index(call), opener)
            self._tails[writer_key] = opener.number = self._next()
            yield opener
            if self._confirmed.get(writer_key, 0) < opener.number:  # it did not run: the call waits
                return
        call.number, call.prev = self._next(), self._tails[writer_key]
        self._tails[writer_key] = call.number
        yield call

    def _next(self) -> int:
        self._made += 1
        return self._made

    def _numbers(self, call: Call) -> numbering.Numbers:
        assert call.number is not None
        return numbering.Numbers(self.writer_key(call), call.number, numbering.BUFFER_TTL, call.prev)

    def _outcome(self, call: Call, reply: Any) -> Outcome:
        if not isinstance(reply, redis.ResponseError):
            return Outcome.ALREADY_WRITTEN if reply == -1 else Outcome.WRITTEN
        if isinstance(reply, redis.exceptions.NoScriptError):
            return Outcome.NO_SCRIPT
        text = str(reply)
        if text.startswith(numbering.GAP):
            assert call.prev is not None  # (a call that names no predecessor never meets a gap)
            if self._confirmed.get(self.writer_key(call), 0) < call.prev:
                return Outcome.BEHIND
            return Outcome.LOST_IN_DOUBT if call.doubt else Outcome.KEY_LOST
        if text.startswith(scripts.OVERFLOW):
            return Outcome.KICKS_REFUSED if call.script == "kick" else Outcome.OVERFLOW
        if scripts.refused_before_writing(reply):
            return Outcome.REFUSED
        return Outcome.FAILED

    def _ran(self, call: Call, outcome: Outcome, reply: Any) -> None:
        """Redis ran ``call`` (now, or before: -1): the calls after it may follow it."""
        assert call.number is not None
        writer_key = self.writer_key(call)
        self._confirmed[writer_key] = max(self._confirmed.get(writer_key, 0), call.number)
        call.doubt = False
        if call.ran is None:
            call.ran = (outcome, reply)

    def _confirm(self, call: Call, confirmed: Callable[[Call, Outcome, Any], None]) -> None:
        """``call`` is done: out of the queue, its flush told (opening calls aside)."""
        with self._lock:
            self.queue.remove(call)
        if call.work is not None:
            assert call.ran is not None
            confirmed(call, *call.ran)

    def _replicated(
        self, pipe: Pipe, awaiting: list[Call], replicas: int, confirmed: Callable[[Call, Outcome, Any], None]
    ) -> Failure | None:
        """Confirm the calls that ran once ``replicas`` replicas hold them; else they stay queued."""
        writer_keys = list(dict.fromkeys(self.writer_key(call) for call in awaiting))
        problem = pipe.replicated(writer_keys, replicas, float(conf.get("STASTE_WAIT_TIMEOUT")))
        if problem is not None:
            return Failure(awaiting[0], Outcome.UNREPLICATED, problem)
        for call in awaiting:
            self._confirm(call, confirmed)
        return None

    def _reopen(self, writer_key: str) -> None:
        """Start the chain under ``writer_key`` again: its queued calls, none of which ran,
        are numbered anew when sent, behind a new opening call."""
        self._tails[writer_key] = None
        with self._lock:
            for queued in self.queue:
                if queued.number is not None and self.writer_key(queued) == writer_key:
                    queued.number = queued.prev = queued.ran = None
                    queued.doubt = False
            self.queue = [queued for queued in self.queue if queued.work is not None or queued.number is not None]

    def replace(self, calls: list[Call]) -> list[Call]:
        """Queue ``calls`` instead of what is queued; returns the calls dropped.  Under the key
        of a numbered call dropped the chain opens again."""
        with self._lock:
            dropped, self.queue = self.queue, list(calls)
        for call in dropped:
            if call.number is not None:
                self._tails[self.writer_key(call)] = None
        return dropped
