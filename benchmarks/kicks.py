"""Writing: kicks per second against the seed's algorithm, and Redis CPU per kick.

Both writers run against the same Redis in the same process, in interleaved rounds, with the
same seeded events; every round after a warm-up one writes into existing buckets, the
steady state of a live site.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from benchmarks import measure, workloads
from benchmarks.seed import SeedMetrica
from staste import conf, connection


@dataclass
class SyncRow:
    axes: int
    staste: float  # kicks per second (median round)
    seed: float
    ratio: float  # staste's speed over the seed's: the median of the rounds' ratios
    ping_us: float  # one PING through redis-py, in the same rounds: the round-trip floor


def _repeat(kick: Callable[..., object], events: Sequence[dict[str, str]]) -> Callable[[], None]:
    def run() -> None:
        for event in events:
            kick(**event)

    return run


def seed_prefix() -> str:
    return conf.get("STASTE_METRICS_PREFIX") + "-seed"


def sync_rates(axis_counts: Sequence[int], kicks: int, rounds: int) -> list[SyncRow]:
    """Synchronous kicks per second of staste and of the seed, per number of axes."""
    client = connection.get_redis()
    rows = []
    for count in axis_counts:
        events = workloads.events(count, kicks)
        staste = workloads.metrica(f"bench_sync_{count}", count)
        seed = SeedMetrica(client, f"bench_sync_{count}", [name for name, _ in staste.axes.items()], seed_prefix())
        alternatives = {
            "staste": _repeat(staste.kick, events),
            "seed": _repeat(seed.kick, events),
            "ping": _repeat(lambda: client.ping(), [{}] * len(events)),
        }
        for warm_up in alternatives.values():
            warm_up()
        spent = measure.rounds_of(alternatives, rounds)
        rows.append(
            SyncRow(
                count,
                kicks / statistics.median(spent["staste"]),
                kicks / statistics.median(spent["seed"]),
                measure.paired_ratio(spent["seed"], spent["staste"]),
                statistics.median(spent["ping"]) / kicks * 1e6,
            )
        )
    return rows


@dataclass
class CpuRow:
    what: str
    kicks: int
    cpu_us: float  # Redis CPU per kick (or per command), microseconds
    hincrbys: int  # HINCRBY commands per kick (fields times buckets)


def bare_hincrby_cpu(client: redis.Redis, commands: int, pipeline: int = 50) -> CpuRow:
    """Redis CPU per HINCRBY when nothing else is asked: redis-benchmark's ``-P 50 hincrby``."""
    key = conf.get("STASTE_METRICS_PREFIX") + "-bare:hash"

    def work() -> None:
        for start in range(0, commands, pipeline):
            pipe = client.pipeline(transaction=False)
            for n in range(start, min(commands, start + pipeline)):
                pipe.hincrby(key, f"field{n % 50}", 1)
            pipe.execute()

    return CpuRow("bare HINCRBY (pipelined by 50)", commands, measure.server_cpu_of(client, work) / commands * 1e6, 1)


def kick_cpu(count: int, kicks: int, rounds: int = 5) -> list[CpuRow]:
    """Redis CPU per synchronous kick of staste and of the seed, at ``count`` axes.

    The writers take turns (``rounds`` times ``kicks / rounds`` kicks each) so that both see
    the same state of the machine; CPU is summed over the rounds.
    """
    client = connection.get_redis()
    events = workloads.events(count, max(1, kicks // rounds))
    staste = workloads.metrica(f"bench_cpu_{count}", count)
    seed = SeedMetrica(client, f"bench_cpu_{count}", list(staste.axes), seed_prefix())
    writers = {"staste kick()": _repeat(staste.kick, events), "seed pipeline": _repeat(seed.kick, events)}
    spent = dict.fromkeys(writers, 0.0)
    for run in writers.values():
        run()  # warm-up: buckets and choices exist, as on a live site
    for _ in range(rounds):
        for label, run in writers.items():
            spent[label] += measure.server_cpu_of(client, run)
    done = len(events) * rounds
    return [CpuRow(f"{label}, {count} axes", done, cpu / done * 1e6, 2**count * 6) for label, cpu in spent.items()]


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


@dataclass
class ExactlyOnceRow:
    axes: int
    numbered: float  # kicks per second of kick(): numbered by the thread's writer
    unnumbered: float  # the previous way: the same kick.lua call without a writer
    ratio: float  # numbered time over unnumbered time, median of the rounds' ratios
    numbered_cpu_us: float  # Redis CPU per kick
    unnumbered_cpu_us: float


def exactly_once_cost(axis_counts: Sequence[int], kicks: int, rounds: int) -> list[ExactlyOnceRow]:
    """What numbering synchronous kicks (exactly once through a lost reply) costs.

    ``kick()`` against the previous way, in the same rounds: the same prepared kick written by
    the same kick.lua without a writer number (one GET and one SET EX less in Redis, and no
    writer key).
    """
    from staste import scripts
    from staste.kicks import batch_keys_and_args
    from staste.metrica import Metrica

    client = connection.get_redis()
    rows = []
    for count in axis_counts:
        events = workloads.events(count, kicks)
        staste = workloads.metrica(f"bench_once_{count}", count)

        def unnumbered(metrica: Metrica = staste, **event: str) -> None:
            script_keys, args = batch_keys_and_args([metrica.prepare_kick(**event)])
            scripts.run("kick", script_keys, args)

        alternatives = {"numbered": _repeat(staste.kick, events), "unnumbered": _repeat(unnumbered, events)}
        for warm_up in alternatives.values():
            warm_up()
        spent: dict[str, list[float]] = {name: [] for name in alternatives}
        cpu = dict.fromkeys(alternatives, 0.0)
        for _ in range(rounds):
            for name, run in alternatives.items():
                before = measure.server_cpu(client)
                spent[name].append(timed(run))
                cpu[name] += measure.server_cpu(client) - before
        done = kicks * rounds
        rows.append(
            ExactlyOnceRow(
                count,
                kicks / statistics.median(spent["numbered"]),
                kicks / statistics.median(spent["unnumbered"]),
                measure.paired_ratio(spent["numbered"], spent["unnumbered"]),
                cpu["numbered"] / done * 1e6,
                cpu["unnumbered"] / done * 1e6,
            )
        )
    return rows
