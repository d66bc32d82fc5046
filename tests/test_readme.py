"""The README's ``>>>`` examples, run as doctests against a real Redis: the README stays true."""

from __future__ import annotations

import datetime
import doctest
import re
from pathlib import Path

import pytest

from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import Metrica

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_BLOCK = re.compile(r"```python\n(>>> .*?)```", re.S)
TEXT = README.read_text(encoding="utf-8")
#: (line of the block's first example, its source)
BLOCKS = [(TEXT.count("\n", 0, m.start(1)), m.group(1)) for m in EXAMPLE_BLOCK.finditer(TEXT)]


def seed_guests() -> Metrica:
    """The seed's guests with kicks giving exactly the numbers its README printed."""
    guests = Metrica(
        name="guest_visits_gender_age",
        axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis())],
    )
    feb, may, june, july = (datetime.datetime(2010, month, 14) for month in (2, 5, 6, 7))
    for date, gender, age, times in [
        (feb, "boy", 120, 1),
        (feb, "boy", 17, 10),
        (feb, "boy", 18, 17),
        (may, "girl", 19, 3),
        (june, "girl", 18, 5),
        (july, "boy", 19, 1),
    ]:
        for _ in range(times):
            guests.kick(date=date, gender=gender, age=age)
    return guests


def test_the_readme_has_examples_to_run() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_example(number: int) -> None:
    line, source = BLOCKS[number]
    globs = {"metrica": seed_guests()} if "metrica = " not in source else {}
    test = doctest.DocTestParser().get_doctest(source, globs, f"README example {number + 1}", str(README), line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"README example {number + 1} failed (see the output above)"
