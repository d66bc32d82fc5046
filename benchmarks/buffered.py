"""Buffered kicks: ``kick(buffered=True)`` adds to the process' buffer, a thread writes it.

What is timed is the whole cost to the process: the kicks themselves, the background thread's
flushes that run meanwhile (they take the GIL), the waits of a kick that finds the buffer
full (backpressure), and a final flush, so that every kick timed is in Redis when the clock
stops.  The buffer runs with the default settings (``STASTE_BUFFER_MAX_KEYS``,
``STASTE_FLUSH_INTERVAL``): a benchmark that needed a bigger buffer to lose nothing would
hide the very loss it must show.  Redis is measured over the same span: its CPU (``INFO
cpu``), the time its scripts ran (``INFO commandstats``) and its longest call (``SLOWLOG``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from benchmarks import measure, workloads
from staste import buffer, connection

#: Calls shorter than this (µs) are not logged: the longest call is reported when above it.
SLOWLOG_FLOOR_US = 200


@dataclass
class BufferedRow:
    axes: int
    kicks: int  # per round
    rate: float  # kicks per second (median round), final flush included
    redis_cpu_us: float  # Redis CPU per kick (INFO cpu)
    script_us: float  # time Redis spent in kick.lua per kick (INFO commandstats)
    distinct: float  # kicks written per round: what merging identical kicks leaves
    calls: float  # script calls per round
    mean_call_ms: float  # the time Redis spent in one script call, on average
    longest_ms: float  # the longest Redis call of the rounds (SLOWLOG), 0 when under the floor
    dropped: int  # over every round: must be 0


def script_usec(client: redis.Redis) -> tuple[float, int]:
    """Microseconds Redis spent running scripts, and the number of script calls, so far."""
    stats = client.info("commandstats")
    usec = calls = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        if name in stats:
            usec += stats[name]["usec"]
            calls += stats[name]["calls"]
    return usec, calls


def longest_call_ms(client: redis.Redis) -> float:
    """The longest command in SLOWLOG: a script call, or a command a script ran (Redis 7 logs
    those too); on a loaded machine, often one the scheduler stretched, whatever its work."""
    entries = client.slowlog_get(100_000)
    return max((entry["duration"] for entry in entries), default=0) / 1000


def buffered_rates(axis_counts: Sequence[int], kicks: int, rounds: int) -> list[BufferedRow]:
    client = connection.get_redis()
    saved = client.config_get("slowlog-*")
    client.config_set("slowlog-max-len", 100_000)
    client.config_set("slowlog-log-slower-than", SLOWLOG_FLOOR_US)
    rows = []
    try:
        for count in axis_counts:
            metrica = workloads.metrica(f"bench_buffered_{count}", count)
            events = workloads.events(count, kicks)
            kick = metrica.kick
            buffer.flush()
            for event in events[:100]:  # warm-up: the buckets exist, the script is loaded
                kick(buffered=True, **event)
            buffer.flush()
            client.slowlog_reset()
            spent, cpu = [], 0.0
            before = buffer.stats()
            usec_before, calls_before = script_usec(client)
            for _ in range(rounds):
                before_cpu = measure.server_cpu(client)
                start = time.perf_counter()
                for event in events:
                    kick(buffered=True, **event)
                buffer.flush()
                spent.append(time.perf_counter() - start)
                cpu += measure.server_cpu(client) - before_cpu
            after = buffer.stats()
            usec_after, calls_after = script_usec(client)
            rows.append(
                BufferedRow(
                    count,
                    kicks,
                    kicks / statistics.median(spent),
                    cpu / (kicks * rounds) * 1e6,
                    (usec_after - usec_before) / (kicks * rounds),
                    (after["written"] - before["written"]) / rounds,
                    (calls_after - calls_before) / rounds,
                    (usec_after - usec_before) / max(1, calls_after - calls_before) / 1000,
                    longest_call_ms(client),
                    after["dropped"] - before["dropped"],
                )
            )
    finally:
        client.config_set("slowlog-log-slower-than", saved["slowlog-log-slower-than"])
        client.config_set("slowlog-max-len", saved["slowlog-max-len"])
    return rows
