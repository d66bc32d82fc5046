"""The errors of per-user queries: each names the fix, and is raised before Redis is asked."""

from __future__ import annotations


class NotKeptForUsers(TypeError):
    """A metrica (or one of its axes) that keeps no users bitmaps was asked about users."""


class RangeNotKept(ValueError):
    """A range reaches periods whose bitmaps are past their retention (STASTE_RETENTION)."""


class TooManyUsers(ValueError):
    """More users than a list or a link may carry."""
