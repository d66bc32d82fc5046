"""Celery tasks timed into ``task_time``, through Celery's signals (``pip install 'staste[celery]'``).

Nothing to write in a task: when Celery is installed and ``STASTE_CELERY_TIMING`` is on (the
default), ``StasteConfig.ready()`` connects :func:`connect`, and every task a worker runs is
one kick of ``task_time`` (see :mod:`staste.timing`): ``task`` is the task's name, ``state``
is ``success``, the dotted class of the exception it failed with, or ``retry`` when it asked
to be retried.  The time is the task's own run, from ``task_prerun`` to ``task_postrun``.

Kicks are buffered in the worker process; each worker process writes its buffer when it
shuts down (``worker_process_shutdown``, ``worker_shutdown``), as well as every
``STASTE_FLUSH_INTERVAL``.  Importing this module needs Celery; nothing else in staste does.
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals

from staste import buffer
from staste.timing import RETRY, SUCCESS, record, state_of

#: Runs started and not yet finished, by task id (bounded: a worker killed mid-task leaves some).
MAX_RUNNING = 10_000

_started: dict[str, float] = {}
_failed: dict[str, str] = {}


def _task_name(task: Any, sender: Any = None) -> str:
    found = getattr(task, "name", None) or getattr(sender, "name", None)
    return str(found) if found else "(unnamed task)"


def _prerun(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id is None:
        return
    if len(_started) >= MAX_RUNNING:
        _started.clear()
        _failed.clear()
    _started[task_id] = time.perf_counter()


def _failure(task_id: str | None = None, exception: BaseException | None = None, **kwargs: Any) -> None:
    if task_id is not None and task_id in _started:
        _failed[task_id] = state_of(exception) if exception is not None else "failure"


def _retry(request: Any = None, **kwargs: Any) -> None:
    task_id = getattr(request, "id", None)
    if task_id is not None and task_id in _started:
        _failed[task_id] = RETRY


def _postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any) -> None:
    start = _started.pop(task_id, None) if task_id is not None else None
    if start is None:
        return
    spent = time.perf_counter() - start
    noted = _failed.pop(task_id, None) if task_id is not None else None
    if state == "SUCCESS":
        outcome = SUCCESS
    elif state == "RETRY":
        outcome = RETRY
    else:  # FAILURE (the exception noted by task_failure), or a state of a task's own making
        outcome = noted or (state or "failure").lower()
    record(_task_name(task, kwargs.get("sender")), spent, outcome)


def _flush(**kwargs: Any) -> None:
    buffer.flush()


def connect() -> None:
    """Connect the receivers (idempotent: each has a ``dispatch_uid``)."""
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="staste.celery.prerun")
    signals.task_failure.connect(_failure, weak=False, dispatch_uid="staste.celery.failure")
    signals.task_retry.connect(_retry, weak=False, dispatch_uid="staste.celery.retry")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="staste.celery.postrun")
    signals.worker_process_shutdown.connect(_flush, weak=False, dispatch_uid="staste.celery.process_shutdown")
    signals.worker_shutdown.connect(_flush, weak=False, dispatch_uid="staste.celery.shutdown")


def disconnect() -> None:
    """Disconnect them (``STASTE_CELERY_TIMING`` turned off in a running process, tests)."""
    signals.task_prerun.disconnect(dispatch_uid="staste.celery.prerun")
    signals.task_failure.disconnect(dispatch_uid="staste.celery.failure")
    signals.task_retry.disconnect(dispatch_uid="staste.celery.retry")
    signals.task_postrun.disconnect(dispatch_uid="staste.celery.postrun")
    signals.worker_process_shutdown.disconnect(dispatch_uid="staste.celery.process_shutdown")
    signals.worker_shutdown.disconnect(dispatch_uid="staste.celery.shutdown")
