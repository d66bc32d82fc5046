"""The benchmarks' code paths, with tiny counts, so ``make bench`` keeps working.

No timing is asserted (the machine is shared); what is checked is that each benchmark does
the work it claims: the seed baseline writes exactly what staste writes, queries cost the
round trips the tables report, memory is measured on real keys.
"""

from __future__ import annotations

import datetime
import re
import threading

import pytest

from benchmarks import kicks, measure, memory, previous, queries, report, run, workloads
from benchmarks.seed import SeedMetrica
from staste import buffer, keys
from tests.keydump import dump

# The benchmarks start and measure one plain server of their own (INFO, PING in pipelines).
pytestmark = pytest.mark.single_redis("benchmarks measure one plain redis-server")


def bucket_contents(client, base: str) -> dict[str, dict[bytes, bytes]]:
    found = {}
    for key in client.scan_iter(match=base.replace("{", "\\{").replace("}", "\\}") + "*"):
        tail = key.decode()[len(base) :]
        if tail.isdigit() or tail == "all":
            found[tail] = client.hgetall(key)
    return found


@pytest.mark.parametrize("count", workloads.AXIS_COUNTS)
def test_the_seed_baseline_writes_exactly_what_staste_writes(count, staste_redis) -> None:
    metrica = workloads.metrica(f"same_{count}", count)
    seed = SeedMetrica(staste_redis, f"same_{count}", list(metrica.axes), kicks.seed_prefix())
    date = datetime.datetime(2010, 2, 7, 13, 5)
    for event in workloads.events(count, 20):
        metrica.kick(date=date, **event)
        seed.kick(date=date, **event)
    staste_buckets = bucket_contents(staste_redis, metrica.base)
    assert len(staste_buckets) == 6
    assert staste_buckets == bucket_contents(staste_redis, seed.base)
    assert staste_buckets["all"][keys.field([keys.ALL] * count).encode()] == b"20"


def metrica_contents(client, prefix: str, base: str) -> dict[str, object]:
    """Every key of the metrica at ``base`` (but its writers' call numbers), by what follows it."""
    return {
        key[len(base) :]: content
        for key, content in dump(client, prefix, ttl=True).items()
        if key.startswith(base) and not key[len(base) :].startswith("w:")
    }


@pytest.mark.parametrize("count", workloads.AXIS_COUNTS)
def test_the_previous_writer_writes_what_the_buffered_writer_writes(count, staste_redis, prefix, monkeypatch) -> None:
    # The baseline is only a baseline if it does the same work: the same counters, stored
    # values, years and TTLs.  Small limits, so that it writes several times, in several calls.
    monkeypatch.setattr(previous, "MAX_KEYS", 7)
    monkeypatch.setattr(previous, "MAX_KICKS_PER_CALL", 3)
    metrica = workloads.metrica(f"new_{count}", count)
    shadow = workloads.metrica(f"old_{count}", count)
    writer = previous.PreviousWriter(staste_redis)
    date = datetime.datetime(2010, 2, 7, 13, 5)
    events = workloads.events(count, 40)
    for event in events:
        metrica.kick(date=date, buffered=True, **event)
        writer.add(shadow.prepare_kick(date=date, **event))
    buffer.flush()
    writer.flush()
    written = metrica_contents(staste_redis, prefix, metrica.base)
    assert written["all"][0][keys.field([keys.ALL] * count).encode()] == b"40"  # (content, has a TTL)
    assert written == metrica_contents(staste_redis, prefix, shadow.base)
    distinct = len({shadow.prepare_kick(date=date, **event).merge_key() for event in events})
    assert writer.written >= distinct
    assert writer.calls_made >= -(-writer.written // 3)  # numbered calls of at most 3 kicks
    assert staste_redis.get(keys.writer_key(shadow.base, writer.writer_id)) == str(writer.calls_made).encode()


def test_seeded_events_are_the_same_every_run() -> None:
    assert workloads.events(3, 50) == workloads.events(3, 50)
    assert workloads.events(3, 50) != workloads.events(3, 50, seed=1)
    assert workloads.latencies(10) == workloads.latencies(10)
    assert {frozenset(event) for event in workloads.events(5, 10)} == {
        frozenset({"view", "method", "status", "country", "device"})
    }


@pytest.mark.django_db  # requests go through Django's handler, whose signals look at the database
def test_every_benchmark_runs_and_reports(staste_redis) -> None:
    progress: list[str] = []
    text = "\n\n".join(run.sections(run.TINY, progress.append))
    assert progress == [
        "synchronous kicks",
        "buffered kicks",
        "kept combinations",
        "exactly-once synchronous kicks",
        "Redis CPU per kick",
        "queries",
        "series reads against a bare pipeline",
        "heaviest reads",
        "large stored axes",
        "outage",
        "big listpacks",
        "waiting for replicas",
        "async API",
        "memory",
        "middleware",
        "performance insight",
    ]
    assert "Redis 7" in text or "Redis 6" in text
    # One row per axis count in each table: kicks per second with the drops next to the
    # buffered rate, then what the buffered writer and the previous one gave Redis.
    number = r"[\d.,]+"
    for count in workloads.AXIS_COUNTS:
        # axes, kick(), seed, staste / seed, kick(buffered=True), dropped (none), buffered / kick()
        row = rf"^\| {count} \| {number} \| {number} \| [\d.,]+x \| {number} \| 0 \| {number}x \|$"
        assert re.search(row, text, re.MULTILINE), count
        # axes, kicks, written, calls, Redis µs, mean call, longest, the previous writer's
        # written, calls, Redis µs, longest, and previous / new
        row = rf"^\| {count} \| 20 \|( {number} \|){{9}} ([\d.,]+|inf)x \|$"
        assert re.search(row, text, re.MULTILINE), count
    # Metrica(combinations=k): a row per axis count and k, nothing dropped, 29 fields at 7 axes, k=2.
    for count, fields in ((5, (6, 16, 26, 32)), (7, (8, 29, 64, 128))):
        for kept, width in zip(("1", "2", "3", "all"), fields, strict=True):
            row = rf"^\| {count} \| {kept} \| {width} \| {number} \| [\d.,]+x \| {number} \| 0 \| [\d.,]+x \|"
            assert re.search(row, text, re.MULTILINE), (count, kept)
    assert re.search(r"^\| previous buffered writer \(957f8bd\), 5 axes \| merged \| [\d.,]+ \|", text, re.MULTILINE)
    # Big listpacks: a row per setting and workload, the calls cut to 250, 250 and 125 HINCRBYs.
    for entries, budget in (("128", "250"), ("512", "250"), ("1,024", "125")):
        for workload in ("5 axes", "1 axis, 1,000 values"):
            assert re.search(rf"^\| {entries} \| {workload} \| {budget} \|", text, re.MULTILINE), (entries, workload)
    # Waiting for a replica: one WAIT a flush with it, none without.
    assert re.search(r"^\| STASTE_WAIT_REPLICAS=0 \| [\d.,]+ \| 1 \| 0 \| 1.00x \|$", text, re.MULTILINE)
    assert re.search(r"^\| STASTE_WAIT_REPLICAS=1 \| [\d.,]+ \| 1 \| 1 \| [\d.,]+x \|$", text, re.MULTILINE)
    # The middleware: no round trip on the request's thread, and every request recorded.
    assert re.search(
        r"^\| [\d.,]+ \| [\d.,]+ \| -?[\d.,]+ µs \(-?[\d.,]+%\) \| 0.00 \| 4 \|$", text, re.MULTILINE
    )  # 2 + 2
    # Performance insight: the same view bare and with staste (and django-prometheus where it is
    # installed), every staste request and its ten statements counted by db_queries.
    assert re.search(r"^\| bare \| [\d.,]+ \| — \| — \|", text, re.MULTILINE)
    assert re.search(r"^\| staste \(middleware \+ database\) \| [\d.,]+ \| -?[\d.,]+ \|", text, re.MULTILINE)
    assert re.search(r"^\| django-prometheus[^|]* \| ([\d.,]+|—) \|", text, re.MULTILINE)
    assert re.search(r"^\| django-silk[^|]* \|", text, re.MULTILINE)
    assert re.search(r"Per statement, on top of the middleware's own cost: -?[\d.,]+ µs", text)
    assert "db_queries counted 2 requests and 20 statements in the staste rounds" in text
    # The admin page's charts: one round trip each, and one for the pipelined page.
    for chart in ("last 60 minutes", "last 24 hours", "last 31 days", "pie of 50 stored choices"):
        assert re.search(rf"^\| line chart, {chart} \| \d+ \| 1 \||^\| {chart} \| \d+ \| 1 \|", text, re.MULTILINE)
    assert re.search(r"^\| all of the above, pipelined \| \d+ \| 1 \|", text, re.MULTILINE)
    assert "512 (default)" in text
    # Series reads, each against a bare pipeline of the same HMGETs (1,441 minutes).
    for series in ("timeserie (sums)", "timeserie_counts", "timeserie_counts_and_averages", "timeserie_percentiles"):
        assert re.search(
            rf"^\| {re.escape(series)}[^|]* \| 1,441 \| [\d.,]+ \| [\d.,]+ \| [\d.,]+ \|$", text, re.MULTILINE
        ), series
    # The heaviest reads: the script calls of each, and the longest of them.
    for read in ("a breakdown of 10,000 minutes (averages)", "the slowest pages of a day (top by p95)"):
        assert re.search(rf"^\| {re.escape(read)} \| [\d,]+ \| [\d.,]+ \| [\d.,]+ \|$", text, re.MULTILINE), read
    # Large stored axes: read in several calls, each given a part of the set.
    for values in ("2,500", "5,000"):
        assert re.search(rf"^\| {values} \| [2-9]\d* \|( {number} \|){{6}} [\d.,]+x \|$", text, re.MULTILINE), values
    # The outage: what the buffer held, for kicks without and with ids.
    for what in ("no ids", "a new unique= id every kick"):
        assert re.search(rf"^\| {what} \|( {number} \|){{6}}$", text, re.MULTILINE), what
    # The async API: every query one round trip through redis.asyncio, as its sync twin.
    for call in ("total()", "iterate('view'), 50 stored values", "timeserie, 5 weeks by week (35 days)"):
        assert re.search(rf"^\| {re.escape(call)} \| [\d.,]+ \| [\d.,]+ \| [\d.,]+x \| 1 \|$", text, re.MULTILINE), call


def test_query_benchmark_reads_every_bucket(staste_redis) -> None:
    rows = {row.what: row for row in queries.query_latency(kicks=40, repeats=1)}
    assert rows["line chart, last 60 minutes"].buckets == 60
    assert rows["line chart, last 24 hours"].buckets == 24
    assert rows["line chart, last 31 days"].buckets == 31
    assert rows["pie of 50 stored choices"].buckets == 40  # every stored view is listed, 40 kicks: 40 views
    assert all(row.round_trips <= 2 for row in rows.values())


def test_memory_benchmark_measures_real_keys(staste_redis) -> None:
    listpack, hashtable = memory.per_combination(new_values=3, grown=520)
    assert listpack.encoding == "listpack" and hashtable.encoding == "hashtable"
    assert 0 < listpack.bytes_per_value < hashtable.bytes_per_value
    saved = staste_redis.config_get("hash-max-listpack-entries")
    day = memory.one_day(kicks=40, listpack_entries=0)
    assert staste_redis.config_get("hash-max-listpack-entries") == saved  # restored
    assert day.hashes.get("listpack", 0) == 0 and day.hashes["hashtable"] > 0
    assert day.per_day == sum(day.by_kind[scale] for scale in ("minute", "hour", "day"))
    assert day.steady_state > day.per_day


def test_round_trip_counter_and_server_cpu(staste_redis) -> None:
    staste_redis.ping()  # connects (a connection's set-up sends commands of its own)
    with measure.count_round_trips(this_thread=True) as trips:
        staste_redis.ping()
        pipe = staste_redis.pipeline(transaction=False)
        pipe.ping()
        pipe.ping()
        pipe.execute()
        # What another thread sends meanwhile (a buffer's flush) is not the measured code's.
        other = threading.Thread(target=staste_redis.ping)
        other.start()
        other.join()
    assert trips.count == 2
    with measure.count_round_trips() as trips:
        other = threading.Thread(target=staste_redis.ping)
        other.start()
        other.join()
    assert trips.count >= 1
    assert measure.server_cpu(staste_redis) > 0
    medians = measure.interleaved({"a": lambda: None, "b": staste_redis.ping}, rounds=3)
    assert set(medians) == {"a", "b"}


def test_report_tables() -> None:
    text = report.table(["what", "n", "ratio"], [("x", 1234.5, "2.00x"), ("y", 0.5, "0.50x")])
    assert text.splitlines() == [
        "| what | n | ratio |",
        "| --- | ---: | ---: |",
        "| x | 1,234 | 2.00x |",
        "| y | 0.50 | 0.50x |",
    ]
    assert report.kib(2048) == "2.0 KiB" and report.kib(3 * 1024 * 1024) == "3.0 MiB"
    assert [report.significant(v) for v in (0.0009, 0.0123, 7.591, 76.23, 846.8, 12345.6)] == [
        "0.000900",
        "0.0123",
        "7.59",
        "76.2",
        "847",
        "12,346",
    ]


def test_the_uniques_benchmark_measures_real_keys(staste_redis) -> None:
    from benchmarks import uniques

    lines = uniques.measure(ids=(1, 100), kicks=2, rounds=1, flush_ids=50)
    sizes = [int(line.split("|")[2].replace(",", "")) for line in lines[2:4]]
    assert 0 < sizes[0] < sizes[1]  # a sparse HyperLogLog grows with its ids
    assert any(line.startswith("sync kick") for line in lines) and "50 distinct ids" in lines[-1]
