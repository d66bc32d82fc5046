"""Buffered kicks: ``kick(buffered=True)`` adds to the process' buffer, a thread writes it.

What is timed is the whole cost to the process: the kicks themselves, the background thread's
flushes that run meanwhile (they take the GIL), and a final flush, so that every kick timed is
in Redis when the clock stops.  Redis CPU is measured over the same span.  The buffer may hold
``BUFFER_MAX_KEYS`` distinct kicks, so that the five-axis run, whose kicks are nearly all
distinct, drops none.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.test import override_settings

from benchmarks import measure, workloads
from staste import buffer, connection

BUFFER_MAX_KEYS = 100_000


@dataclass
class BufferedRow:
    axes: int
    kicks: int  # per round
    rate: float  # kicks per second
    redis_cpu_us: float  # Redis CPU per kick
    distinct: float  # kicks written per round: what merging identical kicks leaves
    dropped: int


@override_settings(STASTE_BUFFER_MAX_KEYS=BUFFER_MAX_KEYS)
def buffered_rates(axis_counts: Sequence[int], kicks: int, rounds: int) -> list[BufferedRow]:
    client = connection.get_redis()
    rows = []
    for count in axis_counts:
        metrica = workloads.metrica(f"bench_buffered_{count}", count)
        events = workloads.events(count, kicks)
        kick = metrica.kick
        buffer.flush()
        for event in events[:100]:  # warm-up: the buckets exist, the script is loaded
            kick(buffered=True, **event)
        buffer.flush()
        spent, cpu = [], 0.0
        before = buffer.stats()
        for _ in range(rounds):
            before_cpu = measure.server_cpu(client)
            start = time.perf_counter()
            for event in events:
                kick(buffered=True, **event)
            buffer.flush()
            spent.append(time.perf_counter() - start)
            cpu += measure.server_cpu(client) - before_cpu
        after = buffer.stats()
        rows.append(
            BufferedRow(
                count,
                kicks,
                kicks / statistics.median(spent),
                cpu / (kicks * rounds) * 1e6,
                (after["written"] - before["written"]) / rounds,
                after["dropped"] - before["dropped"],
            )
        )
    return rows
