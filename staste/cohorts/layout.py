"""Where per-user activity lives in Redis: one bitmap per metrica and day, ISO week and month.

Layout (docs/cohorts.md):

* every key starts with the users base ``<prefix>:{<prefix>:users}:``, one hash tag for all
  metricas, so that a funnel or a retention table (BITOP over several metricas' bitmaps) is
  one hash slot on a Redis Cluster (``:`` cannot be in a metrica name, so no metrica shares it);
* ``b:<metrica>:<period>`` is the bitmap of the users who kicked the metrica in that period:
  the bit at a user's position is 1.  ``<period>`` is a day (``20100207``), an ISO week
  (``w20100201``, its Monday) or a month (``201002``);
* ``b:<metrica>:<period>:<axis><part>`` the same for one value of an axis the metrica keeps
  users for (``users_axes``), ``<part>`` being the value's field part (``=north``);
* ``ids`` (hash id -> position), ``positions`` (hash position -> id) and ``ids:next`` (the
  last position given) map primary keys that are not integers to positions
  (staste.cohorts.positions);
* ``tmp:<random>:<name>``: a query's intermediate bitmaps, deleted by the query (and expiring
  after a minute should it fail midway).

Nothing here touches Redis or Django.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import NamedTuple

from staste import keys

DAY, WEEK, MONTH = "day", "week", "month"
PERIODS = (DAY, WEEK, MONTH)


class Period(NamedTuple):
    """A day, an ISO week (its Monday) or a month (its first day): what one bitmap holds."""

    kind: str
    first: datetime.date

    @property
    def last(self) -> datetime.date:
        return self.following().first - datetime.timedelta(days=1)

    def bucket(self) -> str:
        """The period's part of a bitmap key."""
        if self.kind == MONTH:
            return f"{self.first.year:04d}{self.first.month:02d}"
        digits = f"{self.first.year:04d}{self.first.month:02d}{self.first.day:02d}"
        return "w" + digits if self.kind == WEEK else digits

    def following(self) -> Period:
        return self.shifted(1)

    def shifted(self, steps: int) -> Period:
        """The period ``steps`` periods later (earlier when negative)."""
        if self.kind == DAY:
            return Period(DAY, self.first + datetime.timedelta(days=steps))
        if self.kind == WEEK:
            return Period(WEEK, self.first + datetime.timedelta(days=7 * steps))
        months = self.first.year * 12 + self.first.month - 1 + steps
        return Period(MONTH, datetime.date(months // 12, months % 12 + 1, 1))


def period_of(kind: str, day: datetime.date) -> Period:
    """The period of ``kind`` holding ``day``.

    >>> period_of("week", datetime.date(2021, 1, 1)).bucket()   # a Friday of 2020's week 53
    'w20201228'
    """
    if kind == DAY:
        return Period(DAY, day)
    if kind == WEEK:
        return Period(WEEK, day - datetime.timedelta(days=day.weekday()))
    if kind == MONTH:
        return Period(MONTH, day.replace(day=1))
    raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {kind!r}")


def periods_of(day: datetime.date) -> tuple[Period, Period, Period]:
    """The day, ISO week and month a kick on ``day`` marks its user in."""
    return period_of(DAY, day), period_of(WEEK, day), period_of(MONTH, day)


def cover(since: datetime.date, until: datetime.date) -> Iterator[Period]:
    """The fewest periods whose bitmaps cover the days ``since`` to ``until`` exactly: whole
    months inside the range, then whole ISO weeks, then the days left.

    >>> [p.bucket() for p in cover(datetime.date(2024, 2, 26), datetime.date(2024, 4, 2))]
    ['w20240226', '202403', '20240401', '20240402']
    """
    day = since
    while day <= until:
        month = period_of(MONTH, day)
        week = period_of(WEEK, day)
        if month.first == day and month.last <= until:
            yield month
        elif week.first == day and week.last <= until:
            yield week
        else:
            yield Period(DAY, day)
            day += datetime.timedelta(days=1)
            continue
        day = (month if month.first == day and month.last <= until else week).last + datetime.timedelta(days=1)


def users_base(prefix: str) -> str:
    """The start of every users key, with the one hash tag they share."""
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"STASTE_METRICS_PREFIX {prefix!r} must not contain '{{' or '}}' (Redis Cluster hash tags)")
    return f"{prefix}:{{{prefix}:users}}:"


def bitmap_key(base: str, metrica: str, period: Period, axis: str | None = None, part: str = "") -> str:
    """The bitmap of the users who kicked ``metrica`` in ``period`` (with one axis value:
    ``axis`` and its field ``part``, as ``keys.value_part`` spells it)."""
    key = f"{base}b:{metrica}:{period.bucket()}"
    return key if axis is None else f"{key}:{keys.escape(axis)}{part}"


def ids_key(base: str) -> str:
    return base + "ids"


def positions_key(base: str) -> str:
    return base + "positions"


def next_key(base: str) -> str:
    return base + "ids:next"


def temporary_prefix(base: str, token: str) -> str:
    return f"{base}tmp:{token}:"


def retention_scale(kind: str) -> str:
    """Whose retention a period's bitmap follows (STASTE_RETENTION): a day's the day buckets',
    a week's and a month's the month buckets' (a retention table reads months back)."""
    return "day" if kind == DAY else "month"


def expiry(period: Period, retention: dict[str, int | None]) -> tuple[int | None, datetime.date]:
    """(seconds the bitmap is kept after the period's end, None: forever; the day after its end)."""
    return retention.get(retention_scale(period.kind)), period.last + datetime.timedelta(days=1)
