"""The Lua scripts staste runs in Redis, and the one place Redis errors are translated."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

import redis
import redis.cluster

from staste import async_connection, connection
from staste.exceptions import RedisUnavailable

#: The shared parts put before a script's own text, in order: prelude.lua (``call``,
#: ``split``...) before every one, budget.lua (the batch's work budget) before the reads.
_PARTS = {"read": ("prelude", "budget"), "uniques": ("prelude", "budget"), "years": ("prelude", "budget")}


@functools.cache
def source(name: str) -> str:
    """The text Redis runs for script ``name``: its shared parts (:data:`_PARTS`), then
    lua/<name>.lua.  Shared parts are pasted in, since a script cannot load another."""
    folder = resources.files("staste").joinpath("lua")
    parts = (*_PARTS.get(name, ("prelude",)), name)
    return "".join(folder.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in parts)


def script(client: connection.Client | async_connection.AsyncClient, name: str) -> Any:
    """The registered script ``name`` for ``client`` (EVALSHA, loading it when Redis lost it)."""
    registered = client.__dict__.setdefault("_staste_scripts", {})
    if name not in registered:
        registered[name] = client.register_script(source(name))
    return registered[name]


def command(client: redis.Redis | redis.cluster.RedisCluster, name: str, node: str = "") -> tuple[str, str]:
    """How staste.pipe (which sends calls itself) runs script ``name`` on ``client`` (on a
    cluster, on ``node``): EVAL with the source the first time (Redis caches the script: no
    NOSCRIPT, no extra round trip), EVALSHA after."""
    sent = client.__dict__.setdefault("_staste_sent", set())
    if (name, node) in sent:
        return "EVALSHA", script(client, name).sha
    sent.add((name, node))
    return "EVAL", source(name)


def forget(client: redis.Redis | redis.cluster.RedisCluster, name: str, node: str = "") -> None:
    """Redis answered NOSCRIPT (it was restarted, or SCRIPT FLUSH ran): send the source again."""
    client.__dict__.setdefault("_staste_sent", set()).discard((name, node))


#: How kick.lua's error reply starts when it refused kicks that would overflow a counter
#: (followed by their numbers in the batch, from 1); it wrote the batch's other kicks.
OVERFLOW = "STASTE_OVERFLOW"

#: What an unreachable server, or a cluster with a primary down, looks like from redis-py.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
)


#: Replies that refuse a script before it wrote anything: safe to retry, or to drop as a whole.
#: (A cluster's CLUSTERDOWN and TRYAGAIN too: staste.pipe sees them as replies; and NOSCRIPT,
#: which redis-py's Script answers itself once, by loading the script, but not twice.)
_REFUSALS = (
    redis.exceptions.NoScriptError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)
_REFUSAL_CODES = ("BUSY", "NOREPLICAS", "MASTERDOWN", "OOM", "READONLY")
#: Redis before 7 refuses from inside the script, at its first write (so nothing was written).
_REFUSED_IN_SCRIPT = re.compile(r"Error running script .*?: -(?:OOM|READONLY|NOREPLICAS|MASTERDOWN)\b", re.S)


def refused_before_writing(exc: BaseException) -> bool:
    """Whether Redis refused a script call before it wrote anything (full, read-only, busy...)."""
    if isinstance(exc, _REFUSALS):
        return True
    if not isinstance(exc, redis.ResponseError):
        return False
    text = str(exc)
    return text.startswith(_REFUSAL_CODES) or _REFUSED_IN_SCRIPT.match(text) is not None


def _cluster_unreachable(exc: redis.exceptions.RedisClusterException) -> bool:
    """A cluster client that found no node to talk to (rather than a misuse, like cross-slot keys)."""
    return isinstance(exc.__cause__, UNAVAILABLE) or "slots are not covered" in str(exc)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Turn redis-py's connection failures into RedisUnavailable naming the URL."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise RedisUnavailable(connection.describe(), exc) from exc
    except redis.exceptions.RedisClusterException as exc:
        if not _cluster_unreachable(exc):
            raise
        raise RedisUnavailable(connection.describe(), exc) from exc


def run(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run one script in one round trip."""
    with translated_errors():
        client = connection.get_redis()
        return script(client, name)(keys=list(keys), args=list(args), client=client)


async def arun(name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """:func:`run` through the running event loop's ``redis.asyncio`` client (one round trip)."""
    with translated_errors():
        async with async_connection.using() as client:
            return await script(client, name)(keys=list(keys), args=list(args), client=client)
