"""A project's own command, timed by one line: ``@staste.timed(...)`` on its ``handle``."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import staste


class Command(BaseCommand):
    help = "Pretends to build a report (tests/test_timed.py times it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fail", action="store_true")

    @staste.timed("reports.slow")
    def handle(self, *args: Any, **options: Any) -> None:
        if options["fail"]:
            raise CommandError("asked to fail")
        self.stdout.write("report done")
