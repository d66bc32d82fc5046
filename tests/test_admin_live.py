"""The admin's live refresh and its comparison with the previous period (issue 15, §2 and §3),
through Django's test client against a real Redis; the browser side is in
tests/browser/test_live_browser.py."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from staste import conf, timescale
from staste.adminviews import compare
from staste.adminviews.metrica import live_config
from staste.axis import Axis
from staste.charts.spec import Range
from staste.formats import change_label, like
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips
from tests.test_admin import json_script, make_user, text

pytestmark = pytest.mark.django_db

D = datetime.datetime


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(make_user("viewer", staff=True, permitted=True))
    return client


@pytest.fixture
def register() -> Iterator[Callable[[Metrica], Metrica]]:
    """Register metricas for one test only."""
    added: list[Metrica] = []

    def adding(metrica: Metrica) -> Metrica:
        registry.register(metrica)
        added.append(metrica)
        return metrica

    yield adding
    for metrica in added:
        registry.unregister(metrica)


@pytest.fixture
def hits(register) -> Metrica:
    return register(Metrica(name="test_hits", axes=[("colour", Axis(choices=["red", "blue"]))], title="Hits"))


# -- the pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "steps", "expected"),
    [
        ((2024, 3), -1, (2024, 2)),
        ((2024, 1), -1, (2023, 12)),
        ((2024, 1), -25, (2021, 12)),
        ((2024, 12), 1, (2025, 1)),
        ((2024,), -3, (2021,)),
        ((2024, 3, 1), -1, (2024, 2, 29)),
        ((2024, 3, 1, 0), -24, (2024, 2, 29, 0)),
        ((2024, 1, 1, 0, 0), -1, (2023, 12, 31, 23, 59)),
        ((2024, 1, 1, 0, 0), 0, (2024, 1, 1, 0, 0)),
    ],
)
def test_shift_steps_whole_calendar_spans(span, steps, expected) -> None:
    assert timescale.shift(span, steps) == expected


def test_shift_refuses_all_time_and_the_ends_of_the_calendar() -> None:
    with pytest.raises(ValueError):
        timescale.shift((), -1)
    with pytest.raises(ValueError):
        timescale.shift((1,), -1)


def test_the_previous_range_has_as_many_buckets_and_ends_before_the_current_one() -> None:
    now = D(2024, 3, 10, 14, 30)
    found = Range(D(2024, 3, 9, 15), now, "hour")
    period = compare.previous_period(found, None, None, now=now)
    assert period.range == Range(D(2024, 3, 8, 15), D(2024, 3, 9, 14), "hour")
    assert len(timescale.series(*period.range)) == 24
    assert (period.index, period.fraction) == (23, 0.5)  # now is half-way through the 24th hour
    months = compare.previous_period(Range(D(2023, 4, 1), D(2024, 3, 10), "month"), None, None, now=now)
    assert months.range == Range(D(2022, 4, 1), D(2023, 3, 1), "month")


def test_the_previous_weeks_are_as_many_iso_weeks_before() -> None:
    now = D(2024, 3, 13, 12)  # a Wednesday noon: 2.5 days into its week
    period = compare.previous_period(Range(D(2024, 2, 26), now, "week"), None, None, now=now)
    assert period.range == Range(D(2024, 2, 5), D(2024, 2, 19), "week")
    assert timescale.series(*period.range) == [(2024, 2, 5), (2024, 2, 12), (2024, 2, 19)]
    assert (period.index, period.fraction) == (2, 2.5 / 7)


def test_a_running_span_is_compared_up_to_the_same_point() -> None:
    now = D(2024, 3, 10, 6, 15)
    today = compare.previous_period(None, (2024, 3, 10), "hour", now=now)
    assert (today.span, today.index, today.fraction) == ((2024, 3, 9), 6, 0.25)
    month = compare.previous_period(None, (2024, 3), "day", now=now)
    assert (month.span, month.index) == ((2024, 2), 9)  # the 10th day, 0-based
    assert compare.same_point([10] * 24, today) == 6 * 10 + 0.25 * 10
    past = compare.previous_period(None, (2024, 2), "day", now=now)
    assert (past.span, past.index, past.fraction) == ((2024, 1), None, 1.0)
    assert compare.same_point([1] * 31, past) == 31
    assert compare.previous_period(None, (), None, now=now) is None


def test_an_expired_previous_period_is_said_so() -> None:
    now = D(2024, 3, 10, 6, 15)
    period = compare.previous_period(Range(D(2024, 3, 10, 5, 16), now, "minute"), None, None, now=now)
    assert period.unavailable is None
    far = compare.previous_period(Range(D(2024, 1, 1), now, "hour"), None, None, now=now)
    assert "expired" in far.unavailable and "hours are kept 2\xa0weeks" in far.unavailable


def test_change_and_how_it_reads() -> None:
    assert compare.change(110, 100) == pytest.approx(10)
    assert compare.change(5, 0) is None and compare.change(None, 3) is None
    assert change_label(12.4, 100) == {"text": "▲ 12%", "direction": "up", "versus": "vs 100"}
    assert change_label(-3.44, 11.64) == {"text": "▼ 3.4%", "direction": "down", "versus": "vs 11.64"}
    assert like(11.64, 12) == 12 and like(11.64, 12.5) == 11.64 and like(3, 4) == 3
    assert change_label(0.01, 2.5)["text"] == "= 0%"
    assert change_label(None, 0) == {"text": "—", "direction": "none", "versus": "vs 0"}
    assert compare.fit([1, 2], 4) == [1, 2, None, None] and compare.fit([1, 2, 3], 2) == [1, 2]


# -- a metrica page ------------------------------------------------------------------------------


def page(name: str) -> str:
    return f"/admin/staste/{name}/"


@pytest.mark.single_redis("a pipeline costs one round trip per node on a cluster")
def test_compare_draws_the_previous_24_hours_dashed_in_the_same_round_trip(staff_client, hits) -> None:
    now = conf.local()
    for hours_ago, times in ((1, 3), (24, 10), (25, 2), (26, 5), (47, 4), (48, 7)):
        for _ in range(times):
            hits.kick(date=now - datetime.timedelta(hours=hours_ago), colour="red")
    url = page("test_hits") + "?_last=24+hours&_compare=previous"
    staff_client.get(url)  # the first read of a session may load its script into Redis (SCRIPT LOAD)
    with count_round_trips(this_thread_only=True) as trips:
        response = staff_client.get(url)
    assert response.status_code == 200
    assert trips.count == 1
    line = json_script(response, "staste-line-data")
    assert [d["label"] for d in line["datasets"]] == ["total", "total (previous period)"]
    current, previous = line["datasets"]
    assert previous["previous_of"] == 0
    assert len(previous["data"]) == len(current["data"]) == len(line["labels"]) == 24
    assert sum(current["data"]) == 3
    assert sum(previous["data"]) == 10 + 2 + 5 + 4  # 48 hours ago is the bucket before
    # bucket i over bucket i: 25 hours ago sits under 1 hour ago
    assert previous["data"][current["data"].index(3)] == 2
    assert previous["labels"][-1] == (now - datetime.timedelta(hours=24)).strftime("%Y-%m-%d %H:00")
    body = text(response)
    assert 'id="staste-compare" name="_compare" value="previous" form="staste-controls" checked' in body
    card = body.split('data-card="total"', 1)[1].split("</div>", 1)[0]
    assert "staste-change staste-down" in card and "▼" in card
    refresh = page("test_hits") + "data.json?_last=24+hours&_compare=previous"
    with count_round_trips(this_thread_only=True) as trips:
        staff_client.get(refresh)
    assert trips.count == 1  # each live refresh with the comparison: one round trip
    # The table and the exports carry the previous period too: what is drawn is exported.
    data = json.loads(staff_client.get("/admin/staste/test_hits/data.json?_last=24+hours&_compare=previous").content)
    assert data["line"]["header"] == ["hour", "total", "total (previous period)"]
    # The previous 24 hours up to the same point: the hour that matches the current one, prorated.
    assert 11 <= data["previous"]["summary"]["total"] <= 21
    assert data["shown"]["cards"][0]["change"]["direction"] == "down"
    # Links keep the comparison, all time drops it.
    assert "_compare=previous" in body.split('class="staste-ranges"', 1)[1].split("Last 60 minutes", 1)[0]
    all_time = re.search(r'href="([^"]*_span=all[^"]*)"', body).group(1)
    assert "_compare" not in all_time


def months_ago(months: int) -> timescale.Span:
    return timescale.shift(timescale.truncate(conf.local(), "month"), -months)


def test_compare_a_past_month_with_the_whole_previous_one(staff_client, hits) -> None:
    # Two months that end on different days (a 31-day month under a shorter or longer one).
    shown, before = months_ago(2), months_ago(3)
    days = len(timescale.children(shown))
    for day, times in ((1, 1), (days, 2)):
        for _ in range(times):
            hits.kick(date=D(*shown, day, 12), colour="blue")
    for day, times in ((1, 4), (len(timescale.children(before)), 6)):
        for _ in range(times):
            hits.kick(date=D(*before, day, 12), colour="blue")
    query = f"_span={shown[0]:04d}-{shown[1]:02d}&_compare=previous"
    response = staff_client.get(page("test_hits") + "?" + query)
    assert response.status_code == 200
    line = json_script(response, "staste-line-data")
    current, previous = line["datasets"]
    assert len(current["data"]) == len(previous["data"]) == days
    assert previous["data"][0] == 4
    expected = [4] + [0] * (len(timescale.children(before)) - 2) + [6]
    assert previous["data"] == compare.fit(expected, days)
    assert previous["labels"][0] == f"{before[0]:04d}-{before[1]:02d}-01"
    data = json.loads(staff_client.get(page("test_hits") + "data.json?" + query).content)
    assert data["previous"]["summary"] == {"total": 10}
    total = next(card for card in data["shown"]["cards"] if card["key"] == "total")
    assert total["value"] == "3" and total["change"] == {"text": "▼ 70%", "direction": "down", "versus": "vs 10"}
    assert total["previous"] == "10"
    assert "live" not in data  # a past month does not refresh itself
    assert 'id="staste-live-config"' not in text(response)


def test_compare_an_averaged_metrica_counts_averages_and_percentiles(staff_client, register) -> None:
    latency = register(AveragedMetrica(name="test_lat", axes=[], histogram=True, title="Latency"))
    shown, before = months_ago(1), months_ago(2)
    for value in (10, 20, 30):
        latency.kick(date=D(*shown, 5, 10), value=value)
    latency.kick(date=D(*before, 5, 10), value=100)
    query = f"?_span={shown[0]:04d}-{shown[1]:02d}&_compare=previous"
    response = staff_client.get(page("test_lat") + query)
    line = json_script(response, "staste-line-data")
    assert [d["label"] for d in line["datasets"]] == [
        "count",
        "average",
        "p50",
        "p95",
        "p99",
        "count (previous period)",
        "average (previous period)",
    ]
    assert [d.get("axis") for d in line["datasets"]] == ["y", "y1", "y1", "y1", "y1", "y", "y1"]
    assert line["datasets"][5]["data"][4] == 1 and line["datasets"][6]["data"][4] == 100
    cards = {
        card["key"]: card
        for card in json.loads(staff_client.get(page("test_lat") + "data.json" + query).content)["shown"]["cards"]
    }
    assert cards["count"]["change"]["text"] == "▲ 200%"
    assert cards["average"]["change"]["text"] == "▼ 80%"
    assert cards["p95"]["change"]["direction"] == "down"


@pytest.fixture
def visitors(register) -> Metrica:
    return register(Metrica(name="test_visitors", axes=[], uniques=True, title="Visitors"))


def cards_of(client: Client, name: str, query: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cards of a page's JSON by key, and its previous period."""
    data = json.loads(client.get(page(name) + "data.json?" + query).content)
    return {card["key"]: card for card in data["shown"]["cards"]}, data["previous"]


def test_compare_counts_the_distinct_ids_of_the_whole_previous_month(staff_client, visitors) -> None:
    shown, before = months_ago(1), months_ago(2)
    for day, ids in ((2, "abc"), (9, "ab")):  # 3 distinct ids, however many days they came back
        for unique in ids:
            visitors.kick(date=D(*shown, day, 10), unique=unique)
    for day, ids in ((1, "uvwx"), (20, "uvyz")):  # 6
        for unique in ids:
            visitors.kick(date=D(*before, day, 10), unique=unique)
    query = f"_span={shown[0]:04d}-{shown[1]:02d}&_compare=previous"
    cards, previous = cards_of(staff_client, "test_visitors", query)
    assert previous["summary"]["uniques"] == 6
    assert cards["uniques"]["value"] == "3" and cards["uniques"]["previous"] == "6"
    assert cards["uniques"]["change"] == {"text": "▼ 50%", "direction": "down", "versus": "vs 6"}
    card = text(staff_client.get(page("test_visitors") + "?" + query)).split('data-card="uniques"', 1)[1]
    assert "staste-change staste-down" in card.split("</div>", 1)[0] and "▼ 50%" in card
    assert cards_of(staff_client, "test_visitors", query.split("&")[0])[0]["uniques"]["change"] is None  # not compared


def between(low: float, high: float) -> Callable[[float], bool]:
    return lambda value: low - 1e-9 <= value <= high + 1e-9


@pytest.mark.single_redis("a pipeline costs one round trip per node on a cluster")
def test_a_running_range_compares_distinct_ids_up_to_the_same_point(staff_client, visitors) -> None:
    """The last 30 days against the 30 before, today still running: the previous period's ids
    are the union of its first 29 days and its 30th day prorated (a union, not a sum)."""
    now = conf.local()
    first = timescale.start(timescale.truncate(now, "day")) - datetime.timedelta(days=29)
    for days, ids in ((-30, "ab"), (-5, "ab"), (-1, "abcdef")):  # 2 ids before the day at the point, 4 new on it
        for unique in ids:
            visitors.kick(date=first + datetime.timedelta(days=days, hours=12), unique=unique)
    for unique in "abc":
        visitors.kick(date=now, unique=unique)
    query = "_last=30+days&_compare=previous"
    staff_client.get(page("test_visitors") + "data.json?" + query)  # scripts loaded
    early = compare.previous_period(Range(first, conf.local(), "day"), None, None).fraction
    with count_round_trips(this_thread_only=True) as trips:
        cards, previous = cards_of(staff_client, "test_visitors", query)
    late = compare.previous_period(Range(first, conf.local(), "day"), None, None).fraction
    assert trips.count == 1  # with the previous period's ids, in the page's one round trip
    assert between(2 + 4 * early, 2 + 4 * late)(previous["summary"]["uniques"])
    assert cards["uniques"]["value"] == "3" and cards["uniques"]["change"]["direction"] in ("up", "down", "flat")
    then = previous["summary"]["uniques"]
    assert cards["uniques"]["change"] == change_label(compare.change(3, then), round(then))


def test_today_compares_distinct_ids_with_yesterdays_prorated(staff_client, visitors) -> None:
    """Hours keep no ids: today so far is compared with the part of yesterday's that has elapsed."""
    now = conf.local()
    yesterday = timescale.start(timescale.truncate(now, "day")) - datetime.timedelta(days=1)
    for n in range(10):
        visitors.kick(date=yesterday + datetime.timedelta(hours=n), unique=f"id{n}")
    visitors.kick(date=now, unique="someone")
    today = now.strftime("%Y-%m-%d")
    elapsed = lambda: (conf.local() - timescale.start(timescale.truncate(now, "day"))) / datetime.timedelta(days=1)  # noqa: E731
    early = elapsed()
    cards, previous = cards_of(staff_client, "test_visitors", f"_span={today}&_compare=previous")
    assert between(10 * early, 10 * elapsed())(previous["summary"]["uniques"])
    assert cards["uniques"]["value"] == "1" and cards["uniques"]["change"] is not None


@pytest.mark.parametrize("view", ["_last=30+days", "_last=12+weeks", "_last=12+months", "today", "month", "year"])
def test_every_view_that_counts_distinct_ids_compares_them(staff_client, visitors, view) -> None:
    now = conf.local()
    for unique in "ab":
        visitors.kick(date=now, unique=unique)
    spans = {"today": now.strftime("%Y-%m-%d"), "month": now.strftime("%Y-%m"), "year": now.strftime("%Y")}
    query = f"_span={spans[view]}" if view in spans else view
    cards, previous = cards_of(staff_client, "test_visitors", query + "&_compare=previous")
    assert cards["uniques"]["value"] == "2" and previous["summary"]["uniques"] == 0
    assert cards["uniques"]["change"]["text"] == "—"  # nothing to compare with: said so, as for the total


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("_compare=next", "bad _compare &#x27;next&#x27;"),
        ("_compare=previous&_span=all", "all time has no previous period"),
    ],
)
def test_bad_comparisons_are_a_400_that_says_why(staff_client, hits, query, message) -> None:
    response = staff_client.get(page("test_hits") + "?" + query)
    assert response.status_code == 400
    assert message in text(response)


def test_an_expired_previous_period_is_not_drawn_as_zeros(staff_client, hits, settings) -> None:
    settings.STASTE_RETENTION = {"hour": 3600 * 30}
    response = staff_client.get(page("test_hits") + "?_last=24+hours&_compare=previous")
    assert response.status_code == 200
    assert len(json_script(response, "staste-line-data")["datasets"]) == 1
    assert "The previous period has expired: hours are kept 1\xa0day, 6\xa0hours." in text(response)


# -- live ----------------------------------------------------------------------------------------


def test_pages_that_reach_the_present_carry_the_live_settings(staff_client, hits, settings) -> None:
    today = conf.local().strftime("%Y-%m-%d")
    for query in ("?_last=60+minutes", "?_last=24+hours", f"?_span={today}", "?_span=" + today[:7], ""):
        config = json_script(staff_client.get(page("test_hits") + query), "staste-live-config")
        assert config["interval"] == 5 and config["kind"] == "metrica"
        assert config["url"].startswith("/admin/staste/test_hits/data.json?")
    assert "staste-live-config" not in text(staff_client.get(page("test_hits") + "?_span=2020-01"))
    settings.STASTE_LIVE_INTERVAL = 0
    assert "staste-live-config" not in text(staff_client.get(page("test_hits") + "?_last=24+hours"))
    settings.STASTE_LIVE_INTERVAL = 2
    assert json_script(staff_client.get(page("test_hits")), "staste-live-config")["interval"] == 2


def test_the_json_export_carries_what_the_page_shows(staff_client, hits) -> None:
    for _ in range(1234):
        hits.kick(colour="red")
    with count_round_trips(this_thread_only=True) as trips:
        response = staff_client.get(page("test_hits") + "data.json?_last=60+minutes")
    if not CLUSTER_MODE:
        assert trips.count == 1  # one refresh, one round trip
    data = json.loads(response.content)
    months = json.loads(staff_client.get(page("test_hits") + "data.json?_last=12+months").content)["shown"]
    page_text = text(staff_client.get(page("test_hits") + "?_last=12+months"))
    assert f'<span id="staste-since">{months["since"]}</span>' in page_text
    assert f'<span id="staste-until">{months["until"]}</span>' in page_text
    assert data["shown"]["cards"] == [
        {"key": "total", "label": "Total", "value": "1,234", "change": None, "previous": None}
    ]
    assert data["shown"]["line"][-1]["values"] == ["1,234"]
    assert data["shown"]["breakdown"][0] == {
        "label": "red",
        "url": "/admin/staste/test_hits/?colour=red&_last=60+minutes",
        "css": "",
        "values": ["1,234", "100.0%"],  # the total, its share
    }


@pytest.mark.skipif(CLUSTER_MODE, reason="a pipeline costs one round trip per node on a cluster")
def test_the_dashboard_compares_today_with_the_same_time_yesterday_in_one_round_trip(staff_client, hits, clock) -> None:
    # Half past noon of the pinned day: yesterday's events at 00:00 and 23:59 are then whole
    # hours away from the hour being prorated, whatever the hour the suite runs at.
    clock.set(conf.local().replace(hour=12, minute=30))
    now = conf.local()
    midnight = timescale.start(timescale.truncate(now, "day"))
    yesterday = midnight - datetime.timedelta(days=1)
    for _ in range(4):
        hits.kick(date=now, colour="red")
    for _ in range(8):
        hits.kick(date=yesterday, colour="red")  # at midnight: counted whatever the time now
    for _ in range(50):
        hits.kick(date=yesterday + datetime.timedelta(hours=23, minutes=59), colour="red")  # later than now
    with count_round_trips(this_thread_only=True) as trips:
        response = staff_client.get("/admin/staste/")
    assert trips.count == 1
    row = text(response).split('data-metrica="test_hits"', 1)[1].split("</tr>", 1)[0]
    assert "staste-change staste-down" in row and "▼ 50%" in row
    with count_round_trips(this_thread_only=True) as trips:
        data = json.loads(staff_client.get("/admin/staste/data.json").content)
    assert trips.count == 1
    found = next(row for row in data["rows"] if row["name"] == "test_hits")
    assert found["today"] == "4" and found["change"] == {"text": "▼ 50%", "direction": "down", "versus": "vs 8"}
    assert found["spark"]["datasets"][0]["data"][-1] == 4
    assert json_script(response, "staste-live-config")["url"] == "/admin/staste/data.json"


def test_the_dashboard_json_needs_the_permission(client, hits) -> None:
    client.force_login(make_user("plain", staff=True))
    assert client.get("/admin/staste/data.json").status_code == 403


@pytest.mark.parametrize(
    "view",
    [
        "_last=60+minutes",
        "_last=24+hours",
        "_last=30+days",
        "_last=12+weeks",
        "_last=12+months",
        "today",
        "month",
        "year",
    ],
)
def test_every_view_but_all_time_compares_point_for_point(staff_client, hits, view) -> None:
    now = conf.local()
    hits.kick(date=now, colour="red")
    spans = {"today": now.strftime("%Y-%m-%d"), "month": now.strftime("%Y-%m"), "year": now.strftime("%Y")}
    query = f"_span={spans[view]}" if view in spans else view
    response = staff_client.get(page("test_hits") + f"?{query}&_compare=previous")
    assert response.status_code == 200
    line = json_script(response, "staste-line-data")
    current, previous = line["datasets"]
    assert len(previous["data"]) == len(current["data"]) == len(line["labels"]) == len(previous["labels"])
    assert sum(value or 0 for value in current["data"]) == 1
    assert "staste-change" in text(response)


def test_the_change_names_the_previous_number_in_its_unit(staff_client, register) -> None:
    latency = register(AveragedMetrica(name="test_ms", axes=[], unit="ms", title="Latency"))
    shown, before = months_ago(1), months_ago(2)
    latency.kick(date=D(*shown, 3, 10), value=50)
    latency.kick(date=D(*before, 3, 10), value=40)
    query = f"data.json?_span={shown[0]:04d}-{shown[1]:02d}&_compare=previous"
    cards = {
        card["key"]: card for card in json.loads(staff_client.get(page("test_ms") + query).content)["shown"]["cards"]
    }
    assert cards["average"]["value"] == "50 ms" and cards["average"]["change"]["versus"] == "vs 40 ms"
    assert cards["count"]["change"]["versus"] == "vs 1"  # events have no unit


def test_the_live_interval_comes_from_the_environment_too(monkeypatch) -> None:
    monkeypatch.setenv("STASTE_LIVE_INTERVAL", "2.5")
    conf.get_config.cache_clear()
    try:
        assert conf.get("STASTE_LIVE_INTERVAL") == 2.5
        assert live_config("/x")["interval"] == 2.5
        monkeypatch.setenv("STASTE_LIVE_INTERVAL", "0")
        conf.get_config.cache_clear()
        assert live_config("/x") is None  # 0 turns the refresh off
    finally:
        monkeypatch.delenv("STASTE_LIVE_INTERVAL")
        conf.get_config.cache_clear()
