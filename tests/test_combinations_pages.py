"""Pages and tags over a metrica that keeps only some combinations (``combinations=1``): an
unkept filter and breakdown is a 400 in the chart views and a tag error (at compile time for
literal options), in the reader's language; a kept one draws."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client
from django.urls import path
from django.utils import translation

from staste.axis import Axis
from staste.charts.views import PieChart, TimeserieChart
from staste.metrica import Metrica
from staste.registration import registry

# Chart views draw the annotations (staste.models), read from the database.
pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db]

SINGLES = Metrica(
    name="singles",
    axes=[("gender", Axis(choices=["boy", "girl"])), ("age", Axis(value_type=int))],
    combinations=1,
)
urlpatterns = [
    path("pie/", PieChart.as_view(metrica=SINGLES, axis_keyword="age")),
    path("line/", TimeserieChart.as_view(metrica=SINGLES)),
]


@pytest.fixture
def singles() -> Iterator[Metrica]:
    saved = registry.save()
    registry.register(SINGLES)
    SINGLES.kick(gender="girl", age=18)
    yield SINGLES
    registry.restore(saved)


def test_chart_views_answer_an_unkept_combination_with_a_400(client: Client, singles) -> None:
    assert client.get("/pie/").status_code == 200  # by age alone: kept
    refused = client.get("/pie/?gender=girl")
    assert refused.status_code == 400
    text = refused.content.decode()
    assert "singles keeps no counters by gender x age together (combinations=1)" in text
    assert "combinations=2 would keep them" in text
    assert client.get("/line/?gender=girl").status_code == 200  # a filter alone: kept
    with translation.override("ru"):
        russian = client.get("/pie/?gender=girl", HTTP_ACCEPT_LANGUAGE="ru")
    assert russian.status_code == 400 and "не хранит счётчики" in russian.content.decode()


def test_tags_refuse_an_unkept_combination_at_compile_time(settings, singles) -> None:
    settings.DEBUG = True
    with pytest.raises(TemplateSyntaxError, match=r"keeps no counters by gender x age together"):
        Template('{% load staste %}{% staste_chart "singles" "pie" axis="age" gender="girl" %}')
    Template('{% load staste %}{% staste_chart "singles" "pie" axis="age" %}')  # kept: compiles
    assert Template('{% load staste %}{% staste_total "singles" gender="girl" %}').render(Context({})) == "1"
