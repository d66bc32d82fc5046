"""Property tests against a model: random kick sequences, checked against a pure-Python model of
the counters (what every query must answer, computed without Redis)."""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staste import keys
from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica

DATES = [
    datetime.datetime(2010, 2, 7, 13, 5),
    datetime.datetime(2010, 2, 7, 13, 59),
    datetime.datetime(2010, 2, 28, 23, 0),
    datetime.datetime(2010, 12, 31, 23, 59),
    datetime.datetime(2011, 1, 1, 0, 0),
    datetime.datetime(2012, 2, 29, 6, 30),
]
GENDERS = ["boy", "girl", None]
# Text that stresses the encoding: separators, escapes, markers, empty, unicode.
TAGS = st.one_of(
    st.none(),
    st.sampled_from(["", "*", "__all__", "|", "/", "\\", "\\p", "=", "!", "#", ":", "a\nb"]),
    st.text(max_size=6),
)
KICK = st.tuples(st.sampled_from(DATES), st.sampled_from(GENDERS), TAGS, st.integers(-50, 1000))
SPANS = [(), (2010,), (2010, 2), (2010, 2, 7), (2010, 2, 7, 13), (2010, 2, 7, 13, 5), (2011, 1, 1), (2012,)]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Model:
    """What the counters should hold: sums and counts per (span, gender, tag), None = every."""

    def __init__(self) -> None:
        self.sums: dict[tuple, int] = defaultdict(int)
        self.counts: dict[tuple, int] = defaultdict(int)
        self.tags: set[str] = set()
        self.years: set[int] = set()

    def kick(self, date: datetime.datetime, gender: str | None, tag: str | None, value: int) -> None:
        full = (date.year, date.month, date.day, date.hour, date.minute)
        self.years.add(date.year)
        if tag is not None:
            self.tags.add(tag)
        for depth in range(6):
            for g in {None, gender}:
                for t in {None, tag}:
                    self.sums[full[:depth], g, t] += value
                    self.counts[full[:depth], g, t] += 1

    def average(self, *where: object) -> float | None:
        count = self.counts.get(where, 0)
        return self.sums[where] / count if count else None


@SETTINGS
@given(kicks=st.lists(KICK, max_size=25))
def test_counters_match_the_model(kicks) -> None:
    metrica = AveragedMetrica(
        name=f"model-{uuid.uuid4().hex[:10]}",
        axes=[("gender", Axis(choices=["boy", "girl"])), ("tag", StoredChoiceAxis(max_choices=0))],
    )
    model = Model()
    for date, gender, tag, value in kicks:
        metrica.kick(value=value, date=date, gender=gender, tag=tag)
        model.kick(date, gender, tag, value)

    assert metrica.iterate() == [(year, model.sums[(year,), None, None]) for year in sorted(model.years)]
    for span in SPANS:
        query = metrica.timespan(*span)
        for gender in GENDERS:
            assert query.filter(gender=gender).total() == model.sums[span, gender, None]
            assert query.filter(gender=gender).count() == model.counts[span, gender, None]
            expected_tags = [(tag, model.sums[span, gender, tag]) for tag in sorted(model.tags)]
            assert query.filter(gender=gender).iterate("tag") == expected_tags
        for tag in model.tags:
            assert query.filter(tag=tag).iterate_averages("gender") == [
                (g, model.average(span, g, tag)) for g in ("boy", "girl")
            ]
        if 0 < len(span) < 5:
            children = query.iterate_counts()
            for child, count in children:
                assert count == model.counts[(*span, child), None, None]


@SETTINGS
@given(value=st.text(), other=st.text())
def test_any_text_round_trips_through_the_field_encoding(value, other) -> None:
    part = keys.value_part(value)
    assert keys.decode_part(part) == value
    assert keys.PART_SEPARATOR not in part and keys.PATH_SEPARATOR not in part
    assert (keys.value_part(other) == part) == (other == value)
    assert part not in (keys.ALL, keys.OVERFLOW)


@SETTINGS
@given(path=st.lists(st.text(max_size=5), min_size=1, max_size=4))
def test_any_path_round_trips(path) -> None:
    assert keys.decode_path_part(keys.path_part(path)) == tuple(path)
