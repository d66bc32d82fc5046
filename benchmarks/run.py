"""``make bench``: every benchmark in one run, against a Redis server of its own.

Prints the results as Markdown tables and writes them to benchmarks/results.md.  The work is
fixed (seeded events, fixed counts), so runs on one machine compare; timings are medians of
interleaved rounds, and every ratio compares alternatives measured in the same run.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python benchmarks/run.py`
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from staste.testing import RedisServer  # noqa: E402

RESULTS = Path(__file__).with_name("results.md")
AXIS_COUNTS = (0, 1, 3, 5, 7)


@dataclass(frozen=True)
class Counts:
    """How much work each benchmark does; ``make bench`` uses FULL, the smoke test TINY."""

    sync_kicks: int = 300  # per round and per writer
    sync_rounds: int = 11
    cpu_kicks: int = 2000
    bare_hincrbys: int = 100_000
    # per round, by number of axes: a second's worth or more, with the default buffer (so that
    # the five-axis rounds fill it several times over: backpressure, not loss); fewer at 7
    # axes, where a kick has 128 combinations and nearly every kick is distinct
    buffered_kicks: tuple[tuple[int, int], ...] = ((0, 100_000), (1, 100_000), (3, 100_000), (5, 60_000), (7, 10_000))
    buffered_rounds: int = 3
    kept_kicks: int = 10_000  # buffered, per round: Metrica(combinations=k) at 5 and 7 axes
    kept_rounds: int = 3
    month_kicks: int = 20_000
    query_repeats: int = 30
    series_rounds: int = 30
    heavy_kicks: int = 6000  # into the 1,000 pages of the heaviest reads
    heavy_rounds: int = 7
    axis_sizes: tuple[int, ...] = (10_000, 30_000, 100_000)  # values of a stored axis read whole
    axis_rounds: int = 3
    outage_kicks: int = 1_000_000
    listpack_kicks: int = 20_000  # buffered, per round and budget, per hash-max-listpack-entries
    listpack_rounds: int = 3
    replica_kicks: int = 20_000  # buffered, per round, with and without WAIT
    replica_rounds: int = 7
    new_values: int = 100
    day_kicks: int = 14_400  # ten requests a minute
    requests: int = 200  # per round and per variant
    request_rounds: int = 41
    insight_requests: int = 10  # per round and per variant: ten ORM queries each, milliseconds
    insight_rounds: int = 121  # many short rounds: the differences are a few percent of a request


FULL = Counts()
TINY = Counts(
    sync_kicks=3,
    sync_rounds=1,
    cpu_kicks=3,
    bare_hincrbys=10,
    buffered_kicks=tuple((count, 20) for count in AXIS_COUNTS),
    buffered_rounds=1,
    kept_kicks=20,
    kept_rounds=1,
    month_kicks=30,
    query_repeats=1,
    series_rounds=1,
    heavy_kicks=60,
    heavy_rounds=1,
    axis_sizes=(2_500, 5_000),
    axis_rounds=1,
    outage_kicks=2_000,
    listpack_kicks=50,
    listpack_rounds=1,
    replica_kicks=50,
    replica_rounds=1,
    new_values=2,
    day_kicks=30,
    requests=2,
    request_rounds=1,
    insight_requests=2,
    insight_rounds=1,
)


def sections(counts: Counts, progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Run every benchmark against staste's configured Redis; one Markdown section each."""
    from benchmarks import (
        asyncapi,
        buffered,
        combinations,
        kicks,
        large_axis,
        listpack,
        memory,
        middleware,
        outage,
        queries,
        replicas,
    )
    from staste import connection

    client = connection.get_redis()
    out = [f"Measured on: {report.machine(client)}."]

    progress("synchronous kicks")
    sync = kicks.sync_rates(AXIS_COUNTS, counts.sync_kicks, counts.sync_rounds)
    progress("buffered kicks")
    buffered_rows = [
        row
        for count, how_many in counts.buffered_kicks
        for row in buffered.buffered_rates([count], how_many, counts.buffered_rounds)
    ]
    out.append(
        "### Kicks per second, one process\n\n"
        f"Synchronous: median of {counts.sync_rounds} interleaved rounds of {counts.sync_kicks} kicks each, after a "
        "warm-up round; the ratio is the median of the rounds' ratios. *seed* is the seed's algorithm (one redis-py "
        "pipeline of one HINCRBY per field and bucket per kick; benchmarks/seed.py). Buffered: "
        f"`kick(buffered=True)` from one thread with the default buffer settings, median of {counts.buffered_rounds} "
        "rounds (of *kicks* kicks, below) each ending with a flush, so that every kick timed is in Redis; *dropped* "
        "is over every round (it must be 0: a full buffer makes the kicking thread wait). Targets at 5 axes: "
        "buffered / kick() at least 15x, and 50,000 kicks/s. "
        "Events are seeded, Zipf-distributed values of the axes view (40 values), method (4), status (5), "
        "country (30), device (3), browser (6) and referrer (20), in that order.\n\n"
        + report.table(
            [
                "axes",
                "staste kick()",
                "seed pipeline",
                "staste / seed",
                "kick(buffered=True)",
                "dropped",
                "buffered / kick()",
            ],
            [
                (
                    row.axes,
                    row.staste,
                    row.seed,
                    f"{row.ratio:.2f}x",
                    fast.rate,
                    fast.dropped,
                    f"{fast.rate / row.staste:.1f}x",
                )
                for row, fast in zip(sync, buffered_rows, strict=True)
            ],
        )
        + "\n\nThe floor of a synchronous kick is one round trip: a bare PING through redis-py took "
        + ", ".join(f"{row.ping_us:.0f}" for row in sync)
        + " µs in those rounds (the rounds of "
        + ", ".join(str(row.axes) for row in sync)
        + " axes), "
        f"that is {1e6 / statistics.median(row.ping_us for row in sync):,.0f} PINGs per second."
    )
    out.append(
        "### What the buffered writer gives Redis, against the previous one\n\n"
        "The buffered rounds above, each followed by a round of the previous writer (that of commit 957f8bd: "
        "identical kicks merged, then written through that commit's kick.lua in numbered calls of 500 distinct "
        "kicks; at most 10,000 held, written when full; benchmarks/previous.py) on the same events, into a "
        "metrica of the same shape, on the same Redis. Per round: *kicks* kicked, *written* distinct kicks "
        "written after merging, script *calls*. *Redis µs* is the time Redis spent in scripts per kick (`INFO "
        "commandstats`, EVALSHA and EVAL), *mean call* per call; *longest* is Redis' longest command in those "
        "rounds (`SLOWLOG`; on a loaded machine one the scheduler stretched rather than a long one). "
        "*previous / new* is the ratio of their Redis µs per kick (target at 5 axes: at least 5x).\n\n"
        + report.table(
            [
                "axes",
                "kicks",
                "written",
                "calls",
                "Redis µs",
                "mean call (ms)",
                "longest (ms)",
                "prev. written",
                "prev. calls",
                "prev. Redis µs",
                "prev. longest (ms)",
                "previous / new",
            ],
            [
                (
                    row.axes,
                    row.kicks,
                    row.new.written,
                    row.new.calls,
                    report.significant(row.new.script_us),
                    row.new.mean_call_ms,
                    row.new.longest_ms,
                    row.previous.written,
                    row.previous.calls,
                    report.significant(row.previous.script_us),
                    row.previous.longest_ms,
                    f"{row.ratio:.1f}x",
                )
                for row in buffered_rows
            ],
        )
    )

    progress("kept combinations")
    kept = combinations.rows((5, 7), counts.sync_kicks, counts.kept_kicks, counts.kept_rounds)
    out.append(combinations.section(kept, counts.sync_kicks, counts.kept_kicks, counts.kept_rounds))

    progress("exactly-once synchronous kicks")
    once = kicks.exactly_once_cost(AXIS_COUNTS, counts.sync_kicks, counts.sync_rounds)
    out.append(
        "### What exactly-once costs a synchronous kick\n\n"
        "`kick()` numbers each call with its thread's writer (kick.lua checks and stores the number: one GET "
        "and one SET EX more in Redis; staste/writers.py), so a call sent again after a lost reply is not "
        "counted twice. *previous* is the same kick.lua call without a number, as kicks were written before; "
        f"median of {counts.sync_rounds} interleaved rounds of {counts.sync_kicks} kicks; the ratio is the "
        "median of the rounds' time ratios (above 1: numbered is slower).\n\n"
        + report.table(
            ["axes", "kick() numbered", "previous", "time ratio", "Redis CPU µs numbered", "previous"],
            [
                (row.axes, row.numbered, row.unnumbered, f"{row.ratio:.3f}", row.numbered_cpu_us, row.unnumbered_cpu_us)
                for row in once
            ],
        )
    )

    progress("Redis CPU per kick")
    bare = kicks.bare_hincrby_cpu(client, counts.bare_hincrbys)
    cpu_rows = [bare, *kicks.kick_cpu(3, counts.cpu_kicks), *kicks.kick_cpu(5, counts.cpu_kicks)]
    for row in buffered_rows:
        if row.axes in (3, 5, 7):
            cpu_rows += [
                kicks.CpuRow(f"staste kick(buffered=True), {row.axes} axes", row.kicks, row.new.redis_cpu_us, 0),
                kicks.CpuRow(
                    f"previous buffered writer (957f8bd), {row.axes} axes", row.kicks, row.previous.redis_cpu_us, 0
                ),
            ]
    out.append(
        "### Redis server CPU per kick\n\n"
        "`used_cpu_user + used_cpu_sys` of `INFO cpu` before and after, divided by the kicks; the bare "
        "HINCRBY line is what `redis-benchmark -P 50` would make Redis spend per command; the buffered lines, "
        "this writer's and the previous one's, are over the rounds of the table above (*merged*: how many HINCRBYs a "
        "kick costs depends on the kicks merged with it).\n\n"
        + report.table(
            ["writer", "HINCRBYs per kick", "Redis CPU per kick (µs)", "in bare HINCRBYs"],
            [(row.what, row.hincrbys or "merged", row.cpu_us, f"{row.cpu_us / bare.cpu_us:.2f}") for row in cpu_rows],
        )
    )

    progress("queries")
    query_rows = queries.query_latency(counts.month_kicks, counts.query_repeats)
    out.append(
        "### Admin page queries\n\n"
        f"An averaged metrica (view, method, status) holding {counts.month_kicks:,} requests over 31 days; "
        f"median of {counts.query_repeats} runs of each query.\n\n"
        + report.table(
            ["query", "values", "Redis round trips", "ms"],
            [(row.what, row.buckets, row.round_trips, row.ms) for row in query_rows],
        )
    )

    progress("series reads against a bare pipeline")
    series_rows = queries.series_against_bare_pipeline(counts.day_kicks, counts.series_rounds)
    out.append(
        "### Series reads against a bare redis-py pipeline\n\n"
        f"The last 24 hours by minute ({series_rows[0].points:,} points) of a metrica holding "
        f"{counts.day_kicks:,} requests of that day, read by staste (rows of datetime and number, one "
        "EVALSHA of read.lua per 2,000 counters, histograms read sparse) and by a bare redis-py pipeline "
        "of the same HMGETs returning Redis' replies as they are; median of "
        f"{counts.series_rounds} interleaved rounds; the ratio is the median of the rounds' staste / bare "
        "(the target: 1.2 or less).\n\n"
        + report.table(
            ["series", "points", "staste ms", "bare pipeline ms", "staste / bare"],
            [(row.what, row.points, row.staste_ms, row.bare_ms, f"{row.ratio:.2f}") for row in series_rows],
        )
    )

    progress("heaviest reads")
    heavy_rows = queries.heaviest_reads(counts.heavy_rounds, counts.heavy_kicks)
    out.append(
        "### Heaviest reads: how long one call holds Redis\n\n"
        f"The heaviest reads of tests/test_query_cost.py, their budget lifted: an averaged metrica with a histogram "
        f"and a stored axis of 1,000 pages, {counts.heavy_kicks:,} requests over 8 days. Every call is sliced to a "
        "bounded work (at most 2,000 counters, or one histogram hash of at most 50,000 fields to scan: "
        'docs/queries.md, "What one call is given"), which the tests check; here is the time that work takes. '
        "*script calls* is what one read sends, *longest call* the longest of them by SLOWLOG (every command "
        f"logged), and *read* the whole read; medians of {counts.heavy_rounds} rounds.\n\n"
        + report.table(
            ["read", "script calls", "longest call (ms)", "read (ms)"],
            [(row.what, row.calls, row.longest_ms, row.ms) for row in heavy_rows],
        )
    )

    progress("large stored axes")
    axis_rows = large_axis.axis_reads(counts.axis_sizes, counts.axis_rounds)
    out.append(
        "### Reading a large stored axis: cost linear in its values\n\n"
        "`iterate()` of a `StoredChoiceAxis(max_choices=0)` holding *values* values (all time, its budget lifted; "
        "benchmarks/large_axis.py). Each call reads one part of the set, cut by the hash of its members "
        "(SSCAN runs, lua/budget.lua), so a read costs the set once; the *previous* slicing (commit 37783c7, "
        "benchmarks/previous_axis.lua) listed and sorted the whole set in every call of 2,000 members. *Redis ms* is "
        "the calls' time by `INFO commandstats`, *longest* the longest call by SLOWLOG; medians of "
        f"{counts.axis_rounds} rounds, the previous slicing measured right after each round.\n\n"
        + report.table(
            [
                "values",
                "calls",
                "longest call (ms)",
                "Redis ms",
                "Redis µs per value",
                "previous: calls",
                "longest (ms)",
                "Redis ms",
                "previous / new",
            ],
            [
                (
                    f"{row.values:,}",
                    row.calls,
                    row.longest_ms,
                    row.redis_ms,
                    row.us_per_value,
                    row.previous_calls,
                    row.previous_longest_ms,
                    row.previous_redis_ms,
                    f"{row.ratio:.1f}x",
                )
                for row in axis_rows
            ],
        )
    )

    progress("outage")
    outage_rows = outage.outage(counts.outage_kicks)
    out.append(
        "### The buffer through an outage\n\n"
        f"{counts.outage_kicks:,} buffered kicks of a 3-axis metrica (1,000 x 50 x 11 values) from one thread while "
        "Redis is a closed port (benchmarks/outage.py), with the default `STASTE_BUFFER_MAX_KEYS` and "
        '`STASTE_BUFFER_MAX_BYTES` (64 MiB). *held* is what the buffer says it holds (`stats()["bytes"]`), *RSS* '
        "the process' resident memory growth; kick times are each kick's, from the first to the last.\n\n"
        + report.table(
            ["kicks", "dropped", "held (MiB)", "RSS growth (MiB)", "longest kick (ms)", "p99.9 (ms)", "over 5 ms"],
            [
                (row.what, row.dropped, row.held_mib, row.rss_mib, row.longest_ms, row.p999_ms, row.over_5ms)
                for row in outage_rows
            ],
        )
    )

    progress("big listpacks")
    listpack_rows = listpack.compare((128, 512, 1024), counts.listpack_kicks, counts.listpack_rounds)
    out.append(
        "### Buffered calls on a Redis configured for big listpack hashes\n\n"
        "A HINCRBY into a hash still in listpack encoding scans it; staste's calls hold 250 HINCRBYs, cut in "
        "proportion to the server's `hash-max-listpack-entries` past Redis' default 512 (`calls.counters_budget()`); "
        "*fixed* is the 1,000 HINCRBYs a call they replaced, in the same run. A Redis of its own per setting; "
        f"{counts.listpack_kicks:,} buffered kicks a round, flushed, into an empty metrica; medians of "
        f"{counts.listpack_rounds} rounds (benchmarks/listpack.py). *5 axes*: the workload above (its buckets soon "
        "outgrow any listpack); *1 axis, 1,000 values*: every bucket a 1,001-field listpack at 1,024, the worst "
        "case. Redis' own times: mean and longest call (INFO commandstats, SLOWLOG), all the flush's calls.\n\n"
        + report.table(
            [
                "listpack entries",
                "workload",
                "HINCRBYs a call",
                "mean call (ms)",
                "longest (ms)",
                "flush (ms)",
                "fixed: mean call (ms)",
                "longest (ms)",
                "flush (ms)",
            ],
            [
                (
                    f"{row.entries:,}",
                    row.workload,
                    row.budget,
                    row.new.mean_call_ms,
                    row.new.longest_ms,
                    row.new.flush_ms,
                    row.fixed.mean_call_ms,
                    row.fixed.longest_ms,
                    row.fixed.flush_ms,
                )
                for row in listpack_rows
            ],
        )
    )

    progress("waiting for replicas")
    replica_rows, wait_cost = replicas.compare(counts.replica_kicks, counts.replica_rounds)
    out.append(
        "### Waiting for a replica (`STASTE_WAIT_REPLICAS`)\n\n"
        f"A primary with one replica on loopback; {counts.replica_rounds} rounds of {counts.replica_kicks:,} buffered "
        "kicks of the 5-axis workload, each ending with a flush, rounds with WAIT alternating with rounds without "
        "(benchmarks/replicas.py). *slower* is the median of the paired rounds' time ratios. A flush confirmed by "
        f"the replica costs one more round trip per primary: {wait_cost.wait_ms:.2f} ms (PEXPIRE and WAIT, "
        f"pipelined) against {wait_cost.ping_ms:.2f} ms for a PING, median of 500.\n\n"
        + report.table(
            ["setting", "kicks/s", "flushes a round", "WAITs a round", "slower"],
            [(row.what, row.rate, f"{row.flushes:g}", f"{row.waits:g}", f"{row.slower:.2f}x") for row in replica_rows],
        )
    )

    progress("async API")
    async_rows = asyncapi.compare(counts.month_kicks, counts.query_repeats)
    out.append(
        "### Async API (`akick`, `atotal`, ...) against the sync one\n\n"
        f"The same metrica as above; median of {counts.query_repeats} interleaved rounds, sync then async, the "
        "async calls in one event loop; *ratio* is the median of the rounds' async / sync times. The last row "
        "is what async is for: kicks made at once from many requests on one loop, against the same kicks one "
        "after the other through the sync client (benchmarks/asyncapi.py).\n\n"
        + report.table(
            ["call", "sync ms", "async ms", "async / sync", "async round trips"],
            [(row.what, row.sync_ms, row.async_ms, f"{row.ratio:.2f}x", row.round_trips) for row in async_rows],
        )
    )

    progress("memory")
    combination_rows = memory.per_combination(counts.new_values)
    day_rows = [memory.one_day(counts.day_kicks, entries) for entries in (0, 512, 4096)]
    settings_text = ", ".join(f"`{name} {value}`" for name, value in memory.hash_settings().items())
    out.append(
        "### Memory\n\n"
        f"Redis defaults: {settings_text}. Bytes are `MEMORY USAGE` summed over the metrica's keys.\n\n"
        + report.table(
            ["a new value of a stored axis (2 axes)", "bytes", "fields", "bytes per field"],
            [
                (f"in {row.encoding} hashes", row.bytes_per_value, row.fields_per_value, row.bytes_per_field)
                for row in combination_rows
            ],
        )
        + f"\n\nA day of {counts.day_kicks:,} requests (an averaged metrica: view, method, status) written "
        "with three values of `hash-max-listpack-entries`; *kept* is what the minute, hour and day buckets "
        "hold at the default retention (1, 14 and 185 days) for that traffic.\n\n"
        + report.table(
            [
                "hash-max-listpack-entries",
                "minute buckets",
                "hour buckets",
                "day bucket",
                "a day",
                "kept",
                "hashes (listpack/hashtable)",
                "Redis CPU per kick (µs)",
            ],
            [
                (
                    f"{row.listpack_entries}" + (" (default)" if row.listpack_entries == 512 else ""),
                    report.kib(row.by_kind.get("minute", 0)),
                    report.kib(row.by_kind.get("hour", 0)),
                    report.kib(row.by_kind.get("day", 0)),
                    report.kib(row.per_day),
                    report.kib(row.steady_state),
                    f"{row.hashes.get('listpack', 0)}/{row.hashes.get('hashtable', 0)}",
                    row.cpu_us_per_kick,
                )
                for row in day_rows
            ],
        )
    )

    progress("middleware")
    cost = middleware.overhead(counts.requests, counts.request_rounds)
    out.append(
        "### Response-time middleware\n\n"
        "A hello-world view through Django's WSGI handler, without and with "
        f"`staste.middleware.ResponseTimeMiddleware` (median of {counts.request_rounds} interleaved rounds of "
        f"{counts.requests} requests; the overhead is the median of the rounds' ratios). Round trips are those the "
        "request's own thread makes; the buffer's thread writes in the background.\n\n"
        + report.table(
            ["µs per request without", "with", "overhead", "Redis round trips per request", "requests recorded"],
            [
                (
                    cost.without_us,
                    cost.with_us,
                    f"{cost.overhead_us:.2f} µs ({cost.overhead:.1%})",
                    cost.round_trips,
                    cost.recorded,
                )
            ],
        )
    )
    progress("performance insight")
    out.append(insight_section(counts))
    out.append(f"Load average when the run ended: {report.load()}.")
    return out


def insight_section(counts: Counts) -> str:
    """The performance-insight table: staste against django-prometheus and django-silk (benchmarks/insight.py)."""
    from benchmarks import insight

    found = insight.overhead(counts.insight_requests, counts.insight_rounds)
    return (
        "### Performance insight against django-prometheus and django-silk\n\n"
        f"One view running {insight.QUERIES} ORM queries on an in-memory SQLite database (an N+1 to staste), through "
        "Django's WSGI handler: bare; with staste's middleware and database instrumentation (db_queries, db_time, "
        "db_n_plus_one); with django-prometheus' middleware and instrumented SQLite backend; with django-silk's "
        "middleware (measured last, against bare rounds of its own, a quarter as many: it patches Django's SQL "
        f"compiler for the process). Median of {counts.insight_rounds} interleaved "
        f"rounds of {counts.insight_requests} requests; *added* is the median of the rounds' differences with the "
        "bare view (benchmarks/insight.py). Target: staste's added cost at most 0.3x django-prometheus'.\n\n"
        + report.table(
            ["stack", "µs per request", "added µs", "added / django-prometheus'", "note"],
            [
                (
                    row.what,
                    row.us if row.note[:3] != "not" else "—",
                    row.added_us if row.added_us is not None else "—",
                    f"{row.added_us / found.variants[2].added_us:.2f}x"
                    if row.added_us is not None and found.variants[2].added_us
                    else "—",
                    row.note,
                )
                for row in found.variants
            ],
        )
        + (f"\n\nstaste / django-prometheus: {found.ratio:.2f}x. " if found.ratio is not None else "\n\n")
        + f"Per statement, on top of the middleware's own cost: {found.per_query_us:.2f} µs (target: 2 µs; a view of "
        "a hundred cheap statements through Django's cursor against one of none, bare and with staste); the "
        f"middleware's own cost on the view of none: {found.middleware_us:.1f} µs. "
        f"db_queries counted {found.recorded:,} requests and {found.statements:,} statements in the staste rounds."
    )


def main() -> int:
    started = time.perf_counter()

    def progress(what: str) -> None:
        print(f"[{time.perf_counter() - started:5.1f}s] {what}", file=sys.stderr, flush=True)

    with RedisServer() as server:
        from benchmarks import settings

        settings.configure(server.url)
        text = "\n\n".join(sections(FULL, progress)) + "\n"
    progress("done")
    print(text)
    RESULTS.write_text(text, encoding="utf-8")
    print(f"(written to {RESULTS.relative_to(ROOT)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
