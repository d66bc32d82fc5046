"""How an alert is told: a mail (text and HTML) and a webhook (a JSON POST).

Both go out on a change of state only (the runner decides): once when an alert starts
firing, once when it is resolved.  The mail comes through Django's e-mail framework
(``EMAIL_BACKEND``: SMTP, the console in the demo, the outbox in tests), in the site's
language (``LANGUAGE_CODE``), with ``EMAIL_SUBJECT_PREFIX`` as ``mail_admins`` writes it, from
``STASTE_ALERTS_FROM`` (default ``DEFAULT_FROM_EMAIL``), and links to the metrica's admin page
for the rule's window, filters and measure (absolute with ``STASTE_SITE_URL``).

The webhook gets ``{"text": ..., "alert": ..., "state": ..., ...}``: ``text`` is what Slack (and
Mattermost, Rocket.Chat, Discord's Slack-compatible endpoint) shows.  It has
``STASTE_ALERTS_WEBHOOK_TIMEOUT`` seconds (5) to answer; a failure is returned as text, to be
recorded in the alert's history, never raised into the run.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from staste import conf, formats
from staste.adminviews.state import PageState
from staste.alerts.judging import Numbers, Verdict
from staste.alerts.rules import absolute, admin_path
from staste.models import Alert

logger = logging.getLogger("staste")

FIRING, RESOLVED = "firing", "resolved"
#: Longest webhook answer or error kept in the history.
MAX_NOTICE = 300
#: The measures that carry the metrica's unit (counts and distinct ids have none).
COUNTED = ("count", "uniques")


def unit_of(state: PageState) -> str:
    return "" if state.measure in COUNTED else state.metrica.unit


def rule_text(alert: Alert, unit: str) -> list[str]:
    """The rule's conditions in words: "above 300 ms", "below 10", "change of +50% or more"."""
    parts = []
    if alert.above is not None:
        parts.append(_("above %(value)s") % {"value": formats.with_unit(alert.above, unit)})
    if alert.below is not None:
        parts.append(_("below %(value)s") % {"value": formats.with_unit(alert.below, unit)})
    if alert.change is not None:
        parts.append(_("a change of %(change)s or more") % {"change": formats.signed_percent(alert.change)})
    return parts


def what_text(state: PageState) -> str:
    """What the rule watches: "p95 of Response times (view=shop.item) over the last 60 minutes"."""
    filters = ", ".join(f"{name}={formats.value_label(value)}" for name, value in state.filters.items())
    subject = f"{state.metrica.title} ({filters})" if filters else str(state.metrica.title)
    return _("%(measure)s of %(metrica)s, %(window)s") % {
        "measure": formats.measure_label(state.measure),
        "metrica": subject,
        "window": formats.range_label(state.last or "").lower(),
    }


def context(
    alert: Alert, kind: str, state: PageState, numbers: Numbers | None, verdict: Verdict | None, since: str
) -> dict[str, Any]:
    """Everything the mail and the webhook say, as text in the active language."""
    unit = unit_of(state)
    value = numbers.value if numbers is not None else None
    crossed = [
        {
            "above": _("above %(value)s") % {"value": formats.with_unit(alert.above, unit)},
            "below": _("below %(value)s") % {"value": formats.with_unit(alert.below, unit)},
            "change": _("changed by %(change)s")
            % {"change": formats.signed_percent(verdict.change if verdict else None)},
        }[name]
        for name in (verdict.crossed if verdict else ())
    ]
    previous = None
    if alert.change is not None and numbers is not None and numbers.previous is not None:
        previous = formats.with_unit(numbers.previous, unit)
    link = absolute(admin_path(state))
    if kind == FIRING:
        subject = _("Alert firing: %(name)s") % {"name": alert.name}
        headline = _("%(name)s is firing") % {"name": alert.name}
    else:
        subject = _("Alert resolved: %(name)s") % {"name": alert.name}
        headline = _("%(name)s is resolved") % {"name": alert.name}
    return {
        "kind": kind,
        "name": alert.name,
        "subject": settings.EMAIL_SUBJECT_PREFIX + subject,
        "headline": headline,
        "what": what_text(state),
        "value": formats.with_unit(value, unit),
        "crossed": crossed,
        "rule": rule_text(alert, unit),
        "change": formats.signed_percent(verdict.change)
        if verdict is not None and verdict.change is not None
        else None,
        "previous": previous,
        "since": since,
        "link": link,
        "zone": conf.time_zone().key,
    }


def send_mail(alert: Alert, message: dict[str, Any]) -> str | None:
    """Mail ``message`` to the alert's recipients; None when sent, else why not (recorded)."""
    recipients = alert.recipient_list()
    if not recipients:
        return _("no recipients: the alert has none and ADMINS is empty")
    mail = EmailMultiAlternatives(
        subject=message["subject"],
        body=render_to_string("staste/alerts/mail.txt", message),
        from_email=conf.get("STASTE_ALERTS_FROM") or settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    mail.attach_alternative(render_to_string("staste/alerts/mail.html", message), "text/html")
    try:
        mail.send()
    except (smtplib.SMTPException, OSError) as exc:  # a mail server away: the run goes on
        logger.warning("staste: the mail of alert %r was not sent: %s", alert.name, exc)
        return _("mail failed: %(error)s") % {"error": str(exc)[:MAX_NOTICE]}
    return None


def webhook_payload(alert: Alert, state: PageState, message: dict[str, Any], value: float | None) -> dict[str, Any]:
    """The JSON a webhook gets: Slack's ``text``, and the facts for other receivers."""
    lines = [f"{message['headline']}: {message['what']} = {message['value']}"]
    if message["crossed"]:
        lines[0] += f" ({', '.join(message['crossed'])})"
    lines.append(message["link"])
    return {
        "text": "\n".join(lines),
        "alert": alert.name,
        "state": message["kind"],
        "metrica": state.metrica.name,
        "filters": {name: formats.value_label(v) for name, v in state.filters.items()},
        "measure": state.measure,
        "window": state.last,
        "value": value,
        "url": message["link"],
    }


def post_webhook(url: str, payload: dict[str, Any]) -> str:
    """POST ``payload`` as JSON to ``url``; what happened, as text (never raises)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "staste-alerts"},
        method="POST",
    )
    timeout = conf.get("STASTE_ALERTS_WEBHOOK_TIMEOUT")
    if not url.lower().startswith(("http://", "https://")):
        return pgettext("webhook", "webhook failed: %(error)s") % {"error": _("not an http(s) URL")}
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # (http or https only: checked above)
            return pgettext("webhook", "webhook: %(status)s") % {"status": response.status}
    except urllib.error.HTTPError as exc:
        error = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, timed out, a bad URL
        error = str(getattr(exc, "reason", None) or exc)
    logger.warning("staste: the webhook %s failed: %s", url, error)
    return pgettext("webhook", "webhook failed: %(error)s") % {"error": error[:MAX_NOTICE]}
