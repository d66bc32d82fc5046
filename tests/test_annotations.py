"""Annotations: the API, where a note falls on a chart, on every kind of line chart and in the
JSON export, the release note (once, even when processes race) and the migrations note."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection as db_connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import QuerySet
from django.template import Context, Template
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path

from staste import annotations
from staste.axis import Axis
from staste.charts import annotations as chart_annotations
from staste.charts.views import TimelineChart
from staste.metrica import Metrica
from staste.models import Annotation
from staste.registration import registry

pytestmark = pytest.mark.django_db

urlpatterns = [path("timeline/", TimelineChart.as_view(metrica="noted"))]

UTC = datetime.UTC


@pytest.fixture
def noted() -> Iterator[Metrica]:
    metrica = Metrica(name="noted", axes=[("gender", Axis(choices=["boy", "girl"]))], title="Noted")
    saved = registry.save()
    registry.register(metrica)
    metrica.kick(date=datetime.datetime(2024, 3, 10, 9), gender="girl")
    yield metrica
    registry.restore(saved)


# -- the API ---------------------------------------------------------------------------------------


def test_annotate_makes_a_note_now_or_at_a_moment_of_the_staste_calendar() -> None:
    now = annotations.annotate("Newsletter sent")
    assert now.metricas == [] and now.kind == "note"
    with override_settings(STASTE_TIME_ZONE="Europe/Paris"):
        note = annotations.annotate("Sale", when=datetime.datetime(2024, 3, 10, 15), metricas=["b", "a", "a"])
    assert note.time == datetime.datetime(2024, 3, 10, 14, tzinfo=UTC)  # 15:00 in Paris
    assert note.metricas == ["a", "b"]
    with pytest.raises(ValueError, match="1 to 200 characters"):
        annotations.annotate("  ")
    with pytest.raises(ValueError):
        annotations.annotate("x" * 201)


def test_staste_annotate_is_the_same_function() -> None:
    import staste

    assert staste.annotate is annotations.annotate


# -- where a note falls ----------------------------------------------------------------------------


def spec(labels: list[str], scale: str) -> dict:
    return {"type": "line", "labels": labels, "x": scale, "datasets": []}


@pytest.mark.parametrize(
    ("labels", "scale", "moment", "at"),
    [
        (["2024-03-10 13:00", "2024-03-10 14:00", "2024-03-10 15:00"], "hour", (2024, 3, 10, 14, 30), 1.5),
        (["2024-03-10 13:00", "2024-03-10 14:00"], "hour", (2024, 3, 10, 13, 0), 0.0),
        (["2024-03-09", "2024-03-10"], "day", (2024, 3, 10, 18), 1.75),
        (["2024-W10", "2024-W11"], "week", (2024, 3, 13, 12), 1.3571),  # Wednesday noon of W11
        (["2024-02", "2024-03"], "month", (2024, 3, 16, 12), 1.5),
        (["2019", "2024"], "year", (2024, 7, 2), 1.5),
    ],
)
def test_a_note_is_placed_in_its_bucket_by_the_part_gone_by(labels, scale, moment, at) -> None:
    annotations.annotate("here", when=datetime.datetime(*moment))
    marked = chart_annotations.mark(spec(labels, scale), "any")
    assert [note["at"] for note in marked["annotations"]] == [at]


def test_notes_outside_the_buckets_or_for_other_metricas_are_left_out() -> None:
    for moment, metricas in (
        ((2024, 3, 10, 12, 59), None),  # before the first bucket
        ((2024, 3, 10, 15, 0), None),  # after the last
        ((2024, 3, 10, 13, 30), ["other"]),  # another metrica's
        ((2021, 6, 1), None),  # a year the chart has no bucket for (between 2019 and 2024)
    ):
        annotations.annotate("gap" if moment[0] == 2021 else "no", when=datetime.datetime(*moment), metricas=metricas)
    annotations.annotate("yes", when=datetime.datetime(2024, 3, 10, 14, 59), metricas=["noted"])
    marked = chart_annotations.mark(spec(["2024-03-10 13:00", "2024-03-10 14:00"], "hour"), "noted")
    assert [(n["text"], n["when"], n["time"]) for n in marked["annotations"]] == [
        ("yes", "2024-03-10 14:59", "2024-03-10T14:59:00+00:00")
    ]
    years = chart_annotations.mark(spec(["2019", "2024"], "year"), "noted")
    assert [n["text"] for n in years["annotations"]] == ["no", "yes", "no"]  # 2024's, not 2021's


def test_pies_bars_and_odd_labels_are_left_alone() -> None:
    annotations.annotate("x", when=datetime.datetime(2024, 3, 10, 14))
    pie = {"type": "pie", "labels": ["boy"], "x": "gender", "datasets": []}
    assert chart_annotations.mark(pie, "any") == pie
    odd = spec(["not a time"], "hour")
    assert "annotations" not in chart_annotations.mark(odd, "any")
    assert chart_annotations.mark(None, "any") is None


def test_a_chart_reads_its_notes_in_one_query_whatever_their_number() -> None:
    for minute in range(0, 60, 2):
        annotations.annotate(f"n{minute}", when=datetime.datetime(2024, 3, 10, 14, minute))
    charts = [(spec(["2024-03-10 14:00"], "hour"), name) for name in ("a", "b", "c")]
    with CaptureQueriesContext(db_connection) as queries:
        marked = chart_annotations.mark_all(charts)
    assert len(queries) == 1
    assert all(len(m["annotations"]) == 30 for m in marked)


def test_a_chart_shows_at_most_the_latest_max_shown() -> None:
    Annotation.objects.bulk_create(
        Annotation(time=datetime.datetime(2024, 3, 10, 14, tzinfo=UTC) + datetime.timedelta(seconds=s), text=str(s))
        for s in range(annotations.MAX_SHOWN + 20)
    )
    marked = chart_annotations.mark(spec(["2024-03-10 14:00"], "hour"), "any")
    assert len(marked["annotations"]) == annotations.MAX_SHOWN
    assert marked["annotations"][-1]["text"] == str(annotations.MAX_SHOWN + 19)


# -- on every line chart ---------------------------------------------------------------------------


def test_the_admin_page_and_its_json_export_list_the_notes_of_the_range(noted: Metrica, client: Client) -> None:
    client.force_login(User.objects.create_superuser("root"))
    annotations.annotate("Release <2.3> & co", when=datetime.datetime(2024, 3, 10, 14, 30))
    annotations.annotate("Next day", when=datetime.datetime(2024, 3, 11, 1))
    data = client.get("/admin/staste/noted/data.json?_span=2024-03-10").json()
    assert data["annotations"] == [{"time": "2024-03-10T14:30:00+00:00", "text": "Release <2.3> & co"}]
    assert data["line"]["chart"]["annotations"][0]["at"] == 14.5
    page = client.get("/admin/staste/noted/?_span=2024-03-10").content.decode()
    assert "Release \\u003C2.3\\u003E \\u0026 co" in page  # in the spec, through json_script
    assert "Release <2.3>" not in page


def test_the_dashboard_sparklines_carry_their_notes(noted: Metrica, client: Client) -> None:
    client.force_login(User.objects.create_superuser("root"))
    annotations.annotate("Just now")
    rows = client.get("/admin/staste/data.json").json()["rows"]
    spark = next(row["spark"] for row in rows if row["name"] == "noted")
    assert [note["text"] for note in spark["annotations"]] == ["Just now"]


def test_template_tag_lines_carry_their_notes(noted: Metrica) -> None:
    annotations.annotate("Tagged", when=datetime.datetime(2024, 3, 10, 6), metricas=["noted"])
    html = Template('{% load staste %}{% staste_chart "noted" "line" year=2024 month=3 day=10 id="c" %}').render(
        Context()
    )
    found = json.loads(html.split('<script id="c" type="application/json">')[1].split("</script>")[0])
    assert [(n["text"], n["at"]) for n in found["annotations"]] == [("Tagged", 6.0)]
    pie = Template('{% load staste %}{% staste_chart "noted" "pie" axis="gender" id="p" %}').render(Context())
    assert "annotations" not in pie


@pytest.mark.urls(__name__)
def test_chart_views_carry_their_notes(noted: Metrica, client: Client) -> None:
    annotations.annotate("Viewed", when=datetime.datetime(2024, 3, 10, 12))
    found = client.get("/timeline/?year=2024&month=3&format=json").json()
    assert [(n["text"], n["at"]) for n in found["annotations"]] == [("Viewed", 9.5)]


# -- releases and migrations -----------------------------------------------------------------------


@pytest.fixture
def fresh_process() -> Iterator[None]:
    annotations.forget_release_check()
    yield
    annotations.forget_release_check()


def test_a_new_release_is_noted_once_on_the_first_request(fresh_process, client: Client) -> None:
    with override_settings(STASTE_RELEASE="2.3.0"):
        client.get("/admin/login/")
        with CaptureQueriesContext(db_connection) as queries:
            client.get("/admin/login/")
        assert not [q for q in queries if "staste_annotation" in q["sql"]]  # checked once per process
        annotations.forget_release_check()  # another process starts with the same release
        client.get("/admin/login/")
    notes = list(Annotation.objects.values_list("text", "kind", "release"))
    assert notes == [("Release 2.3.0", "release", "2.3.0")]


def test_two_processes_racing_create_the_release_note_once(fresh_process, monkeypatch) -> None:
    Annotation.objects.create(text="Release 9", kind="release", release="9")
    # The other process created it between this one's look-up and its insert: the unique
    # release refuses the second row, and the first is returned.
    monkeypatch.setattr(QuerySet, "first", lambda self: None)
    with override_settings(STASTE_RELEASE="9"):
        found = annotations.mark_release()
    assert found is not None and found.release == "9"
    assert Annotation.objects.filter(release="9").count() == 1


def test_no_release_or_the_switch_off_costs_no_query(fresh_process, client: Client) -> None:
    for overrides in ({"STASTE_RELEASE": None}, {"STASTE_RELEASE": "3", "STASTE_ANNOTATE_RELEASES": False}):
        with override_settings(**overrides), CaptureQueriesContext(db_connection) as queries:
            assert annotations.mark_release() is None
        assert len(queries) == 0
    assert not Annotation.objects.exists()


def test_the_release_comes_from_the_environment_too(fresh_process, monkeypatch) -> None:
    from staste import conf

    monkeypatch.setenv("STASTE_RELEASE", "env-7")
    conf.get_config.cache_clear()
    try:
        assert annotations.mark_release().text == "Release env-7"
    finally:
        monkeypatch.delenv("STASTE_RELEASE")
        conf.get_config.cache_clear()


def test_a_migrate_run_notes_each_app_and_where_it_stopped() -> None:
    graph = MigrationLoader(db_connection).graph
    plan = [
        (graph.nodes[("auth", "0011_update_proxy_permissions")], False),
        (graph.nodes[("staste", "0001_initial")], False),
        (graph.nodes[("staste", "0002_annotation_alert")], False),
    ]
    with override_settings(STASTE_ANNOTATE_MIGRATIONS=True):
        annotations.on_post_migrate(plan=plan, using="default")
        annotations.on_post_migrate(plan=[], using="default")  # nothing applied: no note
        annotations.on_post_migrate(plan=None, using="default")  # flush: no note
    with override_settings(STASTE_ANNOTATE_MIGRATIONS=False):
        annotations.on_post_migrate(plan=plan, using="default")
    notes = list(Annotation.objects.values_list("text", "kind"))
    assert notes == [("Migrations: auth 0011_update_proxy_permissions, staste 0002_annotation_alert", "migration")]
    backwards = annotations.migrations_text([(graph.nodes[("staste", "0002_annotation_alert")], True)])
    assert backwards == "Migrations unapplied: staste 0002_annotation_alert"


def test_migrate_sends_its_plan_to_the_note(transactional_db) -> None:
    with override_settings(STASTE_ANNOTATE_MIGRATIONS=True):
        call_command("migrate", "staste", "0001", verbosity=0)
        call_command("migrate", "staste", verbosity=0)
    texts = list(Annotation.objects.values_list("text", flat=True))
    assert texts == ["Migrations: staste 0002_annotation_alert"]  # the row of the unapply went with its table
