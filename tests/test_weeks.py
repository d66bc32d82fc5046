"""ISO weeks: one point per week (Monday 00:00 in the staste zone), summed from the day buckets
in one round trip, across months and years, None once the days may have expired."""

from __future__ import annotations

import datetime
import random
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from staste import conf, timescale
from staste.axis import Axis
from staste.charts.spec import Range, line_spec, mark_time, parse_last
from staste.formats import QUICK_RANGES, bucket_label
from staste.metrica import AveragedMetrica, Metrica
from tests.roundtrips import count_round_trips

D = datetime.datetime
UTC = ZoneInfo("UTC")
LONG_KEPT = {"day": None, "hour": None, "minute": None}


# -- pure week arithmetic --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "monday"),
    [
        (datetime.date(2024, 3, 11), (2024, 3, 11)),  # a Monday is its own week's start
        (datetime.date(2024, 3, 17), (2024, 3, 11)),  # a Sunday ends it
        (datetime.date(2021, 1, 1), (2020, 12, 28)),  # a Friday of 2020-W53
        (datetime.date(2025, 1, 1), (2024, 12, 30)),  # a Wednesday of 2025-W01, begun in 2024
        (datetime.date(2024, 3, 1), (2024, 2, 26)),  # leap February to March
        (D(2024, 3, 17, 23, 59), (2024, 3, 11)),
        (datetime.date(1, 1, 7), (1, 1, 1)),  # 0001-01-01 was a Monday
    ],
)
def test_week_of_is_the_monday_of_the_iso_week(day, monday) -> None:
    assert timescale.week_of(day) == monday


def test_week_days_cross_months_and_years() -> None:
    assert timescale.week_days((2020, 12, 28)) == [
        (2020, 12, 28),
        (2020, 12, 29),
        (2020, 12, 30),
        (2020, 12, 31),
        (2021, 1, 1),
        (2021, 1, 2),
        (2021, 1, 3),
    ]
    assert timescale.week_days((2024, 2, 26))[3:5] == [(2024, 2, 29), (2024, 3, 1)]
    assert timescale.week_days((9999, 12, 27)) == [(9999, 12, d) for d in range(27, 32)]  # the calendar ends


def test_iso_week_numbers() -> None:
    assert timescale.iso_week((2020, 12, 28)) == (2020, 53)
    assert timescale.iso_week((2024, 12, 30)) == (2025, 1)
    assert bucket_label(D(2020, 12, 28), "week") == "2020-W53"
    assert bucket_label(D(2024, 12, 30), "week") == "2025-W01"


def test_weeks_and_their_count() -> None:
    mondays = timescale.weeks(D(2020, 12, 31, 5), D(2021, 1, 18))
    assert mondays == [(2020, 12, 28), (2021, 1, 4), (2021, 1, 11), (2021, 1, 18)]
    assert timescale.series(D(2020, 12, 31, 5), D(2021, 1, 18), "week") == mondays
    assert timescale.count_buckets(D(2020, 12, 31, 5), D(2021, 1, 18), "week") == 4
    assert timescale.count_buckets(D(2021, 1, 18), D(2020, 12, 31), "week") == 0
    assert timescale.weeks(D(9999, 12, 30), D(9999, 12, 31)) == [(9999, 12, 27)]


@given(
    st.dates(min_value=datetime.date(1, 1, 1), max_value=datetime.date(9999, 12, 20)),
    st.integers(min_value=0, max_value=400),
)
@example(datetime.date(9999, 8, 1), 400)  # the range runs past the calendar's end
@example(datetime.date(1, 1, 1), 0)
def test_week_properties(day: datetime.date, length: int) -> None:
    monday = datetime.date(*timescale.week_of(day))
    assert monday.weekday() == 0 and 0 <= (day - monday).days < 7
    assert monday.isocalendar()[:2] == day.isocalendar()[:2]
    days = timescale.week_days(timescale.week_of(day))
    assert (day.year, day.month, day.day) in days
    until = datetime.date.fromordinal(min(day.toordinal() + length, datetime.date.max.toordinal()))
    mondays = timescale.weeks(day, until)
    assert len(mondays) == timescale.count_buckets(
        D(day.year, day.month, day.day), D(until.year, until.month, until.day), "week"
    )
    # The weeks' days are every day from the first Monday, each once, in order.
    flat = [d for m in mondays for d in timescale.week_days(m)]
    assert flat == sorted(set(flat)) and len(flat) == 7 * len(mondays) - (7 - len(timescale.week_days(mondays[-1])))


def test_expired_is_end_plus_retention() -> None:
    day = (2024, 3, 11)
    end = D(2024, 3, 12, tzinfo=UTC).timestamp()
    assert not timescale.expired(day, 3600, end + 3599, UTC)
    assert timescale.expired(day, 3600, end + 3600, UTC)
    assert not timescale.expired(day, None, end + 10**9, UTC)
    tokyo = ZoneInfo("Asia/Tokyo")  # the day ends 9 hours earlier there
    assert timescale.expired(day, 3600, end - 9 * 3600 + 3600, tokyo)


def test_readable_weeks_need_days() -> None:
    assert timescale.readable("week", ("year", "month", "day"))
    assert not timescale.readable("week", ("year", "month"))
    assert timescale.readable("hour", timescale.SCALES)


# -- reading weeks from Redis ----------------------------------------------------------------


@pytest.fixture
def kept(settings) -> None:
    settings.STASTE_RETENTION = LONG_KEPT


def test_a_week_straddling_a_year_and_a_month_sums_its_seven_days(kept) -> None:
    m = Metrica(name="signups", axes=[("plan", Axis(choices=["free", "paid"]))])
    for day, times in [
        ((2020, 12, 27), 100),
        ((2020, 12, 28), 1),
        ((2020, 12, 31), 2),
        ((2021, 1, 1), 4),
        ((2021, 1, 3), 8),
        ((2021, 1, 4), 16),
    ]:
        for _ in range(times):
            m.kick(date=D(*day, 23, 59), plan="paid")
    m.kick(date=D(2021, 2, 28), plan="free")
    m.kick(date=D(2021, 3, 1), plan="free")  # the Monday after: another week
    weeks = m.timeserie(D(2020, 12, 28), D(2021, 1, 10), scale="week")
    assert weeks == [(D(2020, 12, 28, tzinfo=conf.time_zone()), 15), (D(2021, 1, 4, tzinfo=conf.time_zone()), 16)]
    assert m.filter(plan="free").timeserie(D(2021, 2, 22), D(2021, 3, 1), scale="week") == [
        (D(2021, 2, 22, tzinfo=conf.time_zone()), 1),
        (D(2021, 3, 1, tzinfo=conf.time_zone()), 1),
    ]
    assert m.filter(plan="free").timeserie(D(2020, 12, 28), D(2021, 1, 3), scale="week") == [
        (D(2020, 12, 28, tzinfo=conf.time_zone()), 0)
    ]


def test_weeks_equal_the_days_grouped_by_iso_week(kept) -> None:
    """Random kicks over half a year: every week is the sum of its days, for every measure."""
    rng = random.Random(14)
    m = AveragedMetrica(name="orders", axes=[("shop", Axis(choices=["a", "b"]))], multiplier=100, histogram=True)
    start = D(2023, 11, 20)
    for _ in range(400):
        m.kick(
            date=start + datetime.timedelta(minutes=rng.randrange(200 * 24 * 60)),
            value=rng.choice([1.5, 20, 300]),
            shop=rng.choice("ab"),
        )
    since, until = D(2023, 12, 1), D(2024, 5, 20)
    query = m.filter(shop="a")
    days = query.timeserie_counts_and_averages(
        since - datetime.timedelta(days=7), until + datetime.timedelta(days=7), scale="day"
    )
    counts: Counter = Counter()
    sums: Counter = Counter()
    for moment, count, average in days:
        week = timescale.week_of(moment)
        counts[week] += count
        sums[week] += count * (average or 0)
    weeks = query.timeserie_counts_and_averages(since, until, scale="week")
    assert [moment.date() for moment, _, _ in weeks] == [datetime.date(*w) for w in timescale.weeks(since, until)]
    assert all(moment.weekday() == 0 and moment.hour == 0 for moment, _, _ in weeks)
    for moment, count, average in weeks:
        week = timescale.week_of(moment)
        assert count == counts[week]
        assert average == (pytest.approx(sums[week] / count) if count else None)
    totals = query.timeserie(since, until, scale="week")
    assert [round(total, 2) for _, total in totals] == [
        round(sums[timescale.week_of(moment)], 2) for moment, _ in totals
    ]
    assert [count for _, count in query.timeserie_counts(since, until, scale="week")] == [c for _, c, _ in weeks]
    assert sum(count for _, count, _ in weeks) > 0
    # Percentiles of a week are those of its seven days' values together.
    for moment, by_p in query.timeserie_percentiles(since, until, scale="week", ps=[50, 95]):
        first = moment.replace(tzinfo=None)
        assert by_p == query.percentiles_over(
            first, first + datetime.timedelta(days=6, hours=23), scale="day", ps=[50, 95]
        )


def test_a_week_series_is_one_round_trip_and_writes_nothing_new(kept, staste_keys, prefix) -> None:
    m = AveragedMetrica(name="visits", axes=[], histogram=True)
    m.kick(date=D(2024, 1, 3), value=5)
    written = set(staste_keys())
    calls = [
        lambda: m.values().timeserie(D(2023, 1, 1), D(2024, 12, 31), scale="week"),
        lambda: m.values().timeserie_counts(D(2023, 1, 1), D(2024, 12, 31), scale="week"),
        lambda: m.values().timeserie_counts_and_averages(D(2023, 1, 1), D(2024, 12, 31), scale="week"),
        lambda: m.values().timeserie_percentiles(D(2023, 1, 1), D(2024, 12, 31), scale="week"),
        lambda: m.values().percentiles_over(D(2023, 1, 1), D(2024, 12, 31), scale="week"),
    ]
    for call in calls:
        with count_round_trips() as trips:
            call()
        assert trips.count == 1
    assert set(staste_keys()) == written  # reading wrote nothing
    # A kick writes its day, not a week: the buckets are those of the five calendar scales.
    buckets = [key for key in written if ":w:" not in key]  # w: a writer's last call number
    ids = sorted({key.rsplit(":", 1)[1] for key in buckets if key.rsplit(":", 1)[1][:1].isdigit()})
    assert ids == ["2024", "202401", "20240103", "2024010300", "202401030000"]


def test_expired_weeks_are_none_not_zero(settings) -> None:
    settings.STASTE_RETENTION = {"day": 20 * 24 * 3600}
    m = AveragedMetrica(name="recent", axes=[])
    today = conf.local().date()
    monday = today - datetime.timedelta(days=today.weekday())
    old = monday - datetime.timedelta(weeks=6)
    m.kick(date=old + datetime.timedelta(days=1), value=3)  # within its TTL, but beyond the day retention
    m.kick(date=monday, value=4)
    since = old
    with count_round_trips() as trips:
        weeks = m.timeserie(since, scale="week")
    assert trips.count == 1
    assert len(weeks) == 7 and weeks[0][0].date() == old
    values = [total for _, total in weeks]
    # 20 days back from today: weeks that began more than 20 days before the end of their Monday
    # are gone; the last two or three are kept.
    assert values[:3] == [None, None, None]
    assert values[-1] == 4 and values[-2] == 0
    assert all(value is None for value in values[: values.index(0)])
    counts = m.timeserie_counts_and_averages(since, scale="week")
    assert counts[0] == (weeks[0][0], None, None) and counts[-1][1:] == (1, 4.0)
    assert m.timeserie_counts(since, scale="week")[0][1] is None
    # Only the kept weeks were read.
    with count_round_trips() as trips:
        m.timeserie(old, old + datetime.timedelta(days=3), scale="week")
    assert trips.count == 0


def test_an_expired_week_of_percentiles_is_none(settings, clock) -> None:
    """Days kept a week: the week now falls in is whole whatever its day (its Monday ended at
    most six days ago), three weeks back is gone.  The clock is then set to each day of a week,
    and a retention of one day loses this week's Monday from its Wednesday on."""
    settings.STASTE_RETENTION = {"day": 7 * 24 * 3600}
    m = Metrica(name="latency", axes=[], histogram=True)
    m.kick(value=12)
    rows = m.values().timeserie_percentiles(conf.local() - datetime.timedelta(weeks=3), scale="week", ps=[50])
    assert len(rows) == 4 and rows[0][1] is None
    assert rows[-1][1] == {50: pytest.approx(12, rel=0.1)}

    settings.STASTE_RETENTION = {"day": 24 * 3600}
    for day in range(7):  # Monday 11 March 2024 to Sunday 17 March, at noon
        clock.set(D(2024, 3, 11 + day, 12))
        m.kick(value=12)
        rows = m.values().timeserie_percentiles(D(2024, 3, 4), scale="week", ps=[50])
        kept = [week for week, percentiles in rows if percentiles is not None]
        assert kept == ([] if day >= 2 else [D(2024, 3, 11, tzinfo=conf.time_zone())]), day


def test_weeks_follow_the_staste_time_zone(settings) -> None:
    settings.STASTE_TIME_ZONE = "Asia/Tokyo"
    settings.STASTE_RETENTION = LONG_KEPT
    tokyo = ZoneInfo("Asia/Tokyo")
    m = Metrica(name="tz", axes=[])
    m.kick(date=D(2024, 3, 10, 16, 30, tzinfo=UTC))  # Sunday in UTC, Monday 01:30 in Tokyo
    weeks = m.timeserie(D(2024, 3, 4, tzinfo=tokyo), D(2024, 3, 17, tzinfo=tokyo), scale="week")
    assert weeks == [(D(2024, 3, 4, tzinfo=tokyo), 0), (D(2024, 3, 11, tzinfo=tokyo), 1)]


def test_week_guards(settings) -> None:
    monthly = Metrica(name="monthly", axes=[], date_scales=["month"])
    with pytest.raises(ValueError, match="does not record days"):
        monthly.timeserie(D(2024, 1, 1), D(2024, 3, 1), scale="week")
    m = Metrica(name="m", axes=[])
    with pytest.raises(ValueError, match="unknown time scale 'weeks'"):
        m.timeserie(D(2024, 1, 1), D(2024, 3, 1), scale="weeks")
    settings.STASTE_MAX_BUCKETS = 70
    assert len(m.timeserie(D(2024, 1, 1), D(2024, 3, 10), scale="week")) == 10  # 70 day buckets
    with pytest.raises(ValueError, match="more than 10 weeks"):
        m.timeserie(D(2024, 1, 1), D(2024, 3, 11), scale="week")
    with count_round_trips() as trips, pytest.raises(ValueError, match="before since"):
        m.timeserie(D(2024, 3, 1), D(2024, 1, 1), scale="week")
    assert trips.count == 0


# -- charts, template tags, admin ---------------------------------------------------------


def test_last_n_weeks_is_n_iso_weeks(settings) -> None:
    now = D(2024, 3, 13, 14, 35)  # a Wednesday
    assert parse_last("12 weeks", now=now) == Range(D(2023, 12, 25), now, "week")
    assert parse_last("last 1 week", now=now) == Range(D(2024, 3, 11), now, "week")
    assert "12 weeks" in QUICK_RANGES
    settings.STASTE_MAX_BUCKETS = 70
    with pytest.raises(ValueError, match="between 1 and 10"):
        parse_last("11 weeks", now=now)


def test_a_line_by_week(kept) -> None:
    m = Metrica(name="line", axes=[])
    m.kick(date=D(2021, 1, 1))
    spec = line_spec(m.values(), D(2020, 12, 21), D(2021, 1, 4), scale="week")
    assert spec["labels"] == ["2020-W52", "2020-W53", "2021-W01"]
    assert spec["datasets"][0]["data"] == [0, 1, 0]
    assert spec["x"] == "week"


def test_a_week_is_partial_until_its_sunday_ends() -> None:
    spec = {"labels": ["W1", "W2"], "datasets": [{"data": [3, 4]}]}
    mondays = [(2024, 3, 4), (2024, 3, 11)]
    for moment, partial in [
        (D(2024, 3, 11, 0, 0), [1]),  # the Monday of the second week
        (D(2024, 3, 17, 23, 59), [1]),  # its Sunday night
    ]:
        marked, spans = mark_time(spec, mondays, moment, timescale.WEEK)
        assert marked["partial"] == partial and spans == mondays
    marked, _ = mark_time(spec, mondays, D(2024, 3, 13), "day")  # read as days, only Mondays
    assert marked["partial"] == []
