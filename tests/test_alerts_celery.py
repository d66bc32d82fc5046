"""The Celery task ``staste.evaluate_alerts`` run by a real Celery worker, through a real Redis
broker (the session's server, under this test's key prefix)."""

from __future__ import annotations

import logging

import pytest
from django.core import mail

from staste.models import Alert, State
from tests.statsapp.stats import gender_age

celery = pytest.importorskip("celery")

pytestmark = [pytest.mark.slow, pytest.mark.single_redis("a Redis broker for Celery")]


def test_beat_s_task_runs_the_alerts_in_a_worker(transactional_db, redis_server, prefix: str) -> None:
    from celery.contrib.testing.worker import start_worker

    from staste import tasks

    app = celery.Celery("staste-tests")
    app.conf.update(
        broker_url=redis_server.url,
        result_backend=redis_server.url,
        broker_transport_options={"global_keyprefix": f"{prefix}:celery:"},
        result_backend_transport_options={"global_keyprefix": f"{prefix}:celery:"},
        broker_connection_retry_on_startup=False,
        # The worker must leave the test process' logging alone (pytest's log capture included).
        worker_hijack_root_logger=False,
    )
    app.set_default()
    task = app.tasks[tasks.evaluate_alerts.name]  # the shared task, bound to this app
    alert = Alert.objects.create(
        name="Girls", metrica=gender_age.name, filters={"gender": "girl"}, window="60 minutes", above=3,
        recipients="owner@example.com",
    )  # fmt: skip
    for _ in range(5):
        gender_age.kick(gender="girl", age=18)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            summary = task.delay().get(timeout=60)
    finally:  # the worker sets the root logger's level to its own: later tests' log capture needs it back
        root.setLevel(level)
        root.handlers = handlers
    assert summary == {"evaluated": 1, "changes": 1, "mailed": 1, "locked": False, "outage": None}
    alert.refresh_from_db()
    assert alert.state == State.FIRING
    assert [m.subject for m in mail.outbox] == ["[Django] Alert firing: Girls"]
