"""Everything a metrica page shows, read from Redis in one batch of pipelined reads.

The page, its JSON and its CSV are built from one :class:`PageData`, so the exports hold
exactly what the page shows.  The cost does not grow with the number of buckets: the line,
the breakdown, the summary and the dropdowns' stored values are one ``pipelined`` call (one
pipeline, plus redis-py's SCRIPT EXISTS when a stored axis or the years are listed), the
percentiles of a metrica with a histogram included.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from staste import formats, timescale
from staste.axis import OTHER, Axis
from staste.charts.spec import Range, Spec, line_spec, pie_spec, timeline_spec
from staste.formats import bucket_label
from staste.formats import value_label as label
from staste.metrica import Metrica
from staste.query import pipelined

from . import compare
from .state import PageState

#: Most stored values a dropdown lists.
MAX_OPTIONS = 1000
PERCENTILES = (50, 95, 99)


@dataclasses.dataclass(frozen=True)
class Option:
    """One value of an axis as a dropdown offers it."""

    value: Any  # what filter() takes (a tuple path for a hierarchical axis)
    param: str  # its query-string text (the last path element for a hierarchical axis)
    label: str  # how it is shown in the dropdown
    full_label: str  # how charts spell it (spec.label), to link their rows back to the filter


@dataclasses.dataclass
class PageData:
    line: Spec | None
    #: The bucket each line label stands for, to drill down into it.
    line_spans: list[timescale.Span]
    breakdown: Spec | None
    summary: dict[str, Any]
    options: dict[str, list[Option]]
    range: Range | None
    #: The previous period's numbers (``?_compare=previous``): see :func:`_previous`.
    previous: dict[str, Any] | None = None


def axis_options(axis: Axis, stored: list[tuple[Any, Any]] | None) -> list[Option]:
    """The dropdown of one axis: declared choices, or the values Redis stored (never OTHER)."""
    if axis.choices is not None:
        return [Option(c, axis.check(c), label(c), label(c)) for c in axis.choices]
    options = []
    for value, _ in stored or []:
        if value is OTHER:
            continue
        if axis.hierarchical:
            options.append(Option(value, value[-1], label(value[-1]), label(value)))
        else:
            options.append(Option(value, axis.check(value), label(value), label(value)))
        if len(options) >= MAX_OPTIONS:
            break
    return options


def _stored_values(metrica: Metrica, name: str, state: PageState) -> Any:
    """The read that lists an axis' stored values (children of the chosen node, when hierarchical)."""
    axis = metrica.axes[name]
    if axis.hierarchical:
        node = state.filters.get(name)
        return lambda: metrica.values().filter(**{name: node}).iterate(name)
    return lambda: metrica.values().iterate(name)


def read_page(state: PageState) -> PageData:
    """Read everything the page shows.  Raises what reading Redis raises (see base.READ_FAILURES)."""
    metrica = state.metrica
    query = state.query()
    found = state.range()
    calls: dict[str, Any] = {}
    line_spans: list[timescale.Span] = []
    if found is not None:
        since, until, scale = found
        calls["line"] = lambda: line_spec(query, since, until, scale)
        if scale != timescale.WEEK:  # a week is no calendar span to drill into
            line_spans = query.series_spans(since, until, scale)[1]
        calls["sums"] = lambda: query.timeserie(since, until, scale)
        if metrica.averaged:
            calls["counts"] = lambda: query.timeserie_counts(since, until, scale)
    else:
        if len(query.span) < len(metrica.date_scales):
            calls["line"] = lambda: timeline_spec(query)
            if query.span:
                line_spans = timescale.children(query.span)
        calls["total"] = query.total
        if metrica.averaged:
            calls["count"] = query.count
            calls["average"] = query.average
    if metrica.histogram:
        if found is not None:
            calls["percentiles"] = lambda: query.percentiles_over(since, until, scale, PERCENTILES)
        else:
            calls["percentiles"] = lambda: query.percentiles(list(PERCENTILES))
    if state.by is not None:
        window = {"since": found.since, "until": found.until, "scale": found.scale} if found else {}
        calls["breakdown"] = lambda: pie_spec(query, state.by, measure=state.measure, **window)
    for name, axis in metrica.axes.items():
        if axis.choices is None:
            calls[f"options:{name}"] = _stored_values(metrica, name, state)
    period = None
    if state.compare:
        line_scale = timescale.SCALES[len(query.span)] if "line" in calls and found is None else None
        period = compare.previous_period(found, state.span, line_scale)
        if period is not None and period.unavailable is None:
            calls.update(_previous_calls(state, period))
    results = dict(zip(calls, pipelined(list(calls.values())), strict=True))

    line = results.get("line")
    if found is None and not query.span and line is not None:
        line_spans = [(int(text),) for text in line["labels"]]  # all time: the stored years
    summary = _summary(metrica, results)
    previous = _previous(metrica, period, results, line) if period is not None else None
    return PageData(
        line=line,
        line_spans=line_spans,
        breakdown=results.get("breakdown"),
        summary=summary,
        options={name: axis_options(axis, results.get(f"options:{name}")) for name, axis in metrica.axes.items()},
        range=found,
        previous=previous,
    )


def _previous_calls(state: PageState, period: compare.Period) -> dict[str, Any]:
    """The reads of the previous period, to join the page's pipeline."""
    metrica = state.metrica
    query = metrica.values().filter(**state.filters)
    calls: dict[str, Any] = {}
    if period.range is not None:
        since, until, scale = period.range
        calls["previous:sums"] = lambda: query.timeserie(since, until, scale)
        if metrica.averaged:
            calls["previous:counts"] = lambda: query.timeserie_counts(since, until, scale)
        if metrica.histogram:
            calls["previous:percentiles"] = lambda: query.percentiles_over(since, until, scale, PERCENTILES)
        return calls
    before = query.timespan(*(period.span or ()))
    if len(before.span) < len(metrica.date_scales):  # the chart's buckets, one scale finer
        calls["previous:sums"] = before.iterate
        if metrica.averaged:
            calls["previous:counts"] = before.iterate_counts
    calls["previous:total"] = before.total
    if metrica.averaged:
        calls["previous:count"] = before.count
    if metrica.histogram:
        calls["previous:percentiles"] = lambda: before.percentiles(list(PERCENTILES))
    return calls


def _previous(metrica: Metrica, period: compare.Period, results: dict[str, Any], line: Spec | None) -> dict[str, Any]:
    """The previous period's summary (up to the point the current one has reached) and its
    dashed datasets, added to ``line`` (so the table and exports carry them too)."""
    out: dict[str, Any] = {
        "since": period.range.since if period.range else timescale.start(period.span or ()),
        "until": period.range.until if period.range else timescale.end(period.span or ()),
        "span": period.span,
        "unavailable": period.unavailable,
        "summary": None,
    }
    if period.unavailable is not None:
        return out
    rows = results.get("previous:sums")
    sums = [value for _, value in rows or []]
    counts = [value for _, value in results.get("previous:counts", [])]
    if period.range is not None or (period.index is not None and rows is not None):
        total: float = compare.same_point(sums, period)
        count = compare.same_point(counts, period) if metrica.averaged else None
    else:  # a span that is over counts whole
        total = results["previous:total"]
        count = results["previous:count"] if metrica.averaged else None
        if period.index is not None:  # the finest span recorded, still running: prorated
            total *= period.fraction
            count = count * period.fraction if count is not None else None
    summary: dict[str, Any] = {"total": total}
    if metrica.averaged:
        summary.update(count=count, average=total / count if count else None)
    if results.get("previous:percentiles") is not None:
        summary["percentiles"] = {f"p{p}": results["previous:percentiles"].get(p) for p in PERCENTILES}
    out["summary"] = summary
    if line is not None and rows is not None:
        if period.range is not None:
            labels = [bucket_label(moment, period.range.scale) for moment, _ in rows]
        else:
            labels = [bucket_label((*(period.span or ()), number)) for number, _ in rows]
        _add_previous_datasets(metrica, line, labels, sums, counts)
    return out


def _add_previous_datasets(metrica: Metrica, line: Spec, labels: list[str], sums: list[Any], counts: list[Any]) -> None:
    """The previous period's numbers as datasets over the current labels (bucket i over bucket i)."""
    length = len(line["labels"])
    if metrica.averaged:
        averages = [total / count if count else None for total, count in zip(sums, counts, strict=True)]
        columns = {"count": counts, "average": averages}
    else:
        columns = {"total": sums}
    added = []
    for index, dataset in enumerate(list(line["datasets"])):
        data = columns.get(dataset["label"])
        if data is None:
            continue
        added.append(
            {
                "label": f"{dataset['label']} (previous period)",
                "data": compare.fit(data, length),
                "axis": dataset.get("axis", "y"),
                "previous_of": index,
                "labels": compare.fit(labels, length),
            }
        )
    line["datasets"] += added


def _summary(metrica: Metrica, results: dict[str, Any]) -> dict[str, Any]:
    if "sums" in results:
        # A week whose days have expired is None: the summary adds up what is still kept.
        total = sum(value for _, value in results["sums"] if value is not None)
        summary: dict[str, Any] = {"total": total}
        if metrica.averaged:
            count = sum(value for _, value in results["counts"] if value is not None)
            summary.update(count=count, average=total / count if count else None)
    else:
        summary = {"total": results["total"]}
        if metrica.averaged:
            summary.update(count=results["count"], average=results["average"])
    summary["total"] = formats.rounded(summary["total"], metrica.multiplier)
    if metrica.averaged:
        summary["average"] = formats.rounded(summary["average"], metrica.multiplier, average=True)
    if results.get("percentiles") is not None:
        summary["percentiles"] = {f"p{p}": results["percentiles"].get(p) for p in PERCENTILES}
    return summary
