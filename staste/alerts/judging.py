"""The verdict on a rule's numbers: ok, firing, or no data to judge on.

Pure arithmetic on numbers already read (no Django, no Redis), so every case is tested
directly.  A rule fires when any of its conditions holds:

* ``above``: the number is greater than it; ``below``: the number is less than it;
* ``change``: the number moved by at least that percent against the previous window (50: up
  by 50 % or more; -50: down by 50 % or more).

It is not judged ("no data") when the window holds fewer than ``min_count`` events, or when
its number does not exist (the average of nothing).  A change needs a previous window of at
least ``min_count`` events whose number is not 0; without one, a rule that has only a change
condition has no data, and one with thresholds too is judged on them alone.

>>> judge(Numbers(value=412.0, events=120), Rule(above=300.0)).state
'firing'
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

OK, FIRING, NO_DATA = "ok", "firing", "no_data"


class Rule(NamedTuple):
    """The conditions of an alert (None: not given)."""

    above: float | None = None
    below: float | None = None
    change: float | None = None
    min_count: int = 1


class Numbers(NamedTuple):
    """What a rule judges: the number and the events of its window, and of the previous one."""

    value: float | None
    events: float
    previous: float | None = None
    previous_events: float | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The state, and why: which conditions held (``"above"``, ``"below"``, ``"change"``), the
    change in percent when there is one, and whether there were too few events."""

    state: str
    crossed: tuple[str, ...] = ()
    change: float | None = None
    too_few: bool = False


def change_percent(value: float | None, previous: float | None) -> float | None:
    """The change from ``previous`` to ``value`` in percent (None when it means nothing)."""
    if value is None or previous is None or previous == 0:
        return None
    return (value - previous) / abs(previous) * 100


def judge(numbers: Numbers, rule: Rule) -> Verdict:
    """The verdict of ``rule`` on ``numbers`` (see the module's docstring)."""
    if numbers.events < rule.min_count:
        return Verdict(NO_DATA, too_few=True)
    if numbers.value is None:
        return Verdict(NO_DATA)
    change = None
    if rule.change is not None and (numbers.previous_events or 0) >= rule.min_count:
        change = change_percent(numbers.value, numbers.previous)
    if change is None and rule.change is not None and rule.above is None and rule.below is None:
        return Verdict(NO_DATA, too_few=(numbers.previous_events or 0) < rule.min_count)
    crossed = []
    if rule.above is not None and numbers.value > rule.above:
        crossed.append("above")
    if rule.below is not None and numbers.value < rule.below:
        crossed.append("below")
    if change is not None and rule.change is not None and (change - rule.change) * rule.change >= 0:
        crossed.append("change")  # as far as the rule's percent, in its direction
    return Verdict(FIRING if crossed else OK, tuple(crossed), change)
