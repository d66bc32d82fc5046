"""Apdex read from a histogram: the maths (staste.apdex), its stated precision, and the query API
(apdex(), iterate_apdex(), top(by="apdex")) on kicks at pinned dates."""

from __future__ import annotations

import asyncio
import datetime
import random

import pytest

from staste import apdex, histogram, measures
from staste.axis import StoredChoiceAxis
from staste.exceptions import MeasureMissing
from staste.metrica import AveragedMetrica, Metrica


def counts_of(values: list[float]) -> list[int]:
    counts = [0] * histogram.BUCKETS
    for value in values:
        counts[histogram.bucket_index(value)] += 1
    return counts


def exact(values: list[float], threshold: float) -> float:
    satisfied = sum(1 for v in values if v <= threshold)
    tolerating = sum(1 for v in values if threshold < v <= 4 * threshold)
    return (satisfied + tolerating / 2) / len(values)


def test_satisfied_tolerating_and_frustrated() -> None:
    assert apdex.score(counts_of([100] * 6 + [1000] * 2 + [5000] * 2), 500) == pytest.approx(0.7)
    assert apdex.score(counts_of([1] * 10), 500) == 1.0
    assert apdex.score(counts_of([1000] * 10), 500) == 0.5
    assert apdex.score(counts_of([10_000] * 10), 500) == 0.0
    assert apdex.score(counts_of([]), 500) is None
    assert apdex.score(counts_of([2e7] * 3), 1e8) == 0.0  # the overflow bucket is never counted satisfied


@pytest.mark.parametrize("seed", range(20))
def test_within_half_the_share_of_the_two_boundary_buckets(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(6, 1.2) for _ in range(500)]  # around 400 ms, wide
    threshold = 500
    counts = counts_of(values)
    boundary = counts[histogram.bucket_index(threshold)] + counts[histogram.bucket_index(4 * threshold)]
    assert abs(apdex.score(counts, threshold) - exact(values, threshold)) <= boundary / 2 / len(values) + 1e-12


def test_exact_when_no_value_falls_in_the_boundary_buckets() -> None:
    values = [50, 120, 300, 700, 900, 1200, 1500, 3000, 9000]  # none in (398, 501] nor (1995, 2512]
    assert apdex.score(counts_of(values), 500) == pytest.approx(exact(values, 500))


@pytest.mark.parametrize("threshold", [0, -5, float("inf"), float("nan"), True, "500", None])
def test_a_bad_threshold_is_refused(threshold) -> None:
    with pytest.raises(ValueError, match="target time T"):
        apdex.score(counts_of([1]), threshold)


# -- the query API -------------------------------------------------------------------------------

DAY = datetime.datetime(2024, 3, 9, 12, 30)


@pytest.fixture
def timings() -> AveragedMetrica:
    metrica = AveragedMetrica(name="apdex_views", axes=[("view", StoredChoiceAxis())], histogram=True, multiplier=1000)
    for view, milliseconds in (
        ("home", [20] * 9 + [700]),  # 9 satisfied, 1 tolerating: 0.95
        ("search", [300] * 5 + [1500] * 5),  # 5 satisfied, 5 tolerating: 0.75
        ("report", [3000] * 4),  # 4 frustrated: 0
    ):
        for value in milliseconds:
            metrica.kick(value, date=DAY, view=view)
    return metrica


def test_apdex_of_a_query_and_of_every_value(timings: AveragedMetrica, settings) -> None:
    assert timings.apdex() == pytest.approx((14 + 6 / 2) / 24)
    assert timings.filter(view="home").apdex() == pytest.approx(0.95)
    assert timings.iterate_apdex("view") == [
        ("home", pytest.approx(0.95)),
        ("report", 0.0),
        ("search", pytest.approx(0.75)),
    ]
    hours = timings.filter(view="home").over(DAY - datetime.timedelta(hours=1), DAY, "hour")
    assert hours.apdex() == pytest.approx(0.95)
    assert timings.values().timespan(2023).apdex() is None
    # T is a setting (STASTE_APDEX_T, ms), or an argument.
    assert timings.filter(view="report").apdex(threshold=1000) == 0.5
    settings.STASTE_APDEX_T = 1000
    assert timings.filter(view="report").apdex() == 0.5


def test_top_by_apdex_lists_the_least_satisfying_first(timings: AveragedMetrica) -> None:
    assert timings.top("view", 2, by="apdex") == [("report", 0.0), ("search", pytest.approx(0.75))]


def test_apdex_is_a_measure_with_a_series_and_the_lowest_first(timings: AveragedMetrica) -> None:
    measure = measures.get(timings, "apdex")
    assert measure.lowest_first and not measure.additive
    hours = measure.series(timings.filter(view="search"), DAY - datetime.timedelta(hours=2), DAY, "hour")
    assert [value for _, value in hours] == [None, None, pytest.approx(0.75)]  # no request: no score
    days = measure.series(timings.values(), DAY - datetime.timedelta(days=1), DAY, "day")
    assert [value for _, value in days] == [None, pytest.approx(timings.apdex())]
    assert measure.number(timings.filter(view="home")) == pytest.approx(0.95)
    with pytest.raises(MeasureMissing, match="histogram=True to read apdex"):
        measures.get(Metrica(name="counts", axes=[]), "apdex")


def test_the_async_twins(timings: AveragedMetrica) -> None:
    async def read() -> tuple:
        return await timings.filter(view="search").aapdex(), await timings.aiterate_apdex("view")

    one, every = asyncio.run(read())
    assert one == pytest.approx(0.75) and len(every) == 3


def test_apdex_needs_a_histogram() -> None:
    plain = AveragedMetrica(name="no_histogram", axes=[])
    with pytest.raises(TypeError, match="histogram"):
        plain.apdex()
    with pytest.raises(TypeError, match="histogram"):
        Metrica(name="counts", axes=[("view", StoredChoiceAxis())]).top("view", by="apdex")
