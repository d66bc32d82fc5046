"""timescale.cover against a brute-force model: every bucket wholly inside the range, keep the
maximal ones (calendar buckets nest, so those are the fewest that cover it exactly)."""

from __future__ import annotations

import datetime
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staste import timescale

D = datetime.datetime
STEPS = {
    "minute": datetime.timedelta(minutes=1),
    "hour": datetime.timedelta(hours=1),
    "day": datetime.timedelta(days=1),
}
#: How many buckets of each scale a generated range spans at most (the model enumerates them).
LONGEST = {"minute": 3 * 1440 + 7, "hour": 24 * 70, "day": 800, "month": 40, "year": 12}


def buckets_of_range(first: timescale.Span, count: int) -> list[timescale.Span]:
    spans = [first]
    while len(spans) < count:
        spans.append(timescale.following(spans[-1]))
    return spans


def brute_force_cover(fine: list[timescale.Span], scales: list[str]) -> list[timescale.Span]:
    """The maximal buckets of ``scales`` lying wholly inside the range made of ``fine``."""
    low, high = timescale.start(fine[0]), timescale.end(fine[-1])
    candidates = set()
    for span in fine:
        for scale in scales:
            if timescale.depth(scale) <= len(span):
                bucket = span[: timescale.depth(scale)]
                if low <= timescale.start(bucket) and timescale.end(bucket) <= high:
                    candidates.add(bucket)
    maximal = [b for b in candidates if not any(len(o) < len(b) and b[: len(o)] == o for o in candidates)]
    return sorted(maximal, key=timescale.start)


@st.composite
def ranges(draw):
    scale = draw(st.sampled_from(["minute", "hour", "day", "month", "year"]))
    moment = draw(st.datetimes(D(1999, 1, 1), D(2031, 12, 31)))
    count = draw(st.integers(1, LONGEST[scale]))
    coarser = timescale.SCALES[: timescale.depth(scale) - 1]
    others = draw(st.sets(st.sampled_from(coarser))) if coarser else set()
    return timescale.truncate(moment, scale), count, [*others, scale]


@settings(max_examples=150, deadline=None)
@given(ranges())
def test_cover_is_exact_and_minimal(found) -> None:
    first, count, scales = found
    fine = buckets_of_range(first, count)
    spans = timescale.cover(fine[0], fine[-1], scales)
    # exact: contiguous, from the range's start to its end, of the scales given
    assert timescale.start(spans[0]) == timescale.start(fine[0])
    assert timescale.end(spans[-1]) == timescale.end(fine[-1])
    for before, after in itertools.pairwise(spans):
        assert timescale.end(before) == timescale.start(after)
    assert all(timescale.scale_of(span) in scales for span in spans)
    # minimal: the model's maximal buckets, one for one
    assert spans == brute_force_cover(fine, scales)


def test_ten_thousand_minutes_come_from_about_a_hundred_and_thirty_buckets() -> None:
    since = D(2024, 3, 4, 10, 17)
    until = since + datetime.timedelta(minutes=9999)
    spans = timescale.cover(timescale.truncate(since, "minute"), timescale.truncate(until, "minute"), timescale.SCALES)
    by_scale = {scale: sum(1 for s in spans if timescale.scale_of(s) == scale) for scale in timescale.SCALES}
    assert by_scale == {"year": 0, "month": 0, "day": 6, "hour": 13 + 8, "minute": 43 + 57}
    assert len(spans) == 127


def test_a_scale_not_recorded_is_not_used() -> None:
    first, last = (2024, 1, 31, 22), (2024, 3, 1, 1)
    spans = timescale.cover(first, last, ["month", "hour"])  # no day buckets
    assert (2024, 2) in spans and len(spans) == 2 + 1 + 2
    spans = timescale.cover(first, last, ["hour"])
    assert len(spans) == timescale.count_buckets(timescale.start(first), timescale.start(last), "hour")


def test_cover_refuses_what_it_cannot_cover() -> None:
    with pytest.raises(ValueError, match="one time scale"):
        timescale.cover((2024, 1), (2024, 1, 2), timescale.SCALES)
    with pytest.raises(ValueError, match="must be one of"):
        timescale.cover((2024, 1, 2), (2024, 1, 5), ["month"])


def test_the_last_buckets_of_the_calendar() -> None:
    assert timescale.cover((9999, 12, 31, 22), (9999, 12, 31, 23), timescale.SCALES) == [
        (9999, 12, 31, 22),
        (9999, 12, 31, 23),
    ]
    assert timescale.cover((9998, 12, 31), (9999, 12, 31), timescale.SCALES) == [(9998, 12, 31), (9999,)]


def test_cover_scales_respect_retention() -> None:
    keep = {"minute": 86400, "hour": 14 * 86400, "day": 185 * 86400, "month": 3 * 366 * 86400, "year": None}
    assert timescale.cover_scales("minute", timescale.SCALES, keep) == ["year", "month", "day", "hour", "minute"]
    assert timescale.cover_scales("hour", ["day", "hour", "minute"], keep) == ["day", "hour"]
    shorter = {**keep, "day": 3600}  # day buckets gone before the minutes: never read them
    assert timescale.cover_scales("minute", timescale.SCALES, shorter) == ["year", "month", "hour", "minute"]
    assert timescale.cover_scales("minute", timescale.SCALES, {**keep, "minute": None}) == ["year", "minute"]
