"""Alerts against a real Redis: the rule checked, the verdict, fire once / quiet while firing /
resolve once, a change alert, the webhook on a real HTTP server, an outage (unknown, no false
"resolved"), the lock.  The clock is pinned: every run is given ``now``, every kick its date."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from django.core import mail
from django.test import override_settings

from staste import connection
from staste.alerts import judging, rules, runner
from staste.alerts.judging import Numbers, Rule, judge
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.models import Alert, AlertEvent, State
from staste.registration import registry
from tests.servers import http_server

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2024, 3, 10, 12, 30)
MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def metricas() -> Iterator[dict[str, Metrica]]:
    found = {
        "visits": Metrica(name="alert_visits", axes=[("gender", Axis(choices=["boy", "girl"]))], title="Visits"),
        "timing": AveragedMetrica(
            name="alert_timing", axes=[("view", StoredChoiceAxis())], histogram=True, unit="ms", multiplier=1000
        ),
        "guests": Metrica(name="alert_guests", axes=[("page", HierarchicalAxis())], uniques=True),
    }
    saved = registry.save()
    for metrica in found.values():
        registry.register(metrica)
    yield found
    registry.restore(saved)


def make_alert(**fields: object) -> Alert:
    values: dict[str, object] = {
        "name": "Too many girls",
        "metrica": "alert_visits",
        "filters": {"gender": "girl"},
        "measure": "total",
        "window": "60 minutes",
        "above": 3,
        "recipients": "owner@example.com",
    }
    values.update(fields)
    return Alert.objects.create(**values)


def kick(metrica: Metrica, times: int, minutes_ago: int, **axes: object) -> None:
    for _ in range(times):
        metrica.kick(date=NOW - minutes_ago * MINUTE, **axes)


# -- the verdict ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "rule", "state", "crossed"),
    [
        (Numbers(412.0, 10), Rule(above=300), "firing", ("above",)),
        (Numbers(300.0, 10), Rule(above=300), "ok", ()),  # at the line is not above it
        (Numbers(2.0, 10), Rule(below=5), "firing", ("below",)),
        (Numbers(7.0, 10), Rule(above=10, below=5), "ok", ()),
        (Numbers(412.0, 2), Rule(above=300, min_count=3), "no_data", ()),  # too few events to judge
        (Numbers(None, 5), Rule(above=300), "no_data", ()),  # the average of nothing
        (Numbers(0.0, 0), Rule(below=1, min_count=0), "firing", ("below",)),  # 0 judges an empty window
        (Numbers(0.0, 0), Rule(above=3, min_count=0), "ok", ()),
        (Numbers(150.0, 10, 100.0, 10), Rule(change=50), "firing", ("change",)),
        (Numbers(149.0, 10, 100.0, 10), Rule(change=50), "ok", ()),
        (Numbers(40.0, 10, 100.0, 10), Rule(change=-50), "firing", ("change",)),
        (Numbers(160.0, 10, 100.0, 10), Rule(change=-50), "ok", ()),  # a rise is no fall
        (Numbers(160.0, 10, 0.0, 0), Rule(change=50), "no_data", ()),  # nothing to compare with
        (Numbers(160.0, 10, 0.0, 0), Rule(change=50, above=100), "firing", ("above",)),
    ],
)
def test_the_verdict(numbers: Numbers, rule: Rule, state: str, crossed: tuple[str, ...]) -> None:
    verdict = judge(numbers, rule)
    assert (verdict.state, verdict.crossed) == (state, crossed)


def test_the_change_is_in_percent_of_the_previous_window() -> None:
    assert judging.change_percent(150, 100) == 50
    assert judging.change_percent(50, -100) == 150
    assert judging.change_percent(5, 0) is None


# -- the rule, checked as the admin reads it -------------------------------------------------------


def test_a_valid_rule_is_the_admin_page_it_links_to(metricas) -> None:
    state = rules.check("alert_visits", {"gender": "girl"}, "total", "60 minutes")
    assert rules.admin_path(state) == "/admin/staste/alert_visits/?gender=girl&_last=60+minutes"
    with override_settings(STASTE_SITE_URL="https://example.com/"):
        assert rules.absolute("/admin/") == "https://example.com/admin/"
    state = rules.check("alert_guests", {"page": ["out", "se"]}, "uniques", "7 days")
    assert state.filters == {"page": ("out", "se")}
    state = rules.check("alert_timing", {}, "p95", "24 hours")
    assert rules.admin_path(state).endswith("?_last=24+hours")  # p95: the page's default measure


@pytest.mark.parametrize(
    ("metrica", "filters", "measure", "window", "field", "words"),
    [
        ("nope", {}, "total", "60 minutes", "metrica", "No metrica named 'nope'"),
        ("alert_visits", {"age": 3}, "total", "60 minutes", "filters", "has no axis 'age'"),
        ("alert_visits", {"gender": "cat"}, "total", "60 minutes", "filters", "gender"),
        ("alert_visits", ["gender"], "total", "60 minutes", "filters", "axis → value"),
        ("alert_visits", {"gender": ["girl"]}, "total", "60 minutes", "filters", "one value"),
        ("alert_visits", {}, "p95", "60 minutes", "measure", "alert_visits shows total"),
        ("alert_timing", {}, "uniques", "60 minutes", "measure", "p95"),
        ("alert_visits", {}, "total", "60 parsecs", "window", "60 parsecs"),
        ("alert_visits", {}, "total", "5000 minutes", "window", "at most 1500"),
        ("alert_guests", {}, "uniques", "60 minutes", "window", "by day and coarser"),
        ("alert_guests", {"page": [1, 2]}, "total", "60 minutes", "filters", "hierarchical"),
    ],
)
def test_a_rule_its_metrica_cannot_answer_is_refused(metricas, metrica, filters, measure, window, field, words) -> None:
    with pytest.raises(rules.RuleError) as caught:
        rules.check(metrica, filters, measure, window)
    assert caught.value.field == field
    assert words in str(caught.value)


# -- fire once, quiet while firing, resolve once ---------------------------------------------------


def test_an_alert_fires_once_stays_quiet_and_resolves_once(metricas) -> None:
    alert = make_alert()
    kick(metricas["visits"], 2, 5, gender="girl")
    kick(metricas["visits"], 9, 5, gender="boy")  # not what the rule watches
    runner.run(NOW)
    alert.refresh_from_db()
    assert (alert.state, alert.value, len(mail.outbox)) == (State.OK, 2, 0)

    kick(metricas["visits"], 2, 3, gender="girl")
    report = runner.run(NOW)
    alert.refresh_from_db()
    assert alert.state == State.FIRING and alert.value == 4
    assert [(e.previous, e.state, e.mailed) for e in report.events] == [("ok", "firing", True)]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "[Django] Alert firing: Too many girls"
    assert message.to == ["owner@example.com"]
    assert "total of Visits (gender=girl), last 60 minutes: 4" in message.body
    assert "fires when above 3" in message.body
    assert "/admin/staste/alert_visits/?gender=girl&_last=60+minutes" in message.body
    html, kind = message.alternatives[0]
    assert kind == "text/html" and "Too many girls is firing" in html

    for minutes in (1, 2, 3):  # still firing: not a word
        kick(metricas["visits"], 1, 1, gender="girl")
        runner.run(NOW + minutes * MINUTE)
    assert len(mail.outbox) == 1
    assert AlertEvent.objects.filter(alert=alert).count() == 2  # unknown → ok, ok → firing

    runner.run(NOW + 70 * MINUTE)  # the window moved past the kicks
    alert.refresh_from_db()
    assert alert.state == State.OK and alert.value == 0
    assert [m.subject for m in mail.outbox] == [
        "[Django] Alert firing: Too many girls",
        "[Django] Alert resolved: Too many girls",
    ]
    runner.run(NOW + 71 * MINUTE)
    assert len(mail.outbox) == 2
    history = list(AlertEvent.objects.filter(alert=alert).order_by("time", "pk").values_list("previous", "state"))
    assert history == [("unknown", "ok"), ("ok", "firing"), ("firing", "ok")]


def test_too_few_events_is_no_data_and_mails_nothing(metricas) -> None:
    alert = make_alert(metrica="alert_timing", filters={}, measure="p95", above=100, min_count=5)
    for _ in range(4):
        metricas["timing"].kick(value=900, view="slow", date=NOW - 2 * MINUTE)
    runner.run(NOW)
    alert.refresh_from_db()
    assert alert.state == State.NO_DATA
    assert "4 events, fewer than the 5 needed" in alert.detail
    assert mail.outbox == []
    metricas["timing"].kick(value=900, view="slow", date=NOW - 2 * MINUTE)
    runner.run(NOW)
    alert.refresh_from_db()
    assert alert.state == State.FIRING and alert.value == pytest.approx(900, rel=0.13)  # one histogram bucket
    assert "p95" in mail.outbox[0].body and "ms" in mail.outbox[0].body


def test_recipients_default_to_the_admins_and_the_site_url_makes_links_absolute(metricas) -> None:
    make_alert(recipients="")
    kick(metricas["visits"], 5, 1, gender="girl")
    with override_settings(ADMINS=[("Owner", "owner@example.org")], STASTE_SITE_URL="https://shop.example"):
        runner.run(NOW)
    assert mail.outbox[0].to == ["owner@example.org"]
    assert "https://shop.example/admin/staste/alert_visits/?gender=girl&_last=60+minutes" in mail.outbox[0].body


# -- a change alert --------------------------------------------------------------------------------


def test_a_change_alert_compares_with_the_previous_window(metricas) -> None:
    alert = make_alert(name="Traffic doubled", filters={}, above=None, change=100, window="60 minutes")
    kick(metricas["visits"], 10, 90, gender="boy")  # the previous hour: 10
    kick(metricas["visits"], 15, 10, gender="girl")  # this hour: 15 (+50%)
    runner.run(NOW)
    alert.refresh_from_db()
    assert alert.state == State.OK
    assert "+50% against the previous window" in alert.detail
    kick(metricas["visits"], 6, 10, gender="girl")  # 21: +110%
    runner.run(NOW)
    alert.refresh_from_db()
    assert alert.state == State.FIRING
    body = mail.outbox[0].body
    assert "Change against the previous window: +110%" in body and "then 10" in body


def test_a_fall_fires_a_negative_change_and_a_running_window_is_compared_up_to_the_same_point(metricas) -> None:
    alert = make_alert(name="Traffic fell", filters={}, above=None, change=-50, window="2 hours")
    # The previous two hours (10:00-11:59): 20 in the first hour, 20 in the second half-hour of
    # the second. Now is 12:30: the current window (11:00-12:30...) is compared with 10:00-10:30
    # prorated — the previous window's first hour whole, and half of its second.
    for hour, minute, times in ((10, 0, 20), (11, 45, 20)):
        for _ in range(times):
            metricas["visits"].kick(date=datetime.datetime(2024, 3, 10, hour, minute) - 60 * MINUTE, gender="boy")
    kick(metricas["visits"], 4, 20, gender="boy")
    numbers = runner.read(rules.check("alert_visits", {}, "total", "2 hours"), NOW, with_previous=True)
    assert numbers.value == 4 and numbers.previous == pytest.approx(20 + 20 * 0.5)
    runner.run(NOW)
    alert.refresh_from_db()
    assert alert.state == State.FIRING  # 4 against 30: -87%


# -- the webhook -----------------------------------------------------------------------------------


def test_the_webhook_gets_a_slack_compatible_post(metricas) -> None:
    with http_server() as (url, received):
        alert = make_alert(webhook=url + "/hooks/staste")
        kick(metricas["visits"], 5, 1, gender="girl")
        report = runner.run(NOW)
    assert len(received.requests) == 1
    path, headers, body = received.requests[0]
    assert path == "/hooks/staste" and headers["Content-Type"] == "application/json"
    assert body["text"].startswith("Too many girls is firing: total of Visits (gender=girl), last 60 minutes = 5")
    assert body["state"] == "firing" and body["value"] == 5 and body["filters"] == {"gender": "girl"}
    assert report.events[0].notice == "webhook: 200"
    alert.refresh_from_db()
    assert alert.state == State.FIRING


@pytest.mark.parametrize("failure", ["refused", "500", "slow"])
def test_a_failing_webhook_is_recorded_never_raised(metricas, failure: str) -> None:
    with http_server() as (url, received), override_settings(STASTE_ALERTS_WEBHOOK_TIMEOUT=0.3):
        if failure == "refused":
            url = "http://127.0.0.1:9"  # discard: nothing listens
        received.status = 500 if failure == "500" else 200
        received.delay = 2.0 if failure == "slow" else 0
        make_alert(webhook=url)
        make_alert(name="Another", filters={"gender": "boy"}, above=0)
        kick(metricas["visits"], 5, 1, gender="girl")
        kick(metricas["visits"], 1, 1, gender="boy")
        report = runner.run(NOW)
    first = next(event for event in report.events if event.alert.name == "Too many girls")
    assert first.mailed and first.notice.startswith("webhook failed: ")
    assert {"refused": "refused", "500": "HTTP 500", "slow": "timed out"}[failure] in first.notice
    assert sorted(m.subject for m in mail.outbox) == [
        "[Django] Alert firing: Another",
        "[Django] Alert firing: Too many girls",
    ]


# -- an outage -------------------------------------------------------------------------------------


@pytest.mark.single_redis("stops a server of its own")
def test_an_outage_makes_alerts_unknown_and_never_resolves_them(metricas, own_redis) -> None:
    alert = make_alert(min_count=1)
    kick(metricas["visits"], 5, 1, gender="girl")
    runner.run(NOW)
    assert [m.subject for m in mail.outbox] == ["[Django] Alert firing: Too many girls"]

    own_redis.kill()
    report = runner.run(NOW + MINUTE)
    alert.refresh_from_db()
    assert report.outage and alert.state == State.UNKNOWN and "Redis could not be read" in alert.detail
    runner.run(NOW + 2 * MINUTE)  # still away: one change recorded, not one per run
    assert AlertEvent.objects.filter(alert=alert, state=State.UNKNOWN).count() == 1
    assert len(mail.outbox) == 1

    own_redis.start()  # back, empty (it kept nothing): no events to judge, no "resolved"
    connection.reset()
    runner.run(NOW + 3 * MINUTE)
    alert.refresh_from_db()
    assert alert.state == State.NO_DATA and len(mail.outbox) == 1

    kick(metricas["visits"], 5, 0, gender="girl")  # firing again: it never stopped, no new mail
    runner.run(NOW + 3 * MINUTE)
    alert.refresh_from_db()
    assert alert.state == State.FIRING and len(mail.outbox) == 1

    kick(metricas["visits"], 1, -89, gender="girl")
    runner.run(NOW + 90 * MINUTE)  # really back to normal (1 girl in the hour): resolved, once
    assert [m.subject for m in mail.outbox][1:] == ["[Django] Alert resolved: Too many girls"]


@pytest.mark.single_redis("stops a server of its own")
def test_redis_going_away_in_the_middle_of_a_run_leaves_the_rest_unknown(metricas, own_redis) -> None:
    first, second = make_alert(name="a"), make_alert(name="b")
    kick(metricas["visits"], 5, 1, gender="girl")

    def stop_after_first(alert: Alert, *args: object) -> None:
        original(alert, *args)
        if alert.pk == first.pk:
            own_redis.kill()

    original = runner.evaluate
    runner.evaluate = stop_after_first  # type: ignore[assignment]
    try:
        runner.run(NOW)
    finally:
        runner.evaluate = original  # type: ignore[assignment]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.FIRING, State.UNKNOWN)
    assert [m.subject for m in mail.outbox] == ["[Django] Alert firing: a"]


# -- the lock --------------------------------------------------------------------------------------


def test_a_run_that_finds_the_lock_taken_does_nothing(metricas) -> None:
    make_alert()
    kick(metricas["visits"], 5, 1, gender="girl")
    held = connection.get_redis().lock(runner.lock_key(), timeout=30)
    assert held.acquire(blocking=False)
    try:
        report = runner.run(NOW)
    finally:
        held.release()
    assert report.locked and report.evaluated == 0 and mail.outbox == []
    assert runner.run(NOW).evaluated == 1
    assert len(mail.outbox) == 1
    assert not connection.get_redis().exists(runner.lock_key())  # released after the run


def test_a_run_whose_lock_expired_stops_and_a_mail_is_claimed_once(metricas) -> None:
    alert = make_alert()
    kick(metricas["visits"], 5, 1, gender="girl")
    # Another run claimed the mail already (its conditional UPDATE came first): this one sends none.
    Alert.objects.filter(pk=alert.pk).update(notified=State.FIRING)
    report = runner.run(NOW)
    assert report.events[0].state == State.FIRING and not report.events[0].mailed
    assert mail.outbox == []


def test_a_disabled_alert_is_not_evaluated(metricas) -> None:
    make_alert(enabled=False)
    kick(metricas["visits"], 5, 1, gender="girl")
    assert runner.run(NOW).evaluated == 0
    assert mail.outbox == []
