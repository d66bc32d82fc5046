"""Ordered funnels: how many users went through steps in order, and who dropped off where.

The ordering rule (day granularity, docs/cohorts.md): a user's first step is the first day
from ``since`` to ``until`` they did step 1 (call it ``t1``); they reach step k when they did
it on a day no earlier than the day they reached step k-1, no later than ``until``, and, with
``within=N`` days, no later than ``t1 + N`` (``within=0``: all on one day).  Steps done the
same day count in order; a step done before the one it follows does not count (until it is
done again after).

How it is counted, with day bitmaps only: per day d, in order, ``reached[1] |= did[1][d]``;
then for each later step ``reached[k] |= reached[k-1] & did[k][d]``, less (with ``within``) the
users whose first step was more than N days before d (``old``: the OR of ``did[1]`` up to
``d - N - 1``).  ``A & ~B`` is ``A ^ (A & B)``: BITOP NOT would pad a short bitmap with ones
only up to its own length.  So a funnel of ``s`` steps over ``n`` days is about
``n * (1 + 4 (s - 1))`` BITOPs, each bounded (staste/cohorts/bitops.py), in one pipeline.

>>> f = funnel([signed_up, added_to_cart, paid.filter(shop="north")], since, until, within=7)  # doctest: +SKIP
>>> [(step.label, step.count) for step in f]                                                   # doctest: +SKIP
[('Signed up', 1200), ('Added to cart', 430), ('Paid (shop=north)', 97)]
>>> f[2].lost_ids(limit=500)          # reached "Added to cart", not "Paid"   # doctest: +SKIP
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from staste.cohorts import bitops, layout, reading
from staste.cohorts.reading import Step

#: Most steps a funnel has.
MAX_STEPS = 10
#: Most days a funnel spans (retention bounds it too).
MAX_DAYS = 400


def within_days(within: Any) -> int | None:
    """``within`` as whole days (None: no limit); ValueError for anything else."""
    if within is None:
        return None
    if isinstance(within, datetime.timedelta):
        if within.seconds or within.microseconds or within.days < 0:
            raise ValueError(f"within must be whole days (funnels count days), not {within}")
        return within.days
    if isinstance(within, bool) or not isinstance(within, int) or within < 0:
        raise ValueError(f"within must be a number of days >= 0 or a timedelta of whole days, not {within!r}")
    return within


@dataclass(frozen=True)
class FunnelStep:
    """One step of a funnel: the users who reached it (``count``) and the step before."""

    funnel: Funnel
    index: int
    step: Step
    count: int

    @property
    def label(self) -> str:
        return self.step.label

    @property
    def previous(self) -> int:
        """The users who reached the step before (this step's own count for the first)."""
        return self.funnel.counts[self.index - 1] if self.index else self.count

    @property
    def lost(self) -> int:
        """The users who reached the step before but not this one."""
        return self.previous - self.count

    @property
    def conversion(self) -> float | None:
        """The share of the first step's users who reached this one (None: nobody started)."""
        first = self.funnel.counts[0]
        return self.count / first if first else None

    @property
    def step_conversion(self) -> float | None:
        """The share of the previous step's users who reached this one."""
        return self.count / self.previous if self.previous else None

    def lost_ids(self, limit: int = 1000) -> list[Any]:
        """The ids of the users who reached the step before but not this one (TooManyUsers
        past ``limit``); the first step loses nobody."""
        if not self.index:
            return []
        return self.funnel.lost_ids(self.index, limit)


@dataclass(frozen=True)
class Funnel:
    """The steps of one funnel over a range of days, in order."""

    steps: tuple[Step, ...]
    since: datetime.date
    until: datetime.date
    within: int | None
    counts: tuple[int, ...]

    def __iter__(self) -> Iterator[FunnelStep]:
        return (self[index] for index in range(len(self.steps)))

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> FunnelStep:
        index = range(len(self.steps))[index]
        return FunnelStep(self, index, self.steps[index], self.counts[index])

    def lost_ids(self, index: int, limit: int) -> list[Any]:
        """The ids of the users who reached step ``index - 1`` but not step ``index``."""
        plan, reached = _plan(self.steps, self.since, self.until, self.within)
        lost = plan.new("lost")
        plan.bitop("XOR", lost, [reached[index - 1], reached[index]])
        plan.run(keep=[lost])
        return reading.ids_of(lost, limit)


def _plan(
    steps: Sequence[Step], since: datetime.date, until: datetime.date, within: int | None
) -> tuple[bitops.Plan, list[str]]:
    """The BITOPs of a funnel (see the module's docstring), and the keys of who reached each step."""
    days = [since + datetime.timedelta(days=offset) for offset in range((until - since).days + 1)]
    periods = [layout.Period(layout.DAY, day) for day in days]
    plan = bitops.Plan()
    reached = [plan.new(f"r{k}") for k in range(len(steps))]
    old, met, unmet = plan.new("old"), plan.new("t"), plan.new("t2")
    has_old = False
    first = steps[0]
    for at, period in enumerate(periods):
        plan.bitop("OR", reached[0], [reached[0], first.key(period)])
        if within is not None and at - within - 1 >= 0:
            plan.bitop("OR", old, [old, first.key(periods[at - within - 1])])
            has_old = True
        for k in range(1, len(steps)):
            plan.bitop("AND", met, [reached[k - 1], steps[k].key(period)])
            if has_old:
                plan.bitop("AND", unmet, [met, old])
                plan.bitop("XOR", met, [met, unmet])
            plan.bitop("OR", reached[k], [reached[k], met])
    return plan, reached


def funnel(steps: Sequence[Any], since: Any, until: Any = None, within: Any = None) -> Funnel:
    """The users who did ``steps`` in order from the day of ``since`` to the day of ``until``
    (default today), both included, each step within ``within`` days of the first (None: any
    day of the range).  A step is a metrica made with ``users=True``, or
    ``metrica.filter(axis=value)`` for an axis of its ``users_axes``.  Errors naming the fix,
    before Redis is asked: NotKeptForUsers, RangeNotKept, ValueError."""
    found = tuple(reading.step_of(step) for step in steps)
    if not 2 <= len(found) <= MAX_STEPS:
        raise ValueError(f"a funnel has 2 to {MAX_STEPS} steps, not {len(found)}")
    first, last = reading.days(since, until)
    if (last - first).days + 1 > MAX_DAYS:
        raise ValueError(f"a funnel spans at most {MAX_DAYS} days, not {(last - first).days + 1}")
    days = within_days(within)
    reading.check_kept([layout.Period(layout.DAY, first)], found[0].metrica.name)
    plan, reached = _plan(found, first, last, days)
    answers = [plan.count(key) for key in reached]
    replies = plan.run()
    return Funnel(found, first, last, days, tuple(int(replies[at]) for at in answers))
