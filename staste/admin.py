"""Mounts the staste section on the Django admin: ``/admin/staste/`` is the dashboard.

Nothing is needed in a project's urlconf beyond ``path("admin/", admin.site.urls)``.  The
admin imports this module when it autodiscovers ``admin.py`` files (before any urlconf is
loaded); :func:`install` then

* registers the table-less :class:`staste.models.Metrica`, so the admin index and sidebar
  list "Statistics" for users with ``staste.view_metrica``, and
* puts staste's URLs in front of the site's own, so ``/admin/staste/`` is the dashboard rather
  than the admin's generic app index, and ``/admin/staste/<metrica>/`` a metrica's page
  (those of staste's own models, ``/admin/staste/alert/``, ``annotation/`` and ``alertevent/``,
  come first: a metrica of one of these names has no page);
* registers the annotations, alerts and their history.  Every one of these pages also needs
  ``staste.view_metrica``, as the rest of the section: an alert shows a metrica's numbers.

A project with its own ``AdminSite`` instance calls ``staste.admin.install(my_site)``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import include, path
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from staste import adminviews, formats
from staste.adminviews.base import PERMISSION
from staste.alerts.notify import unit_of, what_text
from staste.alerts.rules import RuleError, absolute, admin_path, check
from staste.forms import AlertForm, AnnotationForm
from staste.models import Alert, AlertEvent, Annotation, Metrica


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


class SectionAdmin(admin.ModelAdmin):
    """A model of the staste section: Django's permissions on the model, and ``staste.view_metrica``."""

    def _opens(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._opens(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._opens(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._opens(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._opens(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._opens(request) and super().has_delete_permission(request, obj)


class AnnotationAdmin(SectionAdmin):
    form = AnnotationForm
    list_display = ("time", "text", "kind", "charts")
    list_filter = ("kind",)
    search_fields = ("text",)
    date_hierarchy = "time"
    readonly_fields = ("release",)

    @admin.display(description=_("charts"))
    def charts(self, note: Annotation) -> str:
        return ", ".join(note.metricas) if note.metricas else str(_("every chart"))


def state_badge(state: str, label: str) -> str:
    return format_html('<span class="staste-state staste-state-{}">{}</span>', state, label)


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = ("time", "previous", "state", "value", "detail", "mailed", "notice")
    readonly_fields = fields
    ordering = ("-time", "-pk")
    verbose_name_plural = _("history")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AlertAdmin(SectionAdmin):
    form = AlertForm
    list_display = ("name", "watches", "conditions", "shown_state", "shown_value", "checked_at", "enabled")
    list_filter = ("state", "enabled", "metrica")
    search_fields = ("name", "metrica")
    readonly_fields = ("shown_state", "shown_value", "detail", "changed_at", "checked_at", "page")
    inlines = [AlertEventInline]
    fieldsets = (
        (None, {"fields": ("name", "enabled")}),
        (_("What it watches"), {"fields": ("metrica", "filters", "measure", "window")}),
        (_("When it fires"), {"fields": ("above", "below", "change", "min_count")}),
        (_("Who is told"), {"fields": ("recipients", "webhook")}),
        (_("State"), {"fields": ("shown_state", "shown_value", "detail", "changed_at", "checked_at", "page")}),
    )
    change_form_template = "staste/admin/alert_form.html"

    class Media:
        css = {"all": ("staste/models.css",)}

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> Any:
        extra = {**(extra_context or {}), "staste_windows": formats.QUICK_RANGES}
        return super().changeform_view(request, object_id, form_url, extra)

    @admin.display(description=_("watches"))
    def watches(self, alert: Alert) -> str:
        try:
            return what_text(check(alert.metrica, alert.filters, alert.measure, alert.window))
        except RuleError as exc:  # its metrica went away, or changed: say why it cannot be watched
            return f"{alert.metrica}: {exc}"

    @admin.display(description=_("fires when"))
    def conditions(self, alert: Alert) -> str:
        parts = []
        if alert.above is not None:
            parts.append(f"> {formats.display(alert.above)}")
        if alert.below is not None:
            parts.append(f"< {formats.display(alert.below)}")
        if alert.change is not None:
            parts.append(f"Δ {formats.signed_percent(alert.change)}")
        return " · ".join(parts) or "—"

    @admin.display(description=_("state"), ordering="state")
    def shown_state(self, alert: Alert) -> str:
        return state_badge(alert.state, alert.get_state_display())

    @admin.display(description=_("last value"), ordering="value")
    def shown_value(self, alert: Alert) -> str:
        try:
            unit = unit_of(check(alert.metrica, alert.filters, alert.measure, alert.window))
        except RuleError:
            unit = ""
        return formats.with_unit(alert.value, unit)

    @admin.display(description=_("admin page"))
    def page(self, alert: Alert) -> str:
        try:
            state = check(alert.metrica, alert.filters, alert.measure, alert.window)
        except RuleError as exc:
            return str(exc)
        return format_html('<a href="{}">{}</a>', admin_path(state), absolute(admin_path(state)))


class AlertEventAdmin(SectionAdmin):
    list_display = ("time", "alert", "previous", "shown_state", "value", "detail", "mailed", "notice")
    list_filter = ("state", "mailed", "alert")
    date_hierarchy = "time"
    list_select_related = ("alert",)

    class Media:
        css = {"all": ("staste/models.css",)}

    @admin.display(description=_("state"), ordering="state")
    def shown_state(self, event: AlertEvent) -> str:
        return state_badge(event.state, event.get_state_display())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertEvent]:
        return super().get_queryset(request).select_related("alert")


def install(site: admin.AdminSite) -> None:
    """Add the staste section to ``site`` (idempotent)."""
    if getattr(site, "_staste_installed", False):
        return
    if not site.is_registered(Metrica):
        site.register(Metrica, MetricaAdmin)
    for model, model_admin in ((Annotation, AnnotationAdmin), (Alert, AlertAdmin), (AlertEvent, AlertEventAdmin)):
        if not site.is_registered(model):
            site.register(model, model_admin)
    site_urls = site.get_urls

    def get_urls() -> list[Any]:
        # The section's models before `staste/<name>/`, which would take `staste/alert/` for a metrica.
        models = [
            path(f"staste/{model._meta.model_name}/", include(model_admin.urls))
            for model, model_admin in site._registry.items()
            if model._meta.app_label == "staste" and model is not Metrica
        ]
        return models + adminviews.urls(site) + site_urls()

    site.get_urls = get_urls  # type: ignore[method-assign]  # the project's own site, patched once
    site._staste_installed = True  # type: ignore[attr-defined]  # our mark on that site


install(admin.site)
