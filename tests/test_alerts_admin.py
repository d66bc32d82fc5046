"""The admin of alerts, annotations and the alerts' history: who may see them, and the
alert form refusing a rule its metrica cannot answer, before anything is saved."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from staste.axis import Axis
from staste.metrica import AveragedMetrica, Metrica
from staste.models import Alert, AlertEvent, Annotation
from staste.registration import registry

pytestmark = pytest.mark.django_db


@pytest.fixture
def metricas() -> Iterator[None]:
    saved = registry.save()
    registry.register(Metrica(name="form_visits", axes=[("gender", Axis(choices=["boy", "girl"]))], title="Visits"))
    registry.register(AveragedMetrica(name="form_timing", axes=[], histogram=True, unit="ms"))
    yield
    registry.restore(saved)


def user_with(*codenames: str) -> User:
    user = User.objects.create_user("someone", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="staste", codename=codename))
    return user


@pytest.fixture
def editor(client: Client) -> Client:
    client.force_login(user_with("view_metrica", "view_alert", "add_alert", "change_alert", "view_alertevent"))
    return client


GOOD = {
    "name": "Girls",
    "enabled": "on",
    "metrica": "form_visits",
    "filters": '{"gender": "girl"}',
    "measure": "total",
    "window": "60 minutes",
    "above": "3",
    "below": "",
    "change": "",
    "min_count": "0",
    "recipients": "owner@example.com",
    "webhook": "",
    "events-TOTAL_FORMS": "0",
    "events-INITIAL_FORMS": "0",
    "events-MIN_NUM_FORMS": "0",
    "events-MAX_NUM_FORMS": "0",
}


def test_a_valid_alert_is_saved(metricas, editor: Client) -> None:
    response = editor.post("/admin/staste/alert/add/", {**GOOD, "window": "last 60 Minutes"})
    assert response.status_code == 302, response.content.decode()[:3000]
    alert = Alert.objects.get()
    assert (alert.metrica, alert.filters, alert.window, alert.above) == (
        "form_visits",
        {"gender": "girl"},
        "60 minutes",
        3,
    )
    assert alert.state == "unknown"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"metrica": "nope"}, "metrica", "Select a valid choice"),
        ({"filters": '{"age": 3}'}, "filters", "form_visits has no axis &#x27;age&#x27;"),
        ({"filters": '{"gender": "cat"}'}, "filters", "bad filter gender"),
        ({"filters": "[1, 2]"}, "filters", "Give the filters as an object"),
        ({"measure": "p95"}, "measure", "form_visits shows total"),
        ({"window": "60 parsecs"}, "window", "60 parsecs"),
        ({"window": "90000 minutes"}, "window", "between 1 and 10,000"),
        ({"above": ""}, None, "Give at least one condition"),
        ({"below": "5"}, "below", "below must be less than above"),
        ({"above": "", "change": "0"}, "change", "always fire"),
        ({"webhook": "ftp://example.com/hook"}, "webhook", "Enter a valid URL"),
    ],
)
def test_the_form_refuses_a_rule_its_metrica_cannot_answer(metricas, editor: Client, changes, field, words) -> None:
    response = editor.post("/admin/staste/alert/add/", {**GOOD, **changes})
    assert response.status_code == 200
    form = response.context["adminform"].form
    errors = form.errors.get(field or "__all__", [])
    assert errors, form.errors
    assert words in response.content.decode()
    assert not Alert.objects.exists()


def test_an_alert_page_shows_its_state_history_and_admin_link(metricas, editor: Client) -> None:
    alert = Alert.objects.create(name="Slow", metrica="form_timing", measure="p95", window="24 hours", above=300)
    AlertEvent.objects.create(alert=alert, state="firing", previous="ok", value=412, detail="p95 = 412 ms", mailed=True)
    page = editor.get(f"/admin/staste/alert/{alert.pk}/change/").content.decode()
    assert "p95 = 412 ms" in page
    assert 'href="/admin/staste/form_timing/?_last=24+hours"' in page
    assert 'list="staste-windows"' in page and '<option value="12 weeks">' in page
    listing = editor.get("/admin/staste/alert/").content.decode()
    assert "staste-state-unknown" in listing and "&gt; 300" in listing
    assert editor.get("/admin/staste/alertevent/").status_code == 200


def test_the_section_needs_view_metrica_too(metricas, client: Client) -> None:
    client.force_login(user_with("view_alert", "change_alert", "view_annotation"))
    assert client.get("/admin/staste/alert/").status_code == 403
    assert client.get("/admin/staste/annotation/").status_code == 403
    client.force_login(User.objects.create_user("viewer", is_staff=True))
    assert client.get("/admin/staste/alert/").status_code == 403


def test_history_is_read_only(metricas, client: Client) -> None:
    client.force_login(User.objects.create_superuser("root"))
    alert = Alert.objects.create(name="x", metrica="form_visits", above=1)
    event = AlertEvent.objects.create(alert=alert, state="firing", previous="ok")
    assert client.get("/admin/staste/alertevent/add/").status_code == 403
    page = client.get(f"/admin/staste/alertevent/{event.pk}/change/").content.decode()
    assert 'name="_save"' not in page


def test_an_annotation_is_edited_with_the_registered_metricas_to_choose_from(metricas, client: Client) -> None:
    client.force_login(User.objects.create_superuser("root"))
    form = client.get("/admin/staste/annotation/add/").content.decode()
    assert 'value="form_visits"' in form and "Visits (form_visits)" in form
    response = client.post(
        "/admin/staste/annotation/add/",
        {"time_0": "2024-03-10", "time_1": "12:00:00", "text": "Sale", "kind": "note", "metricas": ["form_visits"]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    note = Annotation.objects.get()
    assert (note.text, note.metricas) == ("Sale", ["form_visits"])
    assert "every chart" in client.get("/admin/staste/annotation/").content.decode() or note.metricas


def test_the_models_pages_are_not_taken_for_metricas(client: Client) -> None:
    client.force_login(User.objects.create_superuser("root"))
    for model in ("alert", "annotation", "alertevent"):
        assert client.get(f"/admin/staste/{model}/").status_code == 200
    assert client.get("/admin/staste/").status_code == 200  # the dashboard stays the section's index
