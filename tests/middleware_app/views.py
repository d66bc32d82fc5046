"""Trivial views: each exercises one axis value of the response-time middleware."""

from __future__ import annotations

import asyncio
import os
import time

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views import View


class Boom(Exception):
    """The exception the failing view raises (so its dotted path is known)."""


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


def unnamed(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no URL name")


def redirect(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect("/mw/hello/")


def boom(request: HttpRequest) -> HttpResponse:
    raise Boom("the view failed")


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("nothing here")


def teapot(request: HttpRequest) -> HttpResponse:
    return HttpResponse("short and stout", status=418)


async def async_hello(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse("hello, asynchronously")


async def async_boom(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0)
    raise Boom("the async view failed")


def pid(request: HttpRequest) -> HttpResponse:
    """Which process served the request (``?sleep=0.05`` keeps it busy, so others serve too)."""
    time.sleep(min(float(request.GET.get("sleep", 0)), 1.0))
    return HttpResponse(str(os.getpid()), content_type="text/plain")


class ItemView(View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return JsonResponse({"pk": pk})
