"""The numbers a rule judges, read from Redis in one round trip under the query budget.

The window is read as the admin reads ``?_last=`` (``staste.charts.spec.parse_last``): the
last N buckets of its unit, the one still filling up included, from the fewest buckets that
cover it (``MetricaValues.over``).  Its *events* are what ``min_count`` is compared with: the
count of an AveragedMetrica, the total of a Metrica (its kicks, when they carry no value).

A rule with a ``change`` also reads the previous window of the same length, as the admin's
``_compare=previous`` does (``staste.adminviews.compare``): a sum (total, count) is taken up to
the point the current window has reached, so a window still filling up is not compared with a
whole one; an average, a percentile or distinct ids are those of the whole previous window.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from staste import formats, measures
from staste.adminviews import compare
from staste.adminviews.state import PageState
from staste.alerts.judging import Numbers
from staste.charts.spec import parse_last
from staste.query import MetricaValues, budget, pipelined


def measure_reader(query: MetricaValues, measure: str) -> Callable[[], Any]:
    """The read of ``measure`` on ``query`` (a range: ``over(...)``), rounded as pages show it."""
    read = measures.get(query.metrica, measure).plan_number(query).run
    multiplier = query.metrica.multiplier
    if measure == measures.TOTAL:
        return lambda: formats.rounded(read(), multiplier)
    if measure == measures.AVERAGE:
        return lambda: formats.rounded(read(), multiplier, average=True)
    return read


def events_reader(query: MetricaValues) -> Callable[[], Any]:
    return query.count if query.metrica.averaged else query.total


def read(state: PageState, now: datetime.datetime, with_previous: bool) -> Numbers:
    """The numbers of the rule ``state`` describes at ``now`` (naive, in STASTE_TIME_ZONE).

    Raises what reading Redis raises (RedisUnavailable...) and QueryTooExpensive past
    STASTE_MAX_QUERY_WORK.
    """
    found = parse_last(state.last or "", now)
    query = state.metrica.values().filter(**state.filters)
    ranged = query.over(found.since, found.until, found.scale)
    calls = [measure_reader(ranged, state.measure), events_reader(ranged)]
    period = compare.previous_period(found, None, None, now) if with_previous else None
    if period is not None and period.range is not None:
        since, until, scale = period.range
        before = query.over(since, until, scale)
        if measures.find(state.measure).additive:  # compared up to the same point of the window
            calls.append(lambda: compare.same_point(series(query, state.measure, period.range), period))
        else:
            calls.append(measure_reader(before, state.measure))
        counted = "count" if state.metrica.averaged else "total"
        calls.append(lambda: compare.same_point(series(query, counted, period.range), period))
    with budget(setting="STASTE_MAX_QUERY_WORK"):
        results = pipelined(calls)
    return Numbers(*results)


def series(query: MetricaValues, measure: str, found: Any) -> list[Any]:
    """The bucket-by-bucket sums (or counts) of ``query`` over the range ``found``."""
    since, until, scale = found
    return [value for _, value in measures.find(measure).series(query, since, until, scale)]
