"""Sample traffic for the demo's Performance pages: a month of requests to its own views, with
their SQL statements, cache calls and server errors, and the runs of a few background jobs.

Each simulated request is recorded the way the response-time middleware records a real one:
one kick of ``response_time``, ``db_queries`` and ``db_time`` under the view's own ``view``
value (so real browsing adds to the same rows), ``db_n_plus_one`` when it repeats a statement,
``cache_calls`` and ``cache_time`` for its cache work.  Kicks go through the fake data's
:class:`~guests.fakedata.Writer` (merged, batched, buckets Redis would have expired left out).
"""

from __future__ import annotations

import datetime
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from django.db import connection
from django.urls import resolve

from guests import fakedata
from guests.models import Shop, Visit
from staste import cache, conf, database, middleware, timing

#: Requests per day on average (before the daily and weekly rhythms).
PER_DAY = 900


@dataclass(frozen=True)
class Page:
    """A page of the demo as the traffic sees it: how often, how slow, what it asks the database."""

    path: str
    share: float  # of the requests
    median_ms: float
    spread: float  # of the log-normal latency
    queries: int = 0
    db_share: float = 0.0  # of its time spent in the database
    n_plus_one: int = 0  # times it repeats its statement (0: no N+1)
    cache_hit: float | None = None  # share of cache hits (None: no cache)
    errors: float = 0.0  # share of 5xx
    method: str = "GET"
    status: int = 200


PAGES = (
    Page("/", 0.34, 38, 0.45),
    Page("/visit/", 0.08, 22, 0.4),
    Page("/visit/", 0.03, 31, 0.4, method="POST", status=302),
    Page("/shops/", 0.12, 95, 0.35, queries=27, db_share=0.55, n_plus_one=25),  # visits, 25 shops, a count
    Page("/leaderboard/", 0.12, 9, 0.6, queries=0, cache_hit=0.93),
    Page("/report/", 0.04, 780, 0.3, queries=1, db_share=0.92, errors=0.03),
    Page("/charts/timeline/", 0.04, 31, 0.4),
    Page("/charts/ages/", 0.04, 44, 0.4),
    Page("/charts/gender/", 0.03, 19, 0.4),
    Page("/charts/shops/", 0.03, 21, 0.4),
    Page("/charts/speed/", 0.03, 27, 0.4),
    Page("/admin/", 0.04, 64, 0.35, queries=4, db_share=0.2),
    Page("/admin/login/", 0.02, 48, 0.3, queries=1, db_share=0.1),
    Page("/favicon.ico", 0.04, 3, 0.3, status=404),
)

#: The demo's timed jobs: (name, runs a day, median ms, spread, failure share, retry share, exception).
JOBS = (
    ("guests.newsletter", 1, 4200, 0.25, 0.04, 0.0, "smtplib.SMTPServerDisconnected"),
    ("guests.import_prices", 24, 380, 0.5, 0.02, 0.05, "requests.exceptions.Timeout"),
    ("guests.refresh_leaderboard", 96, 45, 0.4, 0.0, 0.0, ""),
    ("manage.py clearsessions", 1, 120, 0.3, 0.0, 0.0, ""),
)


def view_of(path: str) -> str:
    """The ``view`` value the middleware records for ``path`` (resolved by the demo's urlconf)."""
    try:
        return middleware.view_name(SimpleNamespace(resolver_match=resolve(path)))  # type: ignore[arg-type]
    except Exception:  # Resolver404: what the middleware records for an unresolved path
        return middleware.UNRESOLVED


def repeated_statement() -> str:
    """The SQL the shops page repeats (a visit's shop), as the database instrumentation sees it:
    run once here under an execute wrapper, so the sample rows and real requests share it."""
    seen: list[str] = []

    def capture(execute: Callable, sql: str, params: object, many: bool, context: dict) -> object:
        seen.append(sql)
        return execute(sql, params, many, context)

    visit = Visit.objects.order_by("pk").first()
    if visit is None:
        raise RuntimeError("no visit to look the shop of up: seed_database() first")
    with connection.execute_wrapper(capture):
        visit.shop  # noqa: B018 - the lookup is the point
    return seen[-1]


def seed_database(rng: random.Random, visits: int = 400) -> int:
    """The shops and a few hundred visits the demo's pages list (once: none are added later)."""
    if Shop.objects.exists():
        return 0
    shops = Shop.objects.bulk_create(Shop(name=name) for name in fakedata.SHOPS)
    now = datetime.datetime.now(datetime.UTC)
    Visit.objects.bulk_create(
        Visit(
            shop=rng.choice(shops),
            guest=rng.randint(1, 5000),
            spent=round(rng.lognormvariate(math.log(8), 0.6), 2),
            at=now - datetime.timedelta(minutes=rng.randint(1, 60 * 24 * 30)),
        )
        for _ in range(visits)
    )
    return visits


def fill(days: int = 30, per_day: float = PER_DAY, seed: int | None = None) -> fakedata.Writer:
    """Write ``days`` days of sample requests and job runs up to now; the writer (its counts)."""
    rng = random.Random(seed)
    now = conf.local()
    writer = fakedata.Writer(now)
    rt = middleware.response_time_metrica()
    queries, db_time, n_plus_one = database.metricas()
    calls, cache_time = cache.calls_metrica(), cache.time_metrica()
    tasks = timing.task_metrica()
    for metrica in (rt, queries, db_time, n_plus_one, calls, cache_time, tasks):
        metrica.record_signature()
    views = {page.path: view_of(page.path) for page in PAGES}
    statement = database.statement_text(repeated_statement())
    weights = [page.share for page in PAGES]
    first = (now - datetime.timedelta(days=days - 1)).date()
    for offset in range(days):
        day = first + datetime.timedelta(days=offset)
        expected = per_day * fakedata.WEEKLY[day.weekday()] * (0.8 + 0.4 * offset / max(days, 1))
        count = max(0, round(rng.gauss(expected, expected * 0.1)))
        hours = rng.choices(range(24), weights=fakedata.HOURLY, k=count)
        for hour, page in zip(hours, rng.choices(PAGES, weights=weights, k=count), strict=True):
            when = datetime.datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60))
            if when > now:
                continue
            _request(
                writer,
                rng,
                when,
                page,
                views[page.path],
                statement,
                rt,
                queries,
                db_time,
                n_plus_one,
                calls,
                cache_time,
            )
        for name, per_run_day, median, spread, failing, retrying, error in JOBS:
            for _ in range(per_run_day):
                when = datetime.datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60))
                if when > now:
                    continue
                draw = rng.random()
                state = error if draw < failing else timing.RETRY if draw < failing + retrying else timing.SUCCESS
                ms = rng.lognormvariate(math.log(median), spread) * (0.3 if state != timing.SUCCESS else 1)
                writer.add(tasks, when, writer.kept_depth(when), round(ms, 3), task=name, state=state)
    writer.flush()
    return writer


def _request(writer: fakedata.Writer, rng: random.Random, when: datetime.datetime, page: Page, view: str,
             statement: str, rt, queries, db_time, n_plus_one, calls, cache_time) -> None:  # fmt: skip
    depth = writer.kept_depth(when)
    ms = rng.lognormvariate(math.log(page.median_ms), page.spread)
    status, exception = page.status, None
    if page.errors and rng.random() < page.errors:
        status, exception, ms = 500, "django.db.utils.OperationalError", ms * 3
    statements = page.queries
    db_ms = ms * page.db_share * rng.uniform(0.85, 1.1)
    hit = None
    if page.cache_hit is not None:
        hit = rng.random() < page.cache_hit
        if not hit:  # a miss runs the query and writes the cache
            statements, ms = 1, ms * 6
            db_ms = ms * 0.7
    writer.add(rt, when, depth, round(ms, 3), view=view, method=page.method, status=f"{status // 100}xx",
               exception=exception)  # fmt: skip
    writer.add(queries, when, depth, statements, view=view)
    writer.add(db_time, when, depth, round(min(db_ms, ms), 3) if statements else 0, view=view)
    if page.n_plus_one:
        writer.add(n_plus_one, when, depth, page.n_plus_one, view=view, statement=statement)
    cache_ms = 0.0  # every request counts its cache time, 0 without a cache call (as the middleware does)
    if hit is not None:
        writer.add(calls, when, depth, 1, view=view, outcome="hit" if hit else "miss")
        if not hit:
            writer.add(calls, when, depth, 1, view=view, outcome="write")
        cache_ms = round(rng.uniform(0.02, 0.15) * (1 if hit else 2), 3)
    writer.add(cache_time, when, depth, cache_ms, view=view)
