"""What a metrica page shows, read from and written back to its query string.

Every view of a metrica is a shareable URL::

    /admin/staste/guest_visits/?gender=girl&age=18&_last=30+days&_by=age
    /admin/staste/clicks/?label=out&label=se&_span=2024-03-10T14

* an axis name filters on that axis (a hierarchical axis takes one parameter per path
  element); an empty value means no filter;
* ``_last`` is a quick range ("24 hours", see ``staste.charts.spec.parse_last``) and ``_span``
  a calendar span ("all", "2024", "2024-03", "2024-03-10", "2024-03-10T14",
  "2024-03-10T14:05"); one or the other;
* ``_by`` is the axis the pie breaks the numbers down by, ``_measure`` what it shows;
* ``_compare=previous`` adds the previous period of the same length (see ``compare``);
* ``_scale`` draws a range by other buckets than its unit's ("30 days" by ``week``: ISO weeks
  read from the days; by ``month``); only with a range.
* ``_until`` ends a range earlier than now (``_last=30+days&_until=2024-03-10``: the 30 days
  whose last is March 10), as the previous and next steps of a range write it; only with a range.

Anything else, and any value the metrica would not accept, is a :class:`BadRequest` whose
message says what was wrong.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from staste import conf, formats, measures, refusals, timescale
from staste.axis import HierarchicalAxis
from staste.charts.spec import Range, parse_last
from staste.exceptions import CombinationNotKept, MeasureMissing, UnknownMeasure
from staste.formats import DEFAULT_RANGES, QUICK_RANGES, first_recorded, range_scale
from staste.metrica import Metrica
from staste.query import MetricaValues

LAST, SPAN, BY, MEASURE, COMPARE, SCALE = "_last", "_span", "_by", "_measure", "_compare", "_scale"
UNTIL = "_until"
CONTROLS = (LAST, SPAN, BY, MEASURE, COMPARE, SCALE, UNTIL)
#: What ``_compare`` takes.
COMPARISONS = ("previous",)
#: Most buckets a range may cover in the admin (a breakdown reads each bucket).
MAX_RANGE_BUCKETS = 1500

_SPAN = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::(\d{2}))?)?)?)?$")


class BadRequest(ValueError):
    """A query string the page cannot show; the message is shown to the user.

    ``param`` names the parameter at fault, so the page can still be shown without it.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse_span(text: str) -> timescale.Span:
    if text == "all":
        return ()
    match = _SPAN.match(text)
    if not match:
        raise BadRequest(
            _bad(
                SPAN,
                repr(text),
                _(
                    "give all, a year (2024), a month (2024-03), a day (2024-03-10), "
                    "an hour (2024-03-10T14) or a minute (2024-03-10T14:05)"
                ),
            ),
            param=SPAN,
        )
    numbers = [int(group) for group in match.groups() if group is not None]
    try:
        return timescale.make_span(*numbers)
    except (TypeError, ValueError):
        raise BadRequest(_bad(SPAN, repr(text), _("this date or time is out of range")), param=SPAN) from None


def format_span(span: timescale.Span) -> str:
    if not span:
        return "all"
    text = f"{span[0]:04d}"
    for number, joint in zip(span[1:], "--T:", strict=False):
        text += f"{joint}{number:02d}"
    return text


def quick_ranges(metrica: Metrica) -> list[str]:
    """The quick ranges this metrica can show (it records their scale)."""
    return [text for text in QUICK_RANGES if timescale.readable(range_scale(text), metrica.date_scales)]


@dataclasses.dataclass(frozen=True)
class PageState:
    metrica: Metrica
    #: axis name -> value (a tuple path for a hierarchical axis), in the metrica's axis order.
    filters: Mapping[str, Any]
    #: The calendar span shown, or None when a range is shown.
    span: timescale.Span | None
    #: The quick range shown ("30 days"), or None when a span is shown.
    last: str | None
    by: str | None
    measure: str
    #: Whether the previous period is shown too (``_compare=previous``); never for all time.
    compare: bool = False
    #: The buckets a range is drawn by, when not its unit's (``_scale=week``); None otherwise.
    scale: str | None = None
    #: The bucket a range ends in, when not now's (``_until``, a step back); None otherwise.
    until: timescale.Span | None = None

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def from_params(cls, metrica: Metrica, params: Any, ignore: Iterable[str] = ()) -> PageState:
        """Read a QueryDict (``request.GET``); BadRequest for anything the page cannot show."""
        ignored = set(ignore)
        unknown = [name for name in params if name not in metrica.axes and name not in CONTROLS + tuple(ignored)]
        if unknown:
            raise BadRequest(
                _("unknown parameter %(name)s: %(metrica)s has the axes %(axes)s; the page also takes %(controls)s")
                % {
                    "name": repr(unknown[0]),
                    "metrica": metrica.name,
                    "axes": _axes(metrica),
                    "controls": ", ".join(CONTROLS),
                },
                param=unknown[0],
            )
        filters: dict[str, Any] = {}
        for name, axis in metrica.axes.items():
            if name not in params:
                continue
            if axis.hierarchical:
                path = list(params.getlist(name))
                while path and path[-1] == "":
                    path.pop()
                value: Any = tuple(path) if path else None
            else:
                given = [text for text in params.getlist(name) if text != ""]
                if len(given) > 1:  # not silently the last one
                    raise BadRequest(
                        _("give one value for %(name)s, not %(values)s")
                        % {"name": name, "values": ", ".join(_shown(text) for text in given[:5])},
                        param=name,
                    )
                value = given[0] if given else None
            if value is None:
                continue
            try:
                metrica.values().filter(**{name: value})
            except (TypeError, ValueError) as exc:
                reason = refusals.refusal(exc, name)
                raise BadRequest(
                    _("bad filter %(name)s=%(value)s: %(why)s") % {"name": name, "value": _shown(value), "why": reason},
                    param=name,
                ) from None
            filters[name] = value
        last, span_text = params.get(LAST) or None, params.get(SPAN) or None
        if last and span_text:
            raise BadRequest(
                _("give either %(last)s (a range) or %(span)s (a calendar span), not both")
                % {"last": LAST, "span": SPAN},
                param=SPAN,
            )
        span: timescale.Span | None = None
        if span_text:
            span = parse_span(span_text)
            if len(span) > len(metrica.date_scales):  # what timespan() refuses: say it in the page's words
                why = _("%(metrica)s does not record %(scale)s") % {
                    "metrica": metrica.name,
                    "scale": formats.SCALE_PLURALS[timescale.scale_of(span) or "year"],
                }
                raise BadRequest(_bad(SPAN, repr(span_text), why), param=SPAN)
            try:
                metrica.values().timespan(*span)
            except ValueError as exc:
                raise BadRequest(_bad(SPAN, repr(span_text), refusals.refusal(exc)), param=SPAN) from None
        elif last:
            cls._check_range(metrica, last)
        else:
            last = first_recorded(DEFAULT_RANGES, metrica.date_scales)
            span = None if last else ()
        by = params.get(BY) or default_by(metrica, filters)
        if by is not None and by not in metrica.axes:
            raise BadRequest(
                _bad(
                    BY,
                    repr(by),
                    _("%(metrica)s has the axes %(axes)s") % {"metrica": metrica.name, "axes": _axes(metrica)},
                ),
                param=BY,
            )
        kept = metrica.combinations
        if not kept.keeps(filters):
            last = [name for name in metrica.axes if name in filters][-1]
            raise BadRequest(refusals.not_kept(_not_kept(metrica, tuple(filters))), param=last)
        if by is not None and not kept.keeps({*filters, by}):
            raise BadRequest(_bad(BY, repr(by), refusals.not_kept(_not_kept(metrica, (*filters, by)))), param=BY)
        measure = params.get(MEASURE) or measures.default_for_page(metrica)
        try:
            measure = measures.get(metrica, measure).name  # (p95.0 is p95)
        except (UnknownMeasure, MeasureMissing):
            shown = ", ".join(measures.of(metrica))
            raise BadRequest(
                _bad(
                    MEASURE,
                    repr(measure),
                    _("%(metrica)s shows %(measures)s") % {"metrica": metrica.name, "measures": shown},
                ),
                param=MEASURE,
            ) from None
        compared = params.get(COMPARE) or None
        if compared is not None and compared not in COMPARISONS:
            raise BadRequest(
                _bad(COMPARE, repr(compared), _("use %(name)s=previous, or leave it out") % {"name": COMPARE}),
                param=COMPARE,
            )
        if compared and span == ():
            raise BadRequest(
                _("all time has no previous period to compare with: leave %(name)s out") % {"name": COMPARE},
                param=COMPARE,
            )
        scale = params.get(SCALE) or None
        if scale is not None:
            if not last:
                raise BadRequest(
                    _("%(scale)s draws a range by other buckets: give it with %(last)s, not %(span)s")
                    % {"scale": SCALE, "last": LAST, "span": SPAN},
                    param=SCALE,
                )
            cls._check_range(metrica, last, scale)
            if scale == parse_last(last).scale:
                scale = None  # the range's own unit: the default, left out of the URL
        until_text = params.get(UNTIL) or None
        until: timescale.Span | None = None
        if until_text is not None:
            if not last or span_text:
                raise BadRequest(
                    _("%(until)s ends a range earlier: give it with %(last)s") % {"until": UNTIL, "last": LAST},
                    param=UNTIL,
                )
            until = parse_span(until_text) if until_text != "all" else ()
            if not until:
                raise BadRequest(
                    _bad(UNTIL, repr(until_text), _("give a year, a month, a day, an hour or a minute")), param=UNTIL
                )
            if timescale.start(until) > conf.local():
                until = None  # the range up to now: the default
        return cls(metrica, filters, span, last, by, measure, bool(compared), scale, until)

    @staticmethod
    def _check_range(metrica: Metrica, text: str, scale: str | None = None) -> Range:
        try:
            found = parse_last(text)
        except ValueError as exc:
            raise BadRequest(refusals.refusal(exc), param=LAST) from None
        param, value = LAST, repr(text)
        if scale is not None:
            param, value = SCALE, repr(scale)
            if scale not in timescale.SERIES_SCALES:
                raise BadRequest(
                    _bad(param, value, _("use one of %(scales)s") % {"scales": ", ".join(timescale.SERIES_SCALES)}),
                    param=param,
                )
            found = Range(found.since, found.until, scale)
        if not timescale.readable(found.scale, metrica.date_scales):
            recorded = "day" if found.scale == timescale.WEEK else found.scale
            why = _("%(metrica)s does not record %(scale)s") % {
                "metrica": metrica.name,
                "scale": formats.SCALE_PLURALS[recorded],
            }
            raise BadRequest(_bad(param, value, why), param=param)
        if timescale.count_buckets(found.since, found.until, found.scale) > MAX_RANGE_BUCKETS:
            why = _("the admin shows at most %(count)d buckets") % {"count": MAX_RANGE_BUCKETS}
            raise BadRequest(_bad(param, value, why), param=param)
        return found

    # -- what to read ----------------------------------------------------------------------

    def range(self) -> Range | None:
        """The quick range as datetimes, fixed at the moment this is called, at ``scale`` if given."""
        if not self.last:
            return None
        found = parse_last(self.last, now=timescale.start(self.until) if self.until else None)
        return found._replace(scale=self.scale) if self.scale else found

    def scales(self) -> list[str]:
        """The scales this range can be drawn by (finest first): recorded, at least two buckets
        and at most MAX_RANGE_BUCKETS of them; always its own unit's."""
        if not self.last:
            return []
        found = parse_last(self.last)
        return [
            scale
            for scale in reversed(timescale.SERIES_SCALES)
            if scale == found.scale
            or (
                timescale.readable(scale, self.metrica.date_scales)
                and 2 <= timescale.count_buckets(found.since, found.until, scale) <= MAX_RANGE_BUCKETS
            )
        ]

    def includes_now(self, now: Any = None) -> bool:
        """Whether the view reaches the present (a quick range, today, this month): the page
        then refreshes itself (see ``STASTE_LIVE_INTERVAL``)."""
        if self.last:
            return self.until is None
        if not self.span:
            return self.span == ()  # all time goes on too
        moment = conf.local(now)
        return timescale.start(self.span) <= moment < timescale.end(self.span)

    def query(self) -> MetricaValues:
        """The filtered query, over the span (all time when a range is shown)."""
        query = self.metrica.values().filter(**self.filters)
        return query.timespan(*self.span) if self.span else query

    # -- writing ---------------------------------------------------------------------------

    def replace(self, **changes: Any) -> PageState:
        if "span" in changes and changes["span"] is not None:
            changes.setdefault("last", None)
        if "last" in changes and changes["last"] is not None:
            changes.setdefault("span", None)
        if "last" in changes or "span" in changes:
            changes.setdefault("scale", None)  # another range (or a span) starts at its own unit
            changes.setdefault("until", None)  # and up to now
        if changes.get("span") == ():
            changes.setdefault("compare", False)  # all time has no previous period
        return dataclasses.replace(self, **changes)

    def with_filter(self, axis: str, value: Any) -> PageState:
        filters = {name: v for name, v in self.filters.items() if name != axis}
        if value is not None:
            filters[axis] = value
        ordered = {name: filters[name] for name in self.metrica.axes if name in filters}
        return dataclasses.replace(self, filters=ordered)

    def params(self) -> list[tuple[str, str]]:
        """The query string's pairs; defaults (first axis, usual measure) are left out."""
        pairs: list[tuple[str, str]] = []
        for name, axis in self.metrica.axes.items():
            if name not in self.filters:
                continue
            value = self.filters[name]
            if isinstance(axis, HierarchicalAxis):
                pairs += [(name, element) for element in axis.path(value)]
            else:
                pairs.append((name, axis.check(value)))
        if self.span is not None:
            pairs.append((SPAN, format_span(self.span)))
        elif self.last:
            pairs.append((LAST, self.last))
            if self.scale:
                pairs.append((SCALE, self.scale))
            if self.until:
                pairs.append((UNTIL, format_span(self.until)))
        if self.by is not None and self.by != default_by(self.metrica, self.filters):
            pairs.append((BY, self.by))
        if self.measure != measures.default_for_page(self.metrica):
            pairs.append((MEASURE, self.measure))
        if self.compare:
            pairs.append((COMPARE, COMPARISONS[0]))
        return pairs

    def querystring(self, **extra: str) -> str:
        return "?" + urlencode(self.params() + list(extra.items()))


def default_by(metrica: Metrica, filters: Mapping[str, Any]) -> str | None:
    """The first axis a breakdown tells something about: one not filtered to a single value
    (a hierarchical axis still breaks down into the children of its node), whose counters the
    metrica keeps with these filters (``Metrica(combinations=...)``)."""
    for name, axis in metrica.axes.items():
        if (name not in filters or axis.hierarchical) and metrica.combinations.keeps({*filters, name}):
            return name
    return None


def _not_kept(metrica: Metrica, fixed: tuple[str, ...]) -> CombinationNotKept:
    """What a query of these axes would raise (the facts the refusal says)."""
    fixed = tuple(name for name in metrica.axes if name in fixed)
    kept = metrica.combinations
    return CombinationNotKept(metrica.name, fixed, kept.describe(), kept.widened(fixed), uniques=False)


def _bad(name: str, value: str, why: Any) -> str:
    """The message of a bad parameter: which one, its value, and why."""
    return _("bad %(name)s %(value)s: %(why)s") % {"name": name, "value": value, "why": why}


def _axes(metrica: Metrica) -> str:
    return ", ".join(metrica.axes) or pgettext("axes", "none")


def _shown(value: Any) -> str:
    text = "/".join(value) if isinstance(value, tuple) else str(value)
    return repr(text[:80] + ("..." if len(text) > 80 else ""))
