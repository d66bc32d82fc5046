"""The kicks a buffer holds until its next flush, merged: kicks that land on the same counters
(same metrica, time buckets, families and axis values: ``Kick.merge_key()``) are one entry whose
increments are added up.

Why: this is the hot path of a buffered kick, a dictionary update under a lock; a busy view
adds to one entry a minute however many requests it serves.  The unique ids of merged kicks
(``kick(unique=...)``) are kept as a set per entry, up to ``MAX_HELD_IDS`` in all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from typing import Any

from staste.kicks import Kick

logger = logging.getLogger("staste")

#: Most distinct ids a buffer holds between flushes (kick(unique=...); about 100 bytes each in
#: Python): past half of it a flush starts at once, and past it (Redis unreachable for long)
#: new ids are not held (their kicks' counters still are), counted in stats()["dropped_ids"].
MAX_HELD_IDS = 1_000_000


class Held:
    """The kicks a buffer holds, each under its key with the sums merged into it so far."""

    __slots__ = ("entries", "ids", "ids_dropped", "since", "uniques")

    def __init__(self) -> None:
        self.since: float | None = None  # when the first kick was held (monotonic)
        # key -> [kick, sum, sum...]: the kick's counters and the increments added up for them
        self.entries: dict[Hashable, list[Any]] = {}
        # key -> the unique ids of the kicks merged under it (kick(unique=...)), when some had one
        self.uniques: dict[Hashable, set[str]] = {}
        self.ids = 0  # ids held (their sets' sizes added up)
        self.ids_dropped = 0  # ids not held: MAX_HELD_IDS reached

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def half_full_of_ids(self) -> bool:
        return self.ids * 2 >= MAX_HELD_IDS

    def add(self, key: Hashable, increments: Sequence[int], unique: Sequence[str] = ()) -> bool:
        """Add ``increments`` (and ``unique`` ids) to the kick held under ``key``; False
        (nothing done) when none is."""
        held = self.entries.get(key)
        if held is None:
            return False
        for index, increment in enumerate(increments, 1):
            held[index] += increment
        if unique:
            self._hold_ids(key, unique)
        return True

    def hold(self, key: Hashable, kick: Kick) -> None:
        """Hold ``kick`` under ``key`` (not held yet)."""
        if self.since is None:
            self.since = time.monotonic()
        self.entries[key] = [kick, *kick.increments]
        if kick.unique:
            self._hold_ids(key, kick.unique)

    def merge(self, kick: Kick) -> None:
        """Hold ``kick``, merged into the kick held under its ``merge_key()`` if any."""
        key = kick.merge_key()
        if not self.add(key, kick.increments, kick.unique):
            self.hold(key, kick)

    def _hold_ids(self, key: Hashable, unique: Sequence[str]) -> None:
        if self.ids >= MAX_HELD_IDS:
            if not self.ids_dropped:
                logger.warning(
                    "staste: the kick buffer holds MAX_HELD_IDS (%d) unique ids; new ids are dropped "
                    "until it is written (their kicks are still counted)",
                    MAX_HELD_IDS,
                )
            self.ids_dropped += len(unique)
            return
        ids = self.uniques.setdefault(key, set())
        before = len(ids)
        ids.update(unique)
        self.ids += len(ids) - before

    def kicks(self) -> list[Kick]:
        """Each held kick with its sums as increments (and the union of its ids)."""
        uniques = self.uniques
        found = []
        for key, entry in self.entries.items():
            kick, sums, ids = entry[0], tuple(entry[1:]), uniques.get(key)
            if ids is None and not kick.unique and sums == kick.increments:
                found.append(kick)  # held once, without ids: as it is
            else:
                found.append(kick._replace(increments=sums, unique=tuple(ids or ())))
        return found
