"""The views the middleware and performance-insight benchmarks request."""

from __future__ import annotations

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path

#: The ORM queries of the performance-insight view, and the raw statements of the view that
#: measures what one statement costs (benchmarks/insight.py).
QUERIES = 10
STATEMENTS = 100


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello, world", content_type="text/plain")


def ten(request: HttpRequest, using: str = "default") -> HttpResponse:
    """Ten ORM queries (the same SQL text, another parameter each time)."""
    found = sum(ContentType.objects.using(using).filter(pk=number + 1).exists() for number in range(QUERIES))
    return HttpResponse(f"{found} of {QUERIES}", content_type="text/plain")


def statements(request: HttpRequest) -> HttpResponse:
    """A hundred cheap statements through Django's cursor: what each costs shows above the noise."""
    with connection.cursor() as cursor:
        for number in range(STATEMENTS):
            cursor.execute("SELECT %s", [number])
    return HttpResponse(f"{STATEMENTS} statements", content_type="text/plain")


def zero(request: HttpRequest) -> HttpResponse:
    """The same response without a query."""
    return HttpResponse(f"0 of {QUERIES}", content_type="text/plain")


urlpatterns: list[URLPattern | URLResolver] = [
    path("hello/", hello, name="hello"),
    path("ten/", ten, name="ten"),
    path("ten-prometheus/", ten, {"using": "bench_prometheus"}, name="ten-prometheus"),
    path("statements/", statements, name="statements"),
    path("zero/", zero, name="zero"),
]
if apps.is_installed("silk"):
    urlpatterns.append(path("silk/", include("silk.urls", namespace="silk")))
