"""The Python half of kick.lua: a validated kick, and the KEYS and ARGV that write kicks.

A :class:`Kick` is what ``Metrica.prepare_kick()`` makes of ``kick(**axes)`` after every check
has passed; ``batch_keys_and_args()`` turns one or many of them into a single kick.lua call
(see the script's header for the layout of its arguments).  The synchronous ``kick()`` and the
buffered writer both write through here, so the two can never encode a kick differently.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from staste import conf, keys, timescale

if TYPE_CHECKING:
    from staste.metrica import Metrica

#: How long Redis remembers a writer's last call (``<base>w:<writer>``): a call whose reply
#: was lost is recognised when it is sent again within this time.
WRITER_TTL = 7 * 24 * 3600


class Kick(NamedTuple):
    """One validated kick, ready to be written; identical kicks merge by adding increments.

    ``spans`` are the buckets it lands in, ``families`` the field prefixes whose counters it
    bumps by ``increments``, and ``options`` each axis' field parts with the axis' cap on
    stored choices (-1: stores none, 0: unbounded; see kick.lua).
    """

    metrica: Metrica
    spans: tuple[timescale.Span, ...]
    families: tuple[str, ...]
    increments: tuple[int, ...]
    options: tuple[tuple[tuple[str, ...], int], ...]

    def merge_key(self) -> tuple[Any, ...]:
        return (self.metrica.base, self.spans, self.families, self.options)

    def merged(self, other: Kick) -> Kick:
        total = tuple(a + b for a, b in zip(self.increments, other.increments, strict=True))
        return self._replace(increments=total)

    def segment(self, now: float) -> tuple[list[str], list[Any]]:
        """This kick's KEYS and ARGV segment of kick.lua."""
        plan = _plan(self.metrica, self.spans, self.families)
        script_keys = list(plan.keys)
        # Few arguments, '|'-joined: no part, prefix or number holds a '|' (values are escaped).
        args: list[Any] = [
            plan.head,
            "|".join([f"{prefix}|{amount}" for prefix, amount in zip(self.families, self.increments, strict=True)]),
            "|".join([str(0 if keep is None else int(keep + max(0.0, end - now)) + 1) for keep, end in plan.expiry]),
        ]
        for (parts, cap), choices_key in zip(self.options, plan.choices_keys, strict=True):
            args.append(f"{cap}|" + "|".join(parts))
            if cap >= 0:
                script_keys.append(choices_key)
        return script_keys, args


@dataclass(frozen=True)
class _Plan:
    """What every kick of one metrica into the same buckets shares: keys and expiry data."""

    keys: tuple[str, ...]
    head: str  # kick.lua's first argument of a kick: "T|A|year"
    expiry: tuple[tuple[int | None, float], ...]  # (retention or None, bucket end) per span
    choices_keys: tuple[str, ...]


_plans: dict[tuple[Any, ...], _Plan] = {}


@conf.on_config_change
def _forget_plans() -> None:
    # Prefix, retention and time zone are settings: plans made under the old ones are wrong.
    _plans.clear()


def _plan(metrica: Metrica, spans: tuple[timescale.Span, ...], families: tuple[str, ...]) -> _Plan:
    """The cached plan of kicks into ``spans``: all kicks of one minute share one.

    Building keys and bucket ends is most of the cost of encoding a kick.
    """
    cache_key = (metrica.name, tuple(metrica.axes), spans, families)
    plan = _plans.get(cache_key)
    if plan is None:
        if len(_plans) > 4096:
            _plans.clear()
        base = metrica.base
        hash_keys = [
            keys.bucket_key(base + keys.family_infix(prefix), timescale.bucket_id(span))
            for prefix in families
            for span in spans
        ]
        year = next((str(span[0]) for span in spans if len(span) == 1), "")
        retention = conf.retention()
        zone_key = conf.time_zone().key
        expiry = []
        for span in spans:
            scale = timescale.scale_of(span)
            keep = retention.get(scale) if scale else None
            expiry.append((keep, 0.0 if keep is None else _span_end_timestamp(span, zone_key)))
        plan = _Plan(
            keys=(*hash_keys, keys.years_key(base)) if year else tuple(hash_keys),
            head=f"{len(spans)}|{len(metrica.axes)}|{year}",
            expiry=tuple(expiry),
            choices_keys=tuple(keys.choices_key(base, axis_name) for axis_name in metrica.axes),
        )
        _plans[cache_key] = plan
    return plan


@functools.lru_cache(maxsize=4096)
def _span_end_timestamp(span: timescale.Span, zone_key: str) -> float:
    # The last buckets before the year 10000 end with the calendar: datetime.max, which still
    # gives a finite timestamp, hence a finite TTL (a date that far off is user input too).
    return timescale.end(span).replace(tzinfo=ZoneInfo(zone_key)).timestamp()


def batch_keys_and_args(
    kicks: Sequence[Kick],
    now: float | None = None,
    writer: tuple[str, int] | None = None,
    writer_ttl: int = WRITER_TTL,
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of kick.lua for writing ``kicks`` in one atomic call.

    ``writer`` — (writer id, call number), numbers increasing per writer — makes the call
    idempotent: a writer that lost a reply (a timeout, a reset connection) cannot know whether
    the call ran, so it sends the same call again and kick.lua skips it if it already ran.
    Redis forgets a writer ``writer_ttl`` seconds after its last call (synchronous kicks,
    which are only ever sent again within one ``kick()``, use a shorter time: see
    ``staste.writers``).
    """
    now = time.time() if now is None else now
    script_keys: list[str] = []
    args: list[Any] = [len(kicks) if writer is None else f"{len(kicks)}|{writer[1]}|{writer_ttl}"]
    for kick in kicks:
        kick_keys, kick_args = kick.segment(now)
        script_keys += kick_keys
        args += kick_args
    if writer is not None:
        script_keys.append(keys.writer_key(kicks[0].metrica.base, writer[0]))
    return script_keys, args
