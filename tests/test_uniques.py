"""Unique counts (HyperLogLogs): kick(unique=...) synchronous and buffered, uniques(),
iterate_uniques(), timeserie_uniques(), top(by="uniques"), their async twins, accuracy
against a Python set, TTLs, key slots and the cost of a flush, on a real Redis."""

from __future__ import annotations

import asyncio
import datetime
import random

import pytest

from staste import buffer, conf, keys, timescale
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.buffer import calls, held
from staste.metrica import AveragedMetrica, Metrica
from staste.query import budget
from tests.callwork import CallWork, call_work  # noqa: F401
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips
from tests.test_admin import make_user, register, staff_client, viewer  # noqa: F401  (fixtures)

D = datetime.datetime


pytestmark = pytest.mark.usefixtures("quiet_buffer")


@pytest.fixture
def visitors() -> Metrica:
    return Metrica(
        name="visitors",
        axes=[("gender", Axis(choices=["boy", "girl"])), ("page", StoredChoiceAxis())],
        uniques=True,
        uniques_axes=2,  # the pair too (by default: the totals and single axes)
    )


def within(estimate: int, exact: int, share: float = 0.02) -> bool:
    return abs(estimate - exact) <= max(1, exact * share)


# -- input -------------------------------------------------------------------------------


def test_unique_on_a_metrica_without_uniques_is_a_type_error_and_writes_nothing(staste_redis) -> None:
    plain = Metrica(name="plain", axes=[("gender", Axis(choices=["boy", "girl"]))])
    with pytest.raises(TypeError, match="uniques=True"):
        plain.kick(gender="boy", unique="u1")
    with pytest.raises(TypeError, match="uniques=True"):
        plain.kick(gender="boy", unique="u1", buffered=True)
    assert buffer.default.stats()["pending"] == 0
    assert not staste_redis.keys(plain.base + "*")
    with pytest.raises(TypeError, match="uniques=True"):
        plain.values().uniques()


@pytest.mark.parametrize("bad", [True, False, 1.5, None.__class__, b"bytes", ["a"], {"a": 1}])
def test_a_bad_id_is_a_clear_error_and_writes_nothing(visitors, staste_redis, bad) -> None:
    with pytest.raises(TypeError, match="unique= must be a str or an int"):
        visitors.kick(gender="boy", unique=bad)
    with pytest.raises(ValueError, match="longer than"):
        visitors.kick(gender="boy", unique="x" * 1001)
    assert not staste_redis.keys(visitors.base + "*")


def test_bad_options_are_refused() -> None:
    with pytest.raises(TypeError, match="needs uniques=True"):
        Metrica(name="m", uniques_scales=["day"])
    with pytest.raises(ValueError, match="unknown time scale"):
        Metrica(name="m", uniques=True, uniques_scales=["fortnight"])
    with pytest.raises(TypeError, match="list of scales"):
        Metrica(name="m", uniques=True, uniques_scales="day")
    with pytest.raises(ValueError, match="reserved"):
        Metrica(name="m", axes=[("unique", Axis())])
    assert Metrica(name="m", uniques=True).uniques_scales == ("year", "month", "day")
    assert Metrica(name="m", uniques=True, uniques_scales=["month"]).uniques_scales == ("year", "month")
    assert Metrica(name="m", uniques=True, uniques_scales=[]).uniques_scales == ()
    assert Metrica(name="m", uniques=True, date_scales=["month"]).uniques_scales == ("year", "month")
    assert Metrica(name="m").uniques_scales == ()


# -- writing and reading ------------------------------------------------------------------


@pytest.mark.parametrize("buffered", [False, True])
def test_uniques_per_span_filter_axis_and_time(visitors, buffered) -> None:
    day = D(2026, 3, 10, 12, 30)
    for i in range(30):
        visitors.kick(gender="boy", page="home", unique=f"b{i % 10}", date=day, buffered=buffered)
    for i in range(5):
        visitors.kick(gender="girl", page="shop", unique=i, date=day + datetime.timedelta(days=1), buffered=buffered)
    visitors.kick(gender="girl", page="home", date=day, buffered=buffered)  # no id: counts, adds none
    visitors.kick(gender="girl", page="home", unique="4", date=day, buffered=buffered)  # "4" is 4
    buffer.flush()
    assert visitors.total() == 37
    assert visitors.uniques() == 15
    assert visitors.filter(gender="boy").uniques() == 10
    assert visitors.filter(gender="girl").uniques() == 5
    assert visitors.filter(page="home").uniques() == 11
    assert visitors.timespan(year=2026, month=3, day=10).uniques() == 11
    assert visitors.timespan(year=2026, month=3, day=11).uniques() == 5
    assert visitors.timespan(year=2025).uniques() == 0
    assert visitors.iterate_uniques("gender") == [("boy", 10), ("girl", 5)]
    assert visitors.iterate_uniques("page") == [("home", 11), ("shop", 5)]
    assert visitors.filter(gender="girl").iterate_uniques("page") == [("home", 1), ("shop", 5)]
    assert visitors.iterate_uniques() == [(2026, 15)]
    march = visitors.timespan(year=2026, month=3).iterate_uniques()
    assert march[9:11] == [(10, 11), (11, 5)] and len(march) == 31
    assert visitors.top("page", 1, by="uniques") == [("home", 11)]
    assert visitors.top("gender", by="uniques") == [("boy", 10), ("girl", 5)]
    series = visitors.timeserie_uniques(D(2026, 3, 9), D(2026, 3, 12), scale="day")
    assert [count for _, count in series] == [0, 11, 5, 0]


def test_a_range_of_many_buckets_is_the_union_not_a_sum(visitors) -> None:
    # An hour ago, whatever the time of day: never in the future, always within retention.
    now = conf.local().replace(minute=0, second=0, microsecond=0) - datetime.timedelta(hours=1)
    for days in range(10):
        for i in range(20):  # the same 20 visitors every day
            visitors.kick(gender="boy", page="home", unique=f"v{i}", date=now - datetime.timedelta(days=days))
    query = visitors.values().over(now - datetime.timedelta(days=45), now, scale="day")
    assert len(query.cover) > 1
    assert query.uniques() == 20
    assert query.filter(gender="boy").iterate_uniques("page") == [("home", 20)]
    assert sum(count for _, count in visitors.timeserie_uniques(now - datetime.timedelta(days=9), now, "day")) == 200
    with count_round_trips() as trips:
        assert query.uniques() == 20
    assert trips.count == 1 and b"PFCOUNT" in trips.packets[0].upper()
    # A cover with hours or minutes cannot be counted from day buckets: a clear error.
    with pytest.raises(ValueError, match=r"by all time, year, month, day only, not by (hour|minute)"):
        visitors.values().over(now - datetime.timedelta(hours=3), now, "minute").uniques()


def test_weeks_are_the_union_of_their_days(visitors) -> None:
    monday = conf.local().replace(hour=9, minute=0, second=0, microsecond=0)
    monday -= datetime.timedelta(days=monday.weekday() + 7)
    for day in range(7):
        visitors.kick(gender="boy", page="home", unique="same", date=monday + datetime.timedelta(days=day))
        visitors.kick(gender="boy", page="home", unique=f"day{day}", date=monday + datetime.timedelta(days=day))
    series = visitors.timeserie_uniques(monday, monday + datetime.timedelta(days=6), scale="week")
    assert [count for _, count in series] == [8]


@pytest.mark.single_redis(reason="on a cluster each script call is a round trip of its own")
def test_every_query_is_one_round_trip(visitors) -> None:
    visitors.kick(gender="boy", page="home", unique="a")
    now = conf.local()
    calls = [
        lambda: visitors.uniques(),
        lambda: visitors.iterate_uniques("gender"),
        lambda: visitors.iterate_uniques("page"),
        lambda: visitors.iterate_uniques(),
        lambda: visitors.timeserie_uniques(now - datetime.timedelta(days=40), now, "day"),
        lambda: visitors.top("page", by="uniques"),
    ]
    for call in calls:
        with count_round_trips() as trips:
            call()
        assert trips.count == 1


def test_a_sync_kick_is_one_round_trip_and_keys_share_the_slot(visitors, staste_redis) -> None:
    visitors.kick(gender="boy", page="home", unique="first")  # records the signature
    with count_round_trips() as trips:
        visitors.kick(gender="girl", page="shop", unique="second")
    assert trips.count == 1
    hlls = [key.decode() for key in staste_redis.keys(visitors.base + "u:*")]
    # all time, year, month, day x the combinations: (*, *) shared, then 3 per kick
    assert len(hlls) == 4 * (1 + 3 + 3)
    assert all(staste_redis.type(key) == b"string" for key in hlls)
    slots = {keys_slot(key) for key in [*hlls, visitors.base + "all"]}
    assert len(slots) == 1


def keys_slot(key: str) -> int:
    from redis.crc import key_slot

    return key_slot(key.encode())


def test_hlls_live_as_long_as_their_buckets(visitors, staste_redis, settings) -> None:
    settings.STASTE_RETENTION = {"day": 3600 * 24 * 40, "month": 3600 * 24 * 800}
    visitors.kick(gender="boy", page="home", unique="a")
    visitors.kick(gender="boy", page="home", unique="b", buffered=True)
    buffer.flush()
    today = conf.local()
    for span, counters in ((timescale.truncate(today, "day"), True), ((today.year,), False)):
        bucket = timescale.bucket_id(span)
        hll_ttl = staste_redis.ttl(keys.unique_prefix(visitors.base, bucket) + "*|*")
        hash_ttl = staste_redis.ttl(visitors.base + bucket)
        if counters:
            assert hll_ttl > 0 and abs(hll_ttl - hash_ttl) <= 2
        else:
            assert hll_ttl == hash_ttl == -1


def test_uniques_scales_keep_fewer_buckets(staste_redis) -> None:
    monthly = Metrica(
        name="monthly", axes=[("gender", Axis(choices=["boy", "girl"]))], uniques=True, uniques_scales=["month"]
    )
    monthly.kick(gender="boy", unique="a", date=D(2026, 3, 10))
    buckets = {key.decode().split(":u:")[1].split(":")[0] for key in staste_redis.keys(monthly.base + "u:*")}
    assert buckets == {"all", "2026", "202603"}
    assert monthly.timespan(year=2026, month=3).uniques() == 1
    with pytest.raises(ValueError, match="not by day"):
        monthly.timespan(year=2026, month=3, day=10).uniques()
    with pytest.raises(ValueError, match="not by day"):
        monthly.timespan(year=2026, month=3).iterate_uniques()
    assert monthly.timeserie_uniques(D(2026, 1, 1), D(2026, 4, 1)) == [
        (moment, count) for moment, count in monthly.timeserie_uniques(D(2026, 1, 1), D(2026, 4, 1), "month")
    ]
    assert [count for _, count in monthly.timeserie_uniques(D(2026, 1, 1), D(2026, 4, 1), "month")] == [0, 0, 1, 0]
    alltime = Metrica(name="alltime", uniques=True, uniques_scales=[])
    alltime.kick(unique="a", date=D(2026, 3, 10))
    assert [key.decode().split(":u:")[1] for key in staste_redis.keys(alltime.base + "u:*")] == ["all:"]
    assert alltime.uniques() == 1


def test_max_choices_overflow_applies_to_ids_as_to_counters() -> None:
    pages = Metrica(name="capped", axes=[("page", StoredChoiceAxis(max_choices=2))], uniques=True)
    for buffered in (False, True):
        for page in ("a", "b", "c", "d"):
            pages.kick(page=page, unique=f"{page}-{buffered}", buffered=buffered)
    buffer.flush()
    assert sorted(count for _, count in pages.iterate("page")) == [2, 2, 4]
    found = dict(pages.iterate_uniques("page"))
    assert found["a"] == 2 and found["b"] == 2 and sum(found.values()) == 8
    assert pages.uniques() == 8


def test_hierarchical_axis_uniques() -> None:
    where = Metrica(name="where", axes=[("place", HierarchicalAxis())], uniques=True)
    where.kick(place=["eu", "fr"], unique="1")
    where.kick(place=["eu", "de"], unique="2")
    where.kick(place=["eu", "de"], unique="3", buffered=True)
    where.kick(place=["us"], unique="1")
    buffer.flush()
    assert where.iterate_uniques("place") == [(("eu",), 3), (("us",), 1)]
    assert where.filter(place=["eu"]).iterate_uniques("place") == [(("eu", "de"), 2), (("eu", "fr"), 1)]
    assert where.uniques() == 3


def test_async_twins_give_the_same_answers(visitors) -> None:
    for i in range(12):
        visitors.kick(gender="girl" if i % 3 else "boy", page=f"p{i % 4}", unique=i)
    now = conf.local()

    async def both() -> list:
        return [
            await visitors.auniques(),
            await visitors.aiterate_uniques("page"),
            await visitors.atimeserie_uniques(now - datetime.timedelta(days=2), now, "day"),
            await visitors.atop("page", 2, by="uniques"),
        ]

    assert asyncio.run(both()) == [
        visitors.uniques(),
        visitors.iterate_uniques("page"),
        visitors.timeserie_uniques(now - datetime.timedelta(days=2), now, "day"),
        visitors.top("page", 2, by="uniques"),
    ]
    assert asyncio.run(both())[0] == 12


def test_akick_with_unique(visitors) -> None:
    asyncio.run(visitors.akick(gender="boy", page="x", unique="async-id"))
    assert visitors.uniques() == 1


def test_a_buffer_holds_a_set_of_ids_per_kick(visitors, quiet_buffer) -> None:
    for i in range(500):
        visitors.kick(gender="boy", page="home", unique=f"id{i % 50}", buffered=True)
    assert quiet_buffer.stats()["pending"] == 1
    assert buffer.flush() == 1
    assert visitors.uniques() == 50 and visitors.total() == 500


def test_a_flush_sent_again_counts_no_id_twice(visitors, quiet_buffer, staste_redis) -> None:
    """The uniques call numbered like the counters calls: sent again, it is skipped; and PFADD
    would not count an id twice anyway."""
    for i in range(100):
        visitors.kick(gender="boy", page="home", unique=i, buffered=True)
    quiet_buffer.flush()
    from staste import kicks, scripts

    items = kicks.merged_uniques([visitors.prepare_kick(gender="boy", page="home", unique=i) for i in range(100)])
    script_keys, args = kicks.ids_keys_and_args(items)
    assert scripts.run("ids", script_keys, args) == 100 * 4 * 4  # 4 buckets x 4 combinations
    assert visitors.uniques() == 100


def test_accuracy_within_two_percent(staste_redis) -> None:
    rng = random.Random(14)
    for distinct in (10, 100, 1000, 10_000):
        m = Metrica(name=f"acc{distinct}", uniques=True)
        exact: set[str] = set()
        for _ in range(distinct * 2):
            visitor = f"visitor-{rng.randrange(10**12)}"
            exact.add(visitor)
            m.kick(unique=visitor, buffered=True)
        buffer.flush()
        assert within(m.uniques(), len(exact)), (distinct, m.uniques(), len(exact))


@pytest.mark.slow
def test_accuracy_for_a_million_ids_through_the_buffer(staste_redis) -> None:
    m = Metrica(name="million", uniques=True, uniques_scales=[])
    rng = random.Random(1_000_000)
    exact = {f"u{rng.getrandbits(64)}" for _ in range(1_000_000)}
    for visitor in exact:
        m.kick(unique=visitor, buffered=True)
    buffer.flush()
    assert within(m.uniques(), len(exact)) and m.total() == 1_000_000


def test_a_big_flush_is_cut_into_short_calls(staste_redis, call_work: CallWork) -> None:  # noqa: F811
    """50,000 ids in 4 buckets x 4 combinations: each ids.lua call is given at most
    UNIQUES_BUDGET (its ids, and KEY_COST a HyperLogLog), counted from what it is sent and
    checked against what the script says it added; the time a call takes is ``make bench``'s."""
    m = Metrica(name="bigflush", axes=[("gender", Axis(choices=["boy", "girl"]))], uniques=True)
    for i in range(50_000):
        m.kick(gender="boy" if i % 2 else "girl", unique=f"id-{i}", buffered=True)
    buffer.flush()
    work = [ids + calls.KEY_COST * keys for ids, keys in call_work.ids]
    assert max(work) <= calls.UNIQUES_BUDGET and not call_work.mismatches
    # every id in each of the 16 HyperLogLogs of its gender (4 buckets x 2 combinations)...
    assert sum(ids for ids, _ in call_work.ids) == 50_000 * 4 * 2
    # ...in calls that are full but the last (a call ends when one more id and key would not fit)
    assert len(work) <= sum(work) // (calls.UNIQUES_BUDGET - calls.KEY_COST) + 1
    assert within(m.uniques(), 50_000)


def test_averaged_metrica_with_uniques() -> None:
    orders = AveragedMetrica(name="orders", axes=[("shop", Axis(choices=["a", "b"]))], multiplier=100, uniques=True)
    orders.kick(value=12.5, shop="a", unique="alice")
    orders.kick(value=7.5, shop="a", unique="alice")
    orders.kick(value=1, shop="b", unique="bob", buffered=True)
    buffer.flush()
    assert orders.average() == pytest.approx(7.0) and orders.uniques() == 2
    assert orders.iterate_uniques("shop") == [("a", 1), ("b", 1)]


def test_nothing_without_unique_on_a_uniques_metrica(visitors, staste_redis) -> None:
    visitors.kick(gender="boy", page="home")
    visitors.kick(gender="boy", page="home", buffered=True)
    buffer.flush()
    assert not staste_redis.keys(visitors.base + "u:*")
    assert visitors.uniques() == 0 and visitors.total() == 2


# -- the admin: a "uniques" measure --------------------------------------------------------


@pytest.fixture
def admin_visitors(register) -> Metrica:  # noqa: F811
    """10 visitors, each kicking 3 times today; girls are v0-v3."""
    metrica = register(
        Metrica(
            name="test_uvisitors",
            axes=[("gender", Axis(choices=["boy", "girl"])), ("page", StoredChoiceAxis())],
            uniques=True,
        )
    )
    for visitor in range(10):
        for page_name in ("home", "shop", "home"):
            metrica.kick(gender="girl" if visitor < 4 else "boy", page=page_name, unique=f"v{visitor}")
    return metrica


@pytest.mark.django_db
def test_the_admin_shows_uniques_in_cards_line_breakdowns_and_dashboard(staff_client, admin_visitors) -> None:  # noqa: F811
    from tests.test_admin import json_script, page, text

    response = staff_client.get(page("test_uvisitors") + "?_last=30+days&_by=gender&_measure=uniques")
    assert response.status_code == 200
    data = staff_client.get(page("test_uvisitors") + "data.json?_last=30+days&_by=gender&_measure=uniques").json()
    cards = {card["key"]: card["value"] for card in data["shown"]["cards"]}
    assert cards["total"] == "30" and cards["uniques"] == "10"
    line = json_script(response, "staste-line-data")
    uniques = next(d for d in line["datasets"] if d.get("measure") == "uniques")
    assert uniques["data"][-1] == 10
    chart = json_script(response, "staste-breakdown-data")
    assert chart["type"] == "bar"
    assert dict(zip(chart["labels"], chart["datasets"][0]["data"], strict=True)) == {"boy": 6, "girl": 4}
    by_page = staff_client.get(page("test_uvisitors") + "data.json?_span=all&_by=page&_measure=uniques").json()
    assert {card["key"]: card["value"] for card in by_page["shown"]["cards"]}["uniques"] == "10"
    # A range by hours: counters as always, no uniques (the buckets keep none), no error.
    hours = staff_client.get(page("test_uvisitors") + "data.json?_last=24+hours&_by=gender")
    assert hours.status_code == 200 and "uniques" not in {card["key"] for card in hours.json()["shown"]["cards"]}
    dashboard = text(staff_client.get("/admin/staste/"))
    assert "10 unique ids" in dashboard


def test_a_kick_refused_for_overflow_adds_no_id(visitors, staste_redis) -> None:
    visitors.kick(gender="boy", page="home", unique="before")
    staste_redis.hset(visitors.base + "all", "=boy|=home", 2**63 - 1)
    with pytest.raises(ValueError, match="past Redis' limit"):
        visitors.kick(gender="boy", page="home", unique="refused")
    assert visitors.uniques() == 1 and visitors.timespan(year=conf.local().year).uniques() == 1


def test_a_uniques_call_sent_again_is_skipped(visitors, staste_redis) -> None:
    from staste import kicks, numbering, scripts

    items = kicks.merged_uniques([visitors.prepare_kick(gender="boy", page="home", unique="x")])
    numbers = numbering.Numbers(keys.writer_key(visitors.base, "again"), 5, 60)
    script_keys, args = numbering.stamped(*kicks.ids_keys_and_args(items), numbers)
    assert scripts.run("ids", script_keys, args) == 4 * 4
    assert scripts.run("ids", script_keys, args) == -1  # its reply was lost: sent again
    assert visitors.uniques() == 1


def test_uniques_reads_are_charged_to_the_query_budget(visitors, settings) -> None:
    from staste import reads
    from staste.exceptions import QueryTooExpensive

    visitors.kick(gender="boy", page="home", unique="x")
    now = conf.local()
    # 20 HyperLogLogs' worth: a HyperLogLog merged costs Redis what HLL_WORK counters do
    settings.STASTE_MAX_QUERY_WORK = 20 * reads.HLL_WORK
    with pytest.raises(QueryTooExpensive) as refused:
        visitors.timeserie_uniques(now - datetime.timedelta(days=60), now, "day")  # 61 HyperLogLogs
    assert refused.value.work == 61 * reads.HLL_WORK
    with budget(10**9) as spent:
        assert visitors.timeserie_uniques(now - datetime.timedelta(days=10), now, "day")[-1][1] == 1
        assert visitors.iterate_uniques("gender") == [("boy", 1), ("girl", 0)]
    # 11 days, then the all-time HyperLogLog of each of the 2 genders
    assert spent.spent == (11 + 2) * reads.HLL_WORK
    settings.STASTE_MAX_QUERY_WORK = reads.HLL_WORK  # a stored axis of 1 value and (other): 2, counted by Redis
    with pytest.raises(QueryTooExpensive):
        visitors.iterate_uniques("page")


def test_many_stored_values_are_counted_in_slices_of_one_round_trip(staste_redis) -> None:
    """250 values x 4 buckets of a range: more HyperLogLogs than one call merges
    (reads.UNIQUES_SLICE_WORK), so the members are sliced, each slice holding every bucket."""
    from staste import reads

    pages = Metrica(name="many_pages", axes=[("page", StoredChoiceAxis())], uniques=True)
    now = conf.local().replace(hour=12)
    for number in range(250):
        for day in range(4):  # ids a and b on four days: 2 distinct a value, whatever the days
            pages.kick(
                page=f"p{number:03}",
                unique=f"{number}-{'ab'[day % 2]}",
                buffered=True,
                date=now - datetime.timedelta(days=day * 12),
            )
    buffer.flush()
    ranged = pages.values().over(now - datetime.timedelta(days=40), now, scale="day")
    assert len(ranged.cover) * 251 > reads.UNIQUES_SLICE_WORK
    with count_round_trips() as trips:
        found = ranged.iterate_uniques("page")
    if not CLUSTER_MODE:  # (on a cluster each script call is a round trip of its own)
        assert trips.count == 1 and trips.packets[0].upper().count(b"EVALSHA") > 1
    assert found == [(f"p{number:03}", 2) for number in range(250)]
    assert within(ranged.uniques(), 500)


def test_the_ids_a_buffer_holds_are_bounded(visitors, quiet_buffer, own_redis, settings) -> None:
    """Ids are held within STASTE_BUFFER_MAX_BYTES: while Redis takes writes, a kick whose ids
    find no room waits for a flush (nothing lost); while it is away, its ids are dropped and
    counted (its counters are held)."""
    # room for two kicks and ten ids (the first id of a kick makes its set), in bytes
    settings.STASTE_BUFFER_MAX_BYTES = 2 * (held.ENTRY_BYTES + held.SET_BYTES) + 11 * (held.ID_BYTES + 3) + 2
    for away in (False, True):
        quiet_buffer.reset()
        visitors.kick(gender="girl", page="home", unique="ann", buffered=True)
        if away:
            own_redis.kill()
            quiet_buffer.flush()  # fails: Redis is known to be away
        for i in range(30):
            visitors.kick(gender="boy", page="home", unique=f"{'ix' if away else 'id'}{i}", buffered=True)
        visitors.kick(gender="girl", page="home", unique="late", buffered=True)
        stats = quiet_buffer.stats()
        assert stats["bytes"] <= settings.STASTE_BUFFER_MAX_BYTES
        if not away:
            assert stats["dropped_ids"] == 0 and stats["waits"] == 2  # two flushes made room
            buffer.flush()
            assert visitors.total() == 32 and visitors.uniques() == 32
    # away: the girl's first kick parked (its bytes kept), the boy's kick and ten of its ids
    # held, then no room: the other ids dropped, and the girl's new kick (a new combination)
    assert stats["dropped_ids"] == 20 and stats["pending"] == 2 and stats["dropped"] == 1
    own_redis.start()  # (empty: the first round went with the killed server)
    buffer.flush()
    assert visitors.total() == 31 and visitors.uniques() == 11
    visitors.kick(gender="boy", page="home", unique="after", buffered=True)  # room again
    buffer.flush()
    assert visitors.uniques() == 12


def test_a_flush_that_would_overflow_adds_the_ids_of_the_kicks_it_writes_only(staste_redis, quiet_buffer) -> None:
    m = Metrica(name="near_limit", axes=[("gender", Axis(choices=["boy", "girl"]))], uniques=True)
    m.kick(gender="boy", unique="first")
    staste_redis.hset(m.base + "all", "=boy", 2**63 - 1)
    m.kick(gender="girl", unique="a", buffered=True)
    m.kick(gender="girl", unique="b", buffered=True)
    m.kick(gender="boy", unique="refused", buffered=True)
    quiet_buffer.flush()
    assert quiet_buffer.stats()["dropped"] == 1
    assert m.filter(gender="girl").uniques() == 2
    assert m.filter(gender="boy").uniques() == 1 and m.uniques() == 3
