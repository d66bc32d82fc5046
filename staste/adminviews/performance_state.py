"""What a Performance page shows, read from its query string: the time controls of a metrica page
(``_last``, ``_span``, ``_scale``, ``_compare``), the column it is sorted by (``_sort``) and,
on a view's page, the view (``view``).  Anything else is a :class:`~.state.BadRequest` that
names the parameter, so the page is shown without it, a 400 around its controls.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.http import QueryDict
from django.urls import reverse
from django.utils.translation import gettext as _

from staste import performance, refusals, timing
from staste.metrica import Metrica
from staste.middleware import response_time_metrica
from staste.performance import Window

from .state import COMPARE, LAST, SCALE, SPAN, UNTIL, BadRequest, PageState

SORT, VIEW = "_sort", "view"
TIME_PARAMS = (LAST, SPAN, SCALE, COMPARE, UNTIL)
#: Where a page opens when no range or span is asked for.
DEFAULT_RANGE = "24 hours"


@dataclasses.dataclass(frozen=True)
class Page:
    """A Performance page's query string, read: the time controls, the sort, the view."""

    kind: str  # "views", "view" or "jobs"
    state: PageState
    sort: str
    view: str | None = None

    @property
    def window(self) -> Window:
        found = self.state.range()
        return Window(range=found) if found is not None else Window(span=self.state.span)

    def extra(self, **changes: Any) -> dict[str, str]:
        """The parameters every link keeps besides the time controls: the sort, the view
        (``sort=`` and ``view=`` change them; ``view=None`` leaves the view out)."""
        sort = changes.get("sort", self.sort)
        view = changes.get("view", self.view)
        out = {}
        if view is not None:
            out[VIEW] = view
        if sort != default_sort(self.kind):
            out[SORT] = sort
        return out

    def url(self, name: str | None = None, state: PageState | None = None, **changes: Any) -> str:
        base = reverse(url_name(name or self.kind))
        return base + (state or self.state).querystring(**self.extra(**changes))


def url_name(kind: str) -> str:
    return {
        "views": "admin:staste_performance",
        "view": "admin:staste_performance_view",
        "jobs": "admin:staste_performance_jobs",
        "views_json": "admin:staste_performance_json",
        "view_json": "admin:staste_performance_view_json",
        "jobs_json": "admin:staste_performance_jobs_json",
        "views_csv": "admin:staste_performance_csv",
        "view_csv": "admin:staste_performance_view_csv",
        "jobs_csv": "admin:staste_performance_jobs_csv",
    }[kind]


def metrica_of(kind: str) -> Metrica:
    return timing.task_metrica() if kind == "jobs" else response_time_metrica()


def measures_of(kind: str) -> tuple[str, ...]:
    return performance.TASK_MEASURES if kind == "jobs" else performance.VIEW_MEASURES


def default_sort(kind: str) -> str:
    return "p95"


def parse(kind: str, params: QueryDict) -> Page:
    """The page a query string asks for; BadRequest (naming the parameter) for anything else."""
    allowed = (*TIME_PARAMS, SORT, *((VIEW,) if kind == "view" else ()))
    for name in params:
        if name not in allowed:
            raise BadRequest(
                _("unknown parameter %(name)s: this page takes %(params)s")
                % {"name": repr(name), "params": ", ".join(allowed)},
                param=name,
            )
    sort = params.get(SORT) or default_sort(kind)
    if sort not in measures_of(kind):
        raise BadRequest(
            _("bad %(name)s %(value)s: sort by one of %(measures)s")
            % {"name": SORT, "value": repr(sort), "measures": ", ".join(measures_of(kind))},
            param=SORT,
        )
    if params.get(SPAN) == "all":
        raise BadRequest(
            _("the Performance pages show a range or a calendar span (a year, a month, a day...), not all time"),
            param=SPAN,
        )
    view = None
    if kind == "view":
        view = params.get(VIEW) or None
        if view is None:
            raise BadRequest(_("say which view to show: ?view=<its name, as the table of views lists it>"), param=VIEW)
        try:
            response_time_metrica().values().filter(view=view)
        except (TypeError, ValueError) as exc:
            raise BadRequest(
                _("bad %(name)s: %(why)s") % {"name": VIEW, "why": refusals.refusal(exc, VIEW)}, param=VIEW
            ) from None
    time_params = QueryDict(mutable=True)
    for name in TIME_PARAMS:
        if name in params:
            time_params.setlist(name, params.getlist(name))
    if not (time_params.get(LAST) or time_params.get(SPAN)):
        time_params[LAST] = DEFAULT_RANGE
    state = PageState.from_params(metrica_of(kind), time_params)
    return Page(kind, state, sort, view)


def lenient(kind: str, params: QueryDict) -> Page:
    """The page without the parameters it cannot show, so a 400 keeps its controls."""
    params = params.copy()
    for _attempt in range(len(params) + 2):
        try:
            return parse(kind, params)
        except BadRequest as exc:
            if exc.param is not None and exc.param in params:
                del params[exc.param]
            elif kind == "view":
                return parse("views", QueryDict())
            else:
                break
    return parse(kind, QueryDict())
