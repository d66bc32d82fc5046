"""What unique counts (``Metrica(uniques=True)``, ``kick(unique=...)``) cost: memory and time.

Run: ``python benchmarks/uniques.py`` (a Redis server of its own).  Prints

* the bytes one HyperLogLog key takes (``MEMORY USAGE``) for a number of distinct ids, and
  per id: sparse while small, 12 KB once dense (past ``hll-sparse-max-bytes``, 3,000 bytes);
* the bytes of one bucket of a metrica with two axes (its 4 combinations) against its
  counters' hash;
* the time of a synchronous kick with ``unique=`` against one without, and of a buffered
  flush of distinct ids, measured in the same run.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IDS = (1, 10, 100, 1_000, 3_000, 10_000, 100_000, 1_000_000)


def hll_bytes(client, distinct: int) -> int:
    key = f"bench:{{u}}:{distinct}"
    client.delete(key)
    for start in range(0, distinct, 10_000):
        client.pfadd(key, *[f"visitor-{i}" for i in range(start, min(distinct, start + 10_000))])
    return int(client.memory_usage(key, samples=0))


def measure(ids: tuple[int, ...] = IDS, kicks: int = 300, rounds: int = 9, flush_ids: int = 100_000) -> list[str]:
    """The report's lines, measured on the Redis staste is configured for."""
    from staste import buffer, connection
    from staste.axis import Axis
    from staste.metrica import Metrica

    client = connection.get_redis()
    lines = ["| distinct ids | bytes (MEMORY USAGE) | bytes per id |", "|---:|---:|---:|"]
    for distinct in ids:
        size = hll_bytes(client, distinct)
        lines.append(f"| {distinct:,} | {size:,} | {size / distinct:,.2f} |")

    axes = [("gender", Axis(choices=["boy", "girl"])), ("country", Axis(choices=["fr", "de", "es"]))]
    for per_value in (10, 1000):
        m = Metrica(name=f"bucket{per_value}", axes=axes, uniques=True, uniques_scales=[])
        box = buffer.Buffer(background=False)
        for i in range(per_value):
            box.add(m.prepare_kick(gender="boy", country="fr", unique=f"v{i}"))
        box.flush()
        hlls = sum(int(client.memory_usage(key, samples=0)) for key in client.scan_iter(m.base + "u:*"))
        counters = int(client.memory_usage(m.base + "all", samples=0))
        lines.append(
            f"one bucket, 4 combinations, {per_value:,} distinct ids: HyperLogLogs {hlls:,} bytes, "
            f"counters' hash {counters:,} bytes"
        )

    plain = Metrica(name="plain", axes=axes)
    counted = Metrica(name="counted", axes=axes, uniques=True)
    plain.kick(gender="boy", country="fr")
    counted.kick(gender="boy", country="fr", unique="x")
    timings: dict[str, list[float]] = {"plain": [], "unique": []}
    for r in range(rounds):  # interleaved rounds, medians
        for name, kick in (
            ("plain", lambda i: plain.kick(gender="girl", country="de")),
            ("unique", lambda i, r=r: counted.kick(gender="girl", country="de", unique=f"{r}-{i}")),
        ):
            start = time.perf_counter()
            for i in range(kicks):
                kick(i)
            timings[name].append((time.perf_counter() - start) / kicks)
    base, with_ids = statistics.median(timings["plain"]), statistics.median(timings["unique"])
    lines.append(
        f"sync kick, 2 axes: {base * 1e6:.0f} µs without unique=, {with_ids * 1e6:.0f} µs with it "
        f"(x{with_ids / base:.2f}; 4 combinations x 4 buckets = 16 PFADDs more)"
    )
    box = buffer.Buffer(background=False)
    flush_m = Metrica(name="flush", axes=axes, uniques=True)
    for i in range(flush_ids):
        box.add(flush_m.prepare_kick(gender="boy", country="fr", unique=f"f{i}"))
    start = time.perf_counter()
    box.flush()
    took = time.perf_counter() - start
    lines.append(f"buffered flush of {flush_ids:,} distinct ids (x 16 HyperLogLogs): {took:.2f} s")
    return lines


def main() -> None:
    from benchmarks import settings
    from staste.testing import RedisServer

    with RedisServer() as server:
        settings.configure(server.url)
        print("\n".join(measure()))


if __name__ == "__main__":
    main()
