"""What every staste admin view shares: the permission, the admin's context, Redis failures."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django.contrib.admin import AdminSite
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from staste import connection, query
from staste.exceptions import RedisUnavailable
from staste.http import json_response, unreadable_query

PERMISSION = "staste.view_metrica"
FORBIDDEN_TEMPLATE = "staste/admin/forbidden.html"

T = TypeVar("T")


def protected(
    site: AdminSite, view: Callable[..., HttpResponse], *, page: bool = False, answer: str = "html"
) -> Callable[..., HttpResponse]:
    """``view`` for active staff (others get the admin login) with ``staste.view_metrica`` (else 403).

    The 403 is a page of the admin that names the missing permission (a bare "403 Forbidden"
    leaves a staff user guessing), returned rather than raised, so no traceback is logged for
    what is a plain refusal.  A query string Django cannot even parse is a 400: for a ``page``
    the view itself shows it (``unreadable=``), around its controls.  The admin's own wrapper
    also makes the response uncacheable and CSRF-protected.  ``answer`` is what the view
    answers in ("html", "json", "csv"): a script reading ``data.json`` gets its 403 as JSON
    (``{"error": ...}``), a CSV download as plain text.
    """

    @functools.wraps(view)
    def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm(PERMISSION):
            if answer == "json":
                return json_response({"error": str(forbidden_message())}, status=403)
            if answer == "csv":
                return HttpResponseForbidden(forbidden_message(), content_type="text/plain; charset=utf-8")
            return forbidden(request, site)
        problem = unreadable_query(request)
        if problem and page:  # a page keeps its controls around the message (GET now reads empty)
            kwargs["unreadable"] = problem
        elif problem:
            return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
        with query.budget(setting="STASTE_MAX_QUERY_WORK"):  # every read of the page, together
            return view(request, site, *args, **kwargs)

    return site.admin_view(inner)


def forbidden_message() -> str:
    """Why a staff user is refused, for an answer that is no page."""
    return _("You need the permission %(permission)s to read statistics.") % {"permission": PERMISSION}


def forbidden(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """The admin-styled 403 of a staff user without ``staste.view_metrica``."""
    app_label, codename = PERMISSION.split(".")
    try:
        name = Permission.objects.get(content_type__app_label=app_label, codename=codename).name
    except Permission.DoesNotExist:
        name = ""
    context = admin_context(request, site, title=_("Permission needed"), permission=PERMISSION, permission_name=name)
    return TemplateResponse(request, FORBIDDEN_TEMPLATE, context, status=403)


def admin_context(request: HttpRequest, site: AdminSite, **extra: Any) -> dict[str, Any]:
    """The admin's context (sidebar, theme, user links) plus staste's own."""
    return {
        **site.each_context(request),
        "app_label": "staste",
        "redis_where": connection.describe(),
        # What staste/charts.js writes itself, in the page's language.
        "staste_words": {"partial": _("partial: still counting"), "events": _("events")},
        **extra,
    }


def redis_failure(exc: BaseException) -> str:
    """What a page says when Redis cannot answer: which URL failed, and why."""
    if isinstance(exc, RedisUnavailable):
        # The cause is Redis' or the operating system's own words: kept as they are.
        return _("Statistics could not reach Redis at %(where)s: %(cause)s") % {"where": exc.where, "cause": exc.cause}
    if isinstance(exc, ImproperlyConfigured):
        # The setting at fault and the detail are in the error's own (English) words.
        return _("Statistics cannot be read: staste's settings are wrong: %(detail)s") % {"detail": exc}
    return _("Redis at %(where)s answered with an error: %(error)s") % {"where": connection.describe(), "error": exc}


#: What reading Redis may raise that a page reports instead of failing.
READ_FAILURES = (RedisUnavailable, ImproperlyConfigured, redis.RedisError)
