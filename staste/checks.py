"""System checks (``manage.py check``) for staste: configuration problems surface here, each
with an id (``staste.E001``...), a message and a hint, never as exceptions at import time.

The checks that read Redis carry the ``staste_redis`` tag (``manage.py check --tag staste``
runs them all); when Redis cannot be reached they report a warning instead of failing, so an
outage never stops ``migrate`` or a deployment.
"""

from __future__ import annotations

from typing import Any

import redis
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from staste import conf, connection, keys, middleware, scripts
from staste.exceptions import RedisUnavailable
from staste.registration import registry

TAG = "staste"
REDIS_TAG = "staste_redis"


@checks.register(TAG)
def check_name_clashes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Two metricas with one name would share (and corrupt) each other's counters."""
    errors: list[checks.CheckMessage] = []
    for name, metrica in registry.clashes:
        kept = registry.get(name) if name in registry else None
        errors.append(
            checks.Error(
                f"Two different metricas are named {name!r}: {kept!r} and {metrica!r}.",
                hint="A metrica's name is its Redis key: rename one of them. Only the first one "
                "registered is used; the other is ignored.",
                obj=metrica,
                id="staste.E001",
            )
        )
    return errors


@checks.register(TAG, REDIS_TAG)
def check_axes_signatures(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Counters written with other axes are read back wrongly: compare with what Redis remembers.

    ``Metrica.record_signature`` stores the axes' signature when a metrica first writes.
    """
    metricas = list(registry)
    if not metricas:
        return []
    try:
        with scripts.translated_errors():
            client = connection.get_redis()
            pipe = client.pipeline(transaction=False)
            for metrica in metricas:
                pipe.get(keys.signature_key(metrica.base))
            stored = pipe.execute()
    except (RedisUnavailable, ImproperlyConfigured, redis.RedisError) as exc:
        return [
            checks.Warning(
                f"staste could not compare the metricas' axes with the data in Redis: {exc}",
                hint=f"Check that Redis is running at {connection.describe()} (STASTE_REDIS_URL).",
                id="staste.W001",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for metrica, raw in zip(metricas, stored, strict=True):
        if raw is None:
            continue
        recorded = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        current = metrica.signature()
        if recorded != current:
            errors.append(
                checks.Error(
                    f"The axes of metrica {metrica.name!r} changed since its data was first written: "
                    f"Redis has {recorded!r}, the code says {current!r}.",
                    hint="Old counters would be read under the new axes and give wrong numbers. Put the "
                    "axes back; or move the old data aside with `manage.py staste rename "
                    f"{metrica.name} <old name>`; or delete it with `manage.py staste purge {metrica.name}`.",
                    obj=metrica,
                    id="staste.E002",
                )
            )
    return errors


@checks.register(TAG)
def check_response_time_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Response times are only recorded with the middleware installed: a gentle reminder.

    Quiet when the middleware is switched off on purpose (STASTE_MIDDLEWARE_ENABLED = False).
    """
    if not conf.get("STASTE_MIDDLEWARE_ENABLED") or middleware.installed():
        return []
    return [
        checks.Info(
            f"{middleware.PATH} is not in MIDDLEWARE: staste records no response times.",
            hint=f'Add "{middleware.PATH}" at the top of MIDDLEWARE to count requests and their response '
            "times (no Redis round trip per request), or set STASTE_MIDDLEWARE_ENABLED = False to silence this.",
            id="staste.I001",
        )
    ]
