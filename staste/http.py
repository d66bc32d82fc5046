"""HTTP helpers of staste's views: reading a query string Django refuses to parse, and the
JSON and CSV answers of the admin and the chart views."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.translation import gettext as _

from staste import formats


def unreadable_query(request: HttpRequest) -> str | None:
    """Why ``request.GET`` cannot be read (too many fields...), or None when it can.

    Why: Django raises on every access to such a ``request.GET``, and on Django 4.2 its own
    error reporting reads it again while logging the 400, turning it into a 500.  A view that
    asks first answers 400 itself; ``request.GET`` then reads as empty for whatever runs after.
    """
    try:
        request.GET  # noqa: B018 - parsed (and cached) on first access
    except TooManyFieldsSent:
        request.GET = QueryDict()
        return _("bad query string: it has more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS allows (%(count)s)") % {
            "count": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        }
    except SuspiciousOperation as exc:
        request.GET = QueryDict()
        return _("bad query string: %(detail)s") % {"detail": exc}
    return None


def json_response(data: Any, status: int = 200) -> HttpResponse:
    """``data`` as inert JSON (see :func:`staste.formats.inert_json`), never sniffed as anything else."""
    response = HttpResponse(formats.inert_json(data), content_type="application/json", status=status)
    response["X-Content-Type-Options"] = "nosniff"
    return response


def csv_response(rows: Iterable[Sequence[Any]], filename: str) -> HttpResponse:
    """``rows`` (the header first) as a CSV download (see :func:`staste.formats.csv_writer`)."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    writer = formats.csv_writer(response)
    for row in rows:
        writer.writerow([formats.csv_cell(cell) for cell in row])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
