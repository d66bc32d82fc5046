"""staste.query.pipelined: many queries' reads in one round trip (the admin dashboard)."""

from __future__ import annotations

import datetime

import pytest

from staste.axis import Axis
from staste.metrica import AveragedMetrica, Metrica
from staste.query import pipelined
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
