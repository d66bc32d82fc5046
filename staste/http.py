"""Reading a request's query string without tripping over one Django refuses to parse."""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, QueryDict


def unreadable_query(request: HttpRequest) -> str | None:
    """Why ``request.GET`` cannot be read (too many fields...), or None when it can.

    Why: Django raises on every access to such a ``request.GET``, and on Django 4.2 its own
    error reporting reads it again while logging the 400, turning it into a 500.  A view that
    asks first answers 400 itself; ``request.GET`` then reads as empty for whatever runs after.
    """
    try:
        request.GET  # noqa: B018 - parsed (and cached) on first access
    except SuspiciousOperation as exc:
        request.GET = QueryDict()
        return f"bad query string: {exc}"
    return None
