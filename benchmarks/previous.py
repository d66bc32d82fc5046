"""The buffered writer as it was at commit 957f8bd: the baseline the buffered writer is measured
against, in the same run, on the same Redis.

What it did with the kicks a process buffered: kicks identical to one held (``Kick.merge_key()``:
same metrica, buckets, families and axis values) were merged by adding their increments; a
flush wrote the held kicks through that commit's kick.lua (benchmarks/previous_kick.lua, kept
verbatim: each kick's counters bumped one HINCRBY at a time, nothing merged across kicks) in
numbered calls of ``MAX_KICKS_PER_CALL`` distinct kicks, with that commit's encoding of the
arguments (each kick's keys and arguments listed in full).  Today's kick.lua is not that
script: it merges a call's counters in a Lua table, so it would flatter the baseline.

The buffer held at most ``MAX_KEYS`` distinct kicks (``STASTE_BUFFER_MAX_KEYS``' default then)
and dropped new ones past it.  Here it is written whenever it is full, and never drops: the
most merging that writer could ever do, so the ratio to it is the smallest the new writer can
claim.  Nothing runs in a thread; what is compared is the work each writer gives Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import redis

from staste import keys, timescale
from staste.kicks import Kick, span_expiry
from staste.metrica import Metrica

COMMIT = "957f8bd"
#: Most kicks one kick.lua call wrote (buffer.MAX_KICKS_PER_CALL at 957f8bd).
MAX_KICKS_PER_CALL = 500
#: Most distinct kicks the buffer held (the default of STASTE_BUFFER_MAX_KEYS at 957f8bd).
MAX_KEYS = 10_000
SCRIPT = Path(__file__).with_name("previous_kick.lua")
#: How long 957f8bd's kick.lua kept a writer's last call number (kicks.WRITER_TTL then).
WRITER_TTL = 7 * 24 * 3600


#: 957f8bd's plan of the kicks of one metrica into the same buckets: hash keys (family by
#: family, bucket by bucket; the years set last when there is a year bucket), head ``T|A|year``,
#: (retention or None, bucket end) per bucket, and the stored-choices set of each axis.
Plan = tuple[tuple[str, ...], str, tuple[tuple[int | None, float], ...], tuple[str, ...]]


def plan(metrica: Metrica, spans: tuple[timescale.Span, ...], families: tuple[str, ...]) -> Plan:
    """The :data:`Plan` of ``metrica``'s kicks into ``spans`` (the same for a minute's kicks)."""
    base = metrica.base
    hash_keys = [
        keys.bucket_key(base + keys.family_infix(prefix), timescale.bucket_id(span))
        for prefix in families
        for span in spans
    ]
    year = next((str(span[0]) for span in spans if len(span) == 1), "")
    expiry = span_expiry(spans)  # (unchanged since 957f8bd)
    return (
        (*hash_keys, keys.years_key(base)) if year else tuple(hash_keys),
        f"{len(spans)}|{len(metrica.axes)}|{year}",
        tuple(expiry),
        tuple(keys.choices_key(base, axis_name) for axis_name in metrica.axes),
    )


def keys_and_args(
    kicks: Sequence[Kick], writer: tuple[str, int], now: float, plans: dict[Hashable, Plan]
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of 957f8bd's kick.lua writing ``kicks`` in one numbered call (``plans``:
    those made so far, by metrica, buckets and families)."""
    script_keys: list[str] = []
    args: list[Any] = [f"{len(kicks)}|{writer[1]}|{WRITER_TTL}"]
    for kick in kicks:
        found = plans.get((kick.metrica.base, kick.spans, kick.families))
        if found is None:
            found = plans[(kick.metrica.base, kick.spans, kick.families)] = plan(
                kick.metrica, kick.spans, kick.families
            )
        hash_keys, head, expiry, choices_keys = found
        script_keys += hash_keys
        args += [
            head,
            "|".join([f"{prefix}|{amount}" for prefix, amount in zip(kick.families, kick.increments, strict=True)]),
            "|".join([str(0 if keep is None else int(keep + max(0.0, end - now)) + 1) for keep, end in expiry]),
        ]
        for (parts, cap), choices_key in zip(kick.options, choices_keys, strict=True):
            args.append(f"{cap}|" + "|".join(parts))
            if cap >= 0:
                script_keys.append(choices_key)
    script_keys.append(keys.writer_key(kicks[0].metrica.base, writer[0]))
    return script_keys, args


class PreviousWriter:
    """957f8bd's buffer, written in the caller's thread: ``add()`` merges, ``flush()`` writes."""

    def __init__(self, client: redis.Redis) -> None:
        self.script = client.register_script(SCRIPT.read_text(encoding="utf-8"))
        self.writer_id = uuid.uuid4().hex
        self.calls_made = 0
        self.written = 0  # distinct (merged) kicks written
        # merge key -> [kick, increment, increment...], as 957f8bd's buffer held them
        self.held: dict[Hashable, list[Any]] = {}
        self.plans: dict[Hashable, Plan] = {}

    def add(self, kick: Kick) -> None:
        key = kick.merge_key()
        held = self.held.get(key)
        if held is not None:
            for index, increment in enumerate(kick.increments, 1):
                held[index] += increment
            return
        if len(self.held) >= MAX_KEYS:
            self.flush()
        self.held[key] = [kick, *kick.increments]

    def flush(self) -> int:
        """Write every kick held, in numbered calls of MAX_KICKS_PER_CALL; how many were written."""
        batch = [entry[0]._replace(increments=tuple(entry[1:])) for entry in self.held.values()]
        self.held = {}
        for metrica in {id(kick.metrica): kick.metrica for kick in batch}.values():
            metrica.record_signature()
        now = timescale.now()
        for start in range(0, len(batch), MAX_KICKS_PER_CALL):
            self.calls_made += 1
            script_keys, args = keys_and_args(
                batch[start : start + MAX_KICKS_PER_CALL], (self.writer_id, self.calls_made), now, self.plans
            )
            self.script(keys=script_keys, args=args)
        self.written += len(batch)
        return len(batch)
