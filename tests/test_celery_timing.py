"""Celery tasks timed into task_time by a real Celery worker process, whose broker and result
backend are the session's Redis (under this test's key prefix): success, failure and retry; the
worker's buffer written when it shuts down; and staste without Celery installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from staste import timing
from staste.registration import registry

celery = pytest.importorskip("celery")

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.single_redis("a Redis broker for Celery")]


def worker_env(redis_url: str, prefix: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "STASTE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        STASTE_REDIS_URL=redis_url,
        STASTE_METRICS_PREFIX=prefix,
        STASTE_TEST_BROKER=redis_url,
        STASTE_TEST_BROKER_PREFIX=prefix,
        STASTE_FLUSH_INTERVAL="30",  # what the worker holds is written when it shuts down
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def worker(request, redis_server, prefix: str) -> Iterator[subprocess.Popen[str]]:
    """``celery -A tests.celery_app worker`` in a process of its own (``request.param``: its pool)."""
    pool = getattr(request, "param", "solo")
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", f"--pool={pool}"]
    command += ["--concurrency=2", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    command += ["--loglevel=WARNING", "-n", f"{prefix}@%h", "-Q", f"{prefix}-tasks"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=worker_env(redis_server.url, prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def app(redis_server, prefix: str) -> Iterator[celery.Celery]:
    """The test's side: an app of its own that sends to the worker's queue and reads the results."""
    sender = celery.Celery(f"sender-{prefix}")
    sender.conf.update(
        broker_url=redis_server.url,
        result_backend=redis_server.url,
        broker_transport_options={"global_keyprefix": f"{prefix}:celery:"},
        result_backend_transport_options={"global_keyprefix": f"{prefix}:celery:"},
        task_default_queue=f"{prefix}-tasks",
    )
    yield sender
    sender.close()


def stop(worker: subprocess.Popen[str]) -> str:
    """A warm shutdown (SIGTERM), as a deployment stops a worker; its output."""
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    return output


def runs() -> dict[tuple[str, str], int]:
    metrica = timing.task_metrica()
    found = {}
    for task, _count in metrica.iterate_counts("task"):
        for state, count in metrica.filter(task=task).iterate_counts("state"):
            if count:
                found[(task, state)] = count
    return found


@pytest.mark.parametrize("worker", ["solo", "prefork"], indirect=True)
def test_every_task_a_worker_runs_is_timed(worker, app) -> None:
    saved = registry.save()
    try:
        assert app.send_task("tests.add", (2, 3)).get(timeout=60) == 5
        assert app.send_task("tests.add", (4, 5)).get(timeout=60) == 9
        failed = app.send_task("tests.fail")
        failed.get(timeout=60, propagate=False)
        assert failed.state == "FAILURE"
        assert app.send_task("tests.flaky").get(timeout=60) == "done on a retry"
        stop(worker)
        assert runs() == {
            ("tests.add", "success"): 2,
            ("tests.fail", "tests.celery_app.Refused"): 1,
            ("tests.flaky", "retry"): 1,
            ("tests.flaky", "success"): 1,
        }
        metrica = timing.task_metrica()
        assert metrica.filter(task="tests.add").average() >= 0
        assert metrica.filter(task="tests.add").percentiles([95])[95] is not None
    finally:
        registry.restore(saved)


def test_staste_runs_without_celery_installed(redis_server, prefix: str) -> None:
    # A process in which `import celery` finds nothing, as where it is not installed.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["celery"] = None
        import django
        django.setup()
        import staste
        from staste import buffer, timing
        with staste.timed("no.celery"):
            pass
        buffer.flush()
        print(timing.task_metrica().filter(task="no.celery").count(), "celery" in sys.modules and sys.modules["celery"])
        """
    )
    env = worker_env(redis_server.url, prefix)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "None"]
