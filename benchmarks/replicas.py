"""What ``STASTE_WAIT_REPLICAS`` costs a buffered writer (issue 20, item 6).

A primary of its own with one replica, on loopback.  One thread kicks the 5-axis workload of
benchmarks/buffered.py, buffered, in rounds that each end with a flush (so that every kick timed
is confirmed); rounds with WAIT (``STASTE_WAIT_REPLICAS=1``) alternate with rounds without, on
the same events, so load on the machine hits both alike.  Reported: kicks per second (median
round), the ratio of the paired rounds' times, the flushes, and the WAITs a round sent.

The cost is a round trip per flush and primary (PEXPIRE then WAIT, answered once the replica
acknowledged): a buffered flush carries a second of kicks, so it is paid once a second.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import redis
from django.test import override_settings

from benchmarks import measure, workloads
from staste import buffer, connection
from staste.testing import replicated_server

AXES = 5


@dataclass
class ReplicaRow:
    what: str
    rate: float  # kicks per second, median round
    flushes: float  # per round
    waits: float  # WAIT commands per round
    slower: float  # paired ratio of round times against the rounds without WAIT (1.0 for those)


@dataclass
class WaitCost:
    wait_ms: float  # one confirmation (PEXPIRE + WAIT, pipelined), median
    ping_ms: float  # one PING on the same server, median: a bare round trip


def _waits(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def compare(kicks: int, rounds: int, probes: int = 500) -> tuple[list[ReplicaRow], WaitCost]:
    with replicated_server() as (primary, _):
        admin = redis.Redis(port=primary.port)
        try:
            rows = _rounds(primary.url, admin, kicks, rounds)
            return rows, _wait_cost(primary.url, admin, probes)
        finally:
            admin.close()


def _wait_cost(url: str, admin: redis.Redis, probes: int) -> WaitCost:
    """What confirming a flush costs by itself: Pipe.replicated() against a bare PING."""
    from staste.pipe import Pipe

    key = "bench_replicas:w:probe"
    admin.set(key, 1)
    with override_settings(STASTE_REDIS_URL=url):
        connection.reset()
        client = connection.get_redis()
        pipe = Pipe()
        try:
            timed = measure.rounds_of(
                {"wait": lambda: pipe.replicated([key], 1, 0.5), "ping": client.ping},
                probes,
            )
        finally:
            pipe.close()
            connection.reset()
    return WaitCost(statistics.median(timed["wait"]) * 1000, statistics.median(timed["ping"]) * 1000)


def _rounds(url: str, admin: redis.Redis, kicks: int, rounds: int) -> list[ReplicaRow]:
    events = workloads.events(AXES, kicks)
    spent: dict[int, list[float]] = {0: [], 1: []}
    flushes: dict[int, int] = {0: 0, 1: 0}
    waits: dict[int, int] = {0: 0, 1: 0}
    with override_settings(STASTE_REDIS_URL=url):
        connection.reset()
        metrica = workloads.metrica("bench_replicas", AXES)
        box = buffer.Buffer(background=True)
        previous, buffer.default = buffer.default, box
        try:
            for event in events[:100]:  # warm-up: the buckets exist, the scripts are loaded
                metrica.kick(buffered=True, **event)
            box.flush()
            for round_number in range(rounds):
                for wanted in (0, 1) if round_number % 2 == 0 else (1, 0):  # (neither always first)
                    with override_settings(STASTE_WAIT_REPLICAS=wanted):
                        before, waited = box.stats()["flushes"], _waits(admin)
                        start = time.perf_counter()
                        for event in events:
                            metrica.kick(buffered=True, **event)
                        box.flush()
                        spent[wanted].append(time.perf_counter() - start)
                        flushes[wanted] += box.stats()["flushes"] - before
                        waits[wanted] += _waits(admin) - waited
            if box.stats()["pending"] or box.stats()["dropped"]:
                raise RuntimeError(f"the benchmark lost kicks: {box.stats()}")
        finally:
            buffer.default = previous
            box.close()
            connection.reset()
    slower = measure.paired_ratio(spent[1], spent[0])
    return [
        ReplicaRow(
            "STASTE_WAIT_REPLICAS=0" if wanted == 0 else "STASTE_WAIT_REPLICAS=1",
            kicks / statistics.median(spent[wanted]),
            flushes[wanted] / rounds,
            waits[wanted] / rounds,
            slower if wanted else 1.0,
        )
        for wanted in (0, 1)
    ]
