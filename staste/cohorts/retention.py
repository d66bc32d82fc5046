"""Retention tables: of the users who did ``first`` in a period, how many did ``then`` in that
period and each one after it.

One row per cohort (a day, ISO week or month), oldest first; ``returned[0]`` is the cohort's own
period.  Each cell is the BITCOUNT of ``first[cohort] & then[cohort + j]``: about
``periods * (periods + 1) / 2`` bounded BITOPs in one pipeline (staste/cohorts/bitops.py).
Cohorts and cells after the current period are left out (they have not happened).

>>> for row in retention(first=signed_up, then=visited, period="week", periods=8):  # doctest: +SKIP
...     print(row.start, row.size, row.returned)
2024-01-01 120 [120, 64, 51, ...]
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from staste.cohorts import bitops, layout, reading

#: Most periods a table has.
MAX_PERIODS = 60


@dataclass(frozen=True)
class Cohort:
    """The users who did ``first`` in the period starting on ``start``, and who came back."""

    start: datetime.date
    period: str
    size: int
    returned: tuple[int, ...]

    @property
    def shares(self) -> tuple[float | None, ...]:
        """Each of ``returned`` as a share of ``size`` (None for an empty cohort)."""
        return tuple(count / self.size if self.size else None for count in self.returned)


def retention(
    first: Any, then: Any, period: str = "week", periods: int = 8, since: Any = None, until: Any = None
) -> list[Cohort]:
    """The retention table of ``periods`` cohorts of ``period`` ("day", "week", "month")
    starting with the one holding ``since`` (default: the one ``periods - 1`` before the
    period holding ``until``, today by default).  ``first`` and ``then`` are metricas made with
    ``users=True`` (or filtered on one of their ``users_axes``)."""
    starts, comes_back = reading.step_of(first), reading.step_of(then)
    if period not in layout.PERIODS:
        raise ValueError(f"period must be one of {', '.join(layout.PERIODS)}, not {period!r}")
    if isinstance(periods, bool) or not isinstance(periods, int) or not 1 <= periods <= MAX_PERIODS:
        raise ValueError(f"periods must be a whole number from 1 to {MAX_PERIODS}, not {periods!r}")
    today = reading.day_of(until)
    current = layout.period_of(period, today)
    oldest = current.shifted(1 - periods) if since is None else layout.period_of(period, reading.day_of(since))
    cohorts = [oldest.shifted(c) for c in range(periods)]
    cohorts = [cohort for cohort in cohorts if cohort.first <= today]
    reading.check_kept(cohorts[:1], starts.metrica.name)
    reading.check_kept(cohorts[:1], comes_back.metrica.name)
    plan = bitops.Plan()
    cells = plan.new("cell")
    rows: list[tuple[int, list[int]]] = []
    for at, cohort in enumerate(cohorts):
        size = plan.count(starts.key(cohort))
        counted = []
        for later in cohorts[at:]:
            plan.bitop("AND", cells, [starts.key(cohort), comes_back.key(later)])
            counted.append(plan.count(cells))
        rows.append((size, counted))
    replies = plan.run()
    return [
        Cohort(cohort.first, period, int(replies[size]), tuple(int(replies[cell]) for cell in counted))
        for cohort, (size, counted) in zip(cohorts, rows, strict=True)
    ]
