"""The Celery app of tests/test_celery_timing.py, for a real worker process (``celery -A
tests.celery_app worker``) and the test that sends it tasks: the broker and result backend are
the session's Redis, under the test's key prefix (``STASTE_TEST_BROKER``, ``STASTE_TEST_BROKER_PREFIX``).
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()  # staste's app is ready: its Celery receivers are connected

from celery import Celery  # noqa: E402

app = Celery("staste-tests")
_prefix = os.environ.get("STASTE_TEST_BROKER_PREFIX", "staste-tests")
app.conf.update(
    broker_url=os.environ.get("STASTE_TEST_BROKER", "redis://127.0.0.1:6379/0"),
    result_backend=os.environ.get("STASTE_TEST_BROKER", "redis://127.0.0.1:6379/0"),
    broker_transport_options={"global_keyprefix": f"{_prefix}:celery:"},
    result_backend_transport_options={"global_keyprefix": f"{_prefix}:celery:"},
    broker_connection_retry_on_startup=True,
    task_default_queue=f"{_prefix}-tasks",
    worker_hijack_root_logger=False,
)


@app.task(name="tests.add")
def add(x: int, y: int) -> int:
    return x + y


class Refused(Exception):
    """What the failing task raises (its dotted class is the recorded state)."""


@app.task(name="tests.fail")
def fail() -> None:
    raise Refused("this task always fails")


@app.task(name="tests.flaky", bind=True, max_retries=3)
def flaky(self) -> str:  # type: ignore[no-untyped-def]
    """Asks to be retried on its first run, then succeeds."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return "done on a retry"
