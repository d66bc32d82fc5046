"""Every number a Performance page shows, read in one pipelined round trip, and shown: its
cards (with the previous period's change), its charts (told the truth about time), its tables
(views, jobs, repeated statements, the numbers over time), as the page, its JSON and its CSV
show them.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from typing import Any

from django.urls import reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from staste import conf, database, formats, performance, timescale, timing
from staste.charts.spec import Spec, mark_time, series_spec
from staste.formats import bucket_label, change_label
from staste.formats import value_label as label
from staste.middleware import response_time_metrica
from staste.performance import PERCENTILES, TaskNumbers, ViewNumbers, Window
from staste.query import MetricaValues, pipelined

from . import compare
from .metrica import display
from .performance_state import VIEW, Page, url_name
from .state import PageState

#: Milliseconds, as the pages write them after a duration ("мс" in Russian).
MS = pgettext_lazy("unit", "ms")

#: The columns of the view table: measure, heading, unit ("ms", "%", "" or None: a count).
VIEW_COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("requests", gettext_lazy("requests"), ""),
    ("per_minute", gettext_lazy("per minute"), ""),
    ("p50", "p50", "ms"),
    ("p95", "p95", "ms"),
    ("p99", "p99", "ms"),
    ("failure_rate", gettext_lazy("5xx"), "%"),
    ("apdex", "Apdex", "apdex"),
    ("db_share", gettext_lazy("database"), "%"),
    ("queries", gettext_lazy("queries / request"), "decimal"),
    ("n_plus_one", gettext_lazy("N+1"), ""),
)
#: Where the p95's change goes in a compared view table: just after the p95.
P95_CHANGE_AT = [measure for measure, _text, _unit in VIEW_COLUMNS].index("p95") + 1
TASK_COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("runs", gettext_lazy("runs"), ""),
    ("failure_rate", gettext_lazy("failures"), "%"),
    ("retries", gettext_lazy("retries"), ""),
    ("average", gettext_lazy("average"), "ms"),
    ("p50", "p50", "ms"),
    ("p95", "p95", "ms"),
    ("p99", "p99", "ms"),
)
#: Chart and table ids, which the live refresh finds in the page.
CHARTS = {
    "latency": "staste-perf-latency",
    "requests": "staste-perf-requests",
    "split": "staste-perf-split",
    "queries": "staste-perf-queries",
    "runs": "staste-perf-runs",
}
TABLES = {
    "views": "staste-perf-views",
    "series": "staste-perf-series",
    "statements": "staste-perf-statements",
    "tasks": "staste-perf-tasks",
}


# -- reading ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Series:
    """The buckets a page draws: their scale, spans, and the range ``timeserie`` reads."""

    scale: str
    spans: list[timescale.Span]
    since: datetime.datetime
    until: datetime.datetime


def series_of(state: PageState) -> Series | None:
    """The buckets of a page's charts: its range's, or its span's children (None for a minute)."""
    query = state.metrica.values()
    found = state.range()
    if found is not None:
        scale, spans = query.series_spans(found.since, found.until, found.scale)
        return Series(scale, list(spans), found.since, found.until)
    span = state.span or ()
    if not span or len(span) >= len(state.metrica.date_scales):
        return None
    children = timescale.children(span)
    scale = timescale.SCALES[len(span)]
    return Series(scale, children, timescale.start(children[0]), timescale.start(children[-1]))


def previous_of(page: Page, series: Series | None) -> tuple[compare.Period | None, Window | None, Series | None]:
    """The previous period of a compared page: its period, window and buckets (Nones when not compared)."""
    if not page.state.compare:
        return None, None, None
    period = compare.previous_period(page.state.range(), page.state.span, series.scale if series else None)
    if period is None or period.unavailable is not None:
        return period, None, None
    if period.range is not None:
        window = Window(range=period.range)
        scale, spans = page.state.metrica.values().series_spans(*period.range)
        return period, window, Series(scale, list(spans), period.range.since, period.range.until)
    span = period.span or ()
    window = Window(span=span)
    if series is None or len(span) >= len(page.state.metrica.date_scales):
        return period, window, None
    children = timescale.children(span)
    return period, window, Series(series.scale, children, timescale.start(children[0]), timescale.start(children[-1]))


def prefixed(prefix: str, calls: dict[str, Any]) -> dict[str, Any]:
    """``calls`` named under ``prefix``: a page's reads of several kinds share one batch."""
    return {prefix + name: call for name, call in calls.items()}


def unprefixed(prefix: str, results: dict[str, Any]) -> dict[str, Any]:
    """The results named under ``prefix``, by their own names ({} when there are none)."""
    return {name[len(prefix) :]: value for name, value in results.items() if name.startswith(prefix)}


def _series_calls(prefix: str, query: MetricaValues, series: Series, percentiles: bool = True) -> dict[str, Any]:
    calls: dict[str, Any] = {
        f"{prefix}counts": lambda: query.timeserie_counts_and_averages(series.since, series.until, series.scale)
    }
    if percentiles:
        calls[f"{prefix}percentiles"] = lambda: query.timeserie_percentiles(
            series.since, series.until, series.scale, PERCENTILES
        )
    return calls


def read(page: Page) -> dict[str, Any]:
    """Every number the page shows, in one pipelined round trip: {name: result}."""
    series = series_of(page.state)
    period, before, previous_series = previous_of(page, series)
    calls: dict[str, Callable[[], Any]] = {}
    if page.kind == "jobs":
        calls.update(prefixed("tasks:", performance.task_calls(page.window)))  # (the cards: its rows added up)
        if series is not None:
            calls.update(_series_calls("", timing.task_metrica().values(), series, percentiles=False))
            ok = timing.task_metrica().values().filter(state=timing.SUCCESS)
            retried = timing.task_metrica().values().filter(state=timing.RETRY)
            calls["successes"] = lambda: ok.timeserie_counts(series.since, series.until, series.scale)
            calls["retried"] = lambda: retried.timeserie_counts(series.since, series.until, series.scale)
        if before is not None:
            calls.update(prefixed("previous:tasks:", performance.task_calls(before)))
    else:
        only = {"view": page.view} if page.view is not None else {}
        calls.update(prefixed("site:", performance.site_calls(page.window, page.view)))
        if page.kind == "views":
            calls.update(prefixed("views:", performance.view_calls(page.window)))
        if before is not None:
            calls.update(prefixed("previous:site:", performance.site_calls(before, page.view)))
            if page.kind == "views":
                calls.update(prefixed("previous:views:", performance.view_calls(before)))
        rt = response_time_metrica().values().filter(**only)
        if series is not None:
            calls.update(_series_calls("", rt, series))
            calls["failed"] = lambda: rt.filter(status=performance.FAILED_STATUS).timeserie_counts(
                series.since, series.until, series.scale
            )
            if page.kind == "view":
                queries, db_time, _repeated = (metrica.values().filter(**only) for metrica in database.metricas())
                calls["db"] = lambda: db_time.timeserie_counts_and_averages(series.since, series.until, series.scale)
                calls["statements"] = lambda: queries.timeserie_counts_and_averages(
                    series.since, series.until, series.scale
                )
        if previous_series is not None:
            calls.update(_series_calls("previous:", rt, previous_series))
        if page.kind == "view":
            repeated = page.window.scoped(database.n_plus_one_metrica().values().filter(**only))
            calls["repeated_counts"] = lambda: repeated.iterate_counts("statement")
            calls["repeated_averages"] = lambda: repeated.iterate_averages("statement")
    results = dict(zip(calls, pipelined(list(calls.values())), strict=True))
    results["_series"] = series
    results["_period"] = period
    results["_previous_series"] = previous_series
    return results


# -- showing -----------------------------------------------------------------------------------------


def shown(value: Any, unit: str, in_table: bool = False) -> str:
    """A value as the Performance pages show it: a share in percent, an Apdex to two places,
    milliseconds to three significant digits (812 ms, 48.3 ms, 2.25 ms: a percentile is no
    more precise than its histogram bucket), counts whole.  A table's cells leave the unit to
    their column's heading."""
    if value is None:
        return "—"
    if unit == "%":
        return f"{number_format(round(value * 100, 1), 1, force_grouping=True)}%"
    if unit == "apdex":
        return number_format(round(value, 2), 2)
    if unit == "decimal":  # an average of counts: 26.0 statements per request
        return number_format(round(value, 1), 1, force_grouping=True)
    if unit == "ms":
        places = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
        text = number_format(round(value, places), places, force_grouping=True)
        return text if in_table else f"{text} {MS}"
    if isinstance(value, float) and not value.is_integer():
        return number_format(round(value, 2), 2, force_grouping=True)
    return display(value)


def _apdex_change(current: float | None, previous: float | None) -> dict[str, str] | None:
    """An Apdex change in points (0.94 against 0.90 is "▲ 0.04"), not in percent."""
    if current is None or previous is None:
        return None
    versus = _("vs %(previous)s") % {"previous": shown(previous, "apdex")}
    delta = round(current - previous, 2)
    if delta == 0:
        return {"text": "= 0", "direction": "flat", "versus": versus}
    arrow, direction = ("▲", "up") if delta > 0 else ("▼", "down")
    return {"text": f"{arrow} {number_format(abs(delta), 2)}", "direction": direction, "versus": versus}


def cards(items: Sequence[tuple[str, Any, Any, str]], before: Any) -> list[dict[str, Any]]:
    """The cards: (key, label, value, unit) with, when compared, the change against ``before``."""
    out = []
    for key, text, value, unit in items:
        card: dict[str, Any] = {"key": key, "label": str(text), "value": shown(value, unit), "change": None}
        if before is not None:
            then = before.measure(key)
            if key == "apdex":
                card["change"] = _apdex_change(value, then)
            elif then is not None and value is not None:
                card["change"] = change_label(compare.change(value, then))
                card["change"]["versus"] = _("vs %(previous)s") % {"previous": shown(then, unit)}
        out.append(card)
    return out


def _line(
    title: str,
    axis: str,
    series: Series,
    datasets: list[tuple[str, list[Any], str]],
    units: dict[str, str],
    integer: Sequence[str] = (),
    **extra: Any,
) -> Spec:
    """A line chart over the page's buckets, told the truth about time (partial, expired, not begun)."""
    spec = series_spec(
        [bucket_label(timescale.start(span), series.scale) for span in series.spans],
        datasets,
        title=title,
        x=series.scale,
    )
    spec["axes"] = {"y": str(axis)}  # the box's heading names the chart: its canvas draws no title
    spec["heading"] = spec.pop("title")
    spec["units"] = units
    spec["integer"] = list(integer)
    spec.update(extra)
    spec, _spans = mark_time(spec, series.spans, conf.local(), series.scale)
    return formats.localized_spec(spec)


def _percentile_sets(rows: list[tuple[Any, dict[float, float | None] | None]]) -> list[tuple[str, list[Any], str]]:
    return [(f"p{p}", [(found or {}).get(p) for _moment, found in rows], "y") for p in PERCENTILES]


def _with_previous(spec: Spec, results: dict[str, Any], measure: str = "p95") -> Spec:
    """The previous period's ``measure`` dashed over the current buckets (bucket i over bucket i)."""
    rows = results.get("previous:percentiles")
    earlier: Series | None = results.get("_previous_series")
    if rows is None or earlier is None:
        return spec
    index = next((i for i, d in enumerate(spec["datasets"]) if d.get("measure", d["label"]) == measure), None)
    if index is None:
        return spec
    length = len(spec["labels"])
    data = [(found or {}).get(float(measure[1:]), (found or {}).get(int(measure[1:]))) for _m, found in rows]
    labels = [bucket_label(moment, earlier.scale) for moment, _found in rows]
    spec = dict(spec)
    spec["datasets"] = [
        *spec["datasets"],
        {
            "label": str(_("%(measure)s (previous period)") % {"measure": measure}),
            "measure": measure,
            "data": compare.fit(data, length),
            "axis": "y",
            "previous_of": index,
            "labels": compare.fit(labels, length),
        },
    ]
    return spec


def charts_of(page: Page, results: dict[str, Any]) -> dict[str, Spec]:
    """The page's charts, by canvas id."""
    series: Series | None = results["_series"]
    if series is None:
        return {}
    ms = {"y": str(MS)}
    out: dict[str, Spec] = {}
    if page.kind == "jobs":
        counts = [count for _m, count, _a in results["counts"]]
        ok = [count for _m, count in results["successes"]]
        retried = [count for _m, count in results["retried"]]
        failed = [
            max(0, (c or 0) - (s or 0) - (r or 0)) if c is not None else None
            for c, s, r in zip(counts, ok, retried, strict=True)
        ]
        out[CHARTS["runs"]] = _line(
            _("Runs"),
            _("runs"),
            series,
            [(str(_("runs")), counts, "y"), (str(_("failures")), failed, "y")],
            {},
            ["y"],
        )
        return out
    latency = _line(_("Response time"), _("response time"), series, _percentile_sets(results["percentiles"]), ms)
    out[CHARTS["latency"]] = _with_previous(latency, results)
    counts = [count for _m, count, _a in results["counts"]]
    failed = [count for _m, count in results["failed"]]
    out[CHARTS["requests"]] = _line(
        _("Requests"),
        _("requests"),
        series,
        [(str(_("requests")), counts, "y"), (str(_("5xx")), failed, "y")],
        {},
        ["y"],
    )
    if page.kind == "view":
        averages = [average for _m, _c, average in results["counts"]]
        db = [average for _m, _c, average in results["db"]]
        rest = [max(0.0, a - (d or 0)) if a is not None else None for a, d in zip(averages, db, strict=True)]
        out[CHARTS["split"]] = _line(
            _("Where a request's time goes (average)"),
            _("time per request"),
            series,
            [(str(_("database")), db, "y"), (str(_("the rest")), rest, "y")],
            ms,
            stacked=True,
        )
        per_request = [average for _m, _c, average in results["statements"]]
        out[CHARTS["queries"]] = _line(
            _("SQL statements per request"),
            _("statements"),
            series,
            [(str(_("queries / request")), per_request, "y")],
            {},
        )
    return out


def series_table(page: Page, charts: dict[str, Spec]) -> tuple[list[str], list[dict[str, Any]], list[list[Any]]]:
    """The numbers over time behind the charts, one row per bucket: (header, rows as shown, raw rows)."""
    if page.kind == "jobs":
        ids = [CHARTS["runs"]]
    elif page.kind == "view":
        ids = [CHARTS["requests"], CHARTS["latency"], CHARTS["split"], CHARTS["queries"]]
    else:
        ids = [CHARTS["requests"], CHARTS["latency"]]
    found = [charts[i] for i in ids if i in charts]
    if not found:
        return [], [], []
    header = [found[0].get("x_label") or found[0].get("x", "")]
    columns: list[list[Any]] = []
    units: list[str] = []
    for spec in found:
        unit = spec.get("units", {}).get("y", "")
        for dataset in spec["datasets"]:
            if "previous_of" in dataset:
                continue
            header.append(f"{dataset['label']} ({unit})" if unit else dataset["label"])
            columns.append(dataset["data"])
            units.append("ms" if unit and unit == str(MS) else unit)  # (the chart's unit is in the page's language)
    labels = found[0]["labels"]
    partial, expired = set(found[0].get("partial", [])), set(found[0].get("expired", []))
    raw = [[text, *(column[i] for column in columns)] for i, text in enumerate(labels)]
    rows = [
        {
            "label": text,
            "url": None,
            "css": "staste-expired" if i in expired else "staste-partial" if i in partial else "",
            "partial": i in partial,
            "values": [
                _("expired") if i in expired else shown(column[i], unit, in_table=True)
                for column, unit in zip(columns, units, strict=True)
            ],
        }
        for i, text in enumerate(labels)
    ]
    return header, rows, raw


def column_heads(page: Page, columns: Sequence[tuple[str, Any, str]]) -> list[dict[str, Any]]:
    heads = []
    for measure, text, unit in columns:
        lowest = measure in performance.LOWEST_FIRST
        heads.append(
            {
                "measure": measure,
                "label": f"{text} ({MS})" if unit == "ms" else str(text),
                "url": page.url(sort=measure),
                "active": measure == page.sort,
                "arrow": "↑" if lowest else "↓",
                "title": _("Sort by this column, lowest first") if lowest else _("Sort by this column, highest first"),
            }
        )
    return heads


def view_rows(page: Page, rows: list[ViewNumbers], before: list[ViewNumbers] | None) -> list[dict[str, Any]]:
    earlier = {row.view: row for row in before or []}
    out = []
    for row in performance.ranked(rows, page.sort):
        values = [shown(row.measure(measure), unit, in_table=True) for measure, _text, unit in VIEW_COLUMNS]
        values[-1] = display(row.n_plus_one) if row.n_plus_one else "—"
        if before is not None:  # the p95's change, next to it
            then = earlier.get(row.view)
            change = (
                change_label(compare.change(row.p95, then.p95))["text"]
                if then is not None and then.p95 is not None and row.p95 is not None
                else "—"
            )
            values.insert(P95_CHANGE_AT, change)
        target = page.state
        out.append(
            {
                "label": label(row.view),
                "url": reverse(url_name("view")) + target.querystring(**{VIEW: str(row.view)}),
                "css": ("staste-unranked" if not row.ranked else "") + (" staste-n-plus-one" if row.n_plus_one else ""),
                "values": values,
            }
        )
    return out


def task_rows(page: Page, rows: list[TaskNumbers]) -> list[dict[str, Any]]:
    metrica = timing.task_metrica()
    base = reverse("admin:staste_metrica", args=[metrica.name])
    out = []
    for row in performance.ranked(rows, page.sort):
        state = page.state.with_filter("task", row.task)
        values = [shown(row.measure(measure), unit, in_table=True) for measure, _text, unit in TASK_COLUMNS]
        if row.failures:
            values[1] = f"{values[1]} ({display(row.failures)})"
        out.append(
            {
                "label": label(row.task),
                "url": base + state.querystring(),
                "css": "staste-unranked" if not row.ranked else "",
                "values": values,
            }
        )
    return out


def statement_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    averages = dict(results.get("repeated_averages") or [])
    rows = sorted(((text, count) for text, count in results.get("repeated_counts") or [] if count), key=lambda r: -r[1])
    return [
        {
            "label": label(text),
            "url": None,
            "css": "",
            "values": [display(count), shown(averages.get(text), "decimal", in_table=True)],
        }
        for text, count in rows
    ]


def site_cards(page: Page, results: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, Any]:
    """The cards of a page, and the numbers behind them (now, and in the previous period)."""
    period: compare.Period | None = results["_period"]
    if page.kind == "jobs":
        jobs = _jobs_total(performance.tasks_from(unprefixed("tasks:", results)))
        earlier = unprefixed("previous:tasks:", results)
        jobs_before = _jobs_total(performance.tasks_from(earlier)) if earlier else None
        items = [
            ("runs", _("Runs"), jobs.runs, ""),
            ("failure_rate", _("Failure rate"), jobs.failure_rate, "%"),
            ("p95", _("p95, slowest job"), jobs.p95, "ms"),
        ]
        return cards(items, jobs_before), jobs, jobs_before
    now = performance.site_from(unprefixed("site:", results), page.window)
    earlier = unprefixed("previous:site:", results)
    before = performance.site_from(earlier, _window(period)) if earlier and period is not None else None
    items = [
        ("requests", _("Requests"), now.requests, ""),
        ("per_minute", _("Per minute"), now.per_minute, ""),
        ("p50", "p50", now.p50, "ms"),
        ("p95", "p95", now.p95, "ms"),
        ("p99", "p99", now.p99, "ms"),
        ("failure_rate", _("5xx"), now.failure_rate, "%"),
        ("apdex", "Apdex", now.apdex, "apdex"),
        ("db_share", _("Database"), now.db_share, "%"),
        ("queries", _("Queries / request"), now.queries, "decimal"),
    ]
    return cards(items, before), now, before


def _window(period: compare.Period | None) -> Window:
    if period is None:
        return Window(span=())
    return Window(range=period.range) if period.range is not None else Window(span=period.span or ())


def _jobs_total(rows: list[TaskNumbers]) -> TaskNumbers:
    """Every job together: runs and failures added up, and the p95 of the slowest job that has
    enough runs to be ranked (percentiles of different jobs do not add up)."""
    runs = sum(row.runs for row in rows)
    failures = sum(row.failures for row in rows)
    slowest = max((row.p95 for row in rows if row.p95 is not None and row.ranked), default=None)
    return TaskNumbers(
        task="", runs=runs, failures=failures, failure_rate=failures / runs if runs else None, p95=slowest
    )


def page_data(page: Page, results: dict[str, Any]) -> dict[str, Any]:
    """What the page and its JSON show: cards, charts, tables (as shown and raw)."""
    the_cards, now, before = site_cards(page, results)
    charts = charts_of(page, results)
    header, series_rows, series_raw = series_table(page, charts)
    data: dict[str, Any] = {
        "cards": the_cards,
        "numbers": dataclasses.asdict(now),
        "previous": dataclasses.asdict(before) if before is not None else None,
        "charts": charts,
        "series": {"header": header, "rows": series_rows, "raw": series_raw},
    }
    period: compare.Period | None = results["_period"]
    if page.state.compare and period is not None and period.unavailable:
        data["compare_unavailable"] = period.unavailable
    if page.kind == "views":
        rows = performance.views_from(unprefixed("views:", results), page.window)
        found = unprefixed("previous:views:", results)
        earlier = performance.views_from(found, _window(period)) if found else None
        data["rows"] = rows
        data["table"] = view_rows(page, rows, earlier)
    elif page.kind == "jobs":
        tasks = performance.tasks_from(unprefixed("tasks:", results))
        data["rows"] = tasks
        data["table"] = task_rows(page, tasks)
    else:
        data["statements"] = statement_rows(results)
    return data
