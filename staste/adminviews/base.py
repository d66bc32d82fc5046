"""What every staste admin view shares: the permission, the admin's context, Redis failures."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django.contrib.admin import AdminSite
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from staste import connection, query
from staste.exceptions import RedisUnavailable
from staste.http import unreadable_query

PERMISSION = "staste.view_metrica"

T = TypeVar("T")


def protected(site: AdminSite, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` for active staff (others get the admin login) with ``staste.view_metrica`` (else 403).

    The admin's own wrapper also makes the response uncacheable and CSRF-protected.
    """

    @functools.wraps(view)
    def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        problem = unreadable_query(request)
        if problem:
            return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
        with query.budget(setting="STASTE_MAX_QUERY_WORK"):  # every read of the page, together
            return view(request, site, *args, **kwargs)

    return site.admin_view(inner)


def admin_context(request: HttpRequest, site: AdminSite, **extra: Any) -> dict[str, Any]:
    """The admin's context (sidebar, theme, user links) plus staste's own."""
    return {
        **site.each_context(request),
        "app_label": "staste",
        "redis_where": connection.describe(),
        **extra,
    }


def redis_failure(exc: BaseException) -> str:
    """What a page says when Redis cannot answer: which URL failed, and why."""
    if isinstance(exc, (RedisUnavailable, ImproperlyConfigured)):
        return str(exc)
    return f"Redis at {connection.describe()} answered with an error: {exc}"


#: What reading Redis may raise that a page reports instead of failing.
READ_FAILURES = (RedisUnavailable, ImproperlyConfigured, redis.RedisError)
