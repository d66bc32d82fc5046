"""Metricas: named collections of counters that ``kick()`` bumps.

>>> guests = Metrica(name="guest_visits", axes=[("gender", Axis(choices=["boy", "girl"]))])
>>> guests.kick(gender="girl")                      # doctest: +SKIP
>>> guests.filter(gender="girl").total()            # doctest: +SKIP
1
"""

from __future__ import annotations

import datetime
import decimal
import fractions
import functools
import inspect
import logging
import math
import numbers
import os
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis

from staste import async_connection, buffer, conf, connection, keys, numbering, scripts, timescale, writers
from staste.axis import Axis
from staste.cohorts import marks, reading
from staste.cohorts.marks import users_axes_of
from staste.combinations import Combinations, Setting
from staste.exceptions import RedisUnavailable
from staste.histogram import PREFIXES as HISTOGRAM_PREFIXES
from staste.histogram import bucket_index as histogram_bucket
from staste.kicks import Kick, batch_keys_and_args
from staste.query import MetricaValues

logger = logging.getLogger("staste")

#: Every metrica alive, so that a changed setting reaches their caches (weakly: a metrica made
#: in a test and dropped is not kept alive by this).
_live: weakref.WeakSet[Metrica] = weakref.WeakSet()


@conf.on_config_change
def _forget_settings() -> None:
    """Key prefix and time zone may have changed: drop what each metrica derived from them."""
    for metrica in list(_live):
        metrica._base = None
        metrica._now_spans = None


#: An axis missing from a kick's values (None is a value: ``kick(age=None)``).
_MISSING = object()

#: \A and \Z, not ^ and $: "$" also matches before a trailing newline ("bad\n" would pass).
NAME_PATTERN = re.compile(r"\A[A-Za-z0-9_.\-]{1,200}\Z")
RESERVED_AXIS_NAMES = frozenset({"value", "date", "buffered", "unique"})
#: Units of time: the values of an AveragedMetrica in one of them are durations, whose sum
#: (809.84 ms of answering three requests) means nothing to a reader; pages hide it.
DURATION_UNITS = frozenset({"ns", "µs", "us", "ms", "s", "sec", "min", "h"})
MAX_UNIT_LENGTH = 20
#: The longest id ``kick(unique=...)`` takes (a HyperLogLog hashes it: longer ids only cost).
MAX_UNIQUE_LENGTH = 1000
#: The scales whose buckets keep HyperLogLogs unless ``uniques_scales=`` says otherwise (and
#: all time, always): a dense one is 12 KB per bucket and combination, so not per minute.
DEFAULT_UNIQUES_SCALES: tuple[str, ...] = ("year", "month", "day")
REDIS_INT_LIMIT = 2**63 - 1
#: The sets of axes whose HyperLogLogs are kept unless ``uniques_axes=`` says otherwise: the
#: whole metrica and each single axis.
DEFAULT_UNIQUES_AXES = 1

if TYPE_CHECKING:
    from typing import Concatenate, ParamSpec, TypeVar

    _P = ParamSpec("_P")
    _R = TypeVar("_R")

    def _forward(method: Callable[Concatenate[MetricaValues, _P], _R]) -> Callable[Concatenate[Metrica, _P], _R]:
        """A MetricaValues method as a metrica's (see _forwarded), its signature kept."""


class Metrica:
    """An event counter with axes, kept at every recorded time scale.

    ``kick()`` counts an event (or adds ``value``) under every combination of the given
    axis values and "all", in the all-time, year, month, day, hour and minute buckets.
    ``multiplier`` stores fractional values as integers (``multiplier=100`` keeps cents).
    ``unit`` ("ms", "€", "min") is what pages write after the values (never after counts).
    """

    averaged = False

    def __init__(
        self,
        name: str,
        axes: Sequence[tuple[str, Axis]] | Mapping[str, Axis] = (),
        multiplier: int | None = None,
        date_scales: Iterable[str] | None = None,
        *,
        title: str | None = None,
        description: str = "",
        category: str | None = None,
        buffered: bool = False,
        histogram: bool = False,
        unit: str = "",
        uniques: bool = False,
        uniques_scales: Iterable[str] | None = None,
        users: bool = False,
        users_axes: Iterable[str] = (),
        combinations: Setting = None,
        uniques_axes: Setting = None,
    ) -> None:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"metrica name {name!r} must be 1-200 characters of letters, digits, '_', '.' or '-'")
        self.name = name
        pairs = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
        self.axes: dict[str, Axis] = {}
        for axis_name, axis in pairs:
            if not isinstance(axis_name, str) or not axis_name.isidentifier():
                raise ValueError(f"{name}: axis name {axis_name!r} must be a Python identifier")
            if axis_name in RESERVED_AXIS_NAMES or axis_name in self.axes:
                raise ValueError(f"{name}: axis name {axis_name!r} is reserved or given twice")
            if not isinstance(axis, Axis):
                raise TypeError(f"{name}: axis {axis_name!r} must be an Axis, not {type(axis).__name__}")
            self.axes[axis_name] = axis
        if multiplier is not None and (
            isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1
        ):
            raise ValueError(f"{name}: multiplier must be a positive int, not {multiplier!r}")
        self.multiplier = multiplier
        scales = timescale.SCALES if date_scales is None else tuple(date_scales)
        for scale in scales:
            timescale.depth(scale)
        # Buckets nest, so a scale is only useful with every coarser scale recorded too.
        self.date_scales: tuple[str, ...] = timescale.SCALES[: max(map(timescale.depth, scales), default=0)]
        if not isinstance(unit, str) or len(unit) > MAX_UNIT_LENGTH:
            raise ValueError(f"{name}: unit must be a text of at most {MAX_UNIT_LENGTH} characters, not {unit!r}")
        #: What the values are counted in ("ms"); "" for plain counts.
        self.unit = unit.strip()
        self.title = title or name.replace("_", " ").capitalize()
        self.description = description
        self.category = category
        self.families: tuple[str, ...] = ("", keys.COUNT_MARK) if self.averaged else ("",)
        #: Whether kick() goes through the in-process buffer (staste.buffer) unless told otherwise.
        self.buffered = bool(buffered)
        #: Whether each kick's value is also counted in a histogram (staste.histogram), so that
        #: percentiles can be read back; its counters live in the hashes ``<base>h:<bucket>``.
        self.histogram = bool(histogram)
        self._histogram_families: tuple[tuple[str, ...], ...] = (
            tuple((*self.families, prefix) for prefix in HISTOGRAM_PREFIXES) if self.histogram else ()
        )
        #: Whether ``kick(unique=id)`` also counts distinct ids (HyperLogLogs, see docs/uniques.md).
        self.keeps_uniques = bool(uniques)
        if uniques_scales is not None and not self.keeps_uniques:
            raise TypeError(f"{name}: uniques_scales= needs uniques=True")
        if isinstance(uniques_scales, str):
            raise TypeError(f"{name}: uniques_scales must be a list of scales, not the text {uniques_scales!r}")
        wanted = DEFAULT_UNIQUES_SCALES if uniques_scales is None else tuple(uniques_scales)
        for scale in wanted:
            timescale.depth(scale)
        #: The scales (coarsest first, nested like ``date_scales``) whose buckets keep the ids'
        #: HyperLogLogs, besides all time; () when the metrica counts no uniques.
        self.uniques_scales: tuple[str, ...] = (
            self.date_scales[: min(len(self.date_scales), max(map(timescale.depth, wanted), default=0))]
            if self.keeps_uniques
            else ()
        )
        #: Whether ``kick(user=...)`` marks users in day, week and month bitmaps (staste.cohorts),
        #: and the axes whose values get bitmaps of their own (for funnel steps' filters).
        self.keeps_users = bool(users)
        self.users_axes: tuple[str, ...] = users_axes_of(self, users_axes)
        #: Which sets of axes get counters (``combinations=``: see staste.combinations).
        self.combinations = Combinations(tuple(self.axes), combinations, "combinations")
        if uniques_axes is not None and not self.keeps_uniques:
            raise TypeError(f"{name}: uniques_axes= needs uniques=True")
        #: Which sets of axes get HyperLogLogs (``uniques_axes=``; by default the totals and each
        #: single axis: a HyperLogLog is 12 KB once dense, so not 2ⁿ of them).
        self.uniques_axes = Combinations(
            tuple(self.axes),
            DEFAULT_UNIQUES_AXES if uniques_axes is None else uniques_axes,
            "uniques_axes",
            within=self.combinations,
        )
        self._signature_recorded: tuple[int, str] | None = None
        self._last_spans: tuple[tuple[int, ...], tuple[timescale.Span, ...]] | None = None
        # Derived from settings: forgotten by _forget_settings when one changes.
        self._now_spans: tuple[float, float, tuple[timescale.Span, ...]] | None = None
        self._base: str | None = None
        _live.add(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} axes={list(self.axes)}>"

    @property
    def base(self) -> str:
        """Start of every Redis key of this metrica (follows the prefix setting when it changes)."""
        base = self._base
        if base is None:
            base = self._base = keys.metrica_base(conf.get("STASTE_METRICS_PREFIX"), self.name)
        return base

    @property
    def summable(self) -> bool:
        """Whether the sum of the values means something: not for an AveragedMetrica of durations."""
        return not (self.averaged and self.unit in DURATION_UNITS)

    def signature(self) -> str:
        """What the axes look like, to detect axes changed after data was written."""
        axes = ";".join(f"{name}={axis.signature()}" for name, axis in self.axes.items())
        kept = self.combinations.signature()
        signature = f"{type(self).__name__}|{self.multiplier}|{axes}"
        if kept:
            signature += f"|combinations={kept}"
        default = Combinations(tuple(self.axes), DEFAULT_UNIQUES_AXES, "uniques_axes")
        if self.keeps_uniques and self.uniques_axes.kept != default.kept:
            signature += f"|uniques_axes={self.uniques_axes.signature() or '*'}"
        return signature

    # -- writing ---------------------------------------------------------------------------

    def scaled(self, value: Any) -> int:
        """``value`` as the integer stored in Redis; ValueError for anything else."""
        if type(value) is int:  # the common case, without the ABC checks below
            amount = value * (self.multiplier or 1)
        elif type(value) is float and math.isfinite(value) and self.multiplier is not None:
            # As below (the shortest decimal text of the float, times the multiplier, rounded
            # half to even), in integers rather than Fractions: response times are floats.
            # The float product is within a few ulps of that exact product, so away from a
            # half (x.5) both round alike and the product is enough; near one, the exact way.
            product = value * self.multiplier
            amount = round(product)
            if abs(abs(product - amount) - 0.5) <= abs(product) * 1e-12 + 1e-9:
                numerator, denominator = decimal.Decimal(repr(value)).as_integer_ratio()
                amount, rest = divmod(numerator * self.multiplier, denominator)
                if 2 * rest > denominator or (2 * rest == denominator and amount % 2):
                    amount += 1
        elif isinstance(value, bool) or not isinstance(value, numbers.Number) or isinstance(value, complex):
            raise ValueError(f"{self.name}: value must be a number, not {value!r}")
        elif isinstance(value, numbers.Integral):
            amount = int(value) * (self.multiplier or 1)
        else:
            if isinstance(value, (float, decimal.Decimal)) and not math.isfinite(value):
                raise ValueError(f"{self.name}: value must be finite, not {value!r}")
            # Read floats through their shortest decimal text, so 0.16 * 100 is exactly 16.
            exact = fractions.Fraction(decimal.Decimal(repr(value)) if isinstance(value, float) else value)
            if self.multiplier is None:
                if exact.denominator != 1:
                    raise ValueError(
                        f"{self.name}: value {value!r} is not whole; give the metrica a multiplier "
                        "(multiplier=100 keeps two decimals)"
                    )
                amount = int(exact)
            else:
                amount = round(exact * self.multiplier)
        if abs(amount) > REDIS_INT_LIMIT // 1024:
            raise ValueError(f"{self.name}: value {value!r} is too large to count")
        return int(amount)

    def unique_id(self, unique: Any) -> str:
        """The id ``kick(unique=...)`` adds to the HyperLogLogs, as text (``7`` and ``"7"`` are one id).

        TypeError on a metrica without ``uniques=True`` or for an id neither str nor int;
        ValueError for an id too long, or not valid Unicode (checked here, where the id enters:
        a buffered kick is written later, by a thread that cannot give the error back).
        """
        if not self.keeps_uniques:
            raise TypeError(f"{self.name}.kick() got unique=, but {self.name} was not made with uniques=True")
        if type(unique) is str:
            text = unique
        elif isinstance(unique, int) and not isinstance(unique, bool):
            text = str(int(unique))
        else:
            raise TypeError(f"{self.name}: unique= must be a str or an int, not {type(unique).__name__}")
        if len(text) > MAX_UNIQUE_LENGTH:
            raise ValueError(f"{self.name}: unique= is longer than {MAX_UNIQUE_LENGTH} characters")
        try:
            text.encode("utf-8")  # a lone surrogate (a JSON body may carry "\\ud800") cannot be sent
        except UnicodeEncodeError:
            raise ValueError(f"{self.name}: unique= {text[:40]!r} is not valid Unicode text") from None
        return text

    def prepare_kick(
        self,
        value: Any = 1,
        date: datetime.date | datetime.datetime | None = None,
        unique: str | int | None = None,
        **axis_values: Any,
    ) -> Kick:
        """Validate a kick completely, without touching Redis."""
        user = axis_values.pop("user", None) if "user" not in self.axes else None
        ids = () if unique is None else (self.unique_id(unique),)
        options = self._options(axis_values)
        spans = self._spans_now() if date is None else self._spans_at(date)
        families, increments = self.increments(value)
        marked = () if user is None else (marks.kick_mark(self, user, date, options),)
        return Kick(self, spans, families, increments, options, ids, marked)

    def _options(self, axis_values: dict[str, Any]) -> tuple[tuple[tuple[str, ...], int], ...]:
        """The validated options (``Axis.kick_option``) of a kick's axis values.

        The hot path of every kick: a str value an axis checked before is found in that
        axis' memo without a method call (its memo holds only what ``kick_option`` would
        answer), and unknown axis names are found by counting the names matched.
        """
        options = []
        matched = 0
        for axis_name, axis in self.axes.items():
            value = axis_values.get(axis_name, _MISSING)
            if value is _MISSING:
                value = None
            else:
                matched += 1
            option = axis._memo.get(value) if type(value) is str else None
            if option is None:
                try:
                    option = axis.kick_option(value)
                except ValueError as exc:
                    self._check_axis_names(axis_values)
                    raise ValueError(f"{self.name}: axis {axis_name!r}: {exc}") from None
            options.append(option)
        if matched != len(axis_values):
            self._check_axis_names(axis_values)
        return tuple(options)

    def _check_axis_names(self, axis_values: dict[str, Any]) -> None:
        """TypeError naming the first of ``axis_values`` that is not an axis of this metrica."""
        for name in axis_values:
            if name not in self.axes:
                axes = list(self.axes) or "none"
                raise TypeError(f"{self.name}.kick() got unknown axis {name!r}; its axes are {axes}")

    def _spans_at(self, date: datetime.date | datetime.datetime) -> tuple[timescale.Span, ...]:
        """The spans of a kick dated ``date``, remembered for the last minute asked for."""
        moment = conf.local(date)
        minute = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
        last = self._last_spans
        if last is not None and last[0] == minute:
            return last[1]
        spans = tuple(timescale.spans_of(moment, self.date_scales))
        self._last_spans = (minute, spans)
        return spans

    def _buffer(
        self, value: Any, date: datetime.date | datetime.datetime | None, unique: Any, axis_values: dict[str, Any]
    ) -> None:
        """Hold a kick in the process' buffer (``kick(buffered=True)``), validated first.

        The hot path of buffered kicks: a kick landing on counters already held only adds its
        increments to them, under a key cheaper to hash than ``Kick.merge_key()``: the options,
        and the identities of the spans and families tuples (the metrica's, and the held kick
        keeps them alive, so no other object takes their ids meanwhile; equal tuples under
        other ids make another entry, merged at the flush).  A Kick is built only for a new key.
        """
        if unique is not None or ("user" in axis_values and "user" not in self.axes):
            buffer.add(self.prepare_kick(value, date, unique, **axis_values))
            return
        options = self._options(axis_values)
        spans = self._spans_now() if date is None else self._spans_at(date)
        families, increments = self.increments(value)
        key = (options, id(spans), id(families))
        if not buffer.bump(key, increments):
            buffer.add(Kick(self, spans, families, increments, options), key)

    def increments(self, value: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """The counter families a kick of ``value`` bumps, and by how much each.

        The one place that knows the layout: the value scaled (:meth:`scaled`), then the
        count of an averaged metrica, then the histogram bucket's count.  ``kick()`` and the
        response-time middleware's fast path both use it, so they never store a value
        differently.

        >>> AveragedMetrica(name="t", multiplier=1000, histogram=True).increments(0.5015)
        (('', '#', '~28'), (502, 1, 1))
        """
        amount = self.scaled(value)
        if self.histogram:
            bucket = histogram_bucket(value if type(value) is int or type(value) is float else float(value))
            return self._histogram_families[bucket], ((amount, 1, 1) if self.averaged else (amount, 1))
        return self.families, ((amount, 1) if self.averaged else (amount,))

    def _spans_now(self) -> tuple[timescale.Span, ...]:
        """The spans of a kick made now: those of ``conf.local()``, remembered for the minute."""
        now = timescale.now()
        cached = self._now_spans
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2]
        local = datetime.datetime.fromtimestamp(now, conf.time_zone())  # what datetime.now() does
        spans = tuple(timescale.spans_of(local, self.date_scales))
        start = local.replace(second=0, microsecond=0).timestamp()
        # Up to 1 µs before the minute's end: fromtimestamp() rounds to the microsecond.
        self._now_spans = (start, start + 59.999999, spans)
        return spans

    def kick(
        self,
        value: Any = 1,
        date: datetime.date | datetime.datetime | None = None,
        buffered: bool | None = None,
        unique: str | int | None = None,
        **axis_values: Any,
    ) -> None:
        """Count one event (of weight ``value``) at ``date`` (default: now) in one round trip.

        Invalid input raises ValueError or TypeError before anything is written.  When Redis
        is unreachable this raises :class:`staste.exceptions.RedisUnavailable` (when it
        refuses writes, being full or a read-only replica, redis-py's error), unless
        ``STASTE_FAIL_SILENTLY`` is on, in which case the kick is logged and dropped.

        A kick is counted exactly once when this returns, even when its reply was lost and
        the call sent again (see :mod:`staste.writers`); a kick that raised RedisUnavailable
        because Redis stopped answering mid-call (a timeout) may have been counted, once, or
        not at all.

        Buffered (``buffered=True``, or a metrica made with ``buffered=True``), the kick is
        only added to this process' buffer (no round trip; see :mod:`staste.buffer`), which a
        background thread writes within ``STASTE_FLUSH_INTERVAL`` seconds; it never raises
        RedisUnavailable.

        ``unique`` (a metrica made with ``uniques=True``): an id (a visitor, a user: str or
        int) also added to the HyperLogLogs of the kick's buckets and combinations, so that
        ``uniques()`` counts distinct ids (see docs/uniques.md).

        ``user`` (a metrica made with ``users=True``): a user object or its id, marked in the
        day, ISO week and month bitmaps of the kick, so that ``users()``, funnels and
        retention tables count exact users (see docs/cohorts.md).  It then costs a second
        call, made first (setting a bit is idempotent, so a kick retried after an error marks
        nothing twice).
        """
        if self.buffered if buffered is None else buffered:
            self._buffer(value, date, unique, axis_values)
        else:
            self.write(self.prepare_kick(value, date, unique, **axis_values))

    async def akick(
        self,
        value: Any = 1,
        date: datetime.date | datetime.datetime | None = None,
        buffered: bool | None = None,
        unique: str | int | None = None,
        **axis_values: Any,
    ) -> None:
        """:meth:`kick` for async code (``await metrica.akick(gender="girl")``).

        The same validation, errors and single round trip, through the running event loop's
        ``redis.asyncio`` client (:mod:`staste.async_connection`), so the loop is never blocked
        on Redis.  Buffered, it is the same dict update as ``kick()`` (no I/O, nothing awaited
        in vain).
        """
        if self.buffered if buffered is None else buffered:
            self._buffer(value, date, unique, axis_values)
        else:
            await self.awrite(self.prepare_kick(value, date, unique, **axis_values))

    def write(self, kick: Kick) -> None:
        """Write one prepared kick now, numbered by this thread's writer (exactly once)."""
        script_keys, args = numbering.stamped(*batch_keys_and_args([kick]), writers.current().numbers(self.base))
        try:
            self.record_signature()
            if kick.users:  # (staste.cohorts) first: a kick retried after an error marks nothing twice
                self._mark(kick)
            scripts.run("kick", script_keys, args)
        except (RedisUnavailable, redis.ResponseError) as exc:
            self._write_failed(exc)

    async def awrite(self, kick: Kick) -> None:
        """:meth:`write`, awaited: one round trip (two on a process' first kick of this metrica),
        numbered by a writer borrowed for the call (:func:`staste.writers.borrowed`), so a call
        sent again after a lost reply is counted once, as for ``kick()``."""
        with writers.borrowed() as writer:
            script_keys, args = numbering.stamped(*batch_keys_and_args([kick]), writer.numbers(self.base))
            try:
                await self.arecord_signature()
                if kick.users:
                    await self._amark(kick)
                await scripts.arun("kick", script_keys, args)
            except (RedisUnavailable, redis.ResponseError) as exc:
                self._write_failed(exc)

    def _mark(self, kick: Kick) -> None:
        """Run the users.lua call of ``kick``'s marks; ValueError (nothing written) when new
        ids would pass STASTE_MAX_USER_POSITION."""
        try:
            scripts.run("users", *marks.keys_and_args(kick.users, timescale.now()))
        except redis.ResponseError as exc:
            raise marks.refusal(exc) from None

    async def _amark(self, kick: Kick) -> None:
        """:meth:`_mark`, awaited."""
        try:
            await scripts.arun("users", *marks.keys_and_args(kick.users, timescale.now()))
        except redis.ResponseError as exc:
            raise marks.refusal(exc) from None

    def _write_failed(self, exc: RedisUnavailable | redis.ResponseError) -> None:
        """Raise what a failed write means for the caller, or log it when failing silently."""
        if isinstance(exc, RedisUnavailable):
            if not conf.get("STASTE_FAIL_SILENTLY"):
                raise exc
            logger.warning("staste: dropped a kick of %s: Redis unavailable", self.name, exc_info=exc)
            return
        if str(exc).startswith(scripts.OVERFLOW):  # kick.lua took the kick back entirely
            raise ValueError(
                f"{self.name}: the kick would push a counter past Redis' limit (2**63 - 1); nothing was written"
            ) from None
        if not (scripts.refused_before_writing(exc) and conf.get("STASTE_FAIL_SILENTLY")):
            raise exc
        logger.warning("staste: dropped a kick of %s: Redis refused it (%s)", self.name, exc)

    def record_signature(self) -> None:
        """Remember in Redis what the axes looked like when data was first written.

        Done once per process and metrica (SET NX, so the first writer wins); the system
        check staste.E002 compares it with the code's axes.
        """
        pid = os.getpid()
        if self._signature_recorded == (pid, self.base):
            return
        with scripts.translated_errors():
            connection.get_redis().set(keys.signature_key(self.base), self.signature(), nx=True)
        self._signature_recorded = (pid, self.base)

    async def arecord_signature(self) -> None:
        """:meth:`record_signature`, awaited."""
        pid = os.getpid()
        if self._signature_recorded == (pid, self.base):
            return
        with scripts.translated_errors():
            async with async_connection.using() as client:
                await client.set(keys.signature_key(self.base), self.signature(), nx=True)
        self._signature_recorded = (pid, self.base)

    # -- users (a metrica made with users=True): staste.cohorts ----------------------------------

    def users(self, since: Any, until: Any = None, **axis_values: Any) -> int:
        """Exact distinct users who kicked this metrica from the day of ``since`` to that of
        ``until`` (default today), both included; ``axis_values``: one value of an axis of
        ``users_axes``.  One pipeline of BITOPs (docs/cohorts.md).

        >>> signups.users(datetime.date(2024, 3, 1), datetime.date(2024, 3, 31))  # doctest: +SKIP
        1284
        """
        return reading.users(self.values().filter(**axis_values), since, until)

    def user_ids(self, since: Any, until: Any = None, limit: int = 1000, **axis_values: Any) -> list[Any]:
        """The ids of the users :meth:`users` counts, at most ``limit`` (TooManyUsers past it)."""
        return reading.user_ids(self.values().filter(**axis_values), since, until, limit)

    # -- reading: values() and the query methods of QUERY_METHODS (below), forwarded to it ----

    def values(self) -> MetricaValues:
        """All of this metrica's values, all time: the start of every query."""
        return MetricaValues(self)

    if TYPE_CHECKING:  # what the loop below sets, for type checkers (tests/test_structure.py compares)
        timespan = _forward(MetricaValues.timespan)
        filter = _forward(MetricaValues.filter)
        total = _forward(MetricaValues.total)
        iterate = _forward(MetricaValues.iterate)
        timeserie = _forward(MetricaValues.timeserie)
        percentile = _forward(MetricaValues.percentile)
        percentiles = _forward(MetricaValues.percentiles)
        percentiles_over = _forward(MetricaValues.percentiles_over)
        timeserie_percentiles = _forward(MetricaValues.timeserie_percentiles)
        atotal = _forward(MetricaValues.atotal)
        aiterate = _forward(MetricaValues.aiterate)
        atimeserie = _forward(MetricaValues.atimeserie)
        apercentile = _forward(MetricaValues.apercentile)
        apercentiles = _forward(MetricaValues.apercentiles)
        apercentiles_over = _forward(MetricaValues.apercentiles_over)
        atimeserie_percentiles = _forward(MetricaValues.atimeserie_percentiles)
        over = _forward(MetricaValues.over)
        top = _forward(MetricaValues.top)
        atop = _forward(MetricaValues.atop)
        iterate_percentiles = _forward(MetricaValues.iterate_percentiles)
        aiterate_percentiles = _forward(MetricaValues.aiterate_percentiles)
        uniques = _forward(MetricaValues.uniques)
        iterate_uniques = _forward(MetricaValues.iterate_uniques)
        timeserie_uniques = _forward(MetricaValues.timeserie_uniques)
        auniques = _forward(MetricaValues.auniques)
        aiterate_uniques = _forward(MetricaValues.aiterate_uniques)
        atimeserie_uniques = _forward(MetricaValues.atimeserie_uniques)
        apdex = _forward(MetricaValues.apdex)
        iterate_apdex = _forward(MetricaValues.iterate_apdex)
        aapdex = _forward(MetricaValues.aapdex)
        aiterate_apdex = _forward(MetricaValues.aiterate_apdex)


class AveragedMetrica(Metrica):
    """A metrica that also counts its events, so averages can be read back.

    >>> m = AveragedMetrica(name="order_value", axes=[], multiplier=100)
    >>> m.kick(value=12.5); m.kick(value=7.5)          # doctest: +SKIP
    >>> m.values().average()                          # doctest: +SKIP
    10.0
    """

    averaged = True

    if TYPE_CHECKING:  # AVERAGED_QUERY_METHODS, as above
        count = _forward(MetricaValues.count)
        average = _forward(MetricaValues.average)
        iterate_counts = _forward(MetricaValues.iterate_counts)
        iterate_averages = _forward(MetricaValues.iterate_averages)
        timeserie_counts = _forward(MetricaValues.timeserie_counts)
        timeserie_counts_and_averages = _forward(MetricaValues.timeserie_counts_and_averages)
        acount = _forward(MetricaValues.acount)
        aaverage = _forward(MetricaValues.aaverage)
        aiterate_counts = _forward(MetricaValues.aiterate_counts)
        aiterate_averages = _forward(MetricaValues.aiterate_averages)
        atimeserie_counts = _forward(MetricaValues.atimeserie_counts)
        atimeserie_counts_and_averages = _forward(MetricaValues.atimeserie_counts_and_averages)


#: The query methods a metrica answers itself, as ``metrica.values().<name>(...)``: every public
#: method of MetricaValues is listed here or in NOT_FORWARDED (tests/test_structure.py checks it).
#: A method added to MetricaValues (``atotal``, ``aiterate``, ``top``, ...) is forwarded by adding
#: its name here, and nothing else: coroutine functions are forwarded as coroutine functions.
QUERY_METHODS: tuple[str, ...] = (
    "timespan",
    "filter",
    "total",
    "iterate",
    "timeserie",
    "percentile",
    "percentiles",
    "percentiles_over",
    "timeserie_percentiles",
    "atotal",
    "aiterate",
    "atimeserie",
    "apercentile",
    "apercentiles",
    "apercentiles_over",
    "atimeserie_percentiles",
    "over",
    "top",
    "atop",
    "iterate_percentiles",
    "aiterate_percentiles",
    "uniques",
    "iterate_uniques",
    "timeserie_uniques",
    "auniques",
    "aiterate_uniques",
    "atimeserie_uniques",
    "apdex",
    "iterate_apdex",
    "aapdex",
    "aiterate_apdex",
)
#: Those that only an AveragedMetrica answers (it counts its events).
AVERAGED_QUERY_METHODS: tuple[str, ...] = (
    "count",
    "average",
    "iterate_counts",
    "iterate_averages",
    "timeserie_counts",
    "timeserie_counts_and_averages",
    "acount",
    "aaverage",
    "aiterate_counts",
    "aiterate_averages",
    "atimeserie_counts",
    "atimeserie_counts_and_averages",
)
#: Public MetricaValues methods a metrica does not forward: building blocks of the others.
NOT_FORWARDED: frozenset[str] = frozenset({"series_spans", "require_kept"})


def _forwarded(name: str) -> Callable[..., Any]:
    method = getattr(MetricaValues, name)
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def forward_async(self: Metrica, *args: Any, **kwargs: Any) -> Any:
            return await getattr(self.values(), name)(*args, **kwargs)

        return forward_async

    @functools.wraps(method)
    def forward(self: Metrica, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.values(), name)(*args, **kwargs)

    return forward


for _name in QUERY_METHODS:
    setattr(Metrica, _name, _forwarded(_name))
for _name in AVERAGED_QUERY_METHODS:
    setattr(AveragedMetrica, _name, _forwarded(_name))
del _name
