"""The work each script call of a flush gives Redis, read from the arguments it is sent, as the
script does it (not through staste.buffer.calls, which budgets it).

Why: "no call blocks a shared Redis for long" is a promise about each call's work, which is
deterministic; a call's wall time is not (a loaded machine stretches any call).  The scripts
report the work they did (counters.lua its HINCRBYs, ids.lua its ids), so the count read from
the arguments is checked against the script's own reply too.  SLOWLOG figures are for
``make bench``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from staste import pipe, scripts


def counters_work(args: Sequence[Any]) -> int:
    """HINCRBYs of a counters.lua call: counters times buckets, group by group (ARGV[2] is
    'G|back', then each group 'n|every|y|year|T|...' and its n counters)."""
    total, at = 0, 2
    for _ in range(int(str(args[1]).split("|")[0])):
        header = str(args[at]).split("|")
        counters, buckets = int(header[0]), int(header[4])
        total += counters * buckets
        at += 1 + counters
    return total


def ids_sent(args: Sequence[Any]) -> tuple[int, int]:
    """(ids, HyperLogLogs) of an ids.lua call: ARGV[2] is K, then each key's 'ttl|n' and n ids."""
    total, at = 0, 2
    keys = int(args[1])
    for _ in range(keys):
        count = int(str(args[at]).split("|")[1])
        total += count
        at += 1 + count
    return total, keys


def choices_decisions(args: Sequence[Any]) -> int:
    """Members a choices.lua call decides: each argument 'k|cap|member|member...'."""
    return sum(len(str(arg).split("|")) - 2 for arg in args)


@dataclass
class CallWork:
    """What each call sent so far was given: HINCRBYs, (ids, keys), decisions, per script."""

    counters: list[int] = field(default_factory=list)
    ids: list[tuple[int, int]] = field(default_factory=list)
    choices: list[int] = field(default_factory=list)
    mismatches: list[tuple[str, int, Any]] = field(default_factory=list)  # reply != work counted


@pytest.fixture
def call_work(monkeypatch) -> CallWork:
    """Spies on the calls a flush sends (through staste.pipe, and choices.lua's)."""
    seen = CallWork()
    send, reply, run = pipe.Pipe.send, pipe.Pipe.reply, scripts.run

    def sending(self, name, script_keys, args):  # type: ignore[no-untyped-def]
        expected = self.__dict__.setdefault("expected_work", deque())  # per pipe: its replies due
        if name == "counters":
            seen.counters.append(counters_work(args))
            expected.append((name, seen.counters[-1]))
        elif name == "ids":
            seen.ids.append(ids_sent(args))
            expected.append((name, seen.ids[-1][0]))
        else:
            expected.append((name, -1))
        try:
            return send(self, name, script_keys, args)
        except BaseException:
            expected.pop()
            raise

    def replying(self):  # type: ignore[no-untyped-def]
        name, work = self.expected_work.popleft()
        result = reply(self)
        if name != "kick" and not isinstance(result, redis.ResponseError) and result not in (-1, work):
            seen.mismatches.append((name, work, result))
        return result

    def running(name, script_keys, args):  # type: ignore[no-untyped-def]
        if name == "choices":
            seen.choices.append(choices_decisions(args))
        return run(name, script_keys, args)

    monkeypatch.setattr(pipe.Pipe, "send", sending)
    monkeypatch.setattr(pipe.Pipe, "reply", replying)
    monkeypatch.setattr(scripts, "run", running)
    return seen
