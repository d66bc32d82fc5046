"""Chart options: what ``{% staste_chart %}``, the number tags and the generic views accept.

One parser validates them for all three, so a typo fails the same way in a template, a URL and
a view, with a message that lists what is accepted::

    >>> options = ChartOptions.parse("guest_visits", "pie", {"axis": "gender", "year": 2024})
    >>> options.spec()                                  # doctest: +SKIP  (one Redis round trip)
    {"type": "pie", "labels": ["boy", "girl"], ...}

Options, by kind of output:

==========================  =======================================================================
``line``                    ``last`` ("30 days") or a timespan (``year=``, ``month=`` ... ``minute=``),
                            ``scale``, ``axis`` (one line per value), ``measure``, ``limit``, ``title``
``pie``, ``bar``            a timespan, or ``last`` (with an axis: the range's breakdown, summed),
                            ``axis`` (none: the next finer time scale), ``measure``,
                            ``limit`` (largest slices; the rest pooled), ``title``
``total``, ``count``,       ``last`` or a timespan
``average``
==========================  =======================================================================

Any other name is an axis of the metrica and filters it (``gender="girl"``); an axis whose name
is also an option's is given as ``filter__<axis>=``.  A timespan may also be spelled
``timespan__year=``.  ``None`` means "not given".

Building a spec or a number costs one Redis round trip (two for lines per axis value).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext, pgettext

from staste import formats, measures, refusals, timescale
from staste.axis import OTHER
from staste.charts import spec as specs
from staste.exceptions import CombinationNotKept, MeasureMissing, UnknownMeasure
from staste.metrica import Metrica
from staste.query import MetricaValues, pipelined
from staste.registration import NotRegistered, registry

CHART_KINDS: tuple[str, ...] = ("line", "pie", "bar")
NUMBER_KINDS: tuple[str, ...] = ("total", "count", "average", "uniques")
KINDS = CHART_KINDS + NUMBER_KINDS

#: The options each kind takes, besides timespans and axis filters.
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "line": ("axis", "last", "scale", "measure", "limit", "title"),
    "pie": ("axis", "last", "measure", "limit", "title"),
    "bar": ("axis", "last", "measure", "limit", "title"),
    "total": ("last",),
    "count": ("last",),
    "average": ("last",),
    "uniques": ("last",),
}
ALL_OPTIONS = frozenset(name for names in KIND_OPTIONS.values() for name in names)

FILTER_PREFIX = "filter__"
TIMESPAN_PREFIX = "timespan__"

#: Lines drawn per axis value, and slices of a breakdown, when ``limit`` is not given.
DEFAULT_LINE_LIMIT = 10
REST_LABEL = specs.REST_LABEL


class OptionError(ValueError):
    """An option that the chart cannot take; the message says what it accepts instead.

    What a query string can get wrong is said in the active language (a chart view's 400 is
    a page a visitor reads); what only a template or a urlconf can get wrong stays English.
    """


def find_metrica(metrica: Metrica | str) -> Metrica:
    """A metrica itself, or the registered metrica of that name."""
    if isinstance(metrica, Metrica):
        return metrica
    if not isinstance(metrica, str):
        raise OptionError(f"expected a metrica or the name of one, not {metrica!r}")
    try:
        return registry.get(metrica)
    except NotRegistered:
        names = sorted(m.name for m in registry)
        known = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "") if names else "none"
        raise OptionError(
            f"no metrica named {metrica!r} is registered (registered: {known}); metricas are "
            "registered from each installed app's stats.py, or with staste.register()"
        ) from None


def _subject(kind: str) -> str:
    """How messages name a kind: "pie charts", or the number tag "staste_total"."""
    return f"{kind} charts" if kind in CHART_KINDS else f"staste_{kind}"


def check_names(metrica: Metrica, kind: str, names: Iterable[str]) -> None:
    """Fail on a kind or option name the metrica cannot take (values are not looked at)."""
    if kind not in KINDS:
        raise OptionError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    for name in names:
        _classify(metrica, kind, name)


def _classify(metrica: Metrica, kind: str, name: str) -> tuple[str, str]:
    """("option" | "timespan" | "filter", the option, scale or axis name) of one option name."""
    if name.startswith(FILTER_PREFIX) and name[len(FILTER_PREFIX) :] in metrica.axes:
        return "filter", name[len(FILTER_PREFIX) :]
    scale = name.removeprefix(TIMESPAN_PREFIX)
    if scale in timescale.SCALES:
        return "timespan", scale
    if name in KIND_OPTIONS[kind]:
        return "option", name
    if name in metrica.axes:
        return "filter", name
    if name in ALL_OPTIONS:
        takers = ", ".join(_subject(k) for k, names in KIND_OPTIONS.items() if name in names)
        verb = "do" if kind in CHART_KINDS else "does"
        raise OptionError(f"{_subject(kind)} {verb} not take {name}= (only {takers} do){_hint(kind, name)}")
    accepted = ", ".join(KIND_OPTIONS[kind]) + ", year, month, day, hour, minute"
    axes = ", ".join(metrica.axes) or "none"
    raise OptionError(
        f"unknown option {name}= for {_subject(kind)} of {metrica.name}; options: {accepted}; axes to filter on: {axes}"
    )


def _hint(kind: str, name: str) -> str:
    if name == "axis" and kind in NUMBER_KINDS:
        return "; filter on an axis with <axis>=<value> instead"
    return ""


def _as_int(name: str, value: Any) -> int:
    problem = gettext("%(name)s= must be a whole number, not %(value)s") % {"name": name, "value": repr(value)}
    if isinstance(value, bool):
        raise OptionError(problem)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise OptionError(problem) from None


def _filter_value(metrica: Metrica, axis_name: str, value: Any) -> Any:
    """A filter value as the axis takes it; a hierarchical path may be written "out/se"."""
    axis = metrica.axes[axis_name]
    if axis.hierarchical and isinstance(value, str):
        value = tuple(value.split("/"))
    try:
        metrica.values().filter(**{axis_name: value})
    except (TypeError, ValueError) as exc:
        raise OptionError(refusals.refusal(exc)) from None
    return value


def _coerce_option(metrica: Metrica, kind: str, name: str, value: Any) -> Any:
    """One option's value, checked on its own (checks across options come in ``parse``)."""
    if name == "axis":
        if value not in metrica.axes:
            axes = ", ".join(metrica.axes) or pgettext("axes", "none")
            raise OptionError(
                gettext("%(metrica)s has no axis %(value)s; its axes are: %(axes)s")
                % {"metrica": metrica.name, "value": repr(value), "axes": axes}
            )
        return value
    if name == "last":
        try:
            specs.parse_last(value)
        except ValueError as exc:
            raise OptionError(f"last=: {refusals.refusal(exc)}") from None
        return value.strip()
    if name == "scale":
        if value not in timescale.SERIES_SCALES or not timescale.readable(value, metrica.date_scales):
            recorded = ", ".join(metrica.date_scales) + (", week" if "day" in metrica.date_scales else "")
            recorded = recorded or gettext("only all time")
            raise OptionError(
                gettext("scale= must be a time scale %(metrica)s records (%(scales)s), not %(value)s")
                % {"metrica": metrica.name, "scales": recorded, "value": repr(value)}
            )
        return value
    if name == "measure":  # what the metrica has, as for top(by=) and the admin (staste.measures)
        try:
            return measures.get(metrica, value).name
        except UnknownMeasure:
            raise OptionError(
                gettext("measure= must be one of %(measures)s, not %(value)s")
                % {"measures": ", ".join(measures.of(metrica)), "value": repr(value)}
            ) from None
        except MeasureMissing as exc:
            raise OptionError(refusals.missing_measure(exc)) from None
    if name == "limit":
        number = _as_int("limit", value)
        if number < 1:
            raise OptionError(gettext("limit= must be at least 1, not %(number)s") % {"number": number})
        return number
    if name == "title":
        return str(value)
    raise AssertionError(name)  # pragma: no cover  (_classify lets no other name through)


def check_values(metrica: Metrica, kind: str, given: Mapping[str, Any]) -> None:
    """Check each given value on its own, e.g. the literal ones of a template tag."""
    for name, value in given.items():
        if value is None:
            continue
        category, key = _classify(metrica, kind, name)
        if category == "option":
            _coerce_option(metrica, kind, key, value)
        elif category == "timespan":
            _as_int(key, value)
        else:
            _filter_value(metrica, key, value)


@dataclass(frozen=True)
class ChartOptions:
    """A validated chart (or number) of one metrica; build it with :meth:`parse`."""

    metrica: Metrica
    kind: str
    axis: str | None = None
    last: str | None = None
    scale: str | None = None
    measure: str | None = None
    limit: int | None = None
    title: str | None = None
    span: timescale.Span = ()
    filters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, metrica: Metrica | str, kind: str, given: Mapping[str, Any]) -> ChartOptions:
        """Validate everything before any Redis access; OptionError says what is wrong."""
        metrica = find_metrica(metrica)
        check_names(metrica, kind, given)
        options: dict[str, Any] = {}
        numbers: dict[str, int] = {}
        filters: dict[str, Any] = {}
        for name, value in given.items():
            if value is None:
                continue
            category, key = _classify(metrica, kind, name)
            if category == "option":
                options[key] = _coerce_option(metrica, kind, key, value)
            elif category == "timespan":
                if key in numbers:
                    raise OptionError(gettext("%(name)s= is given twice") % {"name": key})
                numbers[key] = _as_int(key, value)
            else:
                if key in filters:
                    raise OptionError(gettext("the %(axis)s axis is filtered twice") % {"axis": key})
                filters[key] = _filter_value(metrica, key, value)
        try:
            span = metrica.values().timespan(**numbers).span
        except (TypeError, ValueError) as exc:
            raise OptionError(refusals.refusal(exc)) from None
        if options.get("last") and span:
            raise OptionError(gettext("give either last= or a timespan (year=, month=, ...), not both"))
        chart = cls(metrica=metrica, kind=kind, span=span, filters=filters, **options)
        chart._check_range()
        chart._check_kept()
        return chart

    def _check_kept(self) -> None:
        """OptionError when the filters and ``axis=`` need a combination of axes the metrica
        does not keep (``Metrica(combinations=...)``; ``uniques_axes=`` for distinct ids)."""
        uniques = measures.UNIQUES in (self.kind, self.measure)
        try:
            self.query().require_kept(self.axis, uniques=uniques)
        except CombinationNotKept as exc:
            raise OptionError(refusals.not_kept(exc)) from None

    # -- what is read ------------------------------------------------------------------------

    def query(self) -> MetricaValues:
        """The metrica's values over the timespan, under the filters (nothing is read yet)."""
        return MetricaValues(self.metrica, self.span, self.filters)

    def range(self, now: datetime.datetime | None = None) -> specs.Range:
        """The buckets a line (or a number over ``last``) covers.

        ``last`` counts back from now; a timespan gives its buckets of the next finer scale
        (or of ``scale``); with neither, the last 30 days (or the finest range the metrica keeps).
        """
        if self.last:
            found = specs.parse_last(self.last, now=now)
            return specs.Range(found.since, found.until, self.scale or found.scale)
        if self.span:
            scale = self.scale or timescale.SCALES[len(self.span)]
            last_minute = timescale.end(self.span) - datetime.timedelta(minutes=1)
            return specs.Range(timescale.start(self.span), last_minute, scale)
        default = formats.first_recorded(formats.DEFAULT_RANGES, self.metrica.date_scales)
        if default is None:
            raise OptionError(
                gettext("%(metrica)s records only all time: there is no time line to draw")
                % {"metrica": self.metrica.name}
            )
        found = specs.parse_last(default, now=now)
        return specs.Range(found.since, found.until, self.scale or found.scale)

    def _check_range(self) -> None:
        """Fail now, not at render time, on a line or number whose buckets cannot be read."""
        if self.kind in ("pie", "bar"):
            if self.axis is None and self.measure and measures.is_percentile(self.measure):
                raise OptionError(
                    gettext("measure=%(value)s is read per value of an axis: give axis=") % {"value": self.measure}
                )
            if self.last and self.axis is None:
                raise OptionError(
                    gettext("a breakdown over last=%(last)s needs axis=: the buckets are summed per value")
                    % {"last": repr(self.last)}
                )
            if not self.last and len(self.span) >= len(self.metrica.date_scales) and self.axis is None:
                scale = timescale.scale_of(self.span)
                where = formats.SCALE_LABELS[scale] if scale else gettext("all time")
                raise OptionError(
                    gettext("%(metrica)s records no time scale finer than %(where)s to break down by; give axis=")
                    % {"metrica": self.metrica.name, "where": where}
                )
            if not self.last:
                return
        if self.kind in NUMBER_KINDS and not self.last:
            return
        order = timescale.SERIES_SCALES
        if self.span and self.scale and order.index(self.scale) <= order.index(timescale.scale_of(self.span)):
            raise OptionError(
                gettext("scale=%(scale)s is not finer than the timespan's scale (%(span)s)")
                % {"scale": repr(self.scale), "span": formats.SCALE_LABELS[timescale.scale_of(self.span) or "year"]}
            )
        if self.span and len(self.span) >= len(self.metrica.date_scales) and not self.scale:
            raise OptionError(
                gettext("%(metrica)s records nothing finer than this timespan (%(span)s): a line needs a longer one")
                % {"metrica": self.metrica.name, "span": formats.SCALE_LABELS[timescale.scale_of(self.span) or "year"]}
            )
        found = self.range()
        try:
            self.query().series_spans(found.since, found.until, found.scale)
        except (TypeError, ValueError) as exc:
            raise OptionError(refusals.refusal(exc)) from None

    # -- charts ------------------------------------------------------------------------------

    def spec(self, now: datetime.datetime | None = None) -> specs.Spec:
        """The chart spec (see ``staste.charts.spec``): one Redis round trip, two for lines per value."""
        if self.kind in NUMBER_KINDS:
            raise OptionError(f"a {self.kind} is a number, not a chart")
        query = self.query()
        if self.kind in ("pie", "bar"):
            over: dict[str, Any] = {}
            if self.last:  # the range's breakdown: its exact cover, summed in Redis
                found = self.range(now)
                over = {"since": found.since, "until": found.until, "scale": found.scale}
            spec = specs.pie_spec(query, self.axis, measure=self.measure, title=self.title, chart=self.kind, **over)
            if not self.last and self.span:
                spec = specs.unmeasured(spec, specs.bucket_status(self.span, now))
            spec = limit_breakdown(spec, self.limit) if self.limit else spec
            return specs.value_colors(spec, self.metrica.axes.get(self.axis) if self.axis else None)
        found = self.range(now)
        if self.axis:
            return specs.marked_line(self.lines_per_value(found, with_total=False), query, found, now)
        if self.measure:
            labels, data = self._series(query, found, self.measure)
            spec = specs.series_spec(labels, [(self.measure, data, "y")], title=self._title(), x=found.scale)
            return specs.marked_line(spec, query, found, now)
        if self.span and not self.scale:
            return specs.marked_line(specs.timeline_spec(query, title=self._title()), query, None, now)
        spec = specs.line_spec(query, found.since, found.until, found.scale, title=self._title())
        return specs.marked_line(spec, query, found, now)

    def _title(self) -> str:
        return self.metrica.title if self.title is None else self.title

    def _series(self, query: MetricaValues, found: specs.Range, measure: str) -> tuple[list[str], list[Any]]:
        rows = measures.find(measure).series(query, found.since, found.until, found.scale)
        return [formats.bucket_label(moment, found.scale) for moment, _ in rows], [value for _, value in rows]

    def lines_per_value(self, found: specs.Range, *, with_total: bool) -> specs.Spec:
        """One line per value of ``axis`` (the ``limit`` largest), optionally with the total.

        Two round trips: the values and their totals, then every series in one pipeline.
        """
        assert self.axis is not None
        query = self.query()
        measure = self.measure or measures.default(self.metrica)
        # The values with the most of it, or (for what does not add up) with the most events.
        ranking = measures.find(measure if measures.find(measure).additive else measures.default(self.metrica))
        ranked = sorted(ranking.by_value(query, self.axis), key=lambda row: -row[1])[: self.limit or DEFAULT_LINE_LIMIT]
        order = self.metrica.axes[self.axis].sort_key
        values = [value for value, _ in sorted(ranked, key=lambda row: order(row[0]))]
        queries = [query.filter(**{self.axis: value}) for value in values if value is not OTHER]
        names = [formats.value_label(value) for value in values if value is not OTHER]
        if with_total:
            queries.insert(0, query)
            names.insert(0, "total")
        found_series = pipelined([functools.partial(self._series, q, found, measure) for q in queries])
        labels = found_series[0][0] if found_series else self._series(query, found, measure)[0]
        datasets = [(name, data, "y") for name, (_, data) in zip(names, found_series, strict=True)]
        spec = specs.series_spec(labels, datasets, title=self._title(), x=found.scale)
        spec["axes"] = {"y": measure}  # every line shows the same measure
        spec["by_value"] = True  # each line in its value's colour
        return specs.value_colors(spec, self.metrica.axes[self.axis], [name for name, _, _ in datasets])

    # -- numbers -----------------------------------------------------------------------------

    def number(self, now: datetime.datetime | None = None) -> int | float | None:
        """The total, count or average: one Redis round trip; None for an average of nothing,
        and for a span that has not begun or that Redis no longer holds (never a 0)."""
        if self.kind not in NUMBER_KINDS:
            raise OptionError(f"a {self.kind} chart is not a number")
        check_number_kind(self.metrica, self.kind)
        measure = measures.find(self.kind)
        query = self.query()
        if not self.last:
            status = specs.bucket_status(self.span) if self.span else "partial"
            if status == "future":
                return None  # a span not begun measured nothing: no number, not a 0
            number = measure.number(query)
            return None if status == "expired" and not number else number  # Redis dropped it
        found = self.range(now)
        # The range's exact cover (its distinct ids: one PFCOUNT of the union of its HyperLogLogs).
        number = measure.number(query.over(found.since, found.until, found.scale))
        return formats.rounded(number, self.metrica.multiplier, average=self.kind == measures.AVERAGE)


def check_number_kind(metrica: Metrica, kind: str) -> None:
    """OptionError when ``metrica`` does not have the measure ``kind`` (staste.measures: counts
    and averages need an AveragedMetrica, distinct ids a metrica made with ``uniques=True``, a
    total values that are no durations), as ``measure=`` and ``top(by=)`` refuse it."""
    try:
        measures.get(metrica, kind)
    except MeasureMissing as exc:
        raise OptionError(str(exc)) from None


def limit_breakdown(spec: specs.Spec, limit: int) -> specs.Spec:
    """The ``limit`` largest slices of a breakdown; the others pooled as "(rest)" (not for averages)."""
    if len(spec["labels"]) <= limit or not spec["datasets"]:
        return spec
    return specs.top_values(spec, limit, REST_LABEL)
