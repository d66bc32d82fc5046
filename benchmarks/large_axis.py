"""Reading a large stored axis: what ``iterate()`` of an axis of 10,000 to 100,000 values costs
Redis, against the slicing it replaced (benchmarks/previous_axis.lua), in the same run.

Each size is a ``StoredChoiceAxis(max_choices=0)`` holding that many values, one kick each;
the read is ``metrica.values().iterate("tag")`` (all time: one hash), its budget lifted, once
to learn the axis' size and then measured.  Redis' own figures are used, not the client's:
the script calls' time by ``INFO commandstats`` (their sum) and by SLOWLOG (the longest), so
the ratio to the previous slicing compares what each gives Redis to do.  The previous slicing
is sent the slices the previous planning made (2,000 members a call, by rank in the sorted set).
"""

from __future__ import annotations

import datetime
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from staste import buffer, connection, reads, roundtrip
from staste.axis import StoredChoiceAxis
from staste.metrica import Metrica
from staste.query import budget

PREVIOUS = Path(__file__).with_name("previous_axis.lua")
DATE = datetime.datetime(2024, 3, 9, 12)


@dataclass
class AxisRow:
    values: int
    calls: int  # script calls of one read
    longest_ms: float  # the longest of them (SLOWLOG), median over the rounds
    redis_ms: float  # all of them (INFO commandstats), median over the rounds
    previous_calls: int
    previous_longest_ms: float
    previous_redis_ms: float

    @property
    def us_per_value(self) -> float:
        return self.redis_ms * 1000 / self.values

    @property
    def ratio(self) -> float:
        return self.previous_redis_ms / self.redis_ms if self.redis_ms else float("nan")


def filled(values: int) -> Metrica:
    metrica = Metrica(
        name=f"bench_axis_{values}",
        axes=[("tag", StoredChoiceAxis(max_choices=0))],
        date_scales=["year", "month", "day"],
    )
    buffer.write([metrica.prepare_kick(date=DATE, tag=f"value {n:06d}") for n in range(values)])
    return metrica


def _script_time(client: redis.Redis) -> tuple[int, float, float]:
    """(EVALSHA calls, their µs, the longest in ms) since the last reset."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    logged = [e for e in client.slowlog_get(100_000) if e["command"].upper().startswith(b"EVALSHA")]
    return int(stats["calls"]), float(stats["usec"]), max((e["duration"] for e in logged), default=0) / 1000


def _previous_calls(axis_calls: list[reads.Script], values: int) -> list[tuple[list[str], list[Any]]]:
    """The calls the previous planning made for this read: the same set, bucket and families,
    slices of 2,000 members by rank (the last one to the end)."""
    command = axis_calls[0]
    after_gate = 3 + 3 * int(command.args[2])
    before, after = command.args[after_gate], command.args[after_gate + 1]
    families = list(command.args[after_gate + 8 :])
    members = values + 1 + values // 4
    width = reads.SLICE_WORK // len(families)
    starts = range(0, members, width)
    slices = [(start, width) for start in starts[:-1]] + [(starts[-1], 0)]
    return [(command.keys, [before, after, start, count, *families]) for start, count in slices]


def _first_read(metrica: Metrica, values: int) -> list[reads.Script]:
    """Read the axis once (its size learnt, so the next read is sliced for it); its axis calls."""
    sent: list[reads.Command] = []
    send = roundtrip._send

    def recording(client: Any, cluster: bool, commands: list[reads.Command]) -> list[Any]:
        sent.extend(commands)
        return send(client, cluster, commands)

    roundtrip._send = recording
    try:
        with budget(10**12):
            assert len(metrica.values().iterate("tag")) == values
    finally:
        roundtrip._send = send
    return [command for command in sent if isinstance(command, reads.Script) and command.args[0] == "axis"]


def axis_reads(sizes: tuple[int, ...], rounds: int) -> list[AxisRow]:
    client = connection.get_redis()
    previous = client.register_script(PREVIOUS.read_text())
    threshold = client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    length = client.config_get("slowlog-max-len")["slowlog-max-len"]
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 100_000)
    rows = []
    try:
        for values in sizes:
            metrica = filled(values)
            axis_calls = _first_read(metrica, values)
            now: list[tuple[int, float, float]] = []
            then: list[tuple[int, float, float]] = []
            for _ in range(rounds):
                client.config_resetstat()
                client.slowlog_reset()
                with budget(10**12):
                    metrica.values().iterate("tag")
                now.append(_script_time(client))
                client.config_resetstat()
                client.slowlog_reset()
                for script_keys, args in _previous_calls(axis_calls, values):
                    previous(keys=script_keys, args=args)
                then.append(_script_time(client))
            rows.append(
                AxisRow(
                    values,
                    now[0][0],
                    statistics.median(r[2] for r in now),
                    statistics.median(r[1] for r in now) / 1000,
                    then[0][0],
                    statistics.median(r[2] for r in then),
                    statistics.median(r[1] for r in then) / 1000,
                )
            )
    finally:
        client.config_set("slowlog-log-slower-than", threshold)
        client.config_set("slowlog-max-len", length)
    return rows
