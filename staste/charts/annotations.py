"""The annotations of a line chart: which notes fall in its buckets, and where.

A line spec (``staste.charts.spec``) names its buckets by their labels and its scale by
``x``; :func:`mark` reads where each bucket begins from those (``formats.bucket_start``), so it
works on any line spec whoever built it (the admin, the dashboard, the template tags, the
generic views), and adds::

    "annotations": [{"at": 12.5, "time": "2024-03-10T14:30:00+01:00", "when": "2024-03-10 14:30",
                     "text": "Release 2.3"}, ...]

``at`` is the position on the chart's x axis in buckets: the index of the bucket holding the
note plus the part of that bucket gone by (12.5: halfway through bucket 12), which
``staste/static/staste/charts.js`` draws as a vertical marker whose tooltip is the text.
``time`` is the moment itself (ISO 8601, in ``STASTE_TIME_ZONE``), for a time axis and for the
exports.  Text is user data: it only ever leaves as JSON (``json_script``) and is drawn on a
canvas, never as HTML.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Sequence
from typing import Any, overload

from staste import annotations as staste_annotations  # apart from `from __future__ import annotations`
from staste import conf, formats, timescale
from staste.models import Annotation

Spec = dict[str, Any]


def bucket_starts(spec: Spec) -> list[datetime.datetime] | None:
    """Where each bucket of a line spec begins (None: not a line over time buckets)."""
    scale, labels = spec.get("x"), spec.get("labels") or []
    if spec.get("type") != "line" or scale not in timescale.SERIES_SCALES or not labels:
        return None
    try:
        return [formats.bucket_start(str(label), scale) for label in labels]
    except ValueError:  # labels that are not this scale's buckets
        return None


def bucket_end(begin: datetime.datetime, scale: str) -> datetime.datetime:
    """Where the bucket of ``scale`` that starts at ``begin`` ends."""
    if scale == timescale.WEEK:
        return begin + datetime.timedelta(weeks=1)
    return timescale.end(timescale.truncate(begin, scale))


@overload
def mark(spec: Spec, metrica: str) -> Spec: ...
@overload
def mark(spec: None, metrica: str) -> None: ...
def mark(spec: Spec | None, metrica: str) -> Spec | None:
    """``spec`` with the annotations of ``metrica`` that fall in its buckets (one query).

    Any other spec (a pie, a bar, None) is returned as it is.
    """
    if spec is None:
        return None
    return mark_all([(spec, metrica)])[0]


def mark_all(charts: Sequence[tuple[Spec | None, str]]) -> list[Spec | None]:
    """:func:`mark` for many charts (the dashboard's), with one query for all of them."""
    found: list[tuple[int, list[datetime.datetime], datetime.datetime]] = []
    for index, (spec, _metrica) in enumerate(charts):
        starts = bucket_starts(spec) if spec is not None else None
        if starts and spec is not None:
            found.append((index, starts, bucket_end(starts[-1], spec["x"])))
    out = [spec for spec, _metrica in charts]
    if not found:
        return out
    notes = staste_annotations.between(min(item[1][0] for item in found), max(item[2] for item in found))
    for index, starts, end in found:
        spec, metrica = charts[index]
        assert spec is not None
        out[index] = {**spec, "annotations": placed(notes, metrica, starts, end, spec["x"])}
    return out


def placed(
    notes: Sequence[Annotation], metrica: str, starts: list[datetime.datetime], end: datetime.datetime, scale: str
) -> list[dict[str, Any]]:
    """Where each note of ``metrica`` falls among buckets starting at ``starts`` (ending at ``end``)."""
    out = []
    for note in notes:
        if not note.shown_on(metrica):
            continue
        moment = staste_annotations.to_local(note.time)
        if not starts[0] <= moment < end:
            continue
        index = bisect.bisect_right(starts, moment) - 1
        following = starts[index + 1] if index + 1 < len(starts) else end
        finish = min(following, bucket_end(starts[index], scale))
        if moment >= finish:  # between two buckets the chart does not show (stored years)
            continue
        part = (moment - starts[index]) / (finish - starts[index])
        out.append(
            {
                "at": round(index + part, 4),
                "time": moment.replace(tzinfo=conf.time_zone()).isoformat(),
                "when": formats.bucket_label(moment, "minute"),
                "text": note.text,
            }
        )
    return out


def listed(spec: Spec | None) -> list[dict[str, str]]:
    """The annotations of a marked spec as the exports list them: time and text."""
    return [{"time": note["time"], "text": note["text"]} for note in (spec or {}).get("annotations", [])]
