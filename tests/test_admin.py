"""The staste section of the admin, through Django's test client against a real Redis."""

from __future__ import annotations

import csv
import datetime
import html
import io
import json
import re
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from staste import conf, formats
from staste.adminviews.metrica import display
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.charts.options import ChartOptions
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips

pytestmark = pytest.mark.django_db

D = datetime.datetime
HOSTILE = ["<script>alert(1)</script>", "\"quoted' &amp;", "</script><script>alert(2)</script>"]


# -- fixtures ------------------------------------------------------------------------------------


def make_user(username: str, *, staff: bool, permitted: bool = False, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password=None, is_staff=staff, is_superuser=superuser)
    if permitted:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="staste", codename="view_metrica"))
    return user


@pytest.fixture
def viewer() -> User:
    return make_user("viewer", staff=True, permitted=True)


@pytest.fixture
def staff_client(client: Client, viewer: User) -> Client:
    client.force_login(viewer)
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
        if metrica.name in registry and registry.get(metrica.name) is metrica:
            registry.unregister(metrica)


@pytest.fixture
def visits(register) -> Metrica:
    metrica = register(
        Metrica(
            name="test_visits",
            axes=[("gender", Axis(choices=["boy", "girl"])), ("page", StoredChoiceAxis())],
            title="Test visits",
            description="Visits of the test site",
            category="Testing",
        )
    )
    now = conf.local()
    metrica.kick(date=now, gender="girl", page="/home")
    metrica.kick(date=now, gender="girl", page="/about")
    metrica.kick(date=now, gender="boy", page="/home")
    metrica.kick(date=D(2024, 3, 10, 14, 5), gender="boy", page="/home")
    metrica.kick(date=D(2024, 3, 10, 15, 0), gender="girl", page="/shop")
    metrica.kick(date=D(2023, 7, 1), gender="girl", page="/home")
    return metrica


@pytest.fixture
def timings(register) -> AveragedMetrica:
    metrica = register(
        AveragedMetrica(name="test_timings", axes=[("view", StoredChoiceAxis())], multiplier=1000, category="Testing")
    )
    metrica.kick(value=0.25, view="home")
    metrica.kick(value=0.75, view="home")
    metrica.kick(value=2.0, view="shop")
    return metrica


def page(name: str) -> str:
    return f"/admin/staste/{name}/"


def text(response) -> str:
    return response.content.decode()


def json_script(response, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', text(response), re.S)
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


def table_rows(response, table_id: str) -> list[list[str]]:
    body = text(response).split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr(?: class=\"[^\"]*\")?>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells])
    return rows


# -- permissions ---------------------------------------------------------------------------------

URLS = ["/admin/staste/", page("guest_visits_gender_age"), page("pocket_money") + "data.json"]
URLS.append(page("pocket_money") + "data.csv")


@pytest.mark.parametrize("url", URLS)
def test_anonymous_users_are_sent_to_the_admin_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("url", URLS)
def test_users_who_are_not_staff_are_sent_to_the_admin_login(client: Client, url: str) -> None:
    client.force_login(make_user("someone", staff=False, permitted=True))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", URLS)
def test_staff_without_the_permission_get_403(client: Client, url: str) -> None:
    client.force_login(make_user("clerk", staff=True))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", URLS)
def test_staff_with_the_permission_and_superusers_get_the_pages(client: Client, url: str) -> None:
    client.force_login(make_user("viewer", staff=True, permitted=True))
    assert client.get(url).status_code == 200
    client.force_login(User.objects.create_superuser("root", password=None))
    assert client.get(url).status_code == 200


def test_the_admin_index_and_sidebar_list_statistics_only_for_permitted_staff(client: Client) -> None:
    client.force_login(make_user("clerk", staff=True))
    assert "Statistics" not in text(client.get("/admin/"))
    client.force_login(make_user("viewer", staff=True, permitted=True))
    index = text(client.get("/admin/"))
    assert '<a href="/admin/staste/" class="section"' in index
    assert '<a href="/admin/staste/">Metricas</a>' in index
    sidebar = text(client.get("/admin/staste/"))
    assert 'id="nav-sidebar"' in sidebar
    assert "app-staste" in sidebar


def test_the_model_has_no_add_change_or_delete(staff_client: Client) -> None:
    assert staff_client.get("/admin/staste/metrica/add/").status_code == 404
    permissions = Permission.objects.filter(content_type__app_label="staste", content_type__model="metrica")
    assert list(permissions.values_list("codename", flat=True)) == ["view_metrica"]


# -- the dashboard -------------------------------------------------------------------------------


def test_dashboard_groups_metricas_with_their_numbers_and_a_chart(staff_client: Client, visits, timings) -> None:
    response = staff_client.get("/admin/staste/")
    assert response.status_code == 200
    body = text(response)
    assert "<h2>Testing</h2>" in body
    assert "<h2>Guests</h2>" in body  # tests.statsapp's metricas, found by autodiscovery
    assert '<a href="/admin/staste/test_visits/">Test visits</a>' in body
    assert "Visits of the test site" in body
    row = body.split('data-metrica="test_visits"', 1)[1].split("</tr>", 1)[0]

    def shown(cell: str) -> str:  # a number cell's text, its lines joined as the live refresh does
        return html.unescape(re.sub(r"<[^>]+>", "", cell))

    numbers = re.findall(
        r'<span class="staste-(?:today|all)-value">(.*?)</span>(?:<span class="staste-change|</td>)', row
    )
    assert [shown(cell) for cell in numbers] == ["3", "6"]  # today, all time
    assert 'title="Axis">gender</span>' in row and 'title="StoredChoiceAxis">page</span>' in row
    timing_row = body.split('data-metrica="test_timings"', 1)[1].split("</tr>", 1)[0]
    cells = re.findall(
        r'<span class="staste-(?:today|all)-value">(.*?)</span>(?:<span class="staste-change|</td>)', timing_row
    )
    assert [shown(cell) for cell in cells] == ["3 events · avg 1", "3 events · avg 1"]
    chart_id = re.search(r'data-staste-chart="(staste-spark-\d+)"', row).group(1)
    spark = json_script(response, chart_id)
    assert spark["compact"] is True
    assert spark["type"] == "line"
    assert len(spark["labels"]) == 24
    assert spark["datasets"][0]["data"][-1] == 3
    assert "staste/vendor/chartjs/chart.umd.min.js" in body and "staste/charts.js" in body
    assert "<script>" not in body.replace('<script src="', "")  # no inline code


@pytest.mark.single_redis("a cluster pipeline costs one round trip per node")
def test_dashboard_with_fifty_metricas_is_one_round_trip(staff_client: Client, register) -> None:
    for i in range(50):
        metrica = register(
            AveragedMetrica(name=f"bulk_{i:02d}", axes=[("kind", Axis(choices=["a", "b"]))], category=f"Bulk {i % 5}")
        )
        metrica.kick(value=i, kind="a")
    with count_round_trips() as trips:
        response = staff_client.get("/admin/staste/")
    assert response.status_code == 200
    assert trips.count == 1
    assert text(response).count('class="staste-metrica-row"') == 50 + len([m for m in registry if "bulk" not in m.name])
    row = text(response).split('data-metrica="bulk_07"', 1)[1].split("</tr>", 1)[0]
    assert "1 event</span>" in row and "avg 7</span>" in row


def test_dashboard_reports_the_buffered_writer_and_what_it_dropped(
    staff_client: Client, visits, settings, quiet_buffer
) -> None:
    """A buffer without its thread: no flush of these kicks may outlive the test and land under
    the next test's key prefix (it did: that test's "today" counted 6 instead of 3)."""
    settings.STASTE_BUFFER_MAX_KEYS = 2
    reachable = settings.STASTE_REDIS_URL
    settings.STASTE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens: the buffer drops once full
    for page_name in ["/a", "/b", "/c", "/d", "/e", "/f"]:  # distinct kicks past the limit
        visits.kick(page=page_name, buffered=True)
    settings.STASTE_REDIS_URL = reachable
    stats = quiet_buffer.stats()
    assert stats["pending"] == 2 and stats["dropped"] == 4
    body = text(staff_client.get("/admin/staste/"))
    assert "Buffered writer" in body
    assert 'data-stat="dropped"><strong>4</strong> dropped</span>' in body
    assert 'data-stat="pending"><strong>2</strong> pending</span>' in body and 'data-stat="written">' in body
    assert "kicks were dropped" in body and 'class="staste-buffer staste-warning"' in body
    assert 'data-stat="wait_replicas"' not in body
    settings.STASTE_WAIT_REPLICAS = 2
    body = text(staff_client.get("/admin/staste/"))
    assert 'data-stat="wait_replicas">each flush confirmed by 2 replicas</span>' in body


# -- the metrica page ----------------------------------------------------------------------------


def test_metrica_page_defaults_to_the_last_30_days(staff_client: Client, visits) -> None:
    response = staff_client.get(page("test_visits"))
    assert response.status_code == 200
    line = json_script(response, "staste-line-data")
    assert line["x"] == "day" and len(line["labels"]) == 30
    assert line["datasets"] == [{"label": "total", "data": [0] * 29 + [3], "axis": "y", "measure": "total"}]
    pie = json_script(response, "staste-breakdown-data")
    # largest first, with each value's share
    assert (pie["type"], pie["x"], pie["labels"]) == ("pie", "gender", ["girl", "boy"])
    assert pie["datasets"][0]["data"] == [2, 1]
    assert pie["shares"] == pytest.approx([200 / 3, 100 / 3])
    assert table_rows(response, "staste-breakdown-table") == [
        ["gender", "total ↓", "share"],
        ["girl", "2", "66.7%"],
        ["boy", "1", "33.3%"],
    ]
    assert "<dt>Total</dt><dd>3</dd>" in text(response)
    assert 'class="staste-chip staste-active">Last 30 days</a>' in text(response)
    assert '<a href="/admin/staste/">Statistics</a>' in text(response)  # breadcrumbs
    assert 'id="nav-sidebar"' in text(response)


def test_filters_combine_and_the_dropdowns_list_choices_and_stored_values(staff_client: Client, visits) -> None:
    response = staff_client.get(page("test_visits") + "?gender=girl&_by=page&_span=all")
    assert response.status_code == 200
    pie = json_script(response, "staste-breakdown-data")
    assert dict(zip(pie["labels"], pie["datasets"][0]["data"], strict=True)) == {"/about": 1, "/home": 2, "/shop": 1}
    body = text(response)
    assert '<option value="girl" selected>girl</option>' in body
    assert '<option value="/shop">/shop</option>' in body
    assert "<dt>Total</dt><dd>4</dd>" in body
    both = staff_client.get(page("test_visits") + "?gender=girl&page=%2Fhome&_span=all")
    assert "<dt>Total</dt><dd>2</dd>" in text(both)
    assert '<option value="/home" selected>/home</option>' in text(both)
    # every row of the breakdown links to its filter, keeping the others (the axis is then one
    # value: the breakdown moves on to an axis still open, here none is left)
    assert 'href="/admin/staste/test_visits/?gender=girl&amp;page=%2Fshop&amp;_span=all"' in body
    assert pie["links"][pie["labels"].index("/shop")] == "/admin/staste/test_visits/?gender=girl&page=%2Fshop&_span=all"


def test_timespan_drill_down_with_breadcrumbs(staff_client: Client, visits) -> None:
    years = staff_client.get(page("test_visits") + "?_span=all")
    line = json_script(years, "staste-line-data")
    this_year = str(conf.local().year)
    assert line["labels"] == sorted({"2023", "2024", this_year})
    assert '<a href="/admin/staste/test_visits/?_span=2024">2024</a>' in text(years)
    month = staff_client.get(page("test_visits") + "?_span=2024-03")
    line = json_script(month, "staste-line-data")
    assert line["x"] == "day" and len(line["labels"]) == 31
    assert line["datasets"][0]["data"][9] == 2
    assert '<a href="/admin/staste/test_visits/?_span=2024-03-10">2024-03-10</a>' in text(month)
    crumbs = text(month).split('class="staste-span-crumbs">', 1)[1].split("</div>", 1)[0]
    shown = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", crumbs))).strip()
    assert shown == "All time \u203a 2024 \u203a March"
    day = staff_client.get(page("test_visits") + "?_span=2024-03-10&gender=boy")
    line = json_script(day, "staste-line-data")
    # 15:00 reads nothing and is past the hours' retention: expired, not 0
    assert line["x"] == "hour" and line["datasets"][0]["data"][14:16] == [1, None]
    assert 15 in line["expired"] and 14 not in line["expired"]
    hour = staff_client.get(page("test_visits") + "?_span=2024-03-10T14")
    assert json_script(hour, "staste-line-data")["datasets"][0]["data"][5] == 1
    minute = staff_client.get(page("test_visits") + "?_span=2024-03-10T14:05")
    assert minute.status_code == 200
    assert "staste-line-data" not in text(minute)  # a minute has nothing finer
    assert "<dt>Total</dt><dd>1</dd>" in text(minute)


@pytest.mark.parametrize(
    ("last", "scale", "buckets"),
    [
        ("60 minutes", "minute", 60),
        ("24 hours", "hour", 24),
        ("12 weeks", "week", 12),
        ("12 months", "month", 12),
        ("3 years", "year", 3),
    ],
)
def test_quick_ranges(staff_client: Client, visits, last: str, scale: str, buckets: int) -> None:
    response = staff_client.get(page("test_visits") + f"?_last={last}")
    assert response.status_code == 200
    line = json_script(response, "staste-line-data")
    assert (line["x"], len(line["labels"])) == (scale, buckets)
    assert line["datasets"][0]["data"][-1] >= 3
    assert sum(json_script(response, "staste-breakdown-data")["datasets"][0]["data"]) == sum(
        line["datasets"][0]["data"]
    )


def test_a_range_drawn_by_week(staff_client: Client, visits) -> None:
    response = staff_client.get(page("test_visits") + "?_last=30+days")
    body = text(response)
    by_week = re.search(r'href="([^"]*_scale=week[^"]*)"[^>]*>by week<', html.unescape(body))
    assert by_week and ">by day<" in body and ">by hour<" in body and ">by minute<" not in body  # 43200 minutes
    response = staff_client.get(by_week.group(1))
    assert response.status_code == 200
    line = json_script(response, "staste-line-data")
    today = conf.local().date()
    assert line["x"] == "week" and 5 <= len(line["labels"]) <= 6
    assert line["labels"][-1] == today.strftime("%G-W%V")
    assert line["datasets"][0]["data"][-1] >= 3
    breakdown = json_script(response, "staste-breakdown-data")
    assert sum(breakdown["datasets"][0]["data"]) == sum(line["datasets"][0]["data"])
    # The filter form keeps the scale; a quick range starts again at its own unit.
    assert '<input type="hidden" name="_scale" value="week">' in text(response)
    ranged = staff_client.get(page("test_visits") + "?_last=12+weeks")
    assert json_script(ranged, "staste-line-data")["x"] == "week"
    own = staff_client.get(page("test_visits") + "?_last=30+days&_scale=day")  # its own unit: the default
    assert json_script(own, "staste-line-data")["x"] == "day"


def test_averaged_metrica_page_shows_counts_averages_and_measures(staff_client: Client, timings) -> None:
    response = staff_client.get(page("test_timings") + "?_span=all")
    body = text(response)
    assert "<dt>Events</dt><dd>3</dd>" in body and "<dt>Average</dt><dd>1</dd>" in body
    assert "<dt>Total</dt><dd>3</dd>" in body
    line = json_script(response, "staste-line-data")
    assert [d["axis"] for d in line["datasets"]] == ["y", "y1"]
    averages = staff_client.get(page("test_timings") + "?_span=all&_measure=average")
    pie = json_script(averages, "staste-breakdown-data")
    assert (pie["type"], pie["labels"], pie["datasets"][0]["data"]) == ("bar", ["shop", "home"], [2.0, 0.5])
    ranged = staff_client.get(page("test_timings") + "?_last=24+hours")
    assert "<dt>Events</dt><dd>3</dd>" in text(ranged) and "<dt>Average</dt><dd>1</dd>" in text(ranged)


def test_hierarchical_axes_drill_down_level_by_level(staff_client: Client, register) -> None:
    clicks = register(Metrica(name="test_clicks", axes=[("label", HierarchicalAxis())]))
    clicks.kick(label=("out", "se", "google"))
    clicks.kick(label=("out", "se", "bing"))
    clicks.kick(label=("out", "news"))
    clicks.kick(label=("in",))
    top = staff_client.get(page("test_clicks") + "?_span=all")
    assert '<option value="out">out</option>' in text(top)
    pie = json_script(top, "staste-breakdown-data")
    assert dict(zip(pie["labels"], pie["datasets"][0]["data"], strict=True)) == {"in": 1, "out": 3}
    assert 'href="/admin/staste/test_clicks/?label=out&amp;_span=all"' in text(top)
    below = staff_client.get(page("test_clicks") + "?label=out&label=se&_span=all")
    body = text(below)
    assert '<input type="hidden" name="label" value="out">' in body
    assert '<option value="google">google</option>' in body
    assert '<option value="">All under out/se</option>' in body
    assert '<a href="/admin/staste/test_clicks/?label=out&amp;_span=all">out</a>' in body
    pie = json_script(below, "staste-breakdown-data")
    assert dict(zip(pie["labels"], pie["datasets"][0]["data"], strict=True)) == {"out/se/bing": 1, "out/se/google": 1}
    assert "<dt>Total</dt><dd>2</dd>" in body


def test_a_path_with_int_parts_drills_down_to_its_decimal_text(staff_client: Client, register) -> None:
    clicks = register(Metrica(name="test_seed_clicks", axes=[("label", HierarchicalAxis())]))
    clicks.kick(label=("exp", "city", "all", 1))
    clicks.kick(label=("exp", "city", "all", 12))
    body = text(staff_client.get(page("test_seed_clicks") + "?label=exp&label=city&label=all&_span=all"))
    assert '<option value="1">1</option>' in body and '<option value="12">12</option>' in body
    leaf = staff_client.get(page("test_seed_clicks") + "?label=exp&label=city&label=all&label=1&_span=all")
    assert leaf.status_code == 200 and "<dt>Total</dt><dd>1</dd>" in text(leaf)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?colour=red", "unknown parameter &#x27;colour&#x27;"),
        ("?gender=alien", "bad filter gender="),
        ("?_span=yesterday", "bad _span"),
        ("?_span=2024-13", "out of range"),
        ("?_span=2023-02-29", "out of range"),
        ("?_span=99999", "bad _span"),
        ("?_last=forever", "bad range"),
        ("?_last=0+days", "bad range"),
        ("?_last=5000+minutes", "at most 1500 buckets"),
        ("?_last=24+hours&_span=2024", "not both"),
        ("?_span=2024&_scale=week", "give it with _last"),
        ("?_last=30+days&_scale=fortnight", "bad _scale"),
        ("?_last=30+days&_scale=minute", "at most 1500 buckets"),
        ("?_by=colour", "bad _by"),
        ("?_measure=average", "bad _measure"),
        ("?gender=" + "x" * 100_000, "bad filter gender="),
        ("?page=" + "y" * 5000, "characters long"),
        ("?page=%00%01", None),  # control characters are a value like any other
    ],
)
def test_bad_query_strings_are_a_clear_400(staff_client: Client, visits, query: str, message: str | None) -> None:
    response = staff_client.get(page("test_visits") + query)
    if message is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    body = text(response)
    error = re.search(r'<li class="error staste-bad-request">(.*?)</li>', body, re.S).group(1)
    assert message in error
    assert len(error) < 700
    assert 'id="nav-sidebar"' in body  # still the admin's page
    as_json = staff_client.get(page("test_visits") + "data.json" + query)
    assert as_json.status_code == 400 and "error" in as_json.json()
    assert staff_client.get(page("test_visits") + "data.csv" + query).status_code == 400


def test_coarse_metricas_offer_only_what_they_record(staff_client: Client, register) -> None:
    coarse = register(Metrica(name="test_coarse", axes=[], date_scales=["year", "month"]))
    coarse.kick()
    response = staff_client.get(page("test_coarse"))
    assert response.status_code == 200
    assert json_script(response, "staste-line-data")["x"] == "month"
    assert "Last 24 hours" not in text(response) and "Today" not in text(response)
    assert staff_client.get(page("test_coarse") + "?_span=2024-01-01").status_code == 400
    assert staff_client.get(page("test_coarse") + "?_last=24+hours").status_code == 400
    assert "staste-breakdown-data" not in text(response)  # no axes, no breakdown


def test_unknown_metricas_are_404(staff_client: Client) -> None:
    assert staff_client.get(page("no_such_metrica")).status_code == 404
    assert staff_client.get(page("no_such_metrica") + "data.json").status_code == 404


# -- exports -------------------------------------------------------------------------------------


def test_exports_hold_exactly_what_the_page_shows(staff_client: Client, visits) -> None:
    query = "?gender=girl&_span=2024-03&_by=page"
    shown = staff_client.get(page("test_visits") + query)
    line, pie = json_script(shown, "staste-line-data"), json_script(shown, "staste-breakdown-data")
    exported = staff_client.get(page("test_visits") + "data.json" + query)
    assert exported.status_code == 200 and exported["Content-Type"] == "application/json"
    data = exported.json()
    assert data["line"]["chart"] == line
    assert data["breakdown"]["chart"] == pie  # its links to the filter of each value included
    assert data["filters"] == {"gender": "girl"} and data["span"] == "2024-03" and data["by"] == "page"
    assert data["summary"] == {"total": 1}
    march_10 = datetime.datetime(2024, 3, 10, tzinfo=conf.time_zone()).isoformat()
    assert data["line"]["rows"][9] == [march_10, 1]  # an instant, with its offset
    # an expired day (March 2024 is past the days' retention) is "expired" on the page, blank
    # in CSV with the status "expired"; days as instants with their offset
    shown_rows = [
        [cell if cell != "expired" else "" for cell in row] + ["expired" if "expired" in row else ""]
        for row in table_rows(shown, "staste-line-table")[1:]
    ]
    rows = list(csv.reader(io.StringIO(staff_client.get(page("test_visits") + "data.csv" + query).content.decode())))
    assert [row[1:] for row in rows[1:]] == [row[1:] for row in shown_rows]
    assert rows[1] == [march_10.replace("-10T", "-01T"), "", "expired"] and rows[10] == [march_10, "1", ""]
    assert rows[0] == ["day", "total", "status"]
    breakdown = staff_client.get(page("test_visits") + "data.csv" + query + "&_table=breakdown")
    assert breakdown["Content-Disposition"] == 'attachment; filename="test_visits-breakdown.csv"'
    exported_rows = list(csv.reader(io.StringIO(breakdown.content.decode())))
    shown_rows = table_rows(shown, "staste-breakdown-table")
    assert exported_rows[0] == ["page", "total", "share"] and shown_rows[0] == ["page", "total ↓", "share"]
    assert [row[:2] for row in exported_rows[1:]] == [row[:2] for row in shown_rows[1:]]
    assert [f"{float(row[2]):.1f}%" for row in exported_rows[1:]] == [row[2] for row in shown_rows[1:]]
    assert staff_client.get(page("test_visits") + "data.csv?_table=nope").status_code == 400


#: Values that start a formula in a cell split on `;`, a tab or a line break, and what CSV keeps of them.
HOSTILE_CELLS = ["x;=1+1", "x;-1", "a\n=1", "y,@z", "plain;ok"]
SAFE_CELLS = ["x;'=1+1", "x;'-1", "a\n'=1", "y,'@z", "plain;ok"]


def test_csv_export_defuses_formulas(staff_client: Client, register) -> None:
    sheet = register(Metrica(name="test_sheet", axes=[("cell", StoredChoiceAxis())]))
    for value in ["=1+2", "+SUM(A1)", "-3", "@cmd", "\tx", "\rx", "plain", "a=b"]:
        sheet.kick(cell=value)
    response = staff_client.get(page("test_sheet") + "data.csv?_table=breakdown&_span=all")
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    labels = sorted(row[0] for row in rows[1:])
    assert labels == sorted(["'=1+2", "'+SUM(A1)", "'-3", "'@cmd", "'\tx", "'\rx", "plain", "a=b"])
    assert all(row[1] == "1" for row in rows[1:])


def test_csv_export_read_by_a_semicolon_spreadsheet_runs_nothing(staff_client: Client, register) -> None:
    """Issue 13: `x;=1+1` was exported bare, and a spreadsheet splitting on `;` ran `=1+1,1`."""
    sheet = register(Metrica(name="test_semicolons", axes=[("cell", StoredChoiceAxis())]))
    for value in HOSTILE_CELLS:
        sheet.kick(cell=value)
    for table in ("line", "breakdown"):
        response = staff_client.get(page("test_semicolons") + f"data.csv?_table={table}&_by=cell")
        body = response.content.decode()
        assert response.status_code == 200 and body.startswith('"')  # every text cell quoted
        for delimiter in (";", "\t"):
            cells = [cell for row in csv.reader(io.StringIO(body, newline=""), delimiter=delimiter) for cell in row]
            assert cells and not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    rows = list(csv.reader(io.StringIO(body, newline="")))  # the breakdown read with commas, as written
    assert sorted(row[0] for row in rows[1:]) == sorted(SAFE_CELLS)


# -- escaping ------------------------------------------------------------------------------------


def test_hostile_axis_values_are_escaped_in_html_json_and_csv(staff_client: Client, register) -> None:
    hostile = register(
        Metrica(
            name="test_hostile", axes=[("name", StoredChoiceAxis()), ("path", HierarchicalAxis())], title="<b>T</b>"
        )
    )
    for value in HOSTILE:
        hostile.kick(name=value, path=(value, value))
    response = staff_client.get(page("test_hostile") + "?_span=all")
    assert response.status_code == 200
    body = text(response)
    for value in HOSTILE:
        assert value not in body
    assert "<b>T</b>" not in body and "&lt;b&gt;T&lt;/b&gt;" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # shown, as text
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", body, re.S)
    assert all("alert" not in code or "\\u003C" in code for code in scripts)
    assert sorted(json_script(response, "staste-breakdown-data")["labels"]) == sorted(HOSTILE)
    filtered = staff_client.get(page("test_hostile") + "?" + "&".join(f"path={v}" for v in ["x"]) + "&_span=all")
    assert filtered.status_code == 200
    deep = staff_client.get(page("test_hostile"), {"path": [HOSTILE[2]], "name": HOSTILE[0], "_span": "all"})
    assert deep.status_code == 200
    assert HOSTILE[2] not in text(deep) and HOSTILE[0] not in text(deep)
    exported = staff_client.get(page("test_hostile") + "data.json?_span=all")
    assert b"<" not in exported.content and b">" not in exported.content
    assert sorted(exported.json()["breakdown"]["chart"]["labels"]) == sorted(HOSTILE)
    as_csv = staff_client.get(page("test_hostile") + "data.csv?_table=breakdown&_span=all")
    assert sorted(row[0] for row in list(csv.reader(io.StringIO(as_csv.content.decode())))[1:]) == sorted(HOSTILE)
    dashboard = text(staff_client.get("/admin/staste/"))
    assert "<b>T</b>" not in dashboard


def test_bad_filter_values_are_escaped_in_the_error(staff_client: Client, visits) -> None:
    response = staff_client.get(page("test_visits"), {"gender": HOSTILE[2]})
    assert response.status_code == 400
    assert HOSTILE[2] not in text(response)
    assert "&lt;/script&gt;" in text(response)


# -- Redis outages and query cost ---------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/staste/", page("test_visits"), page("test_visits") + "?_span=all"])
def test_pages_render_a_message_naming_redis_when_it_is_down(staff_client: Client, visits, settings, url) -> None:
    settings.STASTE_REDIS_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    response = staff_client.get(url)
    assert response.status_code == 200
    message = re.search(r'<li class="error staste-redis-error">(.*?)</li>', text(response), re.S).group(1)
    assert "redis://127.0.0.1:9/0" in message
    assert "Test visits" in text(response)
    json_response = staff_client.get(page("test_visits") + "data.json")
    assert json_response.status_code == 503
    assert "redis://127.0.0.1:9/0" in json_response.json()["error"]


@pytest.mark.parametrize(
    "query",
    [
        "?_last=60+minutes",
        "?_last=24+hours",
        "?_last=30+days",
        "?_last=12+months",
        "?_span=all",
        "?_span=2024",
        "?_span=2024-03-10",
        "?gender=girl&_by=page&_last=30+days",
    ],
)
def test_a_metrica_page_costs_a_handful_of_round_trips_whatever_the_buckets(
    staff_client: Client, visits, timings, query: str
) -> None:
    """One pipeline, scripts included (EVALSHA in the pipeline; loaded again only if Redis lost them)."""
    with count_round_trips() as trips:
        assert staff_client.get(page("test_visits") + query).status_code == 200
    if not CLUSTER_MODE:
        assert trips.count <= 2
    with count_round_trips() as trips:
        assert staff_client.get(page("test_timings") + query.replace("gender=girl&_by=page&", "")).status_code == 200
    if not CLUSTER_MODE:
        assert trips.count <= 2
    plain = Metrica(name="test_plain", axes=[("gender", Axis(choices=["boy", "girl"]))])
    registry.register(plain)
    try:
        with count_round_trips() as trips:
            assert staff_client.get(page("test_plain") + query.replace("&_by=page", "")).status_code == 200
        if not CLUSTER_MODE:  # all time lists the stored years with a script
            assert trips.count == 1
    finally:
        registry.unregister(plain)


def test_percentiles_are_shown_beside_the_average(staff_client: Client, register) -> None:
    latency = register(AveragedMetrica(name="test_latency", axes=[("view", StoredChoiceAxis())], histogram=True))
    for ms in range(1, 101):
        latency.kick(value=ms, view="home" if ms % 2 else "shop")
    today = latency.values().timespan(*conf.local().timetuple()[:3])
    expected = today.percentiles([50, 95, 99])
    assert expected[50] < expected[95] < expected[99]  # a real spread, not one bucket
    body = text(staff_client.get(page("test_latency") + "?_span=" + conf.local().strftime("%Y-%m-%d")))
    for p in (50, 95, 99):
        assert f"<dt>p{p}</dt><dd>{display(expected[p])}</dd>" in body
    ranged = text(staff_client.get(page("test_latency") + "?_last=24+hours&view=home"))
    home = latency.filter(view="home").percentiles([95])[95]
    assert f"<dt>p95</dt><dd>{display(home)}</dd>" in ranged
    exported = staff_client.get(page("test_latency") + "data.json?_last=24+hours").json()
    assert exported["summary"]["percentiles"] == {f"p{p}": expected[p] for p in (50, 95, 99)}
    dashboard = text(staff_client.get("/admin/staste/"))
    row = dashboard.split('data-metrica="test_latency"', 1)[1].split("</tr>", 1)[0]
    assert f"p95 {display(expected[95])}" in row


NASTY = [
    "",
    " ",
    "\x00",
    "%ff",
    "\ud7ff",
    "💥",
    "a" * 3000,
    "-1",
    "1e400",
    "2024-02-30",
    "2024-00",
    "0000",
    "9999-12-31T23:59",
    "10000",
    "NaN",
    "../../etc",
    "all",
    "None",
    "[]",
    "{}",
    "'",
    '"',
    "\\",
    "|",
    "/",
    "*",
]


@pytest.mark.parametrize("param", ["gender", "page", "_span", "_last", "_by", "_measure", "unknown", "_table"])
def test_no_query_string_value_is_a_server_error(staff_client: Client, visits, timings, param: str) -> None:
    for value in NASTY:
        for url in (page("test_visits"), page("test_timings") + "data.csv"):
            response = staff_client.get(url, {param: value})
            assert response.status_code in (200, 400), (url, param, value, response.status_code)
    raw = staff_client.get(page("test_visits") + "?gender=%ff%fe&_span=%c3%28")  # not UTF-8
    assert raw.status_code == 400


def test_a_range_total_is_rounded_by_one_rule_everywhere(staff_client: Client, register) -> None:
    """Issue 11: the admin rounded to len(str(multiplier)) decimals, the template tags to log10."""
    money = register(AveragedMetrica(name="test_money", multiplier=100))
    today = conf.local()
    money.kick(value=0.1, date=today - datetime.timedelta(days=1))
    money.kick(value=0.2, date=today)
    noisy = 0.1 + 0.2  # what adding the day buckets gives
    assert noisy != 0.3
    summary = staff_client.get(page("test_money") + "data.json?_last=30+days").json()["summary"]
    tag = ChartOptions.parse(money, "total", {"last": "30 days"}).number()
    average = ChartOptions.parse(money, "average", {"last": "30 days"}).number()
    assert summary["total"] == tag == formats.rounded(noisy, 100) == 0.3
    assert noisy / 2 != 0.15
    assert summary["average"] == average == formats.rounded(noisy / 2, 100, average=True) == 0.15
