"""``staste digest``: mail a day's or a week's numbers (cron, once a day or a week)."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import translation

from staste import digest

from . import Subcommand


def _day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--date {text!r}: give a day as YYYY-MM-DD") from None


class Digest(Subcommand):
    name = "digest"
    help = (
        "Mail a summary of the last day or week (totals and their change, top values, the slowest views) "
        "to --to or the ADMINS, as text and HTML."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", choices=digest.PERIODS, default="day", help="A calendar day or an ISO week.")
        parser.add_argument(
            "--date",
            metavar="YYYY-MM-DD",
            help="The day, or a day of the week, to summarise (default: the last one over).",
        )
        parser.add_argument(
            "--to",
            action="append",
            default=[],
            metavar="ADDRESS",
            help="Recipients (repeatable or comma separated; default: ADMINS).",
        )
        parser.add_argument(
            "--metrica", action="append", default=[], metavar="NAME",
            help="Only this metrica (repeatable; default: STASTE_DIGEST_METRICAS, or every metrica).",
        )  # fmt: skip
        parser.add_argument("--language", metavar="CODE", help="The mail's language (default: LANGUAGE_CODE), e.g. ru.")

    def handle(self, command: Any, **options: Any) -> None:
        recipients = [a.strip() for item in options["to"] for a in item.split(",") if a.strip()]
        recipients = recipients or [
            admin[1] if isinstance(admin, (list, tuple)) else admin for admin in settings.ADMINS
        ]
        if not recipients:
            raise CommandError("No recipient: give --to ADDRESS, or set ADMINS.")
        language = options["language"] or settings.LANGUAGE_CODE
        if not translation.check_for_language(language):
            raise CommandError(f"--language {language!r}: no such language here (e.g. en, ru)")
        day = _day(options["date"]) if options["date"] else digest.last_complete(options["period"])
        try:
            metricas = digest.chosen_metricas(options["metrica"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        with translation.override(language):
            found = digest.build(options["period"], day, metricas)
            digest.send(found, recipients)
        command.info(f"Sent the {options['period']} digest of {found.period.label()} to {', '.join(recipients)}.")
