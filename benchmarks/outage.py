"""The buffer through an outage: what a process holds and how long a kick takes while Redis
is away (issue 20, item 3).

Redis is a port nobody listens on; one thread kicks a 3-axis metrica (1,000 x 50 x 11 values,
seeded) as fast as it can, buffered, once without ids and once with a new ``unique=`` id every
kick.  Measured: the process' resident memory growth (``/proc/self/statm``), what the buffer
says it holds (``stats()["bytes"]``, bounded by ``STASTE_BUFFER_MAX_BYTES``), and the time of
each kick (its longest, its 99.9th percentile, and how many took over 5 ms).
"""

from __future__ import annotations

import array
import gc
import os
import random
import time
from dataclasses import dataclass

from django.test import override_settings

from staste import buffer, connection
from staste.axis import StoredChoiceAxis
from staste.metrica import Metrica
from staste.testing import free_port


@dataclass
class OutageRow:
    what: str
    kicks: int
    dropped: int
    held_mib: float  # stats()["bytes"] at the end
    rss_mib: float  # resident memory growth
    longest_ms: float
    p999_ms: float
    over_5ms: int


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def outage(kicks: int) -> list[OutageRow]:
    rows = []
    rng = random.Random(20)
    seen = [(f"/p/{rng.randrange(1000)}", f"r{rng.randrange(50)}", f"c{rng.randrange(11)}") for _ in range(100_000)]
    for with_ids in (False, True):
        with override_settings(STASTE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
            connection.reset()
            metrica = Metrica(
                name="bench_outage",
                axes=[("page", StoredChoiceAxis()), ("referrer", StoredChoiceAxis()), ("country", StoredChoiceAxis())],
                uniques=with_ids,
            )
            box = buffer.Buffer(background=True)
            previous, buffer.default = buffer.default, box
            times = array.array("d", bytes(8 * kicks))  # (made before the baseline: not the buffer's)
            gc.collect()
            before = _rss()
            clock = time.perf_counter
            try:
                for n in range(kicks):
                    page, referrer, country = seen[n % len(seen)]
                    start = clock()
                    unique = f"visitor-{n}" if with_ids else None
                    metrica.kick(page=page, referrer=referrer, country=country, unique=unique, buffered=True)
                    times[n] = clock() - start
                stats = box.stats()
                grown = _rss() - before
            finally:
                buffer.default = previous
                box.reset()  # (forgotten: there is no Redis to write it to)
                box.close()
            connection.reset()
        ordered = sorted(times)
        rows.append(
            OutageRow(
                "a new unique= id every kick" if with_ids else "no ids",
                kicks,
                stats["dropped"],
                stats["bytes"] / 2**20,
                grown / 2**20,
                ordered[-1] * 1000,
                ordered[int(len(ordered) * 0.999)] * 1000,
                sum(1 for spent in ordered if spent > 0.005),
            )
        )
    return rows
