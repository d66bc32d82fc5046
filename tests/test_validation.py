"""Bad input gets a clear ValueError or TypeError and writes nothing, or is counted as itself.

Each case kicks a real Redis and checks the test's keys: nothing is written by a refused kick,
and an accepted one lands under the value's own text.  An int axis is also checked against a
model (hypothesis): a value is accepted exactly when it is an int, an integral number or the
canonical text of an int, and is then counted under ``str(int(value))``.
"""

from __future__ import annotations

import datetime
import decimal
import fractions
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staste import buffer, export
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis, integer
from staste.metrica import NAME_PATTERN, Metrica

D = datetime.datetime


@pytest.mark.parametrize("name", ["bad\n", "ok\n", "a\r", "\nfront", "x" * 201, "", "a b", "x}"])
def test_a_metrica_name_with_a_trailing_newline_or_other_junk_is_refused(name) -> None:
    with pytest.raises(ValueError, match="metrica name"):
        Metrica(name=name)
    assert not NAME_PATTERN.match(name)  # housekeeping matches names with the same pattern


@pytest.mark.parametrize(
    "choices",
    [[1, True], [True, 1], [0, False], [1, 1.0], [1, decimal.Decimal(1)], [1, "1"], ["a", "b", "a"], [2, 4 / 2]],
)
def test_choices_that_would_share_a_counter_are_refused(choices) -> None:
    with pytest.raises(ValueError, match="would be counted as one value"):
        Axis(choices=choices)


@pytest.mark.parametrize("nan", [float("nan"), decimal.Decimal("NaN"), decimal.Decimal("sNaN")])
def test_a_nan_choice_is_refused(nan) -> None:
    with pytest.raises(ValueError, match="not equal to itself"):
        Axis(choices=["a", nan])


BAD_CHOICE_KICKS = [decimal.Decimal("sNaN"), decimal.Decimal("NaN"), float("nan"), True, False, 3, "01", " 1"]


@pytest.mark.parametrize("value", BAD_CHOICE_KICKS)
def test_a_choices_axis_refuses_what_is_not_a_choice_with_a_value_error(value, staste_keys) -> None:
    metrica = Metrica(name="picked", axes=[("n", Axis(choices=[0, 1, 2]))])
    with pytest.raises(ValueError, match="is not one of the choices"):
        metrica.kick(n=value)
    with pytest.raises(ValueError, match="is not one of the choices"):
        metrica.filter(n=value)
    assert staste_keys() == {}


def test_a_bool_choice_is_counted_as_itself(staste_redis) -> None:
    metrica = Metrica(name="flags", axes=[("on", Axis(choices=[True, False]))])
    metrica.kick(on=True)
    metrica.kick(on=False)
    with pytest.raises(ValueError):
        metrica.kick(on=1)  # a 1 is not True here: it would land under "True"
    assert metrica.iterate("on") == [(True, 1), (False, 1)]


NOT_PARTS = [("a", "b"), None, True, False, 1.0, 2.5, b"a", decimal.Decimal(1), fractions.Fraction(1), ["b"]]


@pytest.mark.parametrize("part", NOT_PARTS, ids=repr)
def test_a_hierarchical_axis_refuses_parts_that_are_neither_strings_nor_ints(part, staste_keys, quiet_buffer) -> None:
    """A bool is no int here (True would be stored as "True", or as 1), nor is a float 1.0."""
    metrica = Metrica(name="tree", axes=[("path", HierarchicalAxis()), ("n", Axis(value_type=int))], uniques=True)
    for path in (("a", part), [part], ("a", 1, part)):
        for buffered in (False, True):
            with pytest.raises(ValueError, match="every part of a path must be a string or an int"):
                metrica.kick(path=path, n=1, unique="someone", buffered=buffered)
        with pytest.raises(ValueError, match="every part of a path must be a string or an int"):
            metrica.filter(path=path)
    assert buffer.flush() == 0
    assert staste_keys() == {}


def test_int_parts_of_a_path_are_their_decimal_text(staste_redis, quiet_buffer) -> None:
    """The seed kicks ("exp", "city", "all", 1): the node is "1", found by 1 or "1" alike."""
    metrica = Metrica(name="tree", axes=[("label", HierarchicalAxis())])
    metrica.kick(label=("exp", "city", "all", 1), date=D(2020, 1, 1))
    metrica.kick(label=("exp", "city", "all", "1"), date=D(2020, 1, 1))
    metrica.kick(label=("exp", "city", "all", -7), buffered=True, date=D(2020, 1, 1))
    metrica.kick(label=("exp", 2**64, 0), date=D(2020, 1, 1))
    buffer.flush()
    assert metrica.filter(label=("exp", "city", "all", 1)).total() == 2
    assert metrica.filter(label=("exp", "city", "all", "1")).total() == 2
    assert metrica.filter(label=("exp", "city", "all")).iterate("label") == [
        (("exp", "city", "all", "-7"), 1),
        (("exp", "city", "all", "1"), 2),
    ]
    assert metrica.filter(label=("exp", 18446744073709551616)).iterate("label") == [
        (("exp", "18446744073709551616", "0"), 1)
    ]
    assert metrica.filter(label=("exp",)).iterate("label") == [
        (("exp", "18446744073709551616"), 1),
        (("exp", "city"), 3),
    ]


def test_an_int_part_too_long_to_write_out_is_refused_clearly(staste_keys) -> None:
    metrica = Metrica(name="tree", axes=[("label", HierarchicalAxis())])
    with pytest.raises(ValueError, match="an int too long to be written out"):
        metrica.kick(label=("exp", 10**5000))
    with pytest.raises(ValueError, match="at most 1000 are accepted"):
        metrica.kick(label=("exp", 10**1000))  # 1,001 digits: longer than STASTE_MAX_VALUE_LENGTH
    with pytest.raises(ValueError, match=r"not None in a tuple holding an int too long"):
        metrica.kick(label=(None, 10**5000))
    assert staste_keys() == {}


def test_the_text_a_tuple_would_have_been_is_a_value_of_its_own(staste_redis) -> None:
    metrica = Metrica(name="tree", axes=[("path", HierarchicalAxis())])
    metrica.kick(path=("('a', 'b')", "c"))
    assert metrica.filter(path=("('a', 'b')",)).iterate("path") == [(("('a', 'b')", "c"), 1)]


INT_REFUSED = [True, False, 1.9, -0.5, float("inf"), float("nan"), decimal.Decimal("1.5"), decimal.Decimal("sNaN")]
INT_REFUSED += [
    fractions.Fraction(3, 2),
    " 1 ",
    "+1",
    "01",
    "-0",
    "1.0",
    "1e3",
    "\u0661",
    "\uff11",
    "1_000",
    "",
    b"1",
    1j,
]


@pytest.mark.parametrize("value", INT_REFUSED)
def test_an_int_axis_refuses_what_is_not_exactly_an_integer(value, staste_keys) -> None:
    metrica = Metrica(name="ints", axes=[("n", Axis(value_type=int)), ("m", StoredChoiceAxis(value_type=int))])
    with pytest.raises(ValueError, match="cannot read"):
        metrica.kick(n=value)
    with pytest.raises(ValueError, match="cannot read"):
        metrica.kick(m=value)
    assert staste_keys() == {}


def test_integral_numbers_and_plain_digits_count_under_one_int(staste_redis) -> None:
    metrica = Metrica(name="ints", axes=[("n", Axis(value_type=int))])
    for value in (1, 1.0, decimal.Decimal("1.00"), fractions.Fraction(2, 2), "1"):
        metrica.kick(n=value)
    metrica.kick(n="-7")
    metrica.kick(n=10**20)
    assert metrica.iterate("n") == [(-7, 1), (1, 5), (10**20, 1)]


def _model(value: object) -> int | None:
    """What an int axis must make of ``value``: the int it counts under, or None (refused)."""
    if type(value) is int:
        return value
    if type(value) is float:
        return int(value) if value == value and value not in (float("inf"), float("-inf")) and value % 1 == 0 else None
    if type(value) is str:
        try:
            number = int(value)
        except ValueError:
            return None
        return number if str(number) == value else None
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.from_regex("\\A[ +\\-0-9\u0661]{0,4}[0-9]{0,3}\\s?\\Z"),
        st.integers(-1000, 1000).map(str),
        st.text(max_size=4),
    )
)
def test_an_int_axis_counts_exactly_what_the_model_says(staste_redis, prefix, value) -> None:
    expected = _model(value)
    metrica = Metrica(name="modelled", axes=[("n", Axis(value_type=int))])
    if expected is None:
        with pytest.raises(ValueError):
            integer(value)
        with pytest.raises(ValueError):
            metrica.kick(n=value)
        return
    assert integer(value) == expected
    before = metrica.filter(n=expected).total()
    metrica.kick(n=value, date=D(2020, 1, 1))
    assert metrica.filter(n=expected).total() == before + 1


def test_an_export_over_millennia_of_minutes_is_refused_before_reading(staste_redis) -> None:
    metrica = Metrica(name="ancient", axes=[])
    metrica.kick(date=D(2012, 1, 1))
    with pytest.raises(ValueError, match=r"would read .* buckets; one export reads at most 1,000,000"):
        export.plan(metrica.values(), D(1, 1, 1), D(9999, 12, 31, 23, 59), "minute")
    with pytest.raises(ValueError, match="coarser --scale"):
        export.plan(metrica.values(), D(1, 1, 1), D(9999, 12, 31), "hour")
    whole = export.plan(metrica.values(), D(1, 1, 1), D(9999, 12, 31), "year")
    assert whole.buckets == 9999  # every year is cheap enough
    year_of_minutes = export.plan(metrica.values(), D(2012, 1, 1), D(2012, 12, 31, 23, 59), "minute")
    assert year_of_minutes.buckets == 366 * 1440


def test_an_export_by_many_values_counts_every_series_against_the_bound(staste_redis) -> None:
    metrica = Metrica(name="wide", axes=[("tag", StoredChoiceAxis())])
    for n in range(4):
        metrica.kick(tag=f"t{n}", date=D(2012, 1, 1))
    plan = export.plan(metrica.values(), D(2012, 1, 1), D(2012, 10, 1), "minute", by=None)
    assert plan.buckets < export.MAX_READS < plan.buckets * 4
    with pytest.raises(ValueError, match="x 4 values of --by"):
        export.plan(metrica.values(), D(2012, 1, 1), D(2012, 10, 1), "minute", by="tag")


def test_the_export_command_refuses_the_unbounded_range_with_the_reason(staste_redis) -> None:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"would read .* buckets; one export reads at most"):
        call_command(
            "staste", "export", "pocket_money", "--scale", "minute", "--since", "0001", "--until", "9999-12-31",
            stdout=out, stderr=err,
        )  # fmt: skip
    assert out.getvalue() == ""


CHOICES = [2, "a", True, 2.5]


def _choice_model(value: object) -> object:
    """The declared choice ``value`` is counted under, or None when it must be refused."""
    if isinstance(value, str):
        texts = {"2": 2, "a": "a", "True": True, "2.5": 2.5}
        return texts.get(value)
    if isinstance(value, bool):
        return True if value else None
    if isinstance(value, (int, float, decimal.Decimal, fractions.Fraction)):
        if isinstance(value, decimal.Decimal) and value.is_nan():
            return None
        return next((choice for choice in (2, 2.5) if value == choice), None)
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.booleans(),
        st.integers(-3, 3),
        st.floats(),
        st.decimals(),
        st.fractions(max_denominator=4),
        st.sampled_from(["2", "a", "True", "2.5", "2.0", "true", " a", "A", "1", "02"]),
        st.text(max_size=3),
    )
)
def test_a_choices_axis_counts_exactly_what_the_model_says(staste_redis, value) -> None:
    metrica = Metrica(name="chosen", axes=[("c", Axis(choices=CHOICES))])
    expected = _choice_model(value)
    if expected is None:
        with pytest.raises(ValueError, match="is not one of the choices"):
            metrica.kick(c=value, date=D(2020, 1, 1))
        return
    before = dict(metrica.iterate("c"))
    metrica.kick(c=value, date=D(2020, 1, 1))
    after = dict(metrica.iterate("c"))
    assert {choice: after[choice] - before[choice] for choice in after} == {
        choice: int(choice is expected) for choice in after
    }


paths = st.recursive(
    st.one_of(st.text(max_size=3), st.none(), st.integers(), st.booleans(), st.floats(), st.binary(max_size=2)),
    lambda inner: st.one_of(st.tuples(inner, inner), st.lists(inner, max_size=3)),
    max_leaves=6,
)


def _stored_path(path: Any) -> tuple[str, ...] | None:
    """The model: the path a hierarchical axis (max_depth 3) stores ``path`` as, or None when
    it refuses it.  A part is a str, or an int (not a bool) stored as its decimal text."""
    if isinstance(path, str):
        path = (path,)
    if not isinstance(path, (tuple, list)) or len(path) > 3:
        return None
    parts = []
    for part in path:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, int) and not isinstance(part, bool):
            parts.append(str(part))
        else:
            return None
    return tuple(parts)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.one_of(paths, st.tuples(st.text(max_size=3), paths)).filter(lambda path: path is not None))
def test_a_hierarchical_axis_counts_a_path_as_the_model_stores_it_or_refuses_it(staste_redis, path) -> None:
    """A path is a string or a sequence of at most max_depth strings and ints; it is read back
    as the tuple of their texts (an int's decimal digits, so that 1 and "1" are one node),
    filtered by either spelling, and anything else is refused, writing nothing (None alone
    means every value)."""
    metrica = Metrica(name="paths", axes=[("p", HierarchicalAxis(max_depth=3))])
    stored = _stored_path(path)
    if stored is None:
        before = metrica.total()
        with pytest.raises(ValueError):
            metrica.kick(p=path, date=D(2020, 1, 1))
        assert metrica.total() == before
        return
    before = metrica.filter(p=stored).total() if stored else metrica.total()
    metrica.kick(p=path, date=D(2020, 1, 1))
    assert (metrica.filter(p=stored).total() if stored else metrica.total()) == before + 1
    if stored:
        assert metrica.filter(p=path if not isinstance(path, str) else (path,)).total() == before + 1
        parent = stored[:-1]
        children = dict(metrica.filter(p=parent).iterate("p")) if parent else dict(metrica.iterate("p"))
        assert stored in children
