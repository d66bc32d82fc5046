"""Errors staste raises on purpose."""

from __future__ import annotations


class StasteError(Exception):
    """Base class of staste's own errors."""


class RedisUnavailable(StasteError):
    """Redis could not be reached or did not answer in time.

    The message names the (password-free) URL that failed, so operators know where to look.
    """

    def __init__(self, where: str, cause: BaseException) -> None:
        self.where = where
        self.cause = cause
        super().__init__(f"staste could not reach Redis at {where}: {cause}")


class QueryTooExpensive(StasteError, ValueError):
    """A query would read more counters than its budget allows; nothing was read.

    ``work`` is what it would read (buckets x values x families), ``limit`` the budget and
    ``setting`` the setting that set it (STASTE_MAX_QUERY_WORK or STASTE_MAX_PUBLIC_QUERY_WORK).
    A ValueError, so that views answer it with a 400 as any other bad request.
    """

    def __init__(self, work: int, limit: int, setting: str) -> None:
        self.work = work
        self.limit = limit
        self.setting = setting
        super().__init__(
            f"this query would read {work:,} counters, more than {setting} allows ({limit:,}); "
            "choose a shorter range, a coarser scale or fewer values"
        )
