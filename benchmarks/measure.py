"""Timing on a shared, noisy machine: interleaved rounds and medians, round trips, Redis CPU.

Alternatives are run in turn, round after round, and each is summarised by the median of
its rounds, so a burst of load elsewhere hits every alternative alike instead of one.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
import redis.connection


def rounds_of(alternatives: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each call of each alternative, calling them in turn ``rounds`` times."""
    durations: dict[str, list[float]] = {name: [] for name in alternatives}
    for _ in range(rounds):
        for name, call in alternatives.items():
            start = time.perf_counter()
            call()
            durations[name].append(time.perf_counter() - start)
    return durations


def interleaved(alternatives: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of one call of each alternative, calling them in turn ``rounds`` times."""
    return {name: statistics.median(spent) for name, spent in rounds_of(alternatives, rounds).items()}


def paired_ratio(slower: list[float], faster: list[float]) -> float:
    """The median over rounds of ``slower / faster``: each round's pair saw the same load."""
    return statistics.median(a / b for a, b in zip(slower, faster, strict=True))


@dataclass
class RoundTrips:
    count: int = 0


@contextlib.contextmanager
def count_round_trips(this_thread: bool = False) -> Iterator[RoundTrips]:
    """Count what redis-py sends: one ``send_packed_command`` per command or pipeline.

    ``this_thread``: count only what the calling thread sends (not a background flush).
    """
    seen = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command
    caller = threading.get_ident()

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if not this_thread or threading.get_ident() == caller:
            seen.count += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def server_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the Redis server has used (user + system, main thread and others)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def server_cpu_of(client: redis.Redis, work: Callable[[], object]) -> float:
    """Seconds of Redis CPU that ``work`` cost (INFO cpu before and after)."""
    before = server_cpu(client)
    work()
    return server_cpu(client) - before
