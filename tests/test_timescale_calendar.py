"""staste.timescale on its own: the calendar arithmetic every kick and query relies on.

Pure functions, so the properties are checked directly (hypothesis), with no Redis: a series
has the number of buckets count_buckets says, spans tile time without gap or overlap, shift
and following agree, bucket ids sort like the buckets.
"""

from __future__ import annotations

import datetime
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staste import timescale

D = datetime.datetime
#: Years well inside the calendar: the edges of the year 9999 are tested on their own.
moments = st.datetimes(min_value=D(1971, 1, 1), max_value=D(2100, 12, 31))
#: How far a series reaches, per scale, so that a series stays a few thousand buckets at most.
REACH = {
    "year": datetime.timedelta(days=366 * 40),
    "month": datetime.timedelta(days=366 * 10),
    "week": datetime.timedelta(days=7 * 300),
    "day": datetime.timedelta(days=900),
    "hour": datetime.timedelta(hours=2000),
    "minute": datetime.timedelta(minutes=3000),
}
scales = st.sampled_from(timescale.SCALES)


@given(since=moments, scale=st.sampled_from(timescale.SERIES_SCALES), fraction=st.floats(0, 1))
def test_count_buckets_is_the_length_of_the_series(since: D, scale: str, fraction: float) -> None:
    until = since + REACH[scale] * fraction
    assert timescale.count_buckets(since, until, scale) == len(timescale.series(since, until, scale))
    assert timescale.count_buckets(until, since, scale) == (1 if until == since else 0)


@given(since=moments, scale=scales, fraction=st.floats(0, 1))
def test_a_series_tiles_time_from_the_first_bucket_to_the_last(since: D, scale: str, fraction: float) -> None:
    until = since + REACH[scale] * fraction
    spans = timescale.series(since, until, scale)
    assert spans[0] == timescale.truncate(since, scale) and spans[-1] == timescale.truncate(until, scale)
    for earlier, later in itertools.pairwise(spans):
        assert timescale.end(earlier) == timescale.start(later)  # no gap, no overlap
        assert timescale.following(earlier) == later
        assert timescale.bucket_id(earlier) < timescale.bucket_id(later)  # ids sort like time


@given(moment=moments)
def test_every_bucket_of_a_moment_holds_it(moment: D) -> None:
    spans = timescale.spans_of(moment, timescale.SCALES)
    assert spans[0] == () and [len(span) for span in spans] == [0, 1, 2, 3, 4, 5]
    for span in spans[1:]:
        assert timescale.start(span) <= moment < timescale.end(span)
        assert timescale.truncate(timescale.start(span), timescale.scale_of(span)) == span
        assert timescale.make_span(*span) == span


@given(moment=moments, scale=scales, steps=st.integers(-500, 500))
def test_shift_and_following_agree(moment: D, scale: str, steps: int) -> None:
    span = timescale.truncate(moment, scale)
    assert timescale.shift(span, 1) == timescale.following(span)
    assert timescale.shift(timescale.shift(span, steps), -steps) == span
    moved = timescale.shift(span, steps)
    assert len(moved) == len(span) and (moved > span) == (steps > 0) and (moved == span) == (steps == 0)


@given(moment=moments, scale=st.sampled_from(timescale.SCALES[:-1]))
def test_children_cover_their_parent_exactly(moment: D, scale: str) -> None:
    span = timescale.truncate(moment, scale)
    inside = timescale.children(span)
    assert timescale.start(inside[0]) == timescale.start(span)
    assert timescale.end(inside[-1]) == timescale.end(span)
    assert inside == timescale.series(
        timescale.start(span), timescale.end(span) - datetime.timedelta(minutes=1), timescale.SCALES[len(span)]
    )


def test_calendar_edges() -> None:
    assert len(timescale.children((2024, 2))) == 29 and len(timescale.children((2023, 2))) == 28
    assert timescale.following((2010, 12)) == (2011, 1)
    assert timescale.following((2010, 12, 31, 23, 59)) == (2011, 1, 1, 0, 0)
    assert timescale.end(()) == D.max and timescale.end((9999,)) == D.max
    assert timescale.count_buckets(D(2024, 1, 1), D(2024, 12, 31, 23, 59), "day") == 366
    assert timescale.bucket_id(()) == "all" and timescale.bucket_id((2010, 2, 7, 13, 5)) == "201002071305"
    with pytest.raises(ValueError, match="out of range"):
        timescale.make_span(2010, 2, 30)
    with pytest.raises(TypeError, match="needs month"):
        timescale.make_span(year=2010, day=3)
    with pytest.raises(ValueError, match="unknown time scale"):
        timescale.depth("fortnight")
    with pytest.raises(ValueError):
        timescale.children((2010, 2, 7, 13, 5))  # a minute has no finer buckets


def test_the_finest_retained_scale_and_expiry() -> None:
    now = D(2024, 6, 1, 12, 0)
    keep = {"minute": 86400, "hour": 14 * 86400, "day": 185 * 86400, "month": None, "year": None}
    recorded = timescale.SCALES
    assert timescale.finest_retained(now - datetime.timedelta(hours=2), now, recorded, keep) == "minute"
    assert timescale.finest_retained(now - datetime.timedelta(days=3), now, recorded, keep) == "hour"
    assert timescale.finest_retained(now - datetime.timedelta(days=30), now, recorded, keep) == "day"
    assert timescale.finest_retained(now - datetime.timedelta(days=400), now, recorded, keep) == "month"
    assert timescale.finest_retained(now, now, ("year", "month"), keep) == "month"
    utc = ZoneInfo("UTC")
    minute = (2024, 6, 1, 11, 0)  # ends 11:01; kept one day past its end
    ended = D(2024, 6, 1, 11, 1, tzinfo=utc).timestamp()
    assert not timescale.expired(minute, 86400, ended + 86399, utc)
    assert timescale.expired(minute, 86400, ended + 86400, utc)
    assert not timescale.expired((2024,), None, ended + 10**9, utc)


def test_to_local_puts_moments_on_the_zones_wall_clock(clock) -> None:
    paris = ZoneInfo("Europe/Paris")
    assert timescale.to_local(D(2024, 6, 1, 10, 0, tzinfo=ZoneInfo("UTC")), paris) == D(2024, 6, 1, 12, 0)
    assert timescale.to_local(D(2024, 6, 1, 10, 0), paris) == D(2024, 6, 1, 10, 0)  # naive: already local
    assert timescale.to_local(datetime.date(2024, 6, 1), paris) == D(2024, 6, 1)
    clock.set(D(2024, 6, 1, 10, 0, tzinfo=ZoneInfo("UTC")))
    assert timescale.to_local(None, paris) == D(2024, 6, 1, 12, 0)  # None: now, by staste's clock
    with pytest.raises(TypeError, match="datetime or a date"):
        timescale.to_local("2024-06-01", paris)  # type: ignore[arg-type]
