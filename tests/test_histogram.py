"""Histogram buckets and percentiles: the pure maths, then read back from a real Redis."""

from __future__ import annotations

import datetime
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staste import histogram
from staste.axis import Axis
from staste.metrica import AveragedMetrica, Metrica
from tests.roundtrips import count_round_trips

D = datetime.datetime


def counts_of(values: list[float]) -> list[int]:
    counts = [0] * histogram.BUCKETS
    for value in values:
        counts[histogram.bucket_index(value)] += 1
    return counts


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- buckets ------------------------------------------------------------------------------------


def test_buckets_are_ten_per_decade_from_a_microsecond_to_hours() -> None:
    assert histogram.UPPER_BOUNDS[0] == 0.001
    assert histogram.UPPER_BOUNDS[-1] == 10_000_000
    assert histogram.BUCKETS == 102
    for exact in (0.01, 0.1, 1, 10, 100, 1000):  # whole powers of ten are exact bounds
        assert exact in histogram.UPPER_BOUNDS
    for lower, upper in zip(histogram.UPPER_BOUNDS, histogram.UPPER_BOUNDS[1:], strict=False):
        assert upper / lower == pytest.approx(10**0.1)


def test_a_bound_belongs_to_the_bucket_it_ends() -> None:
    for index, upper in enumerate(histogram.UPPER_BOUNDS):
        assert histogram.bucket_index(upper) == index
        assert histogram.bucket_index(math.nextafter(upper, math.inf)) == index + 1
        assert histogram.bounds(index)[1] == upper


@pytest.mark.parametrize(
    ("value", "index"),
    [(0, 0), (-5, 0), (0.0005, 0), (0.001, 0), (1, 30), (1.0001, 31), (10, 40), (1e7, 100), (1e9, 101), (1e99, 101)],
)
def test_bucket_index(value: float, index: int) -> None:
    assert histogram.bucket_index(value) == index
    assert histogram.bucket_index(math.inf) == histogram.BUCKETS - 1


def test_bounds_of_the_first_and_the_overflow_bucket() -> None:
    assert histogram.bounds(0) == (0.0, 0.001)
    assert histogram.bounds(histogram.BUCKETS - 1) == (1e7, math.inf)
    with pytest.raises(IndexError):
        histogram.bounds(histogram.BUCKETS)


# -- percentiles from counts ---------------------------------------------------------------------


def test_percentiles_of_known_counts() -> None:
    counts = [0] * histogram.BUCKETS
    counts[30] = 50  # (0.794, 1]
    counts[40] = 45  # (7.94, 10]
    counts[50] = 5  # (79.4, 100]
    found = histogram.percentiles(counts, [0, 25, 50, 95, 99, 100])
    low = 10**-0.1
    assert found[0] == pytest.approx(low)  # the lower bound of the first bucket holding anything
    assert found[25] == pytest.approx(low + (1 - low) * 25 / 50)
    assert found[50] == pytest.approx(1.0)  # rank 50 ends the first bucket exactly
    assert found[95] == pytest.approx(10.0)
    assert found[99] == pytest.approx(10**1.9 + (100 - 10**1.9) * 4 / 5)
    assert found[100] == pytest.approx(100.0)


def test_no_values_no_percentile() -> None:
    assert histogram.percentiles([0] * histogram.BUCKETS, [50, 99]) == {50: None, 99: None}
    assert histogram.percentile([0] * histogram.BUCKETS, 50) is None


def test_a_percentile_in_the_overflow_bucket_is_its_lower_bound() -> None:
    assert histogram.percentile(counts_of([5e8, 6e8]), 50) == 1e7


@pytest.mark.parametrize("p", [-1, 100.5, "50", None, True, math.nan])
def test_bad_percentiles_are_refused(p) -> None:
    with pytest.raises(ValueError, match="percentile"):
        histogram.percentiles(counts_of([1.0]), [p])


def test_counts_must_cover_every_bucket() -> None:
    with pytest.raises(ValueError, match="102 bucket counts"):
        histogram.percentile([1, 2, 3], 50)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.floats(min_value=0.0005, max_value=2e7, allow_nan=False), min_size=1, max_size=200),
    p=st.floats(min_value=0, max_value=100),
)
def test_a_percentile_lies_in_the_bucket_of_the_true_one(values: list[float], p: float) -> None:
    """Interpolation never leaves the bucket holding the exact (nearest-rank) percentile."""
    estimate = histogram.percentile(counts_of(values), p)
    lower, upper = histogram.bounds(histogram.bucket_index(nearest_rank(values, p)))
    assert lower <= estimate <= upper


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=100))
def test_percentiles_grow_with_p(values: list[float]) -> None:
    found = histogram.percentiles(counts_of(values), range(0, 101, 5))
    ordered = [found[p] for p in range(0, 101, 5)]
    assert ordered == sorted(ordered)


def test_relative_error_on_a_uniform_spread_is_small() -> None:
    values = [i / 10 for i in range(1, 10_001)]  # 0.1 .. 1000 ms
    found = histogram.percentiles(counts_of(values), [50, 90, 95, 99])
    for p, estimate in found.items():
        exact = nearest_rank(values, p)
        assert abs(estimate - exact) / exact < 0.05, (p, estimate, exact)


# -- read back from Redis ----------------------------------------------------------------------


@pytest.fixture
def timings() -> AveragedMetrica:
    return AveragedMetrica(
        name="timings", axes=[("page", Axis(choices=["home", "search"]))], multiplier=1000, histogram=True
    )


def test_percentiles_are_read_back_per_filter_and_timespan(timings: AveragedMetrica) -> None:
    home = [1.0] * 90 + [10.0] * 9 + [100.0]
    search = [50.0] * 10
    for value in home:
        timings.kick(value, date=D(2010, 2, 7, 13, 5), page="home")
    for value in search:
        timings.kick(value, date=D(2010, 3, 1), page="search")

    assert timings.filter(page="home").percentiles([50, 90, 95, 100]) == pytest.approx(
        histogram.percentiles(counts_of(home), [50, 90, 95, 100])
    )
    assert timings.filter(page="home").percentile(90) == pytest.approx(1.0)  # 90 values of 1 ms
    assert timings.filter(page="home").percentile(100) == pytest.approx(100.0)
    assert timings.values().percentiles([50]) == pytest.approx(histogram.percentiles(counts_of(home + search), [50]))
    march = timings.timespan(2010, 3).percentile(50)
    lower, upper = histogram.bounds(histogram.bucket_index(50.0))
    assert lower <= march <= upper
    assert timings.timespan(2010, 2, 7, 13, 5).filter(page="search").percentiles() == {50: None, 95: None, 99: None}
    assert timings.timespan(2011).percentile(50) is None
    # the mean is still exact: the histogram is an extra family
    assert timings.filter(page="home").average() == pytest.approx(sum(home) / len(home))
    assert timings.filter(page="home").count() == 100


def test_one_round_trip_per_percentiles_call(timings: AveragedMetrica) -> None:
    timings.kick(3.0, page="home")
    with count_round_trips() as trips:
        timings.filter(page="home").percentiles([50, 95, 99])
    assert trips.count == 1
    timings.values().timeserie_percentiles(D(2009, 1, 1), D(2009, 1, 2), scale="hour")  # loads read.lua
    with count_round_trips() as trips:
        timings.values().timeserie_percentiles(D(2010, 1, 1), D(2010, 1, 2), scale="hour")
    assert trips.count == 1


def test_timeserie_percentiles(timings: AveragedMetrica) -> None:
    timings.kick(2.0, date=D(2010, 2, 7, 13, 5), page="home")
    timings.kick(200.0, date=D(2010, 2, 7, 15, 0), page="home")
    series = timings.values().timeserie_percentiles(D(2010, 2, 7, 13), D(2010, 2, 7, 15), scale="hour", ps=[50])
    assert [moment.hour for moment, _ in series] == [13, 14, 15]
    assert series[0][1][50] == pytest.approx(histogram.percentile(counts_of([2.0]), 50))
    assert series[1][1] == {50: None}
    assert series[2][1][50] == pytest.approx(histogram.percentile(counts_of([200.0]), 50))
    # the metrica answers both itself, as it does every query method
    assert timings.timeserie_percentiles(D(2010, 2, 7, 13), D(2010, 2, 7, 15), scale="hour", ps=[50]) == series
    over = timings.percentiles_over(D(2010, 2, 7, 13), D(2010, 2, 7, 15), scale="hour", ps=[50])
    assert over == timings.values().percentiles_over(D(2010, 2, 7, 13), D(2010, 2, 7, 15), scale="hour", ps=[50])
    assert over[50] == pytest.approx(histogram.percentile(counts_of([2.0, 200.0]), 50))


def test_histograms_live_in_hashes_of_their_own(timings: AveragedMetrica, staste_keys, prefix, staste_redis) -> None:
    timings.kick(1.0, date=D(2010, 2, 7, 13, 5), page="home")
    written = staste_keys()
    assert written[f"{prefix}:{{timings}}:h:all"] == {b"~30*": b"1", b"~30=home": b"1"}
    assert written[f"{prefix}:{{timings}}:all"] == {b"*": b"1000", b"=home": b"1000", b"#*": b"1", b"#=home": b"1"}
    assert f"{prefix}:{{timings}}:h:201002071305" in written
    # kept as long as the counters of the same bucket
    for bucket in ("all", "2010", "201002071305"):
        base = f"{prefix}:{{timings}}:"
        assert abs(staste_redis.ttl(f"{base}h:{bucket}") - staste_redis.ttl(f"{base}{bucket}")) <= 1
    assert staste_redis.ttl(f"{prefix}:{{timings}}:h:201002071305") > 0


def test_a_histogram_on_a_plain_metrica(staste_keys) -> None:
    sizes = Metrica(name="sizes", histogram=True)
    for size in (100, 200, 300, 5000):
        sizes.kick(size)
    assert sizes.total() == 5600
    assert sizes.percentile(50) == pytest.approx(histogram.percentile(counts_of([100, 200, 300, 5000]), 50))


def test_percentiles_need_a_histogram_and_good_input(timings: AveragedMetrica) -> None:
    plain = AveragedMetrica(name="plain", axes=[])
    with pytest.raises(TypeError, match="histogram=True"):
        plain.values().percentile(50)
    with count_round_trips() as trips, pytest.raises(ValueError, match="percentile"):
        timings.values().percentiles([50, 101])
    assert trips.count == 0
