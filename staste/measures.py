"""Measures: what a number about a metrica's values can be, which ones a metrica has, and how
each is read.

A measure is ``"total"``, ``"count"``, ``"average"``, ``"uniques"``, a percentile such as
``"p95"`` or ``"p99.9"``, or ``"apdex"`` (read from the histogram, as the percentiles).  This
is the one place that says, for every caller (``top(by=)``, the admin's ``_measure``, the
chart views' and template tags' ``measure=`` and number tags):

* which measures a metrica has (:func:`get` accepts or refuses a name, :func:`of` lists them
  in the order pages show them): the total unless its values are durations
  (``metrica.summable``); the count and the average of an AveragedMetrica; the distinct ids
  of a metrica made with ``uniques=True``; percentiles of a metrica made with ``histogram=True``
  (pages list :data:`PERCENTILES`, any percentile from p0 to p100 is accepted);
* the default, one rule: :func:`default` (what a chart, a breakdown and ``top()`` show when
  not told: events for an AveragedMetrica, the total otherwise).  The admin's metrica page is
  the one context with its own, :func:`default_for_page` (the slowest first where there are
  percentiles of events);
* how each is read from a query (:class:`Measure`: per value of an axis, as a series, as one
  number, and what ``top()`` ranks), through the query's own plans, so sync and async share them;
* what pages need to draw one: whether it adds up (:attr:`Measure.additive`: a pie, shares, a
  pooled rest), whether it is in the metrica's unit, whether it is whole.

How a measure is *named* on a page, translated, is :data:`staste.formats.MEASURE_LABELS`.

>>> get(response_time, "p95").by_value(response_time.over(since), "view")   # doctest: +SKIP
[('shop.views.item', 240.1), ...]
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from staste import histogram, timescale
from staste.exceptions import MeasureMissing, UnknownMeasure

if TYPE_CHECKING:
    from staste.metrica import Metrica
    from staste.query import MetricaValues
    from staste.roundtrip import Read

TOTAL, COUNT, AVERAGE, UNIQUES, APDEX = "total", "count", "average", "uniques", "apdex"
#: The measures with a name of their own (percentiles are "p" and a number).
NAMES: tuple[str, ...] = (TOTAL, COUNT, AVERAGE, UNIQUES, APDEX)
#: The percentiles pages list for a metrica with a histogram (p50, p95, p99).
PERCENTILES: tuple[int, ...] = (50, 95, 99)


@dataclasses.dataclass(frozen=True)
class Measure:
    """One measure: its name, what a metrica needs to have it, and how it is read.

    The ``plan_*`` methods return the query's plan (a :class:`~staste.roundtrip.Read`), to run,
    await or compose; the others run it (one round trip, or part of a ``pipelined`` batch).
    """

    name: str
    #: Whether its numbers add up over values: a pie, shares and a pooled "(rest)" mean something.
    additive: bool = False
    #: Whether its numbers are in the metrica's unit (a count or a number of ids is not).
    in_unit: bool = True
    #: Whether its *lowest* numbers are the ones to look at first (``top()`` ranks them first):
    #: a low Apdex, as a high p95, is what needs attention.
    lowest_first: bool = False

    def needs(self, metrica: Metrica) -> str | None:
        """What ``metrica`` lacks to have this measure (see MeasureMissing.needs), or None."""
        raise NotImplementedError

    def whole(self, metrica: Metrica) -> bool:
        """Whether its numbers are whole (integer ticks on a chart's axis)."""
        return False

    # -- reading -----------------------------------------------------------------------------

    def plan_by_value(self, query: MetricaValues, axis: str | None) -> Read[list[tuple[Any, Any]]]:
        """[(value, number)] for every value of ``axis`` (None: every bucket of the next finer
        time scale), as the query's ``iterate*`` methods give them."""
        raise NotImplementedError

    def plan_counted(self, query: MetricaValues, axis: str) -> Read[list[tuple[Any, Any]]]:
        """[(value, number)] for the values of ``axis`` that counted something: what ``top()`` ranks."""
        return self.plan_by_value(query, axis).then(lambda rows: [(v, n) for v, n in rows if n])

    def plan_series(
        self, query: MetricaValues, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any]]]:
        """[(bucket start, number)] for every bucket from ``since`` to ``until`` (``timeserie*``)."""
        raise NotImplementedError

    def plan_number(self, query: MetricaValues) -> Read[Any]:
        """The one number of the query's span (or range)."""
        raise NotImplementedError

    def by_value(self, query: MetricaValues, axis: str | None) -> list[tuple[Any, Any]]:
        return self.plan_by_value(query, axis).run()

    def series(
        self, query: MetricaValues, since: Any, until: Any = None, scale: str | None = None
    ) -> list[tuple[Any, Any]]:
        return self.plan_series(query, since, until, scale).run()

    def number(self, query: MetricaValues) -> Any:
        return self.plan_number(query).run()


class _Total(Measure):
    def needs(self, metrica: Metrica) -> str | None:
        return None if metrica.summable else "summable"

    def whole(self, metrica: Metrica) -> bool:
        return not metrica.multiplier

    def plan_by_value(self, query: MetricaValues, axis: str | None) -> Read[list[tuple[Any, Any]]]:
        return query._plan_iterate(axis)

    def plan_counted(self, query: MetricaValues, axis: str) -> Read[list[tuple[Any, Any]]]:
        # A total of 0 that was counted (+5 and -5) is kept: the counters say what was counted.
        return query._plan_counted_totals(axis)

    def plan_series(
        self, query: MetricaValues, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any]]]:
        return query._plan_timeserie(since, until, scale)

    def plan_number(self, query: MetricaValues) -> Read[Any]:
        return query._plan_total()


class _Count(Measure):
    def needs(self, metrica: Metrica) -> str | None:
        return None if metrica.averaged else "averaged"

    def whole(self, metrica: Metrica) -> bool:
        return True

    def plan_by_value(self, query: MetricaValues, axis: str | None) -> Read[list[tuple[Any, Any]]]:
        return query._plan_iterate_counts(axis)

    def plan_series(
        self, query: MetricaValues, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any]]]:
        return query._plan_timeserie_counts(since, until, scale)

    def plan_number(self, query: MetricaValues) -> Read[Any]:
        return query._plan_count()


class _Average(Measure):
    def needs(self, metrica: Metrica) -> str | None:
        return None if metrica.averaged else "averaged"

    def plan_by_value(self, query: MetricaValues, axis: str | None) -> Read[list[tuple[Any, Any]]]:
        return query._plan_iterate_averages(axis)

    def plan_counted(self, query: MetricaValues, axis: str) -> Read[list[tuple[Any, Any]]]:
        # An average of 0 is a number (events of value 0); None is no event.
        return self.plan_by_value(query, axis).then(lambda rows: [(v, n) for v, n in rows if n is not None])

    def plan_series(
        self, query: MetricaValues, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any]]]:
        return query._plan_timeserie_counts_and_averages(since, until, scale).then(
            lambda rows: [(moment, average) for moment, _, average in rows]
        )

    def plan_number(self, query: MetricaValues) -> Read[Any]:
        return query._plan_average()


class _Uniques(Measure):
    def needs(self, metrica: Metrica) -> str | None:
        return None if metrica.keeps_uniques else "uniques"

    def whole(self, metrica: Metrica) -> bool:
        return True

    def plan_by_value(self, query: MetricaValues, axis: str | None) -> Read[list[tuple[Any, Any]]]:
        return query._plan_iterate_uniques(axis)

    def plan_series(
        self, query: MetricaValues, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any]]]:
        return query._plan_timeserie_uniques(since, until, scale)

    def plan_number(self, query: MetricaValues) -> Read[Any]:
        return query._plan_uniques()


@dataclasses.dataclass(frozen=True)
class _Percentile(Measure):
    #: The percentile, from 0 to 100.
    p: float = 50.0

    def needs(self, metrica: Metrica) -> str | None:
        return None if metrica.histogram else "histogram"

    def plan_by_value(self, query: MetricaValues, axis: str | None) -> Read[list[tuple[Any, Any]]]:
        """Per value of ``axis``, for the values that counted something (a percentile of no
        value is no number); per time bucket it is a series (``plan_series``)."""
        if axis is None:
            raise ValueError(f"{self.name} is read per value of an axis, or as a series over time: give an axis")
        p = self.p
        return query._plan_iterate_percentiles(axis, [p]).then(lambda rows: [(v, found[p]) for v, found in rows])

    def plan_counted(self, query: MetricaValues, axis: str) -> Read[list[tuple[Any, Any]]]:
        return self.plan_by_value(query, axis).then(lambda rows: [(v, n) for v, n in rows if n is not None])

    def plan_series(
        self, query: MetricaValues, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any]]]:
        p = self.p
        return query._plan_timeserie_percentiles(since, until, scale, [p]).then(
            lambda rows: [(moment, None if found is None else found[p]) for moment, found in rows]
        )

    def plan_number(self, query: MetricaValues) -> Read[Any]:
        p = self.p
        return query._plan_percentiles([p]).then(lambda found: found[p])


class _Apdex(Measure):
    """The Apdex (0 to 1) at ``STASTE_APDEX_T``, read from the histogram (:mod:`staste.apdex`)."""

    def needs(self, metrica: Metrica) -> str | None:
        return None if metrica.histogram else "histogram"

    def plan_by_value(self, query: MetricaValues, axis: str | None) -> Read[list[tuple[Any, Any]]]:
        if axis is None:
            raise ValueError("apdex is read per value of an axis, or as a series over time: give an axis")
        return query._plan_iterate_apdex(axis, None)

    def plan_counted(self, query: MetricaValues, axis: str) -> Read[list[tuple[Any, Any]]]:
        return self.plan_by_value(query, axis).then(lambda rows: [(v, n) for v, n in rows if n is not None])

    def plan_series(
        self, query: MetricaValues, since: Any, until: Any, scale: str | None
    ) -> Read[list[tuple[Any, Any]]]:
        return query._plan_timeserie_apdex(since, until, scale)

    def plan_number(self, query: MetricaValues) -> Read[Any]:
        return query._plan_apdex(None)


_NAMED: dict[str, Measure] = {
    TOTAL: _Total(TOTAL, additive=True),
    COUNT: _Count(COUNT, additive=True, in_unit=False),
    AVERAGE: _Average(AVERAGE),
    UNIQUES: _Uniques(UNIQUES, in_unit=False),
    APDEX: _Apdex(APDEX, in_unit=False, lowest_first=True),
}


def find(name: Any) -> Measure:
    """The measure called ``name`` ("count", "p95", "p99.9"), whatever the metrica:
    UnknownMeasure (a ValueError) for anything else."""
    if isinstance(name, str):
        if name in _NAMED:
            return _NAMED[name]
        if name.startswith("p"):
            try:
                p = histogram.check_percentile(float(name[1:]))
            except ValueError:
                pass
            else:
                return _Percentile(f"p{p:g}", p=p)
    raise UnknownMeasure(
        f"unknown measure {name!r}; use one of {', '.join(NAMES)} or a percentile from p0 to p100 (p50, p95, p99.9...)",
        name,
    )


def is_measure(name: Any) -> bool:
    """Whether ``name`` names a measure (a chart's datasets are also named by axis values)."""
    try:
        find(name)
    except UnknownMeasure:
        return False
    return True


def get(metrica: Metrica, name: Any) -> Measure:
    """The measure ``name`` of ``metrica``: UnknownMeasure for no measure, MeasureMissing (a
    TypeError and a ValueError) when the metrica does not have it, saying what it would need."""
    measure = find(name)
    needs = measure.needs(metrica)
    if needs is not None:
        raise MeasureMissing(_missing(metrica, measure.name, needs), metrica.name, measure.name, needs)
    return measure


def _missing(metrica: Metrica, measure: str, needs: str) -> str:
    if needs == "averaged":
        return (
            f"{metrica.name} is not an AveragedMetrica, and only an AveragedMetrica has {measure}s "
            "(it counts its events)"
        )
    if needs == "uniques":
        return f"{measure} needs a metrica made with uniques=True; {metrica.name} counts no unique ids"
    if needs == "histogram":
        read = f"percentiles ({measure})" if measure.startswith("p") else measure
        return f"{metrica.name} keeps no histogram: make it with histogram=True to read {read}"
    return (
        f"{metrica.name}'s values are durations ({metrica.unit}): their total means nothing; "
        f"use {', '.join(name for name in of(metrica))}"
    )


def of(metrica: Metrica) -> tuple[str, ...]:
    """The measures ``metrica`` has, in the order pages list them: events first where it
    counts them, then the total, the distinct ids and the percentiles of :data:`PERCENTILES`."""
    order = (COUNT, AVERAGE, TOTAL, UNIQUES) if metrica.averaged else (TOTAL, UNIQUES)
    found = tuple(name for name in order if _NAMED[name].needs(metrica) is None)
    if metrica.histogram:
        found += tuple(f"p{p}" for p in PERCENTILES)
    return found


def default(metrica: Metrica) -> str:
    """What a chart, a breakdown and ``top()`` show when not told: the count of events of an
    AveragedMetrica (its charts draw events and their average), the total of any other."""
    return COUNT if metrica.averaged else TOTAL


def default_for_page(metrica: Metrica) -> str:
    """What the admin's metrica page ranks its breakdown by when not told: for an
    AveragedMetrica with a histogram (response times) the page answers "which are slowest?",
    so p95; else :func:`default`."""
    if metrica.averaged and metrica.histogram:
        return "p95"
    return default(metrica)


def keeps_uniques_by(metrica: Metrica, scale: str | None) -> bool:
    """Whether ``metrica`` counts distinct ids (``uniques=True``) in buckets of ``scale``
    (None: all time; a week is read from its days)."""
    if not metrica.keeps_uniques:
        return False
    if scale is None:
        return True
    return timescale.depth("day" if scale == timescale.WEEK else scale) <= len(metrica.uniques_scales)


def percentiles_of(names: tuple[str, ...] | list[str]) -> list[float]:
    """The percentiles among measure names (``["count", "p95"]`` -> ``[95.0]``), in order."""
    return [measure.p for measure in map(find, names) if isinstance(measure, _Percentile)]


def is_percentile(name: Any) -> bool:
    """Whether ``name`` is a percentile measure ("p95")."""
    return is_measure(name) and isinstance(find(name), _Percentile)
