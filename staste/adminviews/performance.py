"""The Performance pages of the staste section: every view, one view, the timed jobs.

* ``/admin/staste/performance/``: one table of views (requests, throughput, p50/p95/p99,
  failure rate, Apdex, database share, statements per request, N+1), sortable by any column
  (``?_sort=apdex``), only views with ``STASTE_MIN_RANKED_COUNT`` requests ranked; the site's
  cards; p50/p95/p99 and requests over time;
* ``/admin/staste/performance/view/?view=...``: one view: its p50/p95/p99 over time, its
  database time against the rest of each request (stacked), its statements per request, and
  the statements it repeated (N+1);
* ``/admin/staste/performance/jobs/``: the timed jobs (``staste.timed``, Celery tasks,
  commands): runs, failure rate, retries, p50/p95/p99.

They take the time controls of a metrica page (``_last``, ``_span``, ``_scale``,
``_compare=previous``) and refresh themselves live; each page is one Redis round trip
(:mod:`staste.performance` plans its reads; the previous period joins the same pipeline), its
JSON and CSV exports hold what it shows.  Its query string is read by ``performance_state``, its
numbers read and shown by ``performance_reading``; this module has the views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from staste import conf, performance, refusals
from staste.formats import bucket_label
from staste.formats import value_label as label
from staste.http import csv_response, json_response
from staste.middleware import response_time_metrica

from .base import READ_FAILURES, admin_context, redis_failure
from .metrica import _time_widgets, display, live_config
from .performance_reading import (
    CHARTS,
    P95_CHANGE_AT,
    TABLES,
    TASK_COLUMNS,
    VIEW_COLUMNS,
    column_heads,
    page_data,
    read,
)
from .performance_state import Page, lenient, parse, url_name
from .state import LAST, SCALE, SPAN, BadRequest

TEMPLATES = {
    "views": "staste/admin/performance.html",
    "view": "staste/admin/performance_view.html",
    "jobs": "staste/admin/performance_jobs.html",
}


# -- the views -------------------------------------------------------------------------------------


def _read(kind: str, params: QueryDict) -> tuple[Page | None, dict[str, Any] | None, str | None, int]:
    """(page, data, error, status): 400 for a bad query string, data None on a Redis failure."""
    try:
        page = parse(kind, params)
    except BadRequest as exc:
        return None, None, str(exc), 400
    return (page, *_data(page))


def _data(page: Page) -> tuple[dict[str, Any] | None, str | None, int]:
    try:
        return page_data(page, read(page)), None, 200
    except READ_FAILURES as exc:
        return None, redis_failure(exc), 200
    except (TypeError, ValueError) as exc:  # past the query budget...
        return None, refusals.refusal(exc), 400


def performance_page(
    request: HttpRequest, site: AdminSite, kind: str = "views", unreadable: str | None = None
) -> HttpResponse:
    page, data, error, status = _read(kind, request.GET)
    extra: dict[str, Any] = {}
    if page is None:
        extra["bad_request"] = error
        page = lenient(kind, request.GET)
        data, error, _status = _data(page)
        if data is None:
            extra["redis_error"] = error
    elif status == 400:
        extra["bad_request"] = error
    elif data is None:
        extra["redis_error"] = error
    if unreadable is not None:
        extra["bad_request"], status = unreadable, 400
    context = admin_context(request, site, title=title_of(page), **extra)
    context.update(page_context(page, data))
    return TemplateResponse(request, TEMPLATES[page.kind], context, status=status)


def title_of(page: Page) -> str:
    if page.kind == "jobs":
        return _("Performance: jobs")
    if page.kind == "view":
        return _("Performance: %(view)s") % {"view": label(page.view)}
    return _("Performance")


def performance_json(request: HttpRequest, site: AdminSite, kind: str = "views") -> HttpResponse:
    page, data, error, status = _read(kind, request.GET)
    if page is None or data is None:
        return json_response({"error": error}, status=400 if status == 400 else 503)
    return json_response(export(page, data))


def performance_csv(request: HttpRequest, site: AdminSite, kind: str = "views") -> HttpResponse:
    which = request.GET.get("_table") or ("series" if kind == "view" else "table")
    params = request.GET.copy()
    params.pop("_table", None)
    allowed = ("table", "series") if kind != "view" else ("series", "statements")
    if which not in allowed:
        problem = _("bad %(name)s: use one of %(values)s") % {"name": "_table", "values": ", ".join(allowed)}
        return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")
    page, data, error, status = _read(kind, params)
    if page is None or data is None:
        return HttpResponse(error, status=400 if status == 400 else 503, content_type="text/plain; charset=utf-8")
    if which == "series":
        lines = [data["series"]["header"], *data["series"]["raw"]]
    elif which == "statements":
        lines = [[_("statement"), _("requests"), _("times, on average")]]
        lines += [[row["label"], *row["values"]] for row in data["statements"]]
    else:
        columns = VIEW_COLUMNS if kind == "views" else TASK_COLUMNS
        names = [measure for measure, _text, _unit in columns]
        key = "view" if kind == "views" else "task"
        lines = [[key, *names, "ranked"]]
        lines += [
            [label(getattr(row, key)), *(row.measure(m) for m in names), row.ranked]
            for row in performance.ranked(data["rows"], page.sort)
        ]
    return csv_response(lines, f"performance-{kind}-{which}.csv")


def export(page: Page, data: dict[str, Any]) -> dict[str, Any]:
    """The JSON export: the window, the numbers, the rows, and what the page shows (the live
    refresh puts ``shown`` in place)."""
    found = page.state.range()
    out: dict[str, Any] = {
        "page": page.kind,
        "view": page.view,
        "last": page.state.last,
        "span": list(page.state.span) if page.state.span is not None else None,
        "since": found.since if found else None,
        "until": found.until if found else None,
        "time_zone": conf.time_zone().key,
        "sort": page.sort,
        "minimum_count": performance.minimum(),
        "apdex_t": conf.get("STASTE_APDEX_T"),
        "numbers": data["numbers"],
        "previous": data["previous"],
        "charts": data["charts"],
        "series": {"header": data["series"]["header"], "rows": data["series"]["raw"]},
        "shown": {
            "cards": data["cards"],
            "charts": data["charts"],
            "tables": {TABLES["series"]: data["series"]["rows"]},
            "since": bucket_label(found.since, found.scale) if found else None,
            "until": bucket_label(found.until, found.scale) if found else None,
        },
    }
    if "rows" in data:
        out["rows"] = [
            {
                **dataclasses.asdict(row),
                "view" if page.kind == "views" else "task": label(
                    getattr(row, "view" if page.kind == "views" else "task")
                ),
            }
            for row in performance.ranked(data["rows"], page.sort)
        ]
        out["shown"]["tables"][TABLES["views" if page.kind == "views" else "tasks"]] = data["table"]
    if "statements" in data:
        out["statements"] = [{"statement": row["label"], "requests": row["values"][0]} for row in data["statements"]]
        out["shown"]["tables"][TABLES["statements"]] = data["statements"]
    return out


def with_cells(rows: list[dict[str, Any]], heads: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows with their values paired with their columns' names: a phone shows each number under
    its name (the live refresh names them from the table's header)."""
    return [{**row, "cells": list(zip([str(head) for head in heads], row["values"], strict=False))} for row in rows]


def page_context(page: Page, data: dict[str, Any] | None) -> dict[str, Any]:
    extra = page.extra()
    json_url = page.url(f"{page.kind}_json")
    context: dict[str, Any] = {
        "page": page,
        "state": page.state,
        "time": _time_widgets(page.state, reverse(url_name(page.kind)), extra, all_time=False),
        "hidden": [(key, value) for key, value in page.state.params() if key in (SPAN, LAST, SCALE)]
        + list(extra.items()),
        "compare": {"on": page.state.compare, "offered": True},
        "live": live_config(json_url, "page") if page.state.includes_now() else None,
        "json_url": json_url,
        "csv_url": page.url(f"{page.kind}_csv"),
        "tabs": [
            {"label": _("Views"), "url": page.url("views", view=None), "active": page.kind in ("views", "view")},
            {
                "label": _("Jobs"),
                "url": reverse(url_name("jobs")) + page.state.querystring(),
                "active": page.kind == "jobs",
            },
        ],
        "minimum": performance.minimum(),
        "apdex_t": display(conf.get("STASTE_APDEX_T")),
        "n_plus_one": conf.get("STASTE_N_PLUS_ONE"),
        "chart_ids": CHARTS,
        "table_ids": TABLES,
    }
    if page.kind == "view":
        context["view_name"] = label(page.view)
        context["metrica_url"] = (
            reverse("admin:staste_metrica", args=[response_time_metrica().name])
            + page.state.with_filter("view", page.view).querystring()
        )
        context["views_url"] = reverse(url_name("views")) + page.state.querystring()
    if data is None:
        return context
    context.update(
        cards=data["cards"],
        charts=[(chart_id, spec) for chart_id, spec in data["charts"].items()],
        series={**data["series"], "rows": with_cells(data["series"]["rows"], data["series"]["header"][1:])},
        compare_unavailable=data.get("compare_unavailable"),
    )
    if page.kind == "views":
        heads = column_heads(page, VIEW_COLUMNS)
        if page.state.compare:
            heads.insert(
                P95_CHANGE_AT, {"measure": "p95_change", "label": _("p95 change"), "url": None, "active": False}
            )
        context.update(
            columns=heads,
            rows=with_cells(data["table"], [head["label"] for head in heads]),
            unranked=sum(1 for row in data["rows"] if not row.ranked),
        )
    elif page.kind == "jobs":
        heads = column_heads(page, TASK_COLUMNS)
        context.update(
            columns=heads,
            rows=with_cells(data["table"], [head["label"] for head in heads]),
            unranked=sum(1 for row in data["rows"] if not row.ranked),
        )
    else:
        context["statements"] = with_cells(data["statements"], [_("requests"), _("times, on average")])
    minimum = performance.minimum()
    if page.kind == "jobs":
        context["counted_note"] = ngettext(
            "Only jobs with at least %(count)s run in this range are ranked (STASTE_MIN_RANKED_COUNT); "
            "the others are listed last, greyed.",
            "Only jobs with at least %(count)s runs in this range are ranked (STASTE_MIN_RANKED_COUNT); "
            "the others are listed last, greyed.",
            minimum,
        ) % {"count": minimum}
    else:
        context["counted_note"] = ngettext(
            "Only views with at least %(count)s request in this range are ranked (STASTE_MIN_RANKED_COUNT); "
            "the others are listed last, greyed.",
            "Only views with at least %(count)s requests in this range are ranked (STASTE_MIN_RANKED_COUNT); "
            "the others are listed last, greyed.",
            minimum,
        ) % {"count": minimum}
    return context
