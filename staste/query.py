"""Lazy, immutable queries over a metrica's counters.

Every method that returns numbers costs exactly one Redis round trip (one command, one
pipeline or one script), whatever the number of buckets or choices; every other method only
builds a new query.

>>> q = guests.timespan(year=2010, month=2).filter(gender="boy")   # doctest: +SKIP
>>> q.total(), q.iterate("age")                                    # doctest: +SKIP
(28, [('17', 10), ('18', 17), ('19', 0), ('120', 1)])

Every query method is plan, execute, decode: planning makes a :class:`Read` (its
:class:`Fetch` objects, the hashes and fields to read, and how the replies become the result),
executed in one pipeline by :func:`execute` (or through ``redis.asyncio``, or in a batch of
:func:`pipelined`).  Its cost is bounded three ways (docs/security.md):

* a range (:meth:`MetricaValues.over`) is read from the fewest buckets that cover it exactly
  (``timescale.cover``): ten thousand minutes are about 130 buckets, not 10,000;
* every read counts the counters it may touch (its *work*: buckets x values x families, a
  stored axis counting as ``max_choices + 1`` values) against a budget, ``STASTE_MAX_QUERY_WORK``
  per round trip, or what :func:`budget` sets for a whole request; past it
  :class:`~staste.exceptions.QueryTooExpensive` is raised before Redis is asked anything;
* no script call reads more than ``SLICE_WORK`` counters (a few milliseconds of Redis time):
  larger reads are cut into slices, sent in the same pipeline.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import redis
import redis.asyncio.cluster
import redis.cluster
import redis.crc
from django.conf import settings

from staste import apdex, async_connection, conf, connection, histogram, keys, scripts, timescale
from staste.exceptions import QueryTooExpensive, TooManyBuckets, ValueRefused

if TYPE_CHECKING:
    from staste.axis import Axis
    from staste.metrica import Metrica

Raw = bytes | str | int | None
Row = tuple[Any, list[Raw]]

#: Most counters a single script call reads: about a millisecond of Redis time, far under the
#: 50 ms that would hold up other clients (Redis runs one script at a time), even on a busy host.
SLICE_WORK = 2_000
#: Most HyperLogLogs a uniques.lua call merges into its counts: a dense one (12 KB of
#: registers) takes about 22 µs to merge (measured, Redis 7.0), so about 4 ms at most.
UNIQUES_SLICE_WORK = 200
#: A series of more fields than this (a histogram's 102) is read sparse: only present counters.
SPARSE_FIELDS = 8
#: Most fields of one histogram hash ``top(by="p95")`` scans in one call (a few milliseconds);
#: larger hashes are read value by value, in slices.
SCAN_FIELDS = 50_000
#: What ``top(by=...)`` ranks by besides a percentile ("p95", "p99.9").
TOP_MEASURES: tuple[str, ...] = ("total", "count", "average", "uniques", "apdex")


class MetricaValues:
    """The values of one metrica within one timespan (or range), under some axis filters."""

    def __init__(
        self,
        metrica: Metrica,
        span: timescale.Span = (),
        filters: dict[str, Any] | None = None,
        cover: tuple[timescale.Span, ...] | None = None,
    ) -> None:
        self.metrica = metrica
        self.span = span
        self.filters: dict[str, Any] = dict(filters or {})
        #: The buckets of a range (see over()), or None for the calendar span ``span``.
        self.cover = cover

    def __repr__(self) -> str:
        where = f"cover={len(self.cover)} buckets" if self.cover is not None else f"span={self.span}"
        return f"<MetricaValues {self.metrica.name} {where} filters={self.filters}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MetricaValues)
            and other.metrica is self.metrica
            and other.span == self.span
            and other.filters == self.filters
            and other.cover == self.cover
        )

    def __hash__(self) -> int:
        return hash((id(self.metrica), self.span, self.cover))

    # -- building --------------------------------------------------------------------------

    def timespan(
        self,
        year: int | None = None,
        month: int | None = None,
        day: int | None = None,
        hour: int | None = None,
        minute: int | None = None,
    ) -> MetricaValues:
        """The same query narrowed to a calendar span, merged into the span it has.

        ``q.timespan(year=2006).timespan(month=2)`` is ``q.timespan(year=2006, month=2)``; a
        scale given again replaces that scale only, and no arguments keep the span.  Widen back
        to all time with ``metrica.values()`` (or ``metrica.timespan()``).
        """
        given = (year, month, day, hour, minute)
        if self.cover is not None:
            if all(number is None for number in given):
                return self
            raise TypeError("timespan: this query is over a range (over()); start from metrica.values() instead")
        span = timescale.narrow(self.span, *given)
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
        return MetricaValues(self.metrica, self.span, merged, self.cover)

    def over(self, since: Any, until: Any = None, scale: str | None = None) -> MetricaValues:
        """The same query over the range of buckets ``timeserie(since, until, scale)`` reads.

        Its numbers (``total()``, ``iterate(axis)``, ``percentiles()``, ``top()``...) are those
        of the whole range, read from the fewest buckets that cover it exactly: the full days
        of the range from day buckets, full hours from hour buckets and only the minutes at its
        edges from minute buckets (``timescale.cover``).  The range is fixed when ``over`` is
        called (``until`` defaults to now).

        >>> guests.filter(gender="girl").over(now - timedelta(days=7)).iterate("age")  # doctest: +SKIP
        """
        if self.span:
            raise TypeError("over: this query has a timespan; a range is taken over all time (metrica.values())")
        scale, start, stop = self._range(since, until, scale)
        if scale == timescale.WEEK:  # whole ISO weeks: their days
            first, last = timescale.week_of(start), timescale.week_days(timescale.week_of(stop))[-1]
            scale = "day"
        else:
            first, last = timescale.truncate(start, scale), timescale.truncate(stop, scale)
        scales = timescale.cover_scales(scale, self.metrica.date_scales, conf.retention())
        return MetricaValues(self.metrica, (), self.filters, tuple(timescale.cover(first, last, scales)))

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
        except ValueRefused as exc:  # the same facts, and the axis: pages say it in their own words
            message = f"{self.metrica.name}: axis {axis_name!r}: {exc}"
            raise ValueRefused(message, exc.reason, **{**exc.details, "axis": axis_name}) from None
        except ValueError as exc:
            raise ValueError(f"{self.metrica.name}: axis {axis_name!r}: {exc}") from None

    def _parts(self) -> list[str]:
        return [self._part(name, self.filters.get(name)) for name in self.metrica.axes]

    def _field(self) -> str:
        return keys.field(self._parts())

    def _declared_fields(self, axis_name: str, labelled: list[tuple[Any, str]], prefixes: Sequence[str]) -> list[str]:
        """The fields of each declared part of ``axis_name`` (the query's other filters kept),
        each behind every one of ``prefixes`` (counter families, or HyperLogLog key prefixes)."""
        parts = self._parts()
        index = list(self.metrica.axes).index(axis_name)
        fields = []
        for _, part in labelled:
            parts[index] = part
            combination = keys.field(parts)
            fields += [prefix + combination for prefix in prefixes]
        return fields

    def _key(self, span: timescale.Span, base: str | None = None) -> str:
        return keys.bucket_key(self.metrica.base if base is None else base, timescale.bucket_id(span))

    def _buckets(self) -> Sequence[timescale.Span]:
        """The buckets whose sum this query's numbers are: the range's cover, or its span."""
        return self.cover if self.cover is not None else (self.span,)

    def _families(self, *wanted: str) -> list[str]:
        if keys.COUNT_MARK in wanted and not self.metrica.averaged:
            raise TypeError(f"{self.metrica.name} is a Metrica: only an AveragedMetrica counts its events")
        return list(wanted)

    # -- plans: what a method reads, and how the replies become its result --------------

    def _here(self, families: list[str]) -> Read[list[Raw]]:
        """The query's counters of ``families``, summed over its buckets."""
        field = self._field()
        fetch = Fetch.sums([self._key(span) for span in self._buckets()], [p + field for p in families])
        return Read([fetch], lambda replies: replies[0])

    def _spans(self, spans: Sequence[timescale.Span], families: list[str], base: str | None = None) -> list[Fetch]:
        """One fetch of the counters of ``families`` in each of ``spans``: its reply is a row per span."""
        field = self._field()
        prefix = self.metrica.base if base is None else base
        bucket_id = timescale.bucket_id
        return [Fetch.rows([prefix + bucket_id(span) for span in spans], [p + field for p in families])]

    def _time_children(self, families: list[str]) -> Read[list[Row]]:
        if self.cover is not None:
            raise ValueError(f"{self.metrica.name}: a range has no time scale to iterate; use timeserie() over it")
        if self.span:
            if len(self.span) >= len(self.metrica.date_scales):
                finer = "nothing finer" if len(self.span) == 5 else "no finer scale"
                raise ValueError(f"{self.metrica.name}: a {timescale.scale_of(self.span)} has {finer} to iterate")
            spans = timescale.children(self.span)
            return Read(
                self._spans(spans, families),
                lambda replies: [(span[-1], raw) for span, raw in zip(spans, replies[0], strict=True)],
            )
        if not self.metrica.date_scales:
            raise ValueError(f"{self.metrica.name} records only all time: there are no years to iterate")
        base = self.metrica.base
        read = Fetch.years(keys.years_key(base), base, self._field(), families)
        width = len(families)

        def decode(replies: list[Any]) -> list[Row]:
            rows = _unflatten(replies[0], width)
            return sorted(((int(_text(member)), raw) for member, raw in rows), key=lambda row: row[0])

        return Read([read], decode)

    def _axis_rows(
        self, axis_name: str, families: list[str], base: str | None = None, scan: bool = False
    ) -> Read[list[Row]]:
        """(value, [sum of each family]) for each value of ``axis_name``, summed over the buckets."""
        axis = self._axis(axis_name)
        parts = self._parts()
        index = list(self.metrica.axes).index(axis_name)
        bucket_keys = [self._key(span, base) for span in self._buckets()]
        width = len(families)
        if axis.choices is not None:
            labelled = axis.declared_parts()
            fields = self._declared_fields(axis_name, labelled, families)
            return Read(
                [Fetch.sums(bucket_keys, fields)],
                lambda replies: [
                    (value, replies[0][i * width : (i + 1) * width]) for i, (value, _) in enumerate(labelled)
                ],
            )
        before = keys.field(parts[:index]) + keys.PART_SEPARATOR if index else ""
        after = keys.PART_SEPARATOR + keys.field(parts[index + 1 :]) if index < len(parts) - 1 else ""
        parent = axis.member_parent(self.filters.get(axis_name)) if axis.hierarchical else ""
        choices = keys.choices_key(self.metrica.base, axis_name)
        fetch = Fetch.axis(choices, bucket_keys, families, before, after, parent, axis.cap(), scan)

        def decode(replies: list[Any]) -> list[Row]:
            rows = [(axis.from_part(member), raw) for member, raw in replies[0].items()]
            return sorted(rows, key=lambda row: axis.sort_key(row[0]))

        return Read([fetch], decode)

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

    def _range(self, since: Any, until: Any, scale: str | None) -> tuple[str, datetime.datetime, datetime.datetime]:
        """The scale (checked, or the finest retained at ``since``) and the local datetimes of a range."""
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
        return scale, start, stop

    def series_spans(self, since: Any, until: Any = None, scale: str | None = None) -> tuple[str, list[timescale.Span]]:
        """The scale and the points of a time series from ``since`` to ``until``.

        Each point is the span of one bucket; at ``scale="week"`` it is the day span of a
        Monday, whose week is read from its seven day buckets.
        """
        scale, start, stop = self._range(since, until, scale)
        limit = conf.get("STASTE_MAX_BUCKETS")
        # A week reads seven buckets: the limit is on the buckets read.
        per_point = 7 if scale == timescale.WEEK else 1
        if timescale.count_buckets(start, stop, scale) * per_point > limit:
            # A series keeps the scale it is asked for (a chart by minute must not silently
            # become one by hour): the error names the finest scale that fits.
            fits = [
                s
                for s in reversed(timescale.SCALES)
                if timescale.readable(s, self.metrica.date_scales) and timescale.count_buckets(start, stop, s) <= limit
            ]
            advice = f"use scale={fits[0]!r} or a shorter range" if fits else "choose a shorter range"
            raise TooManyBuckets(
                f"timeserie: more than {limit // per_point} {scale}s between {start} and {stop} "
                f"(STASTE_MAX_BUCKETS); {advice}",
                limit // per_point,
                scale,
                fits[0] if fits else None,
            )
        return scale, timescale.series(start, stop, scale)

    def _series(self, since: Any, until: Any, scale: str | None, families: list[str]) -> Read[list[Row]]:
        """(bucket start, raw counters) per point; at the week scale the counters are the sums
        of the seven days', and None for a week whose day buckets may have expired."""
        scale, points = self.series_spans(since, until, scale)
        if scale != timescale.WEEK:
            return Read(
                self._spans(points, families),
                lambda replies: list(zip(bucket_datetimes(points), replies[0], strict=True)),
            )
        available = _available_weeks(points)
        days = [timescale.week_days(monday) for monday, kept in zip(points, available, strict=True) if kept]
        width = len(families)

        def decode(replies: list[Any]) -> list[Row]:
            rows: list[Row] = []
            replies_left = iter(replies[0])
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

    def _histogram_base(self, ps: Iterable[float]) -> tuple[list[float], str]:
        if not self.metrica.histogram:
            raise TypeError(f"{self.metrica.name} keeps no histogram: make it with histogram=True to read percentiles")
        wanted = list(ps)
        for p in wanted:  # bad input fails before any read
            histogram.check_percentile(p)
        return wanted, self.metrica.base + keys.family_infix(histogram.MARK)

    def _histogram_fetch(self, spans: Sequence[timescale.Span], base: str, kind: str) -> Fetch:
        field = self._field()
        fields = [prefix + field for prefix in histogram.PREFIXES]
        return Fetch(kind, tuple(base + timescale.bucket_id(span) for span in spans), tuple(fields))

    def _plan_percentiles(self, ps: Iterable[float]) -> Read[dict[float, float | None]]:
        wanted, base = self._histogram_base(ps)
        return Read(
            [self._histogram_fetch(self._buckets(), base, "sums")],
            lambda replies: histogram.percentiles([int(c) if c is not None else 0 for c in replies[0]], wanted),
        )

    def _plan_percentiles_over(
        self, since: Any, until: Any, scale: str | None, ps: Iterable[float]
    ) -> Read[dict[float, float | None]]:
        return self.over(since, until, scale)._plan_percentiles(ps)

    def _plan_timeserie_percentiles(
        self, since: Any, until: Any, scale: str | None, ps: Iterable[float]
    ) -> Read[list[tuple[datetime.datetime, dict[float, float | None] | None]]]:
        scale, points = self.series_spans(since, until, scale)
        wanted, base = self._histogram_base(ps)
        if scale != timescale.WEEK:
            return Read(
                [self._histogram_fetch(points, base, "rows")],
                lambda replies: [
                    (moment, histogram.percentiles([int(c) if c is not None else 0 for c in raw], wanted))
                    for moment, raw in zip(bucket_datetimes(points), replies[0], strict=True)
                ],
            )
        available = _available_weeks(points)
        days = [timescale.week_days(monday) for monday, kept in zip(points, available, strict=True) if kept]
        reads = [self._histogram_fetch([day for week in days for day in week], base, "rows")]

        def decode(replies: list[Any]) -> list[tuple[datetime.datetime, dict[float, float | None] | None]]:
            rows: list[tuple[datetime.datetime, dict[float, float | None] | None]] = []
            replies_left, week_days = iter(replies[0]), iter(days)
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

        Read from the metrica's histogram (one HMGET; over a range, the buckets' histograms
        added up in Redis), so a value is exact to within its bucket (see :mod:`staste.histogram`);
        in the unit of the values kicked.
        """
        return self._plan_percentiles(ps).run()

    def percentiles_over(
        self, since: Any, until: Any = None, scale: str | None = None, ps: Iterable[float] = (50, 95, 99)
    ) -> dict[float, float | None]:
        """{p: value} of every value kicked from ``since`` to ``until``: ``over(...).percentiles(ps)``,
        as the admin shows for a range such as the last 24 hours."""
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

    # -- Apdex (metricas made with histogram=True; see staste.apdex) ---------------------------

    def _apdex_threshold(self, threshold: float | None) -> tuple[float, str]:
        """T (``STASTE_APDEX_T`` unless given) and the histogram's base; errors before any read."""
        _, base = self._histogram_base(())
        return apdex.check_threshold(conf.get("STASTE_APDEX_T") if threshold is None else threshold), base

    def _plan_apdex(self, threshold: float | None) -> Read[float | None]:
        target, base = self._apdex_threshold(threshold)
        return Read(
            [self._histogram_fetch(self._buckets(), base, "sums")],
            lambda replies: apdex.score([int(c) if c is not None else 0 for c in replies[0]], target),
        )

    def _plan_iterate_apdex(self, axis: str, threshold: float | None) -> Read[list[tuple[Any, float | None]]]:
        target, base = self._apdex_threshold(threshold)
        return self._axis_rows(axis, list(histogram.PREFIXES), base, scan=True).then(
            lambda found: [
                (value, apdex.score([int(c) if c is not None else 0 for c in raw], target))
                for value, raw in found
                if any(raw)
            ]
        )

    def apdex(self, threshold: float | None = None) -> float | None:
        """The Apdex (0 to 1) of the values kicked for a target time ``threshold`` (default
        ``STASTE_APDEX_T``, 500 ms), read from the histogram (one read, as ``percentiles()``);
        None when nothing was counted.  Its precision is in :mod:`staste.apdex`.

        >>> response_time.over(since).filter(view="shop.views.item [shop:item]").apdex()  # doctest: +SKIP
        0.94
        """
        return self._plan_apdex(threshold).run()

    def iterate_apdex(self, axis: str, threshold: float | None = None) -> list[tuple[Any, float | None]]:
        """[(value, Apdex)] for each value of ``axis`` that counted something, in one round trip
        (each bucket's histogram scanned once, the read ``iterate_percentiles`` makes: pipelined
        with it, the two are one read)."""
        return self._plan_iterate_apdex(axis, threshold).run()

    # -- unique counts (metricas made with uniques=True; see docs/uniques.md) ------------------

    def _unique_prefixes(self, spans: Sequence[timescale.Span]) -> list[str]:
        """The HyperLogLog key prefix of each of ``spans``: TypeError without uniques,
        ValueError for a span finer than the metrica keeps uniques for."""
        metrica = self.metrica
        if not metrica.keeps_uniques:
            raise TypeError(f"{metrica.name} counts no unique ids: make it with uniques=True")
        kept = len(metrica.uniques_scales)
        for span in spans:
            if len(span) > kept:
                scales = ", ".join(["all time", *metrica.uniques_scales])
                raise ValueError(
                    f"{metrica.name} counts unique ids by {scales} only, not by {timescale.scale_of(span)}: "
                    "read uniques over whole days (over(..., scale='day')) or set uniques_scales="
                )
        base = metrica.base
        return [keys.unique_prefix(base, timescale.bucket_id(span)) for span in spans]

    def _unique_counts(self, groups: Sequence[Sequence[timescale.Span]]) -> Fetch:
        """One PFCOUNT per group of buckets: the distinct ids of the union of the group's
        HyperLogLogs of this query's combination (never a sum: an id seen in two buckets is
        one id)."""
        field = self._field()
        flat: list[str] = []
        for group in groups:
            flat += [prefix + field for prefix in self._unique_prefixes(group)]
        return Fetch("uniques", tuple(flat), (), tuple(len(group) for group in groups))

    def _plan_uniques(self) -> Read[int]:
        return Read([self._unique_counts([self._buckets()])], lambda replies: replies[0][0])

    def _plan_iterate_uniques(self, axis: str | None) -> Read[list[tuple[Any, int]]]:
        buckets = self._buckets()
        if axis is None:
            if self.cover is not None:
                raise ValueError(f"{self.metrica.name}: a range has no time scale to iterate; use timeserie_uniques()")
            if self.span:
                if len(self.span) >= len(self.metrica.uniques_scales):
                    self._unique_prefixes([(*self.span, 1)])  # the error: no finer uniques
                spans = timescale.children(self.span)
                return Read(
                    [self._unique_counts([[span] for span in spans])],
                    lambda replies: [(span[-1], count) for span, count in zip(spans, replies[0], strict=True)],
                )
            if not self.metrica.uniques_scales:
                self._unique_prefixes([(1,)])
            base = self.metrica.base
            fetch = Fetch("uniques_years", (keys.years_key(base),), (), (base + "u:", ":" + self._field()))
            return Read(
                [fetch],
                lambda replies: sorted(
                    (int(_text(replies[0][i])), replies[0][i + 1]) for i in range(0, len(replies[0]), 2)
                ),
            )
        chosen = self._axis(axis)
        parts = self._parts()
        index = list(self.metrica.axes).index(axis)
        prefixes = self._unique_prefixes(buckets)
        if chosen.choices is not None:
            labelled = chosen.declared_parts()
            flat = self._declared_fields(axis, labelled, prefixes)
            fetch = Fetch("uniques", tuple(flat), (), (len(prefixes),) * len(labelled))
            return Read(
                [fetch],
                lambda replies: [(value, count) for (value, _), count in zip(labelled, replies[0], strict=True)],
            )
        before = keys.field(parts[:index]) + keys.PART_SEPARATOR if index else ""
        after = keys.PART_SEPARATOR + keys.field(parts[index + 1 :]) if index < len(parts) - 1 else ""
        parent = chosen.member_parent(self.filters.get(axis)) if chosen.hierarchical else ""
        choices = keys.choices_key(self.metrica.base, axis)
        fetch = Fetch("uniques_axis", (choices, *prefixes), ("",), (before, after, parent, chosen.cap(), False))

        def decode(replies: list[Any]) -> list[tuple[Any, int]]:
            rows = [(chosen.from_part(member), raw[0] or 0) for member, raw in replies[0].items()]
            return sorted(rows, key=lambda row: chosen.sort_key(row[0]))

        return Read([fetch], decode)

    def _plan_timeserie_uniques(self, since: Any, until: Any, scale: str | None) -> Read[list[tuple[Any, Any]]]:
        if scale is None:
            self._unique_prefixes([])  # a metrica without uniques: TypeError first
            start = conf.local(since)
            scale = timescale.finest_retained(start, conf.local(), self.metrica.uniques_scales, conf.retention())
        scale, points = self.series_spans(since, until, scale)
        if scale != timescale.WEEK:
            return Read(
                [self._unique_counts([[point] for point in points])],
                lambda replies: list(zip(bucket_datetimes(points), replies[0], strict=True)),
            )
        available = _available_weeks(points)
        weeks = [timescale.week_days(monday) for monday, kept in zip(points, available, strict=True) if kept]

        def decode(replies: list[Any]) -> list[tuple[Any, Any]]:
            counts = iter(replies[0])
            return [
                (bucket_datetime(monday), next(counts) if kept else None)
                for monday, kept in zip(points, available, strict=True)
            ]

        return Read([self._unique_counts(weeks)], decode)

    def uniques(self) -> int:
        """How many distinct ids ``kick(unique=...)`` counted in this query's span (or range)
        and combination: a HyperLogLog estimate, within about 1% (docs/uniques.md).

        A range of many buckets is the count of their union, in one PFCOUNT: a visitor of
        every day of a month is one visitor of the month, not thirty.

        >>> visitors.filter(gender="girl").over(now - timedelta(days=30), scale="day").uniques()  # doctest: +SKIP
        812
        """
        return self._plan_uniques().run()

    def iterate_uniques(self, axis: str | None = None) -> list[tuple[Any, int]]:
        """(value, distinct ids) for each value of ``axis``, or for each finer time bucket of the
        span (each year of all time), like ``iterate()``."""
        return self._plan_iterate_uniques(axis).run()

    def timeserie_uniques(self, since: Any, until: Any = None, scale: str | None = None) -> list[tuple[Any, Any]]:
        """(bucket start, distinct ids) for every bucket from ``since`` to ``until``, like
        ``timeserie()``; the default scale is the finest that keeps uniques and is retained at
        ``since``.  At ``scale="week"`` a point is the union of its seven days (None for a week
        whose day buckets may have expired)."""
        return self._plan_timeserie_uniques(since, until, scale).run()

    async def auniques(self) -> int:
        """:meth:`uniques`, awaited."""
        return await self._plan_uniques().arun()

    async def aiterate_uniques(self, axis: str | None = None) -> list[tuple[Any, int]]:
        """:meth:`iterate_uniques`, awaited."""
        return await self._plan_iterate_uniques(axis).arun()

    async def atimeserie_uniques(
        self, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[Any, Any]]:
        """:meth:`timeserie_uniques`, awaited."""
        return await self._plan_timeserie_uniques(since, until, scale).arun()

    # -- top-N -----------------------------------------------------------------------------

    def _plan_top(self, axis: str, n: int, by: str) -> Read[list[tuple[Any, int | float]]]:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"top: n must be a whole number >= 1, not {n!r}")
        unknown = f"top: unknown measure {by!r}; use one of {', '.join(TOP_MEASURES)} or p50, p95..."
        if by.startswith("p"):
            try:
                p = float(by[1:])
            except ValueError:
                raise ValueError(unknown) from None
            wanted, base = self._histogram_base([p])
            rows = self._axis_rows(axis, list(histogram.PREFIXES), base, scan=True)
            measured = rows.then(
                lambda found: [
                    (value, histogram.percentiles([int(c) if c is not None else 0 for c in raw], wanted)[p])
                    for value, raw in found
                ]
            )
        elif by == "apdex":  # ranked lowest first below: the least satisfying values
            measured = self._plan_iterate_apdex(axis, None)
        elif by == "total":
            measured = self._axis_rows(axis, [""]).then(
                lambda found: [(value, None if raw[0] is None else self._sum(raw[0])) for value, raw in found]
            )
        elif by == "uniques":
            measured = self._plan_iterate_uniques(axis).then(
                lambda found: [(value, number or None) for value, number in found]
            )
        elif by == "count":
            measured = self._axis_rows(axis, self._families(keys.COUNT_MARK)).then(
                lambda found: [(value, int(raw[0]) if raw[0] else None) for value, raw in found]
            )
        elif by == "average":
            measured = self._axis_rows(axis, self._families("", keys.COUNT_MARK)).then(
                lambda found: [(value, self._average(*raw)) for value, raw in found]
            )
        else:
            raise ValueError(unknown)

        worst_first = -1 if by == "apdex" else 1  # a low Apdex is what needs looking at, as a high p95

        def ranked(found: list[tuple[Any, Any]]) -> list[tuple[Any, int | float]]:
            kept = [(value, number) for value, number in found if number is not None]
            kept.sort(key=lambda row: -row[1] * worst_first)  # stable: ties keep the axis' order
            return kept[:n]

        return measured.then(ranked)

    def top(self, axis: str, n: int = 10, by: str = "total") -> list[tuple[Any, int | float]]:
        """The ``n`` values of ``axis`` with the largest ``by``, largest first: [(value, measure)].

        ``by`` is "total", "count" or "average" (the last two for an AveragedMetrica), "uniques"
        (distinct ids, a metrica made with ``uniques=True``), a percentile such as "p95" or
        "p99.9", or "apdex" (a metrica made with ``histogram=True``; the *lowest* Apdex first,
        the values that satisfy their users least, at ``STASTE_APDEX_T``).  Values
        with nothing counted are left out; ties keep the axis' order.  One round trip, the
        counters summed in Redis (over the range of an ``over()`` query too).

        >>> response_time.over(since).top("view", 10, by="p95")   # doctest: +SKIP
        [('shop.views.search', 812.3), ('shop.views.item', 240.1), ...]
        """
        return self._plan_top(axis, n, by).run()

    async def aapdex(self, threshold: float | None = None) -> float | None:
        """:meth:`apdex`, awaited."""
        return await self._plan_apdex(threshold).arun()

    async def aiterate_apdex(self, axis: str, threshold: float | None = None) -> list[tuple[Any, float | None]]:
        """:meth:`iterate_apdex`, awaited."""
        return await self._plan_iterate_apdex(axis, threshold).arun()

    async def atop(self, axis: str, n: int = 10, by: str = "total") -> list[tuple[Any, int | float]]:
        """:meth:`top`, awaited."""
        return await self._plan_top(axis, n, by).arun()

    def _plan_iterate_percentiles(
        self, axis: str, ps: Iterable[float]
    ) -> Read[list[tuple[Any, dict[float, float | None]]]]:
        wanted, base = self._histogram_base(ps)
        return self._axis_rows(axis, list(histogram.PREFIXES), base, scan=True).then(
            lambda found: [
                (value, histogram.percentiles([int(c) if c is not None else 0 for c in raw], wanted))
                for value, raw in found
                if any(raw)
            ]
        )

    def iterate_percentiles(
        self, axis: str, ps: Iterable[float] = (50, 95, 99)
    ) -> list[tuple[Any, dict[float, float | None]]]:
        """[(value, {p: value})] for each value of ``axis`` that counted something, in the axis'
        order: every value's percentiles in one round trip, each bucket's histogram scanned
        once (as ``top(by="p95")`` reads them), rather than one read of 102 fields per value.

        >>> response_time.over(since).iterate_percentiles("view", [50, 95])   # doctest: +SKIP
        [('shop.views.item', {50: 31.2, 95: 240.1}), ...]
        """
        return self._plan_iterate_percentiles(axis, ps).run()

    async def aiterate_percentiles(
        self, axis: str, ps: Iterable[float] = (50, 95, 99)
    ) -> list[tuple[Any, dict[float, float | None]]]:
        """:meth:`iterate_percentiles`, awaited."""
        return await self._plan_iterate_percentiles(axis, ps).arun()

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


def _available_weeks(mondays: Sequence[timescale.Span]) -> list[bool]:
    """Per week, whether all its day buckets are still within their retention."""
    keep = conf.retention().get("day")
    now, zone = time.time(), conf.time_zone()
    # The Monday expires first; weeks are in order, so only the first few can have expired.
    return [not timescale.expired(monday, keep, now, zone) for monday in mondays]


def bucket_datetimes(spans: Sequence[timescale.Span]) -> list[datetime.datetime]:
    """:func:`bucket_datetime` of each span of a series (spans of one scale), built at once."""
    if not spans:
        return []
    zone = conf.time_zone() if getattr(settings, "USE_TZ", False) else None
    pad = (1, 1, 0, 0)[len(spans[0]) - 1 :]
    return [datetime.datetime(*span, *pad, tzinfo=zone) for span in spans]


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


# -- the budget -----------------------------------------------------------------------------


@dataclasses.dataclass
class Budget:
    """How many counters the reads under one :func:`budget` may touch, and how many they did."""

    limit: int
    setting: str = "STASTE_MAX_QUERY_WORK"
    spent: int = 0

    def charge(self, work: int) -> None:
        if self.spent + work > self.limit:
            raise QueryTooExpensive(self.spent + work, self.limit, self.setting)
        self.spent += work


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("staste_query_budget", default=None)


@contextlib.contextmanager
def budget(limit: int | None = None, setting: str = "STASTE_MAX_QUERY_WORK") -> Iterator[Budget]:
    """Bound the work of every read made within, together (a request, a chart, a tag).

    ``limit`` defaults to the value of ``setting``.  Without an enclosing ``budget`` each
    round trip is bounded on its own by STASTE_MAX_QUERY_WORK.  The admin reads each page
    under STASTE_MAX_QUERY_WORK, the public chart views and template tags under
    STASTE_MAX_PUBLIC_QUERY_WORK::

        with budget(setting="STASTE_MAX_PUBLIC_QUERY_WORK") as spent:
            numbers = query.over(since).iterate("page")     # QueryTooExpensive past it
        spent.spent                                         # counters read
    """
    found = Budget(conf.get(setting) if limit is None else limit, setting)
    token = _budget.set(found)
    try:
        yield found
    finally:
        _budget.reset(token)
        outer = _budget.get()
        if outer is not None:  # an enclosing budget sees the work done within (not bounded by it)
            outer.spent += found.spent


def _charge(reads: Sequence[Fetch]) -> None:
    """Charge the work of ``reads`` to the current budget: QueryTooExpensive past it."""
    current = _budget.get()
    assert current is not None, "reads run under a budget (read() and pipelined() open one)"
    current.charge(sum(one.work for one in reads))


#: The reads whose work only Redis knows (the stored values of an axis, the fields of a hash).
VARIABLE = ("axis", "uniques_axis")
#: The budget argument of a script call that checks none (budget.lua: limit 0, no terms).
NO_BOUND = (0, 0)


def _gate(reads: Sequence[Fetch]) -> tuple[Any, ...]:
    """The budget every read script sent for ``reads`` checks before reading (budget.lua).

    Their fixed work is charged already; what their stored axes and scanned hashes cost is
    counted by Redis, so every call gets the terms of all of them and the budget left for
    them, and either every call reads or none does: the batch's total is what is bounded, not
    each read on its own.
    """
    variable = [one for one in reads if one.kind in VARIABLE and len(one.keys) > 1]
    if not variable:
        return NO_BOUND
    terms = [term for one in variable for term in one.terms()]
    current = _budget.get()
    if current is None:
        limit = conf.get("STASTE_MAX_QUERY_WORK")
    else:  # their minimum (the overflow part) is charged already: it is theirs to spend
        limit = max(1, current.limit - current.spent + sum(one.work for one in variable))
    return (limit, len(terms) // 3, *terms)


#: The size of each axis' set of stored values when last read (by its key), to slice the next
#: read of it for its real size rather than for max_choices (a set that grew meanwhile makes
#: read.lua refuse the call, and the read is sliced again).
_stored_sizes: dict[str, int] = {}


def _own_budget() -> contextlib.AbstractContextManager[Any]:
    """A budget of STASTE_MAX_QUERY_WORK for a round trip made outside any other."""
    return budget() if _budget.get() is None else contextlib.nullcontext()


# -- plans ----------------------------------------------------------------------------------


class Read(Generic[T]):
    """What one query method reads, and how the replies become its result.

    Every query method is plan, execute, decode: planning (validating the query, choosing
    keys and fields) makes a Read; :meth:`run` executes its reads in one round trip (or, within
    :func:`pipelined`, joins a batch) and :meth:`arun` does the same through ``redis.asyncio``;
    both hand the replies to the same ``decode``.  So the sync and async methods share every
    line of query logic.

    Its ``reads`` are :class:`Fetch` es; each is charged to the work budget before anything
    is sent (:func:`budget`).
    """

    __slots__ = ("decode", "reads")

    def __init__(self, reads: list[Fetch], decode: Callable[[list[Any]], T]) -> None:
        self.reads = reads
        self.decode = decode

    def then(self, after: Callable[[T], U]) -> Read[U]:
        """The same reads, with ``after`` applied to the result."""
        decode = self.decode
        return Read(self.reads, lambda replies: after(decode(replies)))

    def run(self) -> T:
        batch = _batch.get()
        if batch is not None:
            return self.decode(batch.answer(self.reads))
        with _own_budget():
            _charge(self.reads)
            return self.decode(execute(self.reads))

    async def arun(self) -> T:
        with _own_budget():
            _charge(self.reads)
            return self.decode(await aexecute(self.reads))


@dataclasses.dataclass(frozen=True)
class Fetch:
    """One thing to read: what to ask Redis, how much it may cost, and how to decode the replies.

    Reads compare and hash (a batch sends each distinct read once).  ``kind`` is

    * "sums": ``fields`` added up over the hashes ``keys`` -> [int or None per field];
    * "rows": ``fields`` of each hash of ``keys`` -> [[raw per field] per key];
    * "axis": the families ``fields`` of every stored value of an axis (set ``keys[0]``),
      added up over the hashes ``keys[1:]`` -> {member: [int or None per family]};
      ``extra`` is (before, after, parent, cap);
    * "years": the stored years' counters (years.lua) -> its flat reply;
    * "uniques": HyperLogLogs ``keys``, in groups of the sizes ``extra`` -> [PFCOUNT of each
      group's union];
    * "uniques_axis": as "axis", ``keys[1:]`` being the buckets' HyperLogLog key prefixes and
      the sums distinct ids (uniques.lua 'axis'; a slice of members holds every bucket);
    * "uniques_years": each stored year's distinct ids (uniques.lua 'years') -> its flat reply.
    """

    kind: str
    keys: tuple[str, ...]
    fields: tuple[str, ...]
    extra: tuple[Any, ...] = ()

    @classmethod
    def sums(cls, bucket_keys: Sequence[str], fields: Sequence[str]) -> Fetch:
        return cls("sums", tuple(bucket_keys), tuple(fields))

    @classmethod
    def rows(cls, bucket_keys: Sequence[str], fields: Sequence[str]) -> Fetch:
        return cls("rows", tuple(bucket_keys), tuple(fields))

    @classmethod
    def axis(
        cls,
        choices: str,
        bucket_keys: Sequence[str],
        families: Sequence[str],
        before: str,
        after: str,
        parent: str,
        cap: int,
        scan: bool = False,
    ) -> Fetch:
        return cls("axis", (choices, *bucket_keys), tuple(families), (before, after, parent, cap, scan))

    @classmethod
    def years(cls, years_key: str, base: str, field: str, families: Sequence[str]) -> Fetch:
        return cls("years", (years_key,), tuple(families), (base, field))

    @property
    def work(self) -> int:
        """Counters read: buckets x fields.  A stored axis counts one value here (its overflow
        part): the scripts check the exact number of the whole batch, values x families x
        buckets, against what the budget leaves before they read anything (:func:`_gate`),
        and the rest is charged from their replies.  A scan of histogram hashes counts one a
        hash here (the fields present are what it reads, often fewer than its families)."""
        if self.kind in VARIABLE:
            return (len(self.keys) - 1) * (1 if self.extra[4] else len(self.fields))
        if self.kind == "uniques":  # each HyperLogLog merged into its group's count
            return max(1, len(self.keys))
        return max(1, len(self.keys) * len(self.fields))

    def terms(self) -> list[Any]:
        """What budget.lua counts for this read, three arguments a term: (key, parent, weight)
        for an axis' set (each child value of parent costs weight counters, as does the
        overflow part), (hash, "", 0) for a hash whose every field is scanned."""
        choices, buckets = self.keys[0], self.keys[1:]
        parent, scan = self.extra[2], self.extra[4]
        if scan:
            return [item for bucket in buckets for item in (bucket, "", 0)]
        return [choices, parent, len(buckets) * len(self.fields)]

    def blank(self) -> Any:
        """What a batch's recording pass answers: no counters."""
        if self.kind == "sums":
            return [None] * len(self.fields)
        if self.kind == "rows":
            return [[None] * len(self.fields) for _ in self.keys]
        if self.kind in ("axis", "uniques_axis"):
            return {}
        if self.kind == "uniques":
            return [0] * len(self.extra)
        return []

    # Commands are ("hmget", key, fields), ("pfcount", key...) or ("script", name, keys, args).

    def commands(self, cluster: bool, gate: tuple[Any, ...] = NO_BOUND) -> list[tuple[Any, ...]]:
        """What to send, each script call checking the budget ``gate`` (:func:`_gate`).

        Within a gated batch every read goes as a script, even one HMGET or PFCOUNT, so that
        nothing is read when the batch is refused (a cluster checks first, see execute)."""
        if len(self.keys) == (1 if self.kind in VARIABLE else 0):
            return []
        gated = gate != NO_BOUND and not cluster
        if self.kind == "uniques":
            commands, at = [], 0
            for size in self.extra:
                group = self.keys[at : at + size]
                commands.append(("script", "uniques", list(group), ["count", *gate]) if gated else ("pfcount", *group))
                at += size
            return commands
        if self.kind == "uniques_years":
            before, after = self.extra
            return [("script", "uniques", [self.keys[0]], ["years", before, after])]
        if self.kind == "uniques_axis":
            return self._axis_slices(gate, script="uniques")
        if self.kind == "years":
            years_key, (base, field) = self.keys[0], self.extra
            return [("script", "years", [years_key], [base, field, *self.fields])]
        if self.kind == "axis":
            return self._axis_slices(gate)
        if cluster or (len(self.keys) == 1 and not gated):  # a cluster pipeline takes no script
            return [("hmget", key, list(self.fields)) for key in self.keys]
        per_call = max(1, SLICE_WORK // max(1, len(self.fields)))
        mode = "sparse" if self.kind == "rows" and len(self.fields) > SPARSE_FIELDS else self.kind
        return [
            ("script", "read", list(self.keys[i : i + per_call]), [mode, *gate, *self.fields])
            for i in range(0, len(self.keys), per_call)
        ]

    def _axis_slices(self, gate: tuple[Any, ...], script: str = "read") -> list[tuple[Any, ...]]:
        choices, buckets = self.keys[0], self.keys[1:]
        before, after, parent, cap, scan = self.extra
        if scan:  # histograms: each bucket's fields scanned once (read.lua 'scan')
            return [
                ("script", "read", [bucket], ["scan", *gate, before, after, parent, SCAN_FIELDS, *self.fields])
                for bucket in buckets
            ]
        # What one member costs a call: its families' counters in the call's buckets, or for
        # uniques the HyperLogLogs of all the buckets (a union is counted in one call).
        families = len(self.fields) if script == "read" else len(buckets)
        work = SLICE_WORK if script == "read" else UNIQUES_SLICE_WORK
        seen = _stored_sizes.get(choices)
        if seen is not None:  # its size last time, with room to grow
            members = seen + 1 + seen // 4
        else:
            members = (cap if cap > 0 else conf.get("STASTE_MAX_CHOICES") or 1000) + 1
        if cap > 0:
            members = min(members, cap + 1)
        if members * families <= work:
            member_slices, width = [(0, 0)], members
        else:
            width = max(1, work // families)
            starts = list(range(0, members - 1, width)) or [0]
            member_slices = [(start, width) for start in starts[:-1]] + [(starts[-1], 0)]
        per_call = max(1, work // (width * families))
        call_limit = 2 * work
        if script == "uniques":  # the count of a union: every slice holds all the buckets
            per_call, call_limit = len(buckets), max(call_limit, (width + 1) * len(buckets))
        return [
            (
                "script",
                script,
                [choices, *buckets[i : i + per_call]],
                ["axis", *gate, before, after, parent, call_limit, first, count, *self.fields],
            )
            for i in range(0, len(buckets), per_call)
            for first, count in member_slices
        ]

    def combine(self, commands: list[tuple[Any, ...]], replies: list[Any]) -> Any:
        """The decoded answer from the replies to :meth:`commands`, in order."""
        if not commands:  # nothing to read (a series of no point)
            return self.blank()
        if self.kind in ("years", "uniques_years"):
            return replies[0]
        if self.kind == "uniques":
            return [int(reply) for reply in replies]
        width = len(self.fields)
        if self.kind in ("axis", "uniques_axis"):
            for reply in replies:
                if isinstance(reply, Exception):
                    if str(reply).startswith("STASTE_HMGET"):  # a hash too large to scan
                        raise _Reslice(dataclasses.replace(self, extra=(*self.extra[:4], False)))
                    _stored_sizes[self.keys[0]] = int(str(reply).split()[1])  # the set outgrew the slices
                    raise _Reslice(self)
            found: dict[str, list[Any]] = {}
            for members, sums, stored, _ in replies:
                if stored >= 0:  # (a scan does not count the set)
                    _stored_sizes[self.keys[0]] = stored
                values = _summed(sums, len(members) * width)
                for i, member in enumerate(members):
                    text, here = _text(member), values[i * width : (i + 1) * width]
                    found[text] = _add(found[text], here) if text in found else here
            # the overflow part is listed only when it counted something
            return {m: v for m, v in found.items() if not m.startswith(keys.OVERFLOW) or v != [None] * width}
        by_hmget = commands[0][0] == "hmget"
        if self.kind == "rows":
            if by_hmget:
                return replies
            if commands[0][3][0] == "sparse":
                rows = [[None] * width for _ in self.keys]
                at = 0
                for command, reply in zip(commands, replies, strict=True):
                    for i in range(0, len(reply), 3):
                        rows[at + reply[i]][reply[i + 1]] = reply[i + 2]
                    at += len(command[2])
                return rows
            flat = [value for reply in replies for value in reply]
            return [flat[i : i + width] for i in range(0, len(flat), width)]
        total: list[Any] = [None] * width
        for reply in replies:
            if by_hmget:
                total = _add(total, [int(v) if v is not None else None for v in reply])
            else:
                total = _add(total, _summed(reply, width))
        return total


class _Reslice(Exception):
    """read.lua refused an axis slice planned for fewer values than the axis now holds, or a
    hash too large to scan: ``fetch`` is what to read instead."""

    def __init__(self, fetch: Fetch) -> None:
        super().__init__(fetch)
        self.fetch = fetch


def _summed(triplets: list[Any], width: int) -> list[int | None]:
    """read.lua's sums (index, low, high per field present) as one number or None per field."""
    out: list[int | None] = [None] * width
    for i in range(0, len(triplets), 3):
        out[triplets[i]] = triplets[i + 1] + triplets[i + 2] * 1_000_000_000
    return out


def _add(into: list[Any], more: list[Any]) -> list[Any]:
    return [b if a is None else a if b is None else a + b for a, b in zip(into, more, strict=True)]


# -- execution ------------------------------------------------------------------------------


def execute(reads: Sequence[Fetch]) -> list[Any]:
    """The decoded answers to ``reads``, all sent in one pipeline (the budget is the caller's).

    Scripts go as EVALSHA in the same pipeline; if Redis lost them (a restart, SCRIPT FLUSH)
    they are loaded and the pipeline is sent again, which is safe since reads write nothing.
    A cluster pipeline takes no script: there each script call goes on its own.
    """
    if not reads:
        return []
    with scripts.translated_errors():
        client = connection.get_redis()
        cluster = isinstance(client, redis.cluster.RedisCluster)
        planned, checks, limit = _plan(reads, cluster)
        if checks:
            _refuse_past(limit, _send(client, cluster, checks))
        replies = _send(client, cluster, [command for commands in planned for command in commands])
    answers, again = _decoded(reads, planned, replies)
    if again:  # sliced for the axis' real size this time (one more round trip, rarely)
        for index, answer in zip(again, execute([answers[i] for i in again]), strict=True):
            answers[index] = answer
    return answers


async def aexecute(reads: Sequence[Fetch]) -> list[Any]:
    """:func:`execute` through this event loop's ``redis.asyncio`` client."""
    if not reads:
        return []
    with scripts.translated_errors():
        async with async_connection.using() as client:
            cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
            planned, checks, limit = _plan(reads, cluster)
            if checks:
                _refuse_past(limit, await _asend(client, cluster, checks))
            replies = await _asend(client, cluster, [command for commands in planned for command in commands])
    answers, again = _decoded(reads, planned, replies)
    if again:
        for index, answer in zip(again, await aexecute([answers[i] for i in again]), strict=True):
            answers[index] = answer
    return answers


def _plan(reads: Sequence[Fetch], cluster: bool) -> tuple[list[list[tuple[Any, ...]]], list[tuple[Any, ...]], int]:
    """The commands of each read, and the budget checks to send before them, with their limit.

    One Redis gets every read script of the batch gated by the batch's budget (:func:`_gate`),
    in the one pipeline.  A cluster sends its script calls one by one, and each can only see
    the keys of its own hash slot: there each read is gated by itself, and a batch of several
    axis reads is first counted slot by slot (read.lua 'work'), its sum checked before any
    read is sent.
    """
    if not cluster:
        gate = _gate(reads)
        return [one.commands(cluster, gate) for one in reads], [], 0
    planned = [one.commands(cluster, _gate([one])) for one in reads]
    gate = _gate(reads)
    if sum(one.kind in VARIABLE and len(one.keys) > 1 for one in reads) < 2:
        return planned, [], 0
    by_slot: dict[int, list[Any]] = {}
    for at in range(2, len(gate), 3):
        by_slot.setdefault(redis.crc.key_slot(gate[at].encode()), []).extend(gate[at : at + 3])
    checks = [("script", "read", [terms[0]], ["work", 0, len(terms) // 3, *terms]) for terms in by_slot.values()]
    return planned, checks, gate[0]


def _refuse_past(limit: int, counted: list[Any]) -> None:
    """QueryTooExpensive when the work Redis counted for a batch's reads, slot by slot, is past ``limit``."""
    if sum(counted) > limit:
        raise _past(sum(counted), limit)


def _past(work: int, limit: int) -> QueryTooExpensive:
    """The error for reads that would touch ``work`` counters where the budget left them ``limit``
    (their charged minimum included): it names the work the whole budget would have reached."""
    current = _budget.get()
    if current is None:
        return QueryTooExpensive(work, limit, "STASTE_MAX_QUERY_WORK")
    return QueryTooExpensive(current.limit - limit + work, current.limit, current.setting)


def _decoded(
    reads: Sequence[Fetch], planned: list[list[tuple[Any, ...]]], replies: list[Any]
) -> tuple[list[Any], list[int]]:
    """Each read's answer from its replies, and the reads to send again (sliced anew)."""
    answers: list[Any] = []
    again: list[int] = []
    at = 0
    current = _budget.get()
    for one, commands in zip(reads, planned, strict=True):
        try:
            answers.append(one.combine(commands, replies[at : at + len(commands)]))
        except _Reslice as exc:
            answers.append(exc.fetch)
            again.append(len(answers) - 1)
            if current is not None:  # the read sent again is charged its own minimum
                current.spent += exc.fetch.work - one.work
        else:
            if one.kind in ("axis", "uniques_axis") and current is not None:  # what the script really read
                current.spent += sum(reply[3] for reply in replies[at : at + len(commands)]) - one.work
        at += len(commands)
    return answers, again


def _send(client: Any, cluster: bool, commands: list[tuple[Any, ...]]) -> list[Any]:
    """The replies to ``commands``, in one round trip where Redis allows (see :func:`execute`)."""
    if not commands:
        return []
    if len(commands) == 1:
        command = commands[0]
        return [_plain(client, command) if command[0] != "script" else _script(client, command)]
    if cluster:
        pipe = _pipeline(client, commands, scripts_too=False)
        replies = iter(pipe.execute() if len(pipe) else [])
        return [next(replies) if command[0] != "script" else _script(client, command) for command in commands]
    for attempt in range(2):
        replies = _pipeline(client, commands).execute(raise_on_error=False)
        lost = _lost_scripts(commands, replies) if attempt == 0 else set()
        if not lost:
            return _checked(replies)
        for name in lost:
            client.script_load(scripts.source(name))
    raise AssertionError("unreachable")  # pragma: no cover


async def _asend(client: Any, cluster: bool, commands: list[tuple[Any, ...]]) -> list[Any]:
    """:func:`_send` through a ``redis.asyncio`` client."""
    if not commands:
        return []
    if len(commands) == 1:
        command = commands[0]
        return [await _plain(client, command) if command[0] != "script" else await _ascript(client, command)]
    if cluster:
        pipe = _pipeline(client, commands, scripts_too=False)
        replies = iter(await pipe.execute() if len(pipe) else [])
        return [next(replies) if command[0] != "script" else await _ascript(client, command) for command in commands]
    for attempt in range(2):
        replies = await _pipeline(client, commands).execute(raise_on_error=False)
        lost = _lost_scripts(commands, replies) if attempt == 0 else set()
        if not lost:
            return _checked(replies)
        for name in lost:
            await client.script_load(scripts.source(name))
    raise AssertionError("unreachable")  # pragma: no cover


# What follows is the part of sending that does no I/O, shared by the sync and async clients
# (redis-py's pipelines queue commands the same way in both; only execute() is awaited).


def _pipeline(client: Any, commands: list[tuple[Any, ...]], scripts_too: bool = True) -> Any:
    """A pipeline of ``commands``, queued, not sent: scripts as EVALSHA (a cluster pipeline
    takes none: ``scripts_too=False`` leaves them out, to be called one by one)."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        if command[0] != "script":
            _plain(pipe, command)
        elif scripts_too:
            _, name, script_keys, args = command
            pipe.evalsha(scripts.script(client, name).sha, len(script_keys), *script_keys, *args)
    return pipe


def _lost_scripts(commands: list[tuple[Any, ...]], replies: list[Any]) -> set[str]:
    """The scripts to load and send again when Redis lost them (a restart, SCRIPT FLUSH): the
    pipeline is safe to send twice, since reads write nothing.  Empty when none was lost."""
    if not any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
        return set()
    return {command[1] for command in commands if command[0] == "script"}


def _checked(replies: list[Any]) -> list[Any]:
    """``replies``, or the first error among them raised (a refused budget as QueryTooExpensive);
    an axis read to slice again stays a reply (see Fetch.combine)."""
    for reply in replies:
        if isinstance(reply, Exception) and not _reslice(reply):
            raise _too_expensive(reply) or reply
    return replies


def _plain(client: Any, command: tuple[Any, ...]) -> Any:
    """Send (or queue, on a pipeline) a command that is not a script."""
    if command[0] == "hmget":
        return client.hmget(command[1], command[2])
    # execute_command: redis-py's cluster pipeline blocks its pfcount() (a multi-key command);
    # the keys of one PFCOUNT share the metrica's hash slot, so the node can answer it.
    return client.execute_command("PFCOUNT", *command[1:])


def _script(client: Any, command: tuple[Any, ...]) -> Any:
    _, name, script_keys, args = command
    try:
        return scripts.script(client, name)(keys=script_keys, args=args, client=client)
    except redis.ResponseError as exc:
        return _failed(exc)


async def _ascript(client: Any, command: tuple[Any, ...]) -> Any:
    _, name, script_keys, args = command
    try:
        return await scripts.script(client, name)(keys=script_keys, args=args, client=client)
    except redis.ResponseError as exc:
        return _failed(exc)


def _failed(exc: redis.ResponseError) -> Any:
    """What a script call that Redis answered with an error gives: the error itself when the
    read is to be sliced again (a reply like the others), else raised."""
    if _reslice(exc):
        return exc
    raise _too_expensive(exc) or exc from None


def _reslice(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(("STASTE_RESLICE", "STASTE_HMGET"))


def _too_expensive(exc: BaseException) -> QueryTooExpensive | None:
    """budget.lua's refusal of a batch whose stored axes hold too many values."""
    text = str(exc)
    if not text.startswith("STASTE_TOO_EXPENSIVE"):
        return None
    _, work, limit = text.split()[:3]
    return _past(int(work), int(limit))


class _Batch:
    """The reads of several queries: recorded in a first pass, answered in a second.

    Each distinct read is charged to the budget and sent once.
    """

    def __init__(self) -> None:
        self.reads: dict[Fetch, None] = {}  # distinct reads, in order
        self.answers: dict[Fetch, Any] | None = None

    def answer(self, reads: list[Fetch]) -> list[Any]:
        if self.answers is None:
            new = [one for one in dict.fromkeys(reads) if one not in self.reads]
            _charge(new)
            self.reads.update(dict.fromkeys(new))
            return [one.blank() for one in reads]
        missing = [one for one in dict.fromkeys(reads) if one not in self.answers]
        if missing:
            # A call that reads otherwise the second time (e.g. it looked at the clock and an
            # hour went by) still gets true numbers, at the price of one more round trip.
            _charge(missing)
            self.answers.update(zip(missing, execute(missing), strict=True))
        return [self.answers[one] for one in reads]

    def execute(self) -> None:
        reads = list(self.reads)
        self.answers = dict(zip(reads, execute(reads), strict=True))


def pipelined(calls: Sequence[Callable[[], T]]) -> list[T]:
    """The results of ``calls`` (e.g. ``lambda: query.total()``), their reads in one round trip.

    Pages that show many queries (the admin dashboard: several numbers and a series for each
    of 50 metricas) would otherwise pay one round trip per number.  Each call runs twice: first
    to record the reads it makes (answered with empty counters), then against the replies of
    one pipeline of all of them; so calls must be pure reads whose keys do not depend on what
    they read (a call that reads other keys the second time, say because the hour changed,
    still gets true numbers, at the cost of one more round trip).  The batch is one round trip
    for the budget: without an enclosing :func:`budget`, its reads together are bounded by
    STASTE_MAX_QUERY_WORK.  Called within another ``pipelined`` call, the reads join the
    outer batch.
    """
    if _batch.get() is not None:
        return [call() for call in calls]
    with contextlib.ExitStack() as stack:
        if _budget.get() is None:
            stack.enter_context(budget())
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
