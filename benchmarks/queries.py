"""Reading: what the admin metrica page asks for, in Redis round trips and milliseconds.

The data is a month of requests into an averaged metrica (view, method, status), written in
batches the way a buffer flush writes them; the queries are the page's charts: a line chart
over the last 60 minutes, 24 hours and 31 days (counts and averages per bucket) and a pie of
the 50 stored values of one axis.
"""

from __future__ import annotations

import datetime
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import measure, workloads
from staste import buffer, conf, timescale
from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica

PIE_CHOICES = 50


@dataclass
class QueryRow:
    what: str
    buckets: int  # values returned
    round_trips: int
    ms: float  # median


def requests_metrica(name: str = "bench_requests") -> AveragedMetrica:
    return AveragedMetrica(
        name=name,
        axes=[
            ("view", StoredChoiceAxis()),
            ("method", Axis(choices=workloads.METHODS)),
            ("status", Axis(choices=workloads.STATUSES)),
        ],
        multiplier=1000,
    )


def fill_month(metrica: AveragedMetrica, now: datetime.datetime, kicks: int) -> None:
    """``kicks`` requests spread over the 31 days before ``now``, over 50 views."""
    rng = random.Random(workloads.SEED)
    views = [f"app.views.page_{n}" for n in range(PIE_CHOICES)]
    latencies = workloads.latencies(kicks)
    prepared = []
    for n in range(kicks):
        # A third in the last hour, a third in the last day: every chart has data in every bucket.
        age = (datetime.timedelta(hours=1), datetime.timedelta(days=1), datetime.timedelta(days=31))[
            n % 3
        ] * rng.random()
        prepared.append(
            metrica.prepare_kick(
                value=latencies[n] / 1000,
                date=now - age,
                view=views[n % PIE_CHOICES],
                method=rng.choice(workloads.METHODS),
                status=rng.choice(workloads.STATUSES[:4]),
            )
        )
    buffer.write(prepared)


def admin_queries(metrica: AveragedMetrica) -> dict[str, Callable[[], Any]]:
    """The data of the admin metrica page, built the way the page builds it (staste.charts.spec)."""
    from staste.charts import spec
    from staste.query import pipelined

    values = metrica.values()
    line = {last: spec.parse_last(last) for last in ("60 minutes", "24 hours", "31 days")}
    pie = values.filter(method="GET")
    queries: dict[str, Callable[[], Any]] = {
        f"line chart, last {last}": (lambda r=r: spec.line_spec(values, r.since, r.until, r.scale))
        for last, r in line.items()
    }
    queries[f"pie of {PIE_CHOICES} stored choices"] = lambda: spec.pie_spec(pie, "view")
    queries["pie of 5 declared choices"] = lambda: spec.pie_spec(values, "status")
    queries["all of the above, pipelined"] = lambda: pipelined(
        [
            *(lambda r=r: spec.line_spec(values, r.since, r.until, r.scale) for r in line.values()),
            lambda: spec.pie_spec(pie, "view"),
            lambda: spec.pie_spec(values, "status"),
        ]
    )
    return queries


def values_in(result: Any) -> int:
    if isinstance(result, list):
        return sum(values_in(item) for item in result)
    return len(result["labels"])


def query_latency(kicks: int, repeats: int) -> list[QueryRow]:
    now = conf.local()  # staste's clock, on its wall clock: a day of minutes is 1,441 buckets, DST or not
    metrica = requests_metrica()
    fill_month(metrica, now, kicks)
    rows = []
    for label, query in admin_queries(metrica).items():
        query()  # the first script read of a process also loads the script: two more round trips
        # This thread's only: a buffer's background thread may write meanwhile.
        with measure.count_round_trips(this_thread=True) as trips:
            result = query()
        spent = []
        for _ in range(repeats):
            start = time.perf_counter()
            query()
            spent.append(time.perf_counter() - start)
        rows.append(QueryRow(label, values_in(result), trips.count, statistics.median(spent) * 1000))
    return rows


@dataclass
class SeriesRow:
    what: str
    points: int
    staste_ms: float  # median
    bare_ms: float  # median
    ratio: float  # median of the rounds' staste / bare


def series_against_bare_pipeline(kicks: int, rounds: int) -> list[SeriesRow]:
    """Every series read of the last 24 hours by minute (1,441 points), against a bare redis-py
    pipeline of the same HMGETs on the same Redis, in interleaved rounds.

    The bare pipeline only fetches: it returns Redis' replies, with no datetimes nor numbers;
    staste returns (datetime, value) rows, so the ratio is everything staste costs on top.
    """
    from staste import connection, histogram, keys
    from staste.query import bucket_datetime

    now = conf.local()  # staste's clock, on its wall clock: a day of minutes is 1,441 buckets, DST or not
    metrica = AveragedMetrica(
        name="bench_series",
        axes=[("view", StoredChoiceAxis()), ("method", Axis(choices=workloads.METHODS))],
        multiplier=1000,
        histogram=True,
    )
    fill_day(metrica, now, kicks)
    values = metrica.values()
    since = now - datetime.timedelta(minutes=1440)
    _, spans = values.series_spans(since, now, "minute")
    client = connection.get_redis()
    field = keys.field([keys.ALL, keys.ALL])

    def bare(base: str, fields: list[str]) -> Callable[[], Any]:
        bucket_keys = [keys.bucket_key(base, timescale.bucket_id(span)) for span in spans]

        def read() -> Any:
            pipe = client.pipeline(transaction=False)
            for key in bucket_keys:
                pipe.hmget(key, fields)
            return pipe.execute()

        return read

    hist_base = metrica.base + keys.family_infix(histogram.MARK)
    cases = {
        "timeserie (sums)": (lambda: values.timeserie(since, now, "minute"), bare(metrica.base, [field])),
        "timeserie_counts": (
            lambda: values.timeserie_counts(since, now, "minute"),
            bare(metrica.base, [keys.COUNT_MARK + field]),
        ),
        "timeserie_counts_and_averages": (
            lambda: values.timeserie_counts_and_averages(since, now, "minute"),
            bare(metrica.base, [field, keys.COUNT_MARK + field]),
        ),
        "timeserie_percentiles (p50, p95, p99)": (
            lambda: values.timeserie_percentiles(since, now, "minute"),
            bare(hist_base, [prefix + field for prefix in histogram.PREFIXES]),
        ),
    }
    assert bucket_datetime(spans[0])  # the rows staste builds are real datetimes
    rows = []
    for label, (staste_read, bare_read) in cases.items():
        staste_read(), bare_read()  # scripts loaded, connections made
        spent = measure.rounds_of({"staste": staste_read, "bare": bare_read}, rounds)
        rows.append(
            SeriesRow(
                label,
                len(spans),
                statistics.median(spent["staste"]) * 1000,
                statistics.median(spent["bare"]) * 1000,
                measure.paired_ratio(spent["staste"], spent["bare"]),
            )
        )
    return rows


def fill_day(metrica: AveragedMetrica, now: datetime.datetime, kicks: int) -> None:
    """``kicks`` requests over the last 24 hours: every minute bucket holds something."""
    rng = random.Random(workloads.SEED)
    latencies = workloads.latencies(kicks)
    prepared = [
        metrica.prepare_kick(
            value=latencies[n] / 1000,
            date=now - datetime.timedelta(minutes=n % 1441),
            view=f"app.views.page_{n % PIE_CHOICES}",
            method=rng.choice(workloads.METHODS),
        )
        for n in range(kicks)
    ]
    buffer.write(prepared)


@dataclass
class HeavyRow:
    what: str
    calls: int  # script calls (EVALSHA) Redis ran for one read
    longest_ms: float  # the longest of them, by SLOWLOG, median over the rounds
    ms: float  # the whole read, median over the rounds


def fill_pages(metrica: AveragedMetrica, now: datetime.datetime, kicks: int = 6000, days: int = 8) -> None:
    """``kicks`` over the last ``days`` into a stored axis of 1,000 pages, every one of them stored."""
    rng = random.Random(13)
    pages = [f"/page/{n:04d}" for n in range(1000)]
    prepared = [
        metrica.prepare_kick(
            value=rng.choice((0.004, 0.02, 0.15, 0.9, 3.0)),
            date=now - datetime.timedelta(minutes=rng.randrange(days * 1440)),
            page=pages[n % len(pages)],
            method=rng.choice(("GET", "POST")),
        )
        for n in range(kicks)
    ]
    buffer.write(prepared)


def heaviest_reads(rounds: int, kicks: int = 6000) -> list[HeavyRow]:
    """The heaviest reads of tests/test_query_cost.py (a stored axis of 1,000 values with
    histograms), their budget lifted: how many script calls each makes and how long the
    longest of them holds Redis (SLOWLOG, every call logged), next to the whole read's time.

    The tests assert the work each call is given (deterministic); the time it takes is here.
    """
    from staste import conf, connection, timescale
    from staste.query import budget

    metrica = AveragedMetrica(
        name="bench_pages",
        axes=[("page", StoredChoiceAxis()), ("method", Axis(choices=["GET", "POST"]))],
        multiplier=1000,
        histogram=True,
    )
    now = conf.local()
    fill_pages(metrica, now, kicks)
    values = metrica.values()
    day = values.timespan(*timescale.truncate(now, "day"))
    reads: dict[str, Callable[[], Any]] = {
        "a breakdown of 1,500 minutes (sums, counts)": lambda: values.over(
            now - datetime.timedelta(minutes=1499), now, "minute"
        ).iterate_counts("page"),
        "p50/p95/p99 of 1,000 pages over 1,500 minutes": lambda: values.over(
            now - datetime.timedelta(minutes=1499), now, "minute"
        ).iterate_percentiles("page"),
        "a breakdown of 10,000 minutes (averages)": lambda: values.over(
            now - datetime.timedelta(minutes=9999), now, "minute"
        ).iterate_averages("page"),
        "the slowest pages of a day (top by p95)": lambda: day.top("page", 10, by="p95"),
        "a series of 10,000 minutes (counts, averages)": lambda: values.timeserie_counts_and_averages(
            now - datetime.timedelta(minutes=9999), now, "minute"
        ),
    }
    client = connection.get_redis()
    threshold = client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    length = client.config_get("slowlog-max-len")["slowlog-max-len"]
    client.config_set("slowlog-log-slower-than", 0)  # every command logged, with its duration
    client.config_set("slowlog-max-len", 100_000)
    rows = []
    try:
        with budget(10**12):
            for what, read in reads.items():
                read()  # scripts loaded, axis sizes known
                longest, spent, calls = [], [], 0
                for _ in range(rounds):
                    client.slowlog_reset()
                    start = time.perf_counter()
                    read()
                    spent.append(time.perf_counter() - start)
                    logged = [e for e in client.slowlog_get(100_000) if e["command"].upper().startswith(b"EVALSHA")]
                    calls = len(logged)
                    longest.append(max((e["duration"] for e in logged), default=0) / 1000)
                rows.append(HeavyRow(what, calls, statistics.median(longest), statistics.median(spent) * 1000))
    finally:
        client.config_set("slowlog-log-slower-than", threshold)
        client.config_set("slowlog-max-len", length)
    return rows
