"""The Lua scripts staste runs in Redis, and the one place Redis errors are translated."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

import redis

from staste import connection
from staste.exceptions import RedisUnavailable


@functools.cache
def source(name: str) -> str:
    return resources.files("staste").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def script(client: redis.Redis, name: str) -> Any:
    """The registered script ``name`` for ``client`` (EVALSHA, loading it when Redis lost it)."""
    registered = client.__dict__.setdefault("_staste_scripts", {})
    if name not in registered:
        registered[name] = client.register_script(source(name))
    return registered[name]


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Turn redis-py's connection failures into RedisUnavailable naming the URL."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(connection.describe(), exc) from exc


def run(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run one script in one round trip."""
    with translated_errors():
        client = connection.get_redis()
        return script(client, name)(keys=list(keys), args=list(args), client=client)
