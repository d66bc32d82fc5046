"""A metrica's time series as CSV or JSON rows, read a chunk of buckets per round trip.

``STASTE_MAX_BUCKETS`` caps one query, so a long export (a year of hours is 8,784 buckets,
and each value of a ``by`` axis is a series of its own) is read in chunks: each chunk is one
``query.pipelined`` round trip holding at most ``BUDGET`` bucket reads, and its rows are
written before the next chunk is read, so memory stays flat however long the range.

Axis values are user data: in CSV every text cell is quoted and made spreadsheet-safe
(:func:`staste.formats.spreadsheet_safe`: a leading ``'`` where a formula would start), so
spreadsheets show it as text instead of running it; in JSON every value goes through
``json.dumps``.  Sums and averages are rounded by :func:`staste.formats.rounded`.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from staste import conf, formats, timescale
from staste.axis import OTHER
from staste.query import MetricaValues, bucket_datetime, pipelined

#: Bucket reads per round trip (buckets per chunk times series).
BUDGET = 5000

#: Most bucket reads (buckets times series) one export makes: a year of minutes is 527,040.
#: Without a bound, ``--scale minute --since 0001`` would read five billion buckets.  The range
#: is not cut at the scale's retention: a back-filled bucket (``kick(date=...)``) is kept for
#: its retention after it was written, so old buckets of a fine scale may well hold data.
MAX_READS = 1_000_000

COLUMNS = ("time", "total", "count", "average")

_RELATIVE = re.compile(r"^(\d+)\s*(m|min|h|d|w)$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """A naive datetime in the staste time zone from the command line.

    Accepts ``now``, a duration before now (``90m``, ``12h``, ``7d``, ``2w``), or an ISO date
    or time: ``2024``, ``2024-05``, ``2024-05-01``, ``2024-05-01T10:00`` (local to the staste
    time zone) or with an offset (``2024-05-01T10:00+02:00``, ``...Z``), which is converted.
    """
    now = conf.local() if now is None else now
    text = text.strip()
    if text.lower() == "now":
        return now
    relative = _RELATIVE.match(text.lower())
    if relative:
        return now - datetime.timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        if re.fullmatch(r"\d{4}", text):
            return datetime.datetime(int(text), 1, 1)
        if re.fullmatch(r"\d{4}-\d{1,2}", text):
            year, month = text.split("-")
            return datetime.datetime(int(year), int(month), 1)
        return conf.local(datetime.datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a date: give an ISO date or time (2024-05-01, 2024-05-01T10:00), "
            "a year (2024), a month (2024-05), 'now', or a duration before now (90m, 12h, 7d, 2w)"
        ) from None


@dataclass(frozen=True)
class Plan:
    """What an export reads: validated before anything is written."""

    query: MetricaValues
    start: datetime.datetime  # naive, staste time zone
    stop: datetime.datetime
    scale: str
    by: str | None
    values: tuple[Any, ...]  # the values of ``by`` (OTHER left out: it has no series of its own)
    other_left_out: bool = False

    @property
    def averaged(self) -> bool:
        return self.query.metrica.averaged

    @property
    def by_column(self) -> str | None:
        if self.by is None:
            return None
        return self.by if self.by not in COLUMNS else f"by:{self.by}"

    @property
    def columns(self) -> list[str]:
        head = ["time"] + ([self.by_column] if self.by_column else [])
        return head + (["total", "count", "average"] if self.averaged else ["total"])

    @property
    def series(self) -> int:
        return len(self.values) if self.by else 1

    @property
    def buckets(self) -> int:
        return timescale.count_buckets(self.start, self.stop, self.scale)


def plan(
    query: MetricaValues,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    scale: str | None = None,
    by: str | None = None,
) -> Plan:
    """Check an export and resolve its defaults: ``until`` now, ``since`` the first year with
    data, ``scale`` the finest one whose retention still covers ``since`` (as timeserie does).

    Costs a round trip for the years when ``since`` is not given, one for the values of ``by``.
    """
    name = query.metrica.name
    if not query.metrica.date_scales:
        raise ValueError(f"{name} records only all time: it has no time series to export (see `staste show`)")
    stop = conf.local(until)
    if since is None:
        years = [year for year, total in query.iterate() if total] or [year for year, _ in query.iterate()]
        start = datetime.datetime(min(years), 1, 1) if years else stop
        start = min(start, stop)
    else:
        start = conf.local(since)
    if stop < start:
        raise ValueError(f"--until ({stop:%Y-%m-%d %H:%M}) is before --since ({start:%Y-%m-%d %H:%M})")
    resolved, _ = query.series_spans(start, start, scale)
    # A week is read from its seven day buckets.
    buckets = timescale.count_buckets(start, stop, resolved) * (7 if resolved == timescale.WEEK else 1)
    if buckets > MAX_READS:  # before the values of ``by`` are read: a range alone can be too long
        raise ValueError(_too_long(name, start, stop, resolved, buckets, 1))
    found: list[Any] = [value for value, _ in query.iterate(by)] if by is not None else []
    values = tuple(value for value in found if value is not OTHER)
    if buckets * max(1, len(values)) > MAX_READS:
        raise ValueError(_too_long(name, start, stop, resolved, buckets, len(values)))
    return Plan(query, start, stop, resolved, by, values, other_left_out=len(values) < len(found))


def _too_long(
    name: str, start: datetime.datetime, stop: datetime.datetime, scale: str, buckets: int, series: int
) -> str:
    per = f" x {series:,} values of --by" if series > 1 else ""
    return (
        f"exporting {name} by {scale} from {start:%Y-%m-%d %H:%M} to {stop:%Y-%m-%d %H:%M} would read "
        f"{buckets:,} buckets{per}; one export reads at most {MAX_READS:,}: narrow --since/--until, "
        "or choose a coarser --scale"
    )


def chunks(
    start: datetime.datetime, stop: datetime.datetime, scale: str, size: int
) -> Iterator[tuple[datetime.datetime, datetime.datetime, int]]:
    """(first bucket start, last bucket start, buckets) of consecutive runs of ``size`` buckets."""
    span, last = timescale.truncate(start, scale), timescale.truncate(stop, scale)
    while True:
        first, count = span, 1
        while count < size and span < last:
            span = timescale.following(span)
            count += 1
        yield timescale.start(first), timescale.start(span), count
        if span >= last:
            return
        span = timescale.following(span)


def rows(export: Plan, on_progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    """Every row of the export, by time then value of ``by``; one round trip per chunk."""
    queries = [export.query.filter(**{export.by: value}) for value in export.values] if export.by else [export.query]
    if not queries:
        return
    per_chunk = max(1, min(conf.get("STASTE_MAX_BUCKETS"), BUDGET // len(queries)))
    labels = export.values if export.by else (None,)
    multiplier = export.query.metrica.multiplier
    for first, last, count in chunks(export.start, export.stop, export.scale, per_chunk):
        calls: list[Callable[[], Any]] = []
        for query in queries:
            calls.append(functools.partial(query.timeserie, first, last, export.scale))
            if export.averaged:
                calls.append(functools.partial(query.timeserie_counts_and_averages, first, last, export.scale))
        results = pipelined(calls)
        step = 2 if export.averaged else 1
        for index in range(count):
            for position, label in enumerate(labels):
                moment, total = results[position * step][index]
                row: dict[str, Any] = {"time": moment}
                if export.by_column:
                    row[export.by_column] = label
                row["total"] = formats.rounded(total, multiplier)
                if export.averaged:
                    _, row["count"], average = results[position * step + 1][index]
                    row["average"] = formats.rounded(average, multiplier, average=True)
                yield row
        if on_progress is not None:
            on_progress(count * len(queries))


def write_csv(out: formats.Writable, export: Plan, found: Iterator[dict[str, Any]]) -> int:
    """The rows as CSV with a header line; returns how many rows were written."""
    writer = formats.csv_writer(out)
    columns = export.columns
    writer.writerow([formats.csv_cell(column) for column in columns])
    written = 0
    for row in found:
        writer.writerow([formats.csv_cell(row[column]) for column in columns])
        written += 1
    return written


def json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def write_json(out: formats.Writable, export: Plan, found: Iterator[dict[str, Any]]) -> int:
    """One JSON object, its ``rows`` streamed one per line; returns how many rows were written."""
    query = export.query
    head = {
        "metrica": query.metrica.name,
        "title": str(query.metrica.title),
        "scale": export.scale,
        "since": bucket_datetime(timescale.truncate(export.start, export.scale)).isoformat(),
        "until": bucket_datetime(timescale.truncate(export.stop, export.scale)).isoformat(),
        "filters": {name: json_value(value) for name, value in query.filters.items()},
        "by": export.by,
        "columns": export.columns,
    }
    text = json.dumps(head, ensure_ascii=False, allow_nan=False)
    out.write(text[:-1] + ', "rows": [')
    written = 0
    for row in found:
        line = json.dumps({key: json_value(value) for key, value in row.items()}, ensure_ascii=False, allow_nan=False)
        out.write(("," if written else "") + "\n" + line)
        written += 1
    out.write("\n]}\n")
    return written
