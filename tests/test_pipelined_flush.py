"""A flush sends its calls ahead of their replies (staste.pipe): each call names the one before
it, and Redis runs a call only after its predecessor ran (numbered() in lua/prelude.lua).  These
tests break the chain every way a real Redis can: a call taken back midway, a refused call,
scripts lost, a writer number lost, and check each kick is counted once."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections import Counter

import pytest
import redis

from staste import buffer, connection, keys, kicks, numbering, pipe, scripts
from staste.axis import Axis, StoredChoiceAxis
from staste.buffer import calls, chain
from staste.metrica import Metrica
from staste.testing import RedisServer
from tests.conftest import CLUSTER_MODE

D = datetime.datetime


pytestmark = pytest.mark.usefixtures("quiet_buffer")


@pytest.fixture
def pages() -> Metrica:
    return Metrica(
        name="pages", axes=[("page", StoredChoiceAxis()), ("method", Axis(choices=["GET", "POST"]))], buffered=True
    )


@pytest.fixture
def in_flight(monkeypatch) -> list[int]:
    """How many calls were in flight each time a reply was read (a spy on the real Pipe)."""
    seen: list[int] = []
    reply = pipe.Pipe.reply

    def spying(self):  # type: ignore[no-untyped-def]
        seen.append(len(self))
        return reply(self)

    monkeypatch.setattr(pipe.Pipe, "reply", spying)
    return seen


MINUTE = D(2010, 2, 7, 13, 5)


def kick_many(metrica: Metrica, count: int, date: D = MINUTE) -> list[tuple[str, str]]:
    """``count`` kicks of 97 pages and two methods; their (page, method)s."""
    sent = [(f"p{n % 97}", "GET" if n % 3 else "POST") for n in range(count)]
    for page, method in sent:
        metrica.kick(date=date, page=page, method=method)
    return sent


def assert_counted_once(metrica: Metrica, sent: list[tuple[str, str]]) -> None:
    assert metrica.total() == len(sent)
    assert dict(metrica.iterate("page")) == Counter(page for page, _ in sent)
    assert dict(metrica.iterate("method")) == Counter(method for _, method in sent)
    assert metrica.filter(page="p1", method="GET").total() == sent.count(("p1", "GET"))


def counters_call(base: str, writer: str, seq: int, prev: int | None, field: str, amount: int) -> object:
    """One numbered counters.lua call bumping ``field`` of the hash ``<base>h`` (and nothing else)."""
    group = kicks.Group.__new__(kicks.Group)
    group.base, group.hashes, group.prefix, group.expiry = base, (base + "h",), "", ((None, 0.0),)
    group.year, group.years_key, group.sums, group.every = "", "", {field: amount}, False
    numbers = numbering.Numbers(keys.writer_key(base, writer), seq, 60, prev)
    return scripts.run(
        "counters", *numbering.stamped(*kicks.counters_keys_and_args([(group, [(field, amount)], False)]), numbers)
    )


def test_a_call_runs_only_after_the_call_it_follows(staste_redis, prefix: str) -> None:
    base, writer = f"{prefix}:{{numbers}}:", uuid.uuid4().hex
    assert counters_call(base, writer, 1, None, "a", 1) == 1  # the writer's first call: it names none
    with pytest.raises(redis.ResponseError, match=r"^STASTE_GAP 1$"):
        counters_call(base, writer, 3, 2, "a", 10)  # call 2 has not run: 3 waits for it
    assert counters_call(base, writer, 2, 1, "a", 100) == 1
    assert counters_call(base, writer, 3, 2, "a", 10) == 1
    assert counters_call(base, writer, 3, 2, "a", 10) == -1  # sent again: already ran
    assert counters_call(base, writer, 2, 1, "a", 100) == -1
    assert staste_redis.hget(base + "h", "a") == b"111"
    # A call that fails takes itself back and puts the key back as it was: the call after it
    # waits, even behind a writer's very first call.
    staste_redis.hset(base + "h", "big", 2**63 - 1)
    with pytest.raises(redis.ResponseError, match="STASTE_OVERFLOW"):
        counters_call(base, writer, 4, 3, "big", 1)
    with pytest.raises(redis.ResponseError, match=r"^STASTE_GAP 3$"):
        counters_call(base, writer, 5, 4, "a", 1000)
    fresh = uuid.uuid4().hex
    with pytest.raises(redis.ResponseError, match="STASTE_OVERFLOW"):
        counters_call(base, fresh, 1, None, "big", 1)
    assert staste_redis.get(keys.writer_key(base, fresh)) is None
    with pytest.raises(redis.ResponseError, match=r"^STASTE_GAP 0$"):
        counters_call(base, fresh, 2, 1, "a", 1000)
    # A key holding a number between a call's predecessor and the call is not the chain's own
    # (set back by hand): the call waits too.
    staste_redis.set(keys.writer_key(base, writer), 2)
    with pytest.raises(redis.ResponseError, match=r"^STASTE_GAP 2$"):
        counters_call(base, writer, 5, 3, "a", 1000)
    # A call that names no predecessor (a synchronous writer) just runs, once.
    assert counters_call(base, fresh, 2, None, "a", 1000) == 1
    assert counters_call(base, fresh, 2, None, "a", 1000) == -1
    assert staste_redis.hget(base + "h", "a") == b"1111"


def test_a_call_behind_a_refused_first_call_waits_for_it(own_redis: RedisServer, prefix: str) -> None:
    """The writer's first call under a key is refused before it wrote anything (a full Redis):
    the key is still missing when the call after it comes.  That call must wait (it used to run
    on the empty key, and the first call, sent again, then answered "already written": its
    counters were lost without an error)."""
    admin = redis.Redis.from_url(own_redis.url)
    base, writer = f"{prefix}:{{numbers}}:", uuid.uuid4().hex
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.ResponseError, match="used memory"):
            counters_call(base, writer, 1, None, "a", 1)  # Redis itself refuses it: OOM
    finally:
        admin.config_set("maxmemory", 0)
    with pytest.raises(redis.ResponseError, match=r"^STASTE_GAP 0$"):
        counters_call(base, writer, 2, 1, "a", 10)  # call 1 has not run: 2 waits for it
    assert admin.hget(base + "h", "a") is None
    assert counters_call(base, writer, 1, None, "a", 1) == 1  # sent again: it runs
    assert counters_call(base, writer, 2, 1, "a", 10) == 1
    assert admin.hget(base + "h", "a") == b"11"


def test_a_writer_key_that_expired_while_idle_does_not_stop_the_writer(
    pages: Metrica, staste_redis, prefix: str
) -> None:
    """BUFFER_TTL after its last call Redis forgets a writer's number: the next call names a
    predecessor Redis no longer knows (a gap), which the writer had confirmed: the chain under the
    key starts again, behind a new opening call."""
    sent = kick_many(pages, 500)
    buffer.flush()
    writer_keys = [key for key in staste_redis.scan_iter(f"{prefix}:*w:*")]
    assert len(writer_keys) == 1
    staste_redis.delete(writer_keys[0])  # as its TTL would
    sent += kick_many(pages, 500)
    assert buffer.flush() > 0 and buffer.stats()["last_error"] is None
    assert_counted_once(pages, sent)


@pytest.mark.skipif(CLUSTER_MODE, reason="on a cluster each call is sent and answered in turn")
def test_a_flush_sends_calls_before_the_replies_of_those_before_them(
    pages: Metrica, monkeypatch, in_flight: list[int]
) -> None:
    monkeypatch.setattr(calls, "CALL_BUDGET", 60)  # ten counters (in six buckets) a call
    sent = kick_many(pages, 2000)
    assert buffer.flush() == len(set(sent))  # distinct kicks
    assert max(in_flight) == chain.WINDOW + 1  # the window full: more than one in flight
    assert_counted_once(pages, sent)


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_call_taken_back_midway_stops_the_calls_sent_after_it(
    staste_redis, monkeypatch, caplog, where: str, in_flight: list[int]
) -> None:
    """The overflowing call takes itself back; the calls already sent after it must not run (they
    would be written again kick by kick): each kick but the refused one counted once."""
    big = 2**63 // 1024 - 1
    monkeypatch.setattr(calls, "CALL_BUDGET", 12)  # two counters a call: many calls
    late = Metrica(name="late", axes=[("page", StoredChoiceAxis())])
    for _ in range(1024):
        late.kick(big, date=D(1999, 1, 1), page="zz")
    if where == "first":  # its calls go first, the 2010 ones are in flight behind them
        late.kick(big, date=D(1999, 1, 1), page="zz", buffered=True)
    for n in range(300):  # (300 more fit under the limit in the all-time bucket, the big one not)
        late.kick(1, date=D(2010, 1, 1), page=f"p{n % 40}", buffered=True)
    if where == "last":
        late.kick(big, date=D(1999, 1, 1), page="zz", buffered=True)
    # Another metrica (another writer key) in the same flush: its calls, sent after the
    # overflowing one, ran; they are not written again.
    other = Metrica(name="other", axes=[("page", StoredChoiceAxis())])
    for n in range(300):
        other.kick(date=D(2010, 1, 1), page=f"o{n % 30}", buffered=True)
    with caplog.at_level(logging.WARNING, logger="staste"):
        assert buffer.flush() == 40 + 30
    assert buffer.stats()["dropped"] == 1
    assert other.total() == 300 and dict(other.iterate("page")) == {f"o{n}": 10 for n in range(30)}
    assert late.timespan(year=2010).total() == 300
    counted = {page: total for page, total in late.timespan(year=2010).iterate("page") if total}
    assert counted == {f"p{page}": len(range(page, 300, 40)) for page in range(40)}
    assert late.timespan(year=1999).total() == 1024 * big
    if not CLUSTER_MODE:
        assert max(in_flight) > 1


def test_a_refused_call_is_sent_again_with_those_after_it(
    pages: Metrica, own_redis: RedisServer, monkeypatch, in_flight: list[int]
) -> None:
    """Redis refuses writes (full) from some call of a flush on: that call and the calls after it
    wrote nothing; the next flush sends them again, under the same numbers, once each."""
    monkeypatch.setattr(calls, "CALL_BUDGET", 60)
    admin = redis.Redis.from_url(own_redis.url)
    sent = kick_many(pages, 1)
    buffer.flush()
    sends = 0
    send = pipe.Pipe.send

    def filling_up(self, name, script_keys, args):  # type: ignore[no-untyped-def]
        nonlocal sends
        sends += 1
        if sends == 5:  # Redis fills up while the flush's calls are in flight
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", 1)
        return send(self, name, script_keys, args)

    monkeypatch.setattr(pipe.Pipe, "send", filling_up)
    more = kick_many(pages, 2000)
    try:
        assert buffer.flush() == 0
        assert "used memory" in buffer.stats()["last_error"]
        # (reading is allowed) the every-value counters went first, the pages not all
        assert pages.total() == 2001 and sum(total for _, total in pages.iterate("page")) < 2001
    finally:
        admin.config_set("maxmemory", 0)
    assert buffer.flush() == len(set(more))
    assert_counted_once(pages, sent + more)


def test_scripts_lost_by_redis_are_loaded_again(pages: Metrica, staste_redis, redis_server) -> None:
    sent = kick_many(pages, 500)
    buffer.flush()
    (redis_server.client() if CLUSTER_MODE else staste_redis).script_flush()
    sent += kick_many(pages, 500, date=D(2010, 2, 7, 13, 6))
    assert buffer.flush() > 0
    assert buffer.stats()["last_error"] is None
    assert_counted_once(pages, sent)


def test_a_writer_number_redis_lost_does_not_stop_the_writer(pages: Metrica, staste_redis, prefix: str) -> None:
    """A failover to a replica that had not got the last calls, or a restored dump: the writer's
    number in Redis is behind its own.  Its next call would wait forever for one Redis lost:
    the chain under the key starts again, renumbered behind a new opening call."""
    sent = kick_many(pages, 500)
    buffer.flush()
    writer_keys = [key for key in staste_redis.scan_iter(f"{prefix}:*w:*")]
    assert len(writer_keys) == 1
    staste_redis.set(writer_keys[0], 1)  # far behind the buffer's calls
    sent += kick_many(pages, 500)
    assert buffer.flush() > 0 and buffer.stats()["last_error"] is None
    assert_counted_once(pages, sent)


def test_a_flush_gives_its_connection_back_clean(pages: Metrica) -> None:
    """Calls in flight take one connection of the client's pool and give it back with no reply
    left unread on it (the next command on it would read a stale reply)."""
    sent = kick_many(pages, 300)
    buffer.flush()
    client = connection.get_redis()
    if not CLUSTER_MODE:
        assert not client.connection_pool._in_use_connections
    assert all(client.ping() for _ in range(20))
    assert_counted_once(pages, sent)


def test_counters_past_the_exact_range_of_lua_numbers_stay_exact(staste_redis) -> None:
    """counters.lua adds up in Lua (doubles, exact below 2**53) and hands anything past that to
    HINCRBY: a sum that crosses 2**53 either way is still exact to the unit."""
    limit = 2**53
    sizes = Metrica(name="sizes", axes=[("kind", Axis(choices=["a", "b", "c"]))])
    biggest = limit // 1024 * 1024 - 1  # the largest single value a kick takes (about 2**53)
    for kind, value in (("a", biggest), ("b", biggest), ("c", -biggest)):
        sizes.kick(value, kind=kind)  # synchronous: the counters start near the edge
    sizes.kick(biggest, kind="a", buffered=True)  # past 2**53
    for _ in range(2):
        sizes.kick(11, kind="b", buffered=True)  # from just under 2**53 to just over it (odd)
    sizes.kick(-biggest, kind="c", buffered=True)  # below -2**53
    sizes.kick(1, kind="c", buffered=True)
    buffer.flush()
    assert dict(sizes.iterate("kind")) == {"a": 2 * biggest, "b": biggest + 22, "c": -2 * biggest + 1}
    assert sizes.total() == 2 * biggest + biggest + 22 - 2 * biggest + 1
    assert buffer.stats()["dropped"] == 0
