"""Each view does a known amount of database or cache work, so a test knows what is recorded."""

from __future__ import annotations

import threading

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse


def _number(request: HttpRequest, name: str = "n") -> int:
    return min(int(request.GET.get(name, "0")), 1000)


def none(request: HttpRequest) -> HttpResponse:
    """No statement at all."""
    return HttpResponse("nothing asked of the database")


def same(request: HttpRequest) -> HttpResponse:
    """``?n=`` runs of one statement (the same SQL text each time, another parameter)."""
    for number in range(_number(request)):
        ContentType.objects.filter(pk=number + 1).exists()
    return HttpResponse("same")


def distinct(request: HttpRequest) -> HttpResponse:
    """Six statements, each a different SQL text: many queries, none repeated."""
    ContentType.objects.count()
    ContentType.objects.filter(app_label="auth").count()
    ContentType.objects.filter(model="user").count()
    ContentType.objects.filter(app_label="auth", model="user").count()
    Permission.objects.count()
    Permission.objects.filter(codename__startswith="add").count()
    return HttpResponse("distinct")


def n_plus_one(request: HttpRequest) -> HttpResponse:
    """The classic: a list, then one statement per row for its foreign key."""
    names = [permission.content_type.model for permission in Permission.objects.order_by("pk")[: _number(request)]]
    return HttpResponse(", ".join(names))


def raw(request: HttpRequest) -> HttpResponse:
    """``?n=`` runs of one raw statement with its literal inlined (normalised for the axis)."""
    with connection.cursor() as cursor:
        for number in range(_number(request)):
            cursor.execute(f"SELECT {number + 1}, 'x''{number}' WHERE 1 IN (1, 2, {number})")
    return HttpResponse("raw")


def in_thread(request: HttpRequest) -> HttpResponse:
    """Statements run by a thread the view starts: not the request's (the docs say so)."""
    thread = threading.Thread(target=lambda: [ContentType.objects.count() for _ in range(3)])
    thread.start()
    thread.join()
    ContentType.objects.count()
    return HttpResponse("one of mine, three of my thread's")


async def async_same(request: HttpRequest) -> HttpResponse:
    """``?n=`` runs of one statement from an async view (the ORM runs in a worker thread)."""
    for number in range(_number(request)):
        await ContentType.objects.filter(pk=number + 1).aexists()
    return HttpResponse("async same")


def cached(request: HttpRequest) -> HttpResponse:
    """Two misses and a hit on keys read, two writes: get a missing key, set it, get it again,
    get_many of one present and one missing, delete one."""
    key = request.GET.get("key", "k")
    cache.get(key)
    cache.set(key, "value")
    cache.get(key)
    cache.get_many([key, key + "-missing"])
    cache.delete(key + "-other")
    return HttpResponse("cached")


async def async_cached(request: HttpRequest) -> HttpResponse:
    """The same through the cache's async API (BaseCache's, which calls the timed sync methods)."""
    key = request.GET.get("key", "k")
    await cache.aget(key)
    await cache.aset(key, "value")
    await cache.aget(key)
    return HttpResponse("async cached")


def failing(request: HttpRequest) -> HttpResponse:
    """A 5xx after one statement."""
    ContentType.objects.count()
    return HttpResponse("failed", status=503)
