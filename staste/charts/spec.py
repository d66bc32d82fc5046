"""Chart specs: the plain dicts that ``staste/static/staste/charts.js`` draws.

A spec is JSON-ready and holds every number the chart shows, so the same dict feeds the
chart (through Django's ``json_script``), the table under it (:func:`table`) and the CSV and
JSON exports; what is exported is exactly what is drawn::

    {"type": "line" | "pie" | "bar",
     "title": str,
     "labels": [str, ...],                      # x values, or slices
     "datasets": [{"label": str, "data": [number | None, ...], "axis": "y" | "y1"}],
     "axes": {"y": "left axis title", "y1": "right axis title"},
     "x": "what the labels are",                # e.g. "hour" or "gender"; the table's first column
     "x_label": "how x is named on a page"}     # optional: "x" in the page's language
     # optional, for the reader's sake:
     "units": {"y": "ms"},                      # written after the values of an axis
     "integer": ["y"],                          # axes that only hold whole numbers (counts)
     "partial": [i, ...], "expired": [i, ...],  # buckets still filling up, buckets Redis dropped
     "shares": [percent, ...], "pooled": n,     # a ranked breakdown (see top_values)
     "highlight": i, "links": [url | None, ...], "horizontal": true}

Stable API (the admin, the template tags and the generic views build on it):

* :func:`parse_last` reads quick ranges such as ``"24 hours"`` into a :class:`Range`;
* :func:`line_spec` charts a query over time (an AveragedMetrica: counts on the left axis,
  averages on the right);
* :func:`timeline_spec` charts a query's span bucket by bucket (a day by hours, all time by years);
* :func:`pie_spec` charts a query broken down by an axis (or by the next finer time scale),
  over the query's span or over a range of buckets;
* :func:`table` gives the rows behind any spec (labels are spelled by :mod:`staste.formats`).

Each ``*_spec`` function costs what the query method it calls costs: one Redis round trip.
Labels are user data: they are only ever emitted as JSON (``json_script`` escapes ``<``,
``>`` and ``&``) or through Django's autoescaping.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.utils.translation import gettext

from staste import conf, measures, timescale
from staste.exceptions import BadRange
from staste.formats import bucket_label, display, value_label
from staste.measures import keeps_uniques_by
from staste.query import MetricaValues, pipelined

Spec = dict[str, Any]

BREAKDOWN_TYPES = ("pie", "bar")
#: Most slices a pie shows (the rest pooled into one); more values are drawn as bars.
PIE_LIMIT = 10
#: Most bars a breakdown bar chart shows (the rest pooled into one).
BAR_LIMIT = 15
#: The pooled slice of the values past the limit.
REST_LABEL = "(rest)"

_UNITS = {"minute": "minute", "hour": "hour", "day": "day", "week": "week", "month": "month", "year": "year"}
_LAST = re.compile(r"^\s*(?:last\s+)?(\d{1,7})\s+(minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)


class Range(NamedTuple):
    """A time range: naive datetimes in the staste time zone's calendar, as ``timeserie`` takes them."""

    since: datetime.datetime
    until: datetime.datetime
    scale: str


def parse_last(text: str, now: datetime.datetime | None = None) -> Range:
    """The range of the last N units up to ``now``, the current (partial) bucket included.

    ``"60 minutes"``, ``"24 hours"``, ``"30 days"``, ``"12 weeks"``, ``"12 months"``, ``"3 years"``
    (singular, plural and a leading ``"last "`` are accepted) give exactly N buckets of that
    scale (weeks are ISO weeks, from Monday 00:00, read from the day buckets).  Anything else,
    zero, or more buckets than ``STASTE_MAX_BUCKETS`` (counting a week as its seven days) raises
    ValueError.
    """
    match = _LAST.match(text) if isinstance(text, str) else None
    if not match:
        raise BadRange(
            f"bad range {text!r}: give a number and a unit, e.g. 'last 24 hours' "
            "(units: minutes, hours, days, weeks, months, years)",
            text,
            "form",
        )
    number, unit = int(match.group(1)), match.group(2).lower()
    scale = _UNITS[unit]
    limit = conf.get("STASTE_MAX_BUCKETS") // (7 if scale == timescale.WEEK else 1)
    if not 1 <= number <= limit:
        raise BadRange(
            f"bad range {text!r}: the number of {scale}s must be between 1 and {limit}", text, "number", scale, limit
        )
    until = conf.local(now)
    last = timescale.start(timescale.truncate(until, "day" if scale == timescale.WEEK else scale))
    try:
        if scale == "year":
            since = last.replace(year=last.year - number + 1)
        elif scale == "month":
            months = last.year * 12 + last.month - 1 - (number - 1)
            since = last.replace(year=months // 12, month=months % 12 + 1)
        elif scale == timescale.WEEK:
            since = timescale.start(timescale.week_of(until)) - datetime.timedelta(weeks=number - 1)
        else:
            since = last - datetime.timedelta(**{f"{scale}s": number - 1})
    except (OverflowError, ValueError):
        raise BadRange(f"bad range {text!r}: it starts before the year 1", text, "start", scale) from None
    return Range(since, until, scale)


def line_spec(
    query: MetricaValues,
    since: Any,
    until: Any = None,
    scale: str | None = None,
    *,
    title: str | None = None,
) -> Spec:
    """A line chart of ``query`` per bucket from ``since`` to ``until`` (default: now).

    Without ``scale`` the finest scale still retained at ``since`` is used (see
    ``MetricaValues.timeserie``).  One round trip; ValueError for a bad range or scale.
    """
    scale, _ = query.series_spans(since, until, scale)  # validates before touching Redis
    metrica = query.metrica
    # A metrica counting distinct ids draws them too, where its buckets keep them (same round trip).
    uniques = keeps_uniques_by(metrica, scale)
    if metrica.averaged:
        calls: list[Any] = [lambda: query.timeserie_counts_and_averages(since, until, scale)]
        if uniques:
            calls.append(lambda: query.timeserie_uniques(since, until, scale))
        rows, *distinct = _read(calls)
        datasets = [("count", [count for _, count, _ in rows], "y"), ("average", [avg for _, _, avg in rows], "y1")]
    else:
        calls = [lambda: query.timeserie(since, until, scale)]
        if uniques:
            calls.append(lambda: query.timeserie_uniques(since, until, scale))
        rows, *distinct = _read(calls)
        datasets = [("total", [total for _, total in rows], "y")]
    if distinct:
        datasets.append(("uniques", [count for _, count in distinct[0]], "y"))
    return with_units(
        series_spec(
            [bucket_label(row[0], scale) for row in rows],
            datasets,
            title=metrica.title if title is None else title,
            x=scale,
        ),
        metrica,
    )


def _read(calls: list[Any]) -> list[Any]:
    """The results of ``calls``: one call as it is, several in one round trip (``pipelined``
    runs each call twice, which a long series would pay for in Python)."""
    return [calls[0]()] if len(calls) == 1 else pipelined(calls)


def series_spec(
    labels: Sequence[str],
    datasets: Sequence[tuple[str, Sequence[Any], str]],
    *,
    title: str = "",
    x: str = "",
    chart: str = "line",
) -> Spec:
    """A spec from numbers already read: ``datasets`` are (label, data, "y" or "y1")."""
    axes: dict[str, str] = {}
    for name, _, axis in datasets:
        axes.setdefault(axis, name)
    return {
        "type": chart,
        "title": title,
        "labels": list(labels),
        "datasets": [{"label": name, "data": list(data), "axis": axis} for name, data, axis in datasets],
        "axes": axes,
        "x": x,
    }


def timeline_spec(query: MetricaValues, *, title: str | None = None) -> Spec:
    """A line chart of ``query``'s span bucket by bucket one scale finer (all time: by year).

    An AveragedMetrica shows counts on the left axis and averages on the right.  One round
    trip (the years of all time are read by a script; redis-py may check it is loaded first).
    """
    metrica = query.metrica
    x = timescale.SCALES[len(query.span)] if len(query.span) < len(timescale.SCALES) else "minute"
    name = metrica.title if title is None else title
    uniques = keeps_uniques_by(metrica, x) and (bool(query.span) or bool(metrica.uniques_scales))
    extra: list[Any] = [query.iterate_uniques] if uniques else []
    if metrica.averaged:
        counts, averages, *distinct = pipelined([query.iterate_counts, query.iterate_averages, *extra])
        labels = [bucket_label((*query.span, number)) for number, _ in counts]
        datasets = [
            ("count", [count for _, count in counts], "y"),
            ("average", [average for _, average in averages], "y1"),
        ]
        numbers = [number for number, _ in counts]
    else:
        rows, *distinct = _read([query.iterate, *extra])
        labels = [bucket_label((*query.span, number)) for number, _ in rows]
        datasets = [("total", [total for _, total in rows], "y")]
        numbers = [number for number, _ in rows]
    if distinct:  # (all time: the years of the counters; a year without ids counts 0)
        found = dict(distinct[0])
        datasets.append(("uniques", [found.get(number, 0) for number in numbers], "y"))
    return with_units(series_spec(labels, datasets, title=name, x=x), metrica)


def pie_spec(
    query: MetricaValues,
    axis: str | None,
    *,
    measure: str | None = None,
    title: str | None = None,
    chart: str = "pie",
    since: Any = None,
    until: Any = None,
    scale: str | None = None,
) -> Spec:
    """``query`` broken down by ``axis`` (None: by the next finer time scale), as a pie or bars.

    ``measure`` is one the metrica has (:mod:`staste.measures`; by default ``measures.default``):
    "total", "count", "average", "uniques" or a percentile such as "p95" (per value of an
    axis).  Only a measure that adds up (a total, a count) is drawn as a pie; the others are
    bars (averages and percentiles do not add up; an id may be under several values).  With
    ``since`` the breakdown covers the buckets from ``since`` to ``until`` at ``scale`` (as
    :func:`line_spec` would draw them) instead of the query's span, read from the fewest buckets
    that cover the range exactly and summed in Redis (``MetricaValues.over``).  One round trip.
    """
    chosen = measures.get(query.metrica, measure or measures.default(query.metrica))
    if chart not in BREAKDOWN_TYPES:
        raise ValueError(f"unknown breakdown chart {chart!r}; use one of {', '.join(BREAKDOWN_TYPES)}")
    if not chosen.additive:
        chart = "bar"
    if since is not None:
        if axis is None:
            raise ValueError("a breakdown over a range of buckets needs an axis")
        rows = range_breakdown(query, axis, chosen.name, since, until, scale)
    else:
        rows = chosen.by_value(query, axis)
    if axis is None:
        labels = [bucket_label((*query.span, number)) for number, _ in rows]
        x = timescale.SCALES[len(query.span)] if query.span else "year"
    else:
        labels = [value_label(value) for value, _ in rows]
        x = axis
    name = query.metrica.title if title is None else title
    spec = series_spec(labels, [(chosen.name, [value for _, value in rows], "y")], title=name, x=x, chart=chart)
    return with_units(spec, query.metrica)


def range_breakdown(
    query: MetricaValues, axis: str, measure: str, since: Any, until: Any, scale: str | None
) -> list[tuple[Any, Any]]:
    """(value, measure) per value of ``axis`` over a range, read from the fewest buckets that
    cover it exactly (``MetricaValues.over``)."""
    return measures.get(query.metrica, measure).by_value(query.over(since, until, scale), axis)


def bucket_status(span: timescale.Span, now: datetime.datetime | None = None, week: bool = False) -> str:
    """Whether a bucket is "future", "partial" (now falls in it), "expired" or "complete".

    A bucket's counters expire ``conf.retention()[scale]`` seconds after it ends (kick.lua
    sets that TTL), so an expired bucket reads as 0 although events happened: pages must say
    "expired", not 0.  ``now`` is a naive local datetime (default: ``conf.local()``).
    ``week``: ``span`` is the Monday of an ISO week, read from its seven days (it ends a week
    later, and expires with its last day).
    """
    now = conf.local() if now is None else now
    if not span:
        return "partial"
    begin, finish = timescale.start(span), timescale.end(span)
    if week:
        finish = begin + datetime.timedelta(days=7)
    if begin > now:
        return "future"
    if now < finish:
        return "partial"
    keep = conf.retention().get(timescale.scale_of(span) or "")
    if keep is not None and finish + datetime.timedelta(seconds=keep) <= now:
        return "expired"
    return "complete"


def mark_time(
    spec: Spec,
    spans: Sequence[timescale.Span | None],
    now: datetime.datetime | None = None,
    scale: str | None = None,
) -> tuple[Spec, list[timescale.Span | None]]:
    """A line spec told the truth about time, and the spans still worth drilling into.

    Buckets that have not begun are dropped (nothing to draw yet); the one now falls in is
    listed in ``"partial"``; a bucket past its retention that reads nothing is listed in
    ``"expired"``, its numbers None (not 0) and its span None, so no link leads into it.  (A
    bucket past its retention that still holds numbers was written late, a backfill: kick.lua
    keeps it ``retention`` seconds from the write, and it is shown as it is.)  ``scale``: the
    series' (weeks are told by their Mondays' day spans).
    """
    labels = spec.get("labels", [])
    if len(spans) != len(labels):
        return spec, list(spans)
    datasets = spec.get("datasets", [])
    week = scale == timescale.WEEK
    statuses = [bucket_status(span, now, week) if span is not None else "complete" for span in spans]
    for i, status in enumerate(statuses):
        if status == "expired" and any(d["data"][i] for d in datasets):
            statuses[i] = "complete"
    keep = [i for i, status in enumerate(statuses) if status != "future"]
    out = {
        **spec,
        "labels": [labels[i] for i in keep],
        "datasets": [_kept(d, keep, statuses) for d in datasets],
        "partial": [n for n, i in enumerate(keep) if statuses[i] == "partial"],
        "expired": [n for n, i in enumerate(keep) if statuses[i] == "expired"],
    }
    return out, [None if statuses[i] == "expired" else spans[i] for i in keep]


def marked_line(spec: Spec, query: MetricaValues, found: Range | None, now: datetime.datetime | None = None) -> Spec:
    """A line of ``query`` told the truth about time (:func:`mark_time`): over ``found``'s
    buckets, or (None) the children of the query's span (all time: the years it draws).  The
    bucket now falls in is listed as partial (drawn dashed, not as a cliff), those that have not
    begun are dropped, expired ones are None.  No Redis call: the spans are computed."""
    if found is not None:
        spans: list[timescale.Span] = query.series_spans(found.since, found.until, found.scale)[1]
        scale: str | None = found.scale
    elif query.span:
        spans, scale = timescale.children(query.span), None
    else:
        spans, scale = [(int(text),) for text in spec.get("labels", [])], None
    return mark_time(spec, spans, now, scale)[0]


def _kept(dataset: dict[str, Any], keep: list[int], statuses: list[str]) -> dict[str, Any]:
    """A dataset's points at ``keep``, None where expired (and its own labels, a previous period's)."""
    out = {**dataset, "data": [None if statuses[i] == "expired" else dataset["data"][i] for i in keep]}
    if isinstance(dataset.get("labels"), list) and len(dataset["labels"]) == len(statuses):
        out["labels"] = [dataset["labels"][i] for i in keep]
    return out


def value_colors(spec: Spec, axis: Any, names: Sequence[str] | None = None) -> Spec:
    """``spec`` told where each value stands in its axis' declared choices (``"colors"``), so
    charts.js gives a value the same colour everywhere, whatever else is drawn beside it;
    ``names``: the values drawn (default: the labels).  Values of an axis without declared
    choices are None there: charts.js hashes their text into the palette."""
    if axis is None or axis.choices is None:
        return spec
    order = {value_label(choice): i for i, choice in enumerate(axis.choices)}
    spec["colors"] = [order.get(text) for text in (spec.get("labels", []) if names is None else names)]
    return spec


def unmeasured(spec: Spec, status: str) -> Spec:
    """A breakdown of a span told what its time is: one that has not begun ("future"), or that
    Redis no longer holds ("expired", nothing read), has no numbers (None, never 0) and says
    so in ``"status"``."""
    datasets = spec.get("datasets", [])
    if status == "future" or (status == "expired" and not any(any(d["data"]) for d in datasets)):
        return {**spec, "status": status, "datasets": [{**d, "data": [None] * len(d["data"])} for d in datasets]}
    return spec


def with_units(spec: Spec, metrica: Any) -> Spec:
    """``spec`` told which axes hold whole numbers (integer ticks) and which carry the metrica's unit.

    Counts are whole and have no unit; totals are whole unless the metrica has a multiplier;
    totals, averages and percentiles ("p95") are in ``metrica.unit``.
    """
    units: dict[str, str] = {}
    integer: list[str] = []
    for dataset in spec.get("datasets", []):
        axis, name = dataset.get("axis", "y"), dataset["label"]
        if not measures.is_measure(name):
            continue
        measure = measures.find(name)
        if measure.whole(metrica):
            integer.append(axis)
        if measure.in_unit and metrica.unit:
            units[axis] = metrica.unit
    spec["units"] = units
    spec["integer"] = sorted(set(integer))
    return spec


def top_values(spec: Spec, limit: int, rest_label: str = REST_LABEL) -> Spec:
    """A breakdown ranked by its measure, largest first, with each value's share in percent.

    Past ``limit`` values the smallest are pooled into one ``rest_label`` slice (its
    ``"pooled"`` says how many); averages and percentiles do not add up, so for them the
    ``limit`` largest are kept and no share is given.  Values without a number (None) go last.
    """
    if not spec.get("datasets"):
        return spec
    dataset = spec["datasets"][0]
    rows = sorted(
        zip(spec["labels"], dataset["data"], strict=True),
        key=lambda row: (row[1] is None, -(row[1] or 0)),
    )
    additive = measures.is_measure(dataset["label"]) and measures.find(dataset["label"]).additive
    pooled = 0
    if len(rows) > limit:
        if additive:
            pooled = len(rows) - (limit - 1)
            rows = [*rows[: limit - 1], (rest_label, sum(value or 0 for _, value in rows[limit - 1 :]))]
        else:
            rows = rows[:limit]
    out = {
        **spec,
        "labels": [text for text, _ in rows],
        "datasets": [{**dataset, "data": [value for _, value in rows]}],
        "pooled": pooled,
    }
    if additive:
        whole = sum(value or 0 for _, value in rows)
        out["shares"] = [100 * (value or 0) / whole if whole else None for _, value in rows]
    else:
        out.pop("shares", None)
    return out


def shown_table(spec: Spec) -> tuple[list[str], list[list[str]]]:
    """:func:`table` as a page prints it: numbers grouped and rounded as the admin shows them
    (``formats.display``), an expired bucket's cells "expired" (never 0 nor blank) and the bucket
    still filling up marked "partial"."""
    header, rows = table(spec)
    partial, expired = set(spec.get("partial", [])), set(spec.get("expired", []))
    shown = []
    for i, row in enumerate(rows):
        label = f"{row[0]} ({gettext('partial')})" if i in partial else str(row[0])
        if i in expired:
            values = [gettext("expired")] * (len(row) - 1)
        else:
            values = ["" if value is None else display(value) for value in row[1:]]
        shown.append([label, *values])
    return header, shown


def table(spec: Spec) -> tuple[list[str], list[list[Any]]]:
    """The header and rows behind a spec: one row per label, one column per dataset."""
    datasets = spec.get("datasets", [])
    header = [spec.get("x_label") or spec.get("x") or "label", *(dataset["label"] for dataset in datasets)]
    rows = [[text, *(dataset["data"][i] for dataset in datasets)] for i, text in enumerate(spec.get("labels", []))]
    return header, rows
