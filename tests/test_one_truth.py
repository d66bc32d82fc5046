"""One read gives every number on a page: the admin page, its JSON and CSV, a template tag and
a public chart view say the same numbers for one view of a metrica, and a time that Redis no
longer holds or that has not begun is null, empty with a status, "expired" or "not begun",
never 0.

Each case reads all five surfaces: a range finer than retention (30 days by hour, most hours
expired), an expired span, a future span, a partial current bucket and compare mode.  The
clock is pinned to one moment (2026-12-06 11:30, a Sunday), whatever day the suite runs.
"""

from __future__ import annotations

import csv
import datetime
import io
import re

import pytest
from django.test import Client
from django.urls import path

from staste import connection, formats, keys, timescale
from staste.axis import Axis
from staste.charts.views import PieChart, TimeserieChart
from staste.metrica import Metrica
from tests.test_admin import (  # noqa: F401  (fixtures)
    json_script,
    make_user,
    page,
    register,
    staff_client,
    table_rows,
    text,
    viewer,
)
from tests.test_templatetags import Page, render
from tests.urls import urlpatterns as base_urls

NAME = "test_truth"
urlpatterns = [
    *base_urls,
    path("pie/", PieChart.as_view(metrica=NAME, axis_keyword="gender")),
    path("lines/", TimeserieChart.as_view(metrica=NAME)),
]
pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]

NOW = datetime.datetime(2026, 12, 6, 11, 30)
DAYS = 29  # days kicked: today and the 28 before it, all inside "30 days" by hour and by day


@pytest.fixture
def truth(register, clock) -> Metrica:  # noqa: F811
    """Day d back (0..28) has d + 1 girls and 1 boy at 10:00, 2 girls at 11:15 today; the hours
    older than the hour retention (14 days) are gone from Redis, as they would be (and their
    minutes, kept a day)."""
    clock.set(NOW)
    metrica = register(Metrica(name=NAME, axes=[("gender", Axis(choices=["boy", "girl"]))]))
    for back in range(DAYS):
        moment = (NOW - datetime.timedelta(days=back)).replace(hour=10, minute=0)
        for _ in range(back + 1):
            metrica.kick(date=moment, gender="girl")
        metrica.kick(date=moment, gender="boy")
    for _ in range(2):
        metrica.kick(date=NOW.replace(minute=15), gender="girl")
    redis = connection.get_redis()
    for back in range(15, DAYS):  # written late, they live 14 days from now: drop them as Redis would
        day = NOW - datetime.timedelta(days=back)
        for hour in range(24):
            redis.delete(keys.bucket_key(metrica.base, timescale.bucket_id((day.year, day.month, day.day, hour))))
        redis.delete(keys.bucket_key(metrica.base, timescale.bucket_id((day.year, day.month, day.day, 10, 0))))
    return metrica


def card(response, key: str) -> str:
    match = re.search(rf'data-card="{key}"><dt>[^<]*</dt><dd>([^<]*)</dd>', text(response))
    assert match, f"no card {key}"
    return match.group(1)


def csv_rows(client: Client, query: str, table: str) -> list[list[str]]:
    response = client.get(page(NAME) + "data.csv" + query + ("&" if query else "?") + "_table=" + table)
    assert response.status_code == 200, response.content[:300]
    return list(csv.reader(io.StringIO(response.content.decode())))


def number(cell: str) -> float:
    return float(str(cell).replace(",", "")) if cell not in ("", None) else 0.0


def public(client: Client, where: str) -> dict:
    response = client.get(where)
    assert response.status_code == 200, response.content[:300]
    return Page(response.content.decode()).only_spec()


def test_a_range_finer_than_retention_gives_the_covers_totals_everywhere(staff_client, client, truth) -> None:  # noqa: F811
    query = "?_last=30+days&_scale=hour"
    girls = sum(back + 1 for back in range(DAYS)) + 2
    boys = DAYS
    shown = staff_client.get(page(NAME) + query)
    exported = staff_client.get(page(NAME) + "data.json" + query).json()
    # The card, the breakdown's table and chart, and the JSON: the cover's true total.
    assert exported["summary"]["total"] == girls + boys == number(card(shown, "total"))
    assert {row[0]: number(row[1]) for row in table_rows(shown, "staste-breakdown-table")[1:]} == {
        "girl": girls,
        "boy": boys,
    }
    assert {row[0]: row[1] for row in exported["breakdown"]["rows"]} == {"girl": girls, "boy": boys}
    # The line says which hours are gone, and draws them as gaps: null, empty, "expired".
    line = exported["line"]["chart"]
    assert len(line["expired"]) > 300 and all(line["datasets"][0]["data"][i] is None for i in line["expired"])
    assert "have expired" in text(shown) and "still count them, from coarser buckets" in text(shown)
    header, *rows = csv_rows(staff_client, query, "line")
    assert header == ["hour", "total", "status"]
    statuses = {row[2] for row in rows}
    assert statuses == {"", "expired", "partial"}
    assert all(row[1] == "" for row in rows if row[2] == "expired")
    assert rows[-1][0] == NOW.replace(minute=0, tzinfo=formats.conf.time_zone()).isoformat()
    held = sum(number(row[1]) for row in rows)
    assert held == sum(d for d in line["datasets"][0]["data"] if d is not None) < girls + boys
    # The template tag and the public pie read the same cover.
    assert render(f'{{% staste_total "{NAME}" last="30 days" %}}') == formats.display(girls + boys)
    pie = public(client, "/pie/?last=30+days")
    assert dict(zip(pie["labels"], pie["datasets"][0]["data"], strict=True)) == {"girl": girls, "boy": boys}
    # The public line by hour: the same held numbers, the same gaps (no 0 for an expired hour).
    hourly = public(client, "/lines/?last=30+days&scale=hour&hide_total=0")
    assert hourly["expired"] == line["expired"] and hourly["partial"] == line["partial"]


def test_an_expired_span_is_expired_everywhere_never_0(staff_client, client, truth) -> None:  # noqa: F811
    day = NOW - datetime.timedelta(days=20)
    query = "?_span=" + day.strftime("%Y-%m-%dT10")
    shown = staff_client.get(page(NAME) + query)
    assert card(shown, "total") == "expired" and "Redis no longer holds this hour" in text(shown)
    exported = staff_client.get(page(NAME) + "data.json" + query).json()
    assert exported["summary"] is None and exported["status"] == "expired"
    assert exported["shown"]["cards"][0]["value"] == "expired"
    assert exported["breakdown"] is None
    assert exported["line"]["chart"]["expired"] and {row[1] for row in exported["line"]["rows"]} == {None}
    tag = f'{{% staste_total "{NAME}" year={day.year} month={day.month} day={day.day} hour=10 %}}'
    assert render(tag) == "—"  # no number: not 0, nor a gap in the sentence
    # The day still holds it (its own bucket): the hour's line says "expired", not 0.
    hours = staff_client.get(page(NAME) + day.strftime("data.json?_span=%Y-%m-%d")).json()
    assert hours["summary"]["total"] == 22 and 10 in hours["line"]["chart"]["expired"]
    _header, *rows = csv_rows(staff_client, day.strftime("?_span=%Y-%m-%d"), "line")
    assert rows[10][1:] == ["", "expired"]
    pie = public(client, day.strftime("/pie/?timespan__year=%Y&timespan__month=%m&timespan__day=%d&timespan__hour=10"))
    assert pie["status"] == "expired" and set(pie["datasets"][0]["data"]) == {None}


def test_a_future_span_is_not_begun_everywhere(staff_client, client, truth) -> None:  # noqa: F811
    for span in ("2027", (NOW + datetime.timedelta(days=1)).strftime("%Y-%m-%d")):
        shown = staff_client.get(page(NAME) + "?_span=" + span)
        assert shown.status_code == 200 and card(shown, "total") == "not begun"
        assert "has not begun" in text(shown) and "staste-line-data" not in text(shown)
        exported = staff_client.get(page(NAME) + "data.json?_span=" + span).json()
        assert exported["summary"] is None and exported["status"] == "future"
        assert exported["line"] is None and exported["breakdown"] is None
    tomorrow = NOW + datetime.timedelta(days=1)
    tag = f'{{% staste_total "{NAME}" year={tomorrow.year} month={tomorrow.month} day={tomorrow.day} %}}'
    assert render(tag) == "—"
    assert render(f'{{% staste_total "{NAME}" year=2027 %}}') == "—"
    timeline = public(client, "/lines/?timespan__year=2027")
    assert timeline["labels"] == []  # nothing drawn for months that have not begun
    pie = public(client, "/pie/?timespan__year=2027")
    assert pie["status"] == "future" and set(pie["datasets"][0]["data"]) == {None}


def test_the_partial_current_bucket_is_marked_everywhere(staff_client, client, truth) -> None:  # noqa: F811
    query = "?_last=24+hours"
    shown = staff_client.get(page(NAME) + query)
    exported = staff_client.get(page(NAME) + "data.json" + query).json()
    line = exported["line"]["chart"]
    assert line["partial"] == [23] and line["datasets"][0]["data"][23] == 2
    assert exported["summary"]["total"] == 2 + 2 == number(card(shown, "total"))  # 10:00 and 11:15 today
    _header, *rows = csv_rows(staff_client, query, "line")
    assert rows[-1][1:] == ["2", "partial"] and sum(number(row[1]) for row in rows) == 4
    assert "partial" in table_rows(shown, "staste-line-table")[-1][0]
    assert render(f'{{% staste_total "{NAME}" last="24 hours" %}}') == "4"
    lines = public(client, "/lines/?last=24+hours&hide_total=0")
    assert lines["partial"] == [23]  # dashed, not a cliff
    tagged = Page(render(f'{{% staste_chart "{NAME}" "line" last="24 hours" %}}')).only_spec()
    assert tagged["partial"] == [23] and tagged["datasets"][0]["data"] == line["datasets"][0]["data"]


def test_compare_mode_gives_the_same_previous_numbers_everywhere(staff_client, client, truth) -> None:  # noqa: F811
    query = "?_last=7+days&_compare=previous"
    shown = staff_client.get(page(NAME) + query)
    exported = staff_client.get(page(NAME) + "data.json" + query).json()
    now_total = sum(back + 2 for back in range(7)) + 2
    assert exported["summary"]["total"] == now_total == number(card(shown, "total"))
    before = exported["previous"]["summary"]["total"]
    # Days 7 to 13 back, the last (as today) prorated up to 11:30 (11.5 of its 24 hours).
    assert before == pytest.approx(sum(back + 2 for back in range(8, 14)) + 9 * 11.5 / 24)
    cards = {item["key"]: item for item in exported["shown"]["cards"]}
    shown_before = formats.display(formats.like(before, now_total))  # a prorated count, shown whole
    assert cards["total"]["previous"] == shown_before and f"vs {shown_before}" in text(shown)
    header, *rows = csv_rows(staff_client, query, "line")
    assert header[:2] == ["day", "total"] and "total (previous period)" in header[2]
    assert sum(number(row[1]) for row in rows) == now_total
    assert render(f'{{% staste_total "{NAME}" last="7 days" %}}') == str(now_total)
    lines = public(client, "/lines/?last=7+days&hide_total=0")
    assert sum(value or 0 for value in lines["datasets"][0]["data"]) == now_total


def test_thirty_days_by_week_says_it_reads_whole_weeks(staff_client, truth) -> None:  # noqa: F811
    shown = staff_client.get(page(NAME) + "?_last=30+days&_scale=week")
    # 2026-12-06 is a Sunday: the weeks from Monday 2026-11-02 hold 35 days, not 30.
    assert "By week: whole weeks from Monday 2026-11-02 to Sunday 2026-12-06, 35 days." in text(shown)
    assert 'staste-chip staste-active">Last 30 days' not in text(shown)  # the chip is not what is shown
    exported = staff_client.get(page(NAME) + "data.json?_last=30+days&_scale=week").json()
    assert exported["summary"]["total"] == sum(number(row[1]) for row in exported["breakdown"]["rows"])


def test_data_json_refuses_a_staff_user_without_the_permission_in_json(client) -> None:
    client.force_login(make_user("nobody", staff=True, permitted=False))
    refused = client.get(page("anything") + "data.json")
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    assert "staste.view_metrica" in refused.json()["error"]
    as_csv = client.get(page("anything") + "data.csv")
    assert as_csv.status_code == 403 and as_csv["Content-Type"].startswith("text/plain")
    assert client.get("/admin/staste/data.json").json()["error"]


def test_a_value_has_one_colour_slot_in_the_admin_and_in_a_public_chart(staff_client, client, truth) -> None:  # noqa: F811
    admin = staff_client.get(page(NAME) + "data.json?_span=all").json()["breakdown"]["chart"]
    pie = public(client, "/pie/")
    assert dict(zip(admin["labels"], admin["colors"], strict=True)) == {"girl": 1, "boy": 0}  # the declared order
    assert dict(zip(pie["labels"], pie["colors"], strict=True)) == {"girl": 1, "boy": 0}
    filtered = staff_client.get(page(NAME) + "data.json?_span=all&_by=gender&gender=boy").json()["breakdown"]["chart"]
    assert dict(zip(filtered["labels"], filtered["colors"], strict=True)) == {"boy": 0}


def test_a_quick_range_steps_back_and_forth_by_its_own_length(staff_client, truth) -> None:  # noqa: F811
    now = staff_client.get(page(NAME) + "?_last=7+days")
    back = re.search(r'class="staste-step staste-previous" href="([^"]+)"', text(now)).group(1).replace("&amp;", "&")
    assert back == f"/admin/staste/{NAME}/?_last=7+days&_until=2026-11-29"
    assert 'staste-step staste-disabled" aria-hidden="true">&rsaquo;' in text(now)  # nothing after now
    earlier = staff_client.get(back)
    exported = staff_client.get(back.replace(f"{NAME}/?", f"{NAME}/data.json?")).json()
    assert exported["shown"]["since"] == "2026-11-23" and exported["shown"]["until"] == "2026-11-29"
    assert exported["summary"]["total"] == sum(back + 2 for back in range(7, 14))  # days 7 to 13 back
    assert exported["line"]["chart"]["partial"] == []  # over: no live refresh, no partial bucket
    assert "staste-live-config" not in text(earlier)
    forward = re.search(r'class="staste-step staste-next" href="([^"]+)"', text(earlier)).group(1)
    assert forward.replace("&amp;", "&") == f"/admin/staste/{NAME}/?_last=7+days"  # up to now again
    assert staff_client.get(page(NAME) + "?_span=2026&_until=2026-11-29").status_code == 400


def test_compare_mode_draws_the_previous_unique_ids_in_line_and_table(staff_client, register, clock) -> None:  # noqa: F811
    clock.set(NOW)
    ids = register(Metrica(name="test_truth_ids", axes=[("gender", Axis(choices=["boy", "girl"]))], uniques=True))
    for back in range(14):
        for person in range(back % 4 + 1):
            ids.kick(date=NOW - datetime.timedelta(days=back, hours=1), gender="girl", unique=f"p{person}")
    exported = staff_client.get("/admin/staste/test_truth_ids/data.json?_last=7+days&_compare=previous").json()
    header = exported["line"]["header"]
    assert "uniques (previous period)" in header
    column = header.index("uniques (previous period)")
    # bucket i over bucket i: the ids of day 13 back under day 6 back, ..., of day 7 back under today
    assert [row[column] for row in exported["line"]["rows"]] == [(back % 4) + 1 for back in range(13, 6, -1)]
    shown = staff_client.get("/admin/staste/test_truth_ids/?_last=7+days&_compare=previous")
    assert "uniques (previous period)" in table_rows(shown, "staste-line-table")[0]


def test_two_values_of_one_axis_are_refused_not_silently_the_last(staff_client, truth) -> None:  # noqa: F811
    response = staff_client.get(page(NAME) + "?gender=girl&gender=boy")
    assert response.status_code == 400
    assert "give one value for gender, not &#x27;girl&#x27;, &#x27;boy&#x27;" in text(response)
    assert staff_client.get(page(NAME) + "data.json?gender=girl&gender=boy").status_code == 400
