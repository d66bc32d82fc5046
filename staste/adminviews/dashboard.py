"""The dashboard (``/admin/staste/``): every registered metrica, grouped by category.

Each metrica shows its axes, today's and all-time numbers and a small chart of the last 24
hours (or of the finest range it records).  All of it, for every metrica, is read in one
pipelined round trip, so 50 metricas cost what one does.
"""

from __future__ import annotations

import datetime
import functools
import itertools
from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from staste import buffer, conf, formats, refusals, timescale
from staste.charts import annotations as chart_annotations
from staste.charts.spec import Range, Spec, line_spec, mark_time, parse_last
from staste.exceptions import QueryTooExpensive
from staste.formats import SPARKLINE_RANGES, change_label, first_recorded, like, with_unit
from staste.http import json_response
from staste.measures import keeps_uniques_by
from staste.metrica import Metrica
from staste.query import pipelined
from staste.registration import registry

from . import compare
from .base import READ_FAILURES, admin_context, redis_failure
from .metrica import display, live_config, time_zone_label

TEMPLATE = "staste/admin/dashboard.html"
#: Between the lines of a number cell ("3 events · avg 15.5 ms"), as the template joins them.
LINE_JOINT = " · "


def summarise(metrica: Metrica, now: datetime.datetime, ranges: dict[str, Range]) -> dict[str, Any]:
    """A metrica's dashboard numbers and small chart (pure reads, to be pipelined).

    ``now`` and ``ranges`` are fixed by the caller, so both passes of ``pipelined`` read the
    same buckets.  ``yesterday`` is yesterday up to the time it is now (see ``compare``): the
    hours before this one whole, this one prorated; by the whole day when hours are not kept.
    """
    everything = metrica.values()
    numbers: dict[str, Any] = {"all": everything.total()}
    if metrica.averaged:
        numbers["all_count"], numbers["all_average"] = everything.count(), everything.average()
    if "day" in metrica.date_scales:
        today = timescale.truncate(now, "day")
        day = everything.timespan(*today)
        numbers["today"] = day.total()
        if metrica.averaged:
            numbers["today_count"], numbers["today_average"] = day.count(), day.average()
        numbers["yesterday"] = _same_time_yesterday(metrica, timescale.shift(today, -1), now)
        if metrica.histogram:
            numbers["today_p95"] = day.percentiles([95]).get(95)
        if keeps_uniques_by(metrica, "day"):
            numbers["today_uniques"] = day.uniques()
    if metrica.keeps_uniques:
        numbers["all_uniques"] = everything.uniques()
    text = first_recorded(SPARKLINE_RANGES, metrica.date_scales)
    numbers["range"] = text
    numbers["spark"] = None
    if text:
        since, until, scale = ranges[text]
        try:
            spec: Spec = line_spec(everything, since, until, scale, title="")
        except ValueError:  # e.g. STASTE_MAX_BUCKETS below the range
            pass
        else:
            # The hour still filling up is drawn dashed, not as a fall at the end.
            spec, _spans = mark_time(spec, everything.series_spans(since, until, scale)[1], now, scale)
            spec = formats.localized_spec(spec)
            spec["compact"] = True
            numbers["spark"] = spec
    return numbers


#: The buffer's counters a page shows, in this order, in the reader's words.
BUFFER_COUNTERS: tuple[tuple[str, str | Promise], ...] = (
    ("pending", gettext_lazy("pending")),
    ("dropped", gettext_lazy("dropped")),
    ("written", gettext_lazy("written")),
    ("flushes", gettext_lazy("flushes")),
    ("failed_flushes", gettext_lazy("failed flushes")),
    ("quarantined", gettext_lazy("quarantined")),
)


def _same_time_yesterday(metrica: Metrica, yesterday: timescale.Span, now: datetime.datetime) -> float:
    """Yesterday's number (events of an AveragedMetrica) up to the time of day ``now`` is."""
    query = metrica.values().timespan(*yesterday)
    if "hour" in metrica.date_scales:
        hours = query.iterate_counts() if metrica.averaged else query.iterate()
        hour = timescale.truncate(now, "hour")
        fraction = (now - timescale.start(hour)) / datetime.timedelta(hours=1)
        period = compare.Period(None, yesterday, hour[-1], fraction)
        return compare.same_point([value for _, value in hours], period)
    whole = query.count() if metrica.averaged else query.total()
    return whole * ((now - timescale.start(timescale.truncate(now, "day"))) / datetime.timedelta(days=1))


def read_rows(metricas: list[Metrica]) -> tuple[list[dict[str, Any]], str | None]:
    """Every metrica's row (numbers, change, small chart) in one round trip; and what failed."""
    now = conf.local()
    ranges = {text: parse_last(text, now) for text in SPARKLINE_RANGES}
    error = None
    try:
        numbers: list[dict[str, Any] | None] = pipelined(
            [functools.partial(summarise, m, now, ranges) for m in metricas]
        )
    except READ_FAILURES as exc:
        error, numbers = redis_failure(exc), [None] * len(metricas)
    except QueryTooExpensive as exc:  # STASTE_MAX_QUERY_WORK below what the rows read together
        error, numbers = refusals.refusal(exc), [None] * len(metricas)
    charts = [((found or {}).get("spark"), metrica.name) for metrica, found in zip(metricas, numbers, strict=True)]
    sparks = chart_annotations.mark_all(charts)  # every small chart's notes: one query
    for found, spark in zip(numbers, sparks, strict=True):
        if found is not None:
            found["spark"] = spark
    rows = [_row(index, metrica, found) for index, (metrica, found) in enumerate(zip(metricas, numbers, strict=True))]
    return rows, error


def dashboard_json(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """The dashboard's numbers as shown, for its live refresh (503 when Redis cannot answer)."""
    rows, error = read_rows(list(registry))
    if error is not None:
        return json_response({"error": error}, status=503)
    return json_response(
        {
            "rows": [
                {
                    "name": row["metrica"].name,
                    "today": LINE_JOINT.join(row.get("today") or []) or "—",
                    "all": LINE_JOINT.join(row.get("all") or []) or "—",
                    "change": row.get("change"),
                    "spark": row.get("spark"),
                }
                for row in rows
            ]
        }
    )


def dashboard(request: HttpRequest, site: AdminSite) -> HttpResponse:
    metricas = list(registry)
    rows, error = read_rows(metricas)
    groups = [
        {"name": category or _("General"), "rows": list(items)}
        for category, items in itertools.groupby(rows, key=lambda row: row["metrica"].category)
    ]
    stats = buffer.stats()
    context = admin_context(
        request,
        site,
        live=live_config(reverse("admin:staste_dashboard_json"), kind="dashboard"),
        title=_("Statistics"),
        zone=time_zone_label(),
        groups=groups,
        count=len(metricas),
        redis_error=error,
        buffer=_buffer_items(stats),
        buffer_error=stats["last_error"],
        buffer_dropped=bool(stats["dropped"]),
        buffer_quarantine=stats["last_quarantine"],
        wait_replicas=conf.get("STASTE_WAIT_REPLICAS"),
    )
    return TemplateResponse(request, TEMPLATE, context)


def _buffer_items(stats: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, number, name) of the buffer's counters worth showing, in a fixed order."""
    return [(key, display(stats[key]), str(name)) for key, name in BUFFER_COUNTERS if isinstance(stats.get(key), int)]


def _row(index: int, metrica: Metrica, found: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metrica": metrica,
        "url": reverse("admin:staste_metrica", args=[metrica.name]),
        "axes": [
            {"name": name, "kind": type(axis).__name__, "choices": len(axis.choices) if axis.choices else None}
            for name, axis in metrica.axes.items()
        ],
        "chart_id": f"staste-spark-{index}",
    }
    if found is None:
        return row
    unit = metrica.unit
    if metrica.averaged:
        row["today"] = _averaged(found.get("today_count"), found.get("today_average"), unit)
        if found.get("today_p95") is not None:
            row["today"].append(_("p95 %(value)s") % {"value": with_unit(found["today_p95"], unit)})
        row["all"] = _averaged(found["all_count"], found["all_average"], unit)
    else:
        row["today"] = [with_unit(found["today"], unit)] if "today" in found else []
        row["all"] = [with_unit(found["all"], unit)]
    if "yesterday" in found:
        today = found["today_count"] if metrica.averaged else found["today"]
        row["change"] = change_label(
            compare.change(today, found["yesterday"]),
            like(found["yesterday"], today),
            "" if metrica.averaged else unit,  # an AveragedMetrica compares its events
        )
    for when in ("today", "all"):  # distinct ids (uniques=True), on a line of their own
        if found.get(f"{when}_uniques") is not None:
            count = found[f"{when}_uniques"]
            row[when].append(ngettext("%(count)s unique id", "%(count)s unique ids", count) % {"count": display(count)})
    row["spark"] = found["spark"]
    row["range"] = found["range"]
    return row


def _averaged(count: int | None, average: float | None, unit: str) -> list[str]:
    """An AveragedMetrica's numbers, one per line: the events, then their average."""
    if count is None:
        return []
    events = ngettext("%(count)s event", "%(count)s events", count) % {"count": display(count)}
    if not count:
        return [events]
    return [events, _("avg %(value)s") % {"value": with_unit(average, unit)}]
