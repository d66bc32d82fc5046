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


class NotReplicated(StasteError):
    """Fewer replicas than STASTE_WAIT_REPLICAS confirmed a buffered flush's writes in time.

    The flush's calls stay queued and go again with the next flush: numbered calls make that
    safe, and a failover to a replica that missed them cannot lose them.
    """

    def __init__(self, where: str, acknowledged: int, wanted: int, timeout: float) -> None:
        self.where = where
        self.acknowledged = acknowledged
        self.wanted = wanted
        super().__init__(
            f"{acknowledged} of the {wanted} replicas STASTE_WAIT_REPLICAS asks for confirmed the writes "
            f"to {where} within {timeout:g} s; they are kept and sent again"
        )


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


class ValueRefused(StasteError, ValueError):
    """An axis refused a value; nothing was counted or read.

    ``reason`` names the rule broken, with its numbers as attributes, so that a page can say
    it in its reader's language (the message is English, for logs and developers):

    * ``"type"``: ``value_type`` cannot read it (``type_name``: the type's name);
    * ``"length"``: ``length`` characters, more than ``limit``;
    * ``"unicode"``: not valid Unicode text;
    * ``"choice"``: not one of ``choices``;
    * ``"path"``: not a path of strings; ``"depth"``: a path deeper than ``limit``.
    """

    def __init__(self, message: str, reason: str, **details: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.details = details


class BadRange(StasteError, ValueError):
    """A quick range (``"24 hours"``) that cannot be read.

    ``text`` is what was given and ``reason`` why: ``"form"`` (not a number and a unit),
    ``"number"`` (the number of ``scale`` buckets is not between 1 and ``limit``) or
    ``"start"`` (it would start before the year 1).
    """

    def __init__(self, message: str, text: object, reason: str, scale: str | None = None, limit: int = 0) -> None:
        super().__init__(message)
        self.text = text
        self.reason = reason
        self.scale = scale
        self.limit = limit


class TooManyBuckets(StasteError, ValueError):
    """A time series would read more than ``limit`` buckets (STASTE_MAX_BUCKETS) of ``scale``;
    ``fits`` is the finest recorded scale that would fit, or None."""

    def __init__(self, message: str, limit: int, scale: str, fits: str | None) -> None:
        super().__init__(message)
        self.limit = limit
        self.scale = scale
        self.fits = fits


class UnknownMeasure(StasteError, ValueError):
    """``name`` is no measure: not total, count, average, uniques, nor a percentile from p0 to
    p100 (see :mod:`staste.measures`)."""

    def __init__(self, message: str, name: object) -> None:
        super().__init__(message)
        self.name = name


class MeasureMissing(StasteError, TypeError, ValueError):
    """Metrica ``metrica`` (its name) does not have the measure ``measure``; ``needs`` says what
    it would have to be: ``"averaged"`` (an AveragedMetrica), ``"uniques"`` (made with
    ``uniques=True``), ``"histogram"`` (made with ``histogram=True``) or ``"summable"`` (values
    that are no durations, whose total means something).

    A TypeError, as the query methods raise for a metrica of the wrong kind, and a ValueError,
    as views answer a bad request with a 400.
    """

    def __init__(self, message: str, metrica: str, measure: str, needs: str) -> None:
        super().__init__(message)
        self.metrica = metrica
        self.measure = measure
        self.needs = needs


class CombinationNotKept(StasteError, ValueError):
    """A question needs counters (or, ``uniques``, HyperLogLogs) of a combination of axes that
    metrica ``metrica`` does not keep (``Metrica(combinations=...)``, ``uniques_axes=``);
    nothing was read.

    ``axes`` are the axes the question fixes (its filters and its breakdown), ``setting`` the
    metrica's setting as written (``combinations=2``) and ``widened`` one that would keep them
    (``combinations=3``).  A ValueError, as views answer a bad request with a 400.
    """

    def __init__(self, metrica: str, axes: tuple[str, ...], setting: str, widened: str, uniques: bool) -> None:
        self.metrica = metrica
        self.axes = axes
        self.setting = setting
        self.widened = widened
        self.uniques = uniques
        kept = "unique counts" if uniques else "counters"
        super().__init__(
            f"{metrica} keeps no {kept} by {' x '.join(axes)} together ({setting}): this filter and breakdown "
            f"need them; {widened} would keep them (for data written from then on)"
        )
