"""Digests: a day's or a week's numbers, mailed (``manage.py staste digest``).

For each chosen metrica: its total (and count and average, distinct ids, where it keeps them)
with the change against the period before; the top values of its first axis; and, when the
response-time metrica is among them, the five slowest views by p95 with their change.  A day is
a calendar day of ``STASTE_TIME_ZONE``, a week an ISO week (Monday to Sunday), both read from
the day buckets (``MetricaValues.over``), so their numbers are those the admin shows for them.
Numbers are spelled as the admin spells them (``staste.formats``), in the language asked for.

>>> digest = build("day", datetime.date(2024, 3, 9), [guest_visits])   # doctest: +SKIP
>>> send(digest, ["owner@example.com"])                                   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from staste import conf, formats, timescale
from staste.adminviews.compare import change
from staste.alerts.rules import absolute
from staste.formats import change_label
from staste.measures import keeps_uniques_by
from staste.metrica import Metrica
from staste.query import MetricaValues, budget, pipelined
from staste.registration import registry

PERIODS = ("day", "week")
#: Values of the first axis listed per metrica, and slowest views listed.
TOP = 5
SLOWEST = 5


@dataclasses.dataclass(frozen=True)
class Period:
    """A day or an ISO week: its first and last day (naive local midnights)."""

    kind: str
    first: datetime.datetime
    last: datetime.datetime

    @classmethod
    def of(cls, kind: str, day: datetime.date) -> Period:
        """The day ``day``, or the ISO week it falls in."""
        if kind not in PERIODS:
            raise ValueError(f"unknown period {kind!r}; use one of {', '.join(PERIODS)}")
        first = datetime.datetime(day.year, day.month, day.day)
        if kind == "week":
            first -= datetime.timedelta(days=first.weekday())
            return cls(kind, first, first + datetime.timedelta(days=6))
        return cls(kind, first, first)

    def previous(self) -> Period:
        return Period.of(self.kind, (self.first - datetime.timedelta(days=1)).date())

    def label(self) -> str:
        """ "2024-03-09", or "2024-W10 (2024-03-04 to 2024-03-10)"."""
        if self.kind == "day":
            return formats.bucket_label(self.first, "day")
        days = _("%(first)s to %(last)s") % {
            "first": formats.bucket_label(self.first, "day"),
            "last": formats.bucket_label(self.last, "day"),
        }
        return f"{formats.bucket_label(self.first, 'week')} ({days})"

    def read(self, query: MetricaValues) -> MetricaValues:
        return query.over(self.first, self.last, "day")


def last_complete(kind: str, now: datetime.datetime | None = None) -> datetime.date:
    """The day of the last period over at ``now`` (default: the present): yesterday, or a day of last week."""
    today = conf.local(now).date()
    return today - datetime.timedelta(days=1 if kind == "day" else 7)


@dataclasses.dataclass
class Section:
    """One metrica's part of a digest."""

    metrica: Metrica
    numbers: list[dict[str, Any]]
    axis: str | None
    top: list[tuple[str, str]]
    link: str


@dataclasses.dataclass
class Digest:
    period: Period
    sections: list[Section]
    #: The slowest views by p95: view, p95, change, events.
    slowest: list[dict[str, Any]] | None
    skipped: list[str]


def chosen_metricas(names: Sequence[str] = ()) -> list[Metrica]:
    """The metricas ``names`` (ValueError for one not registered), or ``STASTE_DIGEST_METRICAS``,
    or every registered metrica."""
    wanted = list(names) or list(conf.get("STASTE_DIGEST_METRICAS") or [])
    if not wanted:
        return list(registry)
    unknown = [name for name in wanted if name not in registry]
    if unknown:
        known = ", ".join(sorted(m.name for m in registry)) or "none"
        raise ValueError(f"no metrica named {', '.join(map(repr, unknown))} is registered (registered: {known})")
    return [registry.get(name) for name in wanted]


def build(kind: str, day: datetime.date, metricas: Sequence[Metrica]) -> Digest:
    """The digest of the period ``kind`` holding ``day``, in the active language.  Reads each
    metrica in one round trip, under STASTE_MAX_QUERY_WORK each."""
    period = Period.of(kind, day)
    sections, skipped = [], []
    for metrica in metricas:
        if not timescale.readable("day", metrica.date_scales):
            skipped.append(metrica.name)  # no day buckets: nothing to read a day or a week from
            continue
        with budget(setting="STASTE_MAX_QUERY_WORK"):
            sections.append(section(metrica, period))
    slowest = None
    timing = conf.get("STASTE_RESPONSE_TIME_METRICA")
    if any(m.name == timing for m in metricas) and timing not in skipped:
        found = registry.get(timing)
        if found.histogram and "view" in found.axes:
            with budget(setting="STASTE_MAX_QUERY_WORK"):
                slowest = slowest_views(found, period)
    return Digest(period, sections, slowest, skipped)


def _measures(metrica: Metrica) -> list[tuple[str, str, str]]:
    """(key, label, unit) of the numbers a metrica's section shows."""
    found = []
    if metrica.averaged:
        found += [("count", _("Events"), ""), ("average", _("Average"), metrica.unit)]
    if metrica.summable:
        found.append(("total", _("Total"), metrica.unit))
    if keeps_uniques_by(metrica, "day"):
        found.append(("uniques", _("Unique ids"), ""))
    return found


def _read(query: MetricaValues, key: str) -> Any:
    value = getattr(query, key)()
    if key in ("total", "average"):
        return formats.rounded(value, query.metrica.multiplier, average=key == "average")
    return value


def section(metrica: Metrica, period: Period) -> Section:
    now, before = period.read(metrica.values()), period.previous().read(metrica.values())
    shown = _measures(metrica)
    axis = next(iter(metrica.axes), None)
    by = "count" if metrica.averaged else "total"
    calls: list[Any] = [lambda k=key: _read(now, k) for key, _l, _u in shown]
    calls += [lambda k=key: _read(before, k) for key, _l, _u in shown]
    if axis is not None:
        calls.append(lambda: now.top(axis, TOP, by=by))
    results = pipelined(calls)
    numbers = []
    for i, (key, label, unit) in enumerate(shown):
        value, previous = results[i], results[len(shown) + i]
        numbers.append(
            {
                "key": key,
                "label": label,
                "value": formats.with_unit(value, unit),
                "change": change_label(change(value, previous), previous, unit),
            }
        )
    top = [(formats.value_label(value), formats.display(number)) for value, number in results[-1]] if axis else []
    return Section(metrica, numbers, axis, top, absolute(page_path(metrica, period)))


def page_path(metrica: Metrica, period: Period) -> str:
    """The metrica's admin page for the day (a week has no calendar span: its page by week)."""
    base = reverse("admin:staste_metrica", args=[metrica.name])
    if period.kind == "day":
        return base + "?_span=" + formats.bucket_label(period.first, "day")
    return base + "?_last=12+weeks"


def slowest_views(metrica: Metrica, period: Period) -> list[dict[str, Any]]:
    """The ``SLOWEST`` views with the highest p95 of the period, each with its change."""
    now, before = period.read(metrica.values()), period.previous().read(metrica.values())
    ranked = now.top("view", SLOWEST, by="p95")
    views = [view for view, _p95 in ranked]
    calls: list[Any] = [lambda v=v: before.filter(view=v).percentiles([95])[95] for v in views]
    calls += [lambda v=v: now.filter(view=v).count() for v in views]
    found = pipelined(calls) if views else []
    unit = metrica.unit
    rows = []
    for i, (view, p95) in enumerate(ranked):
        previous = found[i]
        rows.append(
            {
                "view": formats.value_label(view),
                "p95": formats.with_unit(p95, unit),
                "change": change_label(change(p95, previous), previous, unit),
                "events": ngettext("%(count)s event", "%(count)s events", found[len(views) + i] or 0)
                % {"count": formats.display(found[len(views) + i])},
            }
        )
    return rows


def subject(digest: Digest) -> str:
    if digest.period.kind == "day":
        text = _("Daily digest: %(period)s") % {"period": digest.period.label()}
    else:
        text = _("Weekly digest: %(period)s") % {"period": digest.period.label()}
    return settings.EMAIL_SUBJECT_PREFIX + text


def render(digest: Digest) -> tuple[str, str, str]:
    """(subject, text, HTML) of the digest's mail, in the active language."""
    context: dict[str, Any] = {
        "subject": subject(digest),
        "digest": digest,
        "period": digest.period.label(),
        "zone": conf.time_zone().key,
        "dashboard": absolute(reverse("admin:staste_dashboard")),
        "previous": Period.label(digest.period.previous()),
    }
    return (
        context["subject"],
        render_to_string("staste/digest/mail.txt", context),
        render_to_string("staste/digest/mail.html", context),
    )


def send(digest: Digest, recipients: Sequence[str]) -> None:
    """Mail the digest (text and HTML) through Django's e-mail framework."""
    title, text, html = render(digest)
    mail = EmailMultiAlternatives(
        subject=title,
        body=text,
        from_email=conf.get("STASTE_ALERTS_FROM") or settings.DEFAULT_FROM_EMAIL,
        to=list(recipients),
    )
    mail.attach_alternative(html, "text/html")
    mail.send()
