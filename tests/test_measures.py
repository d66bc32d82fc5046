"""staste.measures: one rule for which measures a metrica has, its default, and how each is read.

The admin's ``_measure``, the chart views' and template tags' ``measure=`` (and the number
tags), and ``top(by=)`` all ask :func:`staste.measures.get`: for the same metrica they accept
and refuse the same measures, and each reads what the query API reads for it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client
from django.urls import path

from staste import measures
from staste.axis import StoredChoiceAxis
from staste.charts.spec import pie_spec
from staste.charts.views import PieChart
from staste.exceptions import MeasureMissing, UnknownMeasure
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry
from tests.test_admin import make_user, page

D = datetime.datetime
WHEN = D(2024, 3, 10, 12)


def _made(kind: type[Metrica], name: str, **options: object) -> Metrica:
    return kind(name=f"measure_{name}", axes=[("k", StoredChoiceAxis())], **options)


#: One metrica of each shape, and the measures each has (in the order pages list them).
METRICAS: dict[str, tuple[Metrica, tuple[str, ...]]] = {
    "plain": (_made(Metrica, "plain"), ("total",)),
    "plain_uniques": (_made(Metrica, "plain_uniques", uniques=True), ("total", "uniques")),
    "plain_histogram": (_made(Metrica, "plain_histogram", histogram=True), ("total", "p50", "p95", "p99")),
    "averaged": (_made(AveragedMetrica, "averaged", multiplier=100), ("count", "average", "total")),
    "durations": (
        _made(AveragedMetrica, "durations", unit="ms", histogram=True),
        ("count", "average", "p50", "p95", "p99"),
    ),
    "everything": (
        _made(AveragedMetrica, "everything", uniques=True, histogram=True, multiplier=100),
        ("count", "average", "total", "uniques", "p50", "p95", "p99"),
    ),
}
#: What is asked for: every measure, a percentile pages do not list, and no measures at all.
ASKED = ("total", "count", "average", "uniques", "p50", "p95", "p99", "p99.9", "median", "p101", "pxx")

urlpatterns = [
    path("admin/", admin.site.urls),
    *(path(f"pie/{key}/", PieChart.as_view(metrica=m, axis_keyword="k")) for key, (m, _) in METRICAS.items()),
]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture
def kicked() -> Iterator[None]:
    for metrica, _ in METRICAS.values():
        registry.register(metrica)
        for k, value, unique in (("a", 10, "u1"), ("a", 30, "u2"), ("b", 20, "u1")):
            options = {"unique": unique} if metrica.keeps_uniques else {}
            metrica.kick(value=value, date=WHEN, k=k, **options)
    yield
    for metrica, _ in METRICAS.values():
        registry.unregister(metrica)


def accepted_by_top(metrica: Metrica, name: str) -> bool:
    try:
        metrica.values().top("k", by=name)
    except (UnknownMeasure, MeasureMissing):
        return False
    return True


def accepted_by_the_admin(client: Client, metrica: Metrica, name: str) -> bool:
    status = client.get(page(metrica.name), {"_span": "2024", "_measure": name}).status_code
    assert status in (200, 400), status
    return status == 200


def accepted_by_a_chart_view(client: Client, key: str, name: str) -> bool:
    status = client.get(f"/pie/{key}/", {"measure": name}).status_code
    assert status in (200, 400), status
    return status == 200


def accepted_by_a_tag(metrica: Metrica, name: str) -> bool:
    source = '{% load staste %}{% staste_chart m "bar" axis="k" measure=measure %}'
    try:
        Template(source).render(Context({"m": metrica.name, "measure": name}))
    except TemplateSyntaxError:
        return False
    return True


@pytest.mark.django_db
@pytest.mark.parametrize("key", METRICAS)
def test_every_reader_accepts_and_refuses_the_same_measures(key: str, kicked, client: Client, settings) -> None:
    settings.DEBUG = True  # a tag's mistake is a TemplateSyntaxError, not a logged blank
    metrica, has = METRICAS[key]
    client.force_login(make_user("viewer", staff=True, permitted=True))
    assert measures.of(metrica) == has
    for name in ASKED:
        expected = name in has or (name == "p99.9" and metrica.histogram)  # any percentile, where there are some
        verdicts = {
            "top(by=)": accepted_by_top(metrica, name),
            "admin _measure": accepted_by_the_admin(client, metrica, name),
            "chart view measure=": accepted_by_a_chart_view(client, key, name),
            "staste_chart measure=": accepted_by_a_tag(metrica, name),
        }
        assert verdicts == dict.fromkeys(verdicts, expected), (key, name)
    for kind in ("total", "count", "average", "uniques"):  # the number tags are measures too
        source = "{% load staste %}{% staste_" + kind + ' "' + metrica.name + '" %}'
        try:
            Template(source).render(Context())
        except TemplateSyntaxError:
            assert kind not in has, (key, kind)
        else:
            assert kind in has, (key, kind)


def test_a_plain_metrica_with_uniques_draws_them_in_charts_and_tags(kicked, client: Client) -> None:
    """The hardening issue's case: measure=uniques was refused for a Metrica(uniques=True)
    ("needs an AveragedMetrica") in chart views and tags, though the admin offered it."""
    metrica, _ = METRICAS["plain_uniques"]
    response = client.get("/pie/plain_uniques/", {"measure": "uniques", "format": "json"})
    assert response.status_code == 200
    spec = response.json()
    assert spec["type"] == "bar"  # an id may be under several values: no pie
    assert dict(zip(spec["labels"], spec["datasets"][0]["data"], strict=True)) == {"a": 2, "b": 1}
    assert metrica.values().top("k", by="uniques") == [("a", 2), ("b", 1)]
    rendered = Template('{% load staste %}{% staste_uniques "measure_plain_uniques" %}').render(Context())
    assert rendered.strip() == "2"


def test_each_measure_reads_what_the_query_api_reads_for_it(kicked) -> None:
    metrica, _ = METRICAS["everything"]
    query = metrica.values()
    since, until = D(2024, 3, 10), D(2024, 3, 10, 23, 59)
    expected_by_value = {
        "total": query.iterate("k"),
        "count": query.iterate_counts("k"),
        "average": query.iterate_averages("k"),
        "uniques": query.iterate_uniques("k"),
        "p95": [(value, ps[95]) for value, ps in query.iterate_percentiles("k", [95])],
    }
    expected_number = {
        "total": query.total(),
        "count": query.count(),
        "average": query.average(),
        "uniques": query.uniques(),
        "p95": query.percentile(95),
    }
    series = {
        "total": query.timeserie(since, until, "hour"),
        "count": query.timeserie_counts(since, until, "hour"),
        "average": [(t, a) for t, _, a in query.timeserie_counts_and_averages(since, until, "hour")],
        "uniques": query.timeserie_uniques(since, until, "day"),
        "p95": [(t, ps and ps[95]) for t, ps in query.timeserie_percentiles(since, until, "hour", [95])],
    }
    for name in expected_by_value:
        measure = measures.get(metrica, name)
        assert measure.by_value(query, "k") == expected_by_value[name], name
        assert measure.number(query) == expected_number[name], name
        scale = "day" if name == "uniques" else "hour"
        assert measure.series(query, since, until, scale) == series[name], name
        ranked = sorted((row for row in expected_by_value[name] if row[1]), key=lambda row: -row[1])
        assert query.top("k", by=name) == ranked, name
    assert expected_number["count"] == 3 and expected_number["uniques"] == 2


def test_one_default(kicked) -> None:
    """A chart, a breakdown and top() show the events of an AveragedMetrica and the total of
    any other; the admin's page ranks an AveragedMetrica with a histogram by p95 (its page
    answers "which are slowest?"), and says so by its name."""
    for key, (metrica, has) in METRICAS.items():
        default = measures.default(metrica)
        assert default == ("count" if metrica.averaged else "total") and default in has, key
        assert pie_spec(metrica.values(), "k")["datasets"][0]["label"] == default
        assert metrica.values().top("k") == metrica.values().top("k", by=default)
        page_default = measures.default_for_page(metrica)
        assert page_default == ("p95" if metrica.averaged and metrica.histogram else default), key
        assert page_default in has


def test_names_and_refusals() -> None:
    assert measures.find("p95.0").name == "p95" and measures.find("p99.9").name == "p99.9"
    assert measures.find("p95") == measures.find("p95.00")  # one measure, one name
    assert measures.is_percentile("p50") and not measures.is_percentile("count")
    assert not measures.is_percentile("share") and not measures.is_measure("girl")
    assert measures.percentiles_of(["count", "p50", "p99.9"]) == [50.0, 99.9]
    for bad in ("median", "p101", "p-1", "pnan", "p", "", None, 95, "Total"):
        with pytest.raises(UnknownMeasure) as caught:
            measures.find(bad)
        assert isinstance(caught.value, ValueError) and "p0 to p100" in str(caught.value)
    durations, _ = METRICAS["durations"]
    with pytest.raises(MeasureMissing) as missing:
        measures.get(durations, "total")
    assert (missing.value.needs, missing.value.measure, missing.value.metrica) == ("summable", "total", durations.name)
    assert isinstance(missing.value, TypeError) and isinstance(missing.value, ValueError)
    assert "durations (ms)" in str(missing.value) and "count, average, p50" in str(missing.value)
    plain, _ = METRICAS["plain"]
    for name, needs in (("count", "averaged"), ("uniques", "uniques"), ("p95", "histogram")):
        with pytest.raises(MeasureMissing) as missing:
            measures.get(plain, name)
        assert missing.value.needs == needs


def test_what_pages_draw_of_a_measure() -> None:
    money, _ = METRICAS["averaged"]  # multiplier 100: totals have cents
    durations, _ = METRICAS["durations"]  # in ms
    assert [name for name in measures.NAMES if measures.find(name).additive] == ["total", "count"]
    assert not measures.find("p95").additive and not measures.find("uniques").additive
    assert measures.find("count").whole(money) and measures.find("uniques").whole(money)
    assert not measures.find("total").whole(money) and measures.find("total").whole(METRICAS["plain"][0])
    assert [name for name in measures.of(durations) if measures.find(name).in_unit] == ["average", "p50", "p95", "p99"]


@pytest.mark.django_db
def test_what_pages_offer_is_what_they_accept(kicked, client: Client) -> None:
    """The admin's measure menu and the pie view's list are the metrica's measures; a
    percentile asked for that pages do not list (p99.9) gets its menu entry and its column."""
    metrica, has = METRICAS["durations"]
    client.force_login(make_user("viewer", staff=True, permitted=True))
    response = client.get(page(metrica.name), {"_span": "2024", "_measure": "p99.9"})
    menu = response.context["measure_choices"]
    assert [name for name, _, _ in menu] == [*has, "p99.9"] and [name for name, _, on in menu if on] == ["p99.9"]
    table = response.context["breakdown"]["columns"]
    assert [column["name"] for column in table] == [*has, "p99.9"] and table[-1]["active"]
    assert table[-1]["label"] == "p99.9 (ms)" and table[0]["label"] == "count"  # a count is in no unit
    assert client.get("/pie/durations/").context["measures"] == list(has)
    assert client.get("/pie/everything/").context["measures"] == list(METRICAS["everything"][1])
