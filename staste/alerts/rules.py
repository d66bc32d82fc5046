"""What an alert's rule may say about its metrica, and where the admin shows what it watches.

A rule names a registered metrica, filters on its axes, a measure and a window.  They are
checked exactly as the metrica's admin page reads the same things from its query string
(``?gender=girl&_last=60+minutes&_measure=p95``: ``staste.adminviews.state.PageState``), so a
rule is valid when the page that shows its number opens, and the mail links to that page.
One more check is the rule's own: distinct ids (``uniques``) are kept by day and coarser, so
their window is counted in days, weeks or months.

>>> check("response_time", {"view": "shop.views.item"}, "p95", "60 minutes")  # doctest: +SKIP
PageState(metrica=..., filters={'view': 'shop.views.item'}, last='60 minutes', measure='p95', ...)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from django.urls import reverse
from django.utils.translation import gettext as _

from staste import conf, measures
from staste.adminviews.state import LAST, MEASURE, BadRequest, PageState
from staste.charts.spec import parse_last
from staste.metrica import Metrica
from staste.registration import NotRegistered, registry

#: Which field of a rule a parameter of the admin's query string stands for.
FIELDS = {LAST: "window", MEASURE: "measure"}


class RuleError(ValueError):
    """A rule its metrica cannot answer; ``field`` names the rule's field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def metrica_of(name: str) -> Metrica:
    """The registered metrica ``name``; RuleError naming the registered ones otherwise."""
    try:
        return registry.get(name)
    except NotRegistered:
        known = ", ".join(sorted(m.name for m in registry)) or "—"
        raise RuleError(
            "metrica",
            _("No metrica named %(name)s is registered; registered: %(known)s") % {"name": repr(name), "known": known},
        ) from None


def measures_of(metrica: Metrica) -> tuple[str, ...]:
    """The measures a rule on ``metrica`` may watch: those its admin page shows."""
    return measures.of(metrica)


def check(name: str, filters: Any, measure: str, window: str) -> PageState:
    """The admin page's state for the rule (what it watches); RuleError for what it cannot watch."""
    metrica = metrica_of(name)
    if not isinstance(filters, Mapping):
        raise RuleError("filters", _('Give the filters as an object of axis → value, e.g. {"gender": "girl"}.'))
    params = QueryDict(mutable=True)
    for axis, value in filters.items():
        if axis not in metrica.axes:
            axes = ", ".join(metrica.axes) or "—"
            raise RuleError(
                "filters",
                _("%(metrica)s has no axis %(axis)s; its axes are: %(axes)s")
                % {"metrica": metrica.name, "axis": repr(axis), "axes": axes},
            )
        if metrica.axes[axis].hierarchical:
            path = value.split("/") if isinstance(value, str) else value
            if not isinstance(path, (list, tuple)) or not all(isinstance(part, str) for part in path):
                raise RuleError(
                    "filters",
                    _('%(axis)s is a hierarchical axis: give its path as a list, e.g. ["out", "se"]') % {"axis": axis},
                )
            params.setlist(axis, list(path))
        elif value is None or isinstance(value, (dict, list, bool)) or value == "":
            raise RuleError(
                "filters", _("Give one value for %(axis)s, not %(value)s") % {"axis": axis, "value": repr(value)}
            )
        else:
            params[axis] = str(value)
    params[LAST] = str(window).strip()
    params[MEASURE] = str(measure)
    try:
        state = PageState.from_params(metrica, params)
    except BadRequest as exc:
        raise RuleError(FIELDS.get(exc.param or "", "filters"), str(exc)) from None
    window_scale = parse_last(state.last or "").scale
    count = int(re.search(r"\d+", state.last or "1").group())  # type: ignore[union-attr]  # parse_last found a number
    state = state.replace(last=f"{count} {window_scale}{'s' if count != 1 else ''}")  # "last 60 Minutes": "60 minutes"
    if measure == "uniques" and not measures.keeps_uniques_by(metrica, window_scale):
        raise RuleError(
            "window",
            _("%(metrica)s keeps its distinct ids by day and coarser: give a window of days, weeks or months")
            % {"metrica": metrica.name},
        )
    return state


def admin_path(state: PageState) -> str:
    """The metrica's admin page for the rule's window, filters and measure."""
    return reverse("admin:staste_metrica", args=[state.metrica.name]) + state.querystring()


def absolute(path: str) -> str:
    """``path`` on the site's address (``STASTE_SITE_URL``), for a mail read far from the site;
    as it is without one."""
    site = conf.get("STASTE_SITE_URL")
    return site.rstrip("/") + path if site else path
