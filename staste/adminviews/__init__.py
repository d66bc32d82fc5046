"""The staste section of the Django admin: a dashboard of every metrica, a page per metrica, and
the Performance pages (views, one view, jobs).

``staste.admin`` mounts these views on the admin site (see :func:`urls`) before the admin's
own app index, so ``/admin/staste/`` is the dashboard without any urlconf change.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.urls import URLPattern, path

from staste.adminviews.base import protected
from staste.adminviews.cohorts import funnel_csv, funnel_page, retention_page
from staste.adminviews.dashboard import dashboard, dashboard_json
from staste.adminviews.metrica import metrica_csv, metrica_json, metrica_page
from staste.adminviews.performance import performance_csv, performance_json, performance_page


def urls(site: AdminSite) -> list[URLPattern]:
    """The section's URL patterns, relative to the admin root and named in its namespace."""
    wrapped: dict[str, Any] = {
        "dashboard": protected(site, dashboard),
        "dashboard_json": protected(site, dashboard_json, answer="json"),
        "page": protected(site, metrica_page, page=True),
        "json": protected(site, metrica_json, answer="json"),
        "csv": protected(site, metrica_csv, answer="csv"),
    }
    performance = [
        # Before `staste/<name>/`, which would take `performance` for a metrica's name.
        path(
            f"staste/performance/{where}",
            protected(site, view, page=page, answer=answer),
            {"kind": kind},
            name=f"staste_performance{name}",
        )
        for kind, prefix, suffix in (("views", "", ""), ("view", "view/", "_view"), ("jobs", "jobs/", "_jobs"))
        for where, view, page, answer, name in (
            (prefix, performance_page, True, "html", suffix),
            (f"{prefix}data.json", performance_json, False, "json", f"{suffix}_json"),
            (f"{prefix}data.csv", performance_csv, False, "csv", f"{suffix}_csv"),
        )
    ]
    return [
        *performance,
        path("staste/", wrapped["dashboard"], name="staste_dashboard"),
        # The admin links its index and sidebar entry for the Metrica model to this name.
        path("staste/", wrapped["dashboard"], name="staste_metrica_changelist"),
        path("staste/data.json", wrapped["dashboard_json"], name="staste_dashboard_json"),
        # staste.cohorts (before the metrica pages: "funnel" and "retention" are not metrica names there)
        path("staste/funnel/", protected(site, funnel_page, page=True), name="staste_funnel"),
        path("staste/funnel/lost.csv", protected(site, funnel_csv), name="staste_funnel_csv"),
        path("staste/retention/", protected(site, retention_page, page=True), name="staste_retention"),
        path("staste/<str:name>/", wrapped["page"], name="staste_metrica"),
        path("staste/<str:name>/data.json", wrapped["json"], name="staste_metrica_json"),
        path("staste/<str:name>/data.csv", wrapped["csv"], name="staste_metrica_csv"),
    ]
