"""The buffered writer under a realistic load: five axes, Zipf-like values, kicked as fast as one
thread (or several) can, through a full buffer, a large backlog and a Redis restart; what Redis
holds is compared with a model of what was sent (a Counter of the kicks' axis values)."""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

from staste import buffer, connection
from staste.axis import Axis, StoredChoiceAxis
from staste.buffer import Buffer, calls
from staste.metrica import Metrica
from staste.testing import RedisServer
from tests.callwork import CallWork, call_work  # noqa: F401

PAGES = [f"/shop/item-{n}" for n in range(60)]
METHODS = ["GET", "POST", "PUT", "DELETE"]
STATUSES = ["2xx", "3xx", "4xx", "5xx", "1xx"]
COUNTRIES = [f"C{n:02d}" for n in range(25)]
DEVICES = ["desktop", "mobile", "tablet"]
AXES = {"page": PAGES, "method": METHODS, "status": STATUSES, "country": COUNTRIES, "device": DEVICES}

Event = tuple[str, str, str, str, str]


def traffic() -> Metrica:
    return Metrica(
        name="traffic",
        axes=[
            ("page", StoredChoiceAxis()),
            ("method", Axis(choices=METHODS)),
            ("status", Axis(choices=STATUSES)),
            ("country", StoredChoiceAxis()),
            ("device", Axis(choices=DEVICES)),
        ],
        buffered=True,
    )


def events(how_many: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    weights = {name: [1 / (rank + 1) for rank in range(len(values))] for name, values in AXES.items()}
    chosen = {name: rng.choices(values, weights[name], k=how_many) for name, values in AXES.items()}
    return list(zip(*chosen.values(), strict=True))


def kick_all(metrica: Metrica, sent: list[Event]) -> None:
    kick = metrica.kick
    for page, method, status, country, device in sent:
        kick(page=page, method=method, status=status, country=country, device=device)


def assert_matches(metrica: Metrica, sent: list[Event], seed: int = 7) -> None:
    """Total, every single-axis breakdown, and a sample of 2- and 3-axis filters, exactly."""
    names = list(AXES)
    assert metrica.total() == len(sent)
    for index, name in enumerate(names):
        model = Counter(event[index] for event in sent)
        assert {value: count for value, count in metrica.iterate(name) if count} == model, name
    rng = random.Random(seed)
    for size, samples in ((2, 12), (3, 8)):
        combos = list(itertools.combinations(range(len(names)), size))
        for _ in range(samples):
            chosen = rng.choice(combos)
            event = rng.choice(sent)  # a combination that was kicked
            filters = {names[i]: event[i] for i in chosen}
            expected = sum(all(other[i] == event[i] for i in chosen) for other in sent)
            assert metrica.filter(**filters).total() == expected, filters
        # and one breakdown under a filter: every value of an axis among the filtered kicks
        first, second = rng.choice(combos)[:2]
        value = rng.choice(sent)[first]
        model = Counter(event[second] for event in sent if event[first] == value)
        breakdown = metrica.filter(**{names[first]: value}).iterate(names[second])
        assert {v: count for v, count in breakdown if count} == model


@pytest.fixture
def threaded(monkeypatch, settings) -> Iterator[Buffer]:
    """The process' buffer with its background thread, small enough that kicking at full speed
    fills it again and again: the kicking threads wait for the flushes (backpressure)."""
    settings.STASTE_BUFFER_MAX_KEYS = 2000
    box = Buffer(background=True)
    monkeypatch.setattr(buffer, "default", box)
    yield box
    box.close()


def test_one_thread_at_full_speed_loses_nothing(threaded: Buffer) -> None:
    metrica = traffic()
    sent = events(30_000, seed=1)
    kick_all(metrica, sent)
    threaded.flush()
    stats = threaded.stats()
    assert stats["dropped"] == 0 and stats["pending"] == 0
    assert stats["waits"] > 0  # the buffer was full: the thread waited instead of dropping
    assert_matches(metrica, sent)


def test_several_threads_at_full_speed_lose_nothing(threaded: Buffer) -> None:
    metrica = traffic()
    shares = [events(6_000, seed=10 + n) for n in range(4)]
    threads = [threading.Thread(target=kick_all, args=(metrica, share)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    threaded.flush()
    assert threaded.stats()["dropped"] == 0 and threaded.stats()["pending"] == 0
    assert_matches(metrica, [event for share in shares for event in share])


@pytest.fixture
def own_server(settings) -> Iterator[RedisServer]:
    """A server of this test's own, keeping its data through a crash (append-only, fsync)."""
    with RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"]) as server:
        settings.STASTE_REDIS_URL = server.url
        connection.reset()
        yield server
        connection.reset()


@pytest.mark.single_redis("kills and restarts one server of its own")
def test_kicking_at_full_speed_through_a_redis_restart(own_server: RedisServer, threaded: Buffer, settings) -> None:
    settings.STASTE_BUFFER_MAX_KEYS = 50_000  # holds every kick made while Redis is away
    settings.STASTE_FLUSH_INTERVAL = 0.02
    metrica = traffic()
    sent = events(24_000, seed=3)
    progress = [0]

    def run() -> None:
        kick = metrica.kick
        for done, (page, method, status, country, device) in enumerate(sent, 1):
            kick(page=page, method=method, status=status, country=country, device=device)
            progress[0] = done

    kicker = threading.Thread(target=run)
    kicker.start()
    while progress[0] < 8_000:
        time.sleep(0.002)
    own_server.kill()
    deadline = time.monotonic() + 30
    while threaded.stats()["last_error"] is None:  # a flush failed: the kicks are being held
        assert time.monotonic() < deadline
        time.sleep(0.005)
    own_server.start()
    kicker.join(60)
    deadline = time.monotonic() + 60
    while threaded.stats()["pending"] and time.monotonic() < deadline:
        threaded.flush()
        time.sleep(0.02)
    stats = threaded.stats()
    assert stats["failed_flushes"] > 0 and stats["dropped"] == 0 and stats["pending"] == 0
    assert_matches(metrica, sent)


@pytest.mark.single_redis("kills and restarts one server of its own")
def test_a_large_backlog_after_an_outage_is_written_in_short_calls(
    own_redis: RedisServer,
    monkeypatch,
    settings,
    call_work: CallWork,  # noqa: F811
) -> None:
    """Every call of the flush is given at most its budget of work, however large the backlog:
    HINCRBYs for counters.lua, decisions for choices.lua (counted from what each call is sent,
    and checked against what the script says it did).  That is what keeps a call about a
    millisecond of Redis' time, so that a shared Redis keeps serving its other clients; the
    time itself is measured by ``make bench`` (a loaded machine stretches any call)."""
    box = Buffer(background=False)
    monkeypatch.setattr(buffer, "default", box)
    settings.STASTE_BUFFER_MAX_KEYS = 50_000
    metrica = traffic()
    sent = events(40_000, seed=4)
    own_redis.kill()
    kick_all(metrica, sent)  # held: Redis is away (and nothing tried to write yet)
    held = box.stats()["pending"]
    assert held > 10_000
    own_redis.start()
    assert box.flush() == held
    assert len(call_work.counters) > 50 and max(call_work.counters) <= calls.CALL_BUDGET
    assert sum(call_work.counters) > 40 * calls.CALL_BUDGET  # the calls are full, not many tiny ones
    assert call_work.choices and max(call_work.choices) <= calls.DECISIONS_PER_CALL
    assert not call_work.mismatches
    assert box.stats()["dropped"] == 0
    assert_matches(metrica, sent)


@pytest.mark.single_redis("configures a server of its own")
@pytest.mark.parametrize(("entries", "budget"), [(128, 250), (512, 250), (1024, 125), (4096, 31)])
def test_calls_hold_fewer_counters_where_listpack_hashes_are_bigger(
    own_redis: RedisServer,
    monkeypatch,
    settings,
    call_work: CallWork,  # noqa: F811
    entries: int,
    budget: int,
) -> None:
    """A HINCRBY into a listpack hash scans it, so a server that keeps bigger listpacks
    (hash-max-listpack-entries, -ziplist- on 6.2) gets calls of proportionally fewer counters:
    about the same Redis time a call, and every count still exact."""
    admin = redis.Redis(port=own_redis.port)
    admin.config_set("hash-max-ziplist-entries", entries)  # (7.0 takes the old name too)
    admin.close()
    box = Buffer(background=False)
    monkeypatch.setattr(buffer, "default", box)
    settings.STASTE_BUFFER_MAX_KEYS = 50_000
    metrica = traffic()
    sent = events(8_000, seed=5)
    kick_all(metrica, sent)
    assert calls.listpack_entries() == entries and calls.counters_budget() == budget
    assert box.flush() > 0
    assert len(call_work.counters) > 5 and max(call_work.counters) <= budget
    assert sum(call_work.counters) > 4 * budget  # full calls, not many tiny ones
    assert not call_work.mismatches
    assert_matches(metrica, sent)


@contextlib.contextmanager
def override_url(url: str) -> Iterator[None]:
    with override_settings(STASTE_REDIS_URL=url):
        connection.reset()
        try:
            yield
        finally:
            connection.reset()


@pytest.mark.single_redis("configures a server of its own")
def test_a_redis_that_refuses_config_is_assumed_at_its_default(own_redis: RedisServer) -> None:
    with RedisServer(extra_args=["--rename-command", "CONFIG", ""]) as locked, override_url(locked.url):
        assert calls.listpack_entries() == calls.DEFAULT_LISTPACK_ENTRIES
        assert calls.counters_budget() == calls.CALL_BUDGET
    own_redis.stop()
    assert calls.listpack_entries() == calls.DEFAULT_LISTPACK_ENTRIES  # unreachable: assumed, not kept
    own_redis.start()
    admin = redis.Redis(port=own_redis.port)
    admin.config_set("hash-max-ziplist-entries", 2048)
    admin.close()
    assert calls.counters_budget() == 62  # read once Redis answers (2,048: a quarter)


def test_the_setting_stands_for_a_server_that_cannot_be_asked(settings) -> None:
    settings.STASTE_LISTPACK_ENTRIES = 1024
    assert calls.listpack_entries() == 1024 and calls.counters_budget() == calls.CALL_BUDGET // 2
