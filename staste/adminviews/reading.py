"""Everything a metrica page shows, read from Redis in one batch of pipelined reads.

The page, its JSON and its CSV are built from one :class:`PageData`, so the exports hold
exactly what the page shows.  The cost does not grow with the number of buckets: the line,
the breakdown, the summary and the dropdowns' stored values are one ``pipelined`` call (one
pipeline, scripts included), the
percentiles of a metrica with a histogram included.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from staste import timescale
from staste.axis import OTHER, Axis
from staste.charts.spec import Range, Spec, label, line_spec, pie_spec, timeline_spec
from staste.metrica import Metrica
from staste.query import pipelined

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
        line_spans = query.series_spans(since, until, scale)[1]
        # the summary of a range: its exact cover (a few buckets), not the line's every bucket
        summed = query.over(since, until, scale)
    else:
        if len(query.span) < len(metrica.date_scales):
            calls["line"] = lambda: timeline_spec(query)
            if query.span:
                line_spans = timescale.children(query.span)
        summed = query
    calls["total"] = summed.total
    if metrica.averaged:
        calls["count"] = summed.count
        calls["average"] = summed.average
    if metrica.histogram:
        calls["percentiles"] = lambda: summed.percentiles(list(PERCENTILES))
    if state.by is not None:
        window = {"since": found.since, "until": found.until, "scale": found.scale} if found else {}
        calls["breakdown"] = lambda: pie_spec(query, state.by, measure=state.measure, **window)
    for name, axis in metrica.axes.items():
        if axis.choices is None:
            calls[f"options:{name}"] = _stored_values(metrica, name, state)
    results = dict(zip(calls, pipelined(list(calls.values())), strict=True))

    line = results.get("line")
    if found is None and not query.span and line is not None:
        line_spans = [(int(text),) for text in line["labels"]]  # all time: the stored years
    return PageData(
        line=line,
        line_spans=line_spans,
        breakdown=results.get("breakdown"),
        summary=_summary(metrica, results),
        options={name: axis_options(axis, results.get(f"options:{name}")) for name, axis in metrica.axes.items()},
        range=found,
    )


def _summary(metrica: Metrica, results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"total": results["total"]}
    if metrica.averaged:
        summary.update(count=results["count"], average=results["average"])
    if metrica.multiplier and isinstance(summary["total"], float):
        summary["total"] = round(summary["total"], len(str(metrica.multiplier)))
    if results.get("percentiles") is not None:
        summary["percentiles"] = {f"p{p}": results["percentiles"].get(p) for p in PERCENTILES}
    return summary
