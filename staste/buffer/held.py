"""The kicks a buffer holds until its next flush, merged: kicks that land on the same counters
(same metrica, time buckets, families and axis values: ``Kick.merge_key()``) are one entry whose
increments are added up.

Why: this is the hot path of a buffered kick, a dictionary update under a lock; a busy view
adds to one entry a minute however many requests it serves.  The unique ids of merged kicks
(``kick(unique=...)``) are kept as a set per entry.

What it holds is counted in bytes, estimated (``ENTRY_BYTES`` a kick, ``ID_BYTES`` and the id's
length an id, ``SET_BYTES`` an entry's first id: measured with tracemalloc, 3-axis kicks), so
that one bound, ``STASTE_BUFFER_MAX_BYTES``, holds over everything a buffer keeps (its
``limit`` is what the bound leaves once the flush under way is counted): past it, new ids are
not held (their kicks' counters still are), counted in ``stats()["dropped_ids"]``, and new
kicks are the buffer's to refuse (staste/buffer/__init__.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from typing import Any

from staste.kicks import Kick

logger = logging.getLogger("staste")

#: What one held kick takes, about (its Kick, its sums, its key and dict slot): 440 bytes
#: measured for a 3-axis kick.
ENTRY_BYTES = 450
#: What one held id takes beyond its length (the str and its slot in a set), and the set an
#: entry's first id makes.
ID_BYTES = 100
SET_BYTES = 300


class Held:
    """The kicks a buffer holds, each under its key with the sums merged into it so far."""

    __slots__ = ("bytes", "entries", "ids", "ids_dropped", "limit", "since", "uniques")

    def __init__(self, limit: int = 2**62) -> None:
        self.since: float | None = None  # when the first kick was held (monotonic)
        # key -> [kick, sum, sum...]: the kick's counters and the increments added up for them
        self.entries: dict[Hashable, list[Any]] = {}
        # key -> the unique ids of the kicks merged under it (kick(unique=...)), when some had one
        self.uniques: dict[Hashable, set[str]] = {}
        self.ids = 0  # ids held (their sets' sizes added up)
        self.ids_dropped = 0  # ids not held: no room left under the limit
        self.bytes = 0  # what the kicks and ids held take, estimated
        self.limit = limit  # the most bytes it may hold

    def room(self, max_keys: int) -> bool:
        """Whether one more kick may be held."""
        return len(self.entries) < max_keys and self.bytes + ENTRY_BYTES <= self.limit

    def __len__(self) -> int:
        return len(self.entries)

    def fits(self, unique: Sequence[str]) -> bool:
        """Whether these ids may be held (the most they may take: each new, in a new set)."""
        return self.bytes + SET_BYTES + sum(ID_BYTES + len(one) for one in unique) <= self.limit

    @property
    def half_full(self) -> bool:
        """Half the bytes it may hold: time to write it."""
        return self.bytes * 2 >= self.limit

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
        self.bytes += ENTRY_BYTES
        if kick.unique:
            self._hold_ids(key, kick.unique)

    def merge(self, kick: Kick) -> None:
        """Hold ``kick``, merged into the kick held under its ``merge_key()`` if any."""
        key = kick.merge_key()
        if not self.add(key, kick.increments, kick.unique):
            self.hold(key, kick)

    def _hold_ids(self, key: Hashable, unique: Sequence[str]) -> None:
        ids = self.uniques.get(key)
        size = sum(ID_BYTES + len(one) for one in unique) + (SET_BYTES if ids is None else 0)
        if self.bytes + size > self.limit:
            if not self.ids_dropped:
                logger.warning(
                    "staste: the kick buffer holds STASTE_BUFFER_MAX_BYTES; new unique ids are dropped until it is "
                    "written (their kicks are still counted)",
                )
            self.ids_dropped += len(unique)
            return
        if ids is None:
            ids = self.uniques[key] = set()
        before = len(ids)
        ids.update(unique)
        added = len(ids) - before
        self.ids += added
        if added:  # (an id held already costs nothing more)
            self.bytes += size if added == len(unique) else size * added // len(unique)

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
