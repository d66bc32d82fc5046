"""What a request spends outside its own Python: SQL statements and cache calls, counted while it runs.

The response-time middleware opens one :class:`RequestWork` per request (:func:`begin`) and
closes it when the response is ready (:func:`end`); what it counted is then recorded by
:mod:`staste.database` and :mod:`staste.cache`, into the process' buffer like the response
time itself.  Counting costs a few attribute updates per statement or cache call, never a
Redis call.

SQL statements are counted through Django's documented hook, ``connection.execute_wrapper()``,
on every connection the request uses:

* the connections of the request's thread that exist when it starts
  (``connections.all(initialized_only=True)``, read at the thread's first request and kept up
  to date by ``connection_created``), and
* every connection that connects while it runs (Django's ``connection_created`` signal): a
  database alias used for the first time, a connection reopened, and the connections of the
  thread that runs the ORM for an async view (``sync_to_async`` carries the request's
  context, where :data:`current` is found).

Cache calls are counted by :class:`staste.cache.TimedCache`, a backend the project opts into
in ``CACHES``, which finds the request's work in :data:`current`.

Limits, by design: a thread the view starts itself is not the request's (its queries are not
counted), and under ASGI a persistent connection (``CONN_MAX_AGE`` > 0) that another thread
opened before the request started is not seen.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver

#: Most distinct SQL texts a request keeps a count of (the N+1 detection needs the repeated
#: ones, which come early and often; a request of thousands of distinct statements is bounded).
MAX_STATEMENTS = 1000

#: The work of the request running in this context (None outside the middleware).
current: contextvars.ContextVar[RequestWork | None] = contextvars.ContextVar("staste_request_work", default=None)

_perf_counter = time.perf_counter


class RequestWork:
    """The statements and cache calls of one request, as they happen.

    An instance is the execute wrapper itself (``connection.execute_wrapper(work)``): called
    with each statement, it times it and counts its SQL text.
    """

    __slots__ = (
        "_connections",
        "_token",
        "_wrapped",
        "cache_hits",
        "cache_misses",
        "cache_seconds",
        "cache_writes",
        "database",
        "db_seconds",
        "queries",
        "statements",
    )

    def __init__(self, database: bool = True) -> None:
        #: Whether SQL statements are counted (``STASTE_DATABASE_TIMING``).
        self.database = database
        self.queries = 0
        self.db_seconds = 0.0
        #: SQL text (before parameters) -> times run.
        self.statements: dict[str, int] = {}
        self.cache_hits = 0
        self.cache_misses = 0
        #: set, add, delete, touch, incr... and their ``_many`` forms: every call but a read.
        self.cache_writes = 0
        self.cache_seconds = 0.0
        self._connections: list[Any] = []
        self._wrapped: list[Any] = []  # the execute_wrapper() context managers entered
        self._token: contextvars.Token[RequestWork | None] | None = None

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        start = _perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.db_seconds += _perf_counter() - start
            self.queries += 1
            statements = self.statements
            seen = statements.get(sql)
            if seen is not None:
                statements[sql] = seen + 1
            elif len(statements) < MAX_STATEMENTS:
                statements[sql] = 1

    def watch(self, connection: Any) -> None:
        """Count the statements run on ``connection`` (a Django ``DatabaseWrapper``) until :func:`end`."""
        for watched in self._connections:
            if watched is connection:
                return
        manager = connection.execute_wrapper(self)
        manager.__enter__()
        self._connections.append(connection)
        self._wrapped.append(manager)

    def cache_call(self, hits: int, misses: int, writes: int, seconds: float) -> None:
        """Count one cache call: the keys it found and missed, or a call that writes."""
        self.cache_seconds += seconds
        self.cache_hits += hits
        self.cache_misses += misses
        self.cache_writes += writes

    def repeated(self) -> tuple[str, int] | None:
        """The statement run most often, and how many times (None when none ran)."""
        if not self.statements:
            return None
        return max(self.statements.items(), key=lambda item: item[1])


def begin(database: bool = True) -> RequestWork:
    """Start counting the work of the request running in this context; ``database``: its SQL
    statements too, on the connections that exist now and on those that connect later."""
    work = RequestWork(database)
    work._token = current.set(work)
    if database:
        for connection in _known():
            work.watch(connection)
    return work


#: The connections of each thread staste knows of: those that existed at its first request
#: (``connections.all(initialized_only=True)``, read once: it costs microseconds, a thread-local
#: list does not), and every one that connected since (``connection_created``).
_threads = threading.local()
#: Past this many, the list is read again from ``connections`` (replaced connection objects).
MAX_KNOWN = 32


def _known() -> list[Any]:
    known: list[Any] | None = getattr(_threads, "connections", None)
    if known is None or len(known) > MAX_KNOWN:
        known = _threads.connections = list(connections.all(initialized_only=True))
    return known


def end(work: RequestWork) -> None:
    """Stop counting: the execute wrappers leave their connections, :data:`current` is reset."""
    for manager in reversed(work._wrapped):
        with contextlib.suppress(IndexError):  # its wrappers were emptied by someone else meanwhile
            manager.__exit__(None, None, None)
    work._wrapped.clear()
    work._connections.clear()
    if work._token is not None:
        try:
            current.reset(work._token)
        except ValueError:  # ended in another context than it began (a streaming response's iterator)
            current.set(None)
        work._token = None


@receiver(connection_created)
def _watch_new_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    """A connection opened while a request runs is the request's too; and its thread's, for
    the requests after it."""
    known = _known()
    if not any(seen is connection for seen in known):
        known.append(connection)
    work = current.get()
    if work is not None and work.database and work._token is not None:
        work.watch(connection)
