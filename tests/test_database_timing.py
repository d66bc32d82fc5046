"""Database work per request (db_queries, db_time, db_n_plus_one) through real requests on a real
SQLite database, with the response-time middleware installed: WSGI and ASGI, sync and async views,
connections opened during the request, and the switches that turn it off."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from django.test import Client

from staste import buffer, database, middleware, work
from staste.registration import registry
from tests.roundtrips import count_round_trips

VIEWS = "tests.insight_app.views"


def view(name: str, url_name: str | None = None) -> str:
    return f"{VIEWS}.{name} [{url_name or name.replace('_', '-')}]"


@pytest.fixture(autouse=True)
def timed(settings, monkeypatch) -> Iterator[None]:
    """The middleware first in MIDDLEWARE; a buffer of the test's own that only its flushes
    write; the registry as it was, afterwards."""
    settings.MIDDLEWARE = [middleware.PATH, *settings.MIDDLEWARE]
    saved = registry.save()
    monkeypatch.setattr(buffer, "default", buffer.Buffer(background=False))
    yield
    registry.restore(saved)
    middleware._metricas.clear()


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def per_view(metrica, measure: str = "count") -> dict[str, float]:
    rows = metrica.iterate_counts("view") if measure == "count" else metrica.iterate("view")
    return {label: number for label, number in rows if number}


@pytest.mark.django_db
def test_every_request_is_one_kick_of_its_statements_and_their_time(client: Client) -> None:
    for _ in range(2):
        assert client.get("/perf/none/").status_code == 200
    client.get("/perf/same/?n=3")
    client.get("/perf/distinct/")
    client.get("/perf/same/?n=2")
    buffer.flush()
    queries, db_time, _ = database.metricas()

    # One kick per request, a request without statements counting 0.
    assert per_view(queries) == {view("none"): 2, view("same"): 2, view("distinct"): 1}
    assert per_view(queries, "total") == {view("same"): 5, view("distinct"): 6}
    assert queries.filter(view=view("none")).average() == 0
    assert queries.filter(view=view("same")).average() == 2.5
    assert per_view(db_time) == per_view(queries)
    assert db_time.filter(view=view("none")).total() == 0
    assert db_time.filter(view=view("distinct")).average() > 0  # milliseconds, to the microsecond
    # Exactly the view values response_time has, and its number of requests.
    assert per_view(queries) == per_view(middleware.response_time_metrica())


@pytest.mark.django_db
def test_a_repeated_statement_kicks_n_plus_one_once_per_request(client: Client) -> None:
    client.get("/perf/same/?n=5")  # 5 runs: at the threshold
    client.get("/perf/same/?n=4")  # below it: nothing
    client.get("/perf/distinct/")  # six statements, none repeated: nothing
    client.get("/perf/n-plus-one/?n=8")  # one list, then one lookup per row
    client.get("/perf/n-plus-one/?n=8")
    buffer.flush()
    n_plus_one = database.n_plus_one_metrica()

    assert per_view(n_plus_one) == {view("same"): 1, view("n_plus_one"): 2}
    assert n_plus_one.filter(view=view("n_plus_one")).average() == 8  # how many times, each request
    statements = dict(n_plus_one.iterate_counts("statement"))
    assert statements == {
        'SELECT ? AS "a" FROM "django_content_type" WHERE "django_content_type"."id" = ? LIMIT ?': 1,
        'SELECT "django_content_type"."id", "django_content_type"."app_label", "django_content_type"."model" '
        'FROM "django_content_type" WHERE "django_content_type"."id" = ? LIMIT ?': 2,
    }


@pytest.mark.django_db
def test_the_threshold_is_a_setting_and_zero_turns_it_off(client: Client, settings) -> None:
    settings.STASTE_N_PLUS_ONE = 3
    client.get("/perf/same/?n=3")
    settings.STASTE_N_PLUS_ONE = 0
    client.get("/perf/same/?n=50")
    buffer.flush()
    assert per_view(database.n_plus_one_metrica()) == {view("same"): 1}
    assert database.queries_metrica().total() == 53


def asgi_get(path: str) -> int:
    """GET ``path`` through Django's ASGI handler as a server calls it (``asyncio.run`` in a
    thread of its own: the ORM of an async view runs in the request's own sync thread)."""
    from django.core.handlers.asgi import ASGIHandler

    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def call() -> None:
        asked = asyncio.Event()

        async def receive() -> dict:
            if asked.is_set():
                await asyncio.Event().wait()  # the client stays connected
            asked.set()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await ASGIHandler()(scope, receive, send)

    thread = threading.Thread(target=lambda: asyncio.run(call()))
    thread.start()
    thread.join()
    return next(message["status"] for message in sent if message["type"] == "http.response.start")


@pytest.mark.django_db(transaction=True)
def test_async_views_through_the_asgi_handler() -> None:
    assert [asgi_get(path) for path in ("/perf/async-same/?n=6", "/perf/same/?n=2", "/perf/none/")] == [200] * 3
    buffer.flush()
    queries = database.queries_metrica()
    assert per_view(queries, "total") == {view("async_same"): 6, view("same"): 2}
    assert per_view(queries) == {view("async_same"): 1, view("same"): 1, view("none"): 1}
    assert per_view(database.n_plus_one_metrica()) == {view("async_same"): 1}
    assert per_view(queries) == per_view(middleware.response_time_metrica())


@pytest.mark.django_db(transaction=True)
def test_a_connection_opened_during_the_request_is_the_requests_too(client: Client) -> None:
    # A thread of its own has no connection yet: the request opens it (connection_created).
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.append(client.get("/perf/same/?n=4").status_code))
    thread.start()
    thread.join()
    # And a connection closed before the request is reopened during it.
    connection.close()
    client.get("/perf/same/?n=2")
    buffer.flush()
    assert answers == [200]
    assert database.queries_metrica().filter(view=view("same")).total() == 6


@pytest.mark.django_db(transaction=True)
def test_a_thread_the_view_starts_is_not_the_requests(client: Client) -> None:
    client.get("/perf/thread/")
    buffer.flush()
    assert database.queries_metrica().total() == 1  # the documented limit: the view's own thread only


@pytest.mark.django_db
def test_the_wrappers_leave_every_connection_after_the_request(client: Client) -> None:
    client.get("/perf/same/?n=2")
    assert all(not each.execute_wrappers for each in connections.all())
    assert work.current.get() is None
    with connection.execute_wrapper(lambda execute, *args: execute(*args)) as _:
        client.get("/perf/same/?n=2")  # a project's own wrapper around the request stays
        assert len(connection.execute_wrappers) == 1
    buffer.flush()
    assert database.queries_metrica().total() == 4


@pytest.mark.django_db
def test_the_switch_off(client: Client, settings) -> None:
    settings.STASTE_DATABASE_TIMING = False
    client.get("/perf/same/?n=6")
    buffer.flush()
    assert middleware.response_time_metrica().count() == 1
    for metrica in database.metricas():
        assert metrica.values().count() == 0


@pytest.mark.django_db
def test_excluded_paths_record_no_database_work(client: Client, settings) -> None:
    settings.STASTE_MIDDLEWARE_EXCLUDE = ["/perf/same/"]
    client.get("/perf/same/?n=6")
    client.get("/perf/none/")
    buffer.flush()
    assert per_view(database.queries_metrica()) == {view("none"): 1}
    assert database.n_plus_one_metrica().values().count() == 0


@pytest.mark.django_db
def test_no_redis_round_trip_on_the_request_path(client: Client) -> None:
    client.get("/perf/n-plus-one/?n=6")  # the first request of a process may register signatures
    with count_round_trips(this_thread_only=True) as trips:
        for _ in range(5):
            client.get("/perf/n-plus-one/?n=6")
            client.get("/perf/distinct/")
    assert trips.count == 0
    buffer.flush()
    assert database.n_plus_one_metrica().count() == 6


def test_statements_are_normalised_for_the_axis() -> None:
    text = database.statement_text
    assert text("SELECT 1, 'x''0' WHERE 1 IN (1, 2, 0)") == "SELECT ?, ? WHERE ? IN (?)"
    assert text('SELECT  "t"."id"\n  FROM "t"\tWHERE "t"."a" = %s AND "t2"."b" IN (%s, %s)') == (
        'SELECT "t"."id" FROM "t" WHERE "t"."a" = ? AND "t2"."b" IN (?)'
    )
    assert text("SELECT col1, t2.x FROM t2 WHERE id = $1 OR name = :name OR v = %(v)s") == (
        "SELECT col1, t2.x FROM t2 WHERE id = ? OR name = ? OR v = ?"
    )
    long = text("SELECT " + ", ".join(f'"column_{i}"' for i in range(100)) + " FROM t")
    assert len(long) == database.STATEMENT_LENGTH and long.endswith("…")
