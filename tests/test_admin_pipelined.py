"""staste.query.pipelined: many queries' reads in one round trip (the admin dashboard)."""

from __future__ import annotations

import datetime

import pytest

from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.query import pipelined
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips

D = datetime.datetime


@pytest.mark.single_redis("on a cluster the pipeline costs one round trip per node (tests/test_cluster.py)")
def test_pipelined_reads_of_many_metricas_cost_one_round_trip() -> None:
    metricas = [Metrica(name=f"m{i}", axes=[("colour", Axis(choices=["red", "blue"]))]) for i in range(20)]
    for i, metrica in enumerate(metricas):
        for _ in range(i):
            metrica.kick(date=D(2024, 5, 1, 10), colour="red")
        metrica.kick(date=D(2024, 5, 2, 11), colour="blue")
    calls = []
    for metrica in metricas:
        calls.append(lambda m=metrica: m.values().total())
        calls.append(lambda m=metrica: m.filter(colour="red").timespan(2024, 5, 1).total())
        calls.append(lambda m=metrica: m.values().timeserie(D(2024, 5, 1), D(2024, 5, 3), scale="day"))
        calls.append(lambda m=metrica: m.values().iterate("colour"))
    expected = [call() for call in calls]
    with count_round_trips() as trips:
        results = pipelined(calls)
    assert trips.count == 1
    assert results == expected
    assert results[4 * 7 : 4 * 7 + 2] == [8, 7]


def test_pipelined_averages_and_empty_input() -> None:
    money = AveragedMetrica(name="money", axes=[], multiplier=100)
    money.kick(value=1.5)
    money.kick(value=2.5)
    assert pipelined([money.average, money.count, money.total]) == [2.0, 2, 4.0]
    with count_round_trips() as trips:
        assert pipelined([]) == []
    assert trips.count == 0


def test_pipelined_propagates_query_errors_before_reading() -> None:
    coarse = Metrica(name="coarse", axes=[], date_scales=["year"])
    with count_round_trips() as trips, pytest.raises(ValueError, match="does not record"):
        pipelined([coarse.total, lambda: coarse.values().timeserie(D(2024, 1, 1), D(2024, 1, 2), scale="day")])
    assert trips.count == 0


def test_pipelined_batches_script_reads_of_stored_axes_and_years() -> None:
    pages = Metrica(name="pages", axes=[("path", StoredChoiceAxis())])
    pages.kick(date=D(2023, 1, 1), path="/a")
    for hour in range(5):
        pages.kick(date=D(2024, 5, 1, hour), path="/b")
    spans = [(2024, 5, 1, hour) for hour in range(24)]
    calls = [lambda s=s: pages.timespan(*s).iterate("path") for s in spans]
    calls += [pages.values().iterate, lambda: pages.filter(path="/b").total()]
    expected = [call() for call in calls]
    with count_round_trips() as trips:
        results = pipelined(calls)
    assert results == expected
    assert results[0] == [("/a", 0), ("/b", 1)]
    assert results[-2:] == [[(2023, 1), (2024, 5)], 5]
    if not CLUSTER_MODE:  # a cluster pipeline refuses scripts: there each is a call of its own
        assert trips.count == 1  # scripts go as EVALSHA in the pipeline


def test_pipelined_calls_nest_into_one_batch() -> None:
    money = AveragedMetrica(name="money", axes=[], multiplier=100)
    money.kick(value=3)

    def both() -> list:
        return pipelined([money.count, money.average])

    with count_round_trips() as trips:
        assert pipelined([both, money.total]) == [[1, 3.0], 3.0]
    assert trips.count == 1


def test_a_call_that_reads_other_keys_the_second_time_still_gets_true_numbers() -> None:
    a, b = Metrica(name="a", axes=[]), Metrica(name="b", axes=[])
    a.kick()
    for _ in range(3):
        b.kick()
    passes = []

    def fickle() -> int:  # like a call that looked at the clock as the hour turned
        passes.append(1)
        return (a if len(passes) == 1 else b).total()

    with count_round_trips() as trips:
        assert pipelined([fickle, a.total]) == [3, 1]
    assert trips.count == 2


@pytest.mark.single_redis("reads the server's command statistics")
def test_identical_reads_are_sent_once(staste_redis) -> None:
    a = Metrica(name="a", axes=[])
    a.kick()

    def hmgets() -> int:
        return staste_redis.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)

    before = hmgets()
    with count_round_trips() as trips:
        assert pipelined([a.total] * 5) == [1] * 5
    assert trips.count == 1
    assert hmgets() - before == 1
