"""The funnel and retention pages: what they show against staste.funnel / staste.retention,
saved URLs, the drill-down link to the users' changelist (only for staff who may view users,
``?pk__in=`` up to DRILL_DOWN_LIMIT ids, a CSV beyond), bad input as a 400 that writes nothing,
and Redis away as a notice."""

from __future__ import annotations

import csv
import datetime
import io
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from staste.adminviews import cohorts as views
from staste.axis import Axis
from staste.metrica import Metrica
from tests.test_admin import make_user, register, text  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

FUNNEL = "/admin/staste/funnel/"
RETENTION = "/admin/staste/retention/"


@pytest.fixture(autouse=True)
def in_may(clock) -> None:
    clock.set(datetime.datetime(2026, 5, 3, 10))


@pytest.fixture
def shop(register) -> tuple[Metrica, Metrica, Metrica]:  # noqa: F811
    signed_up = register(Metrica(name="signed_up", axes=[], users=True, title="Signed up"))
    visited = register(Metrica(name="visited", axes=[], users=True, title="Visited"))
    ordered = register(
        Metrica(name="ordered", axes=[("shop", Axis(choices=["north", "south"]))], users=True, users_axes=["shop"])
    )
    return signed_up, visited, ordered


def viewer_of_users(client: Client, *, users: bool) -> User:
    user = make_user("analyst", staff=True, permitted=True)
    if users:
        user.user_permissions.add(Permission.objects.get(codename="view_user", content_type__app_label="auth"))
    client.force_login(user)
    return user


def kick_story(shop, lost: int) -> None:
    signed_up, visited, ordered = shop
    day = datetime.datetime(2026, 4, 20, 12)
    for user in range(1, 41):
        signed_up.kick(user=user, date=day)
        if user <= 40 - lost:
            visited.kick(user=user, date=day + datetime.timedelta(days=1))
            if user % 2:
                ordered.kick(user=user, shop="north", date=day + datetime.timedelta(days=2))


def test_the_funnel_page_shows_the_funnel_and_links_to_the_lost_users(client, shop) -> None:
    viewer_of_users(client, users=True)
    kick_story(shop, lost=10)
    url = f"{FUNNEL}?step=signed_up&step=visited&step=ordered:shop=north&since=2026-04-01&until=2026-04-30&within=7"
    response = client.get(url)
    assert response.status_code == 200
    page = text(response)
    assert "Signed up" in page and "40" in page and "Ordered (shop=north)" in page
    assert [row["count"] for row in response.context["rows"]] == ["40", "30", "15"]
    link = response.context["rows"][1]["drill"]
    assert urlsplit(link).path == "/admin/auth/user/"
    assert parse_qs(urlsplit(link).query)["pk__in"] == [",".join(str(n) for n in range(31, 41))]
    assert "selected>Ordered (shop=north)" in response.content.decode()  # the saved URL picks its steps


def test_no_link_for_staff_who_may_not_view_users(client, shop) -> None:
    viewer_of_users(client, users=False)
    kick_story(shop, lost=10)
    response = client.get(f"{FUNNEL}?step=signed_up&step=visited&since=2026-04-01&until=2026-04-30")
    assert response.status_code == 200
    assert "drill" not in response.context["rows"][1] and "/admin/auth/user/" not in response.content.decode()
    assert client.get(f"{FUNNEL}lost.csv?step=signed_up&step=visited&lost=1").status_code == 403


def test_past_the_limit_a_csv_of_ids(client, shop, monkeypatch) -> None:
    viewer_of_users(client, users=True)
    monkeypatch.setattr(views, "DRILL_DOWN_LIMIT", 5)
    kick_story(shop, lost=10)
    response = client.get(f"{FUNNEL}?step=signed_up&step=visited&since=2026-04-01&until=2026-04-30")
    row = response.context["rows"][1]
    assert "drill" not in row
    download = client.get(row["csv"])
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert [line[0] for line in csv.reader(io.StringIO(download.content.decode()))] == ["id"] + [
        str(n) for n in range(31, 41)
    ]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("step=signed_up&step=nope", "nope is not a metrica with users"),
        ("step=signed_up&step=ordered:city=x", "keeps no users per city"),
        ("step=signed_up&step=visited&since=2025-01-01&until=2025-01-31", "past their retention"),
        ("step=signed_up&step=visited&since=soon", "is not a date"),
        ("step=signed_up&step=visited&within=-1", "whole number of days"),
    ],
)
def test_bad_funnel_input_is_a_400_naming_the_fix(client, shop, staste_keys, query, message) -> None:
    viewer_of_users(client, users=True)
    response = client.get(f"{FUNNEL}?{query}")
    assert response.status_code == 400 and message in text(response)
    assert staste_keys() == {}


def test_the_retention_page_is_the_table(client, shop) -> None:
    viewer_of_users(client, users=False)
    kick_story(shop, lost=10)
    response = client.get(f"{RETENTION}?first=signed_up&then=visited&period=week&periods=3&until=2026-05-03")
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [row["start"] for row in rows] == ["2026-04-13", "2026-04-20", "2026-04-27"]
    assert rows[1]["size"] == "40" and [cell["share"] for cell in rows[1]["cells"]] == ["75.0%", "0.0%"]
    assert client.get(f"{RETENTION}?first=signed_up&then=visited&period=year").status_code == 400


def test_redis_away_is_a_notice(client, shop, settings) -> None:
    viewer_of_users(client, users=True)
    settings.STASTE_REDIS_URL = "redis://127.0.0.1:1/0"
    from staste import connection

    connection.reset()
    response = client.get(f"{FUNNEL}?step=signed_up&step=visited")
    assert response.status_code == 200 and "could not reach Redis" in text(response)
