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
