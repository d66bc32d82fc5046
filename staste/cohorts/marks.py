"""What a kick with ``user=`` marks, and the users.lua calls that set those bits.

A kick of a metrica made with ``users=True`` marks its user in three bitmaps (its day, ISO
week and month), and three more per axis in ``users_axes`` that the kick gave a value.  The
synchronous ``kick()`` writes its marks in one users.lua call before its counters (kick.lua);
a buffer flush merges the marks of all its kicks (a user's bits each set once) and sends them
in numbered users.lua calls of at most ``CALL_BUDGET`` bits, under the users base's writer key.
Setting a bit is idempotent, so a call sent again sets nothing twice.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import redis

from staste import conf, numbering
from staste.cohorts import layout, positions

#: Most bits one users.lua call sets (a SETBIT costs about what a HINCRBY does; a new id
#: costs a few commands more: see ``ID_COST``).
CALL_BUDGET = 2000
ID_COST = 4


class Mark(NamedTuple):
    """One user marked in some bitmaps: ``ref`` (``p<position>`` or ``i<id>``), the bitmaps'
    keys, and each one's (retention or None, timestamp of its period's end)."""

    ref: str
    keys: tuple[str, ...]
    expiry: tuple[tuple[int | None, float], ...]


def _end_timestamp(day: datetime.date) -> float:
    return datetime.datetime(day.year, day.month, day.day, tzinfo=conf.time_zone()).timestamp()


def mark(metrica_name: str, marked_axes: Iterable[tuple[str, str]], day: datetime.date, ref: str) -> Mark:
    """The bits a kick of ``metrica_name`` on ``day`` by ``ref`` sets: (axis, value part) of
    each axis it keeps users for that the kick gave a value."""
    base = layout.users_base(conf.get("STASTE_METRICS_PREFIX"))
    retention = conf.retention()
    found_keys: list[str] = []
    expiry: list[tuple[int | None, float]] = []
    marked = list(marked_axes)
    for period in layout.periods_of(day):
        keep, after = layout.expiry(period, retention)
        ends = 0.0 if keep is None else _end_timestamp(after)
        found_keys.append(layout.bitmap_key(base, metrica_name, period))
        expiry.append((keep, ends))
        for axis, part in marked:
            found_keys.append(layout.bitmap_key(base, metrica_name, period, axis, part))
            expiry.append((keep, ends))
    return Mark(ref, tuple(found_keys), tuple(expiry))


def kick_mark(metrica: Any, user: Any, date: Any, options: Sequence[tuple[tuple[str, ...], int]]) -> Mark:
    """The mark of ``metrica.kick(user=user, date=date)`` whose axis options are ``options``;
    ValueError or TypeError (nothing written) for a user this site's positions cannot take."""
    if not metrica.keeps_users:
        raise TypeError(f"{metrica.name}.kick() got user=, but {metrica.name} was not made with users=True")
    ref = positions.reference(user)
    marked = [
        (axis_name, parts[1])
        for (axis_name, (parts, _)) in zip(metrica.axes, options, strict=True)
        if axis_name in metrica.users_axes and len(parts) > 1
    ]
    return mark(metrica.name, marked, conf.local(date).date(), ref)


def _ttl(keep: int | None, end: float, now: float) -> int:
    return 0 if keep is None else int(keep + max(0.0, end - now)) + 1


def keys_and_args(marks: Sequence[Mark], now: float) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of users.lua setting the bits of ``marks`` (unnumbered; see its header)."""
    base = layout.users_base(conf.get("STASTE_METRICS_PREFIX"))
    script_keys = [layout.ids_key(base), layout.positions_key(base), layout.next_key(base)]
    indexes: dict[str, int] = {}
    ttls: list[str] = []
    bits: dict[str, dict[int, None]] = {}  # ref -> the indexes of its bitmaps, each once
    for found in marks:
        wanted = bits.setdefault(found.ref, {})
        for key, (keep, end) in zip(found.keys, found.expiry, strict=True):
            index = indexes.get(key)
            if index is None:
                script_keys.append(key)
                index = indexes[key] = len(script_keys)
                ttls.append(str(_ttl(keep, end, now)))
            wanted[index] = None
    users: list[str] = []
    for ref, wanted in bits.items():
        spots = "|".join(map(str, wanted))
        if ref[0] == "p":
            users.append(f"p|{ref[1:]}|{spots}")
        else:
            users += [f"i||{spots}", ref[1:]]
    head = f"{len(indexes)}|{len(bits)}|{positions.cap()}"
    return script_keys, [numbering.UNNUMBERED, head, *ttls, *users]


def work(found: Mark) -> int:
    """What setting ``found``'s bits costs users.lua: a SETBIT each, and a new id's mapping."""
    return len(found.keys) + (ID_COST if found.ref[0] == "i" else 0)


def merged(found: Iterable[Mark]) -> list[Mark]:
    """The marks of a flush, each user's bits once (kicks of one user in one minute repeat them)."""
    by_user: dict[str, dict[str, tuple[int | None, float]]] = {}
    for one in found:
        held = by_user.setdefault(one.ref, {})
        for key, expiry in zip(one.keys, one.expiry, strict=True):
            held[key] = expiry
    return [Mark(ref, tuple(bits), tuple(bits.values())) for ref, bits in by_user.items()]


def calls(found: Sequence[Mark], budget: int = CALL_BUDGET) -> list[list[Mark]]:
    """``found`` cut into users.lua calls of at most ``budget`` (a user's marks are never split)."""
    cut: list[list[Mark]] = []
    current: list[Mark] = []
    cost = 0
    for one in found:
        price = work(one)
        if current and cost + price > budget:
            cut.append(current)
            current, cost = [], 0
        current.append(one)
        cost += price
    if current:
        cut.append(current)
    return cut


#: How users.lua's error reply starts when new ids would pass the cap (it wrote nothing).
FULL = "STASTE_USERS_FULL"


def refusal(exc: redis.ResponseError) -> Exception:
    """What users.lua's error means for the caller: a ValueError naming the setting to raise
    when the positions are used up (nothing was written), else the error itself."""
    if str(exc).startswith(FULL):
        return ValueError(
            f"every user position up to STASTE_MAX_USER_POSITION ({positions.cap():,}) is given; nothing was "
            "written: raise STASTE_MAX_USER_POSITION (a bitmap takes up to position / 8 bytes)"
        )
    return exc


def users_axes_of(metrica: Any, wanted: Iterable[str]) -> tuple[str, ...]:
    """The axes of ``metrica`` (made with ``users=True``) that keep bitmaps per value, checked:
    each an axis of fixed ``choices`` (so its bitmaps are bounded by them), not the ``user``
    keyword's name."""
    if isinstance(wanted, str):
        raise TypeError(f"{metrica.name}: users_axes must be a list of axis names, not the text {wanted!r}")
    names = tuple(wanted)
    if not metrica.keeps_users:
        if names:
            raise TypeError(f"{metrica.name}: users_axes= needs users=True")
        return ()
    if "user" in metrica.axes:
        raise ValueError(f"{metrica.name}: an axis named 'user' cannot be kept with users=True (kick(user=...))")
    for name in names:
        axis = metrica.axes.get(name)
        if axis is None:
            raise ValueError(f"{metrica.name}: users_axes names {name!r}, which is not one of its axes")
        if axis.choices is None or axis.hierarchical:
            raise ValueError(
                f"{metrica.name}: users_axes: axis {name!r} must be an Axis(choices=[...]), whose values "
                "are bounded, to keep a users bitmap per value"
            )
    return names
