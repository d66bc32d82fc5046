"""Staste's own admin pages (and their live refresh) are not the site's traffic: the middleware
leaves them out of response_time, db_queries and db_time unless STASTE_RECORD_OWN_VIEWS is on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client

from staste import buffer, database, middleware
from staste.registration import registry


@pytest.fixture(autouse=True)
def timed(settings, monkeypatch) -> Iterator[None]:
    settings.MIDDLEWARE = [middleware.PATH, *settings.MIDDLEWARE]
    saved = registry.save()
    monkeypatch.setattr(buffer, "default", buffer.Buffer(background=False))
    yield
    registry.restore(saved)
    middleware._metricas.clear()
    middleware._own_views.clear()


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password=None))
    return client


def views(metrica) -> dict[str, int]:
    return {view: count for view, count in metrica.iterate_counts("view") if count}


OWN = ("/admin/staste/", "/admin/staste/data.json", "/admin/staste/response_time/?_last=24+hours",
       "/admin/staste/response_time/data.json")  # fmt: skip


@pytest.mark.django_db
def test_staste_pages_and_their_live_refresh_are_left_out(staff: Client) -> None:
    for url in OWN:
        assert staff.get(url).status_code == 200, url
    staff.get("/perf/none/")
    staff.get("/admin/")  # the admin's own index is the site's
    assert staff.get("/perf/chart/").status_code == 200  # so is a chart view of staste on a page of the site
    buffer.flush()
    recorded = views(middleware.response_time_metrica())
    assert recorded == {
        "tests.insight_app.views.none [none]": 1,
        "django.contrib.admin.sites.AdminSite.index [admin:index]": 1,
        "staste.charts.views.PieChart [chart]": 1,
    }
    assert views(database.queries_metrica()) == recorded


@pytest.mark.django_db
def test_a_setting_keeps_them(staff: Client, settings) -> None:
    settings.STASTE_RECORD_OWN_VIEWS = True
    for url in OWN:
        staff.get(url)
    buffer.flush()
    recorded = views(middleware.response_time_metrica())
    assert sum(recorded.values()) == len(OWN)
    assert all(view.startswith("staste.adminviews.") for view in recorded)
    assert "staste.adminviews.metrica.metrica_json [admin:staste_metrica_json]" in recorded


def test_which_views_are_staste_s_own() -> None:
    from django.urls import resolve

    assert middleware.own_view(resolve("/admin/staste/"))
    assert middleware.own_view(resolve("/admin/staste/guest_visits_gender_age/data.csv"))
    assert not middleware.own_view(resolve("/admin/"))
    assert not middleware.own_view(resolve("/admin/auth/user/"))
    assert not middleware.own_view(resolve("/perf/none/"))
    assert not middleware.own_view(resolve("/perf/chart/"))
