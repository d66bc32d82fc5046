"""Hostile input stays cheap: ranges read their exact cover, every read is charged to a work
budget, and no call is given more than its bound of work (issue 13 §1), on a metrica whose
stored axis holds 1,000 values; and top-N (issue 14 §5).

Costs are compared by what Redis counted (INFO commandstats), by the work staste charged and by
the work each call was given, never by wall time.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator

import pytest
import redis
from django.contrib import admin
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client
from django.urls import path

from staste import async_connection, buffer, conf, query, reads, roundtrip, scripts, timescale
from staste.axis import Axis, StoredChoiceAxis
from staste.charts.views import PieChart
from staste.exceptions import QueryTooExpensive
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips
from tests.test_admin import make_user, page

D = datetime.datetime
PAGES = [f"/page/{n:04d}" for n in range(1000)]
NAME = "cost_pages"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("pie/", PieChart.as_view(metrica=NAME, axis_keyword="page")),
]
pytestmark = pytest.mark.urls(__name__)


def fill(metrica: Metrica, now: D, kicks: int = 6000, days: int = 8) -> None:
    """``kicks`` over the last ``days``, every one of the 1,000 pages stored (the axis is full)."""
    rng = random.Random(13)
    prepared = [
        metrica.prepare_kick(
            value=rng.choice((0.004, 0.02, 0.15, 0.9, 3.0)),
            date=now - datetime.timedelta(minutes=rng.randrange(days * 1440)),
            page=PAGES[n % len(PAGES)],
            method=rng.choice(("GET", "POST")),
        )
        for n in range(kicks)
    ]
    buffer.write(prepared)


@pytest.fixture
def pages() -> Iterator[AveragedMetrica]:
    metrica = AveragedMetrica(
        name=NAME,
        axes=[("page", StoredChoiceAxis()), ("method", Axis(choices=["GET", "POST"]))],
        multiplier=1000,
        histogram=True,
    )
    fill(metrica, conf.local())
    registry.register(metrica)
    yield metrica
    registry.unregister(metrica)


#: What reads send or run in scripts (writes of other tests' background flushers are not counted).
READ_COMMANDS = ("hmget", "smembers", "evalsha", "eval", "script|load")


def server_calls(client: redis.Redis, command: str | None = None) -> int:
    """Read commands Redis ran, those run by scripts included (INFO commandstats); or one command's."""
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ([command] if command else READ_COMMANDS))


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(make_user("viewer", staff=True, permitted=True))
    return client


# -- the exact cover --------------------------------------------------------------------------


def test_a_range_reads_its_exact_cover_and_sums_what_each_bucket_holds(pages) -> None:
    now = conf.local()
    since = now - datetime.timedelta(minutes=1499)
    ranged = pages.values().over(since, now, "minute")
    assert ranged.cover == tuple(
        timescale.cover(timescale.truncate(since, "minute"), timescale.truncate(now, "minute"), timescale.SCALES)
    )
    assert len(ranged.cover) < 150  # not 1,500
    # the same numbers as adding every minute up, for every measure
    _, minutes = pages.values().series_spans(since, now, "minute")
    with query.budget(10**9):  # the model reads every minute: 1.5 M counters
        by_minute = query.pipelined([lambda s=s: pages.timespan(*s).iterate_counts("page") for s in minutes])
    expected: dict[str, int] = {}
    for rows in by_minute:
        for value, count in rows:
            expected[value] = expected.get(value, 0) + count
    assert dict(ranged.iterate_counts("page")) == expected
    assert ranged.count() == sum(expected.values()) > 0
    assert ranged.count() == sum(count for _, count in pages.timeserie_counts(since, now, "minute"))
    assert ranged.total() == pytest.approx(sum(total for _, total in pages.timeserie(since, now, "minute")))
    assert dict(ranged.iterate_counts("method")) == {
        method: sum(count for _, count in pages.filter(method=method).timeserie_counts(since, now, "minute"))
        for method in ("GET", "POST")
    }
    assert ranged.percentiles([50, 95]) == pages.percentiles_over(since, now, "minute", [50, 95])


def test_large_counters_add_up_exactly_over_a_range() -> None:
    money = Metrica(name="money", axes=[("kind", StoredChoiceAxis())])
    big = 12_345_678_901_234  # 14 digits: 28 of them add up beyond a Lua double's exact integers
    days = [D(2024, 1, d, 12) for d in range(1, 29)]
    for day in days:
        money.kick(value=big, date=day, kind="a")
        money.kick(value=-7, date=day, kind="b")
    ranged = money.values().over(D(2024, 1, 1), D(2024, 1, 28, 23, 59), "hour")
    assert len(ranged.cover) == 28
    assert ranged.total() == 28 * big - 28 * 7
    assert ranged.iterate("kind") == [("a", 28 * big), ("b", -196)]
    assert ranged.top("kind", 1) == [("a", 28 * big)]


def test_a_range_keeps_filters_and_refuses_what_it_cannot_mean(pages) -> None:
    now = conf.local()
    ranged = pages.filter(method="GET").over(now - datetime.timedelta(hours=3))
    assert ranged.filters == {"method": "GET"}
    assert ranged.filter(page=PAGES[0]).cover == ranged.cover
    with pytest.raises(ValueError, match="no time scale to iterate"):
        ranged.iterate()
    with pytest.raises(TypeError, match="over a range"):
        ranged.timespan(year=2024)
    assert ranged.timespan() is ranged
    with pytest.raises(TypeError, match="has a timespan"):
        pages.timespan(year=2024).over(D(2024, 1, 1))


def test_a_series_too_fine_for_its_range_names_the_scale_to_use(pages) -> None:
    now = conf.local()
    with pytest.raises(ValueError, match="use scale='hour'"):
        pages.timeserie(now - datetime.timedelta(days=8), now, "minute")


# -- the budget -------------------------------------------------------------------------------


def test_past_the_budget_nothing_is_read_and_the_error_carries_the_numbers(pages, settings) -> None:
    settings.STASTE_MAX_PUBLIC_QUERY_WORK = 40_000
    now = conf.local()
    ranged = pages.values().over(now - datetime.timedelta(minutes=9999), now, "minute")
    with (
        count_round_trips() as trips,
        pytest.raises(QueryTooExpensive) as caught,
        query.budget(setting="STASTE_MAX_PUBLIC_QUERY_WORK"),
    ):
        ranged.iterate_counts("page")
    assert trips.count == 1  # read.lua counted the stored values and read nothing
    error = caught.value
    assert error.limit == 40_000
    assert error.setting == "STASTE_MAX_PUBLIC_QUERY_WORK"
    assert error.work == len(ranged.cover) * 1001  # buckets x (max_choices + 1) values x 1 family
    assert "STASTE_MAX_PUBLIC_QUERY_WORK" in str(error) and isinstance(error, ValueError)
    # the default budget (the admin's) lets it through, and counts what it read
    with query.budget() as spent:
        rows = ranged.iterate_counts("page")
    assert len(rows) == 1000 and spent.spent == error.work


def test_the_budget_is_shared_by_every_read_within_it(pages, settings) -> None:
    settings.STASTE_MAX_QUERY_WORK = 2500
    with query.budget() as spent:
        pages.values().iterate("page")  # 1,001 counters
        pages.values().iterate("page")
        assert spent.spent == 2002
        with pytest.raises(QueryTooExpensive) as caught:
            query.pipelined(
                [lambda: pages.values().iterate("method"), lambda: pages.values().top("page", by="average")]
            )
    # what the budget would have reached: 2,002 spent, the method's 2 counters, 1,001 values x 2 families
    assert caught.value.work == 2002 + 2 + 2002 and caught.value.limit == 2500
    assert spent.spent <= 2500


#: What reading counters runs, inside scripts or not (a refused batch runs none of them).
COUNTER_READS = ("hmget", "hscan", "pfcount")


def counters_read(client: redis.Redis) -> int:
    return sum(server_calls(client, command) for command in COUNTER_READS)


@pytest.mark.single_redis(reason="INFO commandstats of one server")
def test_a_batch_is_bounded_by_the_sum_of_its_reads(pages, staste_redis, settings) -> None:
    """Several stored-axis reads in one pipeline (an admin page's breakdowns) are checked
    together, before anything is read: each fits the budget, their sum does not."""
    calls = [
        lambda: pages.values().total(),  # 1 counter
        lambda: pages.values().iterate("page"),  # 1,001 values x 1 family
        lambda: pages.values().top("page", by="average"),  # 1,001 values x 2 families
    ]
    whole = 1 + 1001 + 2002
    alone = [call() for call in calls]  # (scripts loaded)
    for call in calls[1:]:
        with query.budget(2002):
            call()  # each fits on its own

    before = counters_read(staste_redis)
    with (
        count_round_trips() as trips,
        query.budget(whole - 1) as spent,
        pytest.raises(QueryTooExpensive) as caught,
    ):
        query.pipelined(calls)
    assert counters_read(staste_redis) == before  # nothing read, not even the total's one HMGET
    assert trips.count == 1
    assert (caught.value.work, caught.value.limit) == (whole, whole - 1)
    assert spent.spent <= whole - 1

    with count_round_trips() as trips, query.budget(whole) as spent:
        assert query.pipelined(calls) == alone
    assert trips.count == 1 and spent.spent == whole


@pytest.mark.django_db
@pytest.mark.single_redis(reason="INFO commandstats of one server")
def test_an_admin_page_of_several_breakdowns_is_bounded_whole(pages, staff_client, staste_redis, settings) -> None:
    """The page's breakdown by page (totals, counts, averages), its percentiles and its dropdown
    of 1,000 pages are read in one round trip: one counter past the budget refuses it whole."""
    url = page(NAME) + "?_last=30+days&_by=page"
    with query.budget(10**12) as whole:  # sees the work of the page's own budget
        assert staff_client.get(url).status_code == 200
    settings.STASTE_MAX_QUERY_WORK = whole.spent - 1
    before = counters_read(staste_redis)
    response = staff_client.get(url)
    assert response.status_code == 400 and "STASTE_MAX_QUERY_WORK" in response.content.decode()
    assert counters_read(staste_redis) == before
    settings.STASTE_MAX_QUERY_WORK = whole.spent
    assert staff_client.get(url).status_code == 200


@pytest.mark.single_redis(reason="INFO commandstats of one server")
def test_the_histograms_of_a_range_are_bounded_together(pages, staste_redis, settings) -> None:
    """top(by="p95") scans one histogram hash per bucket of the cover, each call on its own:
    the budget bounds the fields of all of them, not of each, through the async API too."""
    from tests.test_async import run

    ranged = pages.values().over(conf.local() - datetime.timedelta(hours=5), scale="hour")
    (fetch,) = ranged._plan_iterate_percentiles("page", [95]).reads
    sizes = [staste_redis.hlen(bucket) for bucket in fetch.buckets]
    assert len(sizes) > 1 and max(sizes) < sum(sizes) - 1
    expected = ranged.top("page", 3, by="p95")
    for read in (lambda: ranged.top("page", 3, by="p95"), lambda: run(ranged.atop("page", 3, by="p95"))):
        before = counters_read(staste_redis)
        with query.budget(sum(sizes) - 1), pytest.raises(QueryTooExpensive) as caught:
            read()
        assert counters_read(staste_redis) == before
        assert caught.value.work == sum(sizes)
        with query.budget(sum(sizes)) as spent:
            assert read() == expected
        assert spent.spent == sum(sizes)
    async_connection.forget()


@pytest.mark.single_redis(reason="SCRIPT FLUSH of one server")
def test_a_pipeline_whose_scripts_redis_lost_loads_them_and_is_sent_again(pages, staste_redis) -> None:
    """After a restart or SCRIPT FLUSH the EVALSHAs of a pipeline answer NOSCRIPT: the scripts
    are loaded and the pipeline sent once more (reads write nothing), sync and async alike."""
    from tests.test_async import run

    ranged = pages.values().over(conf.local() - datetime.timedelta(hours=3), scale="hour")
    reads = [lambda: ranged.iterate_counts("page"), lambda: ranged.top("page", 3, by="p95"), ranged.count]
    expected = query.pipelined(reads)
    assert len(expected[0]) > 0
    staste_redis.script_flush()
    with count_round_trips() as trips:
        assert query.pipelined(reads) == expected
    assert trips.count == 3  # NOSCRIPT, SCRIPT LOAD of read.lua, the pipeline again
    staste_redis.script_flush()
    assert run(ranged.atop("page", 3, by="p95")) == expected[1]
    assert staste_redis.script_exists(scripts.script(staste_redis, "read").sha) == [True]
    async_connection.forget()


def test_an_axis_without_a_cap_is_bounded_by_the_script(settings) -> None:
    free = Metrica(name="free", axes=[("tag", StoredChoiceAxis(max_choices=0))])
    now = conf.local()
    prepared = [free.prepare_kick(date=now, tag=f"t{n}") for n in range(300)]
    buffer.write(prepared)
    assert len(free.values().iterate("tag")) == 300
    with query.budget(200), pytest.raises(QueryTooExpensive) as caught:
        free.values().iterate("tag")
    assert caught.value.work == 301 and caught.value.limit == 200  # 300 values and the overflow


# -- hostile requests -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.single_redis(reason="INFO commandstats of one server")
def test_hostile_requests_cost_a_few_default_pages_or_a_400(pages, staff_client, staste_redis, settings) -> None:
    before = server_calls(staste_redis)
    with query.budget(10**12) as default_work:  # sees the work of the page's own budget
        assert staff_client.get(page(NAME)).status_code == 200  # 30 days
    default = server_calls(staste_redis) - before

    # The same page without the p50/p95/p99 of its 100 busiest pages (102 histogram counters
    # each per bucket): then it fits the admin's budget.
    settings.STASTE_MAX_QUERY_WORK = 10**12
    before = server_calls(staste_redis)
    with query.budget(10**12) as admin_work:
        assert staff_client.get(page(NAME) + "?_last=1500+minutes&_by=method").status_code == 200
    admin = server_calls(staste_redis) - before
    # The counters read: the breakdown's and the summary's cover (at most 84 buckets),
    # not 1,500 minutes of 1,000 values: within 5 times the default page's breakdown on a
    # day its 30 days hold no whole month (31 buckets; today's may be one month bucket).
    # The commands: a few HMGETs per point of the line (1,501 single-field reads per series
    # inside one script call), and one per bucket of the cover.  (Before: 1.5 M commands.)
    default_worst = max(default_work.spent, 31 * 1001)
    assert admin_work.spent <= 5 * default_worst, (admin_work.spent, default_work.spent)
    assert admin <= 3 * 1501 + 4 * default + 6 * 84, (admin, default)
    print(
        f"\n[cost] default page {default} commands, {default_work.spent} counters; "
        f"_last=1500 minutes {admin} commands, {admin_work.spent} counters"
    )
    # With the p50/p95/p99 of its 100 busiest pages (read value by value, 100 x 102 fields per
    # bucket, that was 860,000 counters; from one scan of each histogram bucket now): within the
    # admin's budget, and a few HMGETs per point of the line and per bucket of the cover.
    del settings.STASTE_MAX_QUERY_WORK
    before_reads = server_calls(staste_redis, "hmget")
    with query.budget(10**12) as full_work:
        assert staff_client.get(page(NAME) + "?_last=1500+minutes").status_code == 200
    assert full_work.spent <= conf.get("STASTE_MAX_QUERY_WORK")
    assert server_calls(staste_redis, "hmget") - before_reads <= 3 * 1501 + 6 * 84
    print(f"[cost] and with the percentiles of the 100 busiest pages: {full_work.spent} counters")

    before, reads_before = server_calls(staste_redis), server_calls(staste_redis, "hmget")
    response = Client().get("/pie/?last=10000+minutes")
    public = server_calls(staste_redis) - before
    counters_read = server_calls(staste_redis, "hmget") > reads_before
    # 10,000 minutes are 68 to 150 buckets, depending on the time of day: a 400 when past the
    # public budget (nothing read), else drawn for a few default pages
    if response.status_code == 400:  # read.lua counted the stored values, and read nothing
        assert not counters_read and "STASTE_MAX_PUBLIC_QUERY_WORK" in response.content.decode()
    else:
        assert response.status_code == 200 and public <= 4 * default, (public, default)
    settings.STASTE_MAX_PUBLIC_QUERY_WORK = 40_000
    response = Client().get("/pie/?last=10000+minutes")
    assert response.status_code == 400 and "STASTE_MAX_PUBLIC_QUERY_WORK" in response.content.decode()
    assert Client().get("/pie/?last=2+hours").status_code == 200  # a modest range is drawn


def call_work(command: reads.Command, reply: object) -> tuple[str, int]:
    """What one call sent to Redis was given to do, from the call and its reply: ("counters",
    n) read from hashes, ("fields", n) scanned in one histogram hash, ("hyperloglogs", n)
    merged into counts, or ("members", n) counted by the budget's check."""
    if isinstance(command, reads.HMGet):
        return "counters", len(command.fields)
    if isinstance(command, reads.PFCount):
        return "hyperloglogs", len(command.keys)
    args = command.args
    mode = args[0]
    if command.name == "years":  # [year, a value per family, year...], or sliced again
        if isinstance(reply, Exception):
            return "counters", 0
        families = len(args) - (3 + 3 * args[2]) - 5  # mode, budget, base, field, part, parts, limit
        return "counters", len(reply) // (families + 1) * families
    if mode == "years":  # uniques.lua: [year, count, year, count...]
        return "hyperloglogs", len(reply) // 2
    if mode == "work":
        return "members", 0
    after_gate = 3 + 3 * args[2]  # mode, limit, number of terms, three arguments a term
    if isinstance(reply, Exception):  # refused before reading (sliced again, or too large to scan)
        return "counters", 0
    if command.name == "uniques":
        buckets = len(command.keys) - 1
        return "hyperloglogs", len(command.keys) if mode == "count" else len(reply[0]) * buckets
    if mode == "scan":
        return "fields", reply[3]
    if mode == "axis":
        families = len(args[after_gate + 8 :])
        counted = len(reply[0]) * families * (len(command.keys) - 1)
        assert counted == reply[3]  # what read.lua says it read
        return "counters", counted
    return "counters", len(command.keys) * len(args[after_gate:])  # rows, sparse, sums


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[reads.Command, object]]:
    """Every call the read engine sends, with its reply (Redis answers them: nothing is faked)."""
    sent: list[tuple[reads.Command, object]] = []
    send = roundtrip._send

    def recording(client: object, cluster: bool, commands: list[reads.Command]) -> list[object]:
        replies = send(client, cluster, commands)
        sent.extend(zip(commands, replies, strict=True))
        return replies

    monkeypatch.setattr(roundtrip, "_send", recording)
    return sent


@pytest.mark.django_db
def test_no_call_of_the_heaviest_reads_is_given_more_than_its_bound(
    pages, staff_client, calls, staste_redis, settings
) -> None:
    """The heaviest reads, bounds lifted: every call Redis runs is given at most SLICE_WORK
    counters to read, or SCAN_FIELDS fields to scan (reads.py), however large the read.

    The work of each call, not its wall time (which a loaded host stretches): what the calls
    hold Redis up for is measured by ``make bench`` (benchmarks/queries.py, heaviest_reads).
    """
    now = conf.local()
    settings.STASTE_MAX_QUERY_WORK = 10**12
    day = pages.values().timespan(*timescale.truncate(now, "day"))
    heaviest = {
        "the admin page of 1,500 minutes": lambda: staff_client.get(page(NAME) + "?_last=1500+minutes"),
        "a breakdown of 10,000 minutes": lambda: (
            pages.values().over(now - datetime.timedelta(minutes=9999), now, "minute").iterate_averages("page")
        ),
        "the slowest pages of a day": lambda: day.top("page", 10, by="p95"),
        "p95 of 1,000 pages, value by value": lambda: day.top("page", 10, by="p95"),
        "a series of 10,000 minutes": lambda: pages.values().timeserie_counts_and_averages(
            now - datetime.timedelta(minutes=9999), now, "minute"
        ),
    }
    for what, read in heaviest.items():
        calls.clear()
        with query.budget(10**12) as spent:
            if what.endswith("value by value"):
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(reads, "SCAN_FIELDS", 10)  # every hash too large to scan
                    read()
            else:
                read()
        work: dict[str, list[int]] = {}
        for command, reply in calls:
            kind, amount = call_work(command, reply)
            work.setdefault(kind, []).append(amount)
        assert max(work.get("counters", [0])) <= reads.SLICE_WORK, (what, max(work["counters"]))
        assert max(work.get("fields", [0])) <= reads.SCAN_FIELDS, what
        if what == "the slowest pages of a day":  # one scan of the day's histogram hash, every field of it
            (scanned,) = [command.keys[0] for command, _ in calls if command.args[0] == "scan"]
            assert work == {"fields": [staste_redis.hlen(scanned)]}, work
            continue
        # far more than one call's worth: the slicing is what bounds the calls
        assert spent.spent > 5 * reads.SLICE_WORK and sum(work["counters"]) > 5 * reads.SLICE_WORK, what
        if not CLUSTER_MODE:  # (a cluster reads series by HMGET, one bucket a command)
            assert max(work["counters"]) > reads.SLICE_WORK // 2, what  # slices are full, not needlessly small


def test_an_axis_that_outgrew_its_slices_is_read_again_within_the_bound(calls) -> None:
    """A stored axis sliced for the size it had (2 values) and grown since (3,000): read.lua
    refuses the call past twice SLICE_WORK, and the read is sliced again for its real size."""
    tags = Metrica(name="growing", axes=[("tag", StoredChoiceAxis(max_choices=0))])
    now = conf.local()
    buffer.write([tags.prepare_kick(date=now, tag=f"t{n}") for n in range(2)])
    assert len(tags.values().iterate("tag")) == 2  # slices planned for 2 values from now on
    prepared = [tags.prepare_kick(date=now, tag=f"t{n}") for n in range(2, 3000)]
    buffer.write(prepared)
    calls.clear()
    assert len(tags.values().iterate("tag")) == 3000
    refused = [reply for _, reply in calls if isinstance(reply, Exception)]
    assert refused and str(refused[0]).startswith("STASTE_RESLICE 3000")
    counters = [call_work(command, reply)[1] for command, reply in calls]
    assert max(counters) <= reads.SLICE_WORK and sum(counters) == 3001  # 3,000 values and the overflow part


def test_a_tag_past_the_public_budget_fails_like_any_bad_option(pages, settings, caplog) -> None:
    settings.STASTE_MAX_PUBLIC_QUERY_WORK = 40_000  # 10,000 minutes: at least 68 buckets of 1,001 values
    template = Template('{% load staste %}{% staste_chart "cost_pages" "pie" axis="page" last=last %}')
    settings.DEBUG = True
    with pytest.raises(TemplateSyntaxError, match="STASTE_MAX_PUBLIC_QUERY_WORK"):
        template.render(Context({"last": "10000 minutes"}))
    settings.DEBUG = False
    assert template.render(Context({"last": "10000 minutes"})).strip() == ""
    assert "STASTE_MAX_PUBLIC_QUERY_WORK" in caplog.text
    assert "<canvas" in template.render(Context({"last": "5 minutes"}))


# -- top-N ------------------------------------------------------------------------------------


def test_top_ranks_values_by_each_measure_in_one_round_trip(pages) -> None:
    ranged = pages.values().over(conf.local() - datetime.timedelta(days=3), scale="day")
    counts = dict(ranged.iterate_counts("page"))
    with count_round_trips() as trips:
        busiest = ranged.top("page", 20, by="count")
    assert trips.count == 1 or CLUSTER_MODE  # a cluster takes each script slice on its own
    expected = sorted(((v, c) for v, c in counts.items() if c), key=lambda row: -row[1])[:20]
    assert busiest == expected
    averages = {v: a for v, a in ranged.iterate_averages("page") if a is not None}
    assert ranged.top("page", 5, by="average") == sorted(averages.items(), key=lambda row: -row[1])[:5]
    totals = dict(ranged.iterate("page"))
    busiest_by_total = [v for v, _ in sorted(totals.items(), key=lambda r: -r[1])[:3]]
    assert [v for v, _ in ranged.top("page", 3, by="total")] == busiest_by_total
    assert ranged.top("page", 20) == busiest  # by default, the measures' default: events of an AveragedMetrica
    slowest = ranged.top("page", 10, by="p95")
    assert len(slowest) == 10
    assert [p for _, p in slowest] == sorted((p for _, p in slowest), reverse=True)
    for value, p95 in slowest[:3]:  # the same as each value's own percentile
        assert ranged.filter(page=value).percentile(95) == pytest.approx(p95)
    assert pages.top("method", 1, by="count")[0][0] in ("GET", "POST")  # forwarded by the metrica


def test_top_refuses_bad_arguments(pages) -> None:
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="n must be"):
            pages.values().top("page", bad)
    with pytest.raises(ValueError, match="unknown measure"):
        pages.values().top("page", by="median")
    with pytest.raises(ValueError, match="unknown measure"):
        pages.values().top("page", by="pxx")
    with pytest.raises(ValueError):
        pages.values().top("page", by="p101")
    with pytest.raises(TypeError, match="no axis"):
        pages.values().top("colour")
    plain = Metrica(name="plain", axes=[("page", StoredChoiceAxis())])
    with pytest.raises(TypeError, match="AveragedMetrica"):
        plain.values().top("page", by="count")
    with pytest.raises(TypeError, match="histogram"):
        plain.values().top("page", by="p95")


def test_top_by_percentile_scans_the_histogram_or_reads_value_by_value(pages, monkeypatch) -> None:
    """A histogram hash is scanned for the axis' fields in one call; one larger than
    SCAN_FIELDS is read value by value (102 fields each, in slices): the same ranking.
    The hour before this one: about 30 kicks of the fill at any time of day (today holds
    nothing yet at midnight, a whole day is too large to scan)."""
    day = pages.values().timespan(*timescale.truncate(conf.local() - datetime.timedelta(hours=1), "hour"))
    with count_round_trips() as trips:
        scanned = day.top("page", 15, by="p99")
    assert trips.count == 1
    monkeypatch.setattr(reads, "SCAN_FIELDS", 10)
    with count_round_trips() as trips:
        assert day.top("page", 15, by="p99") == scanned
    assert trips.count == 2 or CLUSTER_MODE  # refused as too large to scan, then read by value
    filtered = day.filter(method="POST")
    assert filtered.top("page", 5, by="p50") == [
        (value, filtered.filter(page=value).percentile(50)) for value, _ in filtered.top("page", 5, by="p50")
    ]


def test_top_of_a_hierarchical_axis_ranks_the_children_of_the_node() -> None:
    from staste.axis import HierarchicalAxis

    sources = AveragedMetrica(name="sources", axes=[("source", HierarchicalAxis())], histogram=True)
    for where, ms, times in ((("out", "se", "g"), 900, 2), (("out", "se", "b"), 10, 3), (("out", "x"), 50, 4)):
        for _ in range(times):
            sources.kick(value=ms, source=where)
    assert sources.filter(source=("out",)).top("source", by="count") == [(("out", "se"), 5), (("out", "x"), 4)]
    slowest = sources.filter(source=("out", "se")).top("source", by="p95")
    assert [value for value, _ in slowest] == [("out", "se", "g"), ("out", "se", "b")]
    assert sources.top("source", by="p50") == [(("out",), sources.filter(source=("out",)).percentile(50))]


def test_ranges_top_and_budgets_through_the_async_api(pages, settings) -> None:
    """atop, and any awaited query over a range, run the same plans: same numbers, same bounds."""
    from tests.test_async import run

    ranged = pages.values().over(conf.local() - datetime.timedelta(hours=5), scale="hour")
    assert run(ranged.atop("page", 5, by="count")) == ranged.top("page", 5, by="count")
    assert run(ranged.atop("page", 3, by="p95")) == ranged.top("page", 3, by="p95")
    assert run(ranged.acount()) == ranged.count()
    assert run(ranged.aiterate_counts("method")) == ranged.iterate_counts("method")
    settings.STASTE_MAX_QUERY_WORK = 500
    with pytest.raises(QueryTooExpensive):
        run(ranged.aiterate("page"))
    async_connection.forget()


def test_every_values_percentiles_in_one_round_trip(pages) -> None:
    """iterate_percentiles: what 100 reads of 102 fields each gave, from one scan per bucket."""
    ranged = pages.values().over(conf.local() - datetime.timedelta(hours=3), scale="hour")
    ranged.top("page", 1, by="p50")  # read.lua loaded
    with query.budget() as spent, count_round_trips() as trips:
        found = ranged.iterate_percentiles("page", [50, 95])
    assert (trips.count == 1 or CLUSTER_MODE) and found  # a cluster takes each script call on its own
    assert [value for value, _ in found] == sorted(value for value, _ in found)
    assert spent.spent < len(found) * 102 * len(ranged.cover)  # not a read per value
    for value, ps in found[:5]:
        assert ps == ranged.filter(page=value).percentiles([50, 95])
    counted = {value for value, count in ranged.iterate_counts("page") if count}
    assert {value for value, _ in found} == counted
