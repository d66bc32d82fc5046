"""Cache calls by view: :class:`TimedCache`, a cache backend that times the one it wraps.

A project opts in per cache, in ``CACHES``: the backend becomes ``staste.cache.TimedCache``
and the real one moves to ``OPTIONS["BACKEND"]``; everything else stays as it was::

    CACHES = {
        "default": {
            "BACKEND": "staste.cache.TimedCache",
            "LOCATION": "redis://127.0.0.1:6379/1",
            "OPTIONS": {"BACKEND": "django.core.cache.backends.redis.RedisCache"},
        }
    }

Within a request the response-time middleware records, by view (the ``view`` axis of
``response_time``):

* ``cache_calls``, a Metrica with the axes ``view`` and ``outcome``: keys read and found
  (``hit``), read and not found (``miss``), and calls that write (``write``: set, add,
  delete, touch, incr...);
* ``cache_time``, an AveragedMetrica: the milliseconds each request spent in cache calls (a
  request that made none counts 0), so ``filter(view=...).average()`` is per request.

Outside a request (a Celery task, a command) the wrapper only passes calls through.  It adds
no Redis round trip of staste's: the counts join the request's buffered kicks.  Nothing of
Django is patched: the wrapper is a backend, and what it does not time (``close()``, a
backend's own extras such as ``get_client()``) is handed to the wrapped cache as it is.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from staste.axis import Axis
from staste.database import view_axis
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registered
from staste.work import current

PATH = "staste.cache.TimedCache"
CALLS = "cache_calls"
TIME = "cache_time"
OUTCOMES = ("hit", "miss", "write")

_MISSING = object()
_perf_counter = time.perf_counter


def calls_metrica() -> Metrica:
    """``cache_calls``: cache keys read (hit, miss) and writing calls, by view."""
    return registered(
        CALLS,
        lambda: Metrica(
            name=CALLS,
            axes=[("view", view_axis()), ("outcome", Axis(choices=list(OUTCOMES)))],
            title="Cache calls",
            description="Cache keys read (hit or miss) and writing calls, by view (staste.cache.TimedCache).",
            category="Site",
            buffered=True,
        ),
    )


def time_metrica() -> AveragedMetrica:
    """``cache_time``: milliseconds each request spent in cache calls, by view."""
    return registered(
        TIME,
        lambda: AveragedMetrica(
            name=TIME,
            axes=[("view", view_axis())],
            multiplier=1000,
            title="Cache time",
            description="Milliseconds each request spent in cache calls, by view (staste.cache.TimedCache).",
            unit="ms",
            category="Site",
            buffered=True,
        ),
    )


@functools.cache
def in_use() -> bool:
    """Whether a cache of ``CACHES`` is a :class:`TimedCache` (then requests record their cache work)."""
    for options in (getattr(settings, "CACHES", None) or {}).values():
        backend = options.get("BACKEND", "")
        if backend == PATH:
            return True
        try:
            found = import_string(backend)
        except ImportError:
            continue
        if isinstance(found, type) and issubclass(found, TimedCache):
            return True
    return False


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        in_use.cache_clear()


class TimedCache(BaseCache):
    """A cache backend that times the backend named in ``OPTIONS["BACKEND"]``, and counts its
    hits and misses, for the request running (see the module's documentation)."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        wrapped = options.pop("BACKEND", None)
        if not wrapped or not isinstance(wrapped, str):
            raise ImproperlyConfigured(
                f"{PATH} times another cache backend: name it in OPTIONS['BACKEND'], e.g. "
                "'django.core.cache.backends.redis.RedisCache'"
            )
        if wrapped == PATH:
            raise ImproperlyConfigured(f"{PATH} cannot wrap itself: OPTIONS['BACKEND'] names the cache it times")
        super().__init__({**params, "OPTIONS": options})
        self.cache: BaseCache = import_string(wrapped)(location, {**params, "OPTIONS": options})

    def __getattr__(self, name: str) -> Any:
        # What is not timed here (a backend's own extras) is the wrapped cache's.
        if name == "cache":
            raise AttributeError(name)
        return getattr(self.cache, name)

    def __repr__(self) -> str:
        return f"<TimedCache of {self.cache!r}>"

    # -- keys are the wrapped cache's -----------------------------------------------------

    def make_key(self, key: Any, version: int | None = None) -> str:
        return self.cache.make_key(key, version)

    def validate_key(self, key: Any) -> None:
        self.cache.validate_key(key)

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        return self.cache.make_and_validate_key(key, version)

    # -- reads: hits and misses -----------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        work = current.get()
        if work is None:
            return self.cache.get(key, default, version)
        start = _perf_counter()
        value = self.cache.get(key, _MISSING, version)
        missed = value is _MISSING
        work.cache_call(0 if missed else 1, 1 if missed else 0, 0, _perf_counter() - start)
        return default if missed else value

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        work = current.get()
        if work is None:
            return self.cache.get_many(keys, version)
        asked = list(keys)
        start = _perf_counter()
        found = self.cache.get_many(asked, version)
        work.cache_call(len(found), len(set(asked)) - len(found), 0, _perf_counter() - start)
        return found

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._timed_read(self.cache.has_key, key, version=version)

    # -- writes -----------------------------------------------------------------------------

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._timed_write(self.cache.add, key, value, timeout, version=version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        return self._timed_write(self.cache.set, key, value, timeout, version=version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._timed_write(self.cache.touch, key, timeout, version=version)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._timed_write(self.cache.delete, key, version=version)

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        return self._timed_write(self.cache.set_many, data, timeout, version=version)

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        return self._timed_write(self.cache.delete_many, keys, version=version)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._timed_write(self.cache.incr, key, delta, version=version)

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._timed_write(self.cache.decr, key, delta, version=version)

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._timed_write(self.cache.incr_version, key, delta, version)

    def clear(self) -> None:
        return self._timed_write(self.cache.clear)

    def close(self, **kwargs: Any) -> None:
        self.cache.close(**kwargs)

    # (get_or_set, decr_version and the async methods are BaseCache's, which call the above.)

    def _timed_read(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        work = current.get()
        if work is None:
            return call(*args, **kwargs)
        start = _perf_counter()
        answer = call(*args, **kwargs)
        work.cache_call(1 if answer else 0, 0 if answer else 1, 0, _perf_counter() - start)
        return answer

    def _timed_write(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        work = current.get()
        if work is None:
            return call(*args, **kwargs)
        start = _perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            work.cache_call(0, 0, 1, _perf_counter() - start)
