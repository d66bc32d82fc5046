"""``manage.py staste_fake_data``: add a year (``--days``) of believable guests, with a progress bar.

Re-runnable: each run adds to what is there.  ``--seed`` makes a run repeatable.
"""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import staste
from guests import fakedata
from staste import connection
from staste.exceptions import RedisUnavailable


class Command(BaseCommand):
    help = (
        "Add --days days of realistic sample guests (visits, pocket money, visit lengths, returning guests) up to now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=365, help="how many days back to fill (default 365)")
        parser.add_argument("--per-day", type=float, default=120, help="average guests per day (default 120)")
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable run")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    @staste.timed("demo.fake_data")  # the Jobs page lists its runs
    def handle(self, *args: Any, **options: Any) -> None:
        days, per_day, seed = options["days"], options["per_day"], options["seed"]
        if not 1 <= days <= 3660:
            raise CommandError("--days must be between 1 and 3660")
        if not 0 < per_day <= 100_000:
            raise CommandError("--per-day must be above 0 and at most 100000")
        from tqdm import tqdm

        started = time.perf_counter()
        bar = tqdm(total=days, unit="day", desc="Fake guests", disable=options["no_progress"], file=self.stderr._out)
        written = [0]

        def advance(guests: int) -> None:
            written[0] += guests
            bar.update(1)
            bar.set_postfix(guests=f"{written[0]:,}", refresh=False)

        try:
            filled = fakedata.fill(days=days, per_day=per_day, seed=seed, progress=advance)
        except RedisUnavailable as exc:
            raise CommandError(
                f"{exc}\nStart that Redis server, or unset STASTE_REDIS_URL to use the embedded one."
            ) from None
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        writer = filled.writer
        self.stdout.write(
            f"Added {filled.guests:,} guests over {days} days ({filled.distinct_guests:,} different people): "
            f"{writer.kicks:,} kicks in {writer.writes:,} writes, "
            f"{seconds:.1f} s ({writer.kicks / max(seconds, 1e-9):,.0f} kicks/s) into {connection.describe()}."
        )
