"""A believable history of guests for the demo: daily and weekly rhythms, a summer high, a
growing audience, and ages, shops and spending that vary the way real ones do.

Writing goes the way a buffer flush writes (``staste.buffer.write``): kicks are validated with
``prepare_kick``, identical ones merged, and up to ``KICKS_PER_WRITE`` of them written at once,
each counter they share bumped once, in short script calls, so a year of data takes seconds
rather than one round trip per kick.  Buckets that Redis would already have
expired (minutes older than a day, hours older than two weeks...) are not written at all, so
the data looks like what a site running for a year really holds.

Guests have ids, so that some come back: a few hundred regulars make a quarter of the visits,
occasional guests come back now and then (recent ones more than those of months ago), and the
rest are new.  ``shop_visitors`` counts those ids in HyperLogLogs (``kick(unique=...)``).
"""

from __future__ import annotations

import datetime
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from guests import stats
from staste import buffer, conf, timescale
from staste.kicks import Kick
from staste.metrica import Metrica

KICKS_PER_WRITE = 500
#: Most unique ids one write adds (each goes to every HyperLogLog of its kick: a shop and '*',
#: in up to four buckets): the ids a write holds in memory while it merges.
IDS_PER_WRITE = 2000

#: Relative traffic per hour of the day: quiet nights, a lunch bump, a busy evening.
HOURLY = [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 6, 7, 6.5, 6, 6, 7, 8, 9, 9, 8, 6, 4, 2]
#: Relative traffic per weekday, Monday first.
WEEKLY = [0.8, 0.85, 0.9, 1.0, 1.2, 1.5, 1.3]
#: Age groups (youngest, oldest, weight).
AGES = [(8, 12, 0.15), (13, 19, 0.35), (20, 35, 0.30), (36, 70, 0.20)]
#: Shop: (weight, typical spending): spending is log-normal around it.
SHOPS = {"candy": (0.30, 3.0), "cafe": (0.25, 6.0), "cinema": (0.20, 9.0), "toys": (0.15, 15.0), "books": (0.10, 12.0)}
#: Who comes: REGULARS people make REGULAR_SHARE of the visits (some more than others);
#: RETURNING_SHARE are occasional guests who came before, picked about RETURN_LOOKBACK guests
#: back from the newest (an exponential: recent guests return more); the rest are new guests.
#: A year of 120 guests a day then sees about 21,000 people.
REGULARS = 300
REGULAR_SHARE = 0.25
RETURNING_SHARE = 0.35
RETURN_LOOKBACK = 3000


@dataclass(frozen=True)
class Person:
    guest_id: int  # what shop_visitors counts distinct: think of a loyalty card's number
    gender: str
    age: int


@dataclass(frozen=True)
class Guest:
    when: datetime.datetime  # naive, in the staste time zone's calendar
    guest_id: int
    gender: str
    age: int
    shop: str
    spent: Decimal
    minutes: int


class Population:
    """The people who come, each with an id, a gender and an age that stay theirs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count = 0
        self.regulars = [self.new_person() for _ in range(REGULARS)]
        # 1 / (rank + 20): the most faithful come about four times a week, the median one
        # every other week (in a year of 120 guests a day).
        self.regular_weights = list(itertools.accumulate(1 / (rank + 20) for rank in range(REGULARS)))
        self.occasional: list[Person] = []  # everyone else who came, oldest first

    def new_person(self) -> Person:
        rng = self.rng
        low, high, _ = rng.choices(AGES, weights=[w for _, _, w in AGES])[0]
        self.count += 1
        return Person(self.count, "girl" if rng.random() < 0.52 else "boy", rng.randint(low, high))

    def next_guest(self) -> Person:
        """Who comes in next: a regular, an occasional guest coming back, or someone new."""
        rng = self.rng
        draw = rng.random()
        if draw < REGULAR_SHARE:
            return rng.choices(self.regulars, cum_weights=self.regular_weights)[0]
        if draw < REGULAR_SHARE + RETURNING_SHARE:
            back = int(rng.expovariate(1 / RETURN_LOOKBACK))
            if back < len(self.occasional):
                return self.occasional[-1 - back]
        person = self.new_person()
        self.occasional.append(person)
        return person


def guests_per_day(day: datetime.date, first: datetime.date, days: int, per_day: float, rng: random.Random) -> int:
    """How many guests came on ``day``: weekday, season, growth over the period, and noise."""
    season = 1 + 0.25 * math.sin(2 * math.pi * (day.timetuple().tm_yday - 100) / 365)
    growth = 0.7 + 0.6 * (day - first).days / max(days, 1)
    expected = per_day * WEEKLY[day.weekday()] * season * growth
    return max(0, round(rng.gauss(expected, expected * 0.12)))


def make_guest(when: datetime.datetime, person: Person, rng: random.Random) -> Guest:
    """One visit of ``person``: where the pocket money went, how much, and how long they stayed."""
    age = person.age
    shops = list(SHOPS)
    weights = [SHOPS[s][0] * (1.8 if age < 13 and s in ("candy", "toys") else 1) for s in shops]
    shop = rng.choices(shops, weights=weights)[0]
    spent = Decimal(str(round(rng.lognormvariate(math.log(SHOPS[shop][1]), 0.5), 2)))
    minutes = round(min(240, max(5, rng.gauss(35 + (15 if age > 30 else 0), 15))))
    return Guest(when, person.guest_id, person.gender, age, shop, spent, minutes)


def history(days: int, per_day: float, rng: random.Random, now: datetime.datetime) -> Iterator[list[Guest]]:
    """The guests of each of the last ``days`` days up to ``now`` (today so far included), a list a day."""
    population = Population(rng)
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
        yield [make_guest(moment, population.next_guest(), rng) for moment in sorted(moments)]


class Writer:
    """Kicks merged and written in batches (``staste.buffer.write``), one metrica a batch."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.pending: dict[str, dict[tuple, Kick]] = {}
        # The unique ids of the pending kicks, per merge key, kept aside: Kick.merged() makes
        # the union of two kicks' ids, which copies them at every merge (quadratic here, where
        # a month's visits of a shop merge into one kick).  And how many a batch holds.
        self.ids: dict[tuple, dict[str, None]] = {}
        self.batch_ids: dict[str, int] = {}
        self.kicks = 0
        self.writes = 0
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

    def add(
        self,
        metrica: Metrica,
        when: datetime.datetime,
        depth: int,
        value: object = 1,
        unique: int | str | None = None,
        **axes: object,
    ) -> None:
        kick = metrica.prepare_kick(value, when, unique, **axes)
        if depth < len(metrica.date_scales):  # leave out the buckets that would have expired
            kick = kick._replace(spans=tuple(span for span in kick.spans if len(span) <= depth))
        name = metrica.name
        batch = self.pending.setdefault(name, {})
        key = kick.merge_key()
        if kick.unique:
            ids = self.ids.setdefault(key, {})
            if kick.unique[0] not in ids:
                ids[kick.unique[0]] = None
                self.batch_ids[name] = self.batch_ids.get(name, 0) + 1
            kick = kick._replace(unique=())
        held = batch.get(key)
        batch[key] = held.merged(kick) if held else kick
        self.kicks += 1
        if len(batch) >= KICKS_PER_WRITE or self.batch_ids.get(name, 0) >= IDS_PER_WRITE:
            self.write(name)

    def write(self, name: str) -> None:
        """Write the pending kicks of metrica ``name``."""
        batch = self.pending[name]
        if batch:
            kicks = [
                kick._replace(unique=tuple(self.ids.pop(key))) if key in self.ids else kick
                for key, kick in batch.items()
            ]
            buffer.write(kicks)
            self.writes += 1
            batch.clear()
            self.batch_ids[name] = 0

    def flush(self) -> None:
        for name in self.pending:
            self.write(name)


class Filled(NamedTuple):
    """What :func:`fill` added: guests (visits), the distinct people among them, and the writer."""

    guests: int
    distinct_guests: int
    writer: Writer


def fill(
    days: int = 365,
    per_day: float = 120,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Filled:
    """Add ``days`` days of guests up to now."""
    rng = random.Random(seed)
    now = conf.local()
    writer = Writer(now)
    for metrica in (stats.guest_visits, stats.pocket_money, stats.visit_length, stats.shop_visitors):
        metrica.record_signature()
    total = 0
    people: set[int] = set()
    for guests in history(days, per_day, rng, now):
        for guest in guests:
            depth = writer.kept_depth(guest.when)
            writer.add(stats.guest_visits, guest.when, depth, gender=guest.gender, age=guest.age)
            writer.add(stats.pocket_money, guest.when, depth, guest.spent, shop=guest.shop, gender=guest.gender)
            writer.add(stats.visit_length, guest.when, depth, guest.minutes, gender=guest.gender)
            writer.add(stats.shop_visitors, guest.when, depth, unique=guest.guest_id, shop=guest.shop)
            people.add(guest.guest_id)
        total += len(guests)
        if progress:
            progress(len(guests))
    writer.flush()
    return Filled(total, len(people), writer)
