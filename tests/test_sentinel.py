"""staste behind Redis Sentinel: a real primary, a replica and a sentinel on loopback; the
``redis+sentinel://`` URL, sentinel credentials, and a failover in the middle of kicking."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from staste import connection
from staste.axis import StoredChoiceAxis
from staste.exceptions import RedisUnavailable
from staste.metrica import Metrica
from staste.testing import RedisSentinel, cluster_support

pytestmark = pytest.mark.single_redis("starts a sentinel setup of its own")


@pytest.fixture(scope="module")
def sentinel() -> Iterator[RedisSentinel]:
    missing = cluster_support()  # the same binary runs the sentinels
    if missing:
        pytest.skip(f"no redis-server to run sentinels: {missing}")
    with RedisSentinel(service="staste-test") as started:
        yield started


@pytest.fixture
def behind_sentinel(sentinel: RedisSentinel, settings) -> Iterator[RedisSentinel]:
    settings.STASTE_REDIS_URL = sentinel.url
    connection.reset()
    yield sentinel
    connection.reset()


def test_a_sentinel_url_finds_the_primary(behind_sentinel) -> None:
    client = connection.get_redis()
    assert isinstance(client.connection_pool, redis.sentinel.SentinelConnectionPool)
    counted = Metrica(name="guarded", axes=[("kind", StoredChoiceAxis())])
    for kind in ("a", "b", "a"):
        counted.kick(kind=kind)
    assert counted.iterate("kind") == [("a", 2), ("b", 1)]
    primary = redis.Redis(port=behind_sentinel.primary_port())
    assert primary.hget(counted.base + "all", "=a") == b"2"  # written to the primary itself
    primary.close()
    assert connection.describe() == behind_sentinel.url


def test_the_async_client_finds_the_primary_too(behind_sentinel) -> None:
    import asyncio

    import redis.asyncio.sentinel

    from staste import async_connection

    counted = Metrica(name="guarded_async", axes=[("kind", StoredChoiceAxis())])

    async def use() -> tuple[object, list[tuple[object, int]]]:
        try:
            for kind in ("a", "b", "a"):
                await counted.akick(kind=kind)
            pool = async_connection.get_redis().connection_pool
            return pool, await counted.aiterate("kind")
        finally:
            await async_connection.aclose()

    pool, rows = asyncio.run(use())
    assert isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
    assert rows == [("a", 2), ("b", 1)] == counted.iterate("kind")
    primary = redis.Redis(port=behind_sentinel.primary_port())
    assert primary.hget(counted.base + "all", "=a") == b"2"
    primary.close()


def test_an_unknown_service_is_a_clear_error(sentinel, settings) -> None:
    settings.STASTE_REDIS_URL = sentinel.url.replace("/staste-test/", "/nosuchservice/")
    connection.reset()
    with pytest.raises(RedisUnavailable, match="nosuchservice"):
        Metrica(name="lost", axes=[]).kick()
    connection.reset()


def test_sentinel_credentials_come_from_the_query_string(settings) -> None:
    with RedisSentinel(service="locked", replicas=0, sentinel_password="s3cret") as guarded:
        settings.STASTE_REDIS_URL = guarded.url + "?sentinel_password=s3cret"
        connection.reset()
        Metrica(name="locked", axes=[]).kick()
        assert Metrica(name="locked", axes=[]).total() == 1
        assert "s3cret" not in connection.describe()
        settings.STASTE_REDIS_URL = guarded.url  # no password for the sentinels
        connection.reset()
        with pytest.raises(RedisUnavailable) as info:
            Metrica(name="locked", axes=[]).total()
        assert "s3cret" not in str(info.value)
        connection.reset()


@pytest.mark.slow
def test_kicks_through_a_sentinel_failover(settings, capsys) -> None:
    with RedisSentinel(service="failing") as watched:
        settings.STASTE_REDIS_URL = watched.url
        connection.reset()
        counted = Metrica(name="failing", axes=[])
        acked, refused, others = [0], [0], []
        stopping = threading.Event()

        def kick_on() -> None:
            while not stopping.is_set():
                try:
                    counted.kick()
                    acked[0] += 1
                except RedisUnavailable:
                    refused[0] += 1
                    time.sleep(0.005)
                except BaseException as exc:
                    others.append(exc)
                    return

        kicker = threading.Thread(target=kick_on, daemon=True)
        kicker.start()
        deadline = time.monotonic() + 60
        while acked[0] < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        old = watched.primary
        admin = redis.Redis(port=old.port)
        confirmed = acked[0]
        admin.incr(counted.base + "marker")
        assert admin.wait(1, 5000) == 1  # the replica has every kick acknowledged so far
        admin.close()
        old.kill()
        crashed_at = time.monotonic()
        acked_at_crash = acked[0]
        new_port = watched.wait_failover(old.port)
        while acked[0] == acked_at_crash and time.monotonic() < deadline:
            time.sleep(0.005)
        outage = time.monotonic() - crashed_at  # reported, never asserted
        acked_on_new = acked[0]
        while acked[0] < acked_on_new + 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        stopping.set()
        kicker.join(30)
        assert not others, others
        total = counted.total()
        lost = max(0, acked[0] - total)
        with capsys.disabled():
            print(
                f"\n[reliability] sentinel failover :{old.port} -> :{new_port}, kicks refused for {outage:.1f} s "
                f"(down-after 0.5 s): {acked[0] + refused[0]} kicks, "
                f"{acked[0]} acknowledged ({confirmed} confirmed by the replica, {acked_at_crash - confirmed} in the "
                f"unconfirmed window), {refused[0]} raised RedisUnavailable, {total} counted: lost {lost}"
            )
        assert new_port != old.port
        assert acked[0] >= acked_on_new + 300  # the client found the new primary by itself
        assert total >= confirmed + (acked[0] - acked_at_crash)
        assert lost <= acked_at_crash - confirmed
        assert total <= acked[0] + refused[0]
        connection.reset()
