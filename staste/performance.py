"""How each view and each timed job performs over a time window: the numbers of the Performance pages.

A view's row joins what the middleware records under one ``view`` value: ``response_time``
(requests, throughput, p50/p95/p99, 5xx share, Apdex), ``db_time`` and ``db_queries`` (the
share of its time spent in SQL statements, statements per request) and ``db_n_plus_one``
(requests that repeated a statement).  A job's row is ``task_time``'s: runs, failures,
retries, average and percentiles.  Every number of a page is one pipelined read (one Redis
round trip), the previous period's included.

>>> window = Window.last("24 hours")                                    # doctest: +SKIP
>>> rows = read_views(window)                                           # doctest: +SKIP
>>> [(row.view, row.p95) for row in ranked(rows, "p95")[:5]]            # doctest: +SKIP
[('shop.views.search [search]', 812.3), ...]

Ranking: views (and jobs) with fewer than ``STASTE_MIN_RANKED_COUNT`` requests (runs) in the
window are *not ranked* (:func:`ranked` lists them last, in name order): four slow logins are
no trend.  What "worst" means follows the measure: the highest p95, failure rate, DB share
and statements per request, the lowest Apdex.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from typing import Any

from staste import conf, database, timescale, timing
from staste.charts.spec import Range, parse_last
from staste.middleware import response_time_metrica
from staste.query import MetricaValues, pipelined

#: The percentiles every row carries.
PERCENTILES = (50, 95, 99)
#: What the view table can be sorted by, in its columns' order.
VIEW_MEASURES = (
    "requests",
    "per_minute",
    "p50",
    "p95",
    "p99",
    "failure_rate",
    "apdex",
    "db_share",
    "queries",
    "n_plus_one",
)
#: What the job table can be sorted by.
TASK_MEASURES = ("runs", "failure_rate", "retries", "average", "p50", "p95", "p99")
#: Measures whose *lowest* value is the worst (listed first).
LOWEST_FIRST = frozenset({"apdex"})
#: The status class that counts as a failure of a request.
FAILED_STATUS = "5xx"


@dataclasses.dataclass(frozen=True)
class Window:
    """What a page reads: a range of buckets (the last 24 hours, by hour) or a calendar span."""

    range: Range | None = None
    span: timescale.Span | None = None

    @classmethod
    def last(cls, text: str, scale: str | None = None) -> Window:
        found = parse_last(text)
        return cls(range=found._replace(scale=scale) if scale else found)

    def scoped(self, query: MetricaValues) -> MetricaValues:
        """``query`` over this window."""
        if self.range is not None:
            return query.over(*self.range)
        return query.timespan(*self.span) if self.span else query

    def minutes(self, now: datetime.datetime | None = None) -> float | None:
        """Minutes of the window that have begun (a window reaching now ends now); None for all time."""
        now = conf.local(now)
        if self.range is not None:
            begin, finish = self.range.since, min(self.range.until, now)
        elif self.span:
            begin, finish = timescale.start(self.span), min(timescale.end(self.span), now)
        else:
            return None
        minutes = (finish - begin).total_seconds() / 60
        return minutes if minutes > 0 else None


@dataclasses.dataclass
class ViewNumbers:
    view: Any
    requests: int = 0
    per_minute: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    average: float | None = None
    failures: int = 0
    failure_rate: float | None = None
    apdex: float | None = None
    #: Average milliseconds per request spent in SQL statements, and their share of the response time.
    db_ms: float | None = None
    db_share: float | None = None
    #: SQL statements per request.
    queries: float | None = None
    #: Requests that ran one statement at least STASTE_N_PLUS_ONE times.
    n_plus_one: int = 0
    #: Whether the view has enough requests to be ranked (STASTE_MIN_RANKED_COUNT).
    ranked: bool = False

    def measure(self, name: str) -> float | int | None:
        return getattr(self, name)


@dataclasses.dataclass
class TaskNumbers:
    task: Any
    runs: int = 0
    failures: int = 0
    retries: int = 0
    failure_rate: float | None = None
    average: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    ranked: bool = False

    def measure(self, name: str) -> float | int | None:
        return getattr(self, name)


def minimum() -> int:
    """The fewest requests (runs) a view (job) needs to be ranked: ``STASTE_MIN_RANKED_COUNT``."""
    return max(0, int(conf.get("STASTE_MIN_RANKED_COUNT")))


# -- views -------------------------------------------------------------------------------------


def view_calls(window: Window) -> dict[str, Callable[[], Any]]:
    """The reads of every view's row over ``window``, to run in one ``pipelined`` batch."""
    rt = window.scoped(response_time_metrica().values())
    queries, db_time, n_plus_one = (window.scoped(metrica.values()) for metrica in database.metricas())
    return {
        "counts": lambda: rt.iterate_counts("view"),
        "sums": lambda: rt.iterate("view"),
        "failures": lambda: rt.filter(status=FAILED_STATUS).iterate_counts("view"),
        "percentiles": lambda: rt.iterate_percentiles("view", PERCENTILES),
        "apdex": lambda: rt.iterate_apdex("view"),  # the same histograms: one read with the percentiles
        "db_sums": lambda: db_time.iterate("view"),
        "query_sums": lambda: queries.iterate("view"),
        "query_counts": lambda: queries.iterate_counts("view"),
        "n_plus_one": lambda: n_plus_one.iterate_counts("view"),
    }


def views_from(results: dict[str, Any], window: Window, now: datetime.datetime | None = None) -> list[ViewNumbers]:
    """The rows of the views that served a request in the window, from the reads of :func:`view_calls`."""
    counts = {view: count for view, count in results["counts"] if count}
    sums = dict(results["sums"])
    failures = dict(results["failures"])
    percentiles = dict(results["percentiles"])
    scores = dict(results["apdex"])
    db_sums = dict(results["db_sums"])
    query_sums = dict(results["query_sums"])
    query_counts = dict(results["query_counts"])
    repeated = dict(results["n_plus_one"])
    minutes = window.minutes(now)
    least = minimum()
    rows = []
    for view, count in counts.items():
        spent = sums.get(view) or 0
        found = percentiles.get(view, {})
        counted = query_counts.get(view) or 0  # requests whose statements were counted
        failed = failures.get(view) or 0
        db_total = db_sums.get(view) or 0
        rows.append(
            ViewNumbers(
                view=view,
                requests=count,
                per_minute=count / minutes if minutes else None,
                p50=found.get(50),
                p95=found.get(95),
                p99=found.get(99),
                average=spent / count,
                failures=failed,
                failure_rate=failed / count,
                apdex=scores.get(view),
                db_ms=db_total / counted if counted else None,
                db_share=min(1.0, db_total / counted / (spent / count)) if counted and spent else None,
                queries=(query_sums.get(view) or 0) / counted if counted else None,
                n_plus_one=repeated.get(view) or 0,
                ranked=count >= least,
            )
        )
    return rows


def read_views(window: Window) -> list[ViewNumbers]:
    """Every view's row over ``window``: one round trip."""
    calls = view_calls(window)
    return views_from(dict(zip(calls, pipelined(list(calls.values())), strict=True)), window)


def ranked(rows: Sequence[Any], by: str) -> list[Any]:
    """``rows`` worst first by ``by`` (see the module), those without a number for it next, and
    the rows with too few requests to be ranked last, by name."""
    lowest = by in LOWEST_FIRST

    def key(row: Any) -> tuple[Any, ...]:
        value = row.measure(by)
        if not row.ranked:
            return (2, 0, str(getattr(row, "view", getattr(row, "task", ""))))
        if value is None:
            return (1, 0, "")
        return (0, value if lowest else -value, "")

    return sorted(rows, key=key)


def top(window: Window, by: str = "p95", n: int = 5) -> list[tuple[Any, float | int | None]]:
    """The ``n`` ranked views worst by ``by`` over ``window``, with that number: what a digest
    lists ("the five slowest views by p95").  One round trip."""
    if by not in VIEW_MEASURES:
        raise ValueError(f"unknown measure {by!r}; use one of {', '.join(VIEW_MEASURES)}")
    return [(row.view, row.measure(by)) for row in ranked(read_views(window), by) if row.ranked][:n]


@dataclasses.dataclass
class SiteNumbers:
    """The whole site over a window (every view together): the cards of the Performance page."""

    requests: int = 0
    per_minute: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    failure_rate: float | None = None
    apdex: float | None = None
    db_share: float | None = None
    queries: float | None = None

    def measure(self, name: str) -> float | int | None:
        return getattr(self, name)


def site_calls(window: Window, view: Any = None) -> dict[str, Callable[[], Any]]:
    """The reads of :class:`SiteNumbers` (of one view, given ``view``), for one ``pipelined`` batch."""
    only = {"view": view} if view is not None else {}
    rt = window.scoped(response_time_metrica().values().filter(**only))
    queries, db_time, _ = (window.scoped(metrica.values().filter(**only)) for metrica in database.metricas())
    return {
        "count": rt.count,
        "total": rt.total,
        "failures": lambda: rt.filter(status=FAILED_STATUS).count(),
        "percentiles": lambda: rt.percentiles(PERCENTILES),
        "apdex": rt.apdex,
        "db_total": db_time.total,
        "query_total": queries.total,
        "query_count": queries.count,
    }


def site_from(results: dict[str, Any], window: Window, now: datetime.datetime | None = None) -> SiteNumbers:
    count, total = results["count"], results["total"] or 0
    minutes = window.minutes(now)
    counted = results["query_count"]
    found = results["percentiles"] or {}
    db_total = results["db_total"] or 0
    return SiteNumbers(
        requests=count,
        per_minute=count / minutes if minutes else None,
        p50=found.get(50),
        p95=found.get(95),
        p99=found.get(99),
        failure_rate=results["failures"] / count if count else None,
        apdex=results["apdex"],
        db_share=min(1.0, db_total / counted / (total / count)) if counted and count and total else None,
        queries=(results["query_total"] or 0) / counted if counted else None,
    )


# -- timed jobs (task_time) --------------------------------------------------------------------


def task_calls(window: Window) -> dict[str, Callable[[], Any]]:
    """The reads of every job's row over ``window``, for one ``pipelined`` batch."""
    runs = window.scoped(timing.task_metrica().values())
    return {
        "task_counts": lambda: runs.iterate_counts("task"),
        "task_sums": lambda: runs.iterate("task"),
        "task_successes": lambda: runs.filter(state=timing.SUCCESS).iterate_counts("task"),
        "task_retries": lambda: runs.filter(state=timing.RETRY).iterate_counts("task"),
        "task_percentiles": lambda: runs.iterate_percentiles("task", PERCENTILES),
    }


def tasks_from(results: dict[str, Any]) -> list[TaskNumbers]:
    counts = {task: count for task, count in results["task_counts"] if count}
    sums = dict(results["task_sums"])
    successes = dict(results["task_successes"])
    retries = dict(results["task_retries"])
    percentiles = dict(results["task_percentiles"])
    least = minimum()
    rows = []
    for task, count in counts.items():
        retried = retries.get(task) or 0
        failed = max(0, count - (successes.get(task) or 0) - retried)
        found = percentiles.get(task, {})
        rows.append(
            TaskNumbers(
                task=task,
                runs=count,
                failures=failed,
                retries=retried,
                failure_rate=failed / count,
                average=(sums.get(task) or 0) / count,
                p50=found.get(50),
                p95=found.get(95),
                p99=found.get(99),
                ranked=count >= least,
            )
        )
    return rows


def read_tasks(window: Window) -> list[TaskNumbers]:
    """Every job's row over ``window``: one round trip."""
    calls = task_calls(window)
    return tasks_from(dict(zip(calls, pipelined(list(calls.values())), strict=True)))
