"""Every example of the seed README, with the seed's numbers."""

from __future__ import annotations

import datetime

import pytest

from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica


@pytest.fixture
def guests() -> Metrica:
    gender_axis = Axis(choices=["boy", "girl"])
    age_axis = StoredChoiceAxis()
    return Metrica(name="guest_visits_gender_age", axes=[("gender", gender_axis), ("age", age_axis)])


def kick_many(metrica: Metrica, times: int, **kwargs) -> None:
    for _ in range(times):
        metrica.kick(**kwargs)


@pytest.fixture
def seed_data(guests: Metrica) -> Metrica:
    """Kicks that give exactly the numbers printed in the seed README."""
    feb = datetime.datetime(2010, 2, 14, 12, 0)
    kick_many(guests, 1, date=feb, gender="boy", age=120)
    kick_many(guests, 10, date=feb, gender="boy", age=17)
    kick_many(guests, 17, date=feb, gender="boy", age=18)
    kick_many(guests, 3, date=datetime.datetime(2010, 5, 1), gender="girl", age=19)
    kick_many(guests, 5, date=datetime.datetime(2010, 6, 1), gender="girl", age=20)
    kick_many(guests, 1, date=datetime.datetime(2010, 7, 1), gender="boy", age=19, value=0)
    kick_many(guests, 1, date=datetime.datetime(2010, 7, 1), gender="boy", age=21)
    return guests


def test_kick_from_quick_start(guests: Metrica) -> None:
    guests.kick(gender="girl", age=18)
    guests.kick(gender="boy", age=19)
    assert guests.total() == 2
    assert guests.filter(gender="girl").total() == 1
    assert guests.filter(age=19).total() == 1
    assert guests.filter(gender="girl", age=18).total() == 1
    assert guests.filter(gender="girl", age=19).total() == 0


def test_getting_stats(seed_data: Metrica) -> None:
    metrica = seed_data
    assert metrica.timespan(year=2010).total() == 37
    assert metrica.filter(gender="girl").total() == 8
    assert metrica.filter(gender="girl", age=19).total() == 3
    assert metrica.filter(gender="boy").timespan(year=2010, month=2).filter(age=17).total() == 10
    # The seed printed this in Redis set order; staste sorts stored values.
    ages = metrica.timespan(year=2010, month=2).filter(gender="boy").iterate("age")
    assert sorted(ages) == sorted([("120", 1), ("19", 0), ("17", 10), ("18", 17), ("20", 0), ("21", 0)])
    assert ages == sorted(ages)


def test_weighed_metrica() -> None:
    pocket = Metrica(name="my_pocket_money", axes=[("shop", StoredChoiceAxis())])
    pocket.kick(value=100, shop="candy")
    pocket.kick(value=250, shop="books")
    assert pocket.total() == 350
    assert pocket.iterate("shop") == [("books", 250), ("candy", 100)]


def test_averaged_metrica() -> None:
    axis = StoredChoiceAxis()
    metrica = AveragedMetrica(name="some_averaged_metrica", axes=[("c", axis)], multiplier=100)

    d1 = datetime.datetime(2010, 2, 7)
    d2 = datetime.datetime(2010, 2, 8)
    d3 = datetime.datetime(2010, 2, 9)

    metrica.kick(date=d1, value=12, c="a")
    metrica.kick(date=d1, value=2, c="b")
    metrica.kick(date=d2, value=7.5, c="a")
    metrica.kick(date=d2, value=0.16, c="a")
    metrica.kick(date=d3, c="b")

    days = list(metrica.timespan(year=2010, month=2).iterate_counts())[5:10]
    assert days == [(6, 0), (7, 2), (8, 2), (9, 1), (10, 0)]

    days = list(metrica.timespan(year=2010, month=2).iterate_averages())[5:10]
    assert days == [(6, None), (7, 7), (8, 3.83), (9, 1), (10, None)]

    chars = list(metrica.filter().iterate_counts("c"))
    assert chars == [("a", 3), ("b", 2)]

    chars = list(metrica.filter().iterate_averages("c"))
    assert chars == [("a", (12 + 7.5 + 0.16) / 3), ("b", 1.5)]


def test_hierarchical_paths_with_int_parts_as_the_seed_kicks_them() -> None:
    """The original staste's scenarios kick ``label=("exp", "city", "all", 1)``: a path whose
    last part is an id.  It is counted under its decimal text at every level, read back as
    that text, and found by 1 or "1" alike."""
    clicks = Metrica(name="clicks", axes=[("label", HierarchicalAxis())])
    feb = datetime.datetime(2010, 2, 14, 12, 0)
    kick_many(clicks, 3, date=feb, label=("exp", "city", "all", 1))
    kick_many(clicks, 2, date=feb, label=("exp", "city", "all", 2))
    kick_many(clicks, 1, date=feb, label=("exp", "city", "top", 1))
    kick_many(clicks, 4, date=feb, label=("exp", "country", "all", 1))
    assert clicks.total() == 10
    assert clicks.filter(label=("exp", "city")).total() == 6
    assert clicks.filter(label=("exp", "city", "all", 1)).total() == 3
    assert clicks.filter(label=("exp", "city", "all", "1")).total() == 3
    assert clicks.timespan(year=2010, month=2).filter(label=("exp", "city", "all", 2)).total() == 2
    assert clicks.filter(label=("exp", "city", "all")).iterate("label") == [
        (("exp", "city", "all", "1"), 3),
        (("exp", "city", "all", "2"), 2),
    ]
    assert clicks.filter(label=("exp",)).iterate("label") == [(("exp", "city"), 6), (("exp", "country"), 4)]
