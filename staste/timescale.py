"""Calendar buckets: which counters an event lands in, and which buckets a query reads.

A *span* is a tuple of calendar numbers given from the top down: ``()`` is all time,
``(2010,)`` the year 2010, ``(2010, 2)`` February 2010, up to ``(2010, 2, 7, 13, 5)`` for
one minute.  Spans are in the staste time zone's local calendar and carry no tzinfo.

Nothing here touches Redis or Django.  :func:`now` is the one clock staste reads.
"""

from __future__ import annotations

import calendar
import datetime
import time
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo


class SpanOutOfRange(ValueError):
    """A timespan's ``scale`` given ``number``, outside ``low``..``high`` (pages say it in their words)."""

    def __init__(self, message: str, scale: str, number: int, low: int, high: int) -> None:
        super().__init__(message)
        self.scale, self.number, self.low, self.high = scale, number, low, high


class SpanMisgiven(TypeError):
    """A timespan's ``scale`` given as no int (``needs`` None), or without the coarser ``needs``."""

    def __init__(self, message: str, scale: str, needs: str | None = None) -> None:
        super().__init__(message)
        self.scale, self.needs = scale, needs


SCALES: tuple[str, ...] = ("year", "month", "day", "hour", "minute")
#: ISO weeks (Monday to Sunday) are a scale of time series only: a week is read from its seven
#: day buckets, so kicks write nothing for it.  A week is named by the day span of its Monday.
WEEK = "week"
#: Every scale a time series can be read at, coarsest first.
SERIES_SCALES: tuple[str, ...] = ("year", "month", WEEK, "day", "hour", "minute")
Span = tuple[int, ...]

_LIMITS = {"month": (1, 12), "hour": (0, 23), "minute": (0, 59)}
_STEPS = {
    "day": datetime.timedelta(days=1),
    "hour": datetime.timedelta(hours=1),
    "minute": datetime.timedelta(minutes=1),
}
MAX_YEAR = 9999


def scale_of(span: Span) -> str | None:
    """The scale whose buckets ``span`` is one of (None for all time)."""
    return SCALES[len(span) - 1] if span else None


def depth(scale: str) -> int:
    try:
        return SCALES.index(scale) + 1
    except ValueError:
        raise ValueError(f"unknown time scale {scale!r}; use one of {', '.join(SCALES)}") from None


#: How the bucket of a span of each length is spelled (one %-format: series build thousands).
_ID_FORMATS = ("all", "%04d", "%04d%02d", "%04d%02d%02d", "%04d%02d%02d%02d", "%04d%02d%02d%02d%02d")


def bucket_id(span: Span) -> str:
    """``all``, or the digits of the bucket's start: ``2010``, ``201002`` ... ``201002071305``."""
    return _ID_FORMATS[len(span)] % span if span else "all"


def make_span(
    year: int | None = None,
    month: int | None = None,
    day: int | None = None,
    hour: int | None = None,
    minute: int | None = None,
) -> Span:
    """Validate calendar numbers given from the top down and return their span.

    >>> make_span(year=2010, month=2)
    (2010, 2)
    """
    given = (year, month, day, hour, minute)
    span: list[int] = []
    for scale, number in zip(SCALES, given, strict=True):
        if number is None:
            break
        span.append(_check_number(scale, number, span))
    rest = given[len(span) :]
    if any(number is not None for number in rest):
        missing = SCALES[len(span)]
        extra = [s for s, n in zip(SCALES[len(span) :], rest, strict=True) if n is not None]
        raise SpanMisgiven(
            f"timespan: {extra[0]}= needs {missing}= too; give the scales from the top down "
            "(year, month, day, hour, minute)",
            extra[0],
            missing,
        )
    return tuple(span)


def narrow(
    span: Span,
    year: int | None = None,
    month: int | None = None,
    day: int | None = None,
    hour: int | None = None,
    minute: int | None = None,
) -> Span:
    """``span`` with the given scales set, as chained ``timespan()`` calls merge them.

    A scale given again replaces that scale only; the others stay.  The result is checked as
    :func:`make_span` checks a flat call (so a finer scale still needs its coarser ones, from
    ``span`` or from the call).

    >>> narrow((2006,), month=2)
    (2006, 2)
    >>> narrow((2006, 2, 7), month=3)
    (2006, 3, 7)
    """
    given = (year, month, day, hour, minute)
    merged = [given[i] if given[i] is not None else (span[i] if i < len(span) else None) for i in range(len(SCALES))]
    return make_span(*merged)


def _check_number(scale: str, number: object, above: list[int]) -> int:
    if isinstance(number, bool) or not isinstance(number, int):
        raise SpanMisgiven(f"timespan: {scale}= must be an int, got {number!r}", scale)
    if scale == "year":
        low, high = 1, MAX_YEAR
    elif scale == "day":
        low, high = 1, calendar.monthrange(above[0], above[1])[1]
    else:
        low, high = _LIMITS[scale]
    if not low <= number <= high:
        raise SpanOutOfRange(f"timespan: {scale}={number} is out of range {low}..{high}", scale, number, low, high)
    return number


def truncate(moment: datetime.datetime, scale: str | None) -> Span:
    """The span of ``scale`` that holds ``moment`` (a naive local datetime)."""
    full = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
    return full[: depth(scale)] if scale else ()


def spans_of(moment: datetime.datetime, scales: Sequence[str]) -> list[Span]:
    """Every bucket an event at ``moment`` counts in: all time, then each recorded scale."""
    return [()] + [truncate(moment, scale) for scale in scales]


def start(span: Span) -> datetime.datetime:
    if not span:
        return datetime.datetime.min
    year, month, day, hour, minute = (*span, *(1, 1, 0, 0)[len(span) - 1 :])
    return datetime.datetime(year, month, day, hour, minute)


def following(span: Span) -> Span:
    """The next span of the same scale."""
    scale = scale_of(span)
    if scale is None:
        raise ValueError("all time has no following span")
    if scale == "year":
        return (span[0] + 1,)
    if scale == "month":
        year, month = span
        return (year + 1, 1) if month == 12 else (year, month + 1)
    step = {"day": datetime.timedelta(days=1), "hour": datetime.timedelta(hours=1)}.get(
        scale, datetime.timedelta(minutes=1)
    )
    return truncate(start(span) + step, scale)


def shift(span: Span, steps: int) -> Span:
    """The span ``steps`` spans of the same scale after ``span`` (before it when negative).

    ``shift((2024, 3), -1)`` is February 2024, ``shift((2024, 3, 1, 0), -24)`` the same hour a
    day earlier: calendar arithmetic on the naive local clock, as the buckets are counted.
    OverflowError or ValueError past the years 1 or 9999.
    """
    scale = scale_of(span)
    if scale is None:
        raise ValueError("all time has no neighbouring span")
    if scale == "year":
        return make_span(span[0] + steps)
    if scale == "month":
        months = span[0] * 12 + span[1] - 1 + steps
        return make_span(months // 12, months % 12 + 1)
    return truncate(start(span) + steps * _STEPS[scale], scale)


def end(span: Span) -> datetime.datetime:
    """Exclusive end of ``span`` (a naive local datetime); datetime.max for all time."""
    if not span:
        return datetime.datetime.max
    if span[0] >= MAX_YEAR and len(span) == 1:
        return datetime.datetime.max
    try:
        return start(following(span))
    except (OverflowError, ValueError):
        return datetime.datetime.max


def children(span: Span) -> list[Span]:
    """The spans one scale finer inside ``span`` (not for all time: years are stored)."""
    scale = scale_of(span)
    if scale is None:
        raise ValueError("the years of all time are read from Redis, not computed")
    if scale == "minute":
        raise ValueError("a minute is the finest time scale; there is nothing to iterate")
    if scale == "year":
        return [(*span, month) for month in range(1, 13)]
    if scale == "month":
        return [(*span, day) for day in range(1, calendar.monthrange(*span)[1] + 1)]
    if scale == "day":
        return [(*span, hour) for hour in range(24)]
    return [(*span, minute) for minute in range(60)]


def series(since: datetime.datetime, until: datetime.datetime, scale: str) -> list[Span]:
    """Spans of ``scale`` from the one holding ``since`` to the one holding ``until``.

    For ``"week"``: the day spans of the Mondays of the ISO weeks from ``since`` to ``until``.
    """
    if scale == WEEK:
        return weeks(since, until)
    first, last = truncate(since, scale), truncate(until, scale)
    spans: list[Span] = []
    step = _STEPS.get(scale)
    if step is not None and first <= last:
        # What following() gives, without rebuilding a datetime per bucket: charts read
        # hundreds of minutes or hours.
        size = depth(scale)
        moment, stop = start(first), start(last)
        while True:
            spans.append((moment.year, moment.month, moment.day, moment.hour, moment.minute)[:size])
            if moment >= stop:
                return spans
            try:
                moment += step
            except OverflowError:  # the last minute, hour or day of the year 9999
                return spans
    current = first
    while current <= last:
        spans.append(current)
        try:
            current = following(current)
        except OverflowError:  # the last minute, hour or day of the year 9999
            break
    return spans


def cover(first: Span, last: Span, scales: Iterable[str]) -> list[Span]:
    """The fewest buckets of ``scales`` that together hold exactly ``first`` to ``last``.

    ``first`` and ``last`` are buckets of one scale (which must be among ``scales``); the
    range is every bucket of that scale from ``first`` to ``last`` inclusive.  A coarser
    bucket is used only where it lies wholly inside the range (it would count events outside
    it otherwise), so full days come from day buckets, full hours from hour buckets and
    minutes only at the ragged edges: ten thousand minutes are read from about 170 buckets.
    Calendar buckets nest (a year holds its months, a month its days...), so taking, from the
    left, the coarsest bucket that starts here and ends inside the range is the minimum.

    >>> cover((2010, 2, 6, 23, 58), (2010, 2, 8, 0, 1), ["day", "hour", "minute"])
    [(2010, 2, 6, 23, 58), (2010, 2, 6, 23, 59), (2010, 2, 7), (2010, 2, 8, 0, 0), (2010, 2, 8, 0, 1)]
    """
    scale = scale_of(first)
    if scale is None or scale_of(last) != scale:
        raise ValueError(f"cover: {first} and {last} must be buckets of one time scale")
    allowed = [s for s in SCALES if s in set(scales) and depth(s) <= depth(scale)]
    if scale not in allowed:
        raise ValueError(f"cover: the range's scale {scale!r} must be one of the scales given")
    moment, stop = start(first), end(last)
    spans: list[Span] = []
    while moment < stop:
        for candidate in allowed:  # coarsest first; the range's own scale always fits
            span = truncate(moment, candidate)
            if start(span) == moment and end(span) <= stop:
                break
        spans.append(span)
        moment = end(span)
    return spans


def cover_scales(scale: str, scales: Iterable[str], retention: dict[str, int | None]) -> list[str]:
    """The scales :func:`cover` may read a range of ``scale`` from: those recorded, no finer
    than ``scale``, and kept at least as long (a coarse bucket that expires first would be
    missing where the fine ones still count)."""
    keep = retention.get(scale)
    usable = []
    for candidate in SCALES[: depth(scale)]:
        if candidate not in set(scales):
            continue
        kept = retention.get(candidate)
        if candidate == scale or kept is None or (keep is not None and kept >= keep):
            usable.append(candidate)
    return usable


def count_buckets(since: datetime.datetime, until: datetime.datetime, scale: str) -> int:
    """How many spans ``series`` would return, computed without building them."""
    if until < since:
        return 0
    if scale == WEEK:
        first_week, last_week = week_of(since), week_of(until)
        return (datetime.date(*last_week) - datetime.date(*first_week)).days // 7 + 1
    if scale == "year":
        return until.year - since.year + 1
    if scale == "month":
        return (until.year - since.year) * 12 + until.month - since.month + 1
    seconds = {"day": 86400, "hour": 3600, "minute": 60}[scale]
    first, last = start(truncate(since, scale)), start(truncate(until, scale))
    return int((last - first).total_seconds() // seconds) + 1


# -- ISO weeks ------------------------------------------------------------------------------


def week_of(moment: datetime.date | datetime.datetime) -> Span:
    """The day span of the Monday of the ISO week holding ``moment``.

    >>> week_of(datetime.date(2021, 1, 1))   # a Friday: its week began in 2020
    (2020, 12, 28)
    """
    day = datetime.date(moment.year, moment.month, moment.day)
    monday = day - datetime.timedelta(days=day.weekday())  # 0001-01-01 was a Monday: no underflow
    return (monday.year, monday.month, monday.day)


def week_days(monday: Span) -> list[Span]:
    """The seven day spans of the week starting on ``monday``, across months and years.

    >>> week_days((2020, 12, 28))[-3:]
    [(2021, 1, 1), (2021, 1, 2), (2021, 1, 3)]
    """
    first = datetime.date(*monday)
    days: list[Span] = []
    for offset in range(7):
        try:
            day = first + datetime.timedelta(days=offset)
        except OverflowError:  # the week of 9999-12-31 ends after the calendar does
            break
        days.append((day.year, day.month, day.day))
    return days


def weeks(since: datetime.date | datetime.datetime, until: datetime.date | datetime.datetime) -> list[Span]:
    """The Mondays (day spans) of the ISO weeks from the one holding ``since`` to the one holding ``until``."""
    first, last = datetime.date(*week_of(since)), datetime.date(*week_of(until))
    mondays: list[Span] = []
    while first <= last:
        mondays.append((first.year, first.month, first.day))
        try:
            first += datetime.timedelta(days=7)
        except OverflowError:
            break
    return mondays


def readable(scale: str, recorded: Iterable[str]) -> bool:
    """Whether a series at ``scale`` can be read from the ``recorded`` scales (weeks need days)."""
    return ("day" if scale == WEEK else scale) in set(recorded)


def iso_week(monday: Span) -> tuple[int, int]:
    """(ISO year, week number) of the week starting on ``monday``: (2021, 53) does not exist, (2020, 53) does."""
    year, number, _ = datetime.date(*monday).isocalendar()
    return year, number


def expired(span: Span, keep: int | None, now: float, zone: ZoneInfo) -> bool:
    """Whether the bucket of ``span`` may be gone at the timestamp ``now``.

    A bucket lives ``keep`` seconds (its scale's retention) past its end (kick.lua sets its
    TTL so), so from then on a missing bucket no longer means "no events".
    """
    if keep is None:
        return False
    return end(span).replace(tzinfo=zone).timestamp() + keep <= now


def finest_retained(
    since: datetime.datetime,
    now: datetime.datetime,
    scales: Iterable[str],
    retention: dict[str, int | None],
) -> str:
    """The finest recorded scale whose retention still covers ``since``."""
    recorded = [scale for scale in SCALES if scale in set(scales)]
    if not recorded:
        raise ValueError("this metrica records no time scale finer than all time")
    for scale in reversed(recorded):
        keep = retention.get(scale)
        if keep is None or since >= now - datetime.timedelta(seconds=keep):
            return scale
    return recorded[0]


def now() -> float:
    """The present, in seconds since the epoch: the one clock staste reads.

    Everything that depends on the present reads it here: the date of a kick made without
    one, its keys' TTLs, ``conf.local()`` (the present of queries, time series, pages, chart
    views and template tags) and which buckets have expired.  Only the buffer's timers (how
    long a kick may wait) measure intervals with ``time.monotonic()`` instead.  So a test puts
    staste on another date by replacing this function, as tests/conftest.py does for every
    test (``STASTE_TEST_NOW``):

    >>> monkeypatch.setattr(timescale, "now", lambda: 1710028800.0)  # doctest: +SKIP
    """
    return time.time()


def to_local(moment: datetime.date | datetime.datetime | None, zone: ZoneInfo) -> datetime.datetime:
    """A naive datetime on the wall clock of ``zone``, the calendar spans are counted in.

    Aware datetimes are converted; naive ones are taken to be local already (as Django does
    with ``USE_TZ``); dates are midnight; ``None`` is now.
    """
    if moment is None:
        return datetime.datetime.fromtimestamp(now(), zone).replace(tzinfo=None)
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
