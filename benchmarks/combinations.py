"""``Metrica(combinations=k)``: what keeping fewer axis combinations saves, at 5 and 7 axes.

For each ``k`` (1, 2, 3 and unpruned) a metrica of the benchmark's axes (benchmarks/workloads.py)
takes the same seeded events: synchronous kicks (rounds of every ``k`` interleaved, so load
hits them alike) and buffered kicks (one thread, the default buffer, each round ending with a
flush).  Redis is measured over the same rounds: the time its scripts ran per kick
(``INFO commandstats``) and the memory the metrica's keys take per kick (``MEMORY USAGE``
summed over them once the synchronous rounds are written).  Run alone with
``python benchmarks/combinations.py``; ``make bench`` runs it with the rest.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from benchmarks import buffered, memory, report, workloads  # noqa: E402
from staste import buffer, connection  # noqa: E402
from staste.metrica import Metrica  # noqa: E402

KEPT: tuple[int | None, ...] = (1, 2, 3, None)


@dataclass
class Row:
    axes: int
    kept: int | None  # combinations=; None: every one
    fields: int  # fields a kick of a value on every axis writes per bucket
    sync_rate: float  # kicks per second (median round)
    sync_script_us: float  # Redis time in scripts per synchronous kick
    memory_bytes: float  # bytes of the metrica's keys per synchronous kick written
    buffered_rate: float
    dropped: int
    buffered_script_us: float


def metrica(name: str, count: int, kept: int | None) -> Metrica:
    return Metrica(name=name, axes=workloads.axes(count), combinations=kept)


def sync_round(metrica: Metrica, events: Sequence[dict[str, str]]) -> None:
    kick = metrica.kick
    for event in events:
        kick(**event)


def buffered_round(metrica: Metrica, events: Sequence[dict[str, str]]) -> None:
    kick = metrica.kick
    for event in events:
        kick(buffered=True, **event)
    buffer.flush()


def rows(axis_counts: Sequence[int], sync_kicks: int, buffered_kicks: int, rounds: int) -> list[Row]:
    client = connection.get_redis()
    found = []
    for count in axis_counts:
        events = workloads.events(count, max(sync_kicks, buffered_kicks))
        sync_events, buffered_events = events[:sync_kicks], events[:buffered_kicks]
        sync = {kept: metrica(f"bench_kept_sync_{count}_{kept}", count, kept) for kept in KEPT}
        fast = {kept: metrica(f"bench_kept_buffered_{count}_{kept}", count, kept) for kept in KEPT}
        sync_meters = {kept: buffered._Meter(client) for kept in KEPT}
        fast_meters = {kept: buffered._Meter(client) for kept in KEPT}

        for kept in KEPT:  # warm-up: buckets exist, scripts are loaded
            for event in events[:50]:
                sync[kept].kick(**event)
                fast[kept].kick(buffered=True, **event)
        buffer.flush()
        spent: dict[int | None, list[float]] = {kept: [] for kept in KEPT}
        spent_fast: dict[int | None, list[float]] = {kept: [] for kept in KEPT}
        before = buffer.stats()["dropped"]
        dropped: dict[int | None, int] = dict.fromkeys(KEPT, 0)
        for _ in range(rounds):
            for kept in KEPT:
                spent[kept].append(sync_meters[kept].measure(lambda m=sync[kept], e=sync_events: sync_round(m, e)))
                start = buffer.stats()["dropped"]
                spent_fast[kept].append(
                    fast_meters[kept].measure(lambda m=fast[kept], e=buffered_events: buffered_round(m, e))
                )
                dropped[kept] += buffer.stats()["dropped"] - start
        assert buffer.stats()["dropped"] - before == sum(dropped.values())
        for kept in KEPT:
            written = sync_kicks * rounds + 50
            bytes_used = sum(memory.usage(client, sync[kept].base).values())
            fields = sync[kept].combinations.count([1] * count)
            found.append(
                Row(
                    count,
                    kept,
                    fields,
                    sync_kicks / statistics.median(spent[kept]),
                    sync_meters[kept].usec / (sync_kicks * rounds),
                    bytes_used / written,
                    buffered_kicks / statistics.median(spent_fast[kept]),
                    dropped[kept],
                    fast_meters[kept].usec / (buffered_kicks * rounds),
                )
            )
    return found


def section(found: list[Row], sync_kicks: int, buffered_kicks: int, rounds: int) -> str:
    unpruned = {row.axes: row for row in found if row.kept is None}
    lines = []
    for row in found:
        base = unpruned[row.axes]
        lines.append(
            (
                row.axes,
                "all" if row.kept is None else row.kept,
                row.fields,
                row.sync_rate,
                f"{row.sync_rate / base.sync_rate:.2f}x",
                row.buffered_rate,
                row.dropped,
                f"{row.buffered_rate / row.sync_rate:.1f}x",
                report.significant(row.sync_script_us),
                report.significant(row.buffered_script_us),
                f"{base.buffered_script_us / row.buffered_script_us:.1f}x" if row.buffered_script_us else "-",
                round(row.memory_bytes),
                f"{base.memory_bytes / row.memory_bytes:.1f}x",
            )
        )
    return (
        "### Keeping fewer combinations: `Metrica(combinations=k)`\n\n"
        f"The same seeded events into metricas of 5 and 7 axes keeping every set of at most k axes, and "
        f"every set (*all*). Synchronous: median of {rounds} interleaved rounds of {sync_kicks} kicks; buffered: "
        f"{rounds} rounds of {buffered_kicks} kicks from one thread with the default buffer, each ending with a "
        "flush. *fields* a kick writes per bucket; *Redis µs* the time Redis spent in scripts per kick (`INFO "
        "commandstats`); *bytes/kick* the `MEMORY USAGE` of the synchronous metrica's keys per kick written. "
        "Ratios are against the unpruned metrica of the same axes in the same run (*vs all*), or the same "
        "metrica's synchronous kick (*buffered / kick()*). Targets at 7 axes, k=2: kick() at least 3x the "
        "unpruned, buffered at least 15x its own kick() with 0 dropped, Redis time and memory at least 4x "
        "lower.\n\n"
        + report.table(
            [
                "axes",
                "k",
                "fields",
                "kick() / s",
                "vs all",
                "buffered / s",
                "dropped",
                "buffered / kick()",
                "Redis µs kick()",
                "Redis µs buffered",
                "all / k (buffered)",
                "bytes/kick",
                "all / k (memory)",
            ],
            lines,
        )
    )


def main() -> int:
    from staste.testing import RedisServer

    with RedisServer() as server:
        from benchmarks import settings

        settings.configure(server.url)
        found = rows((5, 7), 300, 10_000, 3)
        print(section(found, 300, 10_000, 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
