"""What the response-time middleware costs a request: the same trivial view, with and without it.

Requests go through Django's WSGI handler (the production path, without a server), one handler
built per middleware list; both are timed in interleaved rounds.  Round trips are counted on
the requesting thread only: the buffer's own thread writes in the background.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings

from benchmarks import measure
from staste import buffer

MIDDLEWARE = "staste.middleware.ResponseTimeMiddleware"


@dataclass
class MiddlewareRow:
    without_us: float  # per request, median round
    with_us: float
    overhead: float  # the median of the rounds' (with / without - 1)
    round_trips: float  # per request, on the request's thread, with the middleware
    recorded: int  # requests the metrica counted

    @property
    def overhead_us(self) -> float:
        return self.without_us * self.overhead


def handler(middleware: list[str]) -> WSGIHandler:
    with override_settings(MIDDLEWARE=middleware, ROOT_URLCONF="benchmarks.urls"):
        return WSGIHandler()  # loads the middleware chain now


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
    return lambda data: None


def requester(wsgi: WSGIHandler, path: str = "/hello/") -> Callable[[], None]:
    def request() -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": io.StringIO(),
        }
        response = wsgi(environ, _start_response)
        response.close()

    return request


def overhead(requests: int, rounds: int) -> MiddlewareRow:
    from staste.middleware import response_time_metrica

    with override_settings(ROOT_URLCONF="benchmarks.urls"):
        plain, timed = requester(handler([])), requester(handler([MIDDLEWARE]))
        metrica = response_time_metrica()
        buffer.flush()
        before = metrica.count()
        with measure.count_round_trips(this_thread=True) as trips:
            for _ in range(requests):
                timed()
        per_request = trips.count / requests

        def repeat(request: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                for _ in range(requests):
                    request()

            return run

        spent = measure.rounds_of({"without": repeat(plain), "with": repeat(timed)}, rounds)
        buffer.flush()
        recorded = metrica.count() - before
    return MiddlewareRow(
        statistics.median(spent["without"]) / requests * 1e6,
        statistics.median(spent["with"]) / requests * 1e6,
        measure.paired_ratio(spent["with"], spent["without"]) - 1,
        per_request,
        recorded,
    )
