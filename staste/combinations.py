"""Which combinations of axes a metrica keeps: ``Metrica(combinations=...)`` and ``uniques_axes=``.

A field of a bucket counts the kicks of one combination of axis values; the axes given a value
in it (not "every value", ``*``) are its *fixed axes*.  A metrica of n axes keeps 2ⁿ sets of
fixed axes by default, each a field per value combination in every bucket.  Analysts filter
on one or two axes and break down by one more, so a wide metrica may keep only the sets it is
asked about, as OLAP cubes keep only their aggregation groups:

* ``k`` (an int): every set of at most ``k`` axes (all-time totals, each axis, each pair...);
* a list of sets, ``[("view", "status"), ("country",)]``: those sets and every set they
  contain (so the totals always).

A hierarchical axis is one axis, however deep its paths.  Pure logic: no Django, no Redis.

>>> kept = Combinations(("view", "method", "status"), 2, "combinations")
>>> kept.keeps({"view", "status"}), kept.keeps({"view", "method", "status"})
(True, False)
>>> kept.count([1, 1, 1])       # fields a kick of one value per axis writes: 1 + 3 + 3
7
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Sequence
from typing import Any

#: What ``combinations=`` and ``uniques_axes=`` take.
Setting = int | Sequence[Sequence[str]] | None


class Combinations:
    """The sets of fixed axes one metrica keeps (counters, or HyperLogLogs).

    ``setting`` is what the user gave (``None``: every set); ``name`` the keyword it was given
    as, for messages.  A set is a bit mask over the axes in their declared order.  Settings
    that keep every set are the same as ``None`` (:attr:`everything`), and equivalent settings
    have the same :meth:`signature`.
    """

    __slots__ = ("axes", "everything", "kept", "masks", "maximal", "name", "named", "setting", "wire")

    def __init__(self, axes: Sequence[str], setting: Any, name: str, within: Combinations | None = None) -> None:
        self.axes = tuple(axes)
        self.name = name
        width = len(self.axes)
        if setting is None:
            masks = set(range(1 << width))
        elif isinstance(setting, bool) or not isinstance(setting, (int, list, tuple)):
            raise TypeError(
                f"{name} must be a whole number (how many axes a kept combination may fix) or a list of "
                f"axis-name tuples, not {setting!r}"
            )
        elif isinstance(setting, int):
            if setting < 1:
                raise ValueError(f"{name}={setting!r}: keep at least single axes ({name}=1)")
            masks = {mask for mask in range(1 << width) if mask.bit_count() <= setting}
        else:
            masks = set()
            given = [self._mask(group) for group in setting]
            for mask in given:
                masks.update(_subsets(mask))
            missing = [axis for index, axis in enumerate(self.axes) if (1 << index) not in masks]
            if missing and width:
                raise ValueError(
                    f"{name}: axis {', '.join(map(repr, missing))} is in no kept combination, so it would "
                    f"never be counted; add ({missing[0]!r},) to {name}"
                )
            masks.add(0)
        if within is not None and not masks <= within.kept:
            outside = min(masks - within.kept, key=lambda mask: (mask.bit_count(), mask))
            raise ValueError(
                f"{name} keeps {self.label(outside)}, which {within.name} does not keep: a HyperLogLog is kept "
                f"only where counters are"
            )
        self.everything = len(masks) == 1 << width
        self.kept: frozenset[int] = frozenset(masks)
        self.setting = None if self.everything else setting
        #: Every kept set, the empty one (all-time totals) first, then by size and axis order:
        #: the order kick.lua and the buffer expand fields in (the every-value field first).
        self.masks: tuple[int, ...] = tuple(sorted(masks, key=lambda mask: (mask.bit_count(), _order(mask))))
        #: The kept sets no other kept set contains: what the signature and messages name.
        self.maximal: tuple[int, ...] = tuple(
            mask for mask in self.masks if not any(other != mask and other & mask == mask for other in self.masks)
        )
        #: The largest kept sets in the order the setting gives them (for messages).
        order = given if isinstance(setting, (list, tuple)) and not self.everything else []
        self.named: tuple[int, ...] = tuple(
            sorted(self.maximal, key=lambda mask: order.index(mask) if mask in order else len(order))
        )
        #: The masks as kick.lua reads them: '|'-joined texts of '0'/'1' per axis ('': every set).
        self.wire = "" if self.everything else "|".join(self.bits(mask) for mask in self.masks)

    def _mask(self, group: Any) -> int:
        if isinstance(group, str) or not isinstance(group, (list, tuple, set, frozenset)):
            hint = f" (write ({group!r},) for one axis)" if isinstance(group, str) else ""
            raise TypeError(f"{self.name}: each kept combination is a tuple of axis names, not {group!r}{hint}")
        mask = 0
        for axis in group:
            if axis not in self.axes:
                raise ValueError(f"{self.name}: {axis!r} is not an axis; the axes are {list(self.axes) or 'none'}")
            mask |= 1 << self.axes.index(axis)
        return mask

    def bits(self, mask: int) -> str:
        return "".join("1" if mask >> index & 1 else "0" for index in range(len(self.axes)))

    def mask_of(self, fixed: Iterable[str]) -> int:
        mask = 0
        for axis in fixed:
            mask |= 1 << self.axes.index(axis)
        return mask

    def keeps(self, fixed: Iterable[str]) -> bool:
        """Whether the fields that fix exactly the axes ``fixed`` are kept."""
        return self.everything or self.mask_of(fixed) in self.kept

    def label(self, mask: int) -> str:
        """A set of axes as a reader writes it: ``('view', 'status')``, ``()`` for totals."""
        return repr(tuple(axis for index, axis in enumerate(self.axes) if mask >> index & 1))

    def describe(self) -> str:
        """The setting as it would be written: ``combinations=2``, ``combinations=None``..."""
        if self.everything:
            return f"{self.name}=None"
        if isinstance(self.setting, int):
            return f"{self.name}={self.setting}"
        return f"{self.name}=[{', '.join(self.label(mask) for mask in self.named)}]"

    def widened(self, fixed: Collection[str]) -> str:
        """The setting that would keep the fields fixing ``fixed`` too (for refusals)."""
        if isinstance(self.setting, int):
            return f"{self.name}={len(fixed)}"
        wanted = self.mask_of(fixed)
        kept = [mask for mask in self.named if mask & wanted != mask]
        return f"{self.name}=[{', '.join(self.label(mask) for mask in [*kept, wanted])}]"

    def signature(self) -> str:
        """The kept sets, canonical ('' when every set is kept), for the axes signature."""
        if self.everything:
            return ""
        return ",".join("+".join(self.label_names(mask)) for mask in self.maximal)

    def label_names(self, mask: int) -> list[str]:
        return [axis for index, axis in enumerate(self.axes) if mask >> index & 1]

    def count(self, sizes: Sequence[int]) -> int:
        """How many fields a kick writes in one bucket when each axis has ``sizes[i]`` values
        (levels of a path) besides "every value": the sum over the kept sets of the product of
        their axes' sizes."""
        if self.everything:
            total = 1
            for size in sizes:
                total *= size + 1
            return total
        total = 0
        for mask in self.masks:
            product = 1
            for index, size in enumerate(sizes):
                if mask >> index & 1:
                    product *= size
            total += product
        return total

    def allows(self, mask: int) -> bool:
        return self.everything or mask in self.kept


def _order(mask: int) -> tuple[int, ...]:
    return tuple(index for index in range(mask.bit_length()) if mask >> index & 1)


def _subsets(mask: int) -> Iterable[int]:
    bits = [1 << index for index in range(mask.bit_length()) if mask >> index & 1]
    for size in range(len(bits) + 1):
        for chosen in itertools.combinations(bits, size):
            yield sum(chosen)
