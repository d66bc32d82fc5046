"""A metrica's page (``/admin/staste/<name>/``) and its JSON and CSV exports."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from django.contrib.admin import AdminSite
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.dates import MONTHS
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext_lazy

from staste import conf, formats, measures, refusals, timescale
from staste.charts import annotations as chart_annotations
from staste.charts.spec import REST_LABEL, Spec, table
from staste.formats import (
    SCALE_PLURALS,
    bucket_label,
    change_label,
    display,
    like,
    measure_label,
    range_label,
    range_scale,
    with_unit,
)
from staste.formats import value_label as label
from staste.http import csv_response, json_response
from staste.metrica import Metrica
from staste.registration import NotRegistered, registry

from . import compare
from .base import READ_FAILURES, admin_context, redis_failure
from .reading import COMPLETE, EXPIRED, FUTURE, PageData, axis_options, read_page, shown_measures
from .state import BadRequest, PageState, default_by, format_span, quick_ranges

TEMPLATE = "staste/admin/metrica.html"
#: The links that choose the scale of a range's buckets.
BY_SCALE = {
    "minute": pgettext_lazy("scale", "by minute"),
    "hour": pgettext_lazy("scale", "by hour"),
    "day": pgettext_lazy("scale", "by day"),
    "week": pgettext_lazy("scale", "by week"),
    "month": pgettext_lazy("scale", "by month"),
    "year": pgettext_lazy("scale", "by year"),
}
TABLES = ("line", "breakdown")
#: What a card says where nothing is measured (``PageData.status``).
UNMEASURED = {EXPIRED: pgettext_lazy("numbers", "expired"), FUTURE: pgettext_lazy("numbers", "not begun")}
#: Longest error message shown (the values in it come from the query string).
MAX_MESSAGE = 500


def get_metrica(name: str) -> Metrica:
    try:
        return registry.get(name)
    except NotRegistered:
        raise Http404(_("No metrica named %(name)r is registered.") % {"name": name}) from None


def _message(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def lenient_state(metrica: Metrica, params: QueryDict, ignore: tuple[str, ...] = ()) -> PageState:
    """The page's state without the parameters it cannot show, so a 400 keeps its controls."""
    params = params.copy()
    for _attempt in range(len(params) + 1):
        try:
            return PageState.from_params(metrica, params, ignore=ignore)
        except BadRequest as exc:
            if exc.param is None or exc.param not in params:
                break
            del params[exc.param]
    return PageState.from_params(metrica, QueryDict(), ignore=ignore)


def _data(state: PageState) -> tuple[PageData | None, str | None, int]:
    """(data, error, status) of a state: 400 for what cannot be read, data None on a Redis failure."""
    try:
        data = read_page(state)
    except READ_FAILURES as exc:
        return None, redis_failure(exc), 200
    except (TypeError, ValueError) as exc:  # past the query budget, STASTE_MAX_BUCKETS lower than the range...
        return None, refusals.refusal(exc), 400
    data.line = chart_annotations.mark(data.line, state.metrica.name)
    return data, None, 200


def _read(request: HttpRequest, metrica: Metrica, ignore: tuple[str, ...] = ()) -> tuple[Any, Any, str | None, int]:
    """(state, data, error, status) of a request: 400 for a bad query string, data None on a Redis failure."""
    try:
        state = PageState.from_params(metrica, request.GET, ignore=ignore)
    except BadRequest as exc:
        return None, None, _message(exc), 400
    return (state, *_data(state))


def metrica_page(request: HttpRequest, site: AdminSite, name: str, unreadable: str | None = None) -> HttpResponse:
    """The page; ``unreadable`` says why the query string could not even be parsed (too many
    fields...): the page is then shown as it opens, that message above it, with a 400."""
    metrica = get_metrica(name)
    state, data, error, status = _read(request, metrica)
    context = admin_context(request, site, title=metrica.title, metrica=metrica)
    if state is None:
        # What the query string asked for cannot be shown: show the page without the faulty
        # parameter, the message above it, so every control is still there to go on from.
        context["bad_request"] = error
        state = lenient_state(metrica, request.GET)
        data, error, _status = _data(state)
        if data is None:
            context["redis_error"] = error
    elif status == 400:
        context["bad_request"] = error
    elif data is None:
        context["redis_error"] = error
    if unreadable is not None:
        context["bad_request"], status = unreadable, 400
    context["state"] = state
    context.update(page_context(state, data))
    return TemplateResponse(request, TEMPLATE, context, status=status)


def metrica_json(request: HttpRequest, site: AdminSite, name: str) -> HttpResponse:
    metrica = get_metrica(name)
    state, data, error, status = _read(request, metrica)
    if data is None:
        return json_response({"error": error}, status=400 if status == 400 else 503)
    return json_response(export_data(state, data))


def metrica_csv(request: HttpRequest, site: AdminSite, name: str) -> HttpResponse:
    metrica = get_metrica(name)
    which = request.GET.get("_table") or "line"
    if which not in TABLES:
        problem = _("bad %(name)s: use one of %(values)s") % {"name": "_table", "values": ", ".join(TABLES)}
        return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")
    _state, data, error, status = _read(request, metrica, ignore=("_table",))
    if data is None:
        return HttpResponse(error, status=400 if status == 400 else 503, content_type="text/plain; charset=utf-8")
    spec = data.line if which == "line" else data.breakdown_table
    if spec is None:
        problem = _("this view has no %(table)s table") % {"table": which}
        return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")
    header, rows = export_table(spec, status=which == "line")
    return csv_response([header, *rows], f"{metrica.name}-{which}.csv")


def _in_unit(dataset: dict[str, Any]) -> bool:
    """Whether a dataset's numbers are in the metrica's unit (a count or a share is not)."""
    name = dataset.get("measure", dataset["label"])
    return measures.is_measure(name) and measures.find(name).in_unit


def aware(moment: datetime.datetime) -> datetime.datetime:
    """A naive local datetime of staste's calendar with its offset, as exports write times."""
    return moment.replace(tzinfo=conf.time_zone())


#: A line row's status in an export (``partial``, ``expired``), as the page marks it.
ROW_STATUS = {"partial": "partial", "expired": "expired"}


def export_table(spec: Spec, status: bool = False) -> tuple[list[str], list[list[Any]]]:
    """The rows of a page's table as exported: numbers as the page shows them (``shown_number``),
    each header with its unit ("average (ms)"), a line's buckets as instants with their offset,
    and, with ``status``, a last column saying which buckets are partial or expired (an expired
    bucket's cells are empty, never 0)."""
    header, rows = table(spec)
    units = spec.get("units", {})
    header = [header[0]] + [
        f"{cell} ({units[d['axis']]})" if d.get("axis") in units and _in_unit(d) else cell
        for cell, d in zip(header[1:], spec.get("datasets", []), strict=True)
    ]
    scale = spec.get("x") if spec.get("type") == "line" else None
    flags = {i: "partial" for i in spec.get("partial", [])} | {i: "expired" for i in spec.get("expired", [])}
    out = []
    for i, row in enumerate(rows):
        first = row[0]
        if scale in formats.LABEL_FORMATS:
            first = formats.bucket_moment(first, scale).isoformat()
        cells = [first, *(formats.shown_number(value) for value in row[1:])]
        if status:
            cells.append(flags.get(i, ""))
        out.append(cells)
    if status:
        header.append("status")
    return header, out


def export_data(state: PageState, data: PageData) -> dict[str, Any]:
    """The JSON export: the state, the summary, and both charts as drawn, with their tables
    (the breakdown's table holds every value, the chart only the largest)."""
    metrica = state.metrica
    filters = {name: list(value) if isinstance(value, tuple) else value for name, value in state.filters.items()}
    out: dict[str, Any] = {
        "metrica": metrica.name,
        "title": metrica.title,
        "unit": metrica.unit,
        "filters": filters,
        "span": format_span(state.span) if state.span is not None else None,
        "last": state.last,
        "since": aware(data.range.since) if data.range else None,
        "until": aware(data.range.until) if data.range else None,
        "time_zone": conf.time_zone().key,
        "by": state.by,
        "measure": state.measure,
        # null where nothing is measured: a span Redis no longer holds, or one not begun.
        "summary": None if data.status in (EXPIRED, FUTURE) else data.summary,
        "status": data.status,
        "expired": data.expired,
        "previous": data.previous,
        # The notes drawn on the line, in its range (staste.annotations).
        "annotations": chart_annotations.listed(data.line),
        # What the page shows, formatted as shown (its live refresh puts these in place).
        "shown": {
            "cards": _summary_items(metrica, data.summary, data.previous, data.status),
            "since": bucket_label(data.range.since, data.range.scale) if data.range else None,
            "until": bucket_label(data.range.until, data.range.scale) if data.range else None,
            **shown_rows(state, data),
        },
    }
    for name, chart, rows_from in (
        ("line", data.line, data.line),
        ("breakdown", data.breakdown, data.breakdown_table),
    ):
        if chart is not None and rows_from is not None:
            header, rows = export_table(rows_from)
            if name == "breakdown":
                chart = {**chart, "links": [breakdown_link(state, data, text) for text in chart["labels"]]}
            out[name] = {"chart": chart, "header": header, "rows": rows}
        else:
            out[name] = None
    return out


def live_config(url: str, kind: str = "metrica") -> dict[str, Any] | None:
    """What ``live.js`` reads: where to ask, how often, and its button's words (None: no refresh)."""
    interval = conf.get("STASTE_LIVE_INTERVAL")
    if not interval or interval <= 0:
        return None
    return {
        "url": url,
        "interval": interval,
        "kind": kind,
        "labels": {
            "live": _("live"),
            "paused": _("live · paused"),
            "failed": _("live · no answer"),
            "partial": _("partial"),
            "partial_title": _("This bucket is still filling up"),
        },
    }


# -- the page's widgets ----------------------------------------------------------------------


def span_label(span: timescale.Span) -> str:
    scale = timescale.scale_of(span)
    if scale is None:
        return _("All time")
    if scale == "year":
        return str(span[0])
    if scale == "month":
        return str(MONTHS[span[1]])
    if scale == "day":
        return str(span[2])
    if scale == "hour":
        return f"{span[3]:02d}:00"
    return f"{span[3]:02d}:{span[4]:02d}"


def page_context(state: PageState, data: PageData | None) -> dict[str, Any]:
    metrica = state.metrica
    base = reverse("admin:staste_metrica", args=[metrica.name])
    options = data.options if data else {name: axis_options(axis, None) for name, axis in metrica.axes.items()}
    context: dict[str, Any] = {
        "filters": _filter_widgets(state, options),
        "chips": filter_chips(state),
        "time": _time_widgets(state),
        "by_choices": [
            (name, name == state.by, _unkept_reason(metrica, {*state.filters, name}))
            for name, axis in metrica.axes.items()
            if name == state.by or name not in state.filters or axis.hierarchical
        ],
        "kept": _kept_sets(metrica),
        "measure_choices": [(m, measure_label(m), m == state.measure) for m in shown_measures(state)]
        if metrica.averaged
        else [],
        "hidden": [(key, value) for key, value in state.params() if key in ("_span", "_last", "_scale", "_until")],
        "self_url": base + state.querystring(),
        "json_url": reverse("admin:staste_metrica_json", args=[metrica.name]) + state.querystring(),
        "csv_url": reverse("admin:staste_metrica_csv", args=[metrica.name]),
        "querystring": state.querystring()[1:],
        "compare": {"on": state.compare, "offered": state.span != ()},
        "live": live_config(reverse("admin:staste_metrica_json", args=[metrica.name]) + state.querystring())
        if state.includes_now()
        else None,
    }
    context["by_unkept"] = [(name, why) for name, _selected, why in context["by_choices"] if why]
    if data is None:
        return context
    context["summary"] = _summary_items(metrica, data.summary, data.previous, data.status)
    if data.previous is not None:
        context["compare"]["unavailable"] = data.previous["unavailable"]
    if data.expired:
        keep = conf.retention().get(timescale.scale_of(state.span or ()) or "")
        context["expired"] = _(
            "Redis no longer holds this %(scale)s: its counters expired %(days)s days after it ended "
            "(STASTE_RETENTION). The numbers of its coarser spans still count it."
        ) % {
            "scale": formats.SCALE_LABELS[timescale.scale_of(state.span or ()) or "year"],
            "days": display((keep or 0) / 86400),
        }
    if data.future:
        context["future"] = _("This %(scale)s has not begun: nothing can have been counted in it yet.") % {
            "scale": formats.SCALE_LABELS[timescale.scale_of(state.span or ()) or "year"],
        }
    rows = shown_rows(state, data)
    if data.line is not None:
        scale = data.range.scale if data.range else timescale.SCALES[len(state.span or ())]
        context["line_expired"] = expired_note(data.line, scale)
        context["line"] = {
            "spec": data.line,
            "header": _line_header(data.line),
            "rows": rows["line"],
            "csv": context["csv_url"] + state.querystring(_table="line"),
        }
    if data.breakdown is not None and data.breakdown_table is not None:
        context["breakdown"] = _breakdown_context(state, data, context["csv_url"], rows["breakdown"])
    return context


def expired_note(spec: Spec, scale: str) -> str | None:
    """What the page says above a line of ``scale`` buckets with expired ones: how many, and why."""
    expired = len(spec.get("expired", []))
    if not expired:
        return None
    keep = conf.retention().get(scale)
    return ngettext(
        "%(count)s of these %(scales)s has expired: Redis keeps %(scales)s %(days)s days (STASTE_RETENTION). "
        "The cards and the breakdown still count it, from coarser buckets.",
        "%(count)s of these %(scales)s have expired: Redis keeps %(scales)s %(days)s days (STASTE_RETENTION). "
        "The cards and the breakdown still count them, from coarser buckets.",
        expired,
    ) % {"count": expired, "scales": SCALE_PLURALS[scale], "days": display((keep or 0) / 86400)}


def _line_header(spec: Spec) -> list[str]:
    """The line table's header, each value column with its unit: "average (ms)"."""
    header = table(spec)[0]
    units = spec.get("units", {})
    return [
        f"{cell} ({units[d['axis']]})" if d.get("axis") in units else cell
        for cell, d in zip(header, [{}, *spec["datasets"]], strict=True)
    ]


def shown_rows(state: PageState, data: PageData) -> dict[str, list[dict[str, Any]] | None]:
    """The rows of the page's two tables as shown: label, drill-down or filter link, numbers
    (and a class: a bucket still filling up is "staste-partial", an expired one "staste-expired")."""
    base = reverse("admin:staste_metrica", args=[state.metrica.name])
    out: dict[str, list[dict[str, Any]] | None] = {"line": None, "breakdown": None}
    if data.line is not None:
        drill = [
            base + state.replace(span=span).querystring() if span is not None else None for span in data.line_spans
        ]
        partial, expired = set(data.line.get("partial", [])), set(data.line.get("expired", []))
        lines = []
        for i, row in enumerate(table(data.line)[1]):
            gone = i in expired
            lines.append(
                {
                    "label": row[0],
                    "url": drill[i] if i < len(drill) else None,
                    "css": "staste-expired" if gone else "staste-partial" if i in partial else "",
                    "partial": i in partial,
                    "values": [_("expired") if gone else display(v) for v in row[1:]],
                }
            )
        out["line"] = lines
    if data.breakdown_table is not None:
        header, rows = table(data.breakdown_table)
        out["breakdown"] = [
            {
                "label": row[0],
                "url": breakdown_link(state, data, row[0]),
                "css": "",
                "values": [
                    f"{number_format(round(value, 1), 1)}%" if name == "share" and value is not None else display(value)
                    for name, value in zip(header[1:], row[1:], strict=True)
                ],
            }
            for row in rows
        ]
    return out


def breakdown_link(state: PageState, data: PageData, text: str) -> str | None:
    """Where a breakdown's slice, bar or row leads: the page filtered by its value.

    The axis then holds one value, so the breakdown moves on to the next axis still open (a
    hierarchical axis stays: its node's children are the next level).  None for the pooled
    rest and for values no filter can name.
    """
    metrica, by = state.metrica, state.by
    if by is None or text == REST_LABEL:
        return None
    value = next((option.value for option in data.options.get(by, []) if option.full_label == text), None)
    if value is None:
        return None
    chosen = state.with_filter(by, value)
    if not metrica.axes[by].hierarchical:
        chosen = chosen.replace(by=default_by(metrica, chosen.filters))
    return reverse("admin:staste_metrica", args=[metrica.name]) + chosen.querystring()


def _breakdown_context(
    state: PageState, data: PageData, csv_url: str, rows: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The breakdown's chart (each slice linked to its filter) and its table (every value,
    a column per measure, each measure's header re-sorting by it)."""
    metrica = state.metrica
    assert data.breakdown is not None and data.breakdown_table is not None
    base = reverse("admin:staste_metrica", args=[metrica.name])
    chart = {**data.breakdown, "links": [breakdown_link(state, data, text) for text in data.breakdown["labels"]]}
    full = data.breakdown_table
    header = table(full)[0]
    unit = full.get("units", {}).get("y", "")
    columns = []
    for name in header[1:]:
        shown_unit = unit if measures.is_measure(name) and measures.find(name).in_unit else ""  # (not the share)
        shown = measure_label(name)
        column: dict[str, Any] = {"name": name, "label": f"{shown} ({shown_unit})" if shown_unit else shown}
        if name == "share":
            column["label"] = _("share")
        if measures.is_measure(name):  # (not the share)
            column["url"] = base + state.replace(measure=name).querystring()
            column["active"] = name == state.measure
        columns.append(column)
    return {
        "spec": chart,
        "header_label": str(formats.SCALE_LABELS.get(header[0], header[0])),
        "columns": columns,
        "rows": rows or [],
        "csv": csv_url + state.querystring(_table="breakdown"),
        "pooled": chart.get("pooled", 0),
        "rest": REST_LABEL,
        "rest_share": f"{number_format(round(chart['shares'][-1], 1), 1)}%"
        if chart.get("pooled") and (chart.get("shares") or [None])[-1] is not None
        else "",
    }


def _summary_items(
    metrica: Metrica, summary: dict[str, Any], previous: dict[str, Any] | None = None, status: str = COMPLETE
) -> list[dict[str, Any]]:
    """The cards: {"key", "label", "value", "change"}, the change against the previous period
    (``change_label``) when it is compared.  Values carry the metrica's unit; a total that
    means nothing (a sum of durations) is no card.  A span Redis no longer holds reads
    "expired", one not begun "not begun": never a 0."""
    before = (previous or {}).get("summary")
    compared = before is not None
    before = before or {}
    unit = metrica.unit
    found: list[tuple[str, str, Any, Any, str]] = []
    if metrica.averaged:
        found += [
            ("count", _("Events"), summary.get("count"), before.get("count"), ""),
            ("average", _("Average"), summary.get("average"), before.get("average"), unit),
        ]
        earlier = before.get("percentiles") or {}
        for name, value in (summary.get("percentiles") or {}).items():
            found.append((name, name, value, earlier.get(name), unit))
    if "total" in summary:
        found.append(("total", _("Total"), summary.get("total"), before.get("total"), unit))
    if "uniques" in summary:  # distinct ids (uniques=True): no unit
        found.append(("uniques", _("Unique ids"), summary["uniques"], before.get("uniques"), ""))
    return [
        {
            "key": key,
            "label": text,
            "value": UNMEASURED[status] if status in UNMEASURED else with_unit(value, shown_unit),
            # (no change where the previous period has no such number)
            "change": change_label(compare.change(value, then), like(then, value), shown_unit)
            if compared and then is not None
            else None,
            "previous": with_unit(like(then, value), shown_unit) if compared and then is not None else None,
        }
        for key, text, value, then, shown_unit in found
    ]


def _unkept_reason(metrica: Metrica, fixed: set[str]) -> str | None:
    """Why a breakdown or filter is offered disabled: the combination of axes it needs is not
    kept (``Metrica(combinations=...)``); None when it is."""
    kept = metrica.combinations
    if kept.keeps(fixed):
        return None
    axes = " × ".join(name for name in metrica.axes if name in fixed)  # noqa: RUF001 (a multiplication)
    return _("%(metrica)s keeps no counters by %(axes)s together (%(setting)s)") % {
        "metrica": metrica.name,
        "axes": axes,
        "setting": kept.describe(),
    }


def _kept_sets(metrica: Metrica) -> dict[str, Any] | None:
    """The kept sets of axes, for admin.js to disable the breakdowns a new filter would exclude
    before the page asks for them (None when every combination is kept)."""
    kept = metrica.combinations
    if kept.everything:
        return None
    sets = [kept.label_names(mask) for mask in kept.maximal]
    hierarchical = [name for name, axis in metrica.axes.items() if axis.hierarchical]
    return {"sets": sets, "hierarchical": hierarchical}


def filter_chips(state: PageState) -> list[dict[str, str]]:
    """The active filters as removable chips: "gender: girl", with a cross, each linking to the page
    without it (the breakdown then back on the default axis unless one was chosen)."""
    base = reverse("admin:staste_metrica", args=[state.metrica.name])
    chips = []
    for name, value in state.filters.items():
        without = state.with_filter(name, None)
        if state.by == default_by(state.metrica, state.filters):
            without = without.replace(by=default_by(state.metrica, without.filters))
        chips.append(
            {
                "axis": name,
                "label": label(value),
                "url": base + without.querystring(),
                "remove": _("Remove the filter %(axis)s: %(value)s") % {"axis": name, "value": label(value)},
            }
        )
    return chips


def _filter_widgets(state: PageState, options: dict[str, list[Any]]) -> list[dict[str, Any]]:
    metrica = state.metrica
    base = reverse("admin:staste_metrica", args=[metrica.name])
    widgets = []
    for name, axis in metrica.axes.items():
        current = state.filters.get(name)
        widget: dict[str, Any] = {"name": name, "hierarchical": axis.hierarchical, "options": []}
        if current is None:
            widget["unkept"] = _unkept_reason(metrica, {*state.filters, name})
        if axis.hierarchical:
            path = tuple(current or ())
            widget["hidden"] = list(path)
            widget["crumbs"] = [
                {
                    "label": label(path[depth - 1]) if depth else _("All"),
                    "url": base + state.with_filter(name, path[:depth] or None).querystring(),
                    "current": depth == len(path),
                }
                for depth in range(len(path) + 1)
            ]
            widget["all_label"] = _("All under %(path)s") % {"path": label(path)} if path else _("All")
            widget["options"] = [{"param": o.param, "label": o.label, "selected": False} for o in options[name]]
        else:
            chosen = axis.check(current) if current is not None else None
            listed = [{"param": o.param, "label": o.label, "selected": o.param == chosen} for o in options[name]]
            if chosen is not None and not any(item["selected"] for item in listed):
                listed.insert(0, {"param": chosen, "label": label(current), "selected": True})
            widget["all_label"] = _("All")
            widget["options"] = listed
        widgets.append(widget)
    return widgets


def previous_span(span: timescale.Span) -> timescale.Span | None:
    """The span of the same scale just before ``span`` (None before the year 1)."""
    try:
        return timescale.truncate(timescale.start(span) - datetime.timedelta(minutes=1), timescale.scale_of(span))
    except (OverflowError, ValueError):
        return None


def time_zone_label() -> str:
    """The zone every time on the page is in, with its current offset: "Europe/Paris (UTC+01:00)"."""
    zone = conf.time_zone()
    offset = datetime.datetime.fromtimestamp(timescale.now(), zone).strftime("%z")
    if not offset or zone.key == "UTC":
        return zone.key
    return f"{zone.key} (UTC{offset[:3]}:{offset[3:]})"


def _time_widgets(
    state: PageState, base: str | None = None, extra: dict[str, str] | None = None, all_time: bool = True
) -> dict[str, Any]:
    """The time controls of a page: quick ranges, calendar spans, scales, steps and crumbs.

    ``base`` is the page's path (a metrica's page by default), ``extra`` parameters every link
    keeps (the Performance pages' sort and view), ``all_time`` whether "All time" is offered.
    """
    metrica = state.metrica
    base = base or reverse("admin:staste_metrica", args=[metrica.name])
    extra = extra or {}
    crumbs = []
    now = conf.local()
    steps: dict[str, Any] = {}
    if state.span is not None:
        spans = [state.span[:depth] for depth in range(len(state.span) + 1)]
        crumbs = [
            {"label": span_label(span), "url": base + state.replace(span=span).querystring(**extra)}
            for span in spans[0 if all_time else 1 :]
        ]
        if state.span:
            before = previous_span(state.span)
            after = timescale.following(state.span) if timescale.start(state.span).year < timescale.MAX_YEAR else None
            steps = {
                "previous": base + state.replace(span=before).querystring(**extra) if before else None,
                "next": base + state.replace(span=after).querystring(**extra)
                if after and timescale.start(after) <= now
                else None,
                "previous_label": span_label(before) if before else "",
                "next_label": span_label(after) if after else "",
            }
    if state.last:
        steps = range_steps(state, base, extra, now)
    calendar_links = []
    for text, scale in ((_("Today"), "day"), (_("This month"), "month"), (_("This year"), "year")):
        if scale in metrica.date_scales:
            span = timescale.truncate(now, scale)
            calendar_links.append(
                {
                    "label": text,
                    "url": base + state.replace(span=span).querystring(**extra),
                    "active": state.span == span,
                }
            )
    if all_time:
        calendar_links.append(
            {
                "label": _("All time"),
                "url": base + state.replace(span=()).querystring(**extra),
                "active": state.span == (),
            }
        )
    found = state.range()
    # By week a range reads whole ISO weeks ("30 days": 5 weeks, 35 days): its chip is no
    # longer what is shown, and the dates say what is.
    widened = found is not None and found.scale == timescale.WEEK and range_scale(state.last or "") != found.scale
    ranges = [
        {
            "label": range_label(text),
            "url": base + state.replace(last=text).querystring(**extra),
            "active": state.last == text and not widened and state.until is None,
        }
        for text in quick_ranges(metrica)
    ]
    if state.last and state.last not in quick_ranges(metrica):
        ranges.append({"label": range_label(state.last), "url": base + state.querystring(**extra), "active": True})
    own = range_scale(state.last) if state.last else None
    scales = [
        {
            "label": BY_SCALE[scale],
            "url": base + state.replace(scale=None if scale == own else scale).querystring(**extra),
            "active": found is not None and found.scale == scale,
        }
        for scale in state.scales()
    ]
    return {
        "crumbs": crumbs,
        "steps": steps,
        "calendar": calendar_links,
        "ranges": ranges,
        "zone": time_zone_label(),
        "scales": scales if len(scales) > 1 else [],
        "since": bucket_label(found.since, found.scale) if found else None,
        "until": bucket_label(found.until, found.scale) if found else None,
        "note": weeks_note(found) if widened and found is not None else None,
    }


def range_steps(state: PageState, base: str, extra: dict[str, str], now: datetime.datetime) -> dict[str, Any]:
    """The previous and next steps of a quick range: the same number of buckets just before it, or just after it
    (up to now, where the range is the plain quick range again)."""
    found = state.range()
    assert found is not None and state.last is not None
    unit = range_scale(state.last)
    written = "day" if unit == timescale.WEEK else unit  # (a span names no week: its Sunday)
    before = timescale.truncate(found.since - datetime.timedelta(minutes=1), written)
    count = int(state.last.split()[-2]) if len(state.last.split()) > 1 else 1
    after_moment = shift(timescale.start(timescale.truncate(found.until, written)), unit, count)
    after = timescale.truncate(after_moment, written) if after_moment is not None else None
    latest = timescale.truncate(now, written)
    label = range_label(state.last)

    def link(until: timescale.Span | None) -> str:
        chosen = dataclasses.replace(state, until=until)
        return base + chosen.querystring(**extra)

    return {
        "previous": link(before),
        "next": (link(None if after >= latest else after) if after is not None and state.until is not None else None),
        "previous_label": ended(label, bucket_label(timescale.start(before), written)),
        "next_label": label
        if after is None or after >= latest
        else ended(label, bucket_label(timescale.start(after), written)),
    }


def ended(label: str, when: str) -> str:
    """A quick range that ends earlier than now: "Last 30 days, until 2026-11-05"."""
    return _("%(range)s, until %(when)s") % {"range": label, "when": when}


def shift(moment: datetime.datetime, unit: str, count: int) -> datetime.datetime | None:
    """``moment`` ``count`` units later (months and years by the calendar); None past year 9999."""
    try:
        if unit == "year":
            return moment.replace(year=moment.year + count)
        if unit == "month":
            months = moment.year * 12 + moment.month - 1 + count
            return moment.replace(year=months // 12, month=months % 12 + 1)
        return moment + datetime.timedelta(**{f"{unit}s": count})
    except (OverflowError, ValueError):
        return None


def weeks_note(found: Any) -> str:
    """What a range drawn by week covers: whole ISO weeks, Monday to Sunday, longer than asked."""
    first = timescale.start(timescale.week_of(found.since))
    last = timescale.start(timescale.week_of(found.until)) + datetime.timedelta(days=6)
    days = (last - first).days + 1
    return _("By week: whole weeks from Monday %(first)s to Sunday %(last)s, %(days)s days.") % {
        "first": first.strftime("%Y-%m-%d"),
        "last": last.strftime("%Y-%m-%d"),
        "days": days,
    }
