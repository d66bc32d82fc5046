"""A metrica's page (``/admin/staste/<name>/``) and its JSON and CSV exports."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.dates import MONTHS

from staste import conf, timescale
from staste.charts.spec import MEASURES, table
from staste.formats import bucket_label, range_scale
from staste.formats import value_label as label
from staste.http import csv_response, json_response
from staste.metrica import Metrica
from staste.registration import NotRegistered, registry

from . import compare
from .base import READ_FAILURES, admin_context, redis_failure
from .reading import PageData, axis_options, read_page
from .state import BadRequest, PageState, format_span, quick_ranges

TEMPLATE = "staste/admin/metrica.html"
TABLES = ("line", "breakdown")
#: Longest error message shown (the values in it come from the query string).
MAX_MESSAGE = 500


def get_metrica(name: str) -> Metrica:
    try:
        return registry.get(name)
    except NotRegistered:
        raise Http404(f"No metrica named {name!r} is registered.") from None


def display(number: Any) -> str:
    """A number as the page shows it (exports keep full precision)."""
    if number is None:
        return "—"
    if isinstance(number, int) or (isinstance(number, float) and number.is_integer() and abs(number) < 1e15):
        return f"{int(number):,}"
    if abs(number) >= 0.01:
        return f"{number:,.2f}"
    return f"{number:.3g}"


def _message(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def _read(request: HttpRequest, metrica: Metrica, ignore: tuple[str, ...] = ()) -> tuple[Any, Any, str | None, int]:
    """(state, data, error, status) of a request: 400 for a bad query string, data None on a Redis failure."""
    try:
        state = PageState.from_params(metrica, request.GET, ignore=ignore)
    except BadRequest as exc:
        return None, None, _message(exc), 400
    try:
        return state, read_page(state), None, 200
    except READ_FAILURES as exc:
        return state, None, redis_failure(exc), 200
    except (TypeError, ValueError) as exc:  # e.g. STASTE_MAX_BUCKETS lower than the range
        return state, None, _message(exc), 400


def metrica_page(request: HttpRequest, site: AdminSite, name: str) -> HttpResponse:
    metrica = get_metrica(name)
    state, data, error, status = _read(request, metrica)
    context = admin_context(request, site, title=metrica.title, metrica=metrica, state=state)
    if state is None:
        context["bad_request"] = error
    else:
        if status == 400:
            context["bad_request"] = error
        elif data is None:
            context["redis_error"] = error
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
        return HttpResponse(f"bad _table: use one of {', '.join(TABLES)}", status=400, content_type="text/plain")
    _, data, error, status = _read(request, metrica, ignore=("_table",))
    if data is None:
        return HttpResponse(error, status=400 if status == 400 else 503, content_type="text/plain; charset=utf-8")
    spec = data.line if which == "line" else data.breakdown
    if spec is None:
        return HttpResponse(f"this view has no {which} table", status=400, content_type="text/plain")
    header, rows = table(spec)
    return csv_response([header, *rows], f"{metrica.name}-{which}.csv")


def export_data(state: PageState, data: PageData) -> dict[str, Any]:
    """The JSON export: the state, the summary, and both charts as drawn (their tables included)."""
    metrica = state.metrica
    filters = {name: list(value) if isinstance(value, tuple) else value for name, value in state.filters.items()}
    out: dict[str, Any] = {
        "metrica": metrica.name,
        "title": metrica.title,
        "filters": filters,
        "span": format_span(state.span) if state.span is not None else None,
        "last": state.last,
        "since": data.range.since if data.range else None,
        "until": data.range.until if data.range else None,
        "time_zone": conf.time_zone().key,
        "by": state.by,
        "measure": state.measure,
        "summary": data.summary,
        "previous": data.previous,
        # What the page shows, formatted as shown (its live refresh puts these in place).
        "shown": {
            "cards": _summary_items(metrica, data.summary, data.previous),
            "since": bucket_label(data.range.since, data.range.scale) if data.range else None,
            "until": bucket_label(data.range.until, data.range.scale) if data.range else None,
            **shown_rows(state, data),
        },
    }
    for name in TABLES:
        spec = data.line if name == "line" else data.breakdown
        if spec is not None:
            header, rows = table(spec)
            out[name] = {"chart": spec, "header": header, "rows": rows}
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
        "labels": {"live": "live", "paused": "live · paused", "failed": "live · no answer"},
    }


# -- the page's widgets ----------------------------------------------------------------------


def span_label(span: timescale.Span) -> str:
    scale = timescale.scale_of(span)
    if scale is None:
        return "All time"
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
        "time": _time_widgets(state),
        "by_choices": [(name, name == state.by) for name in metrica.axes],
        "measure_choices": [(m, m == state.measure) for m in MEASURES] if metrica.averaged else [],
        "hidden": [(key, value) for key, value in state.params() if key in ("_span", "_last", "_scale")],
        "self_url": base + state.querystring(),
        "json_url": reverse("admin:staste_metrica_json", args=[metrica.name]) + state.querystring(),
        "csv_url": reverse("admin:staste_metrica_csv", args=[metrica.name]),
        "querystring": state.querystring()[1:],
        "compare": {"on": state.compare, "offered": state.span != ()},
        "live": live_config(reverse("admin:staste_metrica_json", args=[metrica.name]) + state.querystring())
        if state.includes_now()
        else None,
    }
    if data is None:
        return context
    context["summary"] = _summary_items(metrica, data.summary, data.previous)
    if data.previous is not None:
        context["compare"]["unavailable"] = data.previous["unavailable"]
    rows = shown_rows(state, data)
    if data.line is not None:
        context["line"] = {
            "spec": data.line,
            "header": table(data.line)[0],
            "rows": rows["line"],
            "csv": context["csv_url"] + state.querystring(_table="line"),
        }
    if data.breakdown is not None:
        context["breakdown"] = {
            "spec": data.breakdown,
            "header": table(data.breakdown)[0],
            "rows": rows["breakdown"],
            "csv": context["csv_url"] + state.querystring(_table="breakdown"),
        }
    return context


def shown_rows(state: PageState, data: PageData) -> dict[str, list[dict[str, Any]] | None]:
    """The rows of the page's two tables as shown: label, drill-down or filter link, numbers."""
    base = reverse("admin:staste_metrica", args=[state.metrica.name])
    out: dict[str, list[dict[str, Any]] | None] = {"line": None, "breakdown": None}
    if data.line is not None:
        drill = [base + state.replace(span=span).querystring() for span in data.line_spans]
        out["line"] = [
            {"label": row[0], "url": drill[i] if i < len(drill) else None, "values": [display(v) for v in row[1:]]}
            for i, row in enumerate(table(data.line)[1])
        ]
    if data.breakdown is not None:
        by_label = {option.full_label: option.value for option in data.options.get(state.by or "", [])}
        out["breakdown"] = [
            {
                "label": row[0],
                "url": base + state.with_filter(state.by, by_label[row[0]]).querystring()
                if row[0] in by_label and state.by is not None
                else None,
                "values": [display(v) for v in row[1:]],
            }
            for row in table(data.breakdown)[1]
        ]
    return out


def _summary_items(
    metrica: Metrica, summary: dict[str, Any], previous: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The cards: {"key", "label", "value", "change"}, the change against the previous period
    (``change_label``) when it is compared."""
    before = (previous or {}).get("summary")
    compared = before is not None
    before = before or {}
    found: list[tuple[str, str, Any, Any]] = []
    if metrica.averaged:
        found += [
            ("count", "Events", summary.get("count"), before.get("count")),
            ("average", "Average", summary.get("average"), before.get("average")),
        ]
        earlier = before.get("percentiles") or {}
        for name, value in (summary.get("percentiles") or {}).items():
            found.append((name, name, value, earlier.get(name)))
    found.append(("total", "Total", summary.get("total"), before.get("total")))
    return [
        {
            "key": key,
            "label": text,
            "value": display(value),
            "change": change_label(compare.change(value, then), like(then, value)) if compared else None,
            "previous": display(like(then, value)) if compared else None,
        }
        for key, text, value, then in found
    ]


def change_label(percent: float | None, previous: Any = None) -> dict[str, str]:
    """How a change in percent is shown: ``{"text": "▲ 12%", "direction": "up", "versus": "vs 98"}``.

    Below 10 % one decimal is kept (``▼ 3.4%``); no change, or nothing to compare with
    (the previous number was 0), reads as such.  ``versus`` names the previous number.
    """
    versus = f"vs {display(previous)}"
    if percent is None:
        return {"text": "—", "direction": "none", "versus": versus}
    shown = f"{abs(percent):,.0f}" if abs(percent) >= 10 else f"{abs(percent):.1f}"
    if float(shown.replace(",", "")) == 0:
        return {"text": "= 0%", "direction": "flat", "versus": versus}
    arrow, direction = ("▲", "up") if percent > 0 else ("▼", "down")
    return {"text": f"{arrow} {shown}%", "direction": direction, "versus": versus}


def like(previous: Any, current: Any) -> Any:
    """``previous`` shown as ``current`` is: a prorated count (11.6 events by now yesterday)
    is compared with a whole one, so it is shown whole too."""
    if isinstance(current, int) and isinstance(previous, float):
        return round(previous)
    return previous


def _filter_widgets(state: PageState, options: dict[str, list[Any]]) -> list[dict[str, Any]]:
    metrica = state.metrica
    base = reverse("admin:staste_metrica", args=[metrica.name])
    widgets = []
    for name, axis in metrica.axes.items():
        current = state.filters.get(name)
        widget: dict[str, Any] = {"name": name, "hierarchical": axis.hierarchical, "options": []}
        if axis.hierarchical:
            path = tuple(current or ())
            widget["hidden"] = list(path)
            widget["crumbs"] = [
                {
                    "label": label(path[depth - 1]) if depth else "All",
                    "url": base + state.with_filter(name, path[:depth] or None).querystring(),
                    "current": depth == len(path),
                }
                for depth in range(len(path) + 1)
            ]
            widget["all_label"] = f"All under {label(path)}" if path else "All"
            widget["options"] = [{"param": o.param, "label": o.label, "selected": False} for o in options[name]]
        else:
            chosen = axis.check(current) if current is not None else None
            listed = [{"param": o.param, "label": o.label, "selected": o.param == chosen} for o in options[name]]
            if chosen is not None and not any(item["selected"] for item in listed):
                listed.insert(0, {"param": chosen, "label": label(current), "selected": True})
            widget["all_label"] = "All"
            widget["options"] = listed
        widgets.append(widget)
    return widgets


def _time_widgets(state: PageState) -> dict[str, Any]:
    metrica = state.metrica
    base = reverse("admin:staste_metrica", args=[metrica.name])
    crumbs = []
    if state.span is not None:
        spans = [state.span[:depth] for depth in range(len(state.span) + 1)]
        crumbs = [{"label": span_label(span), "url": base + state.replace(span=span).querystring()} for span in spans]
    now = conf.local()
    calendar_links = []
    for text, scale in (("Today", "day"), ("This month", "month"), ("This year", "year")):
        if scale in metrica.date_scales:
            span = timescale.truncate(now, scale)
            calendar_links.append(
                {"label": text, "url": base + state.replace(span=span).querystring(), "active": state.span == span}
            )
    calendar_links.append(
        {"label": "All time", "url": base + state.replace(span=()).querystring(), "active": state.span == ()}
    )
    ranges = [
        {"label": f"Last {text}", "url": base + state.replace(last=text).querystring(), "active": state.last == text}
        for text in quick_ranges(metrica)
    ]
    if state.last and state.last not in quick_ranges(metrica):
        ranges.append({"label": f"Last {state.last}", "url": base + state.querystring(), "active": True})
    found = state.range()
    own = range_scale(state.last) if state.last else None
    scales = [
        {
            "label": f"by {scale}",
            "url": base + state.replace(scale=None if scale == own else scale).querystring(),
            "active": found is not None and found.scale == scale,
        }
        for scale in state.scales()
    ]
    return {
        "crumbs": crumbs,
        "calendar": calendar_links,
        "ranges": ranges,
        "scales": scales if len(scales) > 1 else [],
        "since": bucket_label(found.since, found.scale) if found else None,
        "until": bucket_label(found.until, found.scale) if found else None,
    }
