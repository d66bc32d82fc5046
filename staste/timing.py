"""Timed work outside requests: ``staste.timed(name)``, and the metrica ``task_time`` it records into.

``timed`` is a context manager and a decorator, for sync and async code alike::

    import staste

    @staste.timed("newsletter.send")
    def send_newsletter(): ...

    @staste.timed("feeds.refresh")
    async def refresh_feeds(): ...

    with staste.timed("nightly.cleanup"):
        ...

    async with staste.timed("import.prices"):
        ...

Each run is one kick of ``task_time``, an AveragedMetrica in milliseconds with a histogram
(p50/p95/p99, Apdex), along two axes:

* ``task``: the name given (Celery tasks: the task's name, see :mod:`staste.celery`);
* ``state``: ``success``, or the dotted class of the exception that escaped (which is raised
  on, untouched), or ``retry`` for a Celery task that asked to be retried.  Past ``STATES``
  distinct states, further exception classes count as "(other)", the pool of other failures.

A management command is timed by the same decorator on its ``handle`` (one line), and any
command, a project's or Django's, by ``manage.py staste time <command> [arguments]``.

The kick is buffered (no Redis round trip on the timed path); the buffer is written within
``STASTE_FLUSH_INTERVAL`` and when the process exits.  Recording never raises: a failure to
record is logged once and the timed code's own outcome stands.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from staste.axis import StoredChoiceAxis
from staste.metrica import AveragedMetrica
from staste.registration import registered

logger = logging.getLogger("staste")

NAME = "task_time"
SUCCESS = "success"
RETRY = "retry"
#: Distinct values the ``state`` axis keeps: success, retry and the exception classes seen
#: first; later ones count as "(other)".
STATES = 50
#: Longest task name (longer ones are refused when ``timed`` is made, not when it runs).
MAX_NAME_LENGTH = 200

F = TypeVar("F", bound=Callable[..., Any])

_failures: set[type] = set()


def task_metrica() -> AveragedMetrica:
    """``task_time``: how long each run of a task took, by task and state (registered on first use)."""
    return registered(
        NAME,
        lambda: AveragedMetrica(
            name=NAME,
            axes=[("task", StoredChoiceAxis()), ("state", StoredChoiceAxis(max_choices=STATES))],
            multiplier=1000,  # milliseconds, kept to the microsecond
            title="Task time",
            description=(
                "How long each timed job took, in milliseconds, by task and outcome "
                "(staste.timed, Celery tasks, management commands)."
            ),
            unit="ms",
            category="Jobs",
            buffered=True,
            histogram=True,
        ),
    )


def state_of(exception: BaseException | type[BaseException] | None) -> str:
    """The ``state`` of a run that raised ``exception`` (or an exception class): its dotted
    class; ``success`` for None."""
    if exception is None:
        return SUCCESS
    kind = exception if isinstance(exception, type) else type(exception)
    return f"{kind.__module__}.{kind.__qualname__}"


def record(task: str, seconds: float, state: str) -> None:
    """Kick ``task_time`` for one run (buffered); never raises, logs once per kind of failure."""
    try:
        task_metrica().kick(seconds * 1000, buffered=True, task=task, state=state)
    except Exception as exc:
        if type(exc) not in _failures:
            _failures.add(type(exc))
            logger.exception("staste: could not record a run of %r", task)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"staste.timed: the task name must be a non-empty text of at most {MAX_NAME_LENGTH} characters, "
            f"not {name!r}"
        )
    return name


class timed:  # (named as a function: ``@staste.timed("x")``, ``with staste.timed("x")``)
    """Time a block or every call of a function into ``task_time`` under ``name``; see the module."""

    def __init__(self, name: str) -> None:
        self.name = check_name(name)
        self._starts: list[float] = []  # a stack: the same object may be entered again within itself

    def __repr__(self) -> str:
        return f"<staste.timed {self.name!r}>"

    # -- as a context manager ---------------------------------------------------------------

    def __enter__(self) -> timed:
        self._starts.append(time.perf_counter())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exception: BaseException | None, traceback: TracebackType | None
    ) -> None:
        spent = time.perf_counter() - self._starts.pop()
        record(self.name, spent, state_of(kind))

    async def __aenter__(self) -> timed:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exception: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.__exit__(kind, exception, traceback)

    # -- as a decorator: each call is a run of its own ----------------------------------------

    def __call__(self, function: F) -> F:
        name = self.name
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    result = await function(*args, **kwargs)
                except BaseException as exc:
                    record(name, time.perf_counter() - start, state_of(exc))
                    raise
                record(name, time.perf_counter() - start, SUCCESS)
                return result

            return timed_coroutine  # type: ignore[return-value]  # wraps() keeps F's signature

        @functools.wraps(function)
        def timed_function(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            except BaseException as exc:
                record(name, time.perf_counter() - start, state_of(exc))
                raise
            record(name, time.perf_counter() - start, SUCCESS)
            return result

        return timed_function  # type: ignore[return-value]  # wraps() keeps F's signature
