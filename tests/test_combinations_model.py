"""``Metrica(combinations=...)`` against a Python model: random axes (stored, choice,
hierarchical, int), random ``k`` or lists of kept sets, random kicks (synchronous and buffered).
Every kept filter and breakdown answers what the model says; every unkept one is refused; and a
key dump shows that no field of an unkept combination was written.

Run on one Redis here and on a 3-primary cluster by tests/test_cluster.py (the module is in
its list)."""

from __future__ import annotations

import datetime
import itertools
import uuid
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staste import buffer, keys
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.exceptions import CombinationNotKept
from staste.metrica import Metrica
from tests.keydump import dump

pytestmark = pytest.mark.usefixtures("quiet_buffer")

DATE = datetime.datetime(2024, 3, 5, 10, 30)
#: Each kind of axis, and values a kick may give it (None: not given).
KINDS: dict[str, tuple[Any, list[Any]]] = {
    "stored": (StoredChoiceAxis, ["a", "b", "|", ""]),
    "choice": (lambda: Axis(choices=["x", "y", "z"]), ["x", "y", "z"]),
    "hierarchical": (HierarchicalAxis, [("o",), ("o", "s"), ("o", "s", "g"), ("i", "x")]),
    "int": (lambda: Axis(value_type=int), [0, 7, -3]),
}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[str], Any, list[tuple[dict[str, Any], int, bool]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=2, max_size=5))
    names = [f"{kind[:3]}{index}" for index, kind in enumerate(kinds)]
    if draw(st.booleans()):
        setting: Any = draw(st.integers(1, len(names)))
    else:
        groups = draw(st.lists(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True), max_size=3))
        setting = [tuple(group) for group in groups] + [(name,) for name in names]  # every axis kept alone
    kick = st.tuples(
        st.fixed_dictionaries(
            {name: st.sampled_from([None, *KINDS[kind][1]]) for name, kind in zip(names, kinds, strict=True)}
        ),
        st.integers(-5, 100),
        st.booleans(),
    )
    return kinds, setting, draw(st.lists(kick, min_size=1, max_size=15))


def label(kind: str, value: Any) -> Any:
    """How a value reads back from a breakdown (a path as its stored texts)."""
    return tuple(str(part) for part in value) if kind == "hierarchical" else value


def kept_by_model(setting: Any, fixed: set[str]) -> bool:
    if isinstance(setting, int):
        return len(fixed) <= setting
    return not fixed or any(fixed <= set(group) for group in setting)


class Model:
    """Sums per combination: per axis None (every value) or one value (a path prefix)."""

    def __init__(self, names: list[str], kinds: list[str]) -> None:
        self.names, self.kinds = names, kinds
        self.sums: dict[tuple[Any, ...], int] = defaultdict(int)

    def kick(self, values: dict[str, Any], amount: int) -> None:
        options = []
        for name, kind in zip(self.names, self.kinds, strict=True):
            value = values[name]
            if value is None:
                options.append([None])
            elif kind == "hierarchical":
                path = label(kind, value)
                options.append([None] + [path[:depth] for depth in range(1, len(path) + 1)])
            else:
                options.append([None, value])
        for combination in itertools.product(*options):
            self.sums[combination] += amount

    def breakdown(self, filters: dict[str, Any], axis: str) -> dict[Any, int]:
        """{value: sum} of ``axis`` under ``filters`` (a filtered hierarchical axis: its children)."""
        index = self.names.index(axis)
        found: dict[Any, int] = defaultdict(int)
        for combination, total in self.sums.items():
            value = combination[index]
            if value is None or not self.matches(combination, filters, skip=axis):
                continue
            if self.kinds[index] == "hierarchical":
                parent = label("hierarchical", filters[axis]) if axis in filters else ()
                if len(value) != len(parent) + 1 or value[: len(parent)] != parent:
                    continue
            elif axis in filters:
                continue
            found[value] += total
        return {value: total for value, total in found.items() if total}

    def total(self, filters: dict[str, Any]) -> int:
        return sum(total for combination, total in self.sums.items() if self.matches(combination, filters))

    def matches(self, combination: tuple[Any, ...], filters: dict[str, Any], skip: str | None = None) -> bool:
        for name, kind, value in zip(self.names, self.kinds, combination, strict=True):
            if name == skip:
                continue
            wanted = label(kind, filters[name]) if name in filters else None
            if value != wanted:
                return False
        return True


@SETTINGS
@given(case=cases())
def test_every_kept_question_matches_the_model_and_every_unkept_one_is_refused(case, staste_redis, prefix) -> None:
    kinds, setting, kicks = case
    names = [f"{kind[:3]}{index}" for index, kind in enumerate(kinds)]
    metrica = Metrica(
        name=f"cm-{uuid.uuid4().hex[:10]}",
        axes=[(name, KINDS[kind][0]()) for name, kind in zip(names, kinds, strict=True)],
        combinations=setting,
    )
    model = Model(names, kinds)
    for values, amount, buffered in kicks:
        metrica.kick(value=amount, date=DATE, buffered=buffered, **values)
        model.kick(values, amount)
    buffer.flush()

    # Nothing unkept is written: every field of every bucket fixes a kept set of axes.
    hashes = [content for key, content in dump(staste_redis, prefix).items() if key.startswith(metrica.base)]
    for content in hashes:
        if not isinstance(content, dict):
            continue
        for field in content:
            parts = field.decode().split(keys.PART_SEPARATOR)
            fixed = {name for name, part in zip(names, parts, strict=True) if part != keys.ALL}
            assert kept_by_model(setting, fixed), (field, setting)

    # Filters take the values of one kick (so that they find something), every subset of axes.
    sample = next((values for values, _, _ in kicks if any(v is not None for v in values.values())), kicks[0][0])
    given_axes = [name for name in names if sample[name] is not None]
    query = metrica.timespan(DATE.year, DATE.month)
    for size in range(len(given_axes) + 1):
        for filtered in itertools.combinations(given_axes, size):
            filters = {name: sample[name] for name in filtered}
            if kept_by_model(setting, set(filtered)):
                assert query.filter(**filters).total() == model.total(filters)
            else:
                with pytest.raises(CombinationNotKept, match=metrica.name):
                    query.filter(**filters).total()
            for axis in names:
                fixed = {*filtered, axis}
                if not kept_by_model(setting, fixed):
                    with pytest.raises(CombinationNotKept) as refused:
                        query.filter(**filters).iterate(axis)
                    assert set(refused.value.axes) == fixed
                    continue
                if axis in filters and kinds[names.index(axis)] != "hierarchical":
                    continue  # a plain axis filtered and broken down by itself: not a question
                found = {value: total for value, total in query.filter(**filters).iterate(axis) if total}
                assert found == model.breakdown(filters, axis), (filters, axis)
