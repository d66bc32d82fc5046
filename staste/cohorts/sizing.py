"""How much memory a metrica's users bitmaps can take: what system check staste.I004 reports.

A bitmap is as long as its highest bit: ``position / 8`` bytes, so at most
``STASTE_MAX_USER_POSITION / 8``; Redis rounds a string's allocation up a little more.  A
metrica keeps one bitmap per day (for the day retention), per ISO week and per month (for the
month retention), times one plus the choices of each axis of ``users_axes``.

>>> bitmaps_kept({"day": 185 * 86400, "month": 3 * 366 * 86400}, 1)   # 186 days, 158 weeks, 38 months
382
"""

from __future__ import annotations

import math
from typing import Any

DAY = 86400
#: Periods counted for a retention of None (forever): ten years of them.
FOREVER = 10 * 366 * DAY


def bitmaps_kept(retention: dict[str, int | None], per_period: int) -> int:
    """Most bitmaps alive at once for one metrica: days, weeks and months within retention
    (plus the one being written), ``per_period`` each."""
    day_keep = retention.get("day") or FOREVER
    month_keep = retention.get("month") or FOREVER
    days = math.ceil(day_keep / DAY) + 1
    weeks = math.ceil(month_keep / (7 * DAY)) + 1
    months = math.ceil(month_keep / (30 * DAY)) + 1
    return (days + weeks + months) * per_period


def per_period(metrica: Any) -> int:
    """Bitmaps a metrica writes per period: all users, and one per choice of each users axis."""
    return 1 + sum(len(metrica.axes[name].choices) for name in metrica.users_axes)


def largest(metrica: Any, retention: dict[str, int | None], cap: int) -> tuple[int, int]:
    """(bitmaps kept, bytes they can take at the cap) for ``metrica``."""
    count = bitmaps_kept(retention, per_period(metrica))
    return count, count * (cap // 8 + 1)
