"""System checks (``manage.py check``) for staste: configuration problems surface here, each
with an id (``staste.E001``...), a message and a hint, never as exceptions at import time.

The checks that read Redis (the axes' signatures, and the server's version, eviction policy,
memory and persistence) carry the ``staste_redis`` tag: ``manage.py check --tag staste_redis``
runs them, ``--tag staste`` runs every check of staste.  When Redis cannot be reached they
report a warning (staste.W001) instead of failing, so an outage never stops ``migrate`` or a
deployment.  ``manage.py staste check`` runs the same functions and presents their findings.

==============  =============================================================================
staste.E001     two different metricas share a name
staste.E002     a metrica's axes changed since its data was written
staste.E003     Redis is older than staste needs
staste.E004     a metrica is named as one of the section's own pages
staste.E005     ``STASTE_WAIT_REPLICAS`` is negative, or its wait not shorter than the socket timeout
staste.W001     Redis could not be asked
staste.W002     an ``allkeys-*`` eviction policy may evict all-time counters
staste.W003     Redis is nearly full (90% of maxmemory)
staste.W004     Redis persists nothing: a restart loses every counter
staste.W005     a metrica's kept combinations exceed ``STASTE_COMBINATIONS_WARNING`` fields, or
                its HyperLogLogs ``STASTE_UNIQUES_WARNING`` a bucket
staste.W006     a primary has fewer replicas than ``STASTE_WAIT_REPLICAS`` asks to wait for
staste.I001     the response-time middleware is not installed
staste.I002     a ``volatile-*`` eviction policy may drop fine buckets early
staste.I003     Redis' persistence cannot be read (CONFIG is disabled)
staste.I004     the memory a metrica's users bitmaps imply (``users=True``, staste.cohorts)
==============  =============================================================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from staste import conf, connection, housekeeping, middleware, scripts
from staste.axis import Axis
from staste.cohorts import positions, sizing
from staste.combinations import Combinations
from staste.exceptions import RedisUnavailable
from staste.metrica import Metrica
from staste.registration import registry

TAG = "staste"
REDIS_TAG = "staste_redis"
#: What reading Redis may raise; a check turns it into staste.W001.
UNREACHABLE = (RedisUnavailable, ImproperlyConfigured, redis.RedisError, redis.exceptions.RedisClusterException)


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


@checks.register(TAG, checks.Tags.urls)
def check_shadowed_pages(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A metrica named as one of the section's own pages (``performance``, ``alert``...) is
    counted, but its admin page is that other page: it could never be browsed."""
    errors: list[checks.CheckMessage] = []
    for metrica in registry:
        name = metrica.name
        try:
            address = reverse("admin:staste_metrica", args=[name])
        except NoReverseMatch:  # no admin site named "admin", or staste not in it
            return []
        try:
            found = resolve(address)
        except Resolver404:
            continue
        if found.url_name != "staste_metrica":
            errors.append(
                checks.Error(
                    f"The admin page of the metrica {name!r}, {address}, is staste's own {found.url_name!r} "
                    "page: the metrica's page can never be shown.",
                    hint=f"Rename the metrica (manage.py staste rename {name} NEW_NAME moves its data).",
                    obj=metrica,
                    id="staste.E004",
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
        stored = housekeeping.stored_signatures([metrica.base for metrica in metricas])
    except UNREACHABLE as exc:
        return [unreachable(exc, "compare the metricas' axes with the data in Redis")]
    return signature_problems(metricas, stored)


def signature_problems(metricas: Sequence[Metrica], stored: Sequence[str | None]) -> list[checks.CheckMessage]:
    """staste.E002 for each metrica whose stored signature (None: nothing written) is not its code's."""
    errors: list[checks.CheckMessage] = []
    for metrica, recorded in zip(metricas, stored, strict=True):
        current = metrica.signature()
        if recorded is not None and recorded != current:
            errors.append(
                checks.Error(
                    f"The axes of metrica {metrica.name!r} changed since its data was first written: "
                    f"Redis has {recorded!r}, the code says {current!r}.",
                    hint="Old counters would be read under the new axes and give wrong numbers. Put the "
                    "axes back; or move the old data aside with `manage.py staste rename "
                    f"{metrica.name} {metrica.name}_old`; or delete it with `manage.py staste purge {metrica.name}`.",
                    obj=metrica,
                    id="staste.E002",
                )
            )
    return errors


def unreachable(exc: BaseException, what: str) -> checks.CheckMessage:
    """staste.W001: a check that needs Redis could not ask it (a warning: an outage never stops a deploy)."""
    return checks.Warning(
        f"staste could not {what}: {exc}",
        hint=f"Check that Redis is running at {connection.describe()} (STASTE_REDIS_URL).",
        id="staste.W001",
    )


# -- the Redis server ------------------------------------------------------------------------

#: staste's housekeeping needs UNLINK and MEMORY USAGE.
MIN_VERSION = (4, 0)
#: Share of maxmemory past which Redis is nearly full.
NEARLY_FULL = 0.9


@dataclass
class ServerStatus:
    """What the checks read of one server (each primary, on a cluster)."""

    node: str
    version: str
    policy: str
    maxmemory: int
    used_memory: int
    persistence: str | None  # "rdb", "aof", "rdb+aof", "" (off); None: unknown (CONFIG is disabled)
    replicas: int | None = None  # replicas connected to it (None: not read)


def servers() -> list[ServerStatus]:
    """INFO of the server, or of every primary of a cluster (raises what reading Redis raises)."""
    with scripts.translated_errors():
        client = connection.get_redis()
        if housekeeping.is_cluster(client):
            return [_status(client, node.name, {"target_nodes": node}) for node in client.get_primaries()]
        return [_status(client, connection.describe(), {})]


def _status(client: Any, node: str, options: dict[str, Any]) -> ServerStatus:
    info = {
        **client.info("server", **options),
        **client.info("memory", **options),
        **client.info("replication", **options),
    }
    return ServerStatus(
        node=node,
        version=str(info.get("redis_version", "?")),
        policy=str(info.get("maxmemory_policy", "?")),
        maxmemory=int(info.get("maxmemory", 0) or 0),
        used_memory=int(info.get("used_memory", 0) or 0),
        persistence=_persistence(client, options),
        replicas=int(info.get("connected_slaves", 0) or 0),
    )


def _persistence(client: Any, options: dict[str, Any]) -> str | None:
    try:
        config = {**client.config_get("save", **options), **client.config_get("appendonly", **options)}
    except redis.ResponseError:  # CONFIG renamed or disabled
        return None
    modes = []
    if housekeeping.as_text(config.get("save", "") or ""):
        modes.append("rdb")
    if housekeeping.as_text(config.get("appendonly", "no") or "no") == "yes":
        modes.append("aof")
    return "+".join(modes)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@checks.register(TAG, REDIS_TAG)
def check_redis_servers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Redis' version, eviction policy, memory and persistence, on every primary of a cluster."""
    try:
        statuses = servers()
    except UNREACHABLE as exc:
        return [unreachable(exc, "read the state of its Redis server")]
    return server_problems(statuses)


def server_problems(statuses: Sequence[ServerStatus], node: str | None = None) -> list[checks.CheckMessage]:
    """What may cost staste counters on these servers: E003, W002-W004, W006, I002, I003.

    Each message starts with ``node`` (default: the server's name, when there are several).
    """
    found: list[checks.CheckMessage] = []
    for status in statuses:
        found += _server_problems(status, f"{status.node}: " if node is None and len(statuses) > 1 else node or "")
    return found


def _server_problems(status: ServerStatus, node: str) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if version_tuple(status.version) < MIN_VERSION:
        minimum = ".".join(map(str, MIN_VERSION))
        found.append(
            checks.Error(
                f"{node}Redis {status.version} is too old: staste needs {minimum} or later.",
                hint="staste's housekeeping uses UNLINK and MEMORY USAGE (Redis 4.0).",
                id="staste.E003",
            )
        )
    risk = eviction_risk(status.policy, status.maxmemory, node)
    if risk is not None:
        found.append(risk)
    if status.maxmemory and status.used_memory >= NEARLY_FULL * status.maxmemory:
        found.append(
            checks.Warning(
                f"{node}Redis uses {human_bytes(status.used_memory)} of its maxmemory {human_bytes(status.maxmemory)}.",
                hint="When it is full, kicks fail (noeviction) or counters are evicted: give it more memory "
                "or shorten STASTE_RETENTION (docs/performance.md sizes it).",
                id="staste.W003",
            )
        )
    if status.persistence == "":
        found.append(
            checks.Warning(
                f"{node}persistence is off (no RDB snapshots, no AOF): a restart of Redis loses every counter.",
                hint="Turn on RDB snapshots (save) or the AOF (appendonly yes); silence staste.W004 "
                "(SILENCED_SYSTEM_CHECKS) where losing the counters is fine.",
                id="staste.W004",
            )
        )
    elif status.persistence is None:
        found.append(
            checks.Info(
                f"{node}persistence unknown (CONFIG GET is not allowed).",
                hint="Make sure the service snapshots or logs its data: a restart without either loses every counter.",
                id="staste.I003",
            )
        )
    wanted = conf.get("STASTE_WAIT_REPLICAS")
    if isinstance(wanted, int) and status.replicas is not None and status.replicas < wanted:
        found.append(
            checks.Warning(
                f"{node}STASTE_WAIT_REPLICAS={wanted}, but this primary has {status.replicas} replicas connected: "
                "no buffered flush can be confirmed, so every one is kept and sent again until the buffer is full.",
                hint="Connect the replicas, or lower STASTE_WAIT_REPLICAS to the replicas each primary has.",
                id="staste.W006",
            )
        )
    return found


SAFE_POLICIES = ("noeviction",)


def eviction_risk(policy: str, maxmemory: int, node: str = "") -> checks.CheckMessage | None:
    """What ``maxmemory-policy`` may do to staste's counters: None (nothing), staste.I002 or staste.W002.

    Why: staste's all-time and yearly buckets, its ``years`` and ``choices`` sets and its
    signature have no TTL (retention None); finer buckets have one, for their retention.
    An ``allkeys-*`` policy may evict any of them, so a full Redis quietly loses all-time
    totals or parts of a metrica (a year gone while its months remain: totals that no longer
    add up).  A ``volatile-*`` policy evicts only keys with a TTL, so it never touches the
    unexpiring counters, but may drop minute to month buckets before their retention ends
    (``volatile-ttl`` takes the soonest-expiring, the minutes, first).  ``noeviction`` evicts
    nothing: when Redis is full, kicks fail (and are dropped under STASTE_FAIL_SILENTLY)
    rather than losing what was counted.  Without ``maxmemory`` no policy ever applies.
    """
    if policy in SAFE_POLICIES or maxmemory <= 0:
        return None
    if policy.startswith("volatile-"):
        soonest = policy == "volatile-ttl"
        which = "the buckets that expire soonest (minutes first)" if soonest else "minute to month buckets"
        return checks.Info(
            f"{node}maxmemory-policy {policy}: when full, Redis may drop {which} before their retention ends; "
            "all-time and yearly counters have no TTL and are kept.",
            hint="Size Redis for the retention you keep (docs/performance.md), or use noeviction.",
            id="staste.I002",
        )
    return checks.Warning(
        f"{node}maxmemory-policy {policy} may evict any key when Redis reaches maxmemory, including staste's "
        "all-time and yearly counters, which have no TTL: totals would be lost silently, or part of a "
        "metrica (a year gone while its months remain).",
        hint="Use noeviction (or volatile-ttl) for staste's Redis, or give staste a Redis of its own apart "
        "from any cache.",
        id="staste.W002",
    )


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KiB': memory as people read it."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- how large a metrica can grow ---------------------------------------------------------------

#: Bytes a field of a large bucket hash takes (a hashtable, as Redis stores any hash past 512
#: fields): 51, measured in docs/performance.md ("Memory, and keeping hashes compact").
BYTES_PER_FIELD = 51


def axis_values(axis: Axis) -> int | None:
    """How many values an axis can count: its choices, or ``max_choices`` plus "(other)" (None: no limit)."""
    if axis.choices is not None:
        return len(axis.choices)
    cap = axis.cap()
    return None if cap == 0 else cap + 1


def combinations(metrica: Metrica) -> int | None:
    """The most combinations of axis values a bucket can count: those of the combinations of
    axes it keeps (``Metrica(combinations=...)``), each the product of its axes' values (a kick
    also counts under "all" of each axis).  None: an axis has no limit."""
    return _kept_count(metrica, metrica.combinations)


def hyperloglogs(metrica: Metrica) -> int | None:
    """The most HyperLogLogs one bucket of ``metrica`` can hold (its ``uniques_axes``
    combinations; 0 without ``uniques=True``).  None: an axis has no limit."""
    return _kept_count(metrica, metrica.uniques_axes) if metrica.keeps_uniques else 0


def _kept_count(metrica: Metrica, kept: Combinations) -> int | None:
    sizes = [axis_values(axis) for axis in metrica.axes.values()]
    if None in sizes:
        return None
    return kept.count(sizes)  # type: ignore[arg-type]


#: Bytes a dense HyperLogLog takes (Redis' 12,288 registers and its header): a bucket's
#: HyperLogLog of a combination reached by a few thousand ids.
HYPERLOGLOG_BYTES = 12_304


def uniques_buckets(metrica: Metrica) -> int:
    """How many buckets keep HyperLogLogs at once: all time, and each scale of
    ``uniques_scales`` over its retention (one year of the scales kept forever)."""
    lengths = {"year": 366 * 86400, "month": 31 * 86400, "day": 86400, "hour": 3600, "minute": 60}
    retention = conf.retention()
    total = 1
    for scale in metrica.uniques_scales:
        kept = retention.get(scale) or 366 * 86400
        total += max(1, -(-kept // lengths[scale]))
    return total


def fields_per_bucket(metrica: Metrica) -> int | None:
    """The most fields one bucket hash of ``metrica`` can hold: a field per kept combination and
    counter (an AveragedMetrica keeps two: sum and count).  A histogram keeps a second hash per
    bucket, ``<base>h:<bucket>``, with a field per combination and histogram bin used."""
    found = combinations(metrica)
    return None if found is None else found * len(metrica.families)


@checks.register(TAG)
def check_combinations(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """staste.W005: a metrica whose kept combinations exceed STASTE_COMBINATIONS_WARNING fields a
    bucket, or whose HyperLogLogs exceed STASTE_UNIQUES_WARNING a bucket.

    ``max_choices`` bounds each axis, not their product: 5 axes of 50 values allow 51**5
    combinations, each a field of every bucket, and the all-time and yearly buckets never expire;
    each kept for unique ids is a HyperLogLog of up to 12 KB.
    """
    limit = conf.get("STASTE_COMBINATIONS_WARNING")
    found: list[checks.CheckMessage] = []
    for metrica in registry:
        possible = combinations(metrica)
        if possible is None or possible > limit:
            found.append(_too_many_fields(metrica, possible, limit))
        counted = hyperloglogs(metrica)
        if counted is None or counted > conf.get("STASTE_UNIQUES_WARNING"):
            found.append(_too_many_hyperloglogs(metrica, counted))
    return found


def _unbounded(metrica: Metrica) -> str:
    unbounded = [name for name, axis in metrica.axes.items() if axis_values(axis) is None]
    return f"its axis {', '.join(map(repr, unbounded))} stores values without limit (max_choices=0)"


def _kept(metrica: Metrica, kept: Combinations) -> str:
    return "" if kept.everything else f" (it keeps {kept.describe()})"


def _too_many_fields(metrica: Metrica, possible: int | None, limit: int) -> checks.CheckMessage:
    if possible is None:
        what = _unbounded(metrica)
        reach = "so its buckets can grow without bound"
    else:
        fields = possible * len(metrica.families)
        if metrica.combinations.everything:
            factors = " x ".join(str((axis_values(axis) or 0) + 1) for axis in metrica.axes.values())
            what = f"its axes allow {possible:,} combinations ({factors})"
        else:
            what = f"its kept combinations{_kept(metrica, metrica.combinations)} allow {possible:,}"
        reach = f"so one bucket can reach {fields:,} fields, about {human_bytes(fields * BYTES_PER_FIELD)}"
    return checks.Warning(
        f"Metrica {metrica.name!r}: {what}, {reach}; its all-time and yearly buckets never expire.",
        hint="Keep fewer combinations of its axes (Metrica(combinations=2): filters and breakdowns by one or "
        "two axes at a time), lower max_choices of its stored axes (Axis(max_choices=...), or "
        "STASTE_MAX_CHOICES), or split it into metricas with fewer axes; docs/performance.md (sizing) says how "
        f"much a metrica takes. This warning starts at STASTE_COMBINATIONS_WARNING = {limit:,} combinations.",
        obj=metrica,
        id="staste.W005",
    )


def _too_many_hyperloglogs(metrica: Metrica, counted: int | None) -> checks.CheckMessage:
    limit = conf.get("STASTE_UNIQUES_WARNING")
    kept = _kept(metrica, metrica.uniques_axes)
    if counted is None:
        what = f"{_unbounded(metrica)} and it counts unique ids by it"
        reach = "so its HyperLogLogs (12 KB each once dense) can grow without bound"
    else:
        buckets = uniques_buckets(metrica)
        what = f"its unique ids are counted in {counted:,} HyperLogLogs a bucket{kept}"
        reach = (
            f"up to {human_bytes(counted * HYPERLOGLOG_BYTES)} a bucket once dense (12 KB each), and "
            f"{human_bytes(counted * HYPERLOGLOG_BYTES * buckets)} over the {buckets:,} buckets that keep them at "
            "once"
        )
    return checks.Warning(
        f"Metrica {metrica.name!r}: {what}, {reach}.",
        hint="Keep HyperLogLogs for fewer combinations (uniques_axes=1: the totals and each single axis; "
        'or a list of the axis sets you ask distinct ids by), fewer scales (uniques_scales=["month"]) or '
        "lower max_choices; docs/uniques.md says what they cost. This warning starts at "
        f"STASTE_UNIQUES_WARNING = {limit:,} HyperLogLogs a bucket.",
        obj=metrica,
        id="staste.W005",
    )


@checks.register(TAG)
def check_wait_replicas(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """staste.E005: STASTE_WAIT_REPLICAS must be a count, and its wait end before the socket's
    timeout (else a WAIT that waits its time would read as Redis unreachable)."""
    wanted, wait, socket_timeout = (
        conf.get("STASTE_WAIT_REPLICAS"),
        conf.get("STASTE_WAIT_TIMEOUT"),
        conf.get("STASTE_SOCKET_TIMEOUT"),
    )
    if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 0:
        problem = f"STASTE_WAIT_REPLICAS={wanted!r} is not a number of replicas (0 or more)."
    elif wanted and (not isinstance(wait, int | float) or wait <= 0):
        problem = f"STASTE_WAIT_TIMEOUT={wait!r} is not a number of seconds above 0."
    elif wanted and socket_timeout is not None and wait >= socket_timeout:
        problem = (
            f"STASTE_WAIT_TIMEOUT={wait:g} s is not shorter than STASTE_SOCKET_TIMEOUT={socket_timeout:g} s: "
            "a WAIT that takes its time would read as Redis unreachable."
        )
    else:
        return []
    return [
        checks.Error(
            problem,
            hint="STASTE_WAIT_REPLICAS is how many replicas must hold a buffered flush before it counts as "
            "written (0: none); STASTE_WAIT_TIMEOUT (seconds) how long a flush waits for them.",
            id="staste.E005",
        )
    ]


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


@checks.register(TAG)
def check_users_memory(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """staste.I004: what the users bitmaps of each metrica made with ``users=True`` can take at
    ``STASTE_MAX_USER_POSITION`` (a bitmap is position / 8 bytes), so the cap is chosen knowingly."""
    cap = positions.cap()
    retention = conf.retention()
    found: list[checks.CheckMessage] = []
    for metrica in registry:
        if not metrica.keeps_users:
            continue
        count, size = sizing.largest(metrica, retention, cap)
        found.append(
            checks.Info(
                f"Metrica {metrica.name!r} keeps users bitmaps of up to {human_bytes(cap // 8 + 1)} each "
                f"(STASTE_MAX_USER_POSITION = {cap:,}); with up to {count:,} of them alive (days, weeks and "
                f"months within retention), up to {human_bytes(size)}.",
                hint="A bitmap is as long as its highest user position / 8 bytes: lower STASTE_MAX_USER_POSITION, "
                "the day or month retention (STASTE_RETENTION) or users_axes to bound it (docs/cohorts.md).",
                obj=metrica,
                id="staste.I004",
            )
        )
    return found
