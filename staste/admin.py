"""Mounts the staste section on the Django admin: ``/admin/staste/`` is the dashboard.

Nothing is needed in a project's urlconf beyond ``path("admin/", admin.site.urls)``.  The
admin imports this module when it autodiscovers ``admin.py`` files (before any urlconf is
loaded); :func:`install` then

* registers the table-less :class:`staste.models.Metrica`, so the admin index and sidebar
  list "Statistics" for users with ``staste.view_metrica``, and
* puts staste's URLs in front of the site's own, so ``/admin/staste/`` is the dashboard rather
  than the admin's generic app index, and ``/admin/staste/<metrica>/`` a metrica's page.

A project with its own ``AdminSite`` instance calls ``staste.admin.install(my_site)``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from staste import adminviews
from staste.models import Metrica


class MetricaAdmin(admin.ModelAdmin):
    """The admin entry of the staste section; its pages are staste's own views (no changelist)."""

    def get_urls(self) -> list[Any]:
        # staste.adminviews.urls names the dashboard "staste_metrica_changelist", which is
        # where the admin index and sidebar link the model to.
        return []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def install(site: admin.AdminSite) -> None:
    """Add the staste section to ``site`` (idempotent)."""
    if getattr(site, "_staste_installed", False):
        return
    if not site.is_registered(Metrica):
        site.register(Metrica, MetricaAdmin)
    site_urls = site.get_urls

    def get_urls() -> list[Any]:
        return adminviews.urls(site) + site_urls()

    site.get_urls = get_urls  # type: ignore[method-assign]
    site._staste_installed = True  # type: ignore[attr-defined]


install(admin.site)
