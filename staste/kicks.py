"""How kicks are encoded for Redis: a validated kick, and the arguments of the scripts that
write it.

A :class:`Kick` is what ``Metrica.prepare_kick()`` makes of ``kick(**axes)`` after every check
has passed.  A synchronous ``kick()`` is one kick.lua call (``batch_keys_and_args()``, which
expands the kick's combinations in Redis); a buffer flush adds the counters of all its kicks up
here, in Python (``merged_counters()``), and writes each distinct counter once through
counters.lua, and the unique ids through ids.lua.  Both paths encode a kick's keys, fields and
TTLs through the same plans, so they never disagree about what a kick writes.  Every builder
here makes an unnumbered call (ARGV[1] is ``numbering.UNNUMBERED``): numbering a call is
staste.numbering's job.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from staste import conf, keys, numbering, timescale
from staste.combinations import Combinations

if TYPE_CHECKING:
    from staste.cohorts.marks import Mark
    from staste.metrica import Metrica


class Kick(NamedTuple):
    """One validated kick, ready to be written; identical kicks merge by adding increments.

    ``spans`` are the buckets it lands in, ``families`` the field prefixes whose counters it
    bumps by ``increments``, and ``options`` each axis' field parts with the axis' cap on
    stored choices (-1: stores none, 0: unbounded; see kick.lua).  ``unique``: the ids it adds
    to the HyperLogLogs of its combinations (``kick(unique=...)``; many once merged in a
    buffer): they are not part of ``merge_key()``, so kicks of different ids still merge.
    """

    metrica: Metrica
    spans: tuple[timescale.Span, ...]
    families: tuple[str, ...]
    increments: tuple[int, ...]
    options: tuple[tuple[tuple[str, ...], int], ...]
    unique: tuple[str, ...] = ()
    users: tuple[Mark, ...] = ()  # (staste.cohorts: kick(user=...))

    def merge_key(self) -> tuple[Any, ...]:
        if self.users:  # (staste.cohorts)
            return (self.metrica.base, self.spans, self.families, self.options, self.users)
        return (self.metrica.base, self.spans, self.families, self.options)

    def merged(self, other: Kick) -> Kick:
        total = tuple(a + b for a, b in zip(self.increments, other.increments, strict=True))
        return self._replace(increments=total, unique=tuple(dict.fromkeys(self.unique + other.unique)))

    def combinations(self) -> int:
        """How many fields this kick bumps in each of its hashes (before any overflow): those
        of the combinations its metrica keeps (``Metrica(combinations=...)``)."""
        return self.metrica.combinations.count([len(parts) - 1 for parts, _ in self.options])


@dataclass(frozen=True)
class _Plan:
    """What every kick of one metrica into the same buckets shares: keys and expiry data."""

    family_keys: tuple[tuple[str, ...], ...]  # per family, its hash in each span
    year: str  # the year bucket's year, '' when the metrica keeps no year bucket
    years_key: str
    expiry: tuple[tuple[int | None, float], ...]  # (retention or None, bucket end) per span
    choices_keys: tuple[str, ...]
    # The HyperLogLog key prefix of each span that keeps uniques (keys.unique_prefix), and
    # its (retention or None, bucket end): () for a metrica without uniques.
    unique_prefixes: tuple[str, ...] = ()
    unique_expiry: tuple[tuple[int | None, float], ...] = ()


_plans: dict[tuple[Any, ...], _Plan] = {}


@conf.on_config_change
def _forget_plans() -> None:
    # Prefix, retention and time zone are settings: plans made under the old ones are wrong.
    _plans.clear()


def _plan(metrica: Metrica, spans: tuple[timescale.Span, ...], families: tuple[str, ...]) -> _Plan:
    """The cached plan of kicks into ``spans``: all kicks of one minute share one.

    Building keys and bucket ends is most of the cost of encoding a kick.
    """
    cache_key = (metrica.name, tuple(metrica.axes), spans, families, metrica.uniques_scales, metrica.keeps_uniques)
    plan = _plans.get(cache_key)
    if plan is None:
        if len(_plans) > 4096:
            _plans.clear()
        base = metrica.base
        expiry = span_expiry(spans)
        plan = _Plan(
            family_keys=tuple(
                tuple(keys.bucket_key(base + keys.family_infix(prefix), timescale.bucket_id(span)) for span in spans)
                for prefix in families
            ),
            year=next((str(span[0]) for span in spans if len(span) == 1), ""),
            years_key=keys.years_key(base),
            expiry=tuple(expiry),
            choices_keys=tuple(keys.choices_key(base, axis_name) for axis_name in metrica.axes),
        )
        if metrica.keeps_uniques:
            # Spans nest coarsest first: those no finer than the last uniques scale keep HLLs.
            kept = [i for i, span in enumerate(spans) if len(span) <= len(metrica.uniques_scales)]
            plan = dataclasses.replace(
                plan,
                unique_prefixes=tuple(keys.unique_prefix(base, timescale.bucket_id(spans[i])) for i in kept),
                unique_expiry=tuple(expiry[i] for i in kept),
            )
        _plans[cache_key] = plan
    return plan


def span_expiry(spans: Sequence[timescale.Span]) -> list[tuple[int | None, float]]:
    """What the TTL of each span's bucket is made of: (its retention, None when it is kept
    forever; the timestamp of its end, 0.0 then), under the current settings."""
    retention = conf.retention()
    zone_key = conf.time_zone().key
    expiry = []
    for span in spans:
        scale = timescale.scale_of(span)
        keep = retention.get(scale) if scale else None
        expiry.append((keep, 0.0 if keep is None else _span_end_timestamp(span, zone_key)))
    return expiry


@functools.lru_cache(maxsize=4096)
def _span_end_timestamp(span: timescale.Span, zone_key: str) -> float:
    # The last buckets before the year 10000 end with the calendar: datetime.max, which still
    # gives a finite timestamp, hence a finite TTL (a date that far off is user input too).
    return timescale.end(span).replace(tzinfo=ZoneInfo(zone_key)).timestamp()


def _ttls(expiry: Sequence[tuple[int | None, float]], now: float) -> list[str]:
    """The TTL a key of each bucket gets when it is created (0: kept forever): its retention
    after the bucket's end, so a bucket written late still lives its whole retention."""
    return [str(0 if keep is None else int(keep + max(0.0, end - now)) + 1) for keep, end in expiry]


def batch_keys_and_args(kicks: Sequence[Kick], now: float | None = None) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of kick.lua writing ``kicks`` kick by kick in one atomic call (unnumbered).

    Each key is listed once and each counter group (a family's hashes in the kicks' buckets)
    described once, however many kicks share them (see the script's header for the layout).
    """
    now = timescale.now() if now is None else now
    script_keys: list[str] = []
    indexes: dict[str, int] = {}

    def index(key: str) -> int:
        found = indexes.get(key)
        if found is None:
            script_keys.append(key)
            found = indexes[key] = len(script_keys)
        return found

    groups: dict[tuple[tuple[str, ...], str], int] = {}
    group_args: list[str] = []
    # Per plan, in this call: its kicks' header ('A|y|year') and group numbers, and the
    # stored-choices set index of each axis ('0' when the axis stores none).
    encoded: dict[int, tuple[_Plan, str, tuple[int, ...], list[str]]] = {}
    kick_args: list[str] = []
    for kick in kicks:
        plan = _plan(kick.metrica, kick.spans, kick.families)
        known = encoded.get(id(plan))
        if known is None:
            ttls = "|".join(_ttls(plan.expiry, now))
            group_numbers = []
            for prefix, family_keys in zip(kick.families, plan.family_keys, strict=True):
                number = groups.get((family_keys, prefix))
                if number is None:
                    group_args.append(f"{prefix}|{ttls}|" + "|".join([str(index(key)) for key in family_keys]))
                    number = groups[(family_keys, prefix)] = len(group_args)
                group_numbers.append(number)
            years = index(plan.years_key) if plan.year else 0
            sets = [
                str(index(choices_key)) if cap >= 0 else "0"
                for (_, cap), choices_key in zip(kick.options, plan.choices_keys, strict=True)
            ]
            known = encoded[id(plan)] = (plan, f"{len(kick.options)}|{years}|{plan.year}", tuple(group_numbers), sets)
        _, head, numbers, sets = known
        counters = "".join([f"|{number}|{amount}" for number, amount in zip(numbers, kick.increments, strict=True)])
        ids = kick.unique if plan.unique_prefixes else ()
        kept = kick.metrica.combinations.wire
        # 'c' and 'u' after the axis count: the kept combinations and the kick's ids follow
        # its axes (see kick.lua).
        flags = ("c" if kept else "") + ("u" if ids else "")
        kick_args.append(head.replace("|", flags + "|", 1) + counters if flags else head + counters)
        for (parts, cap), choices_set in zip(kick.options, sets, strict=True):
            kick_args.append(f"{cap}|{choices_set}|" + "|".join(parts))
        if kept:
            kick_args.append(kept)
        if ids:
            kick_args.append(f"{len(plan.unique_prefixes)}|{len(ids)}|" + "|".join(_ttls(plan.unique_expiry, now)))
            kick_args.append(kick.metrica.uniques_axes.wire)
            kick_args.extend(plan.unique_prefixes)
            kick_args.extend(ids)
    return script_keys, [numbering.UNNUMBERED, f"{len(kicks)}|{len(group_args)}", *group_args, *kick_args]


# -- the buffered writer's encoding: counters merged over a whole flush ---------------------------

#: A chain of stored-choices decisions: (the set's key, the axis' cap, the members of one value
#: from its top level down).  choices.lua decides a chain's members in order.
Chain = tuple[str, int, tuple[str, ...]]


def chains(kicks: Sequence[Kick]) -> list[Chain]:
    """The stored-choices decisions ``kicks`` need, each once, in kick order within each set.

    choices.lua must decide a set's members in the order kicks brought them; different sets
    (axes, metricas) are independent.  So the kicks' options are read a column (an axis) at a
    time, and each distinct value of a stored axis once (``dict.fromkeys``, in C).
    """
    found: dict[Chain, None] = {}
    rows: dict[int, tuple[Metrica, list[tuple[tuple[tuple[str, ...], int], ...]]]] = {}
    for kick in kicks:
        held = rows.get(id(kick.metrica))
        if held is None:
            held = rows[id(kick.metrica)] = (kick.metrica, [])
        held[1].append(kick.options)
    for metrica, options in rows.values():
        base = metrica.base
        for (axis_name, axis), column in zip(metrica.axes.items(), zip(*options, strict=True), strict=False):
            if not axis.stores_choices:
                continue
            choices_key = keys.choices_key(base, axis_name)
            for parts, cap in dict.fromkeys(column):
                if cap >= 0 and len(parts) > 1:
                    found[(choices_key, cap, parts[1:])] = None
    return list(found)


def all_decided(kicks: Sequence[Kick], depths: dict[Chain, int]) -> list[Kick]:
    """:func:`decided` for every kick; the kicks themselves when every member was stored (the
    common case: a site's values fit in ``max_choices``)."""
    cut = {chain: depth for chain, depth in depths.items() if depth != len(chain[2])}
    if not cut:
        return list(kicks)
    plans = Plans()
    return [decided(kick, cut, plans) for kick in kicks]


class Plans:
    """The plans of the kicks of one flush, found by the identity of their parts (quicker
    than :func:`_plan`'s key; the kicks are alive meanwhile, so their ids are unique)."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found: dict[tuple[int, int, int], _Plan] = {}

    def of(self, kick: Kick) -> _Plan:
        key = (id(kick.metrica), id(kick.spans), id(kick.families))
        plan = self.found.get(key)
        if plan is None:
            plan = self.found[key] = _plan(kick.metrica, kick.spans, kick.families)
        return plan


def decided(kick: Kick, depths: dict[Chain, int], plans: Plans | None = None) -> Kick:
    """``kick`` with its stored axes' options as their decisions say: a member that did not
    fit its set counts under the overflow part (kick.lua's rule), and deeper levels not at all.

    ``depths``: how many members of each chain are stored (a chain missing is stored whole);
    ``plans``: the flush's (quicker when one is shared by its kicks).
    """
    plan = plans.of(kick) if plans is not None else _plan(kick.metrica, kick.spans, kick.families)
    options = kick.options
    changed = None
    for index, ((parts, cap), choices_key) in enumerate(zip(options, plan.choices_keys, strict=True)):
        if cap < 0 or len(parts) < 2:
            continue
        depth = depths.get((choices_key, cap, parts[1:]))
        if depth is None or depth == len(parts) - 1:
            continue
        if changed is None:
            changed = list(options)
        changed[index] = ((*parts[: depth + 1], keys.overflow_part(parts[depth])), cap)
    return kick if changed is None else kick._replace(options=tuple(changed))


class Group:
    """Counters of one family in one set of time buckets, merged over many kicks: a piece of
    them (:func:`merged_counters` yields a family's counters in several pieces)."""

    __slots__ = ("base", "every", "expiry", "hashes", "prefix", "sums", "year", "years_key")

    def __init__(self, plan: _Plan, family: int, prefix: str, base: str) -> None:
        self.base = base
        self.hashes = plan.family_keys[family]
        self.prefix = prefix
        self.expiry = plan.expiry
        self.year = plan.year
        self.years_key = plan.years_key
        #: field (prefix included) -> sum
        self.sums: dict[str, int] = {}
        #: whether the first of ``sums`` is the every-value field (counters.lua's TTL check)
        self.every = False

    def piece(self, sums: dict[str, int], every: bool = False) -> Group:
        """These counters (field names without the family prefix) in this group's hashes."""
        piece = Group.__new__(Group)  # (copy.copy of a slotted object costs several times this)
        piece.base, piece.hashes, piece.prefix, piece.expiry = self.base, self.hashes, self.prefix, self.expiry
        piece.year, piece.years_key = self.year, self.years_key
        prefix = self.prefix
        piece.sums = {prefix + name: total for name, total in sums.items()} if prefix else sums
        piece.every = every
        return piece


#: Most field names :func:`merged_counters` keeps built for the first axes of kicks (a few MB).
PREFIX_CACHE_FIELDS = 100_000
#: How many field names a tally collects before it counts them (a few MB).
COUNT_BATCH = 50_000


def merged_counters(kicks: Sequence[Kick]) -> Iterator[Group]:
    """Every counter ``kicks`` bump, each once with the sum of what they add to it, yielded in
    pieces as soon as they are complete, so that a flush sends the first while it is still
    adding up the next (see staste/buffer/).

    Kicks whose axis options were decided (see :func:`decided`).  The kicks of one metrica in
    one set of buckets are taken together: first the every-value field of each family (its sum
    is known before any kick is expanded, and sent first, the first call to touch a hash gives
    it its TTL: counters.lua), then, for each value of the first axis, the fields that start
    with it (no kick of another value reaches them: a deeper part of a path starts with its
    top), then the fields that start with '*', which every kick reaches.

    Why it is quick: a kick's fields (every combination of its axes' options, ``'|'``-joined)
    are built on the fields of its first axes, which are cached (Zipf-like values repeat
    heavily, so a 5-axis kick usually finds its first four axes' combinations built); the
    fields of the kicks that add 1 (a count: most of them) are counted by
    ``collections.Counter``, in C, in batches (so memory stays in proportion to the distinct
    counters); other amounts (a value, a response time) are added up field by field.  And they
    are expanded once per kick, not once per time bucket: counters.lua bumps each field in
    every hash of its group.
    """
    units: dict[tuple[str, tuple[timescale.Span, ...]], list[Kick]] = {}
    for kick in kicks:
        unit = units.get((kick.metrica.base, kick.spans))
        if unit is None:
            unit = units[(kick.metrica.base, kick.spans)] = []
        unit.append(kick)
    prefixes = _Prefixes()
    plans = Plans()
    # One metrica after the other (a call reaches one metrica's keys on a cluster).
    for base_and_spans in sorted(units, key=lambda found: found[0]):
        yield from _unit_counters(units[base_and_spans], prefixes, plans)


GroupKey = tuple[tuple[str, ...], str]


def _unit_counters(unit: list[Kick], prefixes: _Prefixes, plans: Plans) -> Iterator[Group]:
    """:func:`merged_counters` for the kicks of one metrica in one set of buckets.

    A field is a part of the first axis, then a *tail* (a combination of the other axes'
    parts).  Kicks with the same first-axis parts are taken together: their tails are counted
    once, then each tail's count goes to every field of those parts and to the '*' one, so the
    fields are built once per distinct tail rather than once per kick.
    """
    groups: dict[GroupKey, Group] = {}
    totals: dict[GroupKey, int] = {}
    plan_groups: dict[int, list[GroupKey]] = {}
    # the first axis' value -> its options (parts differ below a path's top) -> kicks
    by_value: dict[str | None, dict[Any, list[tuple[Kick, list[GroupKey]]]]] = {}
    for kick in unit:
        plan = plans.of(kick)
        group_keys = plan_groups.get(id(plan))
        if group_keys is None:
            group_keys = plan_groups[id(plan)] = []
            for family, prefix in enumerate(kick.families):
                group_key = (plan.family_keys[family], prefix)
                if group_key not in groups:
                    groups[group_key] = Group(plan, family, prefix, kick.metrica.base)
                    totals[group_key] = 0
                group_keys.append(group_key)
        for group_key, amount in zip(group_keys, kick.increments, strict=True):
            totals[group_key] += amount
        first = kick.options[0] if kick.options else ((), 0)
        value = first[0][1] if len(first[0]) > 1 else None  # None: the first axis has no value
        options = by_value.get(value)
        if options is None:
            options = by_value[value] = {}
        found = options.get(first)
        if found is None:
            found = options[first] = []
        found.append((kick, group_keys))
    every_mark = keys.ALL
    every_field = "|".join([every_mark] * len(unit[0].options))
    for group_key, group in groups.items():
        yield group.piece({every_field: totals[group_key]}, every=True)
    if not unit[0].options:
        return  # no axis: the every-value field is the only one
    kept = unit[0].metrica.combinations
    if not kept.everything:
        members = [member for options in by_value.values() for found in options.values() for member in found]
        yield from _kept_counters(members, groups, kept)
        return
    join = "|" if len(unit[0].options) > 1 else ""  # between the first part and a tail
    rest: dict[GroupKey, dict[str, int]] = {}  # per tail: what its '*' field adds up to
    for options in by_value.values():
        own: dict[GroupKey, dict[str, int]] = {}  # the fields that start with this value
        for (parts, _), members in options.items():
            tallies: dict[GroupKey, _Tally] = {}
            for kick, group_keys in members:
                tails = prefixes.fields(tuple([parts for parts, _ in kick.options[1:]]))
                for group_key, amount in zip(group_keys, kick.increments, strict=True):
                    tally = tallies.get(group_key)
                    if tally is None:
                        tally = tallies[group_key] = _Tally()
                    tally.add(tails, amount)
            for group_key, tally in tallies.items():
                starred = rest.get(group_key)
                if starred is None:
                    starred = rest[group_key] = {}
                fields = own.get(group_key)
                if fields is None:
                    fields = own[group_key] = {}
                get, add = starred.get, fields.get
                for tail, total in tally.sums().items():
                    starred[tail] = get(tail, 0) + total
                    for part in parts[1:]:
                        name = part + join + tail
                        fields[name] = add(name, 0) + total
        # No kick of another value reaches these: they are complete.
        for group_key, fields in own.items():
            yield groups[group_key].piece(fields)
    every_tail = every_field[len(every_mark) + len(join) :]
    for group_key, starred in rest.items():
        del starred[every_tail]  # sent first
        if starred:
            yield groups[group_key].piece({every_mark + join + tail: total for tail, total in starred.items()})


def _kept_counters(
    members: list[tuple[Kick, list[GroupKey]]], groups: dict[GroupKey, Group], kept: Combinations
) -> Iterator[Group]:
    """The counters (but the every-value ones) of kicks of a metrica that keeps only some
    combinations of axes (``Metrica(combinations=k)``), counted a kept set of axes at a time.

    Wide metricas are why combinations are pruned, and at 7 axes nearly every kick is distinct,
    so what is built per kick is what counts.  Here nothing is: for each kept set, the kicks'
    values on its axes are zipped column by column and counted by ``collections.Counter`` (in
    C) when they add 1, and a field name is built once per distinct combination found.  A path
    (a hierarchical axis) has a value per level: its kicks are expanded one by one.
    """
    width = len(members[0][0].options)
    # Per axis, per kick: its parts after '*' (one for a value, several for a path, none when
    # the kick gave the axis no value).
    columns = [[kick.options[axis][0][1:] for kick, _ in members] for axis in range(width)]
    firsts = [[parts[0] if len(parts) == 1 else None for parts in column] for column in columns]
    single = [all(len(parts) <= 1 for parts in column) for column in columns]
    every = [keys.ALL] * width
    # Per group: the positions of its kicks, and what each adds.
    by_group: dict[GroupKey, tuple[list[int], list[int]]] = {}
    for position, (kick, group_keys) in enumerate(members):
        for group_key, amount in zip(group_keys, kick.increments, strict=True):
            found = by_group.get(group_key)
            if found is None:
                found = by_group[group_key] = ([], [])
            found[0].append(position)
            found[1].append(amount)
    for group_key, (positions, amounts) in by_group.items():
        whole = len(positions) == len(members)
        ones = all(amount == 1 for amount in amounts)
        fields: dict[str, int] = {}
        for mask in kept.masks[1:]:
            axes = [axis for axis in range(width) if mask >> axis & 1]
            sums: dict[tuple[str, ...], int]
            if all(single[axis] for axis in axes):
                picked = [firsts[axis] if whole else [firsts[axis][p] for p in positions] for axis in axes]
                if ones:
                    sums = Counter(zip(*picked, strict=True))
                else:
                    sums = {}
                    for combination, amount in zip(zip(*picked, strict=True), amounts, strict=True):
                        sums[combination] = sums.get(combination, 0) + amount
            else:
                sums = {}
                for position, amount in zip(positions, amounts, strict=True):
                    for combination in itertools.product(*[columns[axis][position] for axis in axes]):
                        sums[combination] = sums.get(combination, 0) + amount
            for combination, total in sums.items():
                if None in combination:
                    continue  # a kick that gave one of these axes no value
                parts = list(every)
                for axis, part in zip(axes, combination, strict=True):
                    parts[axis] = part
                name = "|".join(parts)
                fields[name] = fields.get(name, 0) + total
        if fields:
            yield groups[group_key].piece(fields)


class _Tally:
    """What kicks add to some fields of one group (see :func:`merged_counters`)."""

    __slots__ = ("ones", "pending", "weighted")

    def __init__(self) -> None:
        self.ones: Counter[str] = Counter()  # field -> kicks adding 1 to it
        self.pending: list[str] = []  # fields of kicks adding 1, not counted yet
        self.weighted: dict[str, int] = {}  # field -> what the kicks adding other amounts add

    def add(self, names: list[str], amount: int) -> None:
        if amount == 1:
            self.pending += names
            if len(self.pending) >= COUNT_BATCH:
                self.ones.update(self.pending)
                self.pending.clear()
        else:
            weighted = self.weighted
            get = weighted.get
            for name in names:
                weighted[name] = get(name, 0) + amount

    def sums(self) -> dict[str, int]:
        self.ones.update(self.pending)
        self.pending.clear()
        sums: dict[str, int] = dict(self.ones)
        get = sums.get
        for name, total in self.weighted.items():
            sums[name] = get(name, 0) + total
        return sums


class _Prefixes:
    """The fields of the first axes of kicks, built once each (up to PREFIX_CACHE_FIELDS)."""

    __slots__ = ("cached", "size", "suffixes")

    def __init__(self) -> None:
        self.cached: dict[tuple[tuple[str, ...], ...], list[str]] = {(): [""]}
        self.size = 0
        self.suffixes: dict[tuple[str, ...], list[str]] = {}  # an axis' parts, each after a '|'

    def fields(self, options: tuple[tuple[str, ...], ...]) -> list[str]:
        """Every field of ``options``: the product of the axes' parts, ``'|'``-joined, the
        every-value field first."""
        cached = self.cached
        depth = len(options)
        while options[:depth] not in cached:
            depth -= 1
        fields = cached[options[:depth]]
        last = len(options) - 1
        for index in range(depth, last + 1):
            parts = options[index]
            if index:
                suffixes = self.suffixes.get(parts)
                if suffixes is None:
                    suffixes = self.suffixes[parts] = ["|" + part for part in parts]
                fields = [head + suffix for head in fields for suffix in suffixes]
            else:
                fields = list(parts)
            if index < last and self.size < PREFIX_CACHE_FIELDS:
                cached[options[: index + 1]] = fields
                self.size += len(fields)
        return fields


def choices_keys_and_args(decisions: Sequence[Chain]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of choices.lua deciding ``decisions`` in their order."""
    script_keys: list[str] = []
    indexes: dict[str, int] = {}
    args = []
    for choices_key, cap, members in decisions:
        index = indexes.get(choices_key)
        if index is None:
            script_keys.append(choices_key)
            index = indexes[choices_key] = len(script_keys)
        args.append(f"{index}|{cap}|" + "|".join(members))
    return script_keys, args


#: A slice of a group's counters for one call: (group, its [(field, sum)...], whether the
#: slice starts with the group's every-value field).
Chunk = tuple[Group, list[tuple[str, int]], bool]


def counters_keys_and_args(
    chunks: Sequence[Chunk], now: float | None = None, back: bool = False
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of counters.lua bumping (``back``: taking back) the counters of ``chunks``
    (unnumbered)."""
    now = timescale.now() if now is None else now
    script_keys: list[str] = []
    indexes: dict[str, int] = {}

    def index(key: str) -> int:
        found = indexes.get(key)
        if found is None:
            script_keys.append(key)
            found = indexes[key] = len(script_keys)
        return found

    args: list[Any] = [numbering.UNNUMBERED, f"{len(chunks)}|{int(back)}"]
    ttls_of: dict[tuple[tuple[int | None, float], ...], str] = {}  # (a call's groups share buckets)
    for group, items, every in chunks:
        ttls = ttls_of.get(group.expiry)
        if ttls is None:
            ttls = ttls_of[group.expiry] = "|".join(_ttls(group.expiry, now))
        years = index(group.years_key) if group.year else 0
        hashes = "|".join([str(index(key)) for key in group.hashes])
        args.append(f"{len(items)}|{int(every)}|{years}|{group.year}|{len(group.hashes)}|{ttls}|{hashes}")
        if back:
            args += [f"{-amount}|{name}" for name, amount in items]
        else:
            args += [f"{amount}|{name}" for name, amount in items]
    return script_keys, args


# -- unique ids: the HyperLogLogs a buffered flush adds to ---------------------------------------

#: The ids a flush adds to one HyperLogLog: (its metrica's base, its key, (retention or None,
#: bucket end), the ids).
Uniques = tuple[str, str, tuple[int | None, float], list[str]]


def merged_uniques(kicks: Sequence[Kick]) -> list[Uniques]:
    """Every HyperLogLog ``kicks`` (decided: see :func:`decided`) add ids to, each once with
    the union of their ids: the same combinations as their counters, in the buckets that keep
    uniques."""
    found: dict[str, tuple[str, tuple[int | None, float], dict[str, None]]] = {}
    for kick in kicks:
        if not kick.unique:
            continue
        plan = _plan(kick.metrica, kick.spans, kick.families)
        if not plan.unique_prefixes:
            continue
        fields = kept_fields(kick.metrica.uniques_axes, [parts for parts, _ in kick.options])
        for prefix, expiry in zip(plan.unique_prefixes, plan.unique_expiry, strict=True):
            for name in fields:
                key = prefix + name
                held = found.get(key)
                if held is None:
                    held = found[key] = (kick.metrica.base, expiry, {})
                held[2].update(dict.fromkeys(kick.unique))
    return [(base, key, expiry, list(ids)) for key, (base, expiry, ids) in found.items()]


def kept_fields(kept: Combinations, options: Sequence[tuple[str, ...]]) -> list[str]:
    """The fields of the combinations ``kept`` of each axis' parts ``options`` (the first of
    each '*'), the every-value field first: what kick.lua's expand() builds."""
    if kept.everything:
        fields = [""]
        for index, parts in enumerate(options):
            fields = [head + ("|" if index else "") + part for head in fields for part in parts]
        return fields
    found = []
    for mask in kept.masks:
        fields = [""]
        for index, parts in enumerate(options):
            glue = "|" if index else ""
            chosen = parts[1:] if mask >> index & 1 else parts[:1]
            fields = [head + glue + part for head in fields for part in chosen]
        found += fields
    return found


def ids_keys_and_args(items: Sequence[Uniques], now: float | None = None) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of ids.lua adding the ids of ``items`` (unnumbered; see the script's header)."""
    now = timescale.now() if now is None else now
    script_keys: list[str] = []
    args: list[Any] = [numbering.UNNUMBERED, str(len(items))]
    for _, key, expiry, ids in items:
        script_keys.append(key)
        args.append(f"{_ttls([expiry], now)[0]}|{len(ids)}")
        args.extend(ids)
    return script_keys, args
