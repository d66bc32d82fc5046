"""ResponseTimeMiddleware: how long every request took, by view, method, status class and exception.

Add ``"staste.middleware.ResponseTimeMiddleware"`` near the top of ``MIDDLEWARE`` (first, to
time the other middleware too).  Each request becomes one kick of the ``response_time``
AveragedMetrica (``STASTE_RESPONSE_TIME_METRICA``): its duration in milliseconds, with a
histogram so that percentiles can be read back, along four bounded axes:

* ``view``: the dotted path of the view that served it, with its URL name in brackets when it
  has one (``shop.views.detail [shop:detail]``); every request that resolved to no view
  (404s, scanners probing random paths) is ``<unresolved>``, never its path;
* ``method``: ``GET``, ``POST``... with every non-standard method pooled as ``other``;
* ``status``: ``1xx`` to ``5xx``;
* ``exception``: the class of the exception that escaped the view, when one did.

The kick goes to the process' buffer (:mod:`staste.buffer`): recording costs a dictionary
update, no Redis round trip, and a Redis outage never reaches the request.  Requests for
``STASTE_MIDDLEWARE_EXCLUDE`` paths (by default STATIC_URL and MEDIA_URL) are not recorded.
The time measured ends when the response object is returned (for a streaming response, before
its body is streamed).

>>> rt = response_time_metrica()                               # doctest: +SKIP
>>> rt.filter(view="shop.views.detail [shop:detail]").percentiles([50, 95, 99])  # doctest: +SKIP
{50: 12.4, 95: 48.1, 99: 95.0}
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.urls import ResolverMatch
from django.utils.module_loading import import_string

from staste import buffer, cache, conf, database, timescale, work
from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry

logger = logging.getLogger("staste")

PATH = "staste.middleware.ResponseTimeMiddleware"
#: The view of every request that resolved to no view.
UNRESOLVED = "<unresolved>"
#: The method of every request whose method is not a standard one.
OTHER_METHOD = "other"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

_METHODS = frozenset(METHODS)
_STATUS_BY_HUNDRED = {index + 1: text for index, text in enumerate(STATUS_CLASSES)}
#: Exception classes the ``exception`` axis keeps apart; more count as "(other)".
EXCEPTION_CHOICES = 100
#: Where the exception that escaped the view is noted on the request (by process_exception).
_EXCEPTION_ATTRIBUTE = "_staste_exception"


def response_time_axes() -> list[tuple[str, Axis]]:
    return [
        ("view", StoredChoiceAxis()),
        ("method", Axis(choices=[*METHODS, OTHER_METHOD])),
        ("status", Axis(choices=list(STATUS_CLASSES))),
        # A project raises few exception classes: 100 keeps the axes' product (each combination is
        # a field of every bucket) below checks' STASTE_COMBINATIONS_WARNING with 1,000 views.
        ("exception", StoredChoiceAxis(max_choices=EXCEPTION_CHOICES)),
    ]


_metricas: dict[str, AveragedMetrica] = {}


def response_time_metrica(name: str | None = None) -> AveragedMetrica:
    """The metrica the middleware records into (``STASTE_RESPONSE_TIME_METRICA``), registered.

    A project may register its own AveragedMetrica under that name first (for other date
    scales, say); it must have the axes of :func:`response_time_axes`.
    """
    name = name or conf.get("STASTE_RESPONSE_TIME_METRICA")
    metrica = _metricas.get(name)
    if metrica is None:
        existing = registry.get(name) if name in registry else None
        if isinstance(existing, AveragedMetrica):
            metrica = existing
        else:
            metrica = AveragedMetrica(
                name=name,
                axes=response_time_axes(),
                multiplier=1000,  # milliseconds, kept to the microsecond
                title="Response time",
                unit="ms",
                description="Time to answer each request, in milliseconds (staste.middleware.ResponseTimeMiddleware).",
                category="Site",
                buffered=True,
                histogram=True,
            )
            registry.register(metrica)
        _metricas[name] = metrica
    return metrica


def installed() -> bool:
    """Whether the middleware is in MIDDLEWARE (itself or a subclass) and switched on."""
    if not conf.get("STASTE_MIDDLEWARE_ENABLED"):
        return False
    for entry in getattr(settings, "MIDDLEWARE", None) or ():
        if entry == PATH:
            return True
        try:
            found = import_string(entry)
        except ImportError:
            continue
        if isinstance(found, type) and issubclass(found, ResponseTimeMiddleware):
            return True
    return False


# -- what is excluded --------------------------------------------------------------------------

_rules: list[tuple[tuple[str, ...], re.Pattern[str] | None]] = []


def _default_exclusions() -> list[str]:
    found = []
    for setting in ("STATIC_URL", "MEDIA_URL"):
        url = getattr(settings, setting, None)
        if url and str(url).startswith("/") and str(url) != "/":  # not a CDN, and not the whole site
            found.append(str(url))
    return found


def exclusion_rules() -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """(prefixes, one regex or None) of the paths not recorded, from STASTE_MIDDLEWARE_EXCLUDE."""
    if _rules:
        return _rules[0]
    configured = conf.get("STASTE_MIDDLEWARE_EXCLUDE")
    if configured is None:
        configured = _default_exclusions()
    elif isinstance(configured, (str, re.Pattern)):
        configured = [configured]
    prefixes: list[str] = []
    patterns: list[str] = []
    for rule in configured:
        if isinstance(rule, re.Pattern):
            patterns.append(rule.pattern)
        elif isinstance(rule, str) and rule.startswith("^"):
            patterns.append(rule)
        elif isinstance(rule, str) and rule:
            prefixes.append(rule)
        else:
            raise ValueError(
                f"STASTE_MIDDLEWARE_EXCLUDE: {rule!r} is neither a path prefix nor a regular expression "
                "(a compiled pattern, or a string starting with '^')"
            )
    try:
        regex = re.compile("|".join(f"(?:{pattern})" for pattern in patterns)) if patterns else None
    except re.error as exc:
        raise ValueError(f"STASTE_MIDDLEWARE_EXCLUDE: bad regular expression: {exc}") from None
    _rules[:] = [(tuple(prefixes), regex)]
    return _rules[0]


def excluded(path: str) -> bool:
    """Whether requests for ``path`` go unrecorded; a bad setting excludes nothing (logged once)."""
    if _rules:
        prefixes, regex = _rules[0]
    else:
        try:
            prefixes, regex = exclusion_rules()
        except ValueError:
            logger.exception("staste: ignoring STASTE_MIDDLEWARE_EXCLUDE")
            _rules[:] = [((), None)]
            return False
    return path.startswith(prefixes) or (regex is not None and regex.match(path) is not None)


@receiver(setting_changed)
def _forget_rules(*, setting: str, **kwargs: Any) -> None:
    if setting in ("STASTE_MIDDLEWARE_EXCLUDE", "STATIC_URL", "MEDIA_URL", "FORCE_SCRIPT_NAME"):
        _rules.clear()


# -- axis values -------------------------------------------------------------------------------

_view_names: dict[Any, str] = {}
_exception_names: dict[type, str] = {}


def _dotted(thing: Any) -> str:
    while hasattr(thing, "func") and not hasattr(thing, "__qualname__"):  # functools.partial
        thing = thing.func
    thing = getattr(thing, "view_class", thing)  # a class-based view's as_view() function
    if not hasattr(thing, "__qualname__"):  # a callable instance
        thing = type(thing)
    return f"{thing.__module__}.{thing.__qualname__}"


def view_name(request: HttpRequest) -> str:
    """The ``view`` axis value of a request: dotted path [URL name], or ``<unresolved>``."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNRESOLVED
    cache_key = (match.func, match.url_name and match.view_name)  # views are hashable: Django's reverse() needs it
    cached = _view_names.get(cache_key)
    if cached is None:
        cached = _dotted(match.func)
        if match.url_name:
            cached += f" [{match.view_name}]"
        if len(_view_names) > 10_000:
            _view_names.clear()
        _view_names[cache_key] = cached
    return cached


def exception_name(exception_class: type) -> str:
    name = _exception_names.get(exception_class)
    if name is None:
        name = f"{exception_class.__module__}.{exception_class.__qualname__}"
        if len(_exception_names) > 1000:
            _exception_names.clear()
        _exception_names[exception_class] = name
    return name


# -- the middleware ----------------------------------------------------------------------------

_failures: set[type] = set()


class ResponseTimeMiddleware:
    """Times every request and kicks the response-time metrica (buffered); see the module doc."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        if not conf.get("STASTE_MIDDLEWARE_ENABLED"):
            raise MiddlewareNotUsed("STASTE_MIDDLEWARE_ENABLED is off")
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        response_time_metrica()  # registered now, so the admin lists it before the first request
        exclusion_rules()  # a bad STASTE_MIDDLEWARE_EXCLUDE fails at start-up, not on a request

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if excluded(request.path):
            return self.get_response(request)
        spent = _begin()
        start = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            seconds = time.perf_counter() - start
            if spent is not None:
                work.end(spent)
        record(request, response, seconds, spent)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if excluded(request.path):
            return await get_response(request)
        spent = _begin()
        start = time.perf_counter()
        try:
            response = await get_response(request)
        finally:
            seconds = time.perf_counter() - start
            if spent is not None:
                work.end(spent)
        record(request, response, seconds, spent)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """Note which exception escaped the view; Django's handler still makes the response."""
        setattr(request, _EXCEPTION_ATTRIBUTE, type(exception))


def _begin() -> work.RequestWork | None:
    """The request's work counter (:mod:`staste.work`): its SQL statements and cache calls are
    counted when ``STASTE_DATABASE_TIMING`` is on or a ``TimedCache`` is configured."""
    try:
        database = conf.get_config()["STASTE_DATABASE_TIMING"]
        if not (database or cache.in_use()):
            return None
        return work.begin(database)
    except Exception as exc:  # never break a request over statistics
        _failed(exc, "could not count a request's database work")
        return None


def own_view(match: ResolverMatch) -> bool:
    """Whether a resolved request is one of staste's own admin pages (or their live refresh):
    a view of ``staste.adminviews``, or an admin URL named ``staste_...`` (its models' pages).
    The chart views a project mounts on its own pages (``staste.charts.views``) are its traffic."""
    cache_key = (match.func, match.view_name)
    found = _own_views.get(cache_key)
    if found is None:
        found = _dotted(match.func).startswith("staste.adminviews.") or (
            "admin" in match.app_names and (match.url_name or "").startswith("staste_")
        )
        if len(_own_views) > 10_000:
            _own_views.clear()
        _own_views[cache_key] = found
    return found


_own_views: dict[Any, bool] = {}


def record(
    request: HttpRequest, response: HttpResponseBase, seconds: float, spent: work.RequestWork | None = None
) -> None:
    """Kick the response-time metrica for one request, into the buffer; never raises.

    With ``spent``, the request's work counted meanwhile (:mod:`staste.work`): its SQL
    statements into ``db_queries``, ``db_time`` and ``db_n_plus_one``, its cache calls into
    ``cache_calls`` and ``cache_time``, under the same ``view``.  Staste's own admin pages are
    not recorded unless ``STASTE_RECORD_OWN_VIEWS`` is on.

    Public so that benchmarks (and other servers' hooks) can record a request alike.  The hot
    path builds no Kick and no axis value: a request like one already held this minute (same
    view, method, status class, exception and histogram bucket) only bumps the held sums
    (``buffer.bump``, keyed by what the request carries); a new one is prepared (validated)
    in full and added under that key.
    """
    try:
        config = conf.get_config()
        if not config["STASTE_MIDDLEWARE_ENABLED"]:
            return
        match = request.resolver_match
        if match is not None and not config["STASTE_RECORD_OWN_VIEWS"] and own_view(match):
            return
        name = config["STASTE_RESPONSE_TIME_METRICA"]
        metrica = _metricas.get(name) or response_time_metrica(name)
        method = request.method
        if method not in _METHODS:
            method = OTHER_METHOD  # never key on what clients invent: the buffer is bounded
        hundred = response.status_code // 100
        exception = request.__dict__.get(_EXCEPTION_ATTRIBUTE)  # no AttributeError raised and caught
        milliseconds = seconds * 1000
        families, increments = metrica.increments(milliseconds)  # the histogram bucket's families
        now = timescale.now()
        # Local minutes start with UTC minutes (time zones are whole minutes apart), so one
        # key per UTC minute never mixes two local minutes' buckets.
        minute = int(now // 60)
        # What names the view in a key: the resolved function and URL name (its text is made
        # only when a key is new).
        where = (id(config), minute, None, None) if match is None else (id(config), minute, match.func, match.view_name)
        key = (metrica, *where, method, hundred, exception, families)
        if not buffer.bump(key, increments):
            kick = metrica.prepare_kick(
                milliseconds,
                datetime.datetime.fromtimestamp(now, datetime.UTC),
                view=view_name(request),
                method=method,
                status=_STATUS_BY_HUNDRED.get(hundred, "5xx"),
                exception=None if exception is None else exception_name(exception),
            )
            buffer.add(kick, key)
        if spent is not None:
            _record_work(request, spent, where, now, config)
    except Exception as exc:
        _failed(exc, "could not record a response time")


def _count(metrica: Metrica, key: tuple[Any, ...], value: Any, request: HttpRequest, now: float, **axes: Any) -> None:
    """Add ``value`` to what the buffer holds under ``key``, or hold a new kick of ``metrica``
    under it (by ``view`` and ``axes``): the middleware's hot path, for any metrica."""
    if not buffer.bump(key, metrica.increments(value)[1]):
        moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
        buffer.add(metrica.prepare_kick(value, moment, view=view_name(request), **axes), key)


def _record_work(
    request: HttpRequest, spent: work.RequestWork, where: tuple[Any, ...], now: float, config: dict[str, Any]
) -> None:
    """The request's statements and cache calls, by the view of its response time."""
    if spent.database:
        queries, db_time, n_plus_one = database.metricas()
        _count(queries, (queries, *where), spent.queries, request, now)
        _count(db_time, (db_time, *where), spent.db_seconds * 1000, request, now)
        threshold = config["STASTE_N_PLUS_ONE"]
        if threshold and spent.queries >= threshold:
            repeated = spent.repeated()
            if repeated is not None and repeated[1] >= threshold:
                sql, times = repeated
                key = (n_plus_one, *where, sql)  # the SQL text names the statement: normalised once it is new
                if not buffer.bump(key, n_plus_one.increments(times)[1]):
                    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
                    statement = database.statement_text(sql)
                    kick = n_plus_one.prepare_kick(times, moment, view=view_name(request), statement=statement)
                    buffer.add(kick, key)
    if cache.in_use():
        calls, cache_time = cache.calls_metrica(), cache.time_metrica()
        _count(cache_time, (cache_time, *where), spent.cache_seconds * 1000, request, now)
        for outcome, number in (("hit", spent.cache_hits), ("miss", spent.cache_misses), ("write", spent.cache_writes)):
            if number:
                _count(calls, (calls, *where, outcome), number, request, now, outcome=outcome)


def _failed(exc: Exception, what: str) -> None:
    """Never break a request over statistics; say so once per kind of failure."""
    if type(exc) not in _failures:
        _failures.add(type(exc))
        logger.exception("staste: %s", what)
