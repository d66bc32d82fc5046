"""Memory: bytes per distinct combination and per day of data, under Redis' hash encodings.

Bytes are ``MEMORY USAGE <key> SAMPLES 0`` summed over a metrica's keys (exact, and unlike
``INFO memory`` not blurred by the allocator).  Redis keeps a hash in the compact *listpack*
encoding while it has at most ``hash-max-listpack-entries`` fields of at most
``hash-max-listpack-value`` bytes (``hash-max-ziplist-*`` before Redis 7); the day of data is
written under three settings of the first to show what compactness costs in CPU.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from benchmarks import measure, workloads
from benchmarks.queries import requests_metrica
from staste import conf, connection, scripts
from staste.axis import Axis, StoredChoiceAxis
from staste.kicks import batch_keys_and_args
from staste.metrica import Metrica

DAY = datetime.datetime(2010, 2, 7)
SCALE_OF_DIGITS = {4: "year", 6: "month", 8: "day", 10: "hour", 12: "minute"}
#: How long each scale's buckets are kept by default, in days (see STASTE_RETENTION).
KEPT_DAYS = {"minute": 1, "hour": 14, "day": 185}


def metrica_keys(client: redis.Redis, base: str) -> Iterator[str]:
    for key in client.scan_iter(match=base.replace("{", "\\{").replace("}", "\\}") + "*", count=1000):
        yield key.decode()


def kind_of(base: str, key: str) -> str:
    tail = key[len(base) :]
    if tail.isdigit():
        return SCALE_OF_DIGITS[len(tail)]
    if tail == "all":
        return "all time"
    return tail.split(":", 1)[0]  # years, choices, signature


def usage(client: redis.Redis, base: str) -> Counter[str]:
    """Bytes per kind of key (scale, sets, signature) of the metrica at ``base``."""
    found: Counter[str] = Counter()
    for key in metrica_keys(client, base):
        found[kind_of(base, key)] += client.memory_usage(key, samples=0) or 0
    return found


def encodings(client: redis.Redis, base: str) -> Counter[str]:
    # Redis before 7 calls the compact encoding a ziplist.
    return Counter(
        client.object("encoding", key).decode().replace("ziplist", "listpack")
        for key in metrica_keys(client, base)
        if kind_of(base, key) != "choices"
    )


@dataclass
class CombinationRow:
    encoding: str
    bytes_per_value: float
    fields_per_value: int

    @property
    def bytes_per_field(self) -> float:
        return self.bytes_per_value / self.fields_per_value


def per_combination(new_values: int, grown: int = 600) -> list[CombinationRow]:
    """Bytes a never-seen value of a stored axis adds to buckets that exist (2 axes: view and
    method), while the hashes are listpacks and once they are past 512 fields (hashtables)."""
    client = connection.get_redis()
    rows = []
    for encoding, existing in (("listpack", 0), ("hashtable", grown)):
        metrica = Metrica(
            name=f"bench_combinations_{encoding}",
            axes=[("view", StoredChoiceAxis(max_choices=0)), ("method", Axis(choices=workloads.METHODS))],
        )
        earlier = [metrica.prepare_kick(date=DAY, view=f"old-{n}", method="GET") for n in range(existing + 1)]
        scripts.run("kick", *batch_keys_and_args(earlier))
        before = sum(usage(client, metrica.base).values())
        kicks = [metrica.prepare_kick(date=DAY, view=f"new-{n}", method="GET") for n in range(new_values)]
        scripts.run("kick", *batch_keys_and_args(kicks))
        after = sum(usage(client, metrica.base).values())
        # '*|=new-n' and '=GET|=new-n' in each of the 6 buckets, and one member of the choices set
        rows.append(CombinationRow(encoding, (after - before) / new_values, 2 * 6))
    return rows


@dataclass
class DayRow:
    listpack_entries: int
    kicks: int
    by_kind: dict[str, int]
    hashes: dict[str, int]  # encoding -> how many
    cpu_us_per_kick: float

    @property
    def per_day(self) -> int:
        """Bytes one more day adds: its day, hour and minute buckets."""
        return sum(self.by_kind.get(scale, 0) for scale in KEPT_DAYS)

    @property
    def steady_state(self) -> int:
        """Bytes kept at default retention by buckets finer than a month, for this traffic."""
        return sum(self.by_kind.get(scale, 0) * days for scale, days in KEPT_DAYS.items())


def one_day(kicks: int, listpack_entries: int, batch: int = 500) -> DayRow:
    """A day of requests (``kicks`` of them) written with ``hash-max-listpack-entries`` set."""
    client = connection.get_redis()
    setting = "hash-max-listpack-entries"
    saved = client.config_get(setting).get(setting)
    if saved is None:  # Redis before 7 names it after the ziplist
        setting = "hash-max-ziplist-entries"
        saved = client.config_get(setting)[setting]
    metrica = requests_metrica(f"bench_day_{listpack_entries}")
    rng = random.Random(workloads.SEED)
    events = workloads.events(3, kicks)
    latencies = workloads.latencies(kicks)
    prepared = [
        metrica.prepare_kick(
            value=latency / 1000,
            date=DAY + datetime.timedelta(seconds=rng.randrange(86400)),
            **event,
        )
        for event, latency in zip(events, latencies, strict=True)
    ]
    batches = [batch_keys_and_args(prepared[start : start + batch]) for start in range(0, kicks, batch)]
    client.config_set(setting, listpack_entries)
    try:

        def write() -> None:
            for script_keys, args in batches:
                scripts.run("kick", script_keys, args)

        cpu = measure.server_cpu_of(client, write)
    finally:
        client.config_set(setting, saved)
    by_kind = usage(client, metrica.base)
    return DayRow(listpack_entries, kicks, dict(by_kind), dict(encodings(client, metrica.base)), cpu / kicks * 1e6)


def hash_settings() -> dict[str, str]:
    client = connection.get_redis()
    found = client.config_get("hash-max-*")
    return {name: str(found[name]) for name in sorted(found)}


def prefix() -> str:
    return conf.get("STASTE_METRICS_PREFIX")
