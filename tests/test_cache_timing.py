"""Cache calls by view (cache_calls, cache_time) through staste.cache.TimedCache, wrapping Django's
local-memory cache and Django's Redis cache on the test's Redis server, through real requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client

from staste import buffer, middleware
from staste import cache as timed_cache
from staste.registration import registry

VIEWS = "tests.insight_app.views"
CACHED = f"{VIEWS}.cached [cached]"


@pytest.fixture(autouse=True)
def timed(settings, monkeypatch) -> Iterator[None]:
    settings.MIDDLEWARE = [middleware.PATH, *settings.MIDDLEWARE]
    saved = registry.save()
    monkeypatch.setattr(buffer, "default", buffer.Buffer(background=False))
    yield
    registry.restore(saved)
    middleware._metricas.clear()


@pytest.fixture(params=["locmem", "redis"])
def backend(request, settings, redis_server, prefix: str) -> str:
    """A TimedCache around Django's local-memory cache, or around Django's Redis cache."""
    if request.param == "locmem":
        settings.CACHES = {
            "default": {
                "BACKEND": timed_cache.PATH,
                "LOCATION": f"staste-test-{prefix}",
                "OPTIONS": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            }
        }
    else:
        if "cluster" in redis_server.url:
            pytest.skip("Django's RedisCache takes a plain Redis URL")
        settings.CACHES = {
            "default": {
                "BACKEND": timed_cache.PATH,
                "LOCATION": redis_server.url,
                "KEY_PREFIX": f"{prefix}:cache",
                "OPTIONS": {"BACKEND": "django.core.cache.backends.redis.RedisCache"},
            }
        }
    return request.param


def outcomes(view: str = CACHED) -> dict[str, int]:
    return {label: total for label, total in timed_cache.calls_metrica().filter(view=view).iterate("outcome") if total}


def test_hits_misses_and_writes_by_view(backend: str) -> None:
    client = Client()
    assert client.get("/perf/cached/?key=a").status_code == 200
    assert client.get("/perf/cached/?key=b").status_code == 200
    client.get("/perf/none/")
    buffer.flush()

    # Each request: get (miss), set, get (hit), get_many of a present and a missing key, delete.
    assert outcomes() == {"hit": 4, "miss": 4, "write": 4}
    times = timed_cache.time_metrica()
    assert dict(times.iterate_counts("view")) == {CACHED: 2, f"{VIEWS}.none [none]": 1}  # one kick a request
    assert times.filter(view=f"{VIEWS}.none [none]").total() == 0
    assert times.filter(view=CACHED).average() > 0
    wrapped = caches["default"].cache
    assert isinstance(wrapped, LocMemCache if backend == "locmem" else RedisCache)


def test_the_async_cache_api_is_timed_too(backend: str) -> None:
    async def traffic() -> int:
        return (await AsyncClient().get("/perf/async-cached/?key=c")).status_code

    assert async_to_sync(traffic)() == 200
    buffer.flush()
    assert outcomes(f"{VIEWS}.async_cached [async-cached]") == {"hit": 1, "miss": 1, "write": 1}


def test_outside_a_request_calls_pass_through_unrecorded(backend: str) -> None:
    cache.set("outside", 1)
    assert cache.get("outside") == 1
    assert cache.get("nowhere", "default") == "default"
    assert cache.get_or_set("made", lambda: 7) == 7
    assert cache.get_many(["outside", "made", "nowhere"]) == {"outside": 1, "made": 7}
    assert cache.incr("outside") == 2
    assert cache.has_key("made") and not cache.has_key("nowhere")
    cache.set_many({"x": 1, "y": None})
    assert cache.get("y", "absent") is None  # a stored None is a hit, not the default
    cache.delete_many(["x", "y"])
    buffer.flush()
    assert timed_cache.calls_metrica().values().total() == 0
    assert timed_cache.time_metrica().values().count() == 0


def test_what_is_not_timed_is_the_wrapped_caches(backend: str, settings) -> None:
    timed = caches["default"]
    assert timed.make_key("k") == timed.cache.make_key("k")
    if backend == "redis":
        assert timed._cache is timed.cache._cache  # RedisCache's client, for code that reaches for it
    settings.CACHES = {
        "default": {"BACKEND": timed_cache.PATH, "OPTIONS": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    }
    assert caches["default"].get("anything") is None


def test_no_wrapper_configured_records_no_cache_work(settings) -> None:
    assert not timed_cache.in_use()  # the test settings' default cache
    Client().get("/perf/cached/")
    buffer.flush()
    assert timed_cache.CALLS not in registry
    assert timed_cache.TIME not in registry


def test_a_wrapper_without_a_backend_to_wrap_says_what_to_set(settings) -> None:
    settings.CACHES = {"default": {"BACKEND": timed_cache.PATH}}
    with pytest.raises(Exception) as raised:
        caches["default"].get("k")
    error = raised.value.__cause__ or raised.value
    assert isinstance(error, ImproperlyConfigured)
    assert "OPTIONS['BACKEND']" in str(error)
