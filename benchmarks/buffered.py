"""Buffered kicks: ``kick(buffered=True)`` adds to the process' buffer, a thread writes it.

What is timed is the whole cost to the process: the kicks themselves, the background thread's
flushes that run meanwhile (they take the GIL), the waits of a kick that finds the buffer
full (backpressure), and a final flush, so that every kick timed is in Redis when the clock
stops.  The buffer runs with the default settings (``STASTE_BUFFER_MAX_KEYS``,
``STASTE_FLUSH_INTERVAL``): a benchmark that needed a bigger buffer to lose nothing would
hide the very loss it must show.

Redis is measured over the same rounds: its CPU (``INFO cpu``), the time its scripts ran
(``INFO commandstats``), the calls and its longest call (``SLOWLOG``), for this writer and for
the previous one (the writer of commit 957f8bd, benchmarks/previous.py) writing the same
seeded events into a metrica of the same shape: rounds of the two alternate, so load on the
machine hits both alike, and the ratio of their Redis time per kick is measured in one run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from benchmarks import measure, previous, workloads
from staste import buffer, connection

#: Calls shorter than this (µs) are not logged: the longest call is reported when above it.
SLOWLOG_FLOOR_US = 200


@dataclass
class RedisWork:
    """What one writer's rounds cost Redis, per kick and per round."""

    redis_cpu_us: float  # Redis CPU per kick (INFO cpu)
    script_us: float  # time Redis spent in scripts per kick (INFO commandstats: evalsha + eval)
    written: float  # kicks written per round: what merging identical kicks leaves
    calls: float  # script calls per round
    mean_call_ms: float  # the time Redis spent in one script call, on average
    longest_ms: float  # the longest Redis command of the rounds (SLOWLOG), 0 when under the floor


@dataclass
class BufferedRow:
    axes: int
    kicks: int  # per round
    rate: float  # kicks per second (median round), final flush included
    dropped: int  # over every round: must be 0
    new: RedisWork  # staste's buffered writer
    previous: RedisWork  # the writer of 957f8bd, the same events in the same run

    @property
    def ratio(self) -> float:
        """Redis script time per kick, previous writer over this one (above 1: this one is lighter)."""
        return self.previous.script_us / self.new.script_us if self.new.script_us else float("inf")


class _Meter:
    """Redis' counters summed over the rounds of one writer (rounds of others in between)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.cpu = 0.0
        self.usec = self.calls = 0
        self.longest_ms = 0.0

    def measure(self, work: Callable[[], object]) -> float:
        """Run ``work``, adding what it cost Redis; the seconds it took."""
        client = self.client
        client.slowlog_reset()
        usec, calls = script_usec(client)
        cpu = measure.server_cpu(client)
        start = time.perf_counter()
        work()
        took = time.perf_counter() - start
        self.cpu += measure.server_cpu(client) - cpu
        usec_after, calls_after = script_usec(client)
        self.usec += usec_after - usec
        self.calls += calls_after - calls
        self.longest_ms = max(self.longest_ms, longest_call_ms(client))
        return took

    def work(self, kicks: int, rounds: int, written: int) -> RedisWork:
        done = kicks * rounds
        return RedisWork(
            self.cpu / done * 1e6,
            self.usec / done,
            written / rounds,
            self.calls / rounds,
            self.usec / max(1, self.calls) / 1000,
            self.longest_ms,
        )


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
    """Per number of axes, ``rounds`` rounds of ``kicks`` buffered kicks, each followed by a
    round of the previous writer on the same events (SLOWLOG set to log what it measures)."""
    client = connection.get_redis()
    saved = client.config_get("slowlog-*")
    client.config_set("slowlog-max-len", 100_000)
    client.config_set("slowlog-log-slower-than", SLOWLOG_FLOOR_US)
    try:
        return [_rounds(client, count, kicks, rounds) for count in axis_counts]
    finally:
        client.config_set("slowlog-log-slower-than", saved["slowlog-log-slower-than"])
        client.config_set("slowlog-max-len", saved["slowlog-max-len"])


def _rounds(client: redis.Redis, count: int, kicks: int, rounds: int) -> BufferedRow:
    metrica = workloads.metrica(f"bench_buffered_{count}", count)
    shadow = workloads.metrica(f"bench_previous_{count}", count)  # the same shape, keys of its own
    events = workloads.events(count, kicks)
    kick, prepare = metrica.kick, shadow.prepare_kick
    previous_writer = previous.PreviousWriter(client)

    def buffered_round() -> None:
        for event in events:
            kick(buffered=True, **event)
        buffer.flush()

    def previous_round() -> None:
        for event in events:
            previous_writer.add(prepare(**event))
        previous_writer.flush()

    buffer.flush()
    for event in events[:100]:  # warm-up: the buckets exist, the scripts are loaded
        kick(buffered=True, **event)
        previous_writer.add(prepare(**event))
    buffer.flush()
    previous_writer.flush()
    new, old = _Meter(client), _Meter(client)
    spent = []
    before = buffer.stats()
    written_before = previous_writer.written
    for _ in range(rounds):
        spent.append(new.measure(buffered_round))
        old.measure(previous_round)
    after = buffer.stats()
    return BufferedRow(
        count,
        kicks,
        kicks / statistics.median(spent),
        after["dropped"] - before["dropped"],
        new.work(kicks, rounds, after["written"] - before["written"]),
        old.work(kicks, rounds, previous_writer.written - written_before),
    )
