"""The Performance pages and the numbers behind them: staste.performance read at pinned dates (exact
numbers), and the admin pages through real requests (permissions, one round trip, the page, its
JSON and CSV agreeing, sorting and ranking, compare, bad input, Redis down)."""

from __future__ import annotations

import csv
import datetime
import html as entities
import io
import json
import re
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

import staste
from staste import buffer, database, middleware, performance, timing
from staste.performance import Window
from staste.registration import registry
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips

DAY = (2024, 3, 9)
VIEWS = "tests.insight_app.views"
SAME, NONE, FAILING = f"{VIEWS}.same [same]", f"{VIEWS}.none [none]", f"{VIEWS}.failing [failing]"


@pytest.fixture(autouse=True)
def isolated(settings, monkeypatch) -> Iterator[None]:
    settings.MIDDLEWARE = [middleware.PATH, *settings.MIDDLEWARE]
    saved = registry.save()
    monkeypatch.setattr(buffer, "default", buffer.Buffer(background=False))
    yield
    registry.restore(saved)
    middleware._metricas.clear()


def at(hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(*DAY, hour, minute, tzinfo=datetime.UTC)


def request(view: str, ms: float, when: datetime.datetime, status: str = "2xx", queries: int = 0,
            db_ms: float = 0.0, repeated: int = 0) -> None:  # fmt: skip
    """What the middleware records for one request, kicked at a pinned date."""
    rt = middleware.response_time_metrica()
    rt.kick(ms, date=when, view=view, method="GET", status=status)
    queries_metrica, db_time, n_plus_one = database.metricas()
    queries_metrica.kick(queries, date=when, view=view)
    db_time.kick(db_ms, date=when, view=view)
    if repeated:
        n_plus_one.kick(repeated, date=when, view=view, statement="SELECT ?")


# -- the numbers (staste.performance), at a pinned day ---------------------------------------------


def test_every_view_s_row_over_a_day(settings) -> None:
    settings.STASTE_MIN_RANKED_COUNT = 4
    for minute in range(4):  # four requests of 100 ms, 60 of them in the database, 3 statements each
        request("shop", 100, at(10, minute), queries=3, db_ms=60)
    request("shop", 3000, at(11), status="5xx", queries=3, db_ms=60)  # a slow failure
    for minute in range(6):  # six fast requests, 12 statements each, one repeated 10 times
        request("list", 10, at(12, minute), queries=12, db_ms=5, repeated=10)
    request("rare", 900, at(13))  # one request: not ranked
    buffer.flush()
    performance.read_views(Window(span=DAY))  # the scripts loaded
    with count_round_trips() as trips:
        rows = {row.view: row for row in performance.read_views(Window(span=DAY))}
    if not CLUSTER_MODE:
        assert trips.count == 1
    shop, listing, rare = rows["shop"], rows["list"], rows["rare"]
    assert (shop.requests, shop.failures, shop.failure_rate) == (5, 1, 0.2)
    assert shop.per_minute == pytest.approx(5 / 1440)  # a day that is over: 1,440 minutes
    assert shop.average == pytest.approx((400 + 3000) / 5)
    assert shop.queries == 3 and shop.db_ms == 60
    assert shop.db_share == pytest.approx(60 / 680)  # database time over response time, per request
    assert shop.apdex == pytest.approx(4 / 5)  # four satisfied, one frustrated (T = 500 ms)
    assert 79.4 < shop.p50 <= 100 and shop.p99 > 2000
    assert (listing.queries, listing.n_plus_one, listing.apdex) == (12, 6, 1.0)
    assert shop.ranked and listing.ranked and not rare.ranked
    ranked = performance.ranked(list(rows.values()), "p95")
    assert [row.view for row in ranked] == ["shop", "list", "rare"]  # the unranked last, whatever its p95
    assert [row.view for row in performance.ranked(list(rows.values()), "apdex")] == ["shop", "list", "rare"]
    assert [row.view for row in performance.ranked(list(rows.values()), "queries")] == ["list", "shop", "rare"]
    assert performance.top(Window(span=DAY), "p95", 1) == [("shop", shop.p95)]


def test_the_whole_site_and_one_view() -> None:
    request("a", 100, at(9), queries=2, db_ms=50)
    request("b", 300, at(9, 30), status="5xx", queries=4, db_ms=50)
    buffer.flush()
    from staste.query import pipelined

    calls = performance.site_calls(Window(span=DAY))
    site = performance.site_from(dict(zip(calls, pipelined(list(calls.values())), strict=True)), Window(span=DAY))
    assert (site.requests, site.failure_rate, site.queries) == (2, 0.5, 3)
    assert site.db_share == pytest.approx(100 / 400)
    calls = performance.site_calls(Window(span=DAY), view="b")
    one = performance.site_from(dict(zip(calls, pipelined(list(calls.values())), strict=True)), Window(span=DAY))
    assert (one.requests, one.failure_rate, one.queries) == (1, 1.0, 4)


def test_every_job_s_row(settings) -> None:
    settings.STASTE_MIN_RANKED_COUNT = 2
    tasks = timing.task_metrica()
    for ms, state in ((100, "success"), (120, "success"), (80, "retry"), (40, "builtins.ValueError")):
        tasks.kick(ms, date=at(3), task="import", state=state)
    tasks.kick(5000, date=at(4), task="report", state="success")
    buffer.flush()
    rows = {row.task: row for row in performance.read_tasks(Window(span=DAY))}
    assert (rows["import"].runs, rows["import"].failures, rows["import"].retries) == (4, 1, 1)
    assert rows["import"].failure_rate == 0.25 and rows["import"].average == 85
    assert rows["import"].ranked and not rows["report"].ranked


def test_a_window_s_minutes() -> None:
    now = datetime.datetime(2024, 3, 9, 12, 30)
    assert Window(span=DAY).minutes(now) == 12 * 60 + 30  # today: up to now
    assert Window(span=(2024, 3, 8)).minutes(now) == 1440
    assert Window(span=(2024, 3, 10)).minutes(now) is None  # not begun
    assert Window(span=()).minutes(now) is None


# -- the pages -------------------------------------------------------------------------------------

PAGES = ("/admin/staste/performance/", "/admin/staste/performance/view/?view=x", "/admin/staste/performance/jobs/")
URLS = [
    url.replace("/?", "/" + suffix + "?") if "?" in url else url + suffix
    for url in PAGES
    for suffix in ("", "data.json", "data.csv")
]


def staff(permitted: bool = True) -> Client:
    user = User.objects.create_user(f"user-{uuid.uuid4().hex[:8]}", password=None, is_staff=True)
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="view_metrica"))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("url", URLS)
def test_only_staff_with_the_permission(url: str) -> None:
    assert Client().get(url).status_code == 302
    assert staff(permitted=False).get(url).status_code == 403
    assert staff().get(url).status_code == 200


def traffic(settings) -> Client:
    """Real requests through the middleware: 4 of /perf/same/ (7 statements, repeated), 3 of
    /perf/none/, 3 failing ones; the staff client that reads the pages."""
    settings.STASTE_MIN_RANKED_COUNT = 3
    client = Client(raise_request_exception=False)
    for _ in range(4):
        client.get("/perf/same/?n=7")
    for _ in range(3):
        client.get("/perf/none/")
    for _ in range(3):
        client.get("/perf/failing/")
    with staste.timed("nightly.export"):
        pass
    buffer.flush()
    return staff()


def cells(html: str, table: str) -> list[list[str]]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        found = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([entities.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in found])
    return rows


@pytest.mark.django_db
def test_the_views_page_its_json_and_csv_agree(settings) -> None:
    client = traffic(settings)
    client.get("/admin/staste/performance/")  # scripts loaded
    with count_round_trips() as trips:
        response = client.get("/admin/staste/performance/?_sort=queries")
    assert response.status_code == 200
    if not CLUSTER_MODE:
        assert trips.count == 1  # every number of the page
    html = response.content.decode()
    rows = cells(html, "staste-perf-views")
    header, body = rows[0], rows[1:]
    assert header[:4] == ["view", "requests", "per minute", "p50 (ms)"] and header[-1] == "N+1"
    assert [row[0] for row in body] == [SAME, FAILING, NONE]  # by statements per request
    assert body[0][1] == "4" and body[0][-2] == "7.0" and body[0][-1] == "4"  # 4 requests, 7 statements, 4 N+1
    assert body[1][header.index("5xx")] == "100.0%"
    assert 'data-card="apdex"' in html and "STASTE_MIN_RANKED_COUNT" not in html  # all ranked: no note
    exported = client.get("/admin/staste/performance/data.json?_sort=queries").json()
    assert [row["view"] for row in exported["rows"]] == [SAME, FAILING, NONE]
    assert exported["rows"][0]["requests"] == 4 and exported["rows"][0]["queries"] == 7
    assert exported["numbers"]["requests"] == 10 and exported["minimum_count"] == 3
    assert exported["shown"]["tables"]["staste-perf-views"][0]["values"] == body[0][1:]
    assert set(exported["shown"]["charts"]) == {"staste-perf-latency", "staste-perf-requests"}
    lines = list(
        csv.reader(io.StringIO(client.get("/admin/staste/performance/data.csv?_sort=queries").content.decode()))
    )
    assert lines[0][:3] == ["view", "requests", "per_minute"] and lines[0][-1] == "ranked"
    assert [line[0] for line in lines[1:]] == [SAME, FAILING, NONE]
    assert float(lines[1][lines[0].index("queries")]) == 7


@pytest.mark.django_db
def test_views_with_too_few_requests_are_listed_last_and_not_ranked(settings) -> None:
    client = traffic(settings)
    settings.STASTE_MIN_RANKED_COUNT = 4
    html = client.get("/admin/staste/performance/?_sort=apdex").content.decode()
    body = cells(html, "staste-perf-views")[1:]
    assert [row[0] for row in body] == [SAME, FAILING, NONE]  # only SAME has 4 requests; then by name
    assert "Only views with at least 4 requests in this range are ranked" in html
    assert html.count('class="staste-unranked') == 2


@pytest.mark.django_db
def test_one_view_s_page(settings) -> None:
    client = traffic(settings)
    response = client.get("/admin/staste/performance/view/", {"view": SAME, "_last": "60 minutes"})
    assert response.status_code == 200
    html = response.content.decode()
    statements = cells(html, "staste-perf-statements")
    assert statements[1] == [
        'SELECT ? AS "a" FROM "django_content_type" WHERE "django_content_type"."id" = ? LIMIT ?',
        "4",
        "7.0",
    ]
    exported = client.get("/admin/staste/performance/view/data.json", {"view": SAME, "_last": "60 minutes"}).json()
    split = exported["charts"]["staste-perf-split"]
    assert split["stacked"] and [d["label"] for d in split["datasets"]] == ["database", "the rest"]
    per_request = exported["charts"]["staste-perf-queries"]["datasets"][0]["data"]
    assert per_request[-1] == 7  # the minute of the requests: seven statements each
    assert exported["numbers"]["requests"] == 4 and exported["numbers"]["queries"] == 7
    csv_lines = client.get("/admin/staste/performance/view/data.csv", {"view": SAME, "_table": "statements"})
    assert csv_lines.status_code == 200 and b"django_content_type" in csv_lines.content


@pytest.mark.django_db
def test_the_jobs_page(settings) -> None:
    client = traffic(settings)
    html = client.get("/admin/staste/performance/jobs/").content.decode()
    body = cells(html, "staste-perf-tasks")[1:]
    assert body[0][0] == "nightly.export" and body[0][1] == "1"
    assert 'href="/admin/staste/task_time/?task=nightly.export' in html


@pytest.mark.django_db
def test_compare_reads_the_previous_period_in_the_same_round_trip(settings) -> None:
    client = traffic(settings)
    client.get("/admin/staste/performance/?_compare=previous")
    with count_round_trips() as trips:
        exported = client.get("/admin/staste/performance/data.json?_compare=previous").json()
    if not CLUSTER_MODE:
        assert trips.count == 1
    assert exported["previous"]["requests"] == 0
    cards = {card["key"]: card for card in exported["shown"]["cards"]}
    assert cards["requests"]["change"]["versus"] == "vs 0"
    shown = exported["shown"]["tables"]["staste-perf-views"][0]["values"]
    assert len(shown) == len(performance.VIEW_MEASURES) + 1  # one more column: the p95's change
    html = client.get("/admin/staste/performance/?_compare=previous").content.decode()
    assert "p95 change" in cells(html, "staste-perf-views")[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("?bogus=1", "unknown parameter 'bogus'"),
        ("?_sort=speed", "bad _sort 'speed'"),
        ("?_span=all", "not all time"),
        ("?_last=3+eons", "bad range"),
        ("?_compare=later", "bad _compare"),
    ],
)
def test_bad_input_is_a_400_around_the_controls(query: str, said: str) -> None:
    response = staff().get("/admin/staste/performance/" + query)
    assert response.status_code == 400
    html = entities.unescape(response.content.decode())
    assert said in html and 'class="staste-tabs"' in html and "Last 24 hours" in html
    assert staff().get("/admin/staste/performance/data.json" + query).status_code == 400


@pytest.mark.django_db
def test_the_view_page_needs_a_view() -> None:
    response = staff().get("/admin/staste/performance/view/")
    assert response.status_code == 400 and "say which view to show" in entities.unescape(response.content.decode())
    too_long = staff().get("/admin/staste/performance/view/", {"view": "x" * 5000})
    assert too_long.status_code == 400


@pytest.mark.django_db
def test_a_redis_outage_never_breaks_the_pages(settings) -> None:
    settings.STASTE_REDIS_URL = "redis://127.0.0.1:1/0"
    from staste import connection

    connection.reset()
    client = staff()
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200 and "could not reach Redis" in response.content.decode()
    assert client.get("/admin/staste/performance/data.json").status_code == 503


@pytest.mark.django_db
def test_the_page_is_escaped(settings) -> None:
    middleware.response_time_metrica().kick(5, view="<script>alert(1)</script>", method="GET", status="2xx")
    buffer.flush()
    html = staff().get("/admin/staste/performance/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    exported = staff().get("/admin/staste/performance/data.json").content
    assert b"<script>" not in exported and json.loads(exported)["rows"][0]["view"] == "<script>alert(1)</script>"


@pytest.mark.django_db
def test_the_pages_in_russian_keep_no_english_label(settings) -> None:
    from django.utils import translation

    from tests.test_i18n import REFUSAL_LATIN, django_chrome, english_left

    settings.STASTE_MIN_RANKED_COUNT = 10  # some views unranked: their note too
    client = traffic(settings)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "ru"
    try:
        chrome = Client()  # Django's own pages, which a staff user without other permissions may not see
        chrome.force_login(User.objects.create_superuser("chrome", "chrome@example.com", "pw"))
        chrome.defaults["HTTP_ACCEPT_LANGUAGE"] = "ru"
        djangos = django_chrome(chrome)
        values = {"tests", "insight_app", "views", "same", "none", "failing", "nightly", "export", "SELECT", "AS",
                  "FROM", "WHERE", "LIMIT", "django_content_type", "id", "a", "Apdex", "staste", "timed", "Celery",
                  "manage", "py", "time", "view", "STASTE_MIN_RANKED_COUNT", "_compare", "_sort", "_last", "_span",
                  "_scale", "eons", "xx", "speed", *performance.VIEW_MEASURES}  # fmt: skip
        # (the query string's own words, which a refusal names as they are typed)
        for path in (
            "/admin/staste/performance/",
            "/admin/staste/performance/?_compare=previous&_last=60+minutes",
            f"/admin/staste/performance/view/?view={SAME}&_compare=previous",
            "/admin/staste/performance/jobs/",
            "/admin/staste/performance/?_sort=speed",
            "/admin/staste/performance/?_last=3+eons",
        ):
            page = client.get(path).content.decode()
            assert '<html lang="ru"' in page, path
            assert english_left(page) - djangos - values - REFUSAL_LATIN == set(), path
    finally:
        translation.deactivate()
        buffer.flush()  # the admin's own pages read meanwhile were recorded: written while Redis is here
