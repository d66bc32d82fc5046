"""What performance insight costs a request, against django-prometheus and django-silk, in one run.

The same view runs ten ORM queries on an in-memory SQLite database (``ContentType ... exists()``,
the same SQL text ten times: an N+1 to staste), called through Django's WSGI handler (no
server), with:

* nothing (*bare*);
* staste's ``ResponseTimeMiddleware`` with its database instrumentation (the default: one
  ``execute_wrapper`` per connection, ``db_queries``, ``db_time``, ``db_n_plus_one``);
* django-prometheus' ``PrometheusBeforeMiddleware`` / ``PrometheusAfterMiddleware`` with its
  instrumented SQLite backend (``django_prometheus.db.backends.sqlite3``), on a database of its
  own with the same table and rows;
* django-silk's ``SilkyMiddleware`` (when it is installed and in INSTALLED_APPS: ``make bench``).

Each variant's *added cost* is the median over interleaved rounds of its time per request
minus the bare view's in the same round.

What a statement costs is measured apart, where it shows above the noise of ten ORM queries:
a view running a hundred cheap statements through Django's cursor and a view running none,
bare and with staste; ``((staste, 100) - (bare, 100) - ((staste, 0) - (bare, 0))) / 100`` is
what each statement adds on top of the middleware's own cost (the N+1 kick of each request
included, as a hundredth of it).

Silk patches Django's SQL compiler for the whole process on its first request: it is measured
last, against bare rounds of its own phase.
"""

from __future__ import annotations

import copy
import importlib.util
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, connections
from django.test import override_settings

from benchmarks import measure
from benchmarks.middleware import handler, requester
from staste import buffer

QUERIES = 10
STASTE = ["staste.middleware.ResponseTimeMiddleware"]
PROMETHEUS = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
SILK = ["silk.middleware.SilkyMiddleware"]
#: The database alias of django-prometheus' instrumented backend (made here, not in DATABASES).
PROMETHEUS_ALIAS = "bench_prometheus"


@dataclass
class Variant:
    what: str
    us: float  # per request, median round
    added_us: float | None  # against the bare view of its rounds (None: the bare view itself)
    note: str = ""


@dataclass
class InsightCost:
    variants: list[Variant]
    per_query_us: float  # staste's cost per statement, on top of the middleware's own
    middleware_us: float  # staste's cost on a view without statements
    ratio: float | None  # staste's added cost / django-prometheus' (None: not installed)
    recorded: int  # requests db_queries counted in the staste rounds
    statements: int  # statements db_queries counted in them


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def prepare_databases() -> str | None:
    """The content types table on the default database (migrated when it is not: ``make
    bench``'s in-memory database), and django-prometheus' database with the same rows; its
    alias, or None when django-prometheus is not installed."""
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command

    if "django_content_type" not in connection.introspection.table_names():
        call_command("migrate", verbosity=0, interactive=False)
    if not installed("django_prometheus"):
        return None
    from django_prometheus.db.backends.sqlite3.base import DatabaseWrapper

    if PROMETHEUS_ALIAS not in connections.settings:
        configured = copy.deepcopy(connections["default"].settings_dict)
        configured.update(ENGINE="django_prometheus.db.backends.sqlite3", NAME=":memory:", TEST={"NAME": None})
        wrapper = DatabaseWrapper(configured, alias=PROMETHEUS_ALIAS)
        connections[PROMETHEUS_ALIAS] = wrapper  # this thread's: the benchmark runs in one
        with wrapper.schema_editor() as editor:
            editor.create_model(ContentType)
        rows = [ContentType(pk=row.pk, app_label=row.app_label, model=row.model) for row in ContentType.objects.all()]
        ContentType.objects.using(PROMETHEUS_ALIAS).bulk_create(rows)
    return PROMETHEUS_ALIAS


def timed_rounds(calls: dict[str, Callable[[], None]], requests: int, rounds: int) -> dict[str, list[float]]:
    def repeat(request: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(requests):
                request()

        return run

    return measure.rounds_of({name: repeat(call) for name, call in calls.items()}, rounds)


def per_request_us(spent: list[float], requests: int) -> float:
    return statistics.median(spent) / requests * 1e6


def added_us(slower: list[float], faster: list[float], requests: int) -> float:
    """The median over rounds of the difference, per request: each pair of rounds saw the same load."""
    return statistics.median(a - b for a, b in zip(slower, faster, strict=True)) / requests * 1e6


def overhead(requests: int, rounds: int) -> InsightCost:
    from benchmarks.urls import STATEMENTS
    from staste import database

    alias = prepare_databases()
    with override_settings(ROOT_URLCONF="benchmarks.urls"):
        plain, timed = handler([]), handler(STASTE)
        calls = {"bare": requester(plain, "/ten/"), "staste": requester(timed, "/ten/")}
        if alias is not None:
            calls["django-prometheus"] = requester(handler(PROMETHEUS), "/ten-prometheus/")
        statements = {
            "bare": requester(plain, "/statements/"),
            "staste": requester(timed, "/statements/"),
            "bare, none": requester(plain, "/zero/"),
            "staste, none": requester(timed, "/zero/"),
        }
        for call in [*calls.values(), *statements.values()]:  # warm up: imports, connections, metricas
            call()
        queries = database.queries_metrica()
        buffer.flush()
        before = queries.count(), queries.total()
        spent = timed_rounds(calls, requests, rounds)
        buffer.flush()
        after = queries.count(), queries.total()
        each = timed_rounds(statements, requests, rounds)
        buffer.flush()
        variants = [
            Variant("bare", per_request_us(spent["bare"], requests), None),
            Variant(
                "staste (middleware + database)",
                per_request_us(spent["staste"], requests),
                added_us(spent["staste"], spent["bare"], requests),
            ),
        ]
        ratio = None
        if alias is not None:
            prometheus = added_us(spent["django-prometheus"], spent["bare"], requests)
            variants.append(
                Variant(
                    "django-prometheus (middleware + instrumented backend)",
                    per_request_us(spent["django-prometheus"], requests),
                    prometheus,
                )
            )
            ratio = variants[1].added_us / prometheus if prometheus > 0 else None
        else:
            variants.append(Variant("django-prometheus", 0.0, None, "not installed (`make bench` installs it)"))
        variants.append(silk_variant(plain, requests, rounds))
    middleware_us = added_us(each["staste, none"], each["bare, none"], requests)
    with_statements = [a - b for a, b in zip(each["staste"], each["bare"], strict=True)]
    without = [a - b for a, b in zip(each["staste, none"], each["bare, none"], strict=True)]
    per_statement = statistics.median(a - b for a, b in zip(with_statements, without, strict=True))
    return InsightCost(
        variants,
        per_statement / requests / STATEMENTS * 1e6,
        middleware_us,
        ratio,
        int(after[0] - before[0]),
        int(after[1] - before[1]),
    )


def silk_variant(plain: object, requests: int, rounds: int) -> Variant:
    """django-silk, last (it patches the SQL compiler for the process), against bare rounds of its own."""
    if not installed("silk"):
        return Variant("django-silk", 0.0, None, "not installed (`make bench` installs it)")
    if not apps.is_installed("silk"):
        return Variant("django-silk", 0.0, None, "not in INSTALLED_APPS (benchmarks/settings.py adds it)")
    with override_settings(SILKY_PYTHON_PROFILER=False, SILKY_META=False):
        calls = {"bare": requester(plain, "/ten/"), "silk": requester(handler(SILK), "/ten/")}  # type: ignore[arg-type]
        for call in calls.values():
            call()
        spent = timed_rounds(calls, requests, max(1, rounds // 4))  # silk is slow: a quarter of the rounds
    return Variant(
        "django-silk (middleware, its SQL recording)",
        per_request_us(spent["silk"], requests),
        added_us(spent["silk"], spent["bare"], requests),
        f"against bare rounds of its own: {per_request_us(spent['bare'], requests):,.0f} µs",
    )
