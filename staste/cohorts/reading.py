"""Exact users of a metrica over a range of days: ``users()`` and ``user_ids()``.

A range's users are the OR of the bitmaps that cover it (whole months, whole ISO weeks, then
days: ``layout.cover``), counted with BITCOUNT or listed; the funnels and retention tables
(staste/cohorts/funnel.py, retention.py) build on the same steps and checks.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, NamedTuple

from staste import conf, connection, scripts, timescale
from staste.cohorts import bitops, layout, positions
from staste.cohorts.errors import NotKeptForUsers, RangeNotKept, TooManyUsers

#: Most ids ``user_ids()`` returns in one call.
MAX_IDS = 100_000


class Step(NamedTuple):
    """What users did: a metrica made with ``users=True``, or one value of one of its
    ``users_axes`` (``paid.filter(shop="north")``)."""

    metrica: Any
    axis: str | None = None
    part: str = ""
    value: Any = None

    @property
    def label(self) -> str:
        title = str(self.metrica.title)
        return title if self.axis is None else f"{title} ({self.axis}={self.value})"

    def key(self, period: layout.Period) -> str:
        base = layout.users_base(conf.get("STASTE_METRICS_PREFIX"))
        return layout.bitmap_key(base, self.metrica.name, period, self.axis, self.part)


def step_of(what: Any) -> Step:
    """The :class:`Step` of a metrica or a filtered query of one (``metrica.filter(...)``):
    NotKeptForUsers naming the fix when it keeps no users (for that axis)."""
    metrica = getattr(what, "metrica", what)
    filters = dict(getattr(what, "filters", {}) or {})
    if not getattr(metrica, "keeps_users", False):
        name = getattr(metrica, "name", repr(metrica))
        raise NotKeptForUsers(f"{name} keeps no users: make it with users=True (and kick it with user=...)")
    if getattr(what, "span", ()) or getattr(what, "cover", None):
        raise TypeError(f"{metrica.name}: give a step's days to the funnel (since, until), not to the query")
    if not filters:
        return Step(metrica)
    if len(filters) > 1:
        raise TypeError(f"{metrica.name}: a step filters on one axis at most, not {sorted(filters)}")
    ((axis, value),) = filters.items()
    if axis not in metrica.users_axes:
        raise NotKeptForUsers(
            f"{metrica.name} keeps no users per value of {axis!r}: add it to users_axes=[...] (an Axis(choices=...))"
        )
    return Step(metrica, axis, metrica.axes[axis].filter_part(value), value)


def day_of(moment: datetime.date | datetime.datetime | None) -> datetime.date:
    """The day of ``moment`` in STASTE_TIME_ZONE's calendar (default: today)."""
    return conf.local(moment).date()


def check_kept(periods: Sequence[layout.Period], what: str) -> None:
    """RangeNotKept naming the setting when a period's bitmaps may already be gone."""
    retention = conf.retention()
    now = timescale.now()
    zone = conf.time_zone()
    for period in periods:
        keep, after = layout.expiry(period, retention)
        if keep is None:
            continue
        gone = datetime.datetime(after.year, after.month, after.day, tzinfo=zone).timestamp() + keep
        if gone <= now:
            scale = layout.retention_scale(period.kind)
            raise RangeNotKept(
                f"{what}: the {period.kind} bitmaps of {period.first:%Y-%m-%d} are past their retention "
                f"(STASTE_RETENTION[{scale!r}] = {keep // 86400} days): start the range later, or keep "
                f"{scale}s longer"
            )


def days(since: Any, until: Any) -> tuple[datetime.date, datetime.date]:
    """The first and last day of a range, checked."""
    first, last = day_of(since), day_of(until)
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    return first, last


def union(plan: bitops.Plan, step: Step, periods: Sequence[layout.Period]) -> str:
    """Queue the OR of ``step``'s bitmaps of ``periods`` into a temporary key; its name."""
    target = plan.new("u")
    plan.bitop("OR", target, [step.key(period) for period in periods])
    return target


def users(what: Any, since: Any, until: Any = None) -> int:
    """The exact number of distinct users who kicked ``what`` (a metrica made with
    ``users=True``, or ``metrica.filter(axis=value)`` of one of its ``users_axes``) from the
    day of ``since`` to the day of ``until`` (default: today), both included."""
    step = step_of(what)
    first, last = days(since, until)
    periods = list(layout.cover(first, last))
    check_kept(periods, step.metrica.name)
    plan = bitops.Plan()
    target = union(plan, step, periods)
    answer = plan.count(target)
    return int(plan.run()[answer])


def user_ids(what: Any, since: Any, until: Any = None, limit: int = 1000) -> list[Any]:
    """The ids of the users :func:`users` counts, at most ``limit`` of them (by position: in
    id order for integer ids); TooManyUsers when there are more."""
    step = step_of(what)
    first, last = days(since, until)
    periods = list(layout.cover(first, last))
    check_kept(periods, step.metrica.name)
    plan = bitops.Plan()
    target = union(plan, step, periods)
    plan.run(keep=[target])
    return ids_of(target, limit)


def ids_of(key: str, limit: int) -> list[Any]:
    """The user ids of the bits set in ``key`` (at most ``limit``: TooManyUsers past it)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_IDS:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_IDS:,}, not {limit!r}")
    try:
        found, more = bitops.positions_in(key, limit)
    finally:
        with scripts.translated_errors():
            connection.get_redis().delete(key)
    if more:
        raise TooManyUsers(f"more than {limit:,} users: ask for a larger limit= (at most {MAX_IDS:,}), or a count")
    if positions.mode() == positions.INT or not found:
        return found
    base = layout.users_base(conf.get("STASTE_METRICS_PREFIX"))
    with scripts.translated_errors():
        mapped = connection.get_redis().hmget(layout.positions_key(base), found)
    return positions.decoded_ids(found, mapped)
