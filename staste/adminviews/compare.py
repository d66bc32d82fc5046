"""The previous period a metrica page compares with (``?_compare=previous``).

The previous period has the same length and the same buckets, one period earlier: the 24
hours before "the last 24 hours", yesterday for today, February for March.  Its numbers are
drawn as dashed lines over the current period's labels (bucket *i* over bucket *i*), and the
cards show the change against it.

A period that is still running (today at 10:30) is compared with the previous one *up to the
same point* (yesterday until 10:30), or every morning would look like a collapse: the
buckets before the current one count whole, the bucket at the same place is prorated by the
part of the current bucket that has elapsed.

All of this is arithmetic on numbers read in the page's one pipeline (see ``reading``).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

from django.utils import timesince
from django.utils.translation import gettext as _

from staste import conf, formats, timescale
from staste.charts.spec import Range

#: The one comparison offered (the query string's value of ``_compare``).
PREVIOUS = "previous"


@dataclasses.dataclass(frozen=True)
class Period:
    """What a comparison reads: the previous range (of a quick range) or span (of a calendar span).

    ``index`` and ``fraction`` say how far the current period has run: the bucket holding now
    (on the chart's buckets) and the elapsed part of it; ``index`` is None for a period that
    is over (it then counts whole).
    """

    range: Range | None
    span: timescale.Span | None
    index: int | None
    fraction: float
    #: What a reader is told when the previous period cannot be read (its buckets expired).
    unavailable: str | None = None


def _fraction(bucket: timescale.Span, now: datetime.datetime) -> float:
    begin, finish = timescale.start(bucket), timescale.end(bucket)
    return min(1.0, max(0.0, (now - begin) / (finish - begin)))


def _expired(since: datetime.datetime, scale: str, now: datetime.datetime) -> str | None:
    keep = conf.retention().get(scale)
    if keep is not None and since < now - datetime.timedelta(seconds=keep):
        return _("The previous period has expired: %(scale)s are kept %(retention)s.") % {
            "scale": formats.SCALE_PLURALS[scale],
            "retention": timesince.timesince(now - datetime.timedelta(seconds=keep), now),
        }
    return None


def previous_period(
    found: Range | None, span: timescale.Span | None, line_scale: str | None, now: datetime.datetime | None = None
) -> Period | None:
    """The period before a quick range ``found`` or a calendar ``span`` (None for all time).

    ``line_scale`` is the scale of the chart's buckets over a calendar span (None when the
    span is at the finest scale recorded and no chart is drawn).
    """
    now = now or conf.local()
    if found is not None:
        if found.scale == timescale.WEEK:
            return _previous_weeks(found, now)
        first = timescale.truncate(found.since, found.scale)
        size = timescale.count_buckets(found.since, found.until, found.scale)
        try:
            since = timescale.start(timescale.shift(first, -size))
            until = timescale.start(timescale.shift(first, -1))
        except (OverflowError, ValueError):
            return None
        current = timescale.truncate(found.until, found.scale)
        running = timescale.start(current) <= now < timescale.end(current)
        return Period(
            Range(since, until, found.scale),
            None,
            size - 1 if running else None,
            _fraction(current, now) if running else 1.0,
            _expired(since, found.scale, now),
        )
    if not span:
        return None
    try:
        before = timescale.shift(span, -1)
    except (OverflowError, ValueError):
        return None
    running = timescale.start(span) <= now < timescale.end(span)
    scale = timescale.scale_of(span) or "year"
    if not running:
        index, fraction = None, 1.0
    elif line_scale is not None:
        bucket = timescale.truncate(now, line_scale)
        index, fraction = bucket[-1] - timescale.children(span)[0][-1], _fraction(bucket, now)
    else:
        index, fraction = 0, _fraction(span, now)
    unavailable = _expired(timescale.start(before), line_scale or scale, now)
    return Period(None, before, index, fraction, unavailable)


def _previous_weeks(found: Range, now: datetime.datetime) -> Period | None:
    """The ISO weeks before a range of weeks (a week is read from its days: their retention counts)."""
    week = datetime.timedelta(weeks=1)
    first = timescale.start(timescale.week_of(found.since))
    current = timescale.start(timescale.week_of(found.until))
    size = (current - first) // week + 1
    try:
        since, until = first - size * week, first - week
    except OverflowError:
        return None
    running = current <= now < current + week
    return Period(
        Range(since, until, timescale.WEEK),
        None,
        size - 1 if running else None,
        min(1.0, (now - current) / week) if running else 1.0,
        _expired(since, "day", now),
    )


def same_point(values: Sequence[float | int | None], period: Period) -> float:
    """The sum of ``values`` (the previous period, bucket by bucket) up to the point the
    current period has reached: whole buckets before ``period.index``, a prorated one at it."""
    numbers = [value or 0 for value in values]
    if period.index is None:
        return float(sum(numbers))
    done = sum(numbers[: period.index])
    at = numbers[period.index] if period.index < len(numbers) else 0
    return float(done + at * period.fraction)


def change(current: Any, previous: Any) -> float | None:
    """The change from ``previous`` to ``current`` in percent (None when it means nothing)."""
    if current is None or previous is None or isinstance(current, bool):
        return None
    if previous == 0:
        return None
    return (current - previous) / abs(previous) * 100


def fit(data: Sequence[Any], length: int) -> list[Any]:
    """``data`` cut or padded with None to ``length`` points (a 30-day month under a 31-day one)."""
    return list(data[:length]) + [None] * max(0, length - len(data))
