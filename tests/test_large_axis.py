"""Reading a stored axis of many values: every call within its bound, a cost linear in the
values, and a read never sent twice because Redis was slow to answer (issue 20, item 2).

Work is counted, not timed: the counters each call reads (from the call and its reply), the
commands Redis ran for the read (``INFO commandstats``: SSCAN pages, whole-set listings).  How
long the calls take is ``make bench``'s (benchmarks/large_axis.py).
"""

from __future__ import annotations

import datetime
import threading
import time

import pytest
import redis

from staste import buffer, connection, reads
from staste.axis import HierarchicalAxis, StoredChoiceAxis
from staste.exceptions import QueryTooExpensive, RedisUnavailable
from staste.metrica import Metrica
from staste.query import budget
from staste.testing import RedisServer
from tests.test_buffer import BUSY_SCRIPT
from tests.test_query_cost import call_work, calls  # noqa: F401  (a fixture)

pytestmark = pytest.mark.single_redis("counts the commands one server ran")

DATE = datetime.datetime(2024, 3, 9, 12)


def filled(name: str, values: int) -> Metrica:
    metrica = Metrica(name=name, axes=[("tag", StoredChoiceAxis(max_choices=0))], date_scales=["year", "month", "day"])
    buffer.write([metrica.prepare_kick(date=DATE, tag=f"value {n:06d}") for n in range(values)])
    return metrica


def commands_run(client: redis.Redis, name: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{name}", {"calls": 0})["calls"])


def test_member_slices_cover_a_set_within_their_width() -> None:
    for members, width in ((3, 10), (10_000, 2000), (125_001, 2000), (1001, 1), (1001, 200), (150, 10)):
        slices = reads.member_slices(members, width)
        parts = slices[0].parts
        assert parts & (parts - 1) == 0 and {one.part for one in slices} == set(range(parts))
        assert all(one.planned <= width and (one.taken == 0 or one.taken == width) for one in slices)
        for part in range(parts):  # each part: consecutive slices, the last to its end
            mine = [one for one in slices if one.part == part]
            assert [one.first for one in mine] == [i * width for i in range(len(mine))] and mine[-1].taken == 0
        # the planned room covers the set (a part's share, give or take its spread)
        assert sum(one.planned for one in slices) >= members


def test_a_100k_value_axis_is_read_within_the_bound_at_a_cost_linear_in_its_values(calls, staste_redis) -> None:  # noqa: F811
    """Each call of the read is given at most SLICE_WORK counters, none lists the whole set,
    and the SSCAN pages the read takes grow with the values, not with their square."""
    pages = {}
    for values in (10_000, 100_000):
        metrica = filled(f"big{values}", values)
        with budget(10**12):
            assert len(metrica.values().iterate("tag")) == values  # (the axis' size learnt: sliced for it)
        calls.clear()
        staste_redis.config_resetstat()
        with budget(10**12) as spent:
            found = metrica.values().iterate("tag")
        assert len(found) == values and sum(total for _, total in found) == values
        work = [call_work(command, reply) for command, reply in calls]
        axis_calls = [command for command, _ in calls if command.args[0] == "axis"]
        assert max(amount for _, amount in work) <= reads.SLICE_WORK
        assert sum(amount for _, amount in work) == values + 1 == spent.spent  # every value, and the overflow part
        assert len(axis_calls) >= values // reads.SLICE_WORK and axis_calls[0].args[-4] > 1  # several parts
        assert commands_run(staste_redis, "smembers") == 0  # no call listed the whole set
        assert commands_run(staste_redis, "evalsha") == len(calls)  # one pipeline, sent once
        pages[values] = commands_run(staste_redis, "sscan")
    # A part's buckets are scanned once (about 100 a page): linear, within the spread of the
    # table's size (a power of two) and of the pages cut short at a part's end.
    assert pages[100_000] <= 20 * pages[10_000], pages
    assert pages[100_000] <= 100_000 // 25, pages


def test_a_hierarchical_axis_of_many_nodes_is_read_by_parts_too(staste_redis) -> None:
    tree = Metrica(name="tree", axes=[("path", HierarchicalAxis(max_choices=0))], date_scales=["year"])
    buffer.write([tree.prepare_kick(date=DATE, path=("top", f"n{n:05d}")) for n in range(6000)])
    with budget(10**12):
        assert len(tree.filter(path=("top",)).iterate("path")) == 6000
        staste_redis.config_resetstat()
        found = tree.filter(path=("top",)).iterate("path")
    assert len(found) == 6000 and {total for _, total in found} == {1}
    assert commands_run(staste_redis, "sscan") > 0
    # The budget's count of the node's children does not list the set in each call either:
    # past 4,096 members every member is charged (the read scans them all anyway).
    assert commands_run(staste_redis, "smembers") == 0


def test_a_small_hierarchical_axis_is_charged_its_children_a_large_one_its_members(staste_redis) -> None:
    small = Metrica(name="small_tree", axes=[("path", HierarchicalAxis(max_choices=0))], date_scales=["year"])
    buffer.write([small.prepare_kick(date=DATE, path=("top", f"n{n}")) for n in range(50)])
    buffer.write([small.prepare_kick(date=DATE, path=("other", "only"))])
    large = Metrica(name="large_tree", axes=[("path", HierarchicalAxis(max_choices=0))], date_scales=["year"])
    buffer.write([large.prepare_kick(date=DATE, path=("top", f"n{n}")) for n in range(5000)])
    buffer.write([large.prepare_kick(date=DATE, path=("other", "only"))])
    # (the large set: top, other, only and 5,000 nodes; the overflow part costs one more)
    for metrica, charged in ((small, 2), (large, 5003 + 1)):
        with pytest.raises(QueryTooExpensive) as refused, budget(1):
            metrica.filter(path=("other",)).iterate("path")
        assert refused.value.work == charged, metrica.name
        with budget(charged):
            assert metrica.filter(path=("other",)).iterate("path") == [(("other", "only"), 1)]


def test_a_read_that_times_out_is_not_sent_again(own_redis: RedisServer, settings) -> None:
    """redis-py's pipeline used to send a read again after a socket timeout: a busy Redis got
    it twice.  Now the read fails (the page says Redis failed) and Redis runs it once."""
    metrica = filled("slow", 5000)
    with budget(10**12):
        metrica.values().iterate("tag")  # scripts loaded, the axis' size learnt
    client = redis.Redis.from_url(own_redis.url)
    settings.STASTE_SOCKET_TIMEOUT = 0.3
    connection.reset()
    connection.get_redis().ping()
    busy = threading.Thread(target=redis.Redis.from_url(own_redis.url).eval, args=(BUSY_SCRIPT, 0, 1500))
    client.config_resetstat()
    busy.start()
    time.sleep(0.2)  # the busy script is running
    try:
        with pytest.raises(RedisUnavailable), budget(10**12):
            metrica.values().iterate("tag")
    finally:
        busy.join()
    deadline = time.monotonic() + 30
    while commands_run(client, "evalsha") < 4:  # Redis runs what was sent once it is free
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # (a second copy would come right behind)
    assert commands_run(client, "evalsha") == 4  # the read's 4 calls, once
    client.close()


def test_thousands_of_years_are_read_within_the_budget_and_the_bound(calls, settings) -> None:  # noqa: F811
    """years.lua used to read every stored year in one call, outside the budget (9,999 years:
    one call of 62 ms).  Now Redis counts the years against the budget, and reads them in calls
    of at most SLICE_WORK counters."""
    from staste.exceptions import QueryTooExpensive

    yearly = Metrica(name="yearly", axes=[], date_scales=["year"])
    buffer.write([yearly.prepare_kick(date=datetime.date(year, 6, 1)) for year in range(1000, 6000)])
    settings.STASTE_MAX_QUERY_WORK = 4000  # 5,000 years: past it, nothing read
    with pytest.raises(QueryTooExpensive):
        yearly.values().iterate()
    assert not [reply for _, reply in calls if isinstance(reply, list) and reply]
    settings.STASTE_MAX_QUERY_WORK = 10**6
    calls.clear()
    found = yearly.values().iterate()
    assert len(found) == 5000 and {total for _, total in found} == {1}
    work = [call_work(command, reply)[1] for command, reply in calls]
    assert max(work) <= reads.SLICE_WORK and sum(work) == 5000 and len(work) >= 3
