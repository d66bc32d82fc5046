"""Every test runs against a real redis-server started once per session, each test under
a key prefix of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from staste.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        os.environ["STASTE_REDIS_URL"] = server.url
        yield server


@pytest.fixture(autouse=True)
def staste_redis(redis_server: RedisServer, settings) -> Iterator[redis.Redis]:
    """Point staste at the session's server, under a key prefix unique to this test."""
    from staste import connection

    settings.STASTE_REDIS_URL = redis_server.url
    settings.STASTE_METRICS_PREFIX = f"t{uuid.uuid4().hex[:12]}"
    connection.reset()
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.connection_pool.disconnect()
    connection.reset()


@pytest.fixture
def prefix(settings) -> str:
    return settings.STASTE_METRICS_PREFIX


@pytest.fixture
def staste_keys(staste_redis: redis.Redis, prefix: str):
    """A callable listing this test's keys (what has been written)."""

    def listing() -> dict[str, object]:
        found = {}
        for key in sorted(staste_redis.scan_iter(match=f"{prefix}:*", count=1000)):
            kind = staste_redis.type(key).decode()
            read = {"hash": staste_redis.hgetall, "set": staste_redis.smembers, "string": staste_redis.get}[kind]
            found[key.decode()] = read(key)
        return found

    return listing
