"""The query API: lazy, immutable queries over a metrica's counters (:class:`MetricaValues`).

Every method that returns numbers costs exactly one Redis round trip (one command, one
pipeline or one script), whatever the number of buckets or choices; every other method only
builds a new query.

>>> q = guests.timespan(year=2010, month=2).filter(gender="boy")   # doctest: +SKIP
>>> q.total(), q.iterate("age")                                    # doctest: +SKIP
(28, [('17', 10), ('18', 17), ('19', 0), ('120', 1)])

This module plans; the layers below do the rest.  Every query method is plan, execute, decode:
its plan (``_plan_<method>``) validates the query and makes a :class:`~staste.roundtrip.Read`
of :mod:`~staste.reads` (the hashes and fields to read, one small type per kind of read) and
of how their answers become the result; :mod:`staste.roundtrip` sends them in one pipeline
(or through ``redis.asyncio``, or in a batch of :func:`pipelined`), under the work budget of
:mod:`staste.budget`.  The sync and async methods share every plan.  Its cost is bounded
three ways (docs/queries.md, docs/security.md):

* a range (:meth:`MetricaValues.over`) is read from the fewest buckets that cover it exactly
  (``timescale.cover``): ten thousand minutes are about 130 buckets, not 10,000;
* every read counts the counters it may touch (its *work*: buckets x values x families, a
  stored axis counting as ``max_choices + 1`` values) against a budget, ``STASTE_MAX_QUERY_WORK``
  per round trip, or what :func:`budget` sets for a whole request; past it
  :class:`~staste.exceptions.QueryTooExpensive` is raised before Redis is asked anything;
* every script call is given a bounded share of the work (``reads.SLICE_WORK`` counters,
  ``reads.UNIQUES_SLICE_WORK`` HyperLogLogs, ``reads.SCAN_FIELDS`` scanned fields): larger
  reads are cut into slices, sent in the same pipeline.

``budget``, ``Budget``, ``pipelined`` and ``Read`` are importable from here too, as before the
layers were split.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings

from staste import apdex, conf, histogram, keys, measures, timescale
from staste.budget import Budget, budget
from staste.exceptions import CombinationNotKept, TooManyBuckets, ValueRefused
from staste.reads import AxisSums, Fetch, HistogramScan, Rows, Sums, UniqueCounts, UniquesAxis, UniqueYears, Years
from staste.roundtrip import Read, pipelined

if TYPE_CHECKING:
    from staste.axis import Axis
    from staste.metrica import Metrica

__all__ = ["Budget", "MetricaValues", "Read", "bucket_datetime", "bucket_datetimes", "budget", "pipelined"]

T = TypeVar("T")
Raw = bytes | str | int | None
Row = tuple[Any, list[Raw]]


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

    def _field(self, uniques: bool = False) -> str:
        self.require_kept(None, uniques)
        return keys.field(self._parts())

    def require_kept(self, breakdown: str | None = None, uniques: bool = False) -> None:
        """Refuse, before anything is read, a question whose combination of axes (the filters,
        and ``breakdown``) the metrica keeps no counters (``uniques``: HyperLogLogs) for
        (``Metrica(combinations=...)``, ``uniques_axes=``): CombinationNotKept.

        Every read calls it; pages call it to refuse a chart before drawing anything.
        """
        kept = self.metrica.uniques_axes if uniques else self.metrica.combinations
        if kept.everything:
            return
        fixed = tuple(name for name in self.metrica.axes if name in self.filters or name == breakdown)
        if not kept.keeps(fixed):
            raise CombinationNotKept(self.metrica.name, fixed, kept.describe(), kept.widened(fixed), uniques)

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
        fetch = Sums(tuple([self._key(span) for span in self._buckets()]), tuple([p + field for p in families]))
        return Read([fetch], lambda replies: replies[0])

    def _spans(self, spans: Sequence[timescale.Span], families: Sequence[str], base: str | None = None) -> list[Fetch]:
        """One fetch of the counters of ``families`` in each of ``spans``: its reply is a row per span."""
        field = self._field()
        prefix = self.metrica.base if base is None else base
        bucket_id = timescale.bucket_id
        # (tuple([...]), not a generator: a series of 1,441 buckets would resume it 1,441 times)
        return [Rows(tuple([prefix + bucket_id(span) for span in spans]), tuple([p + field for p in families]))]

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
        read = Years(keys.years_key(base), base, self._field(), tuple(families))
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
        self.require_kept(axis_name)
        parts = self._parts()
        index = list(self.metrica.axes).index(axis_name)
        bucket_keys = [self._key(span, base) for span in self._buckets()]
        width = len(families)
        if axis.choices is not None:
            labelled = axis.declared_parts()
            fields = self._declared_fields(axis_name, labelled, families)
            return Read(
                [Sums(tuple(bucket_keys), tuple(fields))],
                lambda replies: [
                    (value, replies[0][i * width : (i + 1) * width]) for i, (value, _) in enumerate(labelled)
                ],
            )
        before = keys.field(parts[:index]) + keys.PART_SEPARATOR if index else ""
        after = keys.PART_SEPARATOR + keys.field(parts[index + 1 :]) if index < len(parts) - 1 else ""
        parent = axis.member_parent(self.filters.get(axis_name)) if axis.hierarchical else ""
        choices = keys.choices_key(self.metrica.base, axis_name)
        kind = HistogramScan if scan else AxisSums
        fetch = kind(choices, tuple(bucket_keys), tuple(families), before, after, parent, axis.cap())

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
                    rows.append((bucket_datetime(monday), None))  # type: ignore[arg-type]  # expired: no values
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

    def _histogram_fetch(self, spans: Sequence[timescale.Span], base: str, kind: type[Sums] | type[Rows]) -> Fetch:
        field = self._field()
        fields = tuple([prefix + field for prefix in histogram.PREFIXES])
        return kind(tuple([base + timescale.bucket_id(span) for span in spans]), fields)

    def _plan_percentiles(self, ps: Iterable[float]) -> Read[dict[float, float | None]]:
        wanted, base = self._histogram_base(ps)
        return Read(
            [self._histogram_fetch(self._buckets(), base, Sums)],
            lambda replies: histogram.percentiles([int(c) if c is not None else 0 for c in replies[0]], wanted),
        )

    def _plan_percentiles_over(
        self, since: Any, until: Any, scale: str | None, ps: Iterable[float]
    ) -> Read[dict[float, float | None]]:
        return self.over(since, until, scale)._plan_percentiles(ps)

    def _plan_timeserie_percentiles(
        self, since: Any, until: Any, scale: str | None, ps: Iterable[float]
    ) -> Read[list[tuple[datetime.datetime, dict[float, float | None] | None]]]:
        wanted, base = self._histogram_base(ps)
        return self._plan_timeserie_histograms(
            since, until, scale, base, lambda counts: histogram.percentiles(counts, wanted)
        )

    def _plan_timeserie_apdex(
        self, since: Any, until: Any, scale: str | None, threshold: float | None = None
    ) -> Read[list[tuple[datetime.datetime, float | None]]]:
        target, base = self._apdex_threshold(threshold)
        return self._plan_timeserie_histograms(since, until, scale, base, lambda counts: apdex.score(counts, target))

    def _plan_timeserie_histograms(
        self, since: Any, until: Any, scale: str | None, base: str, summary: Callable[[list[int]], T]
    ) -> Read[list[tuple[datetime.datetime, T | None]]]:
        """(bucket start, ``summary`` of its histogram counts) per bucket of the range; a week
        adds up its days' histograms, and is None where its days are no longer all held."""
        scale, points = self.series_spans(since, until, scale)
        if scale != timescale.WEEK:
            return Read(
                [self._histogram_fetch(points, base, Rows)],
                lambda replies: [
                    (moment, summary([int(c) if c is not None else 0 for c in raw]))
                    for moment, raw in zip(bucket_datetimes(points), replies[0], strict=True)
                ],
            )
        available = _available_weeks(points)
        days = [timescale.week_days(monday) for monday, kept in zip(points, available, strict=True) if kept]
        reads = [self._histogram_fetch([day for week in days for day in week], base, Rows)]

        def decode(replies: list[Any]) -> list[tuple[datetime.datetime, T | None]]:
            rows: list[tuple[datetime.datetime, T | None]] = []
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
                rows.append((bucket_datetime(monday), summary(counts)))
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
        return self._plan_percentiles([p]).run()[p]

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
            [self._histogram_fetch(self._buckets(), base, Sums)],
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

    def _unique_counts(self, groups: Sequence[Sequence[timescale.Span]]) -> UniqueCounts:
        """One PFCOUNT per group of buckets: the distinct ids of the union of the group's
        HyperLogLogs of this query's combination (never a sum: an id seen in two buckets is
        one id)."""
        field = self._field(uniques=True)
        flat: list[str] = []
        for group in groups:
            flat += [prefix + field for prefix in self._unique_prefixes(group)]
        return UniqueCounts(tuple(flat), tuple([len(group) for group in groups]))

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
            fetch: Fetch = UniqueYears(keys.years_key(base), base + "u:", ":" + self._field(uniques=True))
            return Read(
                [fetch],
                lambda replies: sorted(
                    (int(_text(replies[0][i])), replies[0][i + 1]) for i in range(0, len(replies[0]), 2)
                ),
            )
        chosen = self._axis(axis)
        self.require_kept(axis, uniques=True)
        parts = self._parts()
        index = list(self.metrica.axes).index(axis)
        prefixes = self._unique_prefixes(buckets)
        if chosen.choices is not None:
            labelled = chosen.declared_parts()
            flat = self._declared_fields(axis, labelled, prefixes)
            fetch = UniqueCounts(tuple(flat), (len(prefixes),) * len(labelled))
            return Read(
                [fetch],
                lambda replies: [(value, count) for (value, _), count in zip(labelled, replies[0], strict=True)],
            )
        before = keys.field(parts[:index]) + keys.PART_SEPARATOR if index else ""
        after = keys.PART_SEPARATOR + keys.field(parts[index + 1 :]) if index < len(parts) - 1 else ""
        parent = chosen.member_parent(self.filters.get(axis)) if chosen.hierarchical else ""
        choices = keys.choices_key(self.metrica.base, axis)
        fetch = UniquesAxis(choices, tuple(prefixes), ("",), before, after, parent, chosen.cap())

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

    def _plan_counted_totals(self, axis: str) -> Read[list[tuple[Any, int | float | None]]]:
        """(value, total) per value of ``axis``, None where nothing was counted (what ``top()``
        leaves out; ``iterate()`` reads the same counters and says 0)."""
        return self._axis_rows(axis, [""]).then(
            lambda found: [(value, None if raw[0] is None else self._sum(raw[0])) for value, raw in found]
        )

    def _plan_top(self, axis: str, n: int, by: str | None) -> Read[list[tuple[Any, int | float]]]:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"top: n must be a whole number >= 1, not {n!r}")
        measure = measures.get(self.metrica, measures.default(self.metrica) if by is None else by)

        worst_first = -1 if measure.lowest_first else 1  # a low Apdex needs looking at, as a high p95

        def ranked(found: list[tuple[Any, Any]]) -> list[tuple[Any, int | float]]:
            kept = [(value, number) for value, number in found if number is not None]
            kept.sort(key=lambda row: -row[1] * worst_first)  # stable: ties keep the axis' order
            return kept[:n]

        return measure.plan_counted(self, axis).then(ranked)

    def top(self, axis: str, n: int = 10, by: str | None = None) -> list[tuple[Any, int | float]]:
        """The ``n`` values of ``axis`` with the largest ``by``, largest first: [(value, measure)].

        ``by`` is a measure the metrica has (:mod:`staste.measures`): "total" (unless its values
        are durations), "count" or "average" (an AveragedMetrica), "uniques" (distinct ids, a
        metrica made with ``uniques=True``), a percentile such as "p95" or "p99.9", or "apdex" (a metrica
        made with ``histogram=True``; the *lowest* Apdex first: the values that satisfy their
        users least, at ``STASTE_APDEX_T``); by default ``measures.default``: the count of an
        AveragedMetrica, the total of any other.  Values with nothing counted are left out; ties
        keep the axis' order.  One round trip, the counters summed in Redis (over the range of
        an ``over()`` query too).

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

    async def atop(self, axis: str, n: int = 10, by: str | None = None) -> list[tuple[Any, int | float]]:
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
    now, zone = timescale.now(), conf.time_zone()
    # The Monday expires first; weeks are in order, so only the first few can have expired.
    return [not timescale.expired(monday, keep, now, zone) for monday in mondays]


def bucket_datetimes(spans: Sequence[timescale.Span]) -> list[datetime.datetime]:
    """:func:`bucket_datetime` of each span of a series (spans of one scale), built at once."""
    if not spans:
        return []
    zone = conf.time_zone() if getattr(settings, "USE_TZ", False) else None
    pad = (1, 1, 0, 0)[len(spans[0]) - 1 :]
    return [
        datetime.datetime(year, month, day, hour, minute, tzinfo=zone)
        for year, month, day, hour, minute in (span + pad for span in spans)
    ]


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
