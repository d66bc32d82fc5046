"""staste.charts.spec: quick ranges, line and pie specs, and the tables behind them."""

from __future__ import annotations

import datetime

import pytest

from staste.axis import OTHER, Axis, HierarchicalAxis, StoredChoiceAxis
from staste.charts.spec import Range, line_spec, parse_last, pie_spec, table, timeline_spec
from staste.formats import bucket_label
from staste.formats import value_label as label
from staste.metrica import AveragedMetrica, Metrica
from tests.roundtrips import count_round_trips

D = datetime.datetime
NOW = D(2024, 3, 10, 14, 35, 20)


@pytest.mark.parametrize(
    ("text", "since", "scale"),
    [
        ("60 minutes", D(2024, 3, 10, 13, 36), "minute"),
        ("last 24 hours", D(2024, 3, 9, 15), "hour"),
        ("1 hour", D(2024, 3, 10, 14), "hour"),
        ("30 days", D(2024, 2, 10), "day"),
        ("2 weeks", D(2024, 2, 26), "week"),  # this ISO week (from Monday 4 March) and the one before
        ("12 months", D(2023, 4, 1), "month"),
        ("3 Months", D(2024, 1, 1), "month"),
        ("15 months", D(2023, 1, 1), "month"),
        ("  LAST 5 years ", D(2020, 1, 1), "year"),
    ],
)
def test_parse_last_gives_n_buckets_ending_now(text: str, since: D, scale: str) -> None:
    result = parse_last(text, now=NOW)
    assert result == Range(since, NOW, scale)


@pytest.mark.parametrize(
    "text",
    ["", "24", "hours", "0 days", "-3 days", "3 fortnights", "1.5 hours", "24 hours ago", "9999999 minutes", None, 24],
)
def test_parse_last_rejects_garbage(text) -> None:
    with pytest.raises(ValueError, match="bad range"):
        parse_last(text, now=NOW)


def test_parse_last_rejects_ranges_before_year_one() -> None:
    with pytest.raises(ValueError, match="year 1"):
        parse_last("9000 years", now=D(2024, 1, 1))


def test_parse_last_defaults_to_now_in_the_staste_zone(settings, clock) -> None:
    settings.STASTE_TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: a calendar day ahead of UTC mostly
    clock.set(D(2024, 3, 9, 23, 30, 15, tzinfo=datetime.UTC))
    assert parse_last("60 minutes") == Range(D(2024, 3, 10, 12, 31), D(2024, 3, 10, 13, 30, 15), "minute")
    assert parse_last("2 days") == Range(D(2024, 3, 9), D(2024, 3, 10, 13, 30, 15), "day")


def test_labels() -> None:
    assert label(("out", "se")) == "out/se"
    assert label(()) == "(all)"
    assert label(OTHER) == "(other)"
    assert label(18) == "18"
    assert label("") == "(empty)"
    assert bucket_label((2024, 3)) == "2024-03"
    assert bucket_label(()) == "all time"
    assert bucket_label(D(2024, 3, 1, 7), "hour") == "2024-03-01 07:00"


@pytest.fixture
def money() -> AveragedMetrica:
    metrica = AveragedMetrica(name="money", axes=[("gender", Axis(choices=["boy", "girl"]))], multiplier=100)
    metrica.kick(value=2.5, date=D(2024, 3, 10, 12, 5), gender="boy")
    metrica.kick(value=1.5, date=D(2024, 3, 10, 12, 50), gender="girl")
    metrica.kick(value=4, date=D(2024, 3, 10, 14, 1), gender="girl")
    return metrica


def test_line_spec_of_an_averaged_metrica_has_counts_and_averages_on_two_axes(money) -> None:
    since, until, scale = parse_last("3 hours", now=NOW)
    with count_round_trips() as trips:
        spec = line_spec(money.values(), since, until, scale)
    assert trips.count == 1
    assert spec["type"] == "line"
    assert spec["title"] == "Money"
    assert spec["x"] == "hour"
    assert spec["labels"] == ["2024-03-10 12:00", "2024-03-10 13:00", "2024-03-10 14:00"]
    assert spec["datasets"] == [
        {"label": "count", "data": [2, 0, 1], "axis": "y"},
        {"label": "average", "data": [2.0, None, 4.0], "axis": "y1"},
    ]
    assert spec["axes"] == {"y": "count", "y1": "average"}
    header, rows = table(spec)
    assert header == ["hour", "count", "average"]
    assert rows[0] == ["2024-03-10 12:00", 2, 2.0]


def test_line_spec_follows_filters_and_titles(money) -> None:
    spec = line_spec(money.filter(gender="girl"), D(2024, 3, 10, 12), D(2024, 3, 10, 14), "hour", title="Girls")
    assert spec["title"] == "Girls"
    assert spec["datasets"][0]["data"] == [1, 0, 1]


def test_line_spec_of_a_plain_metrica_is_totals() -> None:
    visits = Metrica(name="visits", axes=[("page", StoredChoiceAxis())])
    visits.kick(date=D(2024, 3, 9), page="a")
    visits.kick(date=D(2024, 3, 10), page="b")
    visits.kick(date=D(2024, 3, 10), page="b")
    spec = line_spec(visits.values(), *parse_last("3 days", now=NOW))
    assert spec["labels"] == ["2024-03-08", "2024-03-09", "2024-03-10"]
    assert spec["datasets"] == [{"label": "total", "data": [0, 1, 2], "axis": "y"}]
    assert spec["axes"] == {"y": "total"}


def test_line_spec_rejects_scales_the_metrica_does_not_record_without_reading(money) -> None:
    coarse = Metrica(name="coarse", axes=[], date_scales=["year", "month"])
    with count_round_trips() as trips, pytest.raises(ValueError, match="does not record"):
        line_spec(coarse.values(), D(2024, 1, 1), D(2024, 1, 2), "hour")
    assert trips.count == 0


def test_pie_spec_by_axis_and_by_time(money) -> None:
    with count_round_trips() as trips:
        spec = pie_spec(money.values(), "gender")
    assert trips.count == 1
    assert spec["type"] == "pie"
    assert spec["labels"] == ["boy", "girl"]
    assert spec["datasets"] == [{"label": "count", "data": [1, 2], "axis": "y"}]
    assert pie_spec(money.values(), "gender", measure="total")["datasets"][0]["data"] == [2.5, 5.5]
    averages = pie_spec(money.values(), "gender", measure="average")
    assert averages["type"] == "bar"
    assert averages["datasets"][0]["data"] == [2.5, 2.75]
    by_hour = pie_spec(money.timespan(2024, 3, 10), None, chart="bar")
    assert by_hour["x"] == "hour"
    assert by_hour["labels"][12] == "2024-03-10 12:00"
    assert by_hour["datasets"][0]["data"][12] == 2
    years = pie_spec(money.values(), None)
    assert (years["labels"], years["datasets"][0]["data"]) == (["2024"], [3])


def test_pie_spec_rejects_unknown_options(money) -> None:
    with pytest.raises(ValueError, match="measure"):
        pie_spec(money.values(), "gender", measure="median")
    with pytest.raises(ValueError, match="chart"):
        pie_spec(money.values(), "gender", chart="radar")
    with pytest.raises(TypeError, match="no axis"):
        pie_spec(money.values(), "colour")


def test_pie_spec_of_a_hierarchical_axis_lists_the_children_of_the_filtered_node() -> None:
    clicks = Metrica(name="clicks", axes=[("label", HierarchicalAxis())])
    clicks.kick(label=("out", "se", "google"))
    clicks.kick(label=("out", "se", "bing"))
    clicks.kick(label=("out", "news"))
    clicks.kick(label=("in",))
    top = pie_spec(clicks.values(), "label")
    assert dict(zip(top["labels"], top["datasets"][0]["data"], strict=True)) == {"in": 1, "out": 3}
    below = pie_spec(clicks.filter(label=("out",)), "label")
    assert dict(zip(below["labels"], below["datasets"][0]["data"], strict=True)) == {"out/news": 1, "out/se": 2}


def test_timeline_spec_draws_the_children_of_a_span(money) -> None:
    with count_round_trips() as trips:
        day = timeline_spec(money.timespan(2024, 3, 10))
    assert trips.count == 1
    assert day["x"] == "hour"
    assert len(day["labels"]) == 24
    assert day["datasets"][0]["data"][12] == 2
    assert day["datasets"][1]["data"][12] == 2.0
    assert day["datasets"][1]["data"][13] is None
    years = timeline_spec(money.values())
    assert (years["x"], years["labels"], years["datasets"][0]["data"]) == ("year", ["2024"], [3])
    visits = Metrica(name="visits", axes=[])
    visits.kick(date=D(2024, 2, 1))
    months = timeline_spec(visits.timespan(2024), title="Visits")
    assert months["title"] == "Visits"
    assert months["labels"][:2] == ["2024-01", "2024-02"]
    assert months["datasets"] == [{"label": "total", "data": [0, 1] + [0] * 10, "axis": "y"}]
    with pytest.raises(ValueError, match="nothing finer"):
        timeline_spec(visits.timespan(2024, 2, 1, 0, 0))


def test_pie_spec_over_a_range_sums_the_buckets_in_one_round_trip(money) -> None:
    since, until, scale = parse_last("3 hours", now=NOW)
    with count_round_trips() as trips:
        spec = pie_spec(money.values(), "gender", since=since, until=until, scale=scale)
    assert trips.count == 1
    assert (spec["labels"], spec["datasets"][0]["data"]) == (["boy", "girl"], [1, 2])
    one_hour = pie_spec(money.values(), "gender", measure="total", since=D(2024, 3, 10, 14), until=NOW, scale="hour")
    assert one_hour["datasets"][0]["data"] == [0, 4.0]
    averages = pie_spec(money.values(), "gender", measure="average", since=since, until=until, scale=scale)
    assert averages["datasets"][0]["data"] == [2.5, 2.75]
    with pytest.raises(ValueError, match="needs an axis"):
        pie_spec(money.values(), None, since=since)


def test_pie_spec_over_a_range_of_a_stored_axis_with_overflow() -> None:
    pages = Metrica(name="pages", axes=[("path", StoredChoiceAxis(max_choices=2))])
    for path in ["/b", "/a", "/c", "/d", "/a"]:
        pages.kick(date=D(2024, 3, 10, 13), path=path)
    pages.kick(date=D(2024, 3, 10, 14), path="/b")
    pages.kick(date=D(2024, 3, 10, 11), path="/b")  # before the range
    spec = pie_spec(pages.values(), "path", since=D(2024, 3, 10, 13), until=NOW, scale="hour")
    assert dict(zip(spec["labels"], spec["datasets"][0]["data"], strict=True)) == {"/a": 2, "/b": 2, "(other)": 2}
    assert spec["labels"][-1] == "(other)"
    with pytest.raises(ValueError, match="only an AveragedMetrica"):
        pie_spec(pages.values(), "path", measure="count")
