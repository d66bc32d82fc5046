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
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.cluster
from django.conf import settings

from staste import conf, connection, histogram, keys, scripts, timescale

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

    # -- one round trip each ---------------------------------------------------------------

    @staticmethod
    def _hmget(requests: Sequence[tuple[str, list[str]]]) -> list[list[Raw]]:
        batch = _batch.get()
        if batch is not None:
            return batch.hmget(requests)
        with scripts.translated_errors():
            client = connection.get_redis()
            if len(requests) == 1:
                key, fields = requests[0]
                return [client.hmget(key, fields)]
            pipe = client.pipeline(transaction=False)
            for key, fields in requests:
                pipe.hmget(key, fields)
            return pipe.execute()

    def _read_here(self, families: list[str]) -> list[Raw]:
        field = self._field()
        return self._hmget([(self._key(self.span), [prefix + field for prefix in families])])[0]

    def _read_spans(self, spans: Sequence[timescale.Span], families: list[str]) -> list[list[Raw]]:
        if not spans:
            return []
        field = self._field()
        return self._hmget([(self._key(span), [prefix + field for prefix in families]) for span in spans])

    def _read_time_children(self, families: list[str]) -> list[Row]:
        if self.span:
            if len(self.span) >= len(self.metrica.date_scales):
                finer = "nothing finer" if len(self.span) == 5 else "no finer scale"
                raise ValueError(f"{self.metrica.name}: a {timescale.scale_of(self.span)} has {finer} to iterate")
            spans = timescale.children(self.span)
            return [(span[-1], raw) for span, raw in zip(spans, self._read_spans(spans, families), strict=True)]
        if not self.metrica.date_scales:
            raise ValueError(f"{self.metrica.name} records only all time: there are no years to iterate")
        base = self.metrica.base
        flat = _members([keys.years_key(base)], ["years", base, "", self._field(), "", *families])
        rows = _unflatten(flat, len(families))
        return sorted(((int(_text(member)), raw) for member, raw in rows), key=lambda row: row[0])

    def _read_axis(self, axis_name: str, families: list[str]) -> list[Row]:
        axis = self._axis(axis_name)
        parts = self._parts()
        index = list(self.metrica.axes).index(axis_name)
        key = self._key(self.span)
        if axis.choices is not None:
            labelled = axis.declared_parts()
            fields = []
            for _, part in labelled:
                parts[index] = part
                combination = keys.field(parts)
                fields += [prefix + combination for prefix in families]
            raw = self._hmget([(key, fields)])[0]
            width = len(families)
            return [(value, raw[i * width : (i + 1) * width]) for i, (value, _) in enumerate(labelled)]
        before = keys.field(parts[:index]) + keys.PART_SEPARATOR if index else ""
        after = keys.PART_SEPARATOR + keys.field(parts[index + 1 :]) if index < len(parts) - 1 else ""
        parent = axis.member_parent(self.filters.get(axis_name)) if axis.hierarchical else ""
        flat = _members(
            [keys.choices_key(self.metrica.base, axis_name), key],
            ["axis", key, before, after, parent, *families],
        )
        rows = [(axis.from_part(_text(member)), raw) for member, raw in _unflatten(flat, len(families))]
        return sorted(rows, key=lambda row: axis.sort_key(row[0]))

    def _rows(self, axis: str | None, families: list[str]) -> list[Row]:
        return self._read_axis(axis, families) if axis else self._read_time_children(families)

    # -- numbers ---------------------------------------------------------------------------

    def _sum(self, raw: Raw) -> int | float:
        number = int(raw) if raw is not None else 0
        return number / self.metrica.multiplier if self.metrica.multiplier else number

    def _average(self, raw_sum: Raw, raw_count: Raw) -> float | None:
        count = int(raw_count) if raw_count is not None else 0
        if not count:
            return None
        return self._sum(raw_sum) / count

    def total(self) -> int | float:
        """Sum of the values kicked (the number of kicks, when no value was given)."""
        return self._sum(self._read_here(self._families(""))[0])

    def count(self) -> int:
        """Number of events (AveragedMetrica)."""
        raw = self._read_here(self._families(keys.COUNT_MARK))[0]
        return int(raw) if raw is not None else 0

    def average(self) -> float | None:
        """Mean value of the events (AveragedMetrica); None when there were none."""
        raw_sum, raw_count = self._read_here(self._families("", keys.COUNT_MARK))
        return self._average(raw_sum, raw_count)

    def iterate(self, axis: str | None = None) -> list[tuple[Any, int | float]]:
        """Totals per value of ``axis``, or per bucket of the next finer time scale."""
        return [(label, self._sum(raw[0])) for label, raw in self._rows(axis, self._families(""))]

    def iterate_counts(self, axis: str | None = None) -> list[tuple[Any, int]]:
        rows = self._rows(axis, self._families(keys.COUNT_MARK))
        return [(label, int(raw[0]) if raw[0] is not None else 0) for label, raw in rows]

    def iterate_averages(self, axis: str | None = None) -> list[tuple[Any, float | None]]:
        rows = self._rows(axis, self._families("", keys.COUNT_MARK))
        return [(label, self._average(*raw)) for label, raw in rows]

    # -- time series -------------------------------------------------------------------

    def series_spans(self, since: Any, until: Any = None, scale: str | None = None) -> tuple[str, list[timescale.Span]]:
        """The scale and the buckets a time series from ``since`` to ``until`` reads."""
        start, stop = conf.local(since), conf.local(until)
        if stop < start:
            raise ValueError(f"timeserie: until ({stop}) is before since ({start})")
        if scale is None:
            scale = timescale.finest_retained(start, conf.local(), self.metrica.date_scales, conf.retention())
        elif scale not in self.metrica.date_scales:
            timescale.depth(scale)
            raise ValueError(f"{self.metrica.name} does not record {scale}s")
        limit = conf.get("STASTE_MAX_BUCKETS")
        if timescale.count_buckets(start, stop, scale) > limit:
            raise ValueError(
                f"timeserie: more than {limit} {scale}s between {start} and {stop}; "
                "choose a coarser scale or a shorter range"
            )
        return scale, timescale.series(start, stop, scale)

    def _series(self, since: Any, until: Any, scale: str | None, families: list[str]) -> list[Row]:
        _, spans = self.series_spans(since, until, scale)
        return [
            (bucket_datetime(span), raw) for span, raw in zip(spans, self._read_spans(spans, families), strict=True)
        ]

    def timeserie(self, since: Any, until: Any = None, scale: str | None = None) -> list[tuple[datetime.datetime, Any]]:
        """(bucket start, total) for every bucket from ``since`` to ``until`` (default: now).

        Without ``scale`` the finest scale whose retention still covers ``since`` is used.
        """
        return [(moment, self._sum(raw[0])) for moment, raw in self._series(since, until, scale, self._families(""))]

    def timeserie_counts(
        self, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[datetime.datetime, int]]:
        rows = self._series(since, until, scale, self._families(keys.COUNT_MARK))
        return [(moment, int(raw[0]) if raw[0] is not None else 0) for moment, raw in rows]

    def timeserie_counts_and_averages(
        self, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[datetime.datetime, int, float | None]]:
        """(bucket start, count, average) for every bucket (AveragedMetrica)."""
        rows = self._series(since, until, scale, self._families("", keys.COUNT_MARK))
        return [
            (moment, int(raw[1]) if raw[1] is not None else 0, self._average(raw[0], raw[1])) for moment, raw in rows
        ]

    # -- percentiles (metricas made with histogram=True) -----------------------------------

    def _histogram_reads(self, spans: Sequence[timescale.Span], ps: Iterable[float]) -> tuple[list[float], list[Any]]:
        if not getattr(self.metrica, "histogram", False):
            raise TypeError(f"{self.metrica.name} keeps no histogram: make it with histogram=True to read percentiles")
        wanted = list(ps)
        for p in wanted:  # bad input fails before any read
            histogram.check_percentile(p)
        field = self._field()
        fields = [prefix + field for prefix in histogram.PREFIXES]
        base = self.metrica.base + keys.family_infix(histogram.MARK)
        return wanted, [(keys.bucket_key(base, timescale.bucket_id(span)), fields) for span in spans]

    def percentiles(self, ps: Iterable[float] = (50, 95, 99)) -> dict[float, float | None]:
        """{p: value} for each percentile ``p`` (0-100) of the values kicked; None when empty.

        Read from the metrica's histogram (one HMGET), so a value is exact to within its
        bucket (see :mod:`staste.histogram`); in the unit of the values kicked.
        """
        wanted, requests = self._histogram_reads([self.span], ps)
        raw = self._hmget(requests)[0]
        return histogram.percentiles([int(count) if count is not None else 0 for count in raw], wanted)

    def percentiles_over(
        self, since: Any, until: Any = None, scale: str | None = None, ps: Iterable[float] = (50, 95, 99)
    ) -> dict[float, float | None]:
        """{p: value} of every value kicked from ``since`` to ``until``: the buckets' histograms
        added up (one round trip), as the admin shows for a range such as the last 24 hours."""
        _, spans = self.series_spans(since, until, scale)
        wanted, requests = self._histogram_reads(spans, ps)
        rows = self._hmget(requests)
        counts = [sum(int(c) for c in column if c is not None) for column in zip(*rows, strict=True)]
        return histogram.percentiles(counts, wanted)

    def percentile(self, p: float) -> float | None:
        """The value below which ``p`` percent of the values kicked lie (``percentile(95)``)."""
        return self.percentiles([p])[p]

    def timeserie_percentiles(
        self, since: Any, until: Any = None, scale: str | None = None, ps: Iterable[float] = (50, 95, 99)
    ) -> list[tuple[datetime.datetime, dict[float, float | None]]]:
        """(bucket start, {p: value}) for every bucket from ``since`` to ``until``, like timeserie()."""
        _, spans = self.series_spans(since, until, scale)
        wanted, requests = self._histogram_reads(spans, ps)
        if not requests:
            return []
        return [
            (bucket_datetime(span), histogram.percentiles([int(c) if c is not None else 0 for c in raw], wanted))
            for span, raw in zip(spans, self._hmget(requests), strict=True)
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


T = TypeVar("T")
_batch: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("staste_query_batch", default=None)


class _Batch:
    """The reads of several queries: recorded in a first pass, answered in a second.

    A read is ``("hmget", key, fields)`` or ``("members", keys, args)`` (the members script),
    with tuples so that reads compare and hash; each distinct read is sent once.
    """

    def __init__(self) -> None:
        self.reads: dict[tuple[Any, ...], None] = {}  # distinct reads, in order
        self.answers: dict[tuple[Any, ...], Any] | None = None

    def answer(self, reads: list[tuple[Any, ...]], blanks: list[Any]) -> list[Any]:
        if self.answers is None:
            self.reads.update(dict.fromkeys(reads))
            return blanks
        missing = [read for read in reads if read not in self.answers]
        if missing:
            # A call that reads otherwise the second time (e.g. it looked at the clock and an
            # hour went by) still gets true numbers, at the price of one more round trip.
            self.answers.update(zip(missing, _execute(missing), strict=True))
        return [self.answers[read] for read in reads]

    def hmget(self, requests: Sequence[tuple[str, list[str]]]) -> list[list[Raw]]:
        reads = [("hmget", key, tuple(fields)) for key, fields in requests]
        return self.answer(reads, [[None] * len(fields) for _, fields in requests])

    def members(self, script_keys: list[str], args: list[Any]) -> Any:
        return self.answer([("members", tuple(script_keys), tuple(args))], [[]])[0]

    def execute(self) -> None:
        reads = list(self.reads)
        self.answers = dict(zip(reads, _execute(reads), strict=True))


def _execute(reads: list[tuple[Any, ...]]) -> list[Any]:
    """Every read in one pipeline (a script may add a SCRIPT EXISTS check).

    A cluster pipeline refuses scripts, so there each script read is a call of its own.
    """
    if not reads:
        return []
    with scripts.translated_errors():
        client = connection.get_redis()
        cluster = isinstance(client, redis.cluster.RedisCluster)
        pipe = client.pipeline(transaction=False)
        for read in reads:
            if read[0] == "hmget":
                pipe.hmget(read[1], list(read[2]))
            elif not cluster:
                scripts.script(client, read[0])(keys=list(read[1]), args=list(read[2]), client=pipe)
        replies = iter(pipe.execute() if len(pipe) else [])
        return [
            next(replies) if read[0] == "hmget" or not cluster else scripts.run(read[0], read[1], read[2])
            for read in reads
        ]


def _members(script_keys: list[str], args: list[Any]) -> Any:
    batch = _batch.get()
    if batch is not None:
        return batch.members(script_keys, args)
    return scripts.run("members", script_keys, args)


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
