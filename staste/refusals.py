"""What a page says when it refuses a request, in its reader's language.

The core modules (``axis``, ``query``, ``measures``, the range parser of ``charts.spec``)
stay free of Django's translation machinery: they raise English errors for logs and
developers, with the facts as attributes (:class:`~staste.exceptions.ValueRefused`,
:class:`~staste.exceptions.BadRange`, :class:`~staste.exceptions.TooManyBuckets`,
:class:`~staste.exceptions.QueryTooExpensive`, :class:`~staste.exceptions.MeasureMissing`,
:class:`~staste.timescale.SpanOutOfRange`, :class:`~staste.timescale.SpanMisgiven`).  The
views build their sentences here from those attributes, so a Russian staff user reads a
Russian 400.  An error no sentence foresees is still introduced in the reader's language; its
English detail follows, as a last resort.

>>> from staste.exceptions import QueryTooExpensive
>>> refusal(QueryTooExpensive(2_000_000, 1_000_000, "STASTE_MAX_QUERY_WORK"))[:47]
'this query would read 2,000,000 counters, more '
"""

from __future__ import annotations

from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from staste.exceptions import (
    BadRange,
    CombinationNotKept,
    MeasureMissing,
    QueryTooExpensive,
    TooManyBuckets,
    ValueRefused,
)
from staste.formats import SCALE_PLURALS
from staste.timescale import SpanMisgiven, SpanOutOfRange

#: Longest raw detail quoted (the values in it may come from the query string).
MAX_DETAIL = 500
#: What a value_type accepts, in words (a raw "invalid literal for int()" tells a user nothing).
TYPE_WORDS = {"int": gettext_lazy("whole numbers, such as 18"), "float": gettext_lazy("numbers, such as 2.5")}
KNOWN = (
    ValueRefused,
    BadRange,
    TooManyBuckets,
    QueryTooExpensive,
    SpanOutOfRange,
    SpanMisgiven,
    MeasureMissing,
    CombinationNotKept,
)


def refusal(exc: BaseException, axis_name: str | None = None) -> str:
    """Why a request was refused, from what a core module raised (the error itself, or the one
    it was raised from: a query re-raises an axis' refusal with the metrica's name)."""
    known = structured(exc)
    if isinstance(known, QueryTooExpensive):
        return too_expensive(known)
    if isinstance(known, BadRange):
        return bad_range(known)
    if isinstance(known, TooManyBuckets):
        return too_many_buckets(known)
    if isinstance(known, MeasureMissing):
        return missing_measure(known)
    if isinstance(known, CombinationNotKept):
        return not_kept(known)
    if isinstance(known, SpanOutOfRange):
        return _("%(scale)s=%(number)s is out of range %(low)s..%(high)s") % {
            "scale": known.scale,
            "number": known.number,
            "low": known.low,
            "high": known.high,
        }
    if isinstance(known, SpanMisgiven) and known.needs:
        return _(
            "%(scale)s= needs %(needs)s= too: give the scales from the top down (year, month, day, hour, minute)"
        ) % {
            "scale": known.scale,
            "needs": known.needs,
        }
    if isinstance(known, SpanMisgiven):
        return _("%(name)s= must be a whole number") % {"name": known.scale}
    if isinstance(known, ValueRefused) and axis_name is None and "axis" in known.details and "value" in known.details:
        # A filter of a chart's query string: name it, as the admin does.
        name = str(known.details["axis"])
        why = value_refused(known, name)
        return _("bad filter %(name)s=%(value)s: %(why)s") % {"name": name, "value": _shown(known), "why": why}
    if isinstance(known, ValueRefused):
        return value_refused(known, axis_name)
    return unforeseen(exc)


def structured(exc: BaseException) -> BaseException | None:
    """``exc``, or the error it was raised from or while handling, if it carries its facts."""
    seen: BaseException | None = exc
    for _depth in range(5):  # a chain is a few links long; never loop on a cycle
        if seen is None or isinstance(seen, KNOWN):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def too_expensive(exc: QueryTooExpensive) -> str:
    return _(
        "this query would read %(work)s counters, more than %(setting)s allows (%(limit)s); "
        "choose a shorter range, a coarser scale or fewer values"
    ) % {"work": _number(exc.work), "setting": exc.setting, "limit": _number(exc.limit)}


def bad_range(exc: BadRange) -> str:
    text = repr(exc.text)
    if exc.reason == "number" and exc.scale:
        return _("bad range %(text)s: the number of %(scales)s must be between 1 and %(limit)s") % {
            "text": text,
            "scales": SCALE_PLURALS[exc.scale],
            "limit": _number(exc.limit),
        }
    if exc.reason == "start":
        return _("bad range %(text)s: it starts before the year 1") % {"text": text}
    return _("bad range %(text)s: give a number and a unit of time (minutes, hours, days, weeks, months or years)") % {
        "text": text
    }


def too_many_buckets(exc: TooManyBuckets) -> str:
    words = {"limit": _number(exc.limit), "scales": SCALE_PLURALS[exc.scale]}
    if exc.fits:
        return _(
            "this would read more than %(limit)s %(scales)s (STASTE_MAX_BUCKETS): draw it by %(fits)s "
            "or choose a shorter range"
        ) % {**words, "fits": SCALE_PLURALS[exc.fits]}
    return _("this would read more than %(limit)s %(scales)s (STASTE_MAX_BUCKETS): choose a shorter range") % words


def missing_measure(exc: MeasureMissing) -> str:
    """Why a chart's ``measure=`` names a measure its metrica does not have (staste.measures)."""
    words = {"value": repr(exc.measure), "metrica": exc.metrica}
    if exc.needs == "averaged":
        return _("measure=%(value)s needs an AveragedMetrica; %(metrica)s only sums") % words
    if exc.needs == "uniques":
        return _("measure=%(value)s needs a metrica made with uniques=True; %(metrica)s counts no ids") % words
    if exc.needs == "histogram":
        return _("measure=%(value)s needs a metrica made with histogram=True; %(metrica)s keeps no histogram") % words
    return _("measure=%(value)s: %(metrica)s has no total, its values are durations") % words


def not_kept(exc: CombinationNotKept) -> str:
    """Why a filter and breakdown need a combination of axes their metrica does not keep."""
    words = {"metrica": exc.metrica, "axes": " x ".join(exc.axes), "setting": exc.setting, "widened": exc.widened}
    if exc.uniques:
        return (
            _(
                "%(metrica)s keeps no unique counts by %(axes)s together (%(setting)s), which this filter and "
                "breakdown need; %(widened)s would keep them"
            )
            % words
        )
    return (
        _(
            "%(metrica)s keeps no counters by %(axes)s together (%(setting)s), which this filter and breakdown "
            "need; %(widened)s would keep them"
        )
        % words
    )


def value_refused(exc: ValueRefused, name: str | None = None) -> str:
    """Why an axis refused a value; ``name``: the axis, when known."""
    name = name or _("this axis")
    details = exc.details
    if exc.reason == "choice":
        shown = ", ".join(map(str, details["choices"]))  # type: ignore[call-overload]  # a list, for "choice"
        return _("%(name)s takes one of %(values)s") % {"name": name, "values": shown}
    if exc.reason == "type":
        words = TYPE_WORDS.get(str(details["type_name"]))
        if words is not None:
            return _("%(name)s takes %(values)s") % {"name": name, "values": words}
        return _("%(name)s takes only what %(type)s can read") % {"name": name, "type": details["type_name"]}
    if exc.reason == "length":
        return _("%(name)s takes at most %(limit)s characters; this value is %(length)s characters long") % {
            "name": name,
            "limit": _number(details["limit"]),
            "length": _number(details["length"]),
        }
    if exc.reason == "unicode":
        return _("%(name)s takes only valid Unicode text") % {"name": name}
    if exc.reason == "depth":
        limit = int(details["limit"])  # type: ignore[call-overload]  # an int, for "depth"
        return ngettext(
            "%(name)s takes paths of at most %(count)s level",
            "%(name)s takes paths of at most %(count)s levels",
            limit,
        ) % {"name": name, "count": limit}
    return unforeseen(exc)


def unforeseen(exc: BaseException) -> str:
    """An error no sentence foresees: said in the reader's language, its detail as it is."""
    detail = str(exc)
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL] + "…"
    return _("this cannot be shown: %(detail)s") % {"detail": detail}


def _shown(exc: ValueRefused) -> str:
    """The refused value, quoted and cut short (it comes from the query string)."""
    text = str(exc.details["value"])
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def _number(number: Any) -> str:
    return number_format(number, force_grouping=True)
