"""The work budget of reads: how many counters the reads of a request (or a round trip) may touch.

Every read is charged its *work* (buckets x values x families, see :mod:`staste.reads`)
before anything is sent; what only Redis knows (the stored values of an axis, the fields of
a scanned hash) is counted by every script call of the round trip before it reads anything
(lua/budget.lua, given :func:`gate`), so either every call reads or none does.  Past the
budget, :class:`~staste.exceptions.QueryTooExpensive` is raised and nothing is read.
:func:`budget` bounds a block of reads together (re-exported as ``staste.query.budget``).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from staste import conf
from staste.exceptions import QueryTooExpensive
from staste.reads import NO_BOUND

if TYPE_CHECKING:
    from staste.reads import Fetch


@dataclasses.dataclass
class Budget:
    """How many counters the reads under one :func:`budget` may touch, and how many they did."""

    limit: int
    setting: str = "STASTE_MAX_QUERY_WORK"
    spent: int = 0

    def charge(self, work: int) -> None:
        if self.spent + work > self.limit:
            raise QueryTooExpensive(self.spent + work, self.limit, self.setting)
        self.spent += work


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("staste_query_budget", default=None)


@contextlib.contextmanager
def budget(limit: int | None = None, setting: str = "STASTE_MAX_QUERY_WORK") -> Iterator[Budget]:
    """Bound the work of every read made within, together (a request, a chart, a tag).

    ``limit`` defaults to the value of ``setting``.  Without an enclosing ``budget`` each
    round trip is bounded on its own by STASTE_MAX_QUERY_WORK.  The admin reads each page
    under STASTE_MAX_QUERY_WORK, the public chart views and template tags under
    STASTE_MAX_PUBLIC_QUERY_WORK::

        with budget(setting="STASTE_MAX_PUBLIC_QUERY_WORK") as spent:
            numbers = query.over(since).iterate("page")     # QueryTooExpensive past it
        spent.spent                                         # counters read
    """
    found = Budget(conf.get(setting) if limit is None else limit, setting)
    token = _budget.set(found)
    try:
        yield found
    finally:
        _budget.reset(token)
        outer = _budget.get()
        if outer is not None:  # an enclosing budget sees the work done within (not bounded by it)
            outer.spent += found.spent


def current() -> Budget | None:
    """The budget the reads made now are charged to, if any."""
    return _budget.get()


def own() -> contextlib.AbstractContextManager[Any]:
    """A budget of STASTE_MAX_QUERY_WORK for a round trip made outside any other."""
    return budget() if _budget.get() is None else contextlib.nullcontext()


def charge(reads: Sequence[Fetch]) -> None:
    """Charge the work of ``reads`` to the current budget: QueryTooExpensive past it."""
    found = _budget.get()
    assert found is not None, "reads run under a budget (Read.run() and pipelined() open one)"
    found.charge(sum(one.work for one in reads))


def settle(more: int) -> None:
    """Charge ``more`` counters (or give them back) once a read's real work is known: a stored
    axis read, or a read sliced again.  Not bounded: Redis checked it before reading."""
    found = _budget.get()
    if found is not None:
        found.spent += more


def gate(reads: Sequence[Fetch]) -> tuple[Any, ...]:
    """The budget every read script sent for ``reads`` checks before reading (budget.lua).

    Their fixed work is charged already; what their stored axes and scanned hashes cost is
    counted by Redis, so every call gets the terms of all of them and the budget left for
    them, and either every call reads or none does: the batch's total is what is bounded, not
    each read on its own.
    """
    variable = [one for one in reads if one.variable]
    if not variable:
        return NO_BOUND
    terms = [term for one in variable for term in one.terms()]
    found = _budget.get()
    if found is None:
        limit = conf.get("STASTE_MAX_QUERY_WORK")
    else:  # their minimum (the overflow part) is charged already: it is theirs to spend
        limit = max(1, found.limit - found.spent + sum(one.work for one in variable))
    return (limit, len(terms) // 3, *terms)


def past(work: int, limit: int) -> QueryTooExpensive:
    """The error for reads that would touch ``work`` counters where the budget left them ``limit``
    (their charged minimum included): it names the work the whole budget would have reached."""
    found = _budget.get()
    if found is None:
        return QueryTooExpensive(work, limit, "STASTE_MAX_QUERY_WORK")
    return QueryTooExpensive(found.limit - limit + work, found.limit, found.setting)


def refuse_past(limit: int, counted: list[Any]) -> None:
    """QueryTooExpensive when the work Redis counted for a batch's reads, slot by slot, is past ``limit``."""
    if sum(counted) > limit:
        raise past(sum(counted), limit)


def refusal(exc: BaseException) -> QueryTooExpensive | None:
    """budget.lua's refusal of a batch whose stored axes hold too many values, as the error
    to raise (None for any other error)."""
    text = str(exc)
    if not text.startswith("STASTE_TOO_EXPENSIVE"):
        return None
    _, work, limit = text.split()[:3]
    return past(int(work), int(limit))
