"""CSV and JSON of what a metrica page shows.

CSV cells that a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: axis values are user data) get a leading ``'``.  JSON is
written with ``<``, ``>`` and ``&`` escaped, like Django's ``json_script``, so it is inert
even if a browser is tricked into reading it as HTML.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse

from staste.charts.spec import Spec, table

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_JSON_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(spec: Spec) -> str:
    header, rows = table(spec)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_cell(cell) for cell in header])
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return out.getvalue()


def csv_response(spec: Spec, filename: str) -> HttpResponse:
    response = HttpResponse(csv_text(spec), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def json_text(data: Any) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False).translate(_JSON_ESCAPES)


def json_response(data: Any, status: int = 200) -> HttpResponse:
    response = HttpResponse(json_text(data), content_type="application/json", status=status)
    response["X-Content-Type-Options"] = "nosniff"
    return response
