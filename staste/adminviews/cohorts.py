"""The funnel and retention pages of the staste admin section (metricas made with ``users=True``).

Both read their choices from the query string, so a page's URL is the saved report
(``/admin/staste/funnel/?step=signed_up&step=paid&since=2026-04-01&until=2026-04-30&within=7``).
A funnel's drop-off links to the admin changelist of ``AUTH_USER_MODEL`` filtered to exactly
those users (``?pk__in=...``, up to ``DRILL_DOWN_LIMIT`` ids), or past that to a CSV of their
ids; both only for staff who may view users (``<app>.view_<model>``).  While a range reaches
today, the page refreshes itself (staste/cohorts.js fetches it again, every
``STASTE_LIVE_INTERVAL`` seconds, and swaps its report in place).
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib.admin import AdminSite
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from staste import conf, formats
from staste.adminviews.base import READ_FAILURES, admin_context, redis_failure
from staste.cohorts import Funnel, RangeNotKept, TooManyUsers, funnel, layout, reading, retention
from staste.cohorts.errors import NotKeptForUsers
from staste.registration import registry

#: Most ids a drill-down link carries in ``?pk__in=`` (a URL of a few KB: every browser and
#: server takes it); past it the page offers a CSV of the ids.
DRILL_DOWN_LIMIT = 200
#: Most ids the CSV of a drop-off holds.
CSV_LIMIT = reading.MAX_IDS
DEFAULT_DAYS = 30
#: Step pickers a funnel page shows.
STEP_SLOTS = 5


def number(value: int) -> str:
    return number_format(value, force_grouping=True)


def percent(share: float | None) -> str:
    """A share as the page writes it (one decimal), an em dash when there is none."""
    return "\u2014" if share is None else number_format(round(share * 100, 1), 1) + "%"


def users_metricas() -> list[Any]:
    """The registered metricas made with ``users=True``, by title."""
    return sorted((m for m in registry if m.keeps_users), key=lambda m: str(m.title).lower())


def step_choices() -> list[tuple[str, str]]:
    """(value, label) of every step a picker offers: each metrica, and each value of its users axes."""
    found = []
    for metrica in users_metricas():
        found.append((metrica.name, str(metrica.title)))
        for axis in metrica.users_axes:
            for choice in metrica.axes[axis].choices or ():
                found.append((f"{metrica.name}:{axis}={choice}", f"{metrica.title} ({axis}={choice})"))
    return found


def parse_step(text: str) -> Any:
    """A step from its query-string value (``name`` or ``name:axis=value``)."""
    name, _sep, condition = text.partition(":")
    metrica = registry.get(name) if name in registry else None
    if metrica is None or not metrica.keeps_users:
        raise ValueError(_("%(name)s is not a metrica with users.") % {"name": name})
    if not condition:
        return metrica
    axis, _eq, value = condition.partition("=")
    if axis not in metrica.users_axes:
        raise ValueError(_("%(name)s keeps no users per %(axis)s.") % {"name": name, "axis": axis})
    return metrica.filter(**{axis: value})


def parse_day(text: str | None, default: datetime.date) -> datetime.date:
    if not text:
        return default
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(_("%(value)s is not a date (YYYY-MM-DD).") % {"value": text}) from None


def may_view_users(request: HttpRequest) -> bool:
    """Whether the staff user may see the users a drill-down lists (the user model's view permission)."""
    model = get_user_model()
    return request.user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")


def changelist_url(ids: list[Any]) -> str | None:
    model = get_user_model()
    try:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    except NoReverseMatch:
        return None
    return url + "?" + urlencode({"pk__in": ",".join(str(pk) for pk in ids)})


def _range(request: HttpRequest) -> tuple[datetime.date, datetime.date]:
    today = conf.local().date()
    until = parse_day(request.GET.get("until"), today)
    since = parse_day(request.GET.get("since"), until - datetime.timedelta(days=DEFAULT_DAYS - 1))
    return since, until


def _live(until: datetime.date) -> dict[str, Any] | None:
    interval = conf.get("STASTE_LIVE_INTERVAL")
    if not interval or interval <= 0 or until < conf.local().date():
        return None
    return {"interval": interval, "labels": {"live": _("live"), "paused": _("live · paused")}}


def funnel_page(request: HttpRequest, site: AdminSite, unreadable: str | None = None) -> HttpResponse:
    """The funnel page: steps, a range and ``within``; bars with conversion and drop-off."""
    chosen = request.GET.getlist("step")
    choices = step_choices()
    picked = [*chosen, *[""] * (STEP_SLOTS - len(chosen))][: max(STEP_SLOTS, len(chosen))]
    slots = [
        {"number": at + 1, "options": [(value, label, value == text) for value, label in choices]}
        for at, text in enumerate(picked)
    ]
    context: dict[str, Any] = {"choices": choices, "slots": slots, "within": request.GET.get("within", "")}
    status = 200
    report = None
    try:
        since, until = _range(request)
        context.update(since=since.isoformat(), until=until.isoformat(), live=_live(until))
        within_text = request.GET.get("within", "").strip()
        within = int(within_text) if within_text.isdigit() else None
        if within_text and within is None:
            raise ValueError(_("Within must be a whole number of days."))
        if unreadable:
            raise ValueError(unreadable)
        if len(chosen) >= 2:
            report = funnel([parse_step(text) for text in chosen], since, until, within=within)
    except (ValueError, TypeError, NotKeptForUsers, RangeNotKept) as exc:
        context["bad_request"] = str(exc)
        status = 400
    except READ_FAILURES as exc:
        context["redis_error"] = redis_failure(exc)
    if report is not None:
        context["rows"] = _funnel_rows(request, report)
    context = admin_context(request, site, title=_("Funnel"), **context)
    return TemplateResponse(request, "staste/admin/funnel.html", context, status=status)


def _funnel_rows(request: HttpRequest, report: Funnel) -> list[dict[str, Any]]:
    may_drill = may_view_users(request)
    first = report.counts[0] or 0
    rows = []
    for step in report:
        row: dict[str, Any] = {
            "label": step.label,
            "count": number(step.count),
            "width": round(100 * step.count / first, 1) if first else 0,
            "conversion": percent(step.conversion),
            "step_conversion": percent(step.step_conversion) if step.index else "",
            "lost": number(step.lost) if step.index else "",
            "lost_share": percent(1 - step.step_conversion) if step.index and step.step_conversion is not None else "",
        }
        if may_drill and step.index and step.lost:
            try:
                row["drill"] = changelist_url(step.lost_ids(DRILL_DOWN_LIMIT))
            except TooManyUsers:
                query = request.GET.copy()
                query["lost"] = str(step.index)
                row["csv"] = reverse("admin:staste_funnel_csv") + "?" + query.urlencode()
        rows.append(row)
    return rows


def funnel_csv(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """The ids of the users lost at one step (``?lost=<index>``, with the page's query), as CSV."""
    if not may_view_users(request):
        return HttpResponse(_("You may not view users."), status=403, content_type="text/plain; charset=utf-8")
    try:
        since, until = _range(request)
        within_text = request.GET.get("within", "").strip()
        within = int(within_text) if within_text.isdigit() else None
        report = funnel([parse_step(text) for text in request.GET.getlist("step")], since, until, within=within)
        index = int(request.GET.get("lost", ""))
        if not 1 <= index < len(report):
            raise ValueError(_("No such step."))
        ids = report[index].lost_ids(CSV_LIMIT)
    except (ValueError, TypeError, NotKeptForUsers, RangeNotKept, TooManyUsers) as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    writer = formats.csv_writer(response)
    writer.writerow(["id"])
    writer.writerows([formats.csv_cell(str(pk))] for pk in ids)
    response["Content-Disposition"] = 'attachment; filename="lost-users.csv"'
    return response


def retention_page(request: HttpRequest, site: AdminSite, unreadable: str | None = None) -> HttpResponse:
    """The retention page: a cohort x period table, shaded by share."""
    metricas = users_metricas()
    names = [m.name for m in metricas]
    first = request.GET.get("first") or (names[0] if names else "")
    then = request.GET.get("then") or (names[1] if len(names) > 1 else first)
    period = request.GET.get("period", layout.WEEK)
    periods_text = request.GET.get("periods", "8")
    context: dict[str, Any] = {
        "choices": [(m.name, str(m.title)) for m in metricas],
        "first": first,
        "then": then,
        "period": period,
        "periods": periods_text,
        "period_choices": [
            (layout.DAY, pgettext("scale", "day")),
            (layout.WEEK, pgettext("scale", "week")),
            (layout.MONTH, pgettext("scale", "month")),
        ],
    }
    status = 200
    try:
        until = parse_day(request.GET.get("until"), conf.local().date())
        context.update(until=until.isoformat(), live=_live(until))
        if unreadable:
            raise ValueError(unreadable)
        if not periods_text.isdigit():
            raise ValueError(_("Periods must be a whole number."))
        if first and then:
            table = retention(parse_step(first), parse_step(then), period, int(periods_text), until=until)
            width = max((len(row.returned) for row in table), default=0)
            context["headers"] = list(range(width))
            context["rows"] = [
                {
                    "start": row.start.isoformat(),
                    "size": number(row.size),
                    "cells": [
                        {"count": number(count), "share": percent(share), "shade": _shade(share)}
                        for count, share in zip(row.returned, row.shares, strict=True)
                    ],
                }
                for row in table
            ]
    except (ValueError, TypeError, NotKeptForUsers, RangeNotKept) as exc:
        context["bad_request"] = str(exc)
        status = 400
    except READ_FAILURES as exc:
        context["redis_error"] = redis_failure(exc)
    context = admin_context(request, site, title=_("Retention"), **context)
    return TemplateResponse(request, "staste/admin/retention.html", context, status=status)


def _shade(share: float | None) -> int:
    """A cell's shade, 0 to 10 (a CSS class: the theme picks the colours)."""
    return 0 if not share else max(1, min(10, round(share * 10)))
