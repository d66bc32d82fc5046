"""Buffered calls on a Redis configured for big listpack hashes (issue 20, item 7).

A HINCRBY into a hash still in listpack encoding scans it, so the same 1,000 HINCRBYs cost a
server with ``hash-max-listpack-entries`` 1,024 twice what they cost at Redis' default 512, and
that four times what they cost at 128.  staste cuts its calls to ``calls.counters_budget()``
(250 HINCRBYs, fewer where listpacks may hold more than 512 fields); the baseline, in the same
run, is the fixed 1,000 HINCRBYs a call it replaced (``PREVIOUS_BUDGET``).

For each setting, a Redis of its own; rounds (kicked buffered, then flushed) alternate between
the two budgets, each into a metrica of its own that starts empty, so that both fill hashes
alike.  Two workloads: the 5-axis one of benchmarks/buffered.py (its buckets soon outgrow any
listpack: the realistic case) and one axis of 1,000 values (every bucket 1,001 fields: all
listpacks at 1,024, the worst case).  Redis' own figures: script time (INFO commandstats), its
sum per flush, and the longest call (SLOWLOG).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import redis
from django.test import override_settings

from benchmarks import workloads
from benchmarks.buffered import longest_call_ms, script_usec
from staste import buffer, connection
from staste.axis import StoredChoiceAxis
from staste.buffer import calls
from staste.metrica import Metrica
from staste.testing import RedisServer

AXES = 5
#: HINCRBYs a call before calls were cut by the server's listpack size (commit 90513d1).
PREVIOUS_BUDGET = 1000


WORKLOADS = ("5 axes", "1 axis, 1,000 values")


@dataclass
class Measured:
    mean_call_ms: float
    longest_ms: float
    flush_ms: float  # every call of the flush


@dataclass
class ListpackRow:
    entries: int  # hash-max-listpack-entries
    workload: str
    budget: int  # counters_budget(): HINCRBYs a call
    new: Measured
    fixed: Measured  # the same with PREVIOUS_BUDGET whatever the setting


def compare(settings: tuple[int, ...], kicks: int, rounds: int) -> list[ListpackRow]:
    return [_one(entries, workload, kicks, rounds) for entries in settings for workload in WORKLOADS]


def _metrica(workload: str, name: str) -> Metrica:
    if workload == WORKLOADS[0]:
        return workloads.metrica(name, AXES)
    return Metrica(name=name, axes=[("tag", StoredChoiceAxis(max_choices=0))])


def _one(entries: int, workload: str, kicks: int, rounds: int) -> ListpackRow:
    if workload == WORKLOADS[0]:
        events = workloads.events(AXES, kicks)
    else:
        events = [{"tag": f"t{n % 1000}"} for n in range(kicks)]
    with RedisServer(extra_args=["--hash-max-ziplist-entries", str(entries)]) as server:
        admin = redis.Redis(port=server.port)
        admin.config_set("slowlog-log-slower-than", 0)
        admin.config_set("slowlog-max-len", 100_000)
        measured: dict[str, list[tuple[float, float, float]]] = {"budget": [], "fixed": []}
        with override_settings(STASTE_REDIS_URL=server.url):
            connection.reset()
            box = buffer.Buffer(background=False)
            previous, buffer.default = buffer.default, box
            budgeted = calls.counters_budget
            try:
                for number in range(rounds):
                    for how in ("budget", "fixed"):
                        metrica = _metrica(workload, f"bench_listpack_{how}_{number}")
                        if how == "fixed":
                            calls.counters_budget = lambda: PREVIOUS_BUDGET
                        try:
                            for event in events:
                                metrica.kick(buffered=True, **event)
                            admin.slowlog_reset()
                            usec, made = script_usec(admin)
                            box.flush()
                            usec_after, made_after = script_usec(admin)
                        finally:
                            calls.counters_budget = budgeted
                        mean = (usec_after - usec) / max(1, made_after - made) / 1000
                        measured[how].append((mean, longest_call_ms(admin), (usec_after - usec) / 1000))
                budget = calls.counters_budget()
            finally:
                buffer.default = previous
                connection.reset()
        admin.close()
    return ListpackRow(entries, workload, budget, _median(measured["budget"]), _median(measured["fixed"]))


def _median(rounds: list[tuple[float, float, float]]) -> Measured:
    return Measured(*(statistics.median(column) for column in zip(*rounds, strict=True)))
