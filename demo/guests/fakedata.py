"""A believable history of guests for the demo: daily and weekly rhythms, a summer high, a
growing audience, and ages, shops and spending that vary the way real ones do.

Writing goes through staste's batch kick script: kicks are validated with ``prepare_kick``,
identical ones merged, and up to ``KICKS_PER_CALL`` written per atomic EVALSHA, so a year of
data takes seconds rather than one round trip per kick.  Buckets that Redis would already have
expired (minutes older than a day, hours older than two weeks...) are not written at all, so
the data looks like what a site running for a year really holds.
"""

from __future__ import annotations

import datetime
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from guests import stats
from staste import conf, scripts, timescale
from staste.kicks import Kick, batch_keys_and_args
from staste.metrica import Metrica

KICKS_PER_CALL = 500

#: Relative traffic per hour of the day: quiet nights, a lunch bump, a busy evening.
HOURLY = [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 6, 7, 6.5, 6, 6, 7, 8, 9, 9, 8, 6, 4, 2]
#: Relative traffic per weekday, Monday first.
WEEKLY = [0.8, 0.85, 0.9, 1.0, 1.2, 1.5, 1.3]
#: Age groups (youngest, oldest, weight).
AGES = [(8, 12, 0.15), (13, 19, 0.35), (20, 35, 0.30), (36, 70, 0.20)]
#: Shop: (weight, typical spending): spending is log-normal around it.
SHOPS = {"candy": (0.30, 3.0), "cafe": (0.25, 6.0), "cinema": (0.20, 9.0), "toys": (0.15, 15.0), "books": (0.10, 12.0)}


@dataclass(frozen=True)
class Guest:
    when: datetime.datetime  # naive, in the staste time zone's calendar
    gender: str
    age: int
    shop: str
    spent: Decimal
    minutes: int


def guests_per_day(day: datetime.date, first: datetime.date, days: int, per_day: float, rng: random.Random) -> int:
    """How many guests came on ``day``: weekday, season, growth over the period, and noise."""
    season = 1 + 0.25 * math.sin(2 * math.pi * (day.timetuple().tm_yday - 100) / 365)
    growth = 0.7 + 0.6 * (day - first).days / max(days, 1)
    expected = per_day * WEEKLY[day.weekday()] * season * growth
    return max(0, round(rng.gauss(expected, expected * 0.12)))


def make_guest(when: datetime.datetime, rng: random.Random) -> Guest:
    low, high, _ = rng.choices(AGES, weights=[w for _, _, w in AGES])[0]
    age = rng.randint(low, high)
    shops = list(SHOPS)
    weights = [SHOPS[s][0] * (1.8 if age < 13 and s in ("candy", "toys") else 1) for s in shops]
    shop = rng.choices(shops, weights=weights)[0]
    spent = Decimal(str(round(rng.lognormvariate(math.log(SHOPS[shop][1]), 0.5), 2)))
    minutes = round(min(240, max(5, rng.gauss(35 + (15 if age > 30 else 0), 15))))
    return Guest(when, "girl" if rng.random() < 0.52 else "boy", age, shop, spent, minutes)


def history(days: int, per_day: float, rng: random.Random, now: datetime.datetime) -> Iterator[list[Guest]]:
    """The guests of each of the last ``days`` days up to ``now`` (today so far included), a list a day."""
    first = (now - datetime.timedelta(days=days - 1)).date()
    hours = list(range(24))
    for offset in range(days):
        day = first + datetime.timedelta(days=offset)
        count = guests_per_day(day, first, days, per_day, rng)
        moments = []
        for hour in rng.choices(hours, weights=HOURLY, k=count):
            moment = datetime.datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60))
            if moment <= now:
                moments.append(moment)
        yield [make_guest(moment, rng) for moment in sorted(moments)]


class Writer:
    """Kicks merged and written in batches through staste's kick script.

    A batch holds the kicks of one metrica: all its keys share a Redis Cluster hash tag, so
    the script call also works on a cluster.
    """

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.pending: dict[str, dict[tuple, Kick]] = {}
        self.kicks = 0
        self.calls = 0
        self.retention = conf.retention()

    def kept_depth(self, when: datetime.datetime) -> int:
        """How many time scales of a moment's buckets Redis would still hold now."""
        depth = 0
        for scale in timescale.SCALES:
            keep = self.retention.get(scale)
            span = timescale.truncate(when, scale)
            if keep is not None and timescale.end(span) + datetime.timedelta(seconds=keep) <= self.now:
                break
            depth += 1
        return depth

    def add(self, metrica: Metrica, when: datetime.datetime, depth: int, value: object = 1, **axes: object) -> None:
        kick = metrica.prepare_kick(value, when, **axes)
        if depth < len(metrica.date_scales):  # leave out the buckets that would have expired
            kick = kick._replace(spans=tuple(span for span in kick.spans if len(span) <= depth))
        batch = self.pending.setdefault(metrica.name, {})
        key = kick.merge_key()
        held = batch.get(key)
        batch[key] = held.merged(kick) if held else kick
        self.kicks += 1
        if len(batch) >= KICKS_PER_CALL:
            self.write(batch)

    def write(self, batch: dict[tuple, Kick]) -> None:
        if batch:
            scripts.run("kick", *batch_keys_and_args(list(batch.values())))
            self.calls += 1
            batch.clear()

    def flush(self) -> None:
        for batch in self.pending.values():
            self.write(batch)


def fill(
    days: int = 365,
    per_day: float = 120,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, Writer]:
    """Add ``days`` days of guests up to now; returns (guests, the writer with its counts)."""
    rng = random.Random(seed)
    now = conf.local()
    writer = Writer(now)
    for metrica in (stats.guest_visits, stats.pocket_money, stats.visit_length):
        metrica.record_signature()
    total = 0
    for guests in history(days, per_day, rng, now):
        for guest in guests:
            depth = writer.kept_depth(guest.when)
            writer.add(stats.guest_visits, guest.when, depth, gender=guest.gender, age=guest.age)
            writer.add(stats.pocket_money, guest.when, depth, guest.spent, shop=guest.shop, gender=guest.gender)
            writer.add(stats.visit_length, guest.when, depth, guest.minutes, gender=guest.gender)
        total += len(guests)
        if progress:
            progress(len(guests))
    writer.flush()
    return total, writer
