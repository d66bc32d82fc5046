"""``staste alerts``: evaluate every enabled alert once (cron, once a minute)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from staste.alerts import runner
from staste.models import Alert

from . import Subcommand


class Alerts(Subcommand):
    name = "alerts"
    help = (
        "Evaluate every enabled alert once, mailing (and posting) the changes of state; "
        "for cron, once a minute (docs/alerts.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--alert", action="append", default=[], metavar="NAME", help="Only this alert (repeatable)."
        )

    def handle(self, command: Any, **options: Any) -> None:
        chosen = Alert.objects.filter(name__in=options["alert"]) if options["alert"] else None
        report = runner.run(alerts=chosen)
        if report.locked:
            command.info("Another run holds the alerts lock: nothing done.")
            return
        if report.outage:
            command.warn(f"Redis cannot be reached ({report.outage}): every alert is unknown, nothing was sent.")
        for event in report.events:
            told = " (mailed)" if event.mailed else ""
            notice = f" [{event.notice}]" if event.notice else ""
            command.info(f"{event.alert.name}: {event.previous} -> {event.state}{told}{notice}: {event.detail}")
        if report.lost_lock:
            command.warn("The alerts lock expired during the run (STASTE_ALERTS_LOCK_TIMEOUT): it stopped early.")
        if not report.outage:
            changes = len(report.events)
            command.info(f"{report.evaluated} alert(s) evaluated, {changes} change(s) of state.")
