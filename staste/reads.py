"""The kinds of read: what one read asks Redis, what it costs, and how its replies become its answer.

A query method plans one or more reads (:mod:`staste.query`); :mod:`staste.roundtrip` sends
the commands of all of them in one pipeline and hands each read its own replies.  Each kind
of read is one small frozen dataclass (reads compare and hash: a batch sends each distinct
read once) and owns four things:

* :attr:`~Fetch.work`: the counters it may touch, charged to the budget before anything is
  sent (:mod:`staste.budget`); an axis' stored values and a scanned hash are counted by Redis
  itself (:attr:`~Fetch.variable`, :meth:`~Fetch.terms`);
* :meth:`~Fetch.commands`: the Redis commands, sliced so that no call is given more than its
  bound (:data:`SLICE_WORK` counters, :data:`UNIQUES_SLICE_WORK` HyperLogLogs, :data:`SCAN_FIELDS`
  scanned fields; docs/queries.md, "What a read may cost");
* :meth:`~Fetch.blank`: the answer of no counters (a batch's recording pass);
* :meth:`~Fetch.combine`: the answer from the replies to its commands.

=====================  =====================================================================
kind                   answer
=====================  =====================================================================
:class:`Sums`          ``fields`` added up over the hashes ``keys``: an int or None per field
:class:`Rows`          ``fields`` of each hash of ``keys``: a list of raw values per key
:class:`AxisSums`      each stored value of an axis: {member: [int or None per family]}
:class:`HistogramScan` the same, from one scan of each histogram hash (``top(by="p95")``)
:class:`Years`         the stored years' counters (years.lua): its flat reply
:class:`UniqueCounts`  the PFCOUNT of the union of each group of HyperLogLogs
:class:`UniquesAxis`   each stored value's distinct ids over all the buckets
:class:`UniqueYears`   each stored year's distinct ids (uniques.lua 'years'): its flat reply
=====================  =====================================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, cast

import redis

from staste import conf, keys

#: Most counters a single script call reads: about a millisecond of Redis time, far under the
#: 50 ms that would hold up other clients (Redis runs one script at a time), even on a busy host.
SLICE_WORK = 2_000
#: Most HyperLogLogs a uniques.lua call merges into its counts: a dense one (12 KB of
#: registers) takes about 22 µs to merge (measured, Redis 7.0), so about 4 ms at most.
UNIQUES_SLICE_WORK = 200
#: What one HyperLogLog merged into a count is charged to the budget, in counters: a dense one
#: holds 12 KB of registers, and a count of distinct ids over a range cost Redis 15 to 50 times
#: what the same range's counts did (issue 20: ~1.1 s against 72 ms), when it was charged one.
HLL_WORK = 32
#: A series of more fields than this (a histogram's 102) is read sparse: only present counters.
SPARSE_FIELDS = 8
#: Most fields of one histogram hash ``top(by="p95")`` scans in one call (a few milliseconds);
#: larger hashes are read value by value, in slices.
SCAN_FIELDS = 50_000
#: The budget argument of a script call that checks none (budget.lua: limit 0, no terms).
NO_BOUND: tuple[Any, ...] = (0, 0)


class HMGet(NamedTuple):
    """``HMGET key fields...``: one hash's fields, outside any script."""

    key: str
    fields: list[str]


class PFCount(NamedTuple):
    """``PFCOUNT keys...``: the distinct ids of the union of these HyperLogLogs."""

    keys: tuple[str, ...]


class Script(NamedTuple):
    """A call of staste's script ``name`` (read.lua, uniques.lua, years.lua)."""

    name: str
    keys: list[str]
    args: list[Any]


Command = HMGet | PFCount | Script


class Reslice(Exception):
    """read.lua refused an axis slice planned for fewer values than the axis now holds, or a
    hash too large to scan: ``fetch`` is what to read instead."""

    def __init__(self, fetch: Fetch) -> None:
        super().__init__(fetch)
        self.fetch = fetch


def is_reslice(exc: BaseException) -> bool:
    """Whether Redis refused a call because it was sliced for another size (see :class:`Reslice`)."""
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(("STASTE_RESLICE", "STASTE_HMGET"))


class Fetch:
    """One thing to read (a base: each kind below is one frozen dataclass)."""

    __slots__ = ()

    @property
    def variable(self) -> bool:
        """Whether only Redis knows what this read touches (budget.lua counts it: :meth:`terms`)."""
        return False

    @property
    def work(self) -> int:
        """The counters it is charged before it is sent."""
        raise NotImplementedError

    def terms(self) -> list[Any]:
        """What budget.lua counts for this read (only for a :attr:`variable` one)."""
        return []

    def blank(self) -> Any:
        """What a batch's recording pass answers: no counters."""
        raise NotImplementedError

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        """What to send, each script call checking the budget ``gate`` (``budget.gate``).

        Within a gated batch every read goes as a script, even one HMGET or PFCOUNT, so that
        nothing is read when the batch is refused (a cluster checks first, see roundtrip)."""
        raise NotImplementedError

    def combine(self, commands: list[Command], replies: list[Any]) -> Any:
        """The answer from the replies to :meth:`commands`, in order."""
        raise NotImplementedError

    def spent(self, replies: list[Any]) -> int:
        """The counters it really touched, once answered (what the budget keeps charged)."""
        return self.work


def _gated(cluster: bool, gate: tuple[Any, ...]) -> bool:
    return gate != NO_BOUND and not cluster


# -- hashes ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sums(Fetch):
    """``fields`` added up over the hashes ``keys`` -> [int or None per field].

    read.lua 'sums' adds them up in Redis, a call given at most :data:`SLICE_WORK` counters
    (keys, and fields when one hash holds more); a lone hash, and every hash on a cluster
    (whose pipeline takes no script), is read by HMGET.
    """

    keys: tuple[str, ...]
    fields: tuple[str, ...]

    @property
    def work(self) -> int:
        return max(1, len(self.keys) * len(self.fields))

    def blank(self) -> list[int | None]:
        return [None] * len(self.fields)

    def _slices(self, by_hmget: bool) -> Iterator[tuple[int, tuple[str, ...], tuple[str, ...]]]:
        """(first field's index, fields, keys) of each command."""
        for first in range(0, len(self.fields), SLICE_WORK):
            fields = self.fields[first : first + SLICE_WORK]
            per_call = 1 if by_hmget else max(1, SLICE_WORK // len(fields))
            for at in range(0, len(self.keys), per_call):
                yield first, fields, self.keys[at : at + per_call]

    def _by_hmget(self, cluster: bool, gate: tuple[Any, ...]) -> bool:
        return cluster or (len(self.keys) == 1 and not _gated(cluster, gate))

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        if not self.keys:
            return []
        if self._by_hmget(cluster, gate):
            return [HMGet(key_list[0], list(fields)) for _, fields, key_list in self._slices(True)]
        return [Script("read", list(key_list), ["sums", *gate, *fields]) for _, fields, key_list in self._slices(False)]

    def combine(self, commands: list[Command], replies: list[Any]) -> list[int | None]:
        total = self.blank()
        if not commands:
            return total
        slices = self._slices(isinstance(commands[0], HMGet))
        for (first, fields, _), reply in zip(slices, replies, strict=True):
            if isinstance(commands[0], HMGet):
                part = [int(v) if v is not None else None for v in reply]
            else:
                part = _summed(reply, len(fields))
            total[first : first + len(fields)] = _add(total[first : first + len(fields)], part)
        return total


@dataclasses.dataclass(frozen=True)
class Rows(Fetch):
    """``fields`` of each hash of ``keys`` -> [[raw per field] per key]: a series.

    A row is one bucket's families (one or two) or histogram (102 fields), so only keys are
    sliced: read.lua 'rows' (or 'sparse' past :data:`SPARSE_FIELDS` fields: only the counters
    present) gets at most :data:`SLICE_WORK` counters a call.
    """

    keys: tuple[str, ...]
    fields: tuple[str, ...]

    @property
    def work(self) -> int:
        return max(1, len(self.keys) * len(self.fields))

    def blank(self) -> list[list[Any]]:
        return [[None] * len(self.fields) for _ in self.keys]

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        if not self.keys:
            return []
        if cluster or (len(self.keys) == 1 and not _gated(cluster, gate)):
            return [HMGet(key, list(self.fields)) for key in self.keys]
        per_call = max(1, SLICE_WORK // max(1, len(self.fields)))
        mode = "sparse" if len(self.fields) > SPARSE_FIELDS else "rows"
        return [
            Script("read", list(self.keys[i : i + per_call]), [mode, *gate, *self.fields])
            for i in range(0, len(self.keys), per_call)
        ]

    def combine(self, commands: list[Command], replies: list[Any]) -> list[list[Any]]:
        if not commands:
            return self.blank()
        if isinstance(commands[0], HMGet):
            return replies
        scripts = cast(list[Script], commands)  # plan() sent HMGETs or read.lua calls, never both
        width = len(self.fields)
        if scripts[0].args[0] == "sparse":
            rows = self.blank()
            at = 0
            for command, reply in zip(scripts, replies, strict=True):
                for i in range(0, len(reply), 3):
                    rows[at + reply[i]][reply[i + 1]] = reply[i + 2]
                at += len(command.keys)
            return rows
        flat = [value for reply in replies for value in reply]
        return [flat[i : i + width] for i in range(0, len(flat), width)]


@dataclasses.dataclass(frozen=True)
class Years(Fetch):
    """The counters ``families`` of ``field`` in every stored year (years.lua) -> its flat reply:
    year, a raw value per family, year... (``base`` is the year hashes' key prefix).

    The stored years are counted by Redis against the budget (a term: each year costs its
    families), and read in parts of at most :data:`SLICE_WORK` counters (up to 9,999 years).
    """

    years_key: str
    base: str
    field: str
    families: tuple[str, ...]

    @property
    def variable(self) -> bool:
        return True

    @property
    def work(self) -> int:
        return max(1, len(self.families))

    def terms(self) -> list[Any]:
        return [self.years_key, "", len(self.families)]

    def blank(self) -> list[Any]:
        return []

    def spent(self, replies: list[Any]) -> int:
        return sum(len(reply) for reply in replies) // (len(self.families) + 1) * len(self.families)

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        seen = _stored_sizes.get(self.years_key, 64)
        width = max(1, SLICE_WORK // max(1, len(self.families)))
        limit = max(SLICE_WORK, len(self.families))
        # (the overflow member member_slice adds to the last part is no year: one more of room)
        parts = {one.parts for one in member_slices(seen + 1 + seen // 4, width)}.pop()
        return [
            Script(
                "years", [self.years_key], ["years", *gate, self.base, self.field, part, parts, limit, *self.families]
            )
            for part in range(parts)
        ]

    def combine(self, commands: list[Command], replies: list[Any]) -> list[Any]:
        for reply in replies:
            if isinstance(reply, Exception):
                _stored_sizes[self.years_key] = int(str(reply).split()[1])
                raise Reslice(self)
        return [item for reply in replies for item in reply]


# -- the stored values of an axis -------------------------------------------------------------

#: The size of each axis' set of stored values when last read (by its key), to slice the next
#: read of it for its real size rather than for max_choices (a set that grew meanwhile makes
#: read.lua refuse the call, and the read is sliced again).
_stored_sizes: dict[str, int] = {}


class MemberSlice(NamedTuple):
    """The members of an axis' set one call reads (budget.lua's member_slice): members
    ``first`` to ``first + taken`` (0: to the end) of part ``part`` of ``parts``, sorted;
    ``planned``: how many it is planned to hold.  (``taken``, not ``count``: a tuple's method.)"""

    part: int
    parts: int
    first: int
    taken: int
    planned: int


#: How many members a part of a stored axis' set holds, about, when a call takes fewer (a call
#: scans its whole part, then takes its slice of it).
PART_MEMBERS = 128


def member_slices(members: int, width: int) -> list[MemberSlice]:
    """Slices of at most ``width`` members covering a set of ``members`` (the overflow part
    included), each read by calls that cost Redis what their part holds.

    The set is cut into parts by the hash of its members (a power of two of them: see
    budget.lua), each part into slices of its sorted members.  A part's size varies (a
    binomial: its average give or take 6 standard deviations, out of reach), so each part is
    given the slices of its largest likely size, and the last slice of a part takes the rest
    of it (Redis refuses it, and the read is sliced again, past ``width``: the set grew).

    >>> member_slices(3, 10)
    [MemberSlice(part=0, parts=1, first=0, taken=0, planned=3)]
    >>> [(one.part, one.parts) for one in member_slices(10_000, 2000)]
    [(0, 8), (1, 8), (2, 8), (3, 8), (4, 8), (5, 8), (6, 8), (7, 8)]
    """
    if members <= width:
        return [MemberSlice(0, 1, 0, 0, members)]
    average = width - 6 * math.isqrt(width) if width >= PART_MEMBERS else PART_MEMBERS
    parts = 1
    while members > parts * average:
        parts *= 2
    if parts == 1:
        most = members  # the whole set: no spread
    else:
        each = -(-members // parts)
        most = each + 6 * math.isqrt(each) + 2
    per_part = -(-most // width)
    return [
        MemberSlice(part, parts, i * width, 0 if i == per_part - 1 else width, min(width, most - i * width))
        for part in range(parts)
        for i in range(per_part)
    ]


@dataclasses.dataclass(frozen=True)
class _AxisRead(Fetch):
    """What the reads of an axis' stored values share: the set ``choices`` of its values, the
    ``buckets`` read, the ``families`` of each value, the field text ``before`` and ``after``
    the value, the ``parent`` node of a hierarchical axis ('' for a flat axis, '*' for the
    root) and the axis' ``cap`` (``max_choices``; 0: none).

    Answers {member: [int or None per family]}; the overflow part is listed only when it
    counted something.  Its work is counted by Redis (budget.lua) before anything is read:
    here one value (its overflow part) is charged, and the rest from the replies.
    """

    choices: str
    buckets: tuple[str, ...]
    families: tuple[str, ...]
    before: str
    after: str
    parent: str
    cap: int

    @property
    def variable(self) -> bool:
        return bool(self.buckets)

    @property
    def work(self) -> int:
        return len(self.buckets) * len(self.families)

    def terms(self) -> list[Any]:
        """(key, parent, weight): each child value of ``parent`` in the set costs ``weight``
        counters, as does the overflow part."""
        return [self.choices, self.parent, len(self.buckets) * len(self.families)]

    def blank(self) -> dict[str, list[Any]]:
        return {}

    def spent(self, replies: list[Any]) -> int:
        return sum(reply[3] for reply in replies)

    def _member_slices(self, cost: int, work: int) -> list[MemberSlice]:
        """The slices of the stored members (:func:`member_slices`) when a member costs a call
        ``cost``: a slice costs at most ``work``, or one member's cost when that is more.
        Planned for the size the set had when last read, with room to grow (or for ``cap``,
        or ``STASTE_MAX_CHOICES``, before the first read)."""
        seen = _stored_sizes.get(self.choices)
        if seen is not None:
            members = seen + 1 + seen // 4
        else:
            members = (self.cap if self.cap > 0 else conf.get("STASTE_MAX_CHOICES") or 1000) + 1
        if self.cap > 0:
            members = min(members, self.cap + 1)
        return member_slices(members, max(1, work // cost))

    def combine(self, commands: list[Command], replies: list[Any]) -> dict[str, list[Any]]:
        if not commands:  # nothing to read (a range of no bucket)
            return self.blank()
        width = len(self.families)
        for reply in replies:
            if isinstance(reply, Exception):
                if str(reply).startswith("STASTE_HMGET"):  # a hash too large to scan
                    raise Reslice(self.value_by_value())
                _stored_sizes[self.choices] = int(str(reply).split()[1])  # the set outgrew the slices
                raise Reslice(self)
        found: dict[str, list[Any]] = {}
        for members, sums, stored, _ in replies:
            if stored >= 0:  # (a scan does not count the set)
                _stored_sizes[self.choices] = stored
            values = _summed(sums, len(members) * width)
            for i, member in enumerate(members):
                text, here = _text(member), values[i * width : (i + 1) * width]
                found[text] = _add(found[text], here) if text in found else here
        return {m: v for m, v in found.items() if not m.startswith(keys.OVERFLOW) or v != [None] * width}

    def value_by_value(self) -> Fetch:
        """What to read instead of a hash too large to scan (only a scan meets one): the same
        values' fields asked for by name."""
        return self


@dataclasses.dataclass(frozen=True)
class AxisSums(_AxisRead):
    """The ``families`` of every stored value of an axis, added up over the hashes ``buckets``
    (read.lua 'axis').  Members and buckets are sliced so that a call is given at most
    :data:`SLICE_WORK` counters; a call that would read more (the set grew past the room its
    slice was planned with) reads nothing, and the read is sliced again for the set's size."""

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        if not self.buckets:
            return []
        cost = len(self.families)  # a member's counters in one bucket
        limit = max(SLICE_WORK, cost)  # what read.lua refuses past: the set outgrew its slice
        commands: list[Command] = []
        for part, parts, first, count, planned in self._member_slices(cost, SLICE_WORK):
            per_call = max(1, SLICE_WORK // (planned * cost))
            head = ["axis", *gate, self.before, self.after, self.parent, limit, part, parts, first, count]
            commands += [
                Script("read", [self.choices, *self.buckets[i : i + per_call]], [*head, *self.families])
                for i in range(0, len(self.buckets), per_call)
            ]
        return commands


@dataclasses.dataclass(frozen=True)
class HistogramScan(_AxisRead):
    """:class:`AxisSums` of histogram families, read by scanning each histogram hash of
    ``buckets`` once (read.lua 'scan': a histogram holds few of its 102 fields per value).

    A call scans one hash of at most :data:`SCAN_FIELDS` fields; a larger one answers
    STASTE_HMGET and the read is made value by value instead (:class:`AxisSums`).  The budget
    counts every field of the hashes (a term of weight 0); one a hash is charged here."""

    @property
    def work(self) -> int:
        return len(self.buckets)

    def terms(self) -> list[Any]:
        return [item for bucket in self.buckets for item in (bucket, "", 0)]

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        head = [self.before, self.after, self.parent, SCAN_FIELDS]
        return [Script("read", [bucket], ["scan", *gate, *head, *self.families]) for bucket in self.buckets]

    def value_by_value(self) -> Fetch:
        return AxisSums(self.choices, self.buckets, self.families, self.before, self.after, self.parent, self.cap)


@dataclasses.dataclass(frozen=True)
class UniquesAxis(_AxisRead):
    """The distinct ids of every stored value of an axis over the HyperLogLogs behind the key
    prefixes ``buckets`` (uniques.lua 'axis'; ``families`` is ('',)).  A count of a union
    cannot be added up, so every call holds all the buckets and the members are sliced: a
    call merges at most :data:`UNIQUES_SLICE_WORK` HyperLogLogs, or one member's when the
    range has more buckets (a set that outgrew its slice is sliced again, as in AxisSums)."""

    @property
    def work(self) -> int:
        return len(self.buckets) * HLL_WORK

    def terms(self) -> list[Any]:
        """Each child value of ``parent`` costs its HyperLogLogs, HLL_WORK each."""
        return [self.choices, self.parent, len(self.buckets) * HLL_WORK]

    def spent(self, replies: list[Any]) -> int:
        return sum(reply[3] for reply in replies) * HLL_WORK

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        if not self.buckets:
            return []
        cost = len(self.buckets)  # a member's HyperLogLogs, all in the one call
        limit = max(UNIQUES_SLICE_WORK, cost)  # what uniques.lua refuses past: the set outgrew its slice
        head = [self.before, self.after, self.parent, limit]
        return [
            Script("uniques", [self.choices, *self.buckets], ["axis", *gate, *head, *where[:4], *self.families])
            for where in self._member_slices(cost, UNIQUES_SLICE_WORK)
        ]


# -- unique ids -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UniqueCounts(Fetch):
    """HyperLogLogs ``keys``, in groups of the sizes ``groups`` -> [PFCOUNT of each group's
    union] (a range's buckets: one group; a series: a group per point)."""

    keys: tuple[str, ...]
    groups: tuple[int, ...]

    @property
    def work(self) -> int:  # each HyperLogLog merged into its group's count, at what it costs
        return max(1, len(self.keys)) * HLL_WORK

    def blank(self) -> list[int]:
        return [0] * len(self.groups)

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        if not self.keys:
            return []
        gated = _gated(cluster, gate)
        commands: list[Command] = []
        at = 0
        for size in self.groups:
            group = self.keys[at : at + size]
            commands.append(Script("uniques", list(group), ["count", *gate]) if gated else PFCount(group))
            at += size
        return commands

    def combine(self, commands: list[Command], replies: list[Any]) -> list[int]:
        if not commands:
            return self.blank()
        return [int(reply) for reply in replies]


@dataclasses.dataclass(frozen=True)
class UniqueYears(Fetch):
    """Each stored year's distinct ids (uniques.lua 'years') -> its flat reply: year, count...
    (``before`` and ``after``: what comes before and after the year in the HyperLogLogs' keys)."""

    years_key: str
    before: str
    after: str

    @property
    def work(self) -> int:
        return HLL_WORK  # (a year's count: one HyperLogLog a stored year, few)

    def blank(self) -> list[Any]:
        return []

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[Command]:
        return [Script("uniques", [self.years_key], ["years", self.before, self.after])]

    def combine(self, commands: list[Command], replies: list[Any]) -> list[Any]:
        return replies[0]


# -- replies --------------------------------------------------------------------------------


def _summed(triplets: list[Any], width: int) -> list[int | None]:
    """read.lua's sums (index, low, high per field present) as one number or None per field."""
    out: list[int | None] = [None] * width
    for i in range(0, len(triplets), 3):
        out[triplets[i]] = triplets[i + 1] + triplets[i + 2] * 1_000_000_000
    return out


def _add(into: Sequence[Any], more: Sequence[Any]) -> list[Any]:
    return [b if a is None else a if b is None else a + b for a, b in zip(into, more, strict=True)]


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw
