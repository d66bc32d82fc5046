"""ResponseTimeMiddleware through Django's test clients (WSGI and ASGI), a real gunicorn, and a
Redis that dies and comes back."""

from __future__ import annotations

import logging
import os
import re
import runpy
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.urls import resolve

from staste import buffer, histogram, keys, middleware
from staste.axis import Axis
from staste.buffer import calls
from staste.checks import check_response_time_middleware
from staste.metrica import AveragedMetrica
from staste.registration import registry
from staste.testing import RedisServer, free_port
from tests.roundtrips import count_round_trips

ROOT = Path(__file__).resolve().parent.parent
VIEWS = "tests.middleware_app.views"
HELLO = f"{VIEWS}.hello [hello]"


@pytest.fixture(autouse=True)
def timed(settings, monkeypatch) -> Iterator[None]:
    """The middleware first in MIDDLEWARE; a buffer of the test's own that only its explicit
    flushes write (no background thread); the registry as it was, afterwards."""
    settings.MIDDLEWARE = [middleware.PATH, *settings.MIDDLEWARE]
    registered = {metrica.name for metrica in registry}
    monkeypatch.setattr(buffer, "default", buffer.Buffer(background=False))
    yield
    for metrica in list(registry):
        if metrica.name not in registered:
            registry.unregister(metrica)
    middleware._metricas.clear()
    middleware._failures.clear()


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def rt() -> AveragedMetrica:
    return middleware.response_time_metrica()


def counts(axis: str) -> dict[str, int]:
    return {label: count for label, count in rt().iterate_counts(axis) if count}


# -- what is recorded ---------------------------------------------------------------------------


def test_counts_per_view_method_and_status(client: Client) -> None:
    for _ in range(3):
        assert client.get("/mw/hello/").status_code == 200
    client.post("/mw/hello/")
    client.get("/mw/redirect/")
    client.get("/mw/redirect/")
    client.get("/mw/teapot/")
    client.get("/mw/unnamed/")
    client.get("/mw/shop/item/7/")
    client.get("/mw/shop/item/8/")
    assert buffer.flush() > 0

    assert rt().values().count() == 10
    assert counts("view") == {
        HELLO: 4,
        f"{VIEWS}.redirect [redirect]": 2,
        f"{VIEWS}.teapot [teapot]": 1,
        f"{VIEWS}.unnamed": 1,  # no URL name: the dotted path alone
        f"{VIEWS}.ItemView [shop:item]": 2,  # the class of a class-based view, its namespaced name
    }
    assert counts("method") == {"GET": 9, "POST": 1}
    assert counts("status") == {"2xx": 7, "3xx": 2, "4xx": 1}
    assert rt().filter(view=HELLO, method="POST").count() == 1
    assert rt().filter(status="3xx", view=f"{VIEWS}.redirect [redirect]").count() == 2
    assert counts("exception") == {}  # nothing escaped a view
    average = rt().filter(view=HELLO).average()
    assert average is not None and average > 0  # milliseconds


def test_exceptions_that_escaped_the_view(client: Client) -> None:
    for _ in range(2):
        assert client.get("/mw/boom/").status_code == 500
    assert client.get("/mw/missing/").status_code == 404
    client.get("/mw/hello/")
    buffer.flush()

    assert counts("exception") == {f"{VIEWS}.Boom": 2, "django.http.response.Http404": 1}
    assert rt().filter(exception=f"{VIEWS}.Boom", status="5xx", view=f"{VIEWS}.boom [boom]").count() == 2
    assert rt().filter(exception="django.http.response.Http404", status="4xx").count() == 1
    assert rt().values().count() == 4


def test_requests_that_resolve_to_no_view_are_pooled(client: Client, staste_redis, prefix: str) -> None:
    for path in ("/nope/", "/wp-login.php", "/.env", "/mw/hello"):  # the last one lacks its slash
        assert client.get(path).status_code in (301, 404)
    client.get("/mw/hello/")
    buffer.flush()

    assert counts("view") == {middleware.UNRESOLVED: 4, HELLO: 1}
    stored = staste_redis.smembers(keys.choices_key(keys.metrica_base(prefix, "response_time"), "view"))
    assert {member.decode() for member in stored} == {keys.value_part(middleware.UNRESOLVED), keys.value_part(HELLO)}


def test_unknown_methods_are_pooled(client: Client) -> None:
    for method in ("BREW", "PROPFIND", "X" * 300):
        client.generic(method, "/mw/hello/")
    client.head("/mw/hello/")
    client.options("/mw/hello/")
    buffer.flush()
    assert counts("method") == {middleware.OTHER_METHOD: 3, "HEAD": 1, "OPTIONS": 1}


def test_async_views_and_the_asgi_handler() -> None:
    async def traffic() -> list[int]:
        client = AsyncClient(raise_request_exception=False)
        statuses = []
        for path in ("/mw/async/", "/mw/async/", "/mw/hello/", "/mw/async-boom/", "/nope/"):
            statuses.append((await client.get(path)).status_code)
        return statuses

    assert async_to_sync(traffic)() == [200, 200, 200, 500, 404]
    Client().get("/mw/async/")  # an async view under WSGI
    buffer.flush()

    assert counts("view") == {
        f"{VIEWS}.async_hello [async-hello]": 3,
        HELLO: 1,
        f"{VIEWS}.async_boom [async-boom]": 1,
        middleware.UNRESOLVED: 1,
    }
    assert counts("exception") == {f"{VIEWS}.Boom": 1}
    assert counts("status") == {"2xx": 4, "4xx": 1, "5xx": 1}


def test_the_middleware_adapts_to_sync_and_async_stacks() -> None:
    async def async_view(request):  # type: ignore[no-untyped-def]
        return HttpResponse()

    assert iscoroutinefunction(middleware.ResponseTimeMiddleware(async_view))
    assert not iscoroutinefunction(middleware.ResponseTimeMiddleware(lambda request: HttpResponse()))


def test_the_metrica_is_registered_with_a_histogram() -> None:
    metrica = rt()
    assert registry.get("response_time") is metrica
    assert isinstance(metrica, AveragedMetrica)
    assert metrica.histogram and metrica.buffered
    assert metrica.multiplier == 1000
    assert list(metrica.axes) == ["view", "method", "status", "exception"]
    assert metrica.values().percentiles([50, 95, 99]) == {50: None, 95: None, 99: None}


def test_the_metrica_name_is_a_setting(client: Client, settings) -> None:
    settings.STASTE_RESPONSE_TIME_METRICA = "timing"
    client.get("/mw/hello/")
    buffer.flush()
    assert registry.get("timing").filter(view=HELLO).count() == 1
    assert middleware.response_time_metrica("response_time").values().count() == 0


def test_percentiles_of_known_durations() -> None:
    """record() with known durations: the percentiles are those of the histogram of these values."""
    request = RequestFactory().get("/mw/hello/")
    request.resolver_match = resolve("/mw/hello/")
    durations_ms = [1.0] * 50 + [10.0] * 45 + [100.0] * 4 + [1000.0]  # bucket bounds, all four
    for milliseconds in durations_ms:
        middleware.record(request, HttpResponse(), milliseconds / 1000)
    buffer.flush()

    counts_by_bucket = [0] * histogram.BUCKETS
    for milliseconds in durations_ms:
        counts_by_bucket[histogram.bucket_index(milliseconds)] += 1
    expected = histogram.percentiles(counts_by_bucket, [50, 95, 99])
    found = rt().filter(view=HELLO).percentiles([50, 95, 99])
    assert found == pytest.approx(expected)
    # the 50th, 95th and 99th values each end their bucket, so the percentiles are these values
    assert found == pytest.approx({50: 1.0, 95: 10.0, 99: 100.0})
    assert rt().values().average() == pytest.approx(sum(durations_ms) / len(durations_ms))


def test_record_stores_a_duration_as_a_kick_would() -> None:
    """One rule for scaling and bucketing (Metrica.increments): 0.5015 ms is 502 µs both ways
    (the shortest decimal text of the float, times the multiplier, rounded half to even)."""
    request = RequestFactory().get("/mw/hello/")
    request.resolver_match = resolve("/mw/hello/")
    for milliseconds in (0.5015, 2.5, 0.0001, 1234.5675):
        middleware.record(request, HttpResponse(), milliseconds / 1000)
    buffer.flush()
    metrica = rt()
    expected = sum(
        metrica.increments(milliseconds / 1000 * 1000)[1][0] for milliseconds in (0.5015, 2.5, 0.0001, 1234.5675)
    )
    assert metrica.increments(0.5015) == (metrica.increments(0.5015)[0], (502, 1, 1))
    assert round(metrica.filter(view=HELLO).total() * 1000) == expected


# -- what is not recorded -----------------------------------------------------------------------


def test_static_and_media_are_excluded_by_default(client: Client, settings) -> None:
    settings.MEDIA_URL = "/media/"
    client.get("/static/app.css")
    client.get("/media/photo.jpg")
    client.get("/mw/hello/")
    buffer.flush()
    assert counts("view") == {HELLO: 1}


def test_exclusions_are_prefixes_or_regexes(client: Client, settings) -> None:
    settings.STASTE_MIDDLEWARE_EXCLUDE = ["/mw/teapot/", r"^/mw/shop/item/\d+/$", re.compile(r"^/mw/red")]
    for path in ("/mw/teapot/", "/mw/shop/item/1/", "/mw/redirect/", "/mw/hello/", "/static/app.css"):
        client.get(path)
    buffer.flush()
    # the setting replaces the default: /static/ is recorded now
    assert counts("view") == {HELLO: 1, middleware.UNRESOLVED: 1}


def test_a_bad_exclusion_fails_at_start_up(client: Client, settings) -> None:
    settings.STASTE_MIDDLEWARE_EXCLUDE = [42]
    with pytest.raises(ValueError, match="STASTE_MIDDLEWARE_EXCLUDE"):
        client.get("/mw/hello/")


def test_the_off_switch(client: Client, settings) -> None:
    settings.STASTE_RESPONSE_TIME_METRICA = "switched_off"
    settings.STASTE_MIDDLEWARE_ENABLED = False
    assert client.get("/mw/hello/").status_code == 200
    with pytest.raises(MiddlewareNotUsed):
        middleware.ResponseTimeMiddleware(lambda request: HttpResponse())
    assert buffer.stats()["pending"] == 0
    assert "switched_off" not in registry


def test_a_failure_to_record_never_breaks_a_request(client: Client, settings, caplog) -> None:
    # a metrica of that name registered by the project, without the middleware's axes
    registry.register(AveragedMetrica(name="wrong_axes", axes=[("page", Axis())], multiplier=1000))
    settings.STASTE_RESPONSE_TIME_METRICA = "wrong_axes"
    with caplog.at_level(logging.ERROR, logger="staste"):
        for _ in range(3):
            assert client.get("/mw/hello/").status_code == 200
    failures = [r for r in caplog.records if "could not record a response time" in r.getMessage()]
    assert len(failures) == 1  # once per kind of failure, not once per request
    assert buffer.stats()["pending"] == 0


# -- what it costs, and Redis outages -----------------------------------------------------------


def test_no_redis_round_trip_on_the_request_path(client: Client, monkeypatch) -> None:
    monkeypatch.setattr(calls, "CALL_BUDGET", 10_000)  # every counter of the flush in one call
    client.get("/mw/hello/")
    buffer.flush()  # the process' first flush records the signature too
    with count_round_trips(this_thread_only=True) as trips:
        for _ in range(20):
            client.get("/mw/hello/")
            client.get("/mw/boom/")
    assert trips.packets == []
    with count_round_trips(this_thread_only=True) as trips:
        # 40 requests merged into a few kicks: one per view, histogram bucket (and minute)
        assert 2 <= buffer.flush() < 40
    # one call deciding the stored values (view, exception), one writing every counter
    assert trips.count == 2 and all(packet.startswith(b"*") and b"EVALSHA" in packet for packet in trips.packets)
    assert rt().values().count() == 41


def test_redis_killed_and_restarted_during_traffic(client: Client, own_redis: RedisServer, caplog) -> None:
    served = []
    with caplog.at_level(logging.WARNING, logger="staste"):
        for _ in range(10):
            served.append(client.get("/mw/hello/").status_code)
        own_redis.kill()
        for _ in range(3):
            for _ in range(10):
                served.append(client.get("/mw/hello/").status_code)
                served.append(client.get("/mw/boom/").status_code)
            assert buffer.flush() == 0  # Redis is down: nothing written, everything kept
            stats = buffer.stats()
            assert stats["pending"] > 0 and stats["dropped"] == 0
            assert "ConnectionError" in stats["last_error"] or "Connection refused" in stats["last_error"]
        own_redis.start()
        for _ in range(10):
            served.append(client.get("/mw/hello/").status_code)
        assert buffer.flush() > 0
    assert served == [200] * 10 + [200, 500] * 30 + [200] * 10
    assert buffer.stats()["last_error"] is None and buffer.stats()["pending"] == 0
    assert rt().filter(view=HELLO).count() == 50  # every request the buffer held
    assert rt().filter(view=f"{VIEWS}.boom [boom]").count() == 30
    assert sum(count for _, count in rt().iterate_counts("status")) == 80
    outage = [r for r in caplog.records if "cannot write buffered kicks" in r.getMessage()]
    assert len(outage) == 1  # one warning per outage, however many flushes failed
    assert sum("is back: writing" in r.getMessage() for r in caplog.records) == 1


# -- a real prefork server --------------------------------------------------------------------


@pytest.mark.slow
def test_gunicorn_workers_add_up(redis_server, prefix: str, staste_redis) -> None:
    """Three preforked gunicorn workers (app preloaded in the master, then fork()) each buffer
    their own requests and write them when they exit: the counts add up exactly."""
    port = free_port()
    env = {
        **os.environ,
        "STASTE_REDIS_URL": redis_server.url,
        "STASTE_METRICS_PREFIX": prefix,
        "STASTE_FLUSH_INTERVAL": "3600",  # so only the exit flush writes
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers=3",
            "--preload",
            f"--bind=127.0.0.1:{port}",
            "--graceful-timeout=20",
            "tests.middleware_app.wsgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/mw/pid/?sleep=0.02"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        def fetch(_: int) -> str:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()

        with ThreadPoolExecutor(max_workers=6) as pool:
            pids = list(pool.map(fetch, range(59)))
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors.decode()[-2000:]
    served_by = set(pids)
    metrica = AveragedMetrica(name="response_time", axes=middleware.response_time_axes(), multiplier=1000)
    assert metrica.filter(view=f"{VIEWS}.pid [pid]").count() == 60, f"served by {len(served_by)} workers"


# -- configuration ------------------------------------------------------------------------------


def test_the_check_tells_when_the_middleware_is_missing(settings) -> None:
    assert check_response_time_middleware() == []  # installed by the fixture
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != middleware.PATH]
    [info] = check_response_time_middleware()
    assert info.id == "staste.I001" and info.level == 20  # INFO
    settings.STASTE_MIDDLEWARE_ENABLED = False
    assert check_response_time_middleware() == []  # switched off on purpose


def test_a_subclass_counts_as_installed(settings) -> None:
    settings.MIDDLEWARE = ["tests.test_middleware.MyTimer"]
    assert middleware.installed()


class MyTimer(middleware.ResponseTimeMiddleware):
    pass


def test_autodiscovery_registers_the_metrica_when_installed(settings) -> None:
    import staste.stats

    assert runpy.run_path(staste.stats.__file__)["response_time"] is registry.get("response_time")
    settings.MIDDLEWARE = []
    middleware._metricas.clear()
    registry.unregister("response_time")
    assert "response_time" not in runpy.run_path(staste.stats.__file__)
    assert "response_time" not in registry
