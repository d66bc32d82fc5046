"""staste.formats: one rule per display concern, as every output uses it."""

from __future__ import annotations

import csv
import datetime
import io
import json

import pytest

from staste import formats
from staste.axis import OTHER

#: Text a spreadsheet must never run: it starts a formula right away, or after a character some
#: spreadsheet splits cells or lines on (a `;` locale, a tab-separated import, a line break).
HOSTILE = [
    "=1+2",
    "+SUM(A1)",
    "-3",
    "@cmd",
    "\tx",
    "\rx",
    "x;=1+1",
    "x;-1",
    "x; =1",
    " =1+1",
    "\u00a0=1+1",
    "  \u00a0@cmd",
    "x;\u00a0-1",
    "x,=2",
    "a\n=1",
    "a\r\n@b",
    "x;\t;=1",
    'q";=1',
    "plain",
    "a=b",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cells_split_on(text: str, delimiter: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) for cell in row]


def test_a_multiplier_keeps_its_decimals() -> None:
    assert [formats.decimals(m) for m in (None, 1, 2, 10, 50, 100, 1000, 10**6)] == [0, 0, 1, 1, 2, 2, 3, 6]


def test_rounded_totals_keep_the_multiplier_and_averages_two_more() -> None:
    noisy = 0.1 + 0.2
    assert noisy != 0.3
    assert formats.rounded(noisy, 100) == 0.3
    assert formats.rounded(39.31021897810219, None, average=True) == 39.31
    assert formats.rounded(39.31021897810219, 100, average=True) == 39.3102
    assert formats.rounded(2.5, None) == 2  # no multiplier: whole numbers (round half to even)
    assert formats.rounded(7, 100) == 7 and formats.rounded(None, 100) is None


def test_default_ranges_follow_the_scales_recorded() -> None:
    assert formats.first_recorded(formats.DEFAULT_RANGES, ("year", "month", "day", "hour")) == "30 days"
    assert formats.first_recorded(formats.DEFAULT_RANGES, ("year", "month")) == "12 months"
    assert formats.first_recorded(formats.DEFAULT_RANGES, ("year",)) == "10 years"
    assert formats.first_recorded(formats.DEFAULT_RANGES, ()) is None
    assert formats.first_recorded(formats.SPARKLINE_RANGES, ("year", "month", "day", "hour")) == "24 hours"
    assert [formats.range_scale(text) for text in ("60 minutes", "1 hour", "12 weeks", "3 Years")] == [
        "minute",
        "hour",
        "week",
        "year",
    ]
    assert formats.first_recorded(["12 weeks", "12 months"], ("year", "month", "day")) == "12 weeks"  # from days
    assert formats.first_recorded(["12 weeks", "12 months"], ("year", "month")) == "12 months"


def test_labels() -> None:
    assert [formats.value_label(v) for v in ("boy", 17, ("a", "b"), (), "", OTHER)] == [
        "boy",
        "17",
        "a/b",
        "(all)",
        "(empty)",
        "(other)",
    ]
    assert formats.bucket_label((2010,)) == "2010"
    assert formats.bucket_label((2010, 2, 7, 13, 5)) == "2010-02-07 13:05"
    assert formats.bucket_label(datetime.datetime(2010, 2, 7, 13), "hour") == "2010-02-07 13:00"
    with pytest.raises(ValueError, match="scale"):
        formats.bucket_label(datetime.datetime(2010, 2, 7))


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_no_cell_starts_a_formula_whatever_a_spreadsheet_splits_on(delimiter: str) -> None:
    out = io.StringIO()
    writer = formats.csv_writer(out)
    writer.writerow([formats.csv_cell(cell) for cell in ("time", "value", "total")])
    for value in HOSTILE:
        writer.writerow([formats.csv_cell(cell) for cell in (datetime.datetime(2020, 1, 1), value, -3)])
    cells = cells_split_on(out.getvalue(), delimiter)
    assert len(cells) > len(HOSTILE)
    # (a spreadsheet skips spaces and NBSPs before a formula)
    unsafe = [cell for cell in cells if cell.lstrip(" \u00a0").startswith(FORMULA_STARTS)]
    if delimiter == ",":  # read as written: the bare -3 totals are numbers, not text
        assert unsafe == ["-3"] * len(HOSTILE)
    else:
        assert unsafe == []


def test_every_text_cell_is_quoted_and_reads_back() -> None:
    out = io.StringIO()
    writer = formats.csv_writer(out)
    writer.writerow([formats.csv_cell(cell) for cell in ("x;=1+1", ("=a", "b"), None, 5, 2.5, "plain")])
    assert out.getvalue() == '"x;\'=1+1","\'=a/b","",5,2.5,"plain"\r\n'
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["x;'=1+1", "'=a/b", "", "5", "2.5", "plain"]


def test_spreadsheet_safe_changes_only_what_could_run() -> None:
    assert formats.spreadsheet_safe("a=b; c, d") == "a=b; c, d"
    assert formats.spreadsheet_safe("=x") == "'=x"
    assert formats.spreadsheet_safe("a;=b,+c") == "a;'=b,'+c"
    assert formats.spreadsheet_safe("\u00a0 =1") == "'\u00a0 =1" and formats.spreadsheet_safe("a = b") == "a = b"


def test_inert_json_escapes_markup_and_keeps_text() -> None:
    text = formats.inert_json({"label": "</script><b>&", "when": datetime.date(2020, 1, 2), "name": "Zoë"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"label": "</script><b>&", "when": "2020-01-02", "name": "Zoë"}
