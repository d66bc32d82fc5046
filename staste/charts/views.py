"""Generic chart views, configured in a urlconf::

    from staste.charts.views import LatestCountAndAverageChart, PieChart, TimelineChart, TimeserieChart

    urlpatterns = [
        path("guests/gender/", PieChart.as_view(metrica=gender_age_metrica, axis_keyword="gender")),
        path("guests/timeline/", TimelineChart.as_view(metrica="guest_visits")),   # or a registered name
        path("guests/lines/", TimeserieChart.as_view(metrica=gender_age_metrica, axis_keyword="gender")),
        path("speed/", LatestCountAndAverageChart.as_view(metrica=response_time, axis_keyword="view")),
    ]

Each view reads the timespan and the axis filters from the query string
(``?timespan__year=2010&timespan__month=2&gender=girl``; ``year=`` works too), plus the options
its kind takes (``last``, ``scale``, ``axis``, ``measure``, ``limit``: see
:mod:`staste.charts.options`).  Parameters it does not know are ignored, so pages can carry
their own; an empty value means "not given" (a form's "all").  What the urlconf fixes
(``axis_keyword``, ``filters``) cannot be changed from the query string.

A view renders ``template_name`` (override it, or the ``staste/charts/*.html`` templates) with
``spec``, ``metrica``, ``options``, ``title``, ``chart_id`` and the ``table_header`` and
``table_rows`` behind the chart; ``?format=json`` returns the spec itself.  A bad query string
is a 400 and an unreachable Redis a 503, both rendered by the same template with ``error``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext, gettext_lazy
from django.views.generic import TemplateView

from staste import formats, measures, refusals, timescale
from staste.charts import annotations as notes  # named apart from `from __future__ import annotations`
from staste.charts import spec as specs
from staste.charts.options import FILTER_PREFIX, TIMESPAN_PREFIX, ChartOptions, OptionError, find_metrica
from staste.exceptions import RedisUnavailable
from staste.http import json_response, unreadable_query
from staste.metrica import Metrica
from staste.query import MetricaValues, budget

logger = logging.getLogger("staste")

UNAVAILABLE_MESSAGE = gettext_lazy("Statistics are unavailable right now: staste cannot reach its Redis server.")


class Chart(TemplateView):
    """What every chart view shares: the metrica, the query string, errors, the context."""

    #: The metrica, or the name it is registered under.
    metrica: Metrica | str | None = None
    #: "line", "pie" or "bar".
    kind: str = "line"
    #: The chart's title (default: the metrica's).
    title: str | None = None
    #: Axis filters fixed by the urlconf, e.g. ``{"gender": "girl"}``.
    filters: Mapping[str, Any] = {}
    #: The options (besides timespans and axis filters) read from the query string.
    query_options: tuple[str, ...] = ()
    #: Other names the query string may use for an option (``timespan__year`` for ``year``...).
    aliases: Mapping[str, str] = {}
    #: Query-string parameters the page's own form sets (the others ride along as hidden inputs).
    controls: tuple[str, ...] = ()
    chart_id = "staste-chart"
    height = "400px"

    def get_metrica(self) -> Metrica:
        if self.metrica is None:
            raise ImproperlyConfigured(f"{type(self).__name__} needs a metrica: as_view(metrica=...)")
        try:
            return find_metrica(self.metrica)
        except OptionError as exc:
            raise ImproperlyConfigured(f"{type(self).__name__}: {exc}") from None

    def fixed_options(self) -> dict[str, Any]:
        """Options set in the urlconf; the query string cannot change them."""
        fixed: dict[str, Any] = {FILTER_PREFIX + axis: value for axis, value in self.filters.items()}
        if self.title is not None:
            fixed["title"] = self.title
        return fixed

    def default_options(self) -> dict[str, Any]:
        """Options used when the query string does not give them."""
        return {}

    def query_string_options(self) -> dict[str, Any]:
        """Timespans, axis filters and ``query_options`` from the query string (empty values skipped)."""
        metrica = self.get_metrica()
        params = self.request.GET
        found: dict[str, Any] = {}

        def take(param: str, name: str) -> None:
            value = params.get(param, "").strip()
            if value and name not in found:
                found[name] = value

        for name in self.query_options:
            take(name, name)
        for alias, name in self.aliases.items():
            if name in self.query_options:
                take(alias, name)
        for scale in timescale.SCALES:
            take(TIMESPAN_PREFIX + scale, TIMESPAN_PREFIX + scale)
            if scale not in metrica.axes:
                take(scale, TIMESPAN_PREFIX + scale)
        for axis in metrica.axes:
            take(FILTER_PREFIX + axis, FILTER_PREFIX + axis)
            take(axis, FILTER_PREFIX + axis)
        return found

    def get_chart_options(self) -> ChartOptions:
        """The validated options: OptionError (a 400) for a bad query string."""
        metrica = self.get_metrica()
        fixed = self.fixed_options()
        try:
            ChartOptions.parse(metrica, self.kind, fixed)
        except OptionError as exc:
            raise ImproperlyConfigured(f"{type(self).__name__}: {exc}") from None
        given = self.query_string_options()
        if any(name.startswith(TIMESPAN_PREFIX) for name in given) and "last" not in given:
            defaults = {k: v for k, v in self.default_options().items() if k != "last"}
        else:
            defaults = self.default_options()
        return ChartOptions.parse(metrica, self.kind, {**defaults, **given, **fixed})

    def get_metrica_values(self) -> MetricaValues:
        """The query the chart reads (timespan and filters applied), for subclasses and templates."""
        return self.get_chart_options().query()

    def get_spec(self, options: ChartOptions) -> specs.Spec:
        return options.spec()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Anyone may ask: every read of the request shares the public budget (a 400 past it).
        with budget(setting="STASTE_MAX_PUBLIC_QUERY_WORK"):
            return self._get(request, *args, **kwargs)

    def _get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = unreadable_query(request)
        if problem:
            return self.problem(problem, status=400)
        try:
            self.chart_options = self.get_chart_options()
            self.spec = self.get_spec(self.chart_options)
            self.spec = notes.mark(self.spec, self.chart_options.metrica.name)  # a line's notes (one query)
        except OptionError as exc:  # said in the page's language already
            return self.problem(str(exc), status=400)
        except ValueError as exc:  # what a core module refused (the budget...), said in the page's language
            return self.problem(refusals.refusal(exc), status=400)
        except (RedisUnavailable, redis.RedisError) as exc:
            logger.warning("staste: %s not drawn: %s", type(self).__name__, exc)
            detail = f"{UNAVAILABLE_MESSAGE} ({exc})" if settings.DEBUG else str(UNAVAILABLE_MESSAGE)
            return self.problem(detail, status=503)
        if request.GET.get("format") == "json":
            return json_response(self.spec)
        return self.render_to_response(self.get_context_data(**kwargs))

    def problem(self, message: str, status: int) -> HttpResponse:
        if self.request.GET.get("format") == "json":
            return json_response({"error": message}, status=status)
        metrica = self.get_metrica()
        context = {
            "view": self,
            "error": message,
            "metrica": metrica,
            "title": self.title or metrica.title,
        }
        return self.render_to_response(context, status=status)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        shown = formats.localized_spec(self.spec)  # its measures and scales in the page's language
        header, rows = specs.shown_table(shown)
        context.update(
            metrica=self.chart_options.metrica,
            options=self.chart_options,
            spec=shown,
            title=self.spec.get("title") or self.chart_options.metrica.title,
            kind=self.spec.get("type", self.kind),
            chart_id=self.chart_id,
            height=self.height,
            table_header=header,
            table_rows=rows,
            quick_ranges=formats.QUICK_RANGES,
            hidden_params=self.query_without(*self.controls),
        )
        return context

    def query_without(self, *names: str) -> list[tuple[str, str]]:
        """The query string's parameters except ``names``: hidden inputs of a form that changes them."""
        return [(key, value) for key, value in self.request.GET.dict().items() if key not in names and key != "format"]

    def url_with(self, **params: Any) -> str:
        """This page's query string with ``params`` replaced (None removes one)."""
        query = {key: value for key, value in self.request.GET.items() if key != "format"}
        for key, value in params.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = str(value)
        return "?" + urlencode(query) if query else "?"


class PieChart(Chart):
    """The metrica broken down by ``axis_keyword`` over the timespan (without one: by ``?axis=``,
    or by the next finer time scale); ``?measure=`` picks one of the metrica's measures
    (:mod:`staste.measures`: total, count, average, uniques, a percentile per value of an axis)."""

    template_name = "staste/charts/pie.html"
    kind = "pie"
    axis_keyword: str | None = None
    query_options = ("axis", "last", "measure", "limit")
    controls = ("axis", "measure")

    def fixed_options(self) -> dict[str, Any]:
        fixed = super().fixed_options()
        if self.axis_keyword:
            fixed["axis"] = self.axis_keyword
        return fixed

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        dataset = self.spec["datasets"][0] if self.spec["datasets"] else {"data": []}
        # ``axis``: its name and the chart's (label, value) pairs, for templates that list them.
        context["axis"] = {
            "name": self.chart_options.axis or self.spec.get("x"),
            "values": list(zip(self.spec["labels"], dataset["data"], strict=True)),
        }
        context["axes"] = list(self.chart_options.metrica.axes)
        metrica = self.chart_options.metrica
        # What the metrica has (percentiles only per value of an axis); a Metrica shows its total.
        offered = [m for m in measures.of(metrica) if self.chart_options.axis or not measures.is_percentile(m)]
        context["measures"] = offered if metrica.averaged else ()
        return context


class TimelineChart(Chart):
    """The metrica over the timespan, bucket by bucket of the next finer scale: the months of
    ``?timespan__year=2010``, the days of a month...; without a timespan, the years it has data
    for (``iterate()`` of all time).  Each bucket links one level down, and breadcrumbs up."""

    template_name = "staste/charts/timeline.html"
    kind = "line"

    def get_spec(self, options: ChartOptions) -> specs.Spec:
        if not options.span and not options.metrica.date_scales:
            raise OptionError(
                gettext("%(metrica)s records only all time: it has no timeline") % {"metrica": options.metrica.name}
            )
        return specs.timeline_spec(options.query(), title=options.title)

    def span_url(self, span: timescale.Span) -> str:
        """This page over another timespan, the other parameters kept."""
        metrica = self.chart_options.metrica
        params: dict[str, Any] = {TIMESPAN_PREFIX + scale: None for scale in timescale.SCALES}
        params.update({scale: None for scale in timescale.SCALES if scale not in metrica.axes})
        params.update({TIMESPAN_PREFIX + scale: n for scale, n in zip(timescale.SCALES, span, strict=False)})
        return self.url_with(**params)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        span = self.chart_options.span
        children = timescale.children(span) if span else [(int(label),) for label in self.spec["labels"]]
        drill = len(span) + 1 < len(self.chart_options.metrica.date_scales)
        rows = context["table_rows"]
        links = [(row, self.span_url(child) if drill else None) for child, row in zip(children, rows, strict=False)]
        parents = [span[:n] for n in range(1, len(span) + 1)]
        crumbs = [("all time", self.span_url(()))] + [(formats.bucket_label(s), self.span_url(s)) for s in parents]
        context.update(drilldown=links, crumbs=crumbs)
        return context


class TimeserieChart(Chart):
    """One line per value of an axis (``axis_keyword``, or ``?axis=`` / ``?show_axis=``,
    default the first axis), plus the total unless ``?hide_total=1``, over ``?last=``
    (default ``last``) or a timespan, per ``?scale=``."""

    template_name = "staste/charts/timeserie.html"
    kind = "line"
    axis_keyword: str | None = None
    last = "24 hours"
    query_options = ("axis", "last", "scale", "measure", "limit")
    aliases = {"show_axis": "axis", "timescale": "scale"}
    controls = ("axis", "show_axis", "last", "scale", "timescale", *timescale.SCALES)
    controls += tuple(TIMESPAN_PREFIX + scale for scale in timescale.SCALES)

    def fixed_options(self) -> dict[str, Any]:
        fixed = super().fixed_options()
        if self.axis_keyword:
            fixed["axis"] = self.axis_keyword
        return fixed

    def default_options(self) -> dict[str, Any]:
        metrica = self.get_metrica()
        defaults: dict[str, Any] = {"last": self.last}
        if metrica.axes:
            defaults["axis"] = next(iter(metrica.axes))
        return defaults

    def get_spec(self, options: ChartOptions) -> specs.Spec:
        if options.axis is None:
            return options.spec()
        hide_total = self.request.GET.get("hide_total", "") not in ("", "0", "false")
        found = options.range()
        return specs.marked_line(options.lines_per_value(found, with_total=not hide_total), options.query(), found)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(axes=list(self.chart_options.metrica.axes), current_axis=self.chart_options.axis)
        return context


class LatestCountAndAverageChart(Chart):
    """Counts and averages of an AveragedMetrica (a response-time metrica, typically) over the
    last ``?last=`` (default ``last``), under the filters; with ``axis_keyword`` the page offers
    a choice of that axis' values (e.g. the view of a response-time metrica)."""

    template_name = "staste/charts/latest_count_and_average.html"
    kind = "line"
    axis_keyword: str | None = None
    last = "60 minutes"
    query_options = ("last", "scale")
    controls = ("last", "scale")
    #: The range shown for ``?scale=`` alone.
    scale_ranges: Mapping[str, str] = {
        "minute": "60 minutes",
        "hour": "48 hours",
        "day": "31 days",
        "week": "12 weeks",
        "month": "24 months",
        "year": "5 years",
    }

    def get_metrica(self) -> Metrica:
        metrica = super().get_metrica()
        if not metrica.averaged:
            raise ImproperlyConfigured(
                f"{type(self).__name__} shows counts and averages: {metrica.name} must be an AveragedMetrica"
            )
        return metrica

    def default_options(self) -> dict[str, Any]:
        scale = self.request.GET.get("scale", "").strip()
        return {"last": self.scale_ranges.get(scale, self.last)}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        choices: list[str] = []
        if self.axis_keyword:
            if self.axis_keyword not in self.chart_options.metrica.axes:
                raise ImproperlyConfigured(f"{self.chart_options.metrica.name} has no axis {self.axis_keyword!r}")
            unfiltered = dataclasses.replace(
                self.chart_options,
                filters={k: v for k, v in self.chart_options.filters.items() if k != self.axis_keyword},
            )
            try:
                rows = unfiltered.query().iterate_counts(self.axis_keyword)
            except (RedisUnavailable, redis.RedisError):
                rows = []
            choices = [formats.value_label(value) for value, count in rows if count]
        current = self.chart_options.filters.get(self.axis_keyword) if self.axis_keyword else None
        if self.axis_keyword:
            context["hidden_params"] = self.query_without(
                *self.controls, self.axis_keyword, FILTER_PREFIX + self.axis_keyword
            )
        context.update(
            choice_axis=self.axis_keyword,
            choices=choices,
            current_choice=formats.value_label(current) if current is not None else "",
            scales=list(self.scale_ranges),
        )
        return context
