"""staste.charts.views: the seed's generic chart views, configured in a urlconf, reading the
timespan and filters from the query string."""

from __future__ import annotations

import datetime
import json
import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import path

from staste import conf
from staste.charts.views import LatestCountAndAverageChart, PieChart, TimelineChart, TimeserieChart
from staste.metrica import Metrica
from tests.statsapp.stats import gender_age, pocket_money
from tests.test_templatetags import Page, assert_no_inline_script

urlpatterns = [
    path("pie/", PieChart.as_view(metrica=gender_age, axis_keyword="gender")),
    path("pie-any/", PieChart.as_view(metrica="guest_visits_gender_age")),
    path("girls/", PieChart.as_view(metrica=gender_age, axis_keyword="age", filters={"gender": "girl"})),
    path("timeline/", TimelineChart.as_view(metrica=gender_age)),
    path("lines/", TimeserieChart.as_view(metrica=gender_age)),
    path("money/", LatestCountAndAverageChart.as_view(metrica=pocket_money, axis_keyword="gender")),
    path("money-sums/", LatestCountAndAverageChart.as_view(metrica=gender_age)),
    path("custom/", PieChart.as_view(metrica=gender_age, axis_keyword="gender", template_name="my/pie.html")),
    path("bad-axis/", PieChart.as_view(metrica=gender_age, axis_keyword="colour")),
]

pytestmark = pytest.mark.urls(__name__)


@pytest.fixture
def guests() -> Metrica:
    now = conf.local()
    for gender, age, times in (("boy", 17, 3), ("girl", 18, 2), ("girl", 19, 1)):
        for _ in range(times):
            gender_age.kick(gender=gender, age=age, date=now)
    gender_age.kick(gender="boy", age=17, date=datetime.datetime(2010, 2, 14, 12))
    gender_age.kick(gender="girl", age=20, date=datetime.datetime(2010, 5, 1, 12), value=5)
    return gender_age


def spec_of(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    return Page(response.content.decode()).only_spec()


def pairs(spec: dict, dataset: int = 0) -> dict:
    return dict(zip(spec["labels"], spec["datasets"][dataset]["data"], strict=True))


def test_pie_chart_as_in_the_seed(client: Client, guests: Metrica) -> None:
    response = client.get("/pie/")
    spec = spec_of(response)
    assert spec["type"] == "pie"
    assert pairs(spec) == {"boy": 4, "girl": 8}
    assert response.context["axis"] == {"name": "gender", "values": [("boy", 4), ("girl", 8)]}  # the seed's context
    assert_no_inline_script(response.content.decode())


def test_timespan_and_filters_come_from_the_query_string(client: Client, guests: Metrica) -> None:
    assert pairs(spec_of(client.get("/pie/?timespan__year=2010"))) == {"boy": 1, "girl": 5}
    assert pairs(spec_of(client.get("/pie/?year=2010&month=2"))) == {"boy": 1, "girl": 0}
    assert pairs(spec_of(client.get("/pie/?age=17"))) == {"boy": 4, "girl": 0}
    # unknown parameters ride along; empty values mean "every value"
    assert pairs(spec_of(client.get("/pie/?utm_source=x&age="))) == {"boy": 4, "girl": 8}


def test_the_urlconf_wins_over_the_query_string(client: Client, guests: Metrica) -> None:
    assert pairs(spec_of(client.get("/pie/?axis=age"))) == {"boy": 4, "girl": 8}  # axis_keyword is fixed
    assert pairs(spec_of(client.get("/girls/?gender=boy"))) == {"17": 0, "18": 2, "19": 1, "20": 5}


def test_pie_without_axis_keyword_takes_axis_measure_and_limit(client: Client, guests: Metrica) -> None:
    assert pairs(spec_of(client.get("/pie-any/?axis=age&limit=2"))) == {"20": 5, "(rest)": 7}
    spec = spec_of(client.get("/pie-any/?year=2010"))
    assert spec["labels"][:5] == ["2010-01", "2010-02", "2010-03", "2010-04", "2010-05"]
    assert spec["datasets"][0]["data"][:5] == [0, 1, 0, 0, 5]


def test_json_format_returns_the_spec(client: Client, guests: Metrica) -> None:
    response = client.get("/pie/?format=json&year=2010")
    assert response["Content-Type"] == "application/json"
    assert pairs(json.loads(response.content)) == {"boy": 1, "girl": 5}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("year=soon", "year= must be a whole number"),
        ("month=2", "month= needs year="),
        ("gender=robot", "bad filter gender=&#x27;robot&#x27;: gender takes one of boy, girl"),
        ("age=" + "x" * 1001, "age takes at most 1,000 characters; this value is 1,001 characters long"),
        ("last=forever", "bad range &#x27;forever&#x27;: give a number and a unit of time"),
        ("measure=average", "needs an AveragedMetrica"),
    ],
)
def test_a_bad_query_string_is_a_400_saying_why(client: Client, guests: Metrica, query: str, message: str) -> None:
    response = client.get(f"/pie/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert json.loads(client.get(f"/pie/?{query}&format=json").content)["error"]


def test_hostile_query_strings_are_escaped(client: Client, guests: Metrica) -> None:
    response = client.get("/pie/", {"year": "<script>alert(1)</script>"})
    assert response.status_code == 400
    assert "<script>alert" not in response.content.decode()


@pytest.mark.django_db  # a line chart reads its annotations
def test_timeline_shows_the_buckets_of_the_timespan_with_drill_down_links(client: Client, guests: Metrica) -> None:
    response = client.get("/timeline/?timespan__year=2010")
    spec = spec_of(response)
    assert spec["labels"] == [f"2010-{month:02d}" for month in range(1, 13)]
    assert spec["datasets"][0]["data"][:5] == [0, 1, 0, 0, 5]
    links = dict((row[0], url) for row, url in response.context["drilldown"])
    assert links["2010-02"] == "?timespan__year=2010&timespan__month=2"
    assert [label for label, _ in response.context["crumbs"]] == ["all time", "2010"]
    assert 'href="?timespan__year=2010&amp;timespan__month=2"' in response.content.decode()

    spec = spec_of(client.get("/timeline/?timespan__year=2010&timespan__month=2"))
    assert len(spec["labels"]) == 28 and spec["datasets"][0]["data"][13] == 1


@pytest.mark.django_db  # a line chart reads its annotations
def test_timeline_of_all_time_shows_the_years(client: Client, guests: Metrica) -> None:
    response = client.get("/timeline/")
    spec = spec_of(response)
    assert spec["labels"] == ["2010", str(conf.local().year)]  # the years with data, as the seed's iterate()
    assert spec["datasets"][0]["data"] == [6, 6]
    links = [url for _, url in response.context["drilldown"]]
    assert links == ["?timespan__year=2010", f"?timespan__year={conf.local().year}"]


@pytest.mark.django_db  # a line chart reads its annotations
def test_timeserie_draws_a_line_per_value_and_the_total(client: Client, guests: Metrica) -> None:
    spec = spec_of(client.get("/lines/"))  # default: the first axis over the last 24 hours
    assert [d["label"] for d in spec["datasets"]] == ["total", "boy", "girl"]
    assert len(spec["labels"]) == 24
    assert [d["data"][-1] for d in spec["datasets"]] == [6, 3, 3]

    spec = spec_of(client.get("/lines/?show_axis=age&hide_total=1&last=7+days"))
    assert [d["label"] for d in spec["datasets"]] == ["17", "18", "19", "20"]
    assert [d["data"][-1] for d in spec["datasets"]] == [3, 2, 1, 0]
    assert len(spec["labels"]) == 7


@pytest.mark.django_db  # a line chart reads its annotations
def test_latest_count_and_average(client: Client) -> None:
    now = conf.local()
    pocket_money.kick(value=10, gender="girl", date=now)
    pocket_money.kick(value=20, gender="girl", date=now)
    pocket_money.kick(value=3, gender="boy", date=now)
    response = client.get("/money/")
    spec = spec_of(response)
    assert [d["label"] for d in spec["datasets"]] == ["count", "average"]
    assert len(spec["labels"]) == 60
    assert spec["datasets"][0]["data"][-1] == 3
    assert spec["datasets"][1]["data"][-1] == pytest.approx(11)
    assert response.context["choices"] == ["boy", "girl"]

    spec = spec_of(client.get("/money/?gender=girl&scale=hour"))
    assert len(spec["labels"]) == 48
    assert spec["datasets"][0]["data"][-1] == 2 and spec["datasets"][1]["data"][-1] == 15

    spec = spec_of(client.get("/money/?gender=girl&scale=week"))  # the last 12 ISO weeks
    assert len(spec["labels"]) == 12 and spec["x"] == "week"
    assert spec["labels"][-1] == conf.local().date().strftime("%G-W%V")
    assert spec["datasets"][0]["data"][-1] == 2 and spec["datasets"][1]["data"][-1] == 15


def test_latest_count_and_average_needs_an_averaged_metrica(client: Client) -> None:
    with pytest.raises(ImproperlyConfigured, match="must be an AveragedMetrica"):
        client.get("/money-sums/")


def test_a_bad_urlconf_is_a_configuration_error(client: Client) -> None:
    with pytest.raises(ImproperlyConfigured, match="has no axis 'colour'"):
        client.get("/bad-axis/")


def test_templates_can_be_overridden(client: Client, guests: Metrica, settings, tmp_path) -> None:
    (tmp_path / "my").mkdir()
    (tmp_path / "my" / "pie.html").write_text(
        "{% for label, value in axis.values %}{{ label }}={{ value }};{% endfor %}"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    assert client.get("/custom/").content.decode() == "boy=4;girl=8;"


def test_redis_down_is_a_503_page_not_a_crash(client: Client, settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.STASTE_REDIS_URL = f"redis://127.0.0.1:{port}/0"
    response = client.get("/pie/")
    assert response.status_code == 503
    assert "Statistics are unavailable right now" in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()  # no infrastructure details outside DEBUG
