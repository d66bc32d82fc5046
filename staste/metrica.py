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
import logging
import math
import numbers
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from staste import conf, connection, keys, scripts, timescale
from staste.axis import Axis
from staste.exceptions import RedisUnavailable
from staste.histogram import PREFIXES as HISTOGRAM_PREFIXES
from staste.histogram import bucket_index as histogram_bucket

if TYPE_CHECKING:
    from staste.query import MetricaValues

logger = logging.getLogger("staste")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
RESERVED_AXIS_NAMES = frozenset({"value", "date", "buffered"})
REDIS_INT_LIMIT = 2**63 - 1


@dataclass(frozen=True, init=False)
class Kick:
    """One validated kick, ready to be written; identical kicks merge by adding increments.

    ``spans`` are the buckets it lands in, ``families`` the field prefixes whose counters it
    bumps by ``increments``, and ``options`` each axis' field parts with the axis' cap on
    stored choices (-1: stores none, 0: unbounded; see kick.lua).
    """

    metrica: Metrica
    spans: tuple[timescale.Span, ...]
    families: tuple[str, ...]
    increments: tuple[int, ...]
    options: tuple[tuple[tuple[str, ...], int], ...]

    def __init__(
        self,
        metrica: Metrica,
        spans: tuple[timescale.Span, ...],
        families: tuple[str, ...],
        increments: tuple[int, ...],
        options: tuple[tuple[tuple[str, ...], int], ...],
    ) -> None:
        # Straight into __dict__: the generated __init__ of a frozen dataclass pays an
        # object.__setattr__ per field, and a kick is made for every request.
        fields = self.__dict__
        fields["metrica"] = metrica
        fields["spans"] = spans
        fields["families"] = families
        fields["increments"] = increments
        fields["options"] = options

    def merge_key(self) -> tuple[Any, ...]:
        return (self.metrica.base, self.spans, self.families, self.options)

    def merged(self, other: Kick) -> Kick:
        total = tuple(a + b for a, b in zip(self.increments, other.increments, strict=True))
        return Kick(self.metrica, self.spans, self.families, total, self.options)

    def segment(self, now: float) -> tuple[list[str], list[Any]]:
        """This kick's KEYS and ARGV segment of kick.lua."""
        plan = _plan(self.metrica, self.spans, self.families)
        script_keys = list(plan.keys)
        # Few arguments, '|'-joined: no part, prefix or number holds a '|' (values are escaped).
        args: list[Any] = [
            plan.head,
            "|".join([f"{prefix}|{amount}" for prefix, amount in zip(self.families, self.increments, strict=True)]),
            "|".join([str(0 if keep is None else int(keep + max(0.0, end - now)) + 1) for keep, end in plan.expiry]),
        ]
        for (parts, cap), choices_key in zip(self.options, plan.choices_keys, strict=True):
            args.append(f"{cap}|" + "|".join(parts))
            if cap >= 0:
                script_keys.append(choices_key)
        return script_keys, args


@dataclass(frozen=True)
class _Plan:
    """What every kick of one metrica into the same buckets shares: keys and expiry data."""

    keys: tuple[str, ...]
    head: str  # kick.lua's first argument of a kick: "T|A|year"
    expiry: tuple[tuple[int | None, float], ...]  # (retention or None, bucket end) per span
    choices_keys: tuple[str, ...]


_plans: dict[tuple[Any, ...], _Plan] = {}
_plans_config: list[Any] = [None]


def _plan(metrica: Metrica, spans: tuple[timescale.Span, ...], families: tuple[str, ...]) -> _Plan:
    """The cached plan of kicks into ``spans``: all kicks of one minute share one.

    Building keys and bucket ends is most of the cost of encoding a kick; the plans are
    dropped when a setting changes (prefix, retention and time zone are settings).
    """
    config = conf.get_config()
    if _plans_config[0] is not config or len(_plans) > 4096:
        _plans.clear()
        _plans_config[0] = config
    cache_key = (metrica.name, tuple(metrica.axes), spans, families)
    plan = _plans.get(cache_key)
    if plan is None:
        base = metrica.base
        hash_keys = [
            keys.bucket_key(base + family_infix(prefix), timescale.bucket_id(span))
            for prefix in families
            for span in spans
        ]
        year = next((str(span[0]) for span in spans if len(span) == 1), "")
        retention = conf.retention()
        expiry = []
        for span in spans:
            scale = timescale.scale_of(span)
            keep = retention.get(scale) if scale else None
            expiry.append((keep, 0.0 if keep is None else _span_end_timestamp(span, conf.time_zone().key)))
        plan = _Plan(
            keys=(*hash_keys, keys.years_key(base)) if year else tuple(hash_keys),
            head=f"{len(spans)}|{len(metrica.axes)}|{year}",
            expiry=tuple(expiry),
            choices_keys=tuple(keys.choices_key(base, axis_name) for axis_name in metrica.axes),
        )
        _plans[cache_key] = plan
    return plan


#: How long Redis remembers a buffered writer's last call (``<base>w:<writer>``): a call
#: whose reply was lost is recognised when it is sent again within this time.
WRITER_TTL = 7 * 24 * 3600


def batch_keys_and_args(
    kicks: Sequence[Kick], now: float | None = None, writer: tuple[str, int] | None = None
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of kick.lua for writing ``kicks`` in one atomic call.

    ``writer`` — (writer id, call number), numbers increasing per writer — makes the call
    idempotent: a buffer that lost a reply (a timeout, a reset connection) cannot know whether
    the call ran, so it sends the same call again and kick.lua skips it if it already ran.
    """
    now = time.time() if now is None else now
    script_keys: list[str] = []
    args: list[Any] = [len(kicks) if writer is None else f"{len(kicks)}|{writer[1]}|{WRITER_TTL}"]
    for kick in kicks:
        kick_keys, kick_args = kick.segment(now)
        script_keys += kick_keys
        args += kick_args
    if writer is not None:
        script_keys.append(keys.writer_key(kicks[0].metrica.base, writer[0]))
    return script_keys, args


@functools.cache
def _buffer_module() -> Any:
    """staste.buffer, imported on first use (it imports this module)."""
    from staste import buffer

    return buffer


def family_infix(prefix: str) -> str:
    """Families whose prefix starts with '~' live in hashes of their own (e.g. histograms)."""
    return "h:" if prefix.startswith("~") else ""


@functools.lru_cache(maxsize=4096)
def _span_end_timestamp(span: timescale.Span, zone_key: str) -> float:
    # The last buckets before the year 10000 end with the calendar: datetime.max, which still
    # gives a finite timestamp, hence a finite TTL (a date that far off is user input too).
    end = timescale.end(span)
    return end.replace(tzinfo=conf.time_zone()).timestamp()


def ttl(span: timescale.Span, now: float) -> int:
    """Seconds a bucket is kept: its scale's retention after the later of its end and now."""
    scale = timescale.scale_of(span)
    keep = conf.retention().get(scale) if scale else None
    if keep is None:
        return 0
    end = _span_end_timestamp(span, conf.time_zone().key)
    return int(keep + max(0.0, end - now)) + 1


def to_local(moment: datetime.date | datetime.datetime | None) -> datetime.datetime:
    """A naive datetime in the staste time zone's calendar.

    Aware datetimes are converted; naive ones are taken to be local already (as Django does
    with ``USE_TZ``); dates are midnight; ``None`` is now.
    """
    zone = conf.time_zone()
    if moment is None:
        return datetime.datetime.now(zone).replace(tzinfo=None)
    if not isinstance(moment, datetime.datetime):
        if isinstance(moment, datetime.date):
            return datetime.datetime(moment.year, moment.month, moment.day)
        raise TypeError(f"date must be a datetime or a date, not {type(moment).__name__}")
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        try:
            return moment.astimezone(zone).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"date {moment.isoformat()} is out of range in the {zone.key} time zone") from None
    return moment.replace(tzinfo=None)


class Metrica:
    """An event counter with axes, kept at every recorded time scale.

    ``kick()`` counts an event (or adds ``value``) under every combination of the given
    axis values and "all", in the all-time, year, month, day, hour and minute buckets.
    ``multiplier`` stores fractional values as integers (``multiplier=100`` keeps cents).
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
    ) -> None:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
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
        self._signature_recorded: tuple[int, str] | None = None
        self._last_spans: tuple[tuple[int, ...], tuple[timescale.Span, ...]] | None = None
        self._now_spans: tuple[dict[str, Any], float, float, tuple[timescale.Span, ...]] | None = None
        self._base: tuple[dict[str, Any], str] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} axes={list(self.axes)}>"

    @property
    def base(self) -> str:
        """Start of every Redis key of this metrica (follows the prefix setting when it changes)."""
        config = conf.get_config()
        cached = self._base
        if cached is None or cached[0] is not config:
            cached = self._base = (config, keys.metrica_base(config["STASTE_METRICS_PREFIX"], self.name))
        return cached[1]

    def signature(self) -> str:
        """What the axes look like, to detect axes changed after data was written."""
        axes = ";".join(f"{name}={axis.signature()}" for name, axis in self.axes.items())
        return f"{type(self).__name__}|{self.multiplier}|{axes}"

    # -- writing ---------------------------------------------------------------------------

    def scaled(self, value: Any) -> int:
        """``value`` as the integer stored in Redis; ValueError for anything else."""
        if type(value) is int:  # the common case, without the ABC checks below
            amount = value * (self.multiplier or 1)
        elif type(value) is float and math.isfinite(value) and self.multiplier is not None:
            # As below (the shortest decimal text of the float, times the multiplier, rounded
            # half to even), in integers rather than Fractions: response times are floats.
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

    def prepare_kick(
        self, value: Any = 1, date: datetime.date | datetime.datetime | None = None, **axis_values: Any
    ) -> Kick:
        """Validate a kick completely, without touching Redis."""
        axes = self.axes
        for name in axis_values:
            if name not in axes:
                raise TypeError(f"{self.name}.kick() got unknown axis {name!r}; its axes are {list(axes) or 'none'}")
        options: list[tuple[tuple[str, ...], int]] = []
        for axis_name, axis in axes.items():
            try:
                options.append(axis.kick_option(axis_values.get(axis_name)))
            except ValueError as exc:
                raise ValueError(f"{self.name}: axis {axis_name!r}: {exc}") from None
        amount = self.scaled(value)
        # Every kick of one minute lands in the same buckets: remember them.
        if date is None:
            spans = self._spans_now()
        else:
            moment = to_local(date)
            minute = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
            last = self._last_spans
            if last is not None and last[0] == minute:
                spans = last[1]
            else:
                spans = tuple(timescale.spans_of(moment, self.date_scales))
                self._last_spans = (minute, spans)
        increments = (amount, 1) if self.averaged else (amount,)
        if self.histogram:
            bucket = histogram_bucket(value if type(value) is int or type(value) is float else float(value))
            return Kick(self, spans, self._histogram_families[bucket], (*increments, 1), tuple(options))
        return Kick(self, spans, self.families, increments, tuple(options))

    def _spans_now(self) -> tuple[timescale.Span, ...]:
        """The spans of a kick made now: those of ``to_local(None)``, remembered for the minute."""
        now = time.time()
        config = conf.get_config()
        cached = self._now_spans
        if cached is not None and cached[1] <= now < cached[2] and cached[0] is config:
            return cached[3]
        local = datetime.datetime.fromtimestamp(now, conf.time_zone())  # what datetime.now() does
        spans = tuple(timescale.spans_of(local, self.date_scales))
        start = local.replace(second=0, microsecond=0).timestamp()
        # Up to 1 µs before the minute's end: fromtimestamp() rounds to the microsecond.
        self._now_spans = (config, start, start + 59.999999, spans)
        return spans

    def kick(
        self,
        value: Any = 1,
        date: datetime.date | datetime.datetime | None = None,
        buffered: bool | None = None,
        **axis_values: Any,
    ) -> None:
        """Count one event (of weight ``value``) at ``date`` (default: now) in one round trip.

        Invalid input raises ValueError or TypeError before anything is written.  When Redis
        is unreachable this raises :class:`staste.exceptions.RedisUnavailable` (when it
        refuses writes, being full or a read-only replica, redis-py's error), unless
        ``STASTE_FAIL_SILENTLY`` is on, in which case the kick is logged and dropped.

        Buffered (``buffered=True``, or a metrica made with ``buffered=True``), the kick is
        only added to this process' buffer (no round trip; see :mod:`staste.buffer`), which a
        background thread writes every ``STASTE_FLUSH_INTERVAL`` seconds; it never raises
        RedisUnavailable.
        """
        kick = self.prepare_kick(value, date, **axis_values)
        if self.buffered if buffered is None else buffered:
            _buffer_module().add(kick)
        else:
            self.write(kick)

    def write(self, kick: Kick) -> None:
        script_keys, args = batch_keys_and_args([kick])
        try:
            self.record_signature()
            scripts.run("kick", script_keys, args)
        except RedisUnavailable:
            if not conf.get("STASTE_FAIL_SILENTLY"):
                raise
            logger.warning("staste: dropped a kick of %s: Redis unavailable", self.name, exc_info=True)
        except redis.ResponseError as exc:
            if str(exc).startswith(scripts.OVERFLOW):  # kick.lua took the kick back entirely
                raise ValueError(
                    f"{self.name}: the kick would push a counter past Redis' limit (2**63 - 1); nothing was written"
                ) from None
            if not (scripts.refused_before_writing(exc) and conf.get("STASTE_FAIL_SILENTLY")):
                raise
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

    # -- reading ---------------------------------------------------------------------------

    def values(self) -> MetricaValues:
        """All of this metrica's values, all time: the start of every query."""
        from staste.query import MetricaValues

        return MetricaValues(self)

    def timespan(
        self,
        year: int | None = None,
        month: int | None = None,
        day: int | None = None,
        hour: int | None = None,
        minute: int | None = None,
    ) -> MetricaValues:
        return self.values().timespan(year, month, day, hour, minute)

    def filter(self, **axis_values: Any) -> MetricaValues:
        return self.values().filter(**axis_values)

    def total(self) -> int | float:
        return self.values().total()

    def iterate(self, axis: str | None = None) -> list[tuple[Any, Any]]:
        return self.values().iterate(axis)

    def timeserie(self, since: Any, until: Any = None, scale: str | None = None) -> list[tuple[Any, Any]]:
        return self.values().timeserie(since, until, scale)

    def percentile(self, p: float) -> float | None:
        return self.values().percentile(p)

    def percentiles(self, ps: Iterable[float] = (50, 95, 99)) -> dict[float, float | None]:
        return self.values().percentiles(ps)


class AveragedMetrica(Metrica):
    """A metrica that also counts its events, so averages can be read back.

    >>> m = AveragedMetrica(name="order_value", axes=[], multiplier=100)
    >>> m.kick(value=12.5); m.kick(value=7.5)          # doctest: +SKIP
    >>> m.values().average()                          # doctest: +SKIP
    10.0
    """

    averaged = True

    def count(self) -> int:
        return self.values().count()

    def average(self) -> float | None:
        return self.values().average()

    def iterate_counts(self, axis: str | None = None) -> list[tuple[Any, int]]:
        return self.values().iterate_counts(axis)

    def iterate_averages(self, axis: str | None = None) -> list[tuple[Any, float | None]]:
        return self.values().iterate_averages(axis)

    def timeserie_counts(self, since: Any, until: Any = None, scale: str | None = None) -> list[tuple[Any, int]]:
        return self.values().timeserie_counts(since, until, scale)

    def timeserie_counts_and_averages(
        self, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[Any, int, float | None]]:
        return self.values().timeserie_counts_and_averages(since, until, scale)
