"""What staste keeps in the database: the notes on its charts and the alerts watching its numbers.

The counters themselves live in Redis.  The database holds what people write and what must
survive a Redis flush:

* :class:`Metrica` has no table.  It exists so that the admin lists "Statistics" like any other
  app (the admin groups its index and sidebar by registered models) and so that Django creates
  the permission ``staste.view_metrica`` that opens the staste section of the admin to staff.
* :class:`Annotation`: a note at a moment (a release, a migration, "newsletter sent"), drawn as
  a vertical marker on every line chart that covers it (see ``staste.annotations``).
* :class:`Alert` and :class:`AlertEvent`: a rule on a metrica's number, its state, and the
  history of its changes of state (see ``staste.alerts``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Metrica(models.Model):
    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = _("metrica")
        verbose_name_plural = _("metricas")

    def __str__(self) -> str:
        return str(self.pk)


class Annotation(models.Model):
    """A note at a moment, shown on the line charts that cover it.

    ``metricas`` lists the names of the metricas whose charts show it; empty means every chart.
    ``release`` is set on the one annotation of a release (``STASTE_RELEASE``): unique, so
    that processes starting at once with a new release create it once.
    """

    class Kind(models.TextChoices):
        NOTE = "note", pgettext_lazy("annotation", "note")
        RELEASE = "release", pgettext_lazy("annotation", "release")
        MIGRATION = "migration", pgettext_lazy("annotation", "migration")

    time = models.DateTimeField(pgettext_lazy("moment", "time"), default=timezone.now, db_index=True)
    text = models.CharField(_("text"), max_length=200)
    metricas = models.JSONField(
        _("metricas"),
        default=list,
        blank=True,
        help_text=_("The charts that show it; none chosen means every chart."),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.NOTE)
    release = models.CharField(_("release"), max_length=200, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-time"]
        verbose_name = _("annotation")
        verbose_name_plural = _("annotations")

    def __str__(self) -> str:
        return self.text

    def shown_on(self, metrica: str) -> bool:
        """Whether the charts of ``metrica`` show this annotation."""
        return not self.metricas or metrica in self.metricas


class State(models.TextChoices):
    """Where an alert stands.  Only ``firing`` (and its end) is ever mailed."""

    OK = "ok", pgettext_lazy("alert state", "ok")
    FIRING = "firing", pgettext_lazy("alert state", "firing")
    #: Too few events in the window to judge (``min_count``).
    NO_DATA = "no_data", pgettext_lazy("alert state", "no data")
    #: Not evaluated yet, or the last run could not read the number (Redis away).
    UNKNOWN = "unknown", pgettext_lazy("alert state", "unknown")


class Alert(models.Model):
    """A rule on one number of a metrica, evaluated by ``manage.py staste alerts`` (cron, or the
    Celery task): it fires when the number crosses ``above`` or ``below``, or changes by
    ``change`` percent against the previous window, and mails (or posts) once when it starts
    and once when it ends."""

    name = models.CharField(_("name"), max_length=200)
    metrica = models.CharField(_("metrica"), max_length=200, help_text=_("The name of a registered metrica."))
    filters = models.JSONField(
        _("filters"),
        default=dict,
        blank=True,
        help_text=_('Axis → value, e.g. {"gender": "girl"}; a hierarchical axis takes a list. Empty: every event.'),
    )
    measure = models.CharField(
        _("measure"), max_length=40, default="total", help_text=_("total, count, average, uniques, p50, p95, p99…")
    )
    window = models.CharField(
        _("window"),
        max_length=40,
        default="60 minutes",
        help_text=_("The last N minutes, hours, days, weeks or months, as the admin reads them: “60 minutes”."),
    )
    above = models.FloatField(_("above"), null=True, blank=True, help_text=_("Fires when the number is above this."))
    below = models.FloatField(_("below"), null=True, blank=True, help_text=_("Fires when the number is below this."))
    change = models.FloatField(
        _("change (%)"),
        null=True,
        blank=True,
        help_text=_(
            "Fires when the number changed by this percent against the previous window of the same length: "
            "50 for a rise of 50 percent or more, -50 for a fall of 50 percent or more."
        ),
    )
    min_count = models.PositiveIntegerField(
        _("minimum events"),
        default=0,
        help_text=_(
            "Fewer events than this in the window (or in the previous one, for a change) is “no data”, "
            "not judged: e.g. 20, so that a p95 of three requests does not fire."
        ),
    )
    recipients = models.TextField(
        _("recipients"), blank=True, help_text=_("E-mail addresses, comma separated; empty: the site's ADMINS.")
    )
    webhook = models.URLField(
        _("webhook"), max_length=500, blank=True, help_text=_("A URL that gets a JSON POST (Slack-compatible).")
    )
    enabled = models.BooleanField(_("enabled"), default=True)

    state = models.CharField(_("state"), max_length=20, choices=State.choices, default=State.UNKNOWN, editable=False)
    #: The state last told to the recipients (firing, or ok once resolved): what decides the next mail.
    notified = models.CharField(max_length=20, choices=State.choices, default=State.OK, editable=False)
    value = models.FloatField(_("last value"), null=True, blank=True, editable=False)
    detail = models.TextField(_("detail"), blank=True, editable=False)
    checked_at = models.DateTimeField(_("last checked"), null=True, blank=True, editable=False)
    changed_at = models.DateTimeField(_("state since"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")

    def __str__(self) -> str:
        return self.name

    def recipient_list(self) -> list[str]:
        """The addresses of ``recipients``, or those of the ADMINS setting when it is empty."""
        given = [address.strip() for address in self.recipients.replace(";", ",").split(",") if address.strip()]
        if given:
            return given
        return [admin[1] if isinstance(admin, (list, tuple)) else admin for admin in settings.ADMINS]


class AlertEvent(models.Model):
    """One change of an alert's state, and how it was told (mail, webhook)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events", verbose_name=_("alert"))
    time = models.DateTimeField(pgettext_lazy("moment", "time"), default=timezone.now, db_index=True)
    state = models.CharField(_("state"), max_length=20, choices=State.choices)
    previous = models.CharField(_("previous state"), max_length=20, choices=State.choices)
    value = models.FloatField(_("value"), null=True, blank=True)
    detail = models.TextField(_("detail"), blank=True)
    #: Whether a mail went out for this change, and what the webhook answered (or why it failed).
    mailed = models.BooleanField(_("mailed"), default=False)
    notice = models.TextField(_("notification"), blank=True)

    class Meta:
        ordering = ["-time", "-pk"]
        verbose_name = _("alert event")
        verbose_name_plural = _("alert events")
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.alert}: {self.get_previous_display()} → {self.get_state_display()}"
