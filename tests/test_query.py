"""Queries: chainable, lazy, immutable, one round trip each."""

from __future__ import annotations

import datetime

import pytest

from staste import conf
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from tests.roundtrips import count_round_trips

D = datetime.datetime


@pytest.fixture
def visits() -> AveragedMetrica:
    metrica = AveragedMetrica(
        name="visits",
        axes=[("gender", Axis(choices=["girl", "boy"])), ("age", Axis(value_type=int))],
    )
    metrica.kick(date=D(2010, 2, 7, 13, 5), gender="girl", age=18, value=3)
    metrica.kick(date=D(2010, 2, 7, 13, 6), gender="boy", age=9, value=5)
    metrica.kick(date=D(2010, 2, 8, 0, 0), gender="boy", age=18, value=1)
    metrica.kick(date=D(2011, 7, 1), gender="girl", age=120, value=7)
    return metrica


def test_building_a_query_touches_no_redis(visits) -> None:
    with count_round_trips() as trips:
        query = visits.timespan(year=2010, month=2).filter(gender="boy").filter(age=18).timespan(year=2010)
    assert trips.count == 0
    assert query.span == (2010, 2)  # year= again replaces the year only
    assert query.filters == {"gender": "boy", "age": 18}


def test_timespan_narrows_the_query_as_in_the_seed(visits) -> None:
    assert visits.timespan(year=2006).timespan(month=2) == visits.timespan(year=2006, month=2)
    chained = visits.filter(gender="boy").timespan(year=2010).filter(age=17).timespan(month=2)
    assert chained == visits.filter(gender="boy", age=17).timespan(year=2010, month=2)
    day = visits.timespan(year=2010, month=2, day=7)
    assert day.timespan(month=3).span == (2010, 3, 7)  # only the month changes
    assert day.timespan(year=2011, hour=5).span == (2011, 2, 7, 5)
    assert day.timespan().span == day.span  # no arguments: the span stays
    assert visits.timespan().span == ()  # from the metrica: all time
    assert visits.timespan(year=2010, month=2).timespan(day=7).total() == day.total() == 8
    with pytest.raises(TypeError, match="day= needs month="):
        visits.timespan(year=2010).timespan(day=7)
    with pytest.raises(TypeError, match="month= needs year="):
        visits.values().timespan(month=2)
    with pytest.raises(ValueError, match="day=31"):  # the merged span is checked as a whole
        visits.timespan(year=2010, month=1, day=31).timespan(month=2)


def test_queries_are_immutable(visits) -> None:
    base = visits.filter(gender="boy")
    narrowed = base.filter(age=18)
    assert base.total() == 6
    assert narrowed.total() == 1
    assert base.filter(gender=None).total() == 16  # None lifts a filter
    assert base.timespan().total() == 6


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.values().total(),
        lambda m: m.values().count(),
        lambda m: m.values().average(),
        lambda m: m.timespan(year=2010, month=2).iterate(),
        lambda m: m.timespan(year=2010, month=2).iterate_averages(),
        lambda m: m.values().iterate(),  # years come from a stored set: still one script call
        lambda m: m.values().iterate("gender"),
        lambda m: m.values().iterate_counts("age"),
        lambda m: m.timespan(year=2010).iterate_averages("age"),
        lambda m: m.values().timeserie(D(2010, 1, 1), D(2010, 3, 1), scale="day"),
        lambda m: m.values().timeserie_counts_and_averages(D(2010, 2, 7), D(2010, 2, 8), scale="minute"),
    ],
)
def test_every_query_method_is_one_round_trip(visits, call) -> None:
    call(visits)  # the first use of a script on a new server also loads it (SCRIPT LOAD)
    with count_round_trips() as trips:
        call(visits)
    assert trips.count == 1


def test_totals_counts_averages(visits) -> None:
    assert visits.total() == 16
    assert visits.count() == 4
    assert visits.average() == 4
    assert visits.timespan(year=2010).count() == 3
    assert visits.timespan(year=2010, month=2, day=7).filter(gender="boy").average() == 5
    assert visits.timespan(year=2009).average() is None


def test_iterate_time_scales(visits) -> None:
    assert visits.iterate() == [(2010, 9), (2011, 7)]
    months = visits.timespan(year=2010).iterate()
    assert [m for m, _ in months] == list(range(1, 13)) and months[1] == (2, 9)
    days = visits.timespan(year=2010, month=2).iterate_counts()
    assert len(days) == 28 and days[6] == (7, 2) and days[7] == (8, 1)
    hours = visits.timespan(year=2010, month=2, day=7).iterate()
    assert [h for h, _ in hours] == list(range(24)) and hours[13] == (13, 8)
    minutes = visits.timespan(year=2010, month=2, day=7, hour=13).iterate_averages()
    assert len(minutes) == 60 and minutes[5] == (5, 3) and minutes[6] == (6, 5) and minutes[7] == (7, None)
    with pytest.raises(ValueError, match="nothing finer"):
        visits.timespan(year=2010, month=2, day=7, hour=13, minute=5).iterate()


def test_leap_february_has_29_days() -> None:
    metrica = Metrica(name="leap", axes=[])
    metrica.kick(date=D(2012, 2, 29))
    days = metrica.timespan(year=2012, month=2).iterate()
    assert days[-1] == (29, 1) and len(days) == 29


def test_iterate_axes(visits) -> None:
    assert visits.iterate("gender") == [("girl", 10), ("boy", 6)]  # declared order
    assert visits.iterate_counts("age") == [(9, 1), (18, 2), (120, 1)]  # ints, sorted numerically
    assert visits.filter(gender="boy").iterate("age") == [(9, 5), (18, 1), (120, 0)]
    assert visits.timespan(year=2011).iterate_averages("age") == [(9, None), (18, None), (120, 7)]
    assert visits.filter(age=18).iterate_averages("gender") == [("girl", 3), ("boy", 1)]


def test_iterate_a_stored_axis_with_nothing_stored() -> None:
    metrica = Metrica(name="empty", axes=[("x", StoredChoiceAxis())])
    assert metrica.iterate("x") == []
    assert metrica.iterate() == []
    assert metrica.total() == 0


def test_hierarchical_axis() -> None:
    referrers = Metrica(name="referrers", axes=[("source", HierarchicalAxis()), ("kind", StoredChoiceAxis())])
    referrers.kick(source=("out", "se", "google"), kind="a")
    referrers.kick(source=("out", "se", "bing"), kind="b")
    referrers.kick(source=("out", "blog"), kind="a")
    referrers.kick(source=("in",), kind="a")
    referrers.kick(source="in", kind="b")  # a string is a path of one element
    referrers.kick(source=("o/ut", "x|y"), kind="a")  # separators inside elements are escaped

    assert referrers.total() == 6
    assert referrers.iterate("source") == [(("in",), 2), (("o/ut",), 1), (("out",), 3)]
    assert referrers.filter(source=("out",)).iterate("source") == [(("out", "blog"), 1), (("out", "se"), 2)]
    assert referrers.filter(source=("out", "se")).iterate("source") == [
        (("out", "se", "bing"), 1),
        (("out", "se", "google"), 1),
    ]
    assert referrers.filter(source=("out", "se", "google")).iterate("source") == []
    assert referrers.filter(source=("out", "se")).total() == 2
    assert referrers.filter(source=("out",), kind="a").total() == 2
    assert referrers.filter(kind="a").iterate("source") == [(("in",), 1), (("o/ut",), 1), (("out",), 2)]
    assert referrers.filter(source=("o/ut",)).iterate("source") == [(("o/ut", "x|y"), 1)]


def test_timespan_validation(visits) -> None:
    with pytest.raises(TypeError, match="month= needs year="):
        visits.timespan(month=2)
    with pytest.raises(TypeError, match="day= needs month="):
        visits.timespan(year=2010, day=2)
    with pytest.raises(ValueError, match="month=13"):
        visits.timespan(year=2010, month=13)
    with pytest.raises(ValueError, match="day=29"):
        visits.timespan(year=2010, month=2, day=29)
    with pytest.raises(ValueError, match="hour=24"):
        visits.timespan(year=2010, month=2, day=1, hour=24)
    with pytest.raises(TypeError, match="int"):
        visits.timespan(year="2010")
    with pytest.raises(TypeError, match="int"):
        visits.timespan(year=True)


def test_filter_validation(visits) -> None:
    with pytest.raises(TypeError, match="no axis 'colour'"):
        visits.filter(colour="red")
    with pytest.raises(ValueError, match=r"axis 'gender'.*not one of"):
        visits.filter(gender="other")
    with pytest.raises(ValueError, match="axis 'age'"):
        visits.filter(age="old")
    with pytest.raises(TypeError, match="no axis"):
        visits.iterate("colour")


def test_counts_need_an_averaged_metrica() -> None:
    plain = Metrica(name="plain", axes=[])
    with pytest.raises(TypeError, match="AveragedMetrica"):
        plain.values().count()
    with pytest.raises(TypeError, match="AveragedMetrica"):
        plain.values().iterate_averages()


def test_timeserie_with_explicit_scales(visits) -> None:
    days = visits.timeserie(D(2010, 2, 6, 12), D(2010, 2, 9), scale="day")
    assert [(moment.day, total) for moment, total in days] == [(6, 0), (7, 8), (8, 1), (9, 0)]
    assert all(moment.tzinfo is not None for moment, _ in days)  # USE_TZ is on in the tests
    months = visits.timeserie(D(2010, 11, 1), D(2011, 8, 1), scale="month")
    assert len(months) == 10 and months[-2][1] == 7 and months[0][0].month == 11
    minutes = visits.filter(gender="girl").timeserie_counts_and_averages(
        D(2010, 2, 7, 13, 4), D(2010, 2, 7, 13, 6), "minute"
    )
    assert [(m.minute, c, a) for m, c, a in minutes] == [(4, 0, None), (5, 1, 3), (6, 0, None)]
    years = visits.timeserie_counts(D(2009, 1, 1), D(2011, 1, 1), scale="year")
    assert [(m.year, c) for m, c in years] == [(2009, 0), (2010, 3), (2011, 1)]


def test_timeserie_returns_naive_datetimes_without_use_tz(visits, settings) -> None:
    settings.USE_TZ = False
    days = visits.timeserie(D(2010, 2, 7), D(2010, 2, 8), scale="day")
    assert days == [(D(2010, 2, 7), 8), (D(2010, 2, 8), 1)]


def test_timeserie_picks_the_finest_retained_scale(settings) -> None:
    metrica = Metrica(name="recent", axes=[])
    now = conf.local()
    metrica.kick(date=now)
    last_hour = metrica.timeserie(now - datetime.timedelta(minutes=59), now)
    assert len(last_hour) == 60 and last_hour[-1][1] == 1  # minutes
    last_week = metrica.timeserie(now - datetime.timedelta(days=6), now)
    assert len(last_week) in (145, 146) and last_week[-1][1] == 1  # hours
    last_year = metrica.timeserie(now - datetime.timedelta(days=300), now)
    assert 10 <= len(last_year) <= 11 and last_year[-1][1] == 1  # months


def test_timeserie_guards(visits, settings) -> None:
    with pytest.raises(ValueError, match="before since"):
        visits.timeserie(D(2010, 2, 8), D(2010, 2, 7))
    with pytest.raises(ValueError, match="more than"):
        visits.timeserie(D(2000, 1, 1), D(2010, 1, 1), scale="minute")
    daily = Metrica(name="daily", axes=[], date_scales=["day"])
    with pytest.raises(ValueError, match="does not record hours"):
        daily.timeserie(D(2010, 1, 1), D(2010, 1, 2), scale="hour")
    with pytest.raises(ValueError, match="unknown time scale"):
        daily.timeserie(D(2010, 1, 1), D(2010, 1, 2), scale="fortnight")
