"""Funnel and retention cost at 1,000,000 users: Redis time, read from INFO commandstats.

Day bitmaps of four steps over 30 days (and eight weeks' bitmaps for retention) are written
straight into a Redis of the benchmark's own, each over 1,000,000 users
(SETRANGE of seeded random bytes, as long as 1M users' kicks would leave them), then ``staste.funnel`` and
``staste.retention`` run against them.  Redis time is the microseconds Redis spent in BITOP,
BITCOUNT, EXPIRE and DEL (commandstats), the baseline one BITOP AND of two bitmaps measured in
the same run, so the ratio says how many such BITOPs a funnel is worth.

    python -m benchmarks.cohorts      (make bench runs it after benchmarks/run.py)
"""

from __future__ import annotations

import datetime
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

USERS = 1_000_000
DAYS = 30
STEPS = 4
ROUNDS = 5


def redis_usec(client) -> float:  # type: ignore[no-untyped-def]
    stats = client.info("commandstats")
    return sum(value["usec"] for name, value in stats.items() if name.startswith("cmdstat_"))


def fill(client, key: str, share: float, rng: random.Random) -> None:  # type: ignore[no-untyped-def]
    """A seeded bitmap of 1,000,000 users (125,000 bytes), denser for a larger ``share``: what a
    BITOP costs depends on the bitmaps' length, not on how many bits are set."""
    threshold = int(share * 256)
    client.setrange(
        key, 0, bytes(rng.getrandbits(8) if rng.randrange(256) < threshold * 8 else 0 for _ in range(USERS // 8))
    )


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    import redis
    from django.test.utils import override_settings

    from staste import connection
    from staste.cohorts import funnel, layout, retention
    from staste.metrica import Metrica
    from staste.testing import RedisServer

    with (
        RedisServer() as server,
        override_settings(STASTE_REDIS_URL=server.url, STASTE_METRICS_PREFIX="bench", STASTE_MAX_USER_POSITION=USERS),
    ):
        connection.reset()
        client = redis.Redis.from_url(server.url)
        steps = [Metrica(name=f"step{k}", axes=[], users=True) for k in range(STEPS)]
        until = datetime.date.today()
        since = until - datetime.timedelta(days=DAYS - 1)
        rng = random.Random(24)
        base = layout.users_base("bench")
        for k, metrica in enumerate(steps):
            share = 0.05 / (k + 1)  # fewer users at each step
            for offset in range(DAYS):
                period = layout.Period(layout.DAY, since + datetime.timedelta(days=offset))
                fill(client, layout.bitmap_key(base, metrica.name, period), share, rng)
            for week in range(8):
                period = layout.period_of(layout.WEEK, until).shifted(-week)
                fill(client, layout.bitmap_key(base, metrica.name, period), share * 3, rng)
        a, b = (
            layout.bitmap_key(base, steps[0].name, layout.Period(layout.DAY, since + datetime.timedelta(days=d)))
            for d in (0, 1)
        )

        def measured(action) -> tuple[float, float]:  # type: ignore[no-untyped-def]
            redis_times, walls = [], []
            for _ in range(ROUNDS):
                client.config_resetstat()
                start = time.perf_counter()
                action()
                walls.append(time.perf_counter() - start)
                redis_times.append(redis_usec(client) / 1000)
            return sorted(redis_times)[ROUNDS // 2], sorted(walls)[ROUNDS // 2] * 1000

        baseline, _ = measured(lambda: client.bitop("AND", "bench:{bench:users}:x", a, b))
        funnel_redis, funnel_wall = measured(lambda: funnel(steps, since, until, within=7))
        loose_redis, loose_wall = measured(lambda: funnel(steps, since, until))
        table_redis, table_wall = measured(lambda: retention(steps[0], steps[1], "week", 8, until=until))
        print(f"\n## Cohorts at {USERS:,} users ({DAYS} days, {STEPS} steps; medians of {ROUNDS} rounds)\n")
        print("| read | Redis time | / one BITOP AND | wall time (Python included) |")
        print("| --- | ---: | ---: | ---: |")
        print(f"| one BITOP AND of two day bitmaps (baseline) | {baseline:.2f} ms | 1x | |")
        for label, spent, wall in (
            (f"funnel, {STEPS} steps, {DAYS} days, within=7", funnel_redis, funnel_wall),
            (f"funnel, {STEPS} steps, {DAYS} days, no within", loose_redis, loose_wall),
            ("retention, 8 weekly cohorts", table_redis, table_wall),
        ):
            print(f"| {label} | {spent:.1f} ms | {spent / baseline:.0f}x | {wall:.1f} ms |")
        connection.reset()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
