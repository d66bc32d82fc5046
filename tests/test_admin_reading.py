"""What a metrica page tells a reader: breakdowns ranked with shares, units, time told honestly
(partial, future and expired buckets, the time zone, previous/next), slowest values first on
a response-time page, and refusals (403, 400) that keep the admin around them."""

from __future__ import annotations

import datetime
import logging
import re

import pytest
from django.test import Client

from staste import buffer, conf, connection, keys, timescale
from staste.adminviews.metrica import time_zone_label
from staste.axis import Axis, StoredChoiceAxis
from staste.charts.spec import BAR_LIMIT, PIE_LIMIT, REST_LABEL
from staste.metrica import AveragedMetrica, Metrica
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips
from tests.test_admin import (  # noqa: F401  (fixtures)
    HOSTILE,
    json_script,
    make_user,
    page,
    register,
    staff_client,
    table_rows,
    text,
    viewer,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ages(register) -> Metrica:  # noqa: F811
    """Guests by gender and age: 63 ages, age N kicked N - 7 times (70 the most), all girls but age 8."""
    metrica = register(
        Metrica(name="test_ages", axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis(int))])
    )
    for age in range(8, 71):
        for _ in range(age - 7):
            metrica.kick(gender="boy" if age == 8 else "girl", age=age)
    return metrica


@pytest.fixture
def latency(register) -> AveragedMetrica:  # noqa: F811
    """Response times in ms: "fast" answers often in 1-10 ms, "slow" rarely in 200-300 ms."""
    metrica = register(
        AveragedMetrica(
            name="test_latency",
            axes=[("view", StoredChoiceAxis()), ("status", Axis(choices=["2xx", "5xx"]))],
            multiplier=1000,
            histogram=True,
            unit="ms",
        )
    )
    for ms in range(1, 11):
        for _ in range(5):
            metrica.kick(value=ms, view="fast", status="2xx")
    for ms in (200, 250, 300):
        metrica.kick(value=ms, view="slow", status="5xx")
    return metrica


def breakdown(response) -> dict:
    return json_script(response, "staste-breakdown-data")


# -- breakdowns ------------------------------------------------------------------------------------


def test_a_breakdown_of_many_values_draws_the_largest_as_bars_and_pools_the_rest(staff_client, ages) -> None:  # noqa: F811
    response = staff_client.get(page("test_ages") + "?_by=age&_span=all")
    assert response.status_code == 200
    chart = breakdown(response)
    assert chart["type"] == "bar" and chart["horizontal"] is True
    assert len(chart["labels"]) == BAR_LIMIT
    assert chart["labels"][: BAR_LIMIT - 1] == [str(age) for age in range(70, 70 - BAR_LIMIT + 1, -1)]
    assert chart["labels"][-1] == REST_LABEL and chart["pooled"] == 63 - (BAR_LIMIT - 1)
    data = chart["datasets"][0]["data"]
    assert data[:-1] == sorted(data[:-1], reverse=True)
    assert sum(data) == sum(range(1, 64))  # nothing lost in the pooled bar
    assert sum(chart["shares"]) == pytest.approx(100)
    assert chart["links"][0] == "/admin/staste/test_ages/?age=70&_span=all"
    assert chart["links"][-1] is None  # the pooled bar is not one value
    # the table keeps every value, largest first, with its share
    rows = table_rows(response, "staste-breakdown-table")
    assert rows[0] == ["age", "total ↓", "share"]
    assert [row[0] for row in rows[1:]] == [str(age) for age in range(70, 7, -1)]
    assert rows[1][2] == f"{100 * 63 / sum(range(1, 64)):.1f}%"
    rest = 100 * chart["datasets"][0]["data"][-1] / sum(range(1, 64))
    assert f"pools the 49 smallest values ({rest:.1f}% of the total)" in text(response)


def test_a_breakdown_of_few_values_is_a_pie_of_distinct_slices_largest_first(staff_client, ages) -> None:  # noqa: F811
    chart = breakdown(staff_client.get(page("test_ages") + "?_span=all"))
    assert chart["type"] == "pie" and chart["x"] == "gender"
    assert chart["labels"] == ["girl", "boy"] and chart["datasets"][0]["data"] == [sum(range(2, 64)), 1]
    assert len(chart["labels"]) <= PIE_LIMIT and chart["pooled"] == 0


def test_a_filtered_axis_is_not_offered_as_a_breakdown_or_shows_only_its_value(staff_client, ages) -> None:  # noqa: F811
    filtered = staff_client.get(page("test_ages") + "?gender=girl&_span=all")
    assert breakdown(filtered)["x"] == "age"  # the breakdown moved on to the axis still open
    by = text(filtered).split('id="staste-by"', 1)[1].split("</select>", 1)[0]
    assert '<option value="age" selected>age</option>' in by and 'value="gender"' not in by
    asked = staff_client.get(page("test_ages") + "?gender=girl&_by=gender&_span=all")
    chart = breakdown(asked)
    assert chart["labels"] == ["girl"] and chart["highlight"] == 0
    assert [row[0] for row in table_rows(asked, "staste-breakdown-table")[1:]] == ["girl"]


def test_units_come_from_the_metrica_and_sums_of_durations_are_hidden(staff_client, latency, register) -> None:  # noqa: F811
    response = staff_client.get(page("test_latency") + "?_last=24+hours")
    body = text(response)
    assert re.search(r"<dt>Average</dt><dd>[\d.,]+ ms</dd>", body)
    assert re.search(r"<dt>p95</dt><dd>[\d.,]+ ms</dd>", body)
    assert "<dt>Events</dt><dd>53</dd>" in body
    assert "<dt>Total</dt>" not in body  # a sum of milliseconds means nothing
    line = json_script(response, "staste-line-data")
    assert line["units"] == {"y1": "ms"} and line["integer"] == ["y"]  # counts: whole ticks
    assert "AVERAGE (MS)" in body.upper()
    money = register(Metrica(name="test_money", multiplier=100, unit="€"))
    money.kick(value=12.5)
    shown = text(staff_client.get(page("test_money") + "?_span=all"))
    assert "<dt>Total</dt><dd>12.50 €</dd>" in shown
    spent = json_script(staff_client.get(page("test_money")), "staste-line-data")
    assert spent["units"] == {"y": "€"} and spent["integer"] == []
    with pytest.raises(ValueError, match="unit"):
        Metrica(name="test_bad_unit", unit="x" * 50)


# -- the slowest values ----------------------------------------------------------------------------


def test_a_response_time_page_opens_on_the_slowest_values_by_p95(staff_client, latency, settings) -> None:  # noqa: F811
    settings.STASTE_MIN_RANKED_COUNT = 3  # "slow" has three events: enough, here
    staff_client.get(page("test_latency"))  # loads the scripts into Redis
    with count_round_trips() as trips:
        response = staff_client.get(page("test_latency"))
    assert response.status_code == 200
    if not CLUSTER_MODE:  # the page's reads, the values' percentiles among them, in one round trip
        assert trips.count == 1
    chart = breakdown(response)
    assert chart["title"] == "Slowest by p95" and chart["x"] == "view"
    assert chart["labels"] == ["slow", "fast"] and chart["units"] == {"y": "ms"}
    assert chart["counts"] == [3, 50]  # each percentile's events, for its tooltip
    rows = table_rows(response, "staste-breakdown-table")
    assert rows[0] == ["view", "count", "average (ms)", "p50 (ms)", "p95 (ms) ↓", "p99 (ms)"]
    assert [row[0] for row in rows[1:]] == ["slow", "fast"]
    slow = latency.filter(view="slow").percentiles([50, 95, 99])
    assert rows[1][1] == "3" and float(rows[1][4].replace(",", "")) == pytest.approx(slow[95], abs=0.01)
    # every measure's header re-sorts the table by it
    head = text(response).split('id="staste-breakdown-table"', 1)[1].split("</thead>", 1)[0]
    assert 'href="/admin/staste/test_latency/?_last=30+days&amp;_measure=count"' in head
    assert 'href="/admin/staste/test_latency/?_last=30+days&amp;_measure=p99"' in head
    by_count = staff_client.get(page("test_latency") + "?_measure=count")
    assert [row[0] for row in table_rows(by_count, "staste-breakdown-table")[1:]] == ["fast", "slow"]
    assert breakdown(by_count)["type"] == "pie"
    assert staff_client.get(page("test_latency") + "?_measure=total").status_code == 400
    exported = staff_client.get(page("test_latency") + "data.json").json()
    assert exported["unit"] == "ms" and exported["breakdown"]["header"][-3:] == ["p50 (ms)", "p95 (ms)", "p99 (ms)"]


def test_values_with_too_few_events_are_not_ranked_by_a_percentile(staff_client, latency) -> None:  # noqa: F811
    # The default minimum is 20 events (STASTE_MIN_RANKED_COUNT): "slow", three events, is no trend.
    response = staff_client.get(page("test_latency"))
    chart = breakdown(response)
    assert chart["labels"] == ["fast"] and chart["counts"] == [50]
    rows = table_rows(response, "staste-breakdown-table")
    assert [row[0] for row in rows[1:]] == ["fast", "slow"]  # listed, with its count, but last
    assert rows[2][1] == "3" and rows[2][3:] == ["—", "—", "—"]


def test_the_line_draws_p50_p95_and_p99_over_time(staff_client, latency) -> None:  # noqa: F811
    line = json_script(staff_client.get(page("test_latency") + "?_last=24+hours"), "staste-line-data")
    assert [d["label"] for d in line["datasets"]] == ["count", "average", "p50", "p95", "p99"]
    assert {d["axis"] for d in line["datasets"][1:]} == {"y1"} and line["units"]["y1"] == "ms"
    now = len(line["labels"]) - 1  # the kicks are of now: the last bucket holds them all
    everything = latency.values().percentiles([50, 95, 99])
    assert [d["data"][now] for d in line["datasets"][2:]] == [pytest.approx(everything[p]) for p in (50, 95, 99)]
    exported = staff_client.get(page("test_latency") + "data.json?_last=24+hours").json()
    assert exported["line"]["header"] == ["hour", "count", "average (ms)", "p50 (ms)", "p95 (ms)", "p99 (ms)"]


# -- time ------------------------------------------------------------------------------------------


def test_future_buckets_are_not_drawn_and_the_current_one_is_partial(staff_client, ages) -> None:  # noqa: F811
    now = conf.local()
    year = json_script(staff_client.get(page("test_ages") + f"?_span={now.year}"), "staste-line-data")
    assert len(year["labels"]) == now.month and year["partial"] == [now.month - 1]
    today = staff_client.get(page("test_ages") + "?_span=" + now.strftime("%Y-%m-%d"))
    hours = json_script(today, "staste-line-data")
    assert len(hours["labels"]) == now.hour + 1 and hours["partial"] == [now.hour]
    assert "staste-badge" in text(today)  # the table marks it too
    ranged = json_script(staff_client.get(page("test_ages") + "?_last=24+hours"), "staste-line-data")
    assert len(ranged["labels"]) == 24 and ranged["partial"] == [23] and ranged["expired"] == []
    dashboard = staff_client.get("/admin/staste/")
    row = text(dashboard).split('data-metrica="test_ages"', 1)[1].split("</tr>", 1)[0]
    spark = json_script(dashboard, re.search(r'data-staste-chart="(staste-spark-\d+)"', row).group(1))
    assert spark["partial"] == [23]  # the small chart's hour still filling up: dashed, not a fall
    weekly = staff_client.get(page("test_ages") + "?_last=12+weeks&_scale=week")
    weeks = json_script(weekly, "staste-line-data")
    # the week now falls in (read from its days) is still filling up, Monday or not
    assert len(weeks["labels"]) == 12 and weeks["partial"] == [11]
    assert "staste-badge" in text(weekly)


def test_expired_buckets_say_so_and_lead_nowhere(staff_client, register) -> None:  # noqa: F811
    old = register(Metrica(name="test_old", axes=[("gender", Axis(choices=["boy", "girl"]))]))
    day = (conf.local() - datetime.timedelta(days=30)).replace(hour=12, minute=0)
    old.kick(date=day, gender="boy")
    # Written late, its buckets live 14 days from now; had it been written on the day, Redis
    # would have dropped its hours by now (their retention), keeping the day: do what it would.
    redis = connection.get_redis()
    for hour in range(24):
        redis.delete(keys.bucket_key(old.base, timescale.bucket_id((day.year, day.month, day.day, hour))))
    response = staff_client.get(page("test_old") + "?_span=" + day.strftime("%Y-%m-%d"))
    line = json_script(response, "staste-line-data")
    assert line["expired"] == list(range(24)) and set(line["datasets"][0]["data"]) == {None}
    rows = table_rows(response, "staste-line-table")
    assert rows[13][1] == "expired"
    assert "24 of these hours have expired: Redis keeps hours 14 days" in text(response)
    assert day.strftime("?_span=%Y-%m-%dT") not in text(response)  # no drill-down into an hour
    hour = staff_client.get(page("test_old") + "?_span=" + day.strftime("%Y-%m-%dT12"))
    assert "Redis no longer holds this hour" in text(hour)
    assert "staste-breakdown-data" not in text(hour) and "staste-line-table" not in text(hour)  # no zeros
    assert "<dt>Total</dt><dd>1</dd>" in text(staff_client.get(page("test_old") + "?_span=" + day.strftime("%Y-%m-%d")))


def test_previous_and_next_step_the_calendar_span_and_the_time_zone_is_shown(staff_client, ages, settings) -> None:  # noqa: F811
    body = text(staff_client.get(page("test_ages") + "?_span=2024-03&gender=girl"))
    assert 'class="staste-step staste-previous" href="/admin/staste/test_ages/?gender=girl&amp;_span=2024-02"' in body
    assert 'class="staste-step staste-next" href="/admin/staste/test_ages/?gender=girl&amp;_span=2024-04"' in body
    january = text(staff_client.get(page("test_ages") + "?_span=2024-01-01"))
    assert 'href="/admin/staste/test_ages/?_span=2023-12-31"' in january
    today = text(staff_client.get(page("test_ages") + "?_span=" + conf.local().strftime("%Y-%m-%d")))
    assert "staste-next" not in today  # tomorrow holds nothing yet
    assert '<span class="staste-quiet staste-zone"' in today and f">{time_zone_label()}</span>" in today
    settings.STASTE_TIME_ZONE = "UTC"
    assert ">UTC</span>" in text(staff_client.get(page("test_ages")))
    settings.STASTE_TIME_ZONE = "Asia/Tokyo"
    assert "Asia/Tokyo (UTC+09:00)" in text(staff_client.get(page("test_ages")))
    assert "Times are in Asia/Tokyo (UTC+09:00)." in text(staff_client.get("/admin/staste/"))


# -- refusals ------------------------------------------------------------------------------------


def test_staff_without_the_permission_get_an_admin_page_naming_it(client: Client, caplog) -> None:
    client.force_login(make_user("clerk", staff=True))
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/admin/staste/")
    assert response.status_code == 403
    body = text(response)
    assert 'id="site-name"' in body or "Django administration" in body  # the admin's chrome
    assert '<code class="staste-permission">staste.view_metrica</code>' in body
    assert "clerk" in body
    assert all(record.exc_info is None for record in caplog.records)  # no traceback for a refusal
    # the section's breadcrumbs, the dashboard's own (one template block for both)
    crumbs = re.search(r'<div class="breadcrumbs">.*?</div>', body, re.S).group(0)
    home = '<a href="/admin/">Home</a>'
    assert re.sub(r"\s+", " ", crumbs) == f'<div class="breadcrumbs"> {home} &rsaquo; Statistics </div>'
    client.force_login(make_user("viewer", staff=True, permitted=True))
    assert crumbs in text(client.get("/admin/staste/"))


def test_a_400_keeps_the_controls_around_a_clear_message(staff_client, ages) -> None:  # noqa: F811
    response = staff_client.get(page("test_ages"), {"age": "<script>", "gender": "girl", "_span": "all"})
    assert response.status_code == 400
    body = text(response)
    error = re.search(r'<li class="error staste-bad-request">(.*?)</li>', body, re.S).group(1)
    assert "age takes whole numbers" in error and "invalid literal" not in error
    assert "&lt;script&gt;" in error and "<script>" not in error
    assert 'id="staste-controls"' in body and 'class="staste-chip' in body  # the controls are there
    assert '<option value="girl" selected>girl</option>' in body  # the good parameters are kept
    assert breakdown(response)["x"] == "age"


def test_breakdown_links_of_hostile_values_are_escaped(staff_client, register) -> None:  # noqa: F811
    hostile = register(Metrica(name="test_hostile_links", axes=[("label", StoredChoiceAxis())]))
    for value in HOSTILE:
        hostile.kick(label=value)
    body = text(staff_client.get(page("test_hostile_links") + "?_span=all"))
    assert "<script>alert" not in body and "</script><script>" not in body
    chart = breakdown(staff_client.get(page("test_hostile_links") + "?_span=all"))
    assert all(link.startswith("/admin/staste/test_hostile_links/?label=") for link in chart["links"])


def test_the_buffer_banner_speaks_the_readers_words(staff_client) -> None:  # noqa: F811
    buffer.reset()
    body = text(staff_client.get("/admin/staste/"))
    assert 'data-stat="failed_flushes"><strong>0</strong> failed flushes</span>' in body
    assert "> failed_flushes<" not in body
