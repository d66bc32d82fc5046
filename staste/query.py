"""Lazy, immutable queries over a metrica's counters.

Every method that returns numbers costs exactly one Redis round trip (one command, one
pipeline or one script), whatever the number of buckets or choices; every other method only
builds a new query.

>>> q = guests.timespan(year=2010, month=2).filter(gender="boy")   # doctest: +SKIP
>>> q.total(), q.iterate("age")                                    # doctest: +SKIP
(28, [('17', 10), ('18', 17), ('19', 0), ('120', 1)])
"""

from __future__ import annotations

import contextvars
import datetime
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import redis
import redis.asyncio.cluster
import redis.cluster
from django.conf import settings

from staste import async_connection, conf, connection, histogram, keys, scripts, timescale

if TYPE_CHECKING:
    from staste.axis import Axis
    from staste.metrica import Metrica

Raw = bytes | str | None
Row = tuple[Any, list[Raw]]


class MetricaValues:
    """The values of one metrica within one timespan, under some axis filters."""

    def __init__(
        self,
        metrica: Metrica,
        span: timescale.Span = (),
        filters: dict[str, Any] | None = None,
    ) -> None:
        self.metrica = metrica
        self.span = span
        self.filters: dict[str, Any] = dict(filters or {})

    def __repr__(self) -> str:
        return f"<MetricaValues {self.metrica.name} span={self.span} filters={self.filters}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MetricaValues)
            and other.metrica is self.metrica
            and other.span == self.span
            and other.filters == self.filters
        )

    def __hash__(self) -> int:
        return hash((id(self.metrica), self.span))

    # -- building --------------------------------------------------------------------------

    def timespan(
        self,
        year: int | None = None,
        month: int | None = None,
        day: int | None = None,
        hour: int | None = None,
        minute: int | None = None,
    ) -> MetricaValues:
        """The same query narrowed to a calendar span, merged into the span it has (as the seed did).

        ``q.timespan(year=2006).timespan(month=2)`` is ``q.timespan(year=2006, month=2)``; a
        scale given again replaces that scale only, and no arguments keep the span.  Widen back
        to all time with ``metrica.values()`` (or ``metrica.timespan()``).
        """
        span = timescale.narrow(self.span, year, month, day, hour, minute)
        if len(span) > len(self.metrica.date_scales):
            recorded = ", ".join(self.metrica.date_scales) or "only all time"
            raise ValueError(f"{self.metrica.name} does not record {timescale.scale_of(span)}s (it records {recorded})")
        return MetricaValues(self.metrica, span, self.filters)

    def filter(self, **axis_values: Any) -> MetricaValues:
        """The same query narrowed to these axis values (None: every value)."""
        merged = dict(self.filters)
        for axis_name, value in axis_values.items():
            self._part(axis_name, value)  # validate now, so errors point at the filter() call
            if value is None:
                merged.pop(axis_name, None)
            else:
                merged[axis_name] = value
        return MetricaValues(self.metrica, self.span, merged)

    # -- plans ---------------------------------------------------------------------------

    def _axis(self, axis_name: str) -> Axis:
        try:
            return self.metrica.axes[axis_name]
        except KeyError:
            raise TypeError(
                f"{self.metrica.name} has no axis {axis_name!r}; its axes are {list(self.metrica.axes) or 'none'}"
            ) from None

    def _part(self, axis_name: str, value: Any) -> str:
        axis = self._axis(axis_name)
        try:
            return axis.filter_part(value)
        except ValueError as exc:
            raise ValueError(f"{self.metrica.name}: axis {axis_name!r}: {exc}") from None

    def _parts(self) -> list[str]:
        return [self._part(name, self.filters.get(name)) for name in self.metrica.axes]

    def _field(self) -> str:
        return keys.field(self._parts())

    def _key(self, span: timescale.Span) -> str:
        return keys.bucket_key(self.metrica.base, timescale.bucket_id(span))

    def _families(self, *wanted: str) -> list[str]:
        if keys.COUNT_MARK in wanted and not self.metrica.averaged:
            raise TypeError(f"{self.metrica.name} is a Metrica: only an AveragedMetrica counts its events")
        return list(wanted)

    # -- plans: what a method reads, and how the replies become its result --------------

    @staticmethod
    def _hmgets(requests: Sequence[tuple[str, list[str]]]) -> list[tuple[Any, ...]]:
        return [("hmget", key, tuple(fields)) for key, fields in requests]

    def _here(self, families: list[str]) -> Read[list[Raw]]:
        field = self._field()
        reads = self._hmgets([(self._key(self.span), [prefix + field for prefix in families])])
        return Read(reads, lambda replies: replies[0])

    def _spans(self, spans: Sequence[timescale.Span], families: list[str]) -> list[tuple[Any, ...]]:
        field = self._field()
        return self._hmgets([(self._key(span), [prefix + field for prefix in families]) for span in spans])

    def _time_children(self, families: list[str]) -> Read[list[Row]]:
        if self.span:
            if len(self.span) >= len(self.metrica.date_scales):
                finer = "nothing finer" if len(self.span) == 5 else "no finer scale"
                raise ValueError(f"{self.metrica.name}: a {timescale.scale_of(self.span)} has {finer} to iterate")
            spans = timescale.children(self.span)
            return Read(
                self._spans(spans, families),
                lambda replies: [(span[-1], raw) for span, raw in zip(spans, replies, strict=True)],
            )
        if not self.metrica.date_scales:
            raise ValueError(f"{self.metrica.name} records only all time: there are no years to iterate")
        base = self.metrica.base
        read = ("members", (keys.years_key(base),), ("years", base, "", self._field(), "", *families))
        width = len(families)

        def decode(replies: list[Any]) -> list[Row]:
            rows = _unflatten(replies[0], width)
            return sorted(((int(_text(member)), raw) for member, raw in rows), key=lambda row: row[0])

        return Read([read], decode)

    def _axis_rows(self, axis_name: str, families: list[str]) -> Read[list[Row]]:
        axis = self._axis(axis_name)
        parts = self._parts()
        index = list(self.metrica.axes).index(axis_name)
        key = self._key(self.span)
        width = len(families)
        if axis.choices is not None:
            labelled = axis.declared_parts()
            fields = []
            for _, part in labelled:
                parts[index] = part
                combination = keys.field(parts)
                fields += [prefix + combination for prefix in families]
            return Read(
                self._hmgets([(key, fields)]),
                lambda replies: [
                    (value, replies[0][i * width : (i + 1) * width]) for i, (value, _) in enumerate(labelled)
                ],
            )
        before = keys.field(parts[:index]) + keys.PART_SEPARATOR if index else ""
        after = keys.PART_SEPARATOR + keys.field(parts[index + 1 :]) if index < len(parts) - 1 else ""
        parent = axis.member_parent(self.filters.get(axis_name)) if axis.hierarchical else ""
        read = (
            "members",
            (keys.choices_key(self.metrica.base, axis_name), key),
            ("axis", key, before, after, parent, *families),
        )

        def decode(replies: list[Any]) -> list[Row]:
            rows = [(axis.from_part(_text(member)), raw) for member, raw in _unflatten(replies[0], width)]
            return sorted(rows, key=lambda row: axis.sort_key(row[0]))

        return Read([read], decode)

    def _rows(self, axis: str | None, families: list[str]) -> Read[list[Row]]:
        return self._axis_rows(axis, families) if axis else self._time_children(families)

    # -- numbers ---------------------------------------------------------------------------

    def _sum(self, raw: Raw | int) -> int | float:
        number = int(raw) if raw is not None else 0
        return number / self.metrica.multiplier if self.metrica.multiplier else number

    def _average(self, raw_sum: Raw | int, raw_count: Raw | int) -> float | None:
        count = int(raw_count) if raw_count is not None else 0
        if not count:
            return None
        return self._sum(raw_sum) / count

    def _plan_total(self) -> Read[int | float]:
        return self._here(self._families("")).then(lambda raw: self._sum(raw[0]))

    def _plan_count(self) -> Read[int]:
        return self._here(self._families(keys.COUNT_MARK)).then(lambda raw: int(raw[0]) if raw[0] is not None else 0)

    def _plan_average(self) -> Read[float | None]:
        return self._here(self._families("", keys.COUNT_MARK)).then(lambda raw: self._average(*raw))

    def _plan_iterate(self, axis: str | None) -> Read[list[tuple[Any, int | float]]]:
        return self._rows(axis, self._families("")).then(
            lambda rows: [(label, self._sum(raw[0])) for label, raw in rows]
        )

    def _plan_iterate_counts(self, axis: str | None) -> Read[list[tuple[Any, int]]]:
        return self._rows(axis, self._families(keys.COUNT_MARK)).then(
            lambda rows: [(label, int(raw[0]) if raw[0] is not None else 0) for label, raw in rows]
        )

    def _plan_iterate_averages(self, axis: str | None) -> Read[list[tuple[Any, float | None]]]:
        return self._rows(axis, self._families("", keys.COUNT_MARK)).then(
            lambda rows: [(label, self._average(*raw)) for label, raw in rows]
        )

    def total(self) -> int | float:
        """Sum of the values kicked (the number of kicks, when no value was given)."""
        return self._plan_total().run()

    def count(self) -> int:
        """Number of events (AveragedMetrica)."""
        return self._plan_count().run()

    def average(self) -> float | None:
        """Mean value of the events (AveragedMetrica); None when there were none."""
        return self._plan_average().run()

    def iterate(self, axis: str | None = None) -> list[tuple[Any, int | float]]:
        """Totals per value of ``axis``, or per bucket of the next finer time scale."""
        return self._plan_iterate(axis).run()

    def iterate_counts(self, axis: str | None = None) -> list[tuple[Any, int]]:
        return self._plan_iterate_counts(axis).run()

    def iterate_averages(self, axis: str | None = None) -> list[tuple[Any, float | None]]:
        return self._plan_iterate_averages(axis).run()

    # -- time series -------------------------------------------------------------------

    def series_spans(self, since: Any, until: Any = None, scale: str | None = None) -> tuple[str, list[timescale.Span]]:
        """The scale and the points of a time series from ``since`` to ``until``.

        Each point is the span of one bucket; at ``scale="week"`` it is the day span of a
        Monday, whose week is read from its seven day buckets (see :func:`bucket_spans`).
        """
        start, stop = conf.local(since), conf.local(until)
        if stop < start:
            raise ValueError(f"timeserie: until ({stop}) is before since ({start})")
        if scale is None:
            scale = timescale.finest_retained(start, conf.local(), self.metrica.date_scales, conf.retention())
        elif scale not in timescale.SERIES_SCALES:
            raise ValueError(f"unknown time scale {scale!r}; use one of {', '.join(timescale.SERIES_SCALES)}")
        elif not timescale.readable(scale, self.metrica.date_scales):
            weeks = ", whose days weeks are read from" if scale == timescale.WEEK else ""
            raise ValueError(f"{self.metrica.name} does not record {'day' if weeks else scale}s{weeks}")
        limit = conf.get("STASTE_MAX_BUCKETS")
        # A week reads seven buckets: the limit is on the buckets read.
        per_point = 7 if scale == timescale.WEEK else 1
        if timescale.count_buckets(start, stop, scale) * per_point > limit:
            raise ValueError(
                f"timeserie: more than {limit // per_point} {scale}s between {start} and {stop}; "
                "choose a coarser scale or a shorter range"
            )
        return scale, timescale.series(start, stop, scale)

    def _series(self, since: Any, until: Any, scale: str | None, families: list[str]) -> Read[list[Row]]:
        """(bucket start, raw counters) per point; at the week scale the counters are the sums
        of the seven days', and None for a week whose day buckets may have expired."""
        scale, points = self.series_spans(since, until, scale)
        if scale != timescale.WEEK:
            return Read(
                self._spans(points, families),
                lambda replies: [(bucket_datetime(span), raw) for span, raw in zip(points, replies, strict=True)],
            )
        available = _available_weeks(points)
        days = [timescale.week_days(monday) for monday, kept in zip(points, available, strict=True) if kept]
        width = len(families)

        def decode(replies: list[Any]) -> list[Row]:
            rows: list[Row] = []
            replies_left = iter(replies)
            week_days = iter(days)
            for monday, kept in zip(points, available, strict=True):
                if not kept:
                    rows.append((bucket_datetime(monday), None))  # type: ignore[arg-type]
                    continue
                sums: list[Any] = [None] * width
                for _ in next(week_days):
                    for column, raw in enumerate(next(replies_left)):
                        if raw is not None:
                            sums[column] = (sums[column] or 0) + int(raw)
                rows.append((bucket_datetime(monday), sums))
            return rows

        return Read(self._spans([day for week in days for day in week], families), decode)

    def _plan_timeserie(self, since: Any, until: Any, scale: str | None) -> Read[list[tuple[datetime.datetime, Any]]]:
        return self._series(since, until, scale, self._families("")).then(
            lambda rows: [(moment, None if raw is None else self._sum(raw[0])) for moment, raw in rows]
        )

    def _plan_timeserie_counts(self, since: Any, until: Any, scale: str | None) -> Read[list[tuple[Any, Any]]]:
        return self._series(since, until, scale, self._families(keys.COUNT_MARK)).then(
            lambda rows: [
                (moment, None if raw is None else int(raw[0]) if raw[0] is not None else 0) for moment, raw in rows
            ]
        )

    def _plan_timeserie_counts_and_averages(
        self, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any, float | None]]]:
        def decode(rows: list[Row]) -> list[tuple[Any, Any, float | None]]:
            return [
                (moment, None, None)
                if raw is None
                else (moment, int(raw[1]) if raw[1] is not None else 0, self._average(raw[0], raw[1]))
                for moment, raw in rows
            ]

        return self._series(since, until, scale, self._families("", keys.COUNT_MARK)).then(decode)

    def timeserie(self, since: Any, until: Any = None, scale: str | None = None) -> list[tuple[datetime.datetime, Any]]:
        """(bucket start, total) for every bucket from ``since`` to ``until`` (default: now).

        Without ``scale`` the finest scale whose retention still covers ``since`` is used.
        ``scale="week"`` gives one point per ISO week (its Monday, 00:00), summed from the day
        buckets in the same single round trip; a week whose day buckets may have expired
        (older than the day retention) is None, not 0.
        """
        return self._plan_timeserie(since, until, scale).run()

    def timeserie_counts(self, since: Any, until: Any = None, scale: str | None = None) -> list[tuple[Any, Any]]:
        """(bucket start, count) for every bucket (AveragedMetrica), like timeserie()."""
        return self._plan_timeserie_counts(since, until, scale).run()

    def timeserie_counts_and_averages(
        self, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[datetime.datetime, Any, float | None]]:
        """(bucket start, count, average) for every bucket (AveragedMetrica), like timeserie()."""
        return self._plan_timeserie_counts_and_averages(since, until, scale).run()

    # -- percentiles (metricas made with histogram=True) -----------------------------------

    def _histogram_reads(
        self, spans: Sequence[timescale.Span], ps: Iterable[float]
    ) -> tuple[list[float], list[tuple[Any, ...]]]:
        if not self.metrica.histogram:
            raise TypeError(f"{self.metrica.name} keeps no histogram: make it with histogram=True to read percentiles")
        wanted = list(ps)
        for p in wanted:  # bad input fails before any read
            histogram.check_percentile(p)
        field = self._field()
        fields = [prefix + field for prefix in histogram.PREFIXES]
        base = self.metrica.base + keys.family_infix(histogram.MARK)
        return wanted, self._hmgets([(keys.bucket_key(base, timescale.bucket_id(span)), fields) for span in spans])

    def _plan_percentiles(self, ps: Iterable[float]) -> Read[dict[float, float | None]]:
        wanted, reads = self._histogram_reads([self.span], ps)
        return Read(
            reads,
            lambda replies: histogram.percentiles([int(c) if c is not None else 0 for c in replies[0]], wanted),
        )

    def _plan_percentiles_over(
        self, since: Any, until: Any, scale: str | None, ps: Iterable[float]
    ) -> Read[dict[float, float | None]]:
        scale, points = self.series_spans(since, until, scale)
        spans = bucket_spans(points, scale)
        wanted, reads = self._histogram_reads(spans, ps)

        def decode(replies: list[Any]) -> dict[float, float | None]:
            counts = [sum(int(c) for c in column if c is not None) for column in zip(*replies, strict=True)]
            return histogram.percentiles(counts or [0] * len(histogram.PREFIXES), wanted)

        return Read(reads, decode)

    def _plan_timeserie_percentiles(
        self, since: Any, until: Any, scale: str | None, ps: Iterable[float]
    ) -> Read[list[tuple[datetime.datetime, dict[float, float | None] | None]]]:
        scale, points = self.series_spans(since, until, scale)
        if scale != timescale.WEEK:
            wanted, reads = self._histogram_reads(points, ps)
            return Read(
                reads,
                lambda replies: [
                    (
                        bucket_datetime(span),
                        histogram.percentiles([int(c) if c is not None else 0 for c in raw], wanted),
                    )
                    for span, raw in zip(points, replies, strict=True)
                ],
            )
        available = _available_weeks(points)
        days = [timescale.week_days(monday) for monday, kept in zip(points, available, strict=True) if kept]
        wanted, reads = self._histogram_reads([day for week in days for day in week], ps)

        def decode(replies: list[Any]) -> list[tuple[datetime.datetime, dict[float, float | None] | None]]:
            rows: list[tuple[datetime.datetime, dict[float, float | None] | None]] = []
            replies_left, week_days = iter(replies), iter(days)
            for monday, kept in zip(points, available, strict=True):
                if not kept:
                    rows.append((bucket_datetime(monday), None))
                    continue
                counts = [0] * len(histogram.PREFIXES)
                for _ in next(week_days):
                    for column, raw in enumerate(next(replies_left)):
                        if raw is not None:
                            counts[column] += int(raw)
                rows.append((bucket_datetime(monday), histogram.percentiles(counts, wanted)))
            return rows

        return Read(reads, decode)

    def percentiles(self, ps: Iterable[float] = (50, 95, 99)) -> dict[float, float | None]:
        """{p: value} for each percentile ``p`` (0-100) of the values kicked; None when empty.

        Read from the metrica's histogram (one HMGET), so a value is exact to within its
        bucket (see :mod:`staste.histogram`); in the unit of the values kicked.
        """
        return self._plan_percentiles(ps).run()

    def percentiles_over(
        self, since: Any, until: Any = None, scale: str | None = None, ps: Iterable[float] = (50, 95, 99)
    ) -> dict[float, float | None]:
        """{p: value} of every value kicked from ``since`` to ``until``: the buckets' histograms
        added up (one round trip), as the admin shows for a range such as the last 24 hours."""
        return self._plan_percentiles_over(since, until, scale, ps).run()

    def percentile(self, p: float) -> float | None:
        """The value below which ``p`` percent of the values kicked lie (``percentile(95)``)."""
        return self.percentiles([p])[p]

    def timeserie_percentiles(
        self, since: Any, until: Any = None, scale: str | None = None, ps: Iterable[float] = (50, 95, 99)
    ) -> list[tuple[datetime.datetime, dict[float, float | None] | None]]:
        """(bucket start, {p: value}) for every bucket from ``since`` to ``until``, like timeserie()
        (at the week scale, None for a week whose day buckets may have expired)."""
        return self._plan_timeserie_percentiles(since, until, scale, ps).run()

    # -- the async API (Django's ``a`` prefix): same plans and decoding, through redis.asyncio --

    async def atotal(self) -> int | float:
        """:meth:`total`, awaited: the same single round trip through this event loop's
        ``redis.asyncio`` client (see :mod:`staste.async_connection`), never blocking the loop."""
        return await self._plan_total().arun()

    async def acount(self) -> int:
        """:meth:`count`, awaited."""
        return await self._plan_count().arun()

    async def aaverage(self) -> float | None:
        """:meth:`average`, awaited."""
        return await self._plan_average().arun()

    async def aiterate(self, axis: str | None = None) -> list[tuple[Any, int | float]]:
        """:meth:`iterate`, awaited."""
        return await self._plan_iterate(axis).arun()

    async def aiterate_counts(self, axis: str | None = None) -> list[tuple[Any, int]]:
        """:meth:`iterate_counts`, awaited."""
        return await self._plan_iterate_counts(axis).arun()

    async def aiterate_averages(self, axis: str | None = None) -> list[tuple[Any, float | None]]:
        """:meth:`iterate_averages`, awaited."""
        return await self._plan_iterate_averages(axis).arun()

    async def atimeserie(
        self, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[datetime.datetime, Any]]:
        """:meth:`timeserie`, awaited."""
        return await self._plan_timeserie(since, until, scale).arun()

    async def atimeserie_counts(self, since: Any, until: Any = None, scale: str | None = None) -> list[tuple[Any, Any]]:
        """:meth:`timeserie_counts`, awaited."""
        return await self._plan_timeserie_counts(since, until, scale).arun()

    async def atimeserie_counts_and_averages(
        self, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[datetime.datetime, Any, float | None]]:
        """:meth:`timeserie_counts_and_averages`, awaited."""
        return await self._plan_timeserie_counts_and_averages(since, until, scale).arun()

    async def apercentiles(self, ps: Iterable[float] = (50, 95, 99)) -> dict[float, float | None]:
        """:meth:`percentiles`, awaited."""
        return await self._plan_percentiles(ps).arun()

    async def apercentile(self, p: float) -> float | None:
        """:meth:`percentile`, awaited."""
        return (await self._plan_percentiles([p]).arun())[p]

    async def apercentiles_over(
        self, since: Any, until: Any = None, scale: str | None = None, ps: Iterable[float] = (50, 95, 99)
    ) -> dict[float, float | None]:
        """:meth:`percentiles_over`, awaited."""
        return await self._plan_percentiles_over(since, until, scale, ps).arun()

    async def atimeserie_percentiles(
        self, since: Any, until: Any = None, scale: str | None = None, ps: Iterable[float] = (50, 95, 99)
    ) -> list[tuple[datetime.datetime, dict[float, float | None] | None]]:
        """:meth:`timeserie_percentiles`, awaited."""
        return await self._plan_timeserie_percentiles(since, until, scale, ps).arun()


def bucket_spans(points: Sequence[timescale.Span], scale: str) -> list[timescale.Span]:
    """The buckets stored for the points of a series: a week's seven days, else the points."""
    if scale != timescale.WEEK:
        return list(points)
    return [day for monday in points for day in timescale.week_days(monday)]


def _available_weeks(mondays: Sequence[timescale.Span]) -> list[bool]:
    """Per week, whether all its day buckets are still within their retention."""
    keep = conf.retention().get("day")
    now, zone = time.time(), conf.time_zone()
    # The Monday expires first; weeks are in order, so only the first few can have expired.
    return [not timescale.expired(monday, keep, now, zone) for monday in mondays]


def bucket_datetime(span: timescale.Span) -> datetime.datetime:
    """The start of a bucket as returned to users: aware in the staste zone when USE_TZ."""
    moment = timescale.start(span)
    if getattr(settings, "USE_TZ", False):
        return moment.replace(tzinfo=conf.time_zone())
    return moment


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw


def _unflatten(flat: list[Any], width: int) -> list[Row]:
    step = width + 1
    return [(flat[i], list(flat[i + 1 : i + step])) for i in range(0, len(flat), step)]


T = TypeVar("T")
U = TypeVar("U")
_batch: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("staste_query_batch", default=None)


class Read(Generic[T]):
    """What one query method reads, and how the replies become its result.

    Every query method is plan, execute, decode: planning (validating the query, choosing
    keys and fields) makes a Read; :meth:`run` executes its reads in one round trip (or, within
    :func:`pipelined`, joins a batch) and :meth:`arun` does the same through ``redis.asyncio``;
    both hand the replies to the same ``decode``.  So the sync and async methods share every
    line of query logic.

    A read is a tuple that compares and hashes: ``("hmget", key, fields)``, or
    ``(script, keys, args)`` for a script of :mod:`staste.scripts` (``"members"``).
    """

    __slots__ = ("decode", "reads")

    def __init__(self, reads: list[tuple[Any, ...]], decode: Callable[[list[Any]], T]) -> None:
        self.reads = reads
        self.decode = decode

    def then(self, after: Callable[[T], U]) -> Read[U]:
        """The same reads, with ``after`` applied to the result."""
        decode = self.decode
        return Read(self.reads, lambda replies: after(decode(replies)))

    def run(self) -> T:
        batch = _batch.get()
        replies = batch.answer(self.reads) if batch is not None else _execute(self.reads)
        return self.decode(replies)

    async def arun(self) -> T:
        return self.decode(await _aexecute(self.reads))


def _blank(read: tuple[Any, ...]) -> Any:
    """What a read of nothing stored returns: empty counters, or no members."""
    return [None] * len(read[2]) if read[0] == "hmget" else []


class _Batch:
    """The reads of several queries: recorded in a first pass, answered in a second.

    Each distinct read (see :class:`Read`) is sent once.
    """

    def __init__(self) -> None:
        self.reads: dict[tuple[Any, ...], None] = {}  # distinct reads, in order
        self.answers: dict[tuple[Any, ...], Any] | None = None

    def answer(self, reads: list[tuple[Any, ...]]) -> list[Any]:
        if self.answers is None:
            self.reads.update(dict.fromkeys(reads))
            return [_blank(read) for read in reads]
        missing = [read for read in reads if read not in self.answers]
        if missing:
            # A call that reads otherwise the second time (e.g. it looked at the clock and an
            # hour went by) still gets true numbers, at the price of one more round trip.
            self.answers.update(zip(missing, _execute(missing), strict=True))
        return [self.answers[read] for read in reads]

    def execute(self) -> None:
        reads = list(self.reads)
        self.answers = dict(zip(reads, _execute(reads), strict=True))


def _execute(reads: list[tuple[Any, ...]]) -> list[Any]:
    """Every read in one round trip: one command, or one pipeline (a script may add a SCRIPT
    EXISTS check there).  A cluster pipeline refuses scripts, so there each script read is a
    call of its own."""
    if not reads:
        return []
    with scripts.translated_errors():
        client = connection.get_redis()
        if len(reads) == 1:
            kind, target, arguments = reads[0]
            if kind == "hmget":
                return [client.hmget(target, list(arguments))]
            return [scripts.script(client, kind)(keys=list(target), args=list(arguments), client=client)]
        cluster = isinstance(client, redis.cluster.RedisCluster)
        pipe = client.pipeline(transaction=False)
        for kind, target, arguments in reads:
            if kind == "hmget":
                pipe.hmget(target, list(arguments))
            elif not cluster:
                scripts.script(client, kind)(keys=list(target), args=list(arguments), client=pipe)
        replies = iter(pipe.execute() if len(pipe) else [])
        return [
            next(replies) if read[0] == "hmget" or not cluster else scripts.run(read[0], read[1], read[2])
            for read in reads
        ]


async def _aexecute(reads: list[tuple[Any, ...]]) -> list[Any]:
    """:func:`_execute` through this event loop's ``redis.asyncio`` client."""
    if not reads:
        return []
    with scripts.translated_errors():
        async with async_connection.using() as client:
            if len(reads) == 1:
                kind, target, arguments = reads[0]
                if kind == "hmget":
                    return [await client.hmget(target, list(arguments))]
                return [await scripts.script(client, kind)(keys=list(target), args=list(arguments), client=client)]
            cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
            pipe = client.pipeline(transaction=False)
            for kind, target, arguments in reads:
                if kind == "hmget":
                    pipe.hmget(target, list(arguments))
                elif not cluster:
                    await scripts.script(client, kind)(keys=list(target), args=list(arguments), client=pipe)
            replies = iter(await pipe.execute() if len(pipe) else [])
            results = []
            for kind, target, arguments in reads:
                if kind == "hmget" or not cluster:
                    results.append(next(replies))
                else:
                    script = scripts.script(client, kind)
                    results.append(await script(keys=list(target), args=list(arguments), client=client))
            return results


def pipelined(calls: Sequence[Callable[[], T]]) -> list[T]:
    """The results of ``calls`` (e.g. ``lambda: query.total()``), their reads in one round trip.

    Pages that show many queries (the admin dashboard: several numbers and a series for each
    of 50 metricas) would otherwise pay one round trip per number.  Each call runs twice: first
    to record the reads it makes (answered with empty counters), then against the replies of
    one pipeline of all of them; so calls must be pure reads whose keys do not depend on what
    they read (a call that reads other keys the second time, say because the hour changed,
    still gets true numbers, at the cost of one more round trip).  When the batch holds a
    script read (iterating the stored values of an axis or the years), redis-py checks the
    script is loaded first: one more round trip.  Called within another ``pipelined`` call,
    the reads join the outer batch.
    """
    if _batch.get() is not None:
        return [call() for call in calls]
    batch = _Batch()
    token = _batch.set(batch)
    try:
        for call in calls:
            call()
    finally:
        _batch.reset(token)
    batch.execute()
    token = _batch.set(batch)
    try:
        return [call() for call in calls]
    finally:
        _batch.reset(token)
