"""The async API against the sync one: the same queries and kicks, on the same Redis, in the
same run.

Each query is timed through ``query.<name>()`` and ``await query.a<name>()`` in interleaved
rounds (the async ones all in one event loop, as an ASGI server runs them); the ratio is the
median of the rounds' ratios (above 1: async is slower).  The async path shares the sync plan
and decoding, so the difference is redis.asyncio's cost per round trip.  The last rows are
what async is for: kicks from many requests at once on one loop (``asyncio.gather``) against
the same kicks one after the other through the sync client.
"""

from __future__ import annotations

import asyncio
import datetime
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio.connection

from benchmarks import measure, queries
from staste import async_connection, conf


@dataclass
class AsyncRow:
    what: str
    sync_ms: float
    async_ms: float
    ratio: float  # median of the rounds' async / sync
    round_trips: int  # of the async call


def _calls(metrica: Any, now: datetime.datetime) -> dict[str, tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]]:
    values = metrica.values()
    day_ago, weeks_ago = now - datetime.timedelta(hours=24), now - datetime.timedelta(weeks=4)
    get = values.filter(method="GET")
    return {
        "total()": (values.total, values.atotal),
        "iterate('view'), 50 stored values": (lambda: get.iterate("view"), lambda: get.aiterate("view")),
        "iterate_averages('status'), 5 declared": (
            lambda: values.iterate_averages("status"),
            lambda: values.aiterate_averages("status"),
        ),
        "timeserie_counts_and_averages, 24 h by minute": (
            lambda: values.timeserie_counts_and_averages(day_ago, now, "minute"),
            lambda: values.atimeserie_counts_and_averages(day_ago, now, "minute"),
        ),
        "timeserie, 5 weeks by week (35 days)": (
            lambda: values.timeserie(weeks_ago, now, "week"),
            lambda: values.atimeserie(weeks_ago, now, "week"),
        ),
    }


def compare(kicks: int, rounds: int, burst: int = 200) -> list[AsyncRow]:
    now = conf.local()  # staste's clock, on its wall clock: a day of minutes is 1,441 buckets, DST or not
    metrica = queries.requests_metrica("bench_async")
    queries.fill_month(metrica, now, kicks)
    calls = _calls(metrica, now)

    async def timed() -> list[AsyncRow]:
        rows = []
        for what, (sync_call, async_call) in calls.items():
            assert sync_call() == await async_call()  # the same numbers, or the comparison means nothing
            sync_spent, async_spent = [], []
            for _ in range(rounds):
                start = time.perf_counter()
                sync_call()
                sync_spent.append(time.perf_counter() - start)
                start = time.perf_counter()
                await async_call()
                async_spent.append(time.perf_counter() - start)
            rows.append(
                AsyncRow(
                    what,
                    statistics.median(sync_spent) * 1000,
                    statistics.median(async_spent) * 1000,
                    measure.paired_ratio(async_spent, sync_spent),
                    await _async_round_trips(async_call),
                )
            )
        rows.append(await _kicks(metrica, rounds, burst))
        await async_connection.aclose()
        return rows

    return asyncio.run(timed())


async def _async_round_trips(call: Callable[[], Awaitable[Any]]) -> int:
    """What ``call`` sends through redis.asyncio connections: one send per command or pipeline."""
    sent = 0
    original = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def counting(self: Any, command: Any, check_health: bool = True) -> None:
        nonlocal sent
        sent += 1
        await original(self, command, check_health)

    redis.asyncio.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        await call()
    finally:
        redis.asyncio.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    return sent


async def _kicks(metrica: Any, rounds: int, burst: int) -> AsyncRow:
    """``burst`` kicks: one after the other with kick(), all at once on the loop with akick()."""
    kick = {"view": "app.views.page_1", "method": "GET", "status": "2xx", "value": 0.1}
    await metrica.akick(**kick)
    sync_spent, async_spent = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(burst):
            metrica.kick(**kick)
        sync_spent.append(time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.gather(*(metrica.akick(**kick) for _ in range(burst)))
        async_spent.append(time.perf_counter() - start)
    return AsyncRow(
        f"{burst} kicks, one round trip each: kick() in turn vs akick() gathered",
        statistics.median(sync_spent) * 1000,
        statistics.median(async_spent) * 1000,
        measure.paired_ratio(async_spent, sync_spent),
        1,
    )
