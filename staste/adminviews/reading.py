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

from django.utils.translation import gettext as _

from staste import conf, formats, measures, timescale
from staste.axis import OTHER, Axis
from staste.charts.spec import (
    BAR_LIMIT,
    PIE_LIMIT,
    REST_LABEL,
    Range,
    Spec,
    bucket_status,
    line_spec,
    mark_time,
    series_spec,
    timeline_spec,
    top_values,
    value_colors,
    with_units,
)
from staste.formats import bucket_label
from staste.formats import value_label as label
from staste.measures import PERCENTILES, keeps_uniques_by
from staste.metrica import Metrica
from staste.query import MetricaValues, pipelined

from . import compare
from .state import PageState

#: Most stored values a dropdown lists.
MAX_OPTIONS = 1000
#: Most values of a breakdown whose percentiles are read (those with the most events).
MAX_PERCENTILE_VALUES = 50
#: Most buckets whose own p50/p95/p99 the line draws: each is a histogram read of its own (1,500
#: minutes would be 1,500 of them, about 150,000 counters); a longer line draws count and average.
MAX_PERCENTILE_POINTS = 400


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
    #: The bucket each line label stands for, to drill down into it (None: nothing to see there).
    line_spans: list[timescale.Span | None]
    #: The breakdown as drawn: ranked, the smallest values pooled (see spec.top_values).
    breakdown: Spec | None
    summary: dict[str, Any]
    options: dict[str, list[Option]]
    range: Range | None
    #: Every value of the breakdown, largest first, one column per measure (the table, the CSV).
    breakdown_table: Spec | None = None
    #: The previous period's numbers (``?_compare=previous``): see :func:`_previous`.
    previous: dict[str, Any] | None = None
    #: What the page's time is: see :func:`time_status`.
    status: str = "complete"

    @property
    def expired(self) -> bool:
        """Whether the page's calendar span is past its retention (Redis dropped its counters)."""
        return self.status == EXPIRED

    @property
    def future(self) -> bool:
        """Whether the page's calendar span has not begun (nothing can have been measured)."""
        return self.status == FUTURE


def axis_options(axis: Axis, stored: list[tuple[Any, Any]] | None) -> list[Option]:
    """The dropdown of one axis: declared choices, or the values Redis stored (never OTHER)."""
    if axis.choices is not None:
        return [Option(c, axis.check(c), label(c), label(c)) for c in axis.choices]
    options = []
    for value, _count in stored or []:
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
    now = conf.local()
    calls: dict[str, Any] = {}
    line_spans: list[Any] = []
    if found is not None:
        since, until, scale = found
        calls["line"] = lambda: line_spec(query, since, until, scale)
        line_spans = list(query.series_spans(since, until, scale)[1])  # (a week: its Monday)
        # The cards read the range's exact cover, as the breakdown does: where the line's
        # buckets have expired (30 days by hour), coarser ones still count them, so the Total
        # card and the breakdown agree (the line's note says the buckets are gone).
        covered = query.over(since, until, scale)
        calls["total"] = covered.total
        if metrica.averaged:
            calls["count"] = covered.count
            calls["average"] = covered.average
    else:
        if len(query.span) < len(metrica.date_scales):
            calls["line"] = lambda: timeline_spec(query)
            if query.span:
                line_spans = timescale.children(query.span)
        calls["total"] = query.total
        if metrica.averaged:
            calls["count"] = query.count
            calls["average"] = query.average
    uniques_kept = metrica.uniques_axes.keeps(query.filters)  # (uniques_axes=: which combinations)
    if not uniques_kept:
        pass
    elif found is not None and keeps_uniques_by(metrica, found.scale):
        # The distinct ids of the whole range: the union of its buckets, not a sum.
        calls["uniques"] = lambda: query.over(since, until, scale).uniques()
    elif found is None and keeps_uniques_by(metrica, timescale.scale_of(query.span)):
        calls["uniques"] = query.uniques
    if metrica.histogram:
        if found is not None:
            calls["percentiles"] = lambda: query.percentiles_over(since, until, scale, PERCENTILES)
        else:
            calls["percentiles"] = lambda: query.percentiles(list(PERCENTILES))
        if "line" in calls and (found is not None or query.span) and len(line_spans) <= MAX_PERCENTILE_POINTS:
            # p50/p95/p99 over time too, bucket by bucket, with the line (same pipeline).
            calls["line_percentiles"] = lambda: line_percentiles(query, found)
    if state.by is not None:
        window = {"since": found.since, "until": found.until, "scale": found.scale} if found else {}
        calls["breakdown"] = lambda: breakdown_columns(state, query, window)
        if measures.percentiles_of(shown_measures(state)):
            calls["value_percentiles"] = lambda: value_percentiles(state, query, window)
    for name, axis in metrica.axes.items():
        if axis.choices is None:
            calls[f"options:{name}"] = _stored_values(metrica, name, state)
    period = None
    if state.compare:
        line_scale = timescale.SCALES[len(query.span)] if "line" in calls and found is None else None
        period = compare.previous_period(found, state.span, line_scale)
        if period is not None and period.unavailable is None:
            calls.update(_previous_calls(state, period, uniques="uniques" in calls))
    results = dict(zip(calls, pipelined(list(calls.values())), strict=True))

    line = results.get("line")
    if line is not None and results.get("line_percentiles") is not None:
        line = with_percentile_lines(line, results["line_percentiles"])
    if found is None and not query.span and line is not None:
        line_spans = [(int(text),) for text in line["labels"]]  # all time: the stored years
    options = {name: axis_options(axis, results.get(f"options:{name}")) for name, axis in metrica.axes.items()}
    full, chart = None, None
    if "breakdown" in results:
        if "value_percentiles" in results:
            add_percentiles(results["value_percentiles"], results["breakdown"], shown_measures(state))
        full, chart = _breakdown_specs(state, results["breakdown"])
    summary = _summary(metrica, results)
    status = time_status(state.span, summary, now)
    if status in (EXPIRED, FUTURE):
        # Nothing was measured here, or nothing is held any more: no number, not a 0.
        summary = unmeasured(summary)
        full = chart = None
        if status == FUTURE:
            line = None
    previous = _previous(metrica, period, results, line) if period is not None else None
    if line is not None:
        line, line_spans = mark_time(line, line_spans, now, found.scale if found is not None else None)
        if found is not None and found.scale == timescale.WEEK:
            line_spans = [None] * len(line_spans)  # a week is no calendar span to drill into
    return PageData(
        # Named in the page's language from here on: the page, its JSON and CSV show the same.
        line=formats.localized_spec(line) if line is not None else None,
        line_spans=line_spans,
        breakdown=formats.localized_spec(chart) if chart is not None else None,
        summary=summary,
        options=options,
        range=found,
        breakdown_table=full,
        previous=previous,
        status=status,
    )


#: What a page's time is (``PageData.status``): the exports and the cards say it, never a 0.
PARTIAL, EXPIRED, FUTURE, COMPLETE = "partial", "expired", "future", "complete"


def time_status(span: timescale.Span | None, summary: dict[str, Any], now: Any) -> str:
    """Whether the page's time is "partial" (it reaches now: a range, today, all time),
    "expired" (a span past its retention that reads nothing: Redis dropped it), "future"
    (a span that has not begun) or "complete"."""
    if span is None:
        return PARTIAL
    status = bucket_status(span, now)
    if status == EXPIRED and summary.get("count", summary.get("total")):
        return COMPLETE  # written late (a backfill): kept from the write, shown as it is
    return status


def unmeasured(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` with every number None: a time Redis no longer holds or that has not begun."""
    out: dict[str, Any] = {key: None for key in summary}
    if "percentiles" in summary:
        out["percentiles"] = {name: None for name in summary["percentiles"] or {}}
    return out


def shown_measures(state: PageState) -> tuple[str, ...]:
    """The measures of the breakdown's table: the metrica's (measures.of), and the one it is
    ranked by when that is another percentile (``_measure=p99.9``)."""
    found = measures.of(state.metrica)
    return found if state.measure in found else (*found, state.measure)


def line_percentiles(query: MetricaValues, found: Range | None) -> list[Any]:
    """p50/p95/p99 of each bucket of the line: the range's buckets, or the span's children."""
    if found is not None:
        return query.timeserie_percentiles(found.since, found.until, found.scale, PERCENTILES)
    children = timescale.children(query.span)
    scale = timescale.SCALES[len(query.span)]
    first, last = timescale.start(children[0]), timescale.start(children[-1])
    return query.metrica.values().filter(**query.filters).timeserie_percentiles(first, last, scale, PERCENTILES)


def with_percentile_lines(line: Spec, rows: list[Any]) -> Spec:
    """The line with p50, p95 and p99 per bucket, on the averages' axis (the same unit)."""
    if len(rows) != len(line.get("labels", [])):
        return line
    datasets = [
        {"label": f"p{p}", "data": [(found or {}).get(p) for _moment, found in rows], "axis": "y1"} for p in PERCENTILES
    ]
    return {**line, "datasets": [*line["datasets"], *datasets]}


def breakdown_columns(state: PageState, query: MetricaValues, window: dict[str, Any]) -> dict[str, Any]:
    """{"values": [...], measure: [number per value]} of the breakdown by ``state.by``.

    Counts, sums and averages come from the same reads (a pipelined batch sends each once);
    percentiles come from :func:`value_percentiles`, read in the same batch.
    """
    metrica, axis = state.metrica, state.by
    assert axis is not None
    wanted = shown_measures(state)
    ranged = query.over(window["since"], window["until"], window["scale"]) if window else query
    columns: dict[str, Any] = {}
    values: list[Any] = []
    for name in wanted:
        if name == measures.UNIQUES or measures.is_percentile(name):
            continue
        rows = measures.find(name).by_value(ranged, axis)
        values = [value for value, _ in rows]
        columns[name] = [number for _, number in rows]
    if measures.UNIQUES in wanted:
        # By value (the counters list the values), None where the buckets keep no ids (a
        # range by hours or minutes).
        if keeps_uniques_by(
            metrica, window["scale"] if window else timescale.scale_of(query.span)
        ) and metrica.uniques_axes.keeps({*query.filters, axis}):
            distinct = dict(measures.find(measures.UNIQUES).by_value(ranged, axis))
            columns[measures.UNIQUES] = [distinct.get(value, 0) for value in values]
        else:
            columns[measures.UNIQUES] = [None] * len(values)
    return {"values": values, **columns}


def value_percentiles(
    state: PageState, query: MetricaValues, window: dict[str, Any]
) -> dict[Any, dict[float, float | None]]:
    """The percentiles of the breakdown's table (p50/p95/p99) for every value of its axis: one
    read (``iterate_percentiles`` scans each bucket's histogram once), pipelined with the rest
    of the page."""
    assert state.by is not None
    ranged = query.over(window["since"], window["until"], window["scale"]) if window else query
    return dict(ranged.iterate_percentiles(state.by, measures.percentiles_of(shown_measures(state))))


def add_percentiles(
    found: dict[Any, dict[float, float | None]], columns: dict[str, Any], shown: tuple[str, ...]
) -> None:
    """The percentile columns of ``shown`` into ``columns``, for the ``MAX_PERCENTILE_VALUES``
    values with the most events that have at least ``STASTE_MIN_RANKED_COUNT`` of them (or the
    largest totals, where events are not counted); the others get None: a table of thousands of
    values stays readable, and four slow logins do not top "slowest by p95" (their count is in
    the table)."""
    values = columns["values"]
    counts = columns.get(measures.COUNT)
    weights = counts or columns.get(measures.TOTAL) or [0] * len(values)
    least = max(1, int(conf.get("STASTE_MIN_RANKED_COUNT"))) if counts else 1
    ranked = sorted(range(len(values)), key=lambda i: -(weights[i] or 0))
    chosen = [i for i in ranked if values[i] is not OTHER and weights[i] and (weights[i] or 0) >= least]
    chosen = chosen[:MAX_PERCENTILE_VALUES]
    names = [name for name in shown if measures.is_percentile(name)]
    for name in names:
        columns[name] = [None] * len(values)
    for i in chosen:
        result = found.get(values[i], {})
        for name, p in zip(names, measures.percentiles_of(names), strict=True):
            columns[name][i] = result.get(p)


def _breakdown_specs(state: PageState, columns: dict[str, Any]) -> tuple[Spec, Spec]:
    """The table (every value, every measure, largest first) and the chart (ranked, pooled)."""
    metrica, axis = state.metrica, state.by
    assert axis is not None
    values = columns["values"]
    names = [m for m in shown_measures(state) if m in columns]
    key = columns[state.measure]
    order = sorted(range(len(values)), key=lambda i: (key[i] is None, -(key[i] or 0)))
    shown_filter = state.filters.get(axis)
    if shown_filter is not None and not metrica.axes[axis].hierarchical:
        # A filtered axis: only its value, highlighted (the others are not in the numbers).
        order = [i for i in order if values[i] == shown_filter or label(values[i]) == label(shown_filter)]
    labels = [label(values[i]) for i in order]
    datasets = [(name, [columns[name][i] for i in order], "y") for name in names]
    additive = measures.find(state.measure).additive
    if additive:
        whole = sum(columns[state.measure][i] or 0 for i in order)
        shares = [100 * (columns[state.measure][i] or 0) / whole if whole else None for i in order]
        datasets.insert(names.index(state.measure) + 1, ("share", shares, "y"))
    full = with_units(series_spec(labels, datasets, title=metrica.title, x=axis, chart="bar"), metrica)
    full["measure"] = state.measure
    charted = order
    if state.measure.startswith("p"):  # only the values ranked by it (enough events): the others have none
        charted = [i for i in order if columns[state.measure][i] is not None]
    one = series_spec(
        [label(values[i]) for i in charted],
        [(state.measure, [columns[state.measure][i] for i in charted], "y")],
        x=axis,
    )
    if additive and len(labels) <= PIE_LIMIT:
        one["type"] = "pie"
        chart = top_values(one, PIE_LIMIT, REST_LABEL)
    else:
        one["type"] = "bar"
        chart = top_values(one, BAR_LIMIT, REST_LABEL)
        chart["horizontal"] = True
    chart["title"] = breakdown_title(state)
    if state.measure.startswith("p") and "count" in columns:
        # Each percentile with the number of events it is read from (the tooltip shows it).
        count_of = {label(values[i]): columns["count"][i] for i in order}
        chart["counts"] = [count_of.get(text) for text in chart["labels"]]
    chart = value_colors(with_units(chart, metrica), metrica.axes[axis])
    if shown_filter is not None and chart["labels"]:
        chart["highlight"] = 0
    return full, chart


def breakdown_title(state: PageState) -> str:
    """The breakdown chart's title: what is ranked, by what (the slowest first for percentiles)."""
    if measures.is_percentile(state.measure):
        return _("Slowest by %(measure)s") % {"measure": state.measure}
    if state.measure == measures.AVERAGE:
        return _("Highest average by %(axis)s") % {"axis": state.by}
    return _("%(title)s by %(axis)s") % {"title": state.metrica.title, "axis": state.by}


def _previous_calls(state: PageState, period: compare.Period, uniques: bool = False) -> dict[str, Any]:
    """The reads of the previous period, to join the page's pipeline (its distinct ids too
    when the page shows those of the current one)."""
    metrica = state.metrica
    query = metrica.values().filter(**state.filters)
    calls: dict[str, Any] = {}
    if uniques:
        calls["previous:uniques"] = lambda: _previous_uniques(query, period)
    if period.range is not None:
        since, until, scale = period.range
        calls["previous:sums"] = lambda: query.timeserie(since, until, scale)
        if metrica.averaged:
            calls["previous:counts"] = lambda: query.timeserie_counts(since, until, scale)
        if metrica.histogram:
            calls["previous:percentiles"] = lambda: query.percentiles_over(since, until, scale, PERCENTILES)
        if uniques and keeps_uniques_by(metrica, scale):  # the line's uniques, bucket by bucket
            calls["previous:uniques_series"] = lambda: query.timeserie_uniques(since, until, scale)
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


def _previous_uniques(query: MetricaValues, period: compare.Period) -> float:
    """The previous period's distinct ids up to the point the current one has reached.

    A count of distinct ids is the count of a union, not a sum: up to the point it is the
    union of the buckets before it, and of the bucket at it prorated, i.e. the union without
    that bucket plus ``fraction`` of what the bucket adds to it.  Where those buckets keep no
    ids (the hours of a day), the whole previous period's count is prorated by the part of
    the period that has elapsed.  A period that is over counts whole.
    """
    if period.range is not None:
        since, until, scale = period.range
        whole = query.over(since, until, scale)
    else:
        whole = query.timespan(*(period.span or ()))
    if period.index is None:
        return float(whole.uniques())
    if period.range is not None:
        starts = [timescale.start(bucket) for bucket in query.series_spans(since, until, scale)[1]]
    else:
        span = period.span or ()
        child = timescale.SCALES[len(span)] if len(span) < len(query.metrica.date_scales) else None
        buckets = timescale.children(span) if child is not None else []
        if child is None or not keeps_uniques_by(query.metrica, child):
            elapsed = (period.index + period.fraction) / len(buckets) if buckets else period.fraction
            return whole.uniques() * min(1.0, elapsed)
        since, scale, starts = timescale.start(span), child, [timescale.start(bucket) for bucket in buckets]
    if period.index >= len(starts):  # a 31st day over a 30-day month: the previous one whole
        return float(whole.uniques())
    at = query.over(since, starts[period.index], scale).uniques()
    before = query.over(since, starts[period.index - 1], scale).uniques() if period.index > 0 else 0
    return before + (at - before) * period.fraction


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
    if "previous:uniques" in results:
        summary["uniques"] = results["previous:uniques"]
    if results.get("previous:percentiles") is not None:
        summary["percentiles"] = {f"p{p}": results["previous:percentiles"].get(p) for p in PERCENTILES}
    out["summary"] = summary
    if line is not None and rows is not None:
        if period.range is not None:
            labels = [bucket_label(moment, period.range.scale) for moment, _ in rows]
        else:
            labels = [bucket_label((*(period.span or ()), number)) for number, _ in rows]
        distinct = (
            [value for _, value in results["previous:uniques_series"]] if "previous:uniques_series" in results else None
        )
        _add_previous_datasets(metrica, line, labels, sums, counts, distinct)
    return out


def _add_previous_datasets(
    metrica: Metrica,
    line: Spec,
    labels: list[str],
    sums: list[Any],
    counts: list[Any],
    uniques: list[Any] | None = None,
) -> None:
    """The previous period's numbers as datasets over the current labels (bucket i over bucket i),
    its distinct ids too where the line draws the current ones."""
    length = len(line["labels"])
    if metrica.averaged:
        averages = [total / count if count else None for total, count in zip(sums, counts, strict=True)]
        columns = {"count": counts, "average": averages}
    else:
        columns = {"total": sums}
    if uniques is not None:
        columns["uniques"] = uniques
    added = []
    for index, dataset in enumerate(list(line["datasets"])):
        data = columns.get(dataset["label"])
        if data is None:
            continue
        added.append(
            {
                "label": f"{dataset['label']} (previous period)",
                "measure": dataset["label"],
                "data": compare.fit(data, length),
                "axis": dataset.get("axis", "y"),
                "previous_of": index,
                "labels": compare.fit(labels, length),
            }
        )
    line["datasets"] += added


def _summary(metrica: Metrica, results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"total": results["total"]}
    if metrica.averaged:
        summary.update(count=results["count"], average=results["average"])
    summary["total"] = formats.rounded(summary["total"], metrica.multiplier)
    if metrica.averaged:
        summary["average"] = formats.rounded(summary["average"], metrica.multiplier, average=True)
    if measures.TOTAL not in measures.of(metrica):  # a sum of durations means nothing: no card
        del summary["total"]
    if "uniques" in results:
        summary["uniques"] = results["uniques"]
    if results.get("percentiles") is not None:
        summary["percentiles"] = {f"p{p}": results["percentiles"].get(p) for p in PERCENTILES}
    return summary
