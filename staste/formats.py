"""How staste shows its numbers, values, buckets and ranges: one rule each, for every output.

The admin, the template tags and chart views, ``manage.py staste`` and the CSV and JSON
exports all spell things through this module (as Django's pages go through
``django.utils.formats``), so they cannot drift apart:

* :func:`rounded`: a sum of fractional buckets to the precision its metrica keeps;
* :func:`display` and :func:`with_unit`: a number as a page or a mail shows it ("1,234.50 ms");
  :func:`change_label` a change against a previous number ("▲ 12%"), :func:`like` that number;
* :data:`QUICK_RANGES`, :data:`DEFAULT_RANGES`, :data:`SPARKLINE_RANGES` and :func:`first_recorded`;
* :func:`value_label`: an axis value as text; :func:`bucket_label`: a time bucket as text,
  :func:`bucket_start` the bucket a label names; :func:`measure_label`: a measure
  (:mod:`staste.measures`) as a page names it;
* :func:`spreadsheet_safe` and :func:`csv_writer`: CSV that a spreadsheet never runs as a formula;
* :func:`inert_json`: JSON that stays inert even where a browser sniffs it as HTML.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
from collections.abc import Iterable
from typing import Any, Protocol

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext_lazy, pgettext_lazy

from staste import conf, measures, timescale
from staste.axis import OTHER

# -- numbers ----------------------------------------------------------------------------------


def decimals(multiplier: int | None) -> int:
    """The decimals a metrica's ``multiplier`` keeps: 100 keeps 2 (cents), 1000 keeps 3, None 0.

    In integers (the digits of ``multiplier - 1``), so no float logarithm rounds 1000 to 2.99.
    """
    return len(str(multiplier - 1)) if multiplier and multiplier > 1 else 0


def rounded(value: Any, multiplier: int | None, *, average: bool = False) -> Any:
    """``value`` without the float noise of adding buckets up (no 0.30000000000000004).

    A total keeps the decimals of the multiplier; an average two more (an average of cents
    is shown to hundredths of a cent, of whole numbers to two decimals).  Integers, None
    and anything else are returned as they are.
    """
    if not isinstance(value, float):
        return value
    return round(value, decimals(multiplier) + (2 if average else 0))


def shown_number(number: Any) -> Any:
    """``number`` to the precision a page shows it (two decimals; three significant digits
    below 0.01), as a number: what the CSV and JSON tables export, so they hold what the page
    prints (``794.33``, not ``794.3282347242813``).  Integers and None are kept."""
    if not isinstance(number, float):
        return number
    if number.is_integer() and abs(number) < 1e15:
        return int(number)
    if abs(number) >= 0.01:
        return round(number, 2)
    return float(f"{number:.3g}")


def display(number: Any) -> str:
    """A number as a page (or a mail) shows it, in the active language's format (``1,234.50``,
    ``1 234,50``), as the admin shows its own: :func:`shown_number`, grouped."""
    if number is None:
        return "—"
    number = shown_number(number)
    if isinstance(number, int):
        return number_format(number, force_grouping=True)
    if abs(number) >= 0.01:
        return number_format(number, 2, force_grouping=True)
    text = f"{number:.3g}"
    return text if "e" in text else number_format(number)


#: The minus sign a page writes before a fall ("\u2212" 12%), wider than a hyphen.
MINUS = "\u2212"


def signed_percent(percent: float | None) -> str:
    """A change in percent with its sign: "+12%", "\u22123.4%" (one decimal), "—" for none."""
    if percent is None:
        return "—"
    sign = "+" if percent > 0 else MINUS if percent < 0 else ""
    return f"{sign}{display(round(abs(percent), 1))}%"


def with_unit(number: Any, unit: str) -> str:
    """A number as a page shows it, followed by its unit ("48.3 ms") when it has one."""
    text = display(number)
    return f"{text} {unit}" if unit and number is not None else text


# -- ranges -----------------------------------------------------------------------------------

#: The quick ranges offered next to a chart (admin and chart views), finest first.
QUICK_RANGES: tuple[str, ...] = ("60 minutes", "24 hours", "30 days", "12 weeks", "12 months")
#: What a chart or page shows when no range is asked for: the first its metrica records.
DEFAULT_RANGES: tuple[str, ...] = ("30 days", "12 months", "10 years")
#: The dashboard's small charts: finer, the first the metrica records.
SPARKLINE_RANGES: tuple[str, ...] = ("24 hours", "30 days", "12 months", "10 years")


def range_scale(text: str) -> str:
    """The scale of a range such as ``"24 hours"``: its unit (``"12 weeks"``: week)."""
    scale = text.split()[-1].lower().removesuffix("s")
    if scale not in timescale.SERIES_SCALES:
        raise ValueError(f"unknown range {text!r}: its unit is none of {', '.join(timescale.SERIES_SCALES)}")
    return scale


#: "Last N <unit>" in the active language, per unit (plural forms differ from language to language).
_RANGE_PHRASES = {
    "minute": ngettext_lazy("Last %(count)d minute", "Last %(count)d minutes", "count"),
    "hour": ngettext_lazy("Last %(count)d hour", "Last %(count)d hours", "count"),
    "day": ngettext_lazy("Last %(count)d day", "Last %(count)d days", "count"),
    "week": ngettext_lazy("Last %(count)d week", "Last %(count)d weeks", "count"),
    "month": ngettext_lazy("Last %(count)d month", "Last %(count)d months", "count"),
    "year": ngettext_lazy("Last %(count)d year", "Last %(count)d years", "count"),
}


def range_label(text: str) -> str:
    """How a range such as ``"24 hours"`` is named on a page: "Last 24 hours", translated.

    The query string keeps the English text (``?_last=24+hours``); only what is shown changes.
    Text that is not a number and a unit is returned as it is.
    """
    parts = text.split()
    try:
        count, scale = int(parts[-2]), range_scale(text)
    except (IndexError, ValueError):
        return text
    return str(_RANGE_PHRASES[scale] % {"count": count})


def first_recorded(ranges: Iterable[str], date_scales: Iterable[str]) -> str | None:
    """The first of ``ranges`` that can be read from ``date_scales`` (None: none can)."""
    recorded = tuple(date_scales)
    return next((text for text in ranges if timescale.readable(range_scale(text), recorded)), None)


# -- labels -----------------------------------------------------------------------------------

#: How a bucket of each scale is spelled (sortable, unambiguous across days).
LABEL_FORMATS: dict[str, str] = {
    "year": "%Y",
    "month": "%Y-%m",
    "week": "%G-W%V",  # ISO year and week: 2021-01-01 is in 2020-W53
    "day": "%Y-%m-%d",
    "hour": "%Y-%m-%d %H:00",
    "minute": "%Y-%m-%d %H:%M",
}


#: What each named measure (staste.measures) is called on a page; the spec and the query
#: string keep the name, and a percentile is called by its name ("p95").
MEASURE_LABELS = {
    measures.TOTAL: pgettext_lazy("measure", "total"),
    measures.COUNT: pgettext_lazy("measure", "count"),
    measures.AVERAGE: pgettext_lazy("measure", "average"),
    measures.UNIQUES: pgettext_lazy("measure", "uniques"),
}
#: What each time scale is called as a table's first column or an axis title.
SCALE_LABELS = {
    "year": pgettext_lazy("scale", "year"),
    "month": pgettext_lazy("scale", "month"),
    "week": pgettext_lazy("scale", "week"),
    "day": pgettext_lazy("scale", "day"),
    "hour": pgettext_lazy("scale", "hour"),
    "minute": pgettext_lazy("scale", "minute"),
}

#: How the buckets of each scale are named in a sentence ("hours are kept 14 days").
SCALE_PLURALS = {
    "minute": pgettext_lazy("buckets", "minutes"),
    "hour": pgettext_lazy("buckets", "hours"),
    "day": pgettext_lazy("buckets", "days"),
    "week": pgettext_lazy("buckets", "weeks"),
    "month": pgettext_lazy("buckets", "months"),
    "year": pgettext_lazy("buckets", "years"),
}


def measure_label(name: str) -> str:
    """``"count"`` as a page shows it, translated (names that are no measure are kept)."""
    return str(MEASURE_LABELS.get(name, name))


def localized_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A chart spec with its measures and scales named in the active language, as pages draw it.

    Only staste's own words change: a dataset of a measure ("count"; "count, previous period"
    for a dataset with ``previous_of``), the axes' titles and a scale as ``x``; titles and axis
    values are the project's data and stay as they are (a scale as ``x`` is named in
    ``x_label``, which tables and charts show).  The numbers are not touched.
    """
    out = dict(spec)
    datasets = []
    for dataset in spec.get("datasets", []):
        copy = dict(dataset)
        measure = dataset.get("measure", dataset.get("label"))
        copy["measure"] = measure  # the key, for code that needs it after the label changed
        if "previous_of" in dataset:
            copy["label"] = str(_("%(measure)s (previous period)") % {"measure": measure_label(measure)})
        else:
            copy["label"] = measure_label(measure)
        datasets.append(copy)
    out["datasets"] = datasets
    if "axes" in spec:
        out["axes"] = {axis: measure_label(name) for axis, name in spec["axes"].items()}
    if spec.get("x") in SCALE_LABELS:
        out["x_label"] = str(SCALE_LABELS[spec["x"]])  # "x" stays the key the code reads
    return out


def value_label(value: Any) -> str:
    """How an axis value is shown: paths of a hierarchical axis joined by '/', everything as text."""
    if value is OTHER:
        return str(OTHER)
    if isinstance(value, tuple):
        return "/".join(str(part) for part in value) if value else "(all)"
    text = str(value)
    return text if text else "(empty)"


def bucket_label(moment: datetime.datetime | timescale.Span, scale: str | None = None) -> str:
    """How a time bucket is shown; give a span, or a bucket start and its scale.

    >>> bucket_label((2010, 2, 7, 13)), bucket_label(())
    ('2010-02-07 13:00', 'all time')
    """
    if isinstance(moment, tuple):
        scale = timescale.scale_of(moment)
        if scale is None:
            return "all time"
        moment = timescale.start(moment)
    if scale is None:
        raise ValueError("bucket_label: the scale of a datetime must be given")
    return moment.strftime(LABEL_FORMATS[scale])


def bucket_start(label: str, scale: str) -> datetime.datetime:
    """The start of the bucket that :func:`bucket_label` names ``label`` (its inverse), so code
    that holds only a chart's labels (a spec) knows where its buckets begin.

    >>> bucket_start("2010-02-07 13:00", "hour"), bucket_start("2021-W01", "week")
    (datetime.datetime(2010, 2, 7, 13, 0), datetime.datetime(2021, 1, 4, 0, 0))

    ValueError for a label that is no bucket of ``scale``.
    """
    if scale == timescale.WEEK:  # an ISO week: its Monday
        return datetime.datetime.strptime(label + "-1", LABEL_FORMATS[scale] + "-%u")
    return datetime.datetime.strptime(label, LABEL_FORMATS[scale])


def bucket_moment(label: str, scale: str) -> datetime.datetime:
    """The start of the bucket ``label`` names, with the offset of staste's time zone on that
    date: what an export writes, so a spreadsheet in another zone reads the same instant."""
    return bucket_start(label, scale).replace(tzinfo=conf.time_zone())


# -- CSV --------------------------------------------------------------------------------------

#: What a spreadsheet reads as the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A formula start just after a character that some spreadsheet may split cells or lines on.
# (Spaces, NBSP included, may come between: a spreadsheet skips them and still runs the formula.)
_FORMULA_AFTER_SEPARATOR = re.compile(r"([,;\t\r\n])(?=[^\S\t\r\n]*[=+\-@\t\r])")


class Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def spreadsheet_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it as text, never running it as a formula.

    A leading ``'`` where the text starts like a formula; and, since a spreadsheet set to
    split on ``;`` (or a tab) cuts a quoted cell at that character, a ``'`` after any
    separator or line break that a formula character follows (``x;=1+1`` is kept as
    ``x;'=1+1``), spaces or NBSPs between them too (a spreadsheet skips them).

    >>> spreadsheet_safe("\u00a0 =1+1"), spreadsheet_safe("x; =1+1"), spreadsheet_safe("a = b")
    ("'\xa0 =1+1", "x;' =1+1", 'a = b')
    """
    text = _FORMULA_AFTER_SEPARATOR.sub(r"\1'", text)
    return "'" + text if text.lstrip().startswith(FORMULA_STARTS) or text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any) -> Any:
    """One CSV cell: times in ISO 8601, axis values as labelled, text made spreadsheet-safe."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return value
    return spreadsheet_safe(value if isinstance(value, str) else value_label(value))


def csv_writer(out: Writable) -> Any:
    """A ``csv.writer`` that quotes every text cell (numbers stay bare); write rows of :func:`csv_cell`.

    RFC 4180 line ends (CRLF); a value holding a separator, a quote or a line break stays one cell.
    """
    return csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")


# -- JSON -------------------------------------------------------------------------------------

#: ``<``, ``>`` and ``&`` as \u escapes, as Django's ``json_script`` writes them.
_JSON_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


class InertJSONEncoder(DjangoJSONEncoder):
    """Django's encoder (dates, decimals...), with ``<``, ``>`` and ``&`` escaped: labels are
    user data, and a JSON answer stays inert even where a browser would sniff it as HTML."""

    def encode(self, o: Any) -> str:
        return super().encode(o).translate(_JSON_ESCAPES)


def inert_json(data: Any) -> str:
    """``data`` as JSON text (non-ASCII kept as is) with ``<``, ``>`` and ``&`` escaped."""
    return json.dumps(data, cls=InertJSONEncoder, ensure_ascii=False)


def change_label(percent: float | None, previous: Any = None, unit: str = "") -> dict[str, str]:
    """How a change in percent is shown: ``{"text": "▲ 12%", "direction": "up", "versus": "vs 98"}``.

    Below 10 % one decimal is kept (``▼ 3.4%``); no change, or nothing to compare with
    (the previous number was 0), reads as such.  ``versus`` names the previous number.
    """
    versus = _("vs %(previous)s") % {"previous": with_unit(previous, unit)}
    if percent is None:
        return {"text": "—", "direction": "none", "versus": versus}
    places = 0 if abs(percent) >= 10 else 1
    if round(abs(percent), places) == 0:
        return {"text": "= 0%", "direction": "flat", "versus": versus}
    shown = number_format(round(abs(percent), places), places, force_grouping=True)
    arrow, direction = ("▲", "up") if percent > 0 else ("▼", "down")
    return {"text": f"{arrow} {shown}%", "direction": direction, "versus": versus}


def like(previous: Any, current: Any) -> Any:
    """``previous`` shown as ``current`` is: a prorated count (11.6 events by now yesterday)
    is compared with a whole one, so it is shown whole too."""
    if isinstance(current, int) and isinstance(previous, float):
        return round(previous)
    return previous
