"""The buffered writer: kicks kept in memory, merged, and written in few short script calls.

Why: a synchronous kick pays a Redis round trip on the request path; a buffered kick costs a
dictionary update.  Kicks that land on the same counters (same metrica, time buckets, families
and axis values: ``Kick.merge_key()``) are merged by adding their increments, so a busy view
adds to one entry a minute however many requests it serves.  A daemon thread writes the buffer
``STASTE_FLUSH_INTERVAL`` seconds after its first kick came in (at once when it is half full),
and the process writes it once more when it exits.

A flush merges again, at the level of the counters: every combination of every kick held is
expanded here, in Python, and each distinct counter (bucket x field x family) is incremented
once, by the sum of what its kicks add to it (counters.lua).  Rollups such as ``page=*,
method=GET`` are shared by thousands of kicks, so Redis does a fraction of the work of one
kick.lua call per kick.  Under which part a stored axis' value counts (``max_choices``) is
decided first, in Redis and atomically, by choices.lua, with kick.lua's rule and in kick order.
The counters are added up one value of the first axis at a time, and sent as soon as they are
complete, several calls ahead of their replies (staste.pipe): Redis bumps the counters of one
call while Python adds up the next.

What a flush promises:

* nothing lost while Redis takes writes: a kick that finds the buffer full
  (``STASTE_BUFFER_MAX_KEYS`` distinct kicks) waits for room — for the flush under way, then
  it writes the buffer itself — as long as Redis takes the flush's calls: at most what one
  full buffer takes to write.  That is the trade-off: a thread that kicks faster than Redis
  takes the counters is slowed down to Redis' pace rather than losing kicks.  Only while Redis
  is unreachable or refuses writes (the last flush failed), or when no call went through for
  ``STASTE_BUFFER_MAX_WAIT`` seconds (a stalled Redis), is a new kick dropped, counted
  (``stats()["dropped"]``) and logged;
* no long call: Redis serves nobody else while a script runs, so a flush is cut into calls by
  the work they give Redis (``CALL_BUDGET`` HINCRBYs), not by a number of kicks: a call takes
  a few milliseconds, the backlog of a long outage included.  On a Redis Cluster a call holds
  one metrica (a script reaches one hash slot);
* when Redis cannot be reached, what was not written is kept and the next flush retries it:
  nothing is lost and nothing counted twice.  The calls of a flush are numbered, and each
  names the call before it under its writer key (``<base>w:<writer>``, which holds the number
  of the writer's last call that ran): the script skips a call that already ran (its reply
  was lost, a timeout or a connection reset after Redis ran it, and it was sent again under
  its number), and refuses one whose predecessor has not run, so the calls sent behind a
  refused one write nothing and go again, in order.  One warning is logged when the outage
  starts and one line when it ends;
* a counter a flush would push past Redis' 64-bit limit: the call is taken back, the calls of
  the flush already written are taken back too, and its kicks are written one by one through
  kick.lua, which refuses exactly the kicks that overflow (counted as dropped);
* a reply Redis gives that says the script failed otherwise drops the flush's kicks with an
  error log rather than risk counting them twice.

A flush is written call by call, so a reader may see a flush half written for the few
milliseconds between its calls; each call is atomic.  Each process has its own buffer: after
``fork()`` the child starts empty (what the parent held is the parent's to write) with its own
thread, so gunicorn or multiprocessing workers each write their own counts and Redis adds them
up.  A process killed without exiting (SIGKILL, ``os._exit``) loses at most one interval of
kicks.

>>> visits.kick(page="home", buffered=True)     # doctest: +SKIP
>>> staste.buffer.flush()                        # doctest: +SKIP
1
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.cluster

from staste import conf, connection, keys, kicks, scripts, shutdown
from staste.exceptions import RedisUnavailable
from staste.kicks import Kick
from staste.pipe import Pipe

logger = logging.getLogger("staste")

#: What one script call may cost Redis, in HINCRBYs (one takes about a microsecond inside a
#: script): about a millisecond, ten times under the 10 ms a shared Redis may pause for, so
#: that a loaded machine (where a call's wall time stretches) keeps the bound too.
CALL_BUDGET = 1000
#: Most calls a flush has sent without having their replies: enough that Redis always has the
#: next call at hand while Python adds up the one after (staste.pipe).
WINDOW = 16
#: Most times a flush sends its queue again at once (after NOSCRIPT, a lost writer number, an
#: overflow); then it waits for the next flush.
RESENDS = 4
#: Most stored-choices decisions (members) one choices.lua call makes (each costs a few calls).
DECISIONS_PER_CALL = 300
#: What one uniques.lua call may cost Redis, in ids PFADDed (a key costs ``KEY_COST`` more:
#: EXISTS, PFADD, EXPIRE).  Adding an id to a HyperLogLog costs about as much as a HINCRBY,
#: a sparse one turning dense (past ~3 KB) about 100 µs once: see docs/uniques.md.
UNIQUES_BUDGET = 2000
KEY_COST = 3
#: Most distinct ids a buffer holds between flushes (kick(unique=...); about 100 bytes each in
#: Python): past half of it a flush starts at once, and past it (Redis unreachable for long)
#: new ids are not held (their kicks' counters still are), counted in stats()["dropped_ids"].
MAX_HELD_IDS = 1_000_000

_buffers: weakref.WeakSet[Buffer] = weakref.WeakSet()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RedisUnavailable) or scripts.refused_before_writing(exc)


def _cluster() -> bool:
    return isinstance(connection.get_redis(), redis.cluster.RedisCluster)


class Held:
    """The kicks a buffer holds, each under its key with the sums merged into it so far."""

    __slots__ = ("entries", "ids", "ids_dropped", "since", "uniques")

    def __init__(self) -> None:
        self.since: float | None = None  # when the first kick was held (monotonic)
        # key -> [kick, sum, sum...]: the kick's counters and the increments added up for them
        self.entries: dict[Hashable, list[Any]] = {}
        # key -> the unique ids of the kicks merged under it (kick(unique=...)), when some had one
        self.uniques: dict[Hashable, set[str]] = {}
        self.ids = 0  # ids held (their sets' sizes added up)
        self.ids_dropped = 0  # ids not held: MAX_HELD_IDS reached

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, key: Hashable, increments: Sequence[int], unique: Sequence[str] = ()) -> bool:
        """Add ``increments`` (and ``unique`` ids) to the kick held under ``key``; False
        (nothing done) when none is."""
        held = self.entries.get(key)
        if held is None:
            return False
        for index, increment in enumerate(increments, 1):
            held[index] += increment
        if unique:
            self._hold_ids(key, unique)
        return True

    def hold(self, key: Hashable, kick: Kick) -> None:
        """Hold ``kick`` under ``key`` (not held yet)."""
        if self.since is None:
            self.since = time.monotonic()
        self.entries[key] = [kick, *kick.increments]
        if kick.unique:
            self._hold_ids(key, kick.unique)

    def _hold_ids(self, key: Hashable, unique: Sequence[str]) -> None:
        if self.ids >= MAX_HELD_IDS:
            if not self.ids_dropped:
                logger.warning(
                    "staste: the kick buffer holds MAX_HELD_IDS (%d) unique ids; new ids are dropped "
                    "until it is written (their kicks are still counted)",
                    MAX_HELD_IDS,
                )
            self.ids_dropped += len(unique)
            return
        ids = self.uniques.setdefault(key, set())
        before = len(ids)
        ids.update(unique)
        self.ids += len(ids) - before

    def kicks(self) -> list[Kick]:
        """Each held kick with its sums as increments (and the union of its ids)."""
        uniques = self.uniques
        found = []
        for key, entry in self.entries.items():
            kick, sums, ids = entry[0], tuple(entry[1:]), uniques.get(key)
            if ids is None and not kick.unique and sums == kick.increments:
                found.append(kick)  # held once, without ids: as it is
            else:
                found.append(kick._replace(increments=sums, unique=tuple(ids or ())))
        return found


@dataclass(eq=False)
class _Flush:
    """The kicks of one flush, and its calls written so far (taken back if one overflows)."""

    kicks: list[Kick]
    written: list[_Call] = field(default_factory=list)
    refused: int = 0
    unconfirmed: int = 0  # its calls queued and not confirmed yet
    whole: bool = False  # its last call is queued: written once none is unconfirmed


@dataclass(eq=False)
class _Call:
    """One script call of a flush, kept until Redis confirmed it.

    Numbered when first sent (``number``, after the writer's call ``prev``: None when that
    is not known, and the call is then sent alone), and sent again under the same numbers
    until confirmed: see :meth:`Buffer._number`.
    """

    script: str  # "counters", "uniques" or "kick"
    keys: list[str]  # the writer's key last
    args: list[Any]
    head: int  # the index in args of the header the numbers are added to
    flush: _Flush
    chunks: list[kicks.Chunk]  # counters calls: what they bump (to take it back)
    batch: list[Kick]  # kick calls: their kicks (to name those refused)
    last: bool = False  # the flush's last call: its kicks are written once it is
    header: str = ""  # args[head] without the numbers
    number: int | None = None
    prev: int | None = None

    def __post_init__(self) -> None:
        self.header = self.args[self.head]


def _calls_of(groups: Iterable[kicks.Group], budget: int) -> Iterator[list[kicks.Chunk]]:
    """The counters of ``groups`` cut into calls of at most ``budget`` HINCRBYs (one metrica
    a call on a cluster), each call as soon as it is full."""
    current: list[kicks.Chunk] = []
    cost = 0
    base = None
    cluster = _cluster()
    for group in groups:
        per_field = len(group.hashes)
        items = list(group.sums.items())
        start = 0
        if cluster and current and group.base != base:
            yield current
            current, cost = [], 0
        base = group.base
        while start < len(items):
            if cost and cost + per_field > budget:
                yield current
                current, cost = [], 0
            room = max(1, (budget - cost) // per_field)
            piece = items[start : start + room]
            current.append((group, piece, group.every and start == 0))
            cost += len(piece) * per_field
            start += len(piece)
    if current:
        yield current


def _uniques_slices(items: list[kicks.Uniques], budget: int) -> list[list[kicks.Uniques]]:
    """The ids of ``items`` cut into calls of at most ``budget`` (ids, plus ``KEY_COST`` per
    key), one metrica a call on a cluster; a HyperLogLog with more ids is split over calls."""
    calls: list[list[kicks.Uniques]] = []
    current: list[kicks.Uniques] = []
    cost = 0
    cluster = _cluster()
    if cluster:
        items = sorted(items, key=lambda item: item[0])
    for base, key, expiry, ids in items:
        if cluster and current and base != current[-1][0]:
            calls.append(current)
            current, cost = [], 0
        start = 0
        while start < len(ids):
            if cost + KEY_COST + 1 > budget and current:
                calls.append(current)
                current, cost = [], 0
            room = max(1, budget - cost - KEY_COST)
            piece = ids[start : start + room]
            current.append((base, key, expiry, piece))
            cost += KEY_COST + len(piece)
            start += len(piece)
    if current:
        calls.append(current)
    return calls


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
        self._start_lock = threading.Lock()
        self._held = Held()
        # The calls of a flush not confirmed yet, in order; the first may be in doubt (sent,
        # no reply): it is sent again as it is, before anything newer.
        self._queue: list[_Call] = []
        self._queued = 0  # kicks of the flush in the queue
        # Who this writer is to Redis, and the number of its last call: unique per process.
        self._writer_id = uuid.uuid4().hex
        self._calls_made = 0
        # Per writer key: the number of the last call that ran or may have (what the next call
        # follows); missing: none yet (0); None: not known (calls were dropped).
        self._tails: dict[str, int | None] = {}
        self._progress = 0.0  # when a call last went through (monotonic)
        self._flush_started = time.monotonic()  # when the last flush began, by any thread
        self._in_flight = 0
        self._dropped = 0
        self._dropped_before_outage = 0
        self._waits = 0
        self._dropped_ids = 0
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

    def __repr__(self) -> str:
        return f"<Buffer pending={len(self._held)} dropped={self._dropped}>"

    # -- the hot path ------------------------------------------------------------------------

    def add(self, kick: Kick, key: Hashable = None) -> None:
        """Hold ``kick`` until the next flush, merged into the kick held under the same ``key``.

        ``key`` defaults to ``kick.merge_key()``; a caller that knows a cheaper key naming the
        same counters (see :meth:`bump`) passes it.  When the buffer is full, this waits for
        room (see the module's docstring).
        """
        if key is None:
            key = kick.merge_key()
        with self._lock:
            held = self._held
            if held.add(key, kick.increments, kick.unique):
                kept = True
                if held.ids * 2 >= MAX_HELD_IDS and not self._failing and not self._wake.is_set():
                    self._wake.set()  # half the ids it may hold: write now
            else:
                limit = conf.get("STASTE_BUFFER_MAX_KEYS")
                kept = len(held) < limit
                if kept:
                    held.hold(key, kick)
                    if len(held) * 2 >= limit and not self._failing and not self._wake.is_set():
                        self._wake.set()  # half full: write now rather than at the next tick
        if not kept:
            self._add_when_room(kick, key)
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
            return self._held.add(key, increments)

    def _add_when_room(self, kick: Kick, key: Hashable) -> None:
        """Backpressure: hold ``kick`` once a flush made room; drop it only when Redis fails.

        The kicking thread waits for the flush under way, then writes the buffer itself.  It
        waits as long as Redis takes the calls of the flush under way, and gives up (drops the
        kick) when no call went through for ``STASTE_BUFFER_MAX_WAIT`` seconds: so the longest
        wait is what writing one full buffer takes, and a stalled Redis costs a kick that wait.
        """
        patience = max(0.0, float(conf.get("STASTE_BUFFER_MAX_WAIT")))
        deadline = time.monotonic() + patience
        waited = False
        while True:
            with self._lock:
                held = self._held
                if held.add(key, kick.increments, kick.unique) or len(held) < conf.get("STASTE_BUFFER_MAX_KEYS"):
                    if key not in held.entries:
                        held.hold(key, kick)
                    self._waits += waited
                    return
                failing = self._failing
            deadline = max(deadline, self._progress + patience)  # a call went through: Redis takes writes
            remaining = deadline - time.monotonic()
            if failing or remaining <= 0:
                self._drop(timed_out=not failing)
                return
            waited = True
            if not self._flush_lock.acquire(timeout=min(remaining, 0.1)):
                continue
            try:
                with self._lock:
                    full = len(self._held) >= conf.get("STASTE_BUFFER_MAX_KEYS")
                if full:  # nobody else made room meanwhile
                    self._flush()
            finally:
                self._flush_lock.release()

    def _drop(self, timed_out: bool) -> None:
        with self._lock:
            self._dropped += 1
            report = not self._full_reported
            self._full_reported = True
        if report:
            logger.warning(
                "staste: the kick buffer holds STASTE_BUFFER_MAX_KEYS (%s) distinct kicks; dropping new ones "
                "until it can be written (%s)",
                conf.get("STASTE_BUFFER_MAX_KEYS"),
                f"Redis took no call for STASTE_BUFFER_MAX_WAIT={conf.get('STASTE_BUFFER_MAX_WAIT')}s"
                if timed_out
                else self._last_error,
            )

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
            return self._flush()

    def _flush(self) -> int:
        """flush(), under the flush lock.

        First what an earlier flush left (its first call maybe in doubt), then the kicks held
        now: their stored values decided (choices.lua), their counters merged and written.
        """
        self._flush_started = time.monotonic()
        done, written = self._send()
        if not done:
            return written
        with self._lock:
            held = self._held
            if not held:
                return written
            self._held = Held()
            self._in_flight = len(held)
            self._dropped_ids += held.ids_dropped
        batch = held.kicks()
        try:
            for metrica in {id(kick.metrica): kick.metrica for kick in batch}.values():
                metrica.record_signature()  # once per process and metrica
            depths = self._decide(batch)
        except Exception as exc:
            retry = _retryable(exc)
            with self._lock:
                self._in_flight = 0
                if retry:
                    self._hold_again(batch)
                else:
                    self._dropped += len(batch)
            if not retry:
                logger.error("staste: dropped %d buffered kicks that Redis refused", len(batch), exc_info=exc)
            self._failed(exc, dropped=0 if retry else len(batch))
            return written
        flush = _Flush(batch)
        decided = kicks.all_decided(batch, depths)
        with self._lock:
            self._queued, self._in_flight = len(batch), 0
        return written + self._send(self._calls(flush, decided))[1]

    def _calls(self, flush: _Flush, decided: list[Kick]) -> Iterator[_Call]:
        """The calls writing a flush, each made as its counters are added up (so that the
        first are sent while the next are added up); the last one marked."""
        made: _Call | None = None
        for chunks in _calls_of(kicks.merged_counters(decided), CALL_BUDGET):
            if made is not None:
                yield made
            made = self._counters_call(flush, chunks)
        # Then the ids of kicks with unique=, in the HyperLogLogs of the same (decided)
        # combinations; PFADD is idempotent, so a call sent again never counts an id twice.
        for items in _uniques_slices(kicks.merged_uniques(decided), UNIQUES_BUDGET):
            if made is not None:
                yield made
            script_keys, args = kicks.uniques_keys_and_args(items)
            made = _Call("uniques", [*script_keys, self._writer_key(items[0][0])], args, 1, flush, [], [])
        if made is not None:
            made.last = True
            yield made

    def _decide(self, batch: list[Kick]) -> dict[kicks.Chain, int]:
        """Which members of the stored axes the kicks' values are (choices.lua, in kick order)."""
        chains = kicks.chains(batch)
        if _cluster():  # a call reaches one hash slot: one metrica's sets
            by_slot: dict[str, list[kicks.Chain]] = {}
            for chain in chains:
                by_slot.setdefault(chain[0].split("}", 1)[0], []).append(chain)
            parts = list(by_slot.values())
        else:
            parts = [chains]
        depths: dict[kicks.Chain, int] = {}
        for part in parts:
            start = 0
            while start < len(part):
                end, members = start, 0
                while end < len(part) and (members == 0 or members + len(part[end][2]) <= DECISIONS_PER_CALL):
                    members += len(part[end][2])
                    end += 1
                script_keys, args = kicks.choices_keys_and_args(part[start:end])
                stored = scripts.run("choices", script_keys, args)
                self._reachable()
                depths.update(zip(part[start:end], (int(depth) for depth in stored), strict=True))
                start = end
        return depths

    def _writer_key(self, base: str) -> str:
        return keys.writer_key(base, self._writer_id)

    def _counters_call(self, flush: _Flush, chunks: list[kicks.Chunk], back: bool = False) -> _Call:
        script_keys, args = kicks.counters_keys_and_args(chunks, back=back)
        return _Call("counters", [*script_keys, self._writer_key(chunks[0][0].base)], args, 0, flush, chunks, [])

    def _kick_calls(self, flush: _Flush) -> list[_Call]:
        """The flush's kicks, kick by kick through kick.lua, in calls of about CALL_BUDGET."""
        calls = []
        start = 0
        batch = flush.kicks
        cluster = _cluster()
        while start < len(batch):
            end, cost = start, 0
            while end < len(batch):
                kick = batch[end]
                if cluster and kick.metrica.base != batch[start].metrica.base:
                    break
                # (its ids are PFADDed to each combination in up to 4 buckets: counted too; a
                # kick is never split, so one holding very many ids is a long call of its own)
                cost += kick.combinations() * (len(kick.families) * len(kick.spans) + 4 * len(kick.unique))
                if cost > CALL_BUDGET and end > start:
                    break
                end += 1
            script_keys, args = kicks.batch_keys_and_args(batch[start:end])
            writer_key = self._writer_key(batch[start].metrica.base)
            calls.append(_Call("kick", [*script_keys, writer_key], args, 0, flush, [], batch[start:end]))
            start = end
        calls[-1].last = True
        return calls

    def _number(self, call: _Call) -> None:
        """Give ``call`` its numbers when it is first sent, and put them in its header.

        ``prev`` is the call before it under the same writer key (one per metrica: a script
        reaches one hash slot), the last numbered that ran or may have run; the script refuses
        to run a call whose predecessor has not (STASTE_GAP), so calls can be sent before the
        replies of those before them came back.  A call whose predecessor is not known (after
        calls were dropped) goes without ``prev``, and alone.
        """
        if call.number is None:
            self._calls_made += 1
            writer_key = call.keys[-1]
            call.number, call.prev = self._calls_made, self._tails.get(writer_key, 0)
            self._tails[writer_key] = call.number
        numbers = f"{call.header}|{call.number}|{kicks.WRITER_TTL}"
        call.args[call.head] = numbers if call.prev is None else f"{numbers}|{call.prev}"

    def _send(self, new: Iterable[_Call] = ()) -> tuple[bool, int]:
        """Send the queued calls, then ``new`` ones (queued as they come), in order: (whether
        all were written, kicks written).  Calls that could not be sent stay queued."""
        if not new and not self._queue:
            return True, 0
        written = 0
        for _ in range(RESENDS):
            outcome, count = self._send_once(new)
            written += count
            new = ()
            if outcome != "again":
                break
        else:
            outcome = "failed"
        if outcome == "done":
            self._succeeded(written)
        return outcome == "done", written

    def _send_once(self, new: Iterable[_Call]) -> tuple[str, int]:
        """One pass of :meth:`_send`: up to WINDOW calls in flight, their replies read in order.

        The outcome: "done", "failed" (what is left stays queued, or was dropped), or "again"
        (send the queue again now: after NOSCRIPT, a lost writer number or an overflow).
        """
        pipe: Pipe | None = None
        flying: deque[_Call] = deque()
        failure: tuple[_Call | None, BaseException] | None = None
        written = 0

        def read_reply() -> None:
            nonlocal failure, written
            call = flying.popleft()
            assert pipe is not None
            result = pipe.reply()
            if isinstance(result, redis.ResponseError):
                if call.script != "kick" or not str(result).startswith(scripts.OVERFLOW):
                    if failure is None:
                        failure = (call, result)
                    return  # (the calls after it under its writer key did not run: STASTE_GAP)
                self._refused(call, result)  # it wrote its other kicks
            elif result == -1:
                logger.info("staste: buffered call %d had already been written; not written again", call.number)
            written += self._confirmed(call)

        def queued_as_they_come() -> Iterator[_Call]:
            for call in new:
                with self._lock:
                    self._queue.append(call)
                    call.flush.unconfirmed += 1
                    call.flush.whole = call.flush.whole or call.last
                yield call

        try:
            pipe = Pipe()
            with self._lock:
                queued = list(self._queue)
            # Every new call is queued (so kept) even once sending stopped.
            for call in itertools.chain(queued, queued_as_they_come()):
                if failure is not None:
                    continue
                try:
                    self._number(call)
                    pipe.send(call.script, call.keys, call.args)  # type: ignore[union-attr]
                    flying.append(call)
                    while flying and (len(flying) > WINDOW or call.prev is None):
                        read_reply()
                except RedisUnavailable as exc:
                    failure = (None, exc)
            # Every reply, those after a failure too: which calls ran must be known.
            while flying and (failure is None or failure[0] is not None):
                read_reply()
        except RedisUnavailable as exc:
            failure = (None, exc)
        finally:
            if pipe is not None:
                pipe.close()
        if failure is None:
            return "done", written
        call, exc = failure
        return self._failure(call, exc), written

    def _failure(self, call: _Call | None, exc: BaseException) -> str:
        """What a failed call means: the outcome of :meth:`_send_once`."""
        if call is None or _retryable(exc):  # unreachable, or refused: kept for the next flush
            self._failed(exc)  # type: ignore[arg-type]
            return "failed"
        text = str(exc)
        if isinstance(exc, redis.exceptions.NoScriptError):
            # Redis lost its scripts (SCRIPT FLUSH): send the source again (pipe sends EVAL)
            scripts.forget(connection.get_redis(), call.script)
            return "again"
        if text.startswith(scripts.GAP):
            # The first failure, so the call before it ran: Redis lost the writer's number (a
            # failover to a replica that was behind, a restore).  Send it alone.
            call.prev = None
            return "again"
        if call.script == "counters" and text.startswith(scripts.OVERFLOW):
            self._overflowed(call)
            return "again"
        self._give_up(exc, call)  # type: ignore[arg-type]
        return "failed"

    def _confirmed(self, call: _Call) -> int:
        """Redis ran ``call`` (or had run it): the flush's kicks, when it was its last call
        unconfirmed (calls of several writer keys may be confirmed out of order)."""
        self._reachable()
        flush = call.flush
        with self._lock:
            self._queue.remove(call)
            flush.written.append(call)
            flush.unconfirmed -= 1
            if flush.unconfirmed or not flush.whole:
                return 0
            self._queued = 0
        return len(flush.kicks) - flush.refused

    def _dropped_calls(self, calls: Iterable[_Call]) -> None:
        """Calls dropped unwritten: the calls after them cannot name them (see :meth:`_number`)."""
        for call in calls:
            if call.number is not None:
                self._tails[call.keys[-1]] = None

    def _refused(self, call: _Call, exc: redis.ResponseError) -> None:
        refused = [call.batch[int(number) - 1] for number in str(exc).split()[1:]]
        logger.error(
            "staste: dropped %d buffered kicks of %s: they would push a counter past Redis' limit (2**63 - 1)",
            len(refused),
            ", ".join(sorted({kick.metrica.name for kick in refused})),
        )
        call.flush.refused += len(refused)
        with self._lock:
            self._dropped += len(refused)

    def _overflowed(self, call: _Call) -> None:
        """A counter of ``call`` would overflow (counters.lua took the call back): take back
        the flush's calls already written, then write its kicks one by one through kick.lua."""
        flush = call.flush
        logger.warning(
            "staste: a buffered flush would push a counter past Redis' limit; writing its %d kicks one by one",
            len(flush.kicks),
        )
        back = [self._counters_call(flush, done.chunks, back=True) for done in flush.written if done.chunks]
        flush.written = []
        calls = back + self._kick_calls(flush)
        with self._lock:
            self._dropped_calls(self._queue)
            self._queue = calls
            flush.unconfirmed, flush.whole = len(calls), True

    def _give_up(self, exc: Exception, call: _Call) -> None:
        """Redis answered an error that may follow a partial write: drop the flush's kicks."""
        dropped = len(call.flush.kicks) - call.flush.refused
        with self._lock:
            self._dropped_calls(queued for queued in self._queue if queued.flush is call.flush)
            self._queue = [queued for queued in self._queue if queued.flush is not call.flush]
            self._queued = 0
            self._dropped += dropped
        logger.error("staste: dropped %d buffered kicks that Redis refused", dropped, exc_info=exc)
        self._failed(exc, dropped=dropped)

    def _hold_again(self, batch: list[Kick]) -> None:
        """Hold kicks that were never sent again (under the lock), merged with newer ones."""
        held = self._held
        for kick in batch:
            key = kick.merge_key()
            if not held.add(key, kick.increments, kick.unique):
                held.hold(key, kick)

    def _reachable(self) -> None:
        """A call went through: Redis takes writes again, so a full buffer waits, not drops."""
        self._progress = time.monotonic()
        if not self._failing:
            return
        with self._lock:
            recovered = self._failing
            dropped = self._dropped - self._dropped_before_outage
            self._failing = False
            self._full_reported = False
            self._last_error = None
        if recovered:
            logger.warning(
                "staste: Redis at %s is back: writing %d held kicks; %d were dropped while it was away",
                connection.describe(),
                len(self._held) + self._queued,
                dropped,
            )

    def _succeeded(self, written: int) -> None:
        with self._lock:
            self._last_error = None
            self._flushes += 1
            self._written += written
            self._last_flush = time.time()

    def _failed(self, exc: Exception, dropped: int = 0) -> None:
        """A flush failed: what it held is kept (queued or held again), or was dropped."""
        with self._lock:
            starting = not self._failing
            if starting:
                self._failing = True
                self._dropped_before_outage = self._dropped
            self._failed_flushes += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            held_now = len(self._held) + self._queued
        if not dropped and starting:
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
        """Write the buffer STASTE_FLUSH_INTERVAL seconds after its first kick came in (and at
        least that long after the last write began, by whichever thread: a failing Redis is
        tried once an interval), or at once when woken (the buffer is half full).  So a kick
        waits at most an interval to be written, and a flush holds as many kicks as that
        allows: the longer its window, the more its kicks share counters."""
        while True:
            try:
                interval = max(0.001, float(conf.get("STASTE_FLUSH_INTERVAL")))
            except (TypeError, ValueError):
                interval = 1.0
            since = self._held.since
            if since is None and self._queue:
                since = self._flush_started  # calls left by a failed flush: retried
            remaining = interval if since is None else interval - (time.monotonic() - since)
            remaining = max(remaining, interval - (time.monotonic() - self._flush_started))
            if remaining > 0:
                # At most a second at a time, so a changed interval applies within a second.
                woken = self._wake.wait(min(remaining, 1.0))
                if self._stopping:
                    return
                if not woken:
                    continue
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.flush()
            except Exception:  # a bug must not stop the thread: later kicks still need writing
                logger.exception("staste: flushing the kick buffer failed")
                self._flush_started = time.monotonic()  # (not at once again)

    def close(self) -> None:
        """Stop the background thread and write what is held (at exit)."""
        self._stopping = True
        self._wake.set()
        if not self._held and not self._queue:
            return
        self.flush()
        lost = len(self._held) + self._queued
        if lost:
            logger.error("staste: %d buffered kicks are lost: the process exits and Redis cannot be reached", lost)

    # -- inspection --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the buffer holds and has done in this process, for the admin and monitoring.

        ``pending``: distinct kicks held (a merged kick counts once); ``dropped``: kicks lost
        because the buffer was full while Redis failed, or Redis refused them; ``waits``: kicks
        that found the buffer full and waited for a flush to make room (backpressure); ``dropped_ids``: unique ids
        not held because the buffer held ``MAX_HELD_IDS`` (their kicks were counted); ``flushes``: successful writes;
        ``failed_flushes``: flushes that failed (what they held was kept, or dropped when
        Redis refused it); ``written``: kicks written; ``last_error``: why the last flush
        failed, None once a flush succeeds again (so: Redis is unreachable right now);
        ``last_flush``: when the last successful flush ended (epoch seconds, None before the
        first).
        """
        with self._lock:
            return {
                "pending": len(self._held) + self._in_flight + self._queued,
                "dropped": self._dropped,
                "waits": self._waits,
                "dropped_ids": self._dropped_ids + self._held.ids_dropped,
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
            count = len(self._held) + self._queued
            self._held, self._queue, self._queued = Held(), [], 0
            self._dropped = self._dropped_before_outage = self._flushes = self._failed_flushes = self._written = 0
            self._waits = self._dropped_ids = 0
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
