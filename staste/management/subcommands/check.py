"""``staste check``: the Redis staste lives in, and the metricas' data in it.

It runs staste's system checks (:mod:`staste.checks`, the same functions as ``manage.py check
--tag staste``) and presents them, with a line for what is fine; unlike ``manage.py check`` it
fails outright when Redis cannot be reached.
"""

from __future__ import annotations

from typing import Any

from django.core import checks as django_checks
from django.core.management.base import CommandError, CommandParser

from staste import checks, connection, housekeeping
from staste.management.output import plural
from staste.registration import registry

from . import Subcommand

LEVELS = {
    django_checks.DEBUG: "DEBUG",
    django_checks.INFO: "INFO",
    django_checks.WARNING: "WARNING",
    django_checks.ERROR: "ERROR",
    django_checks.CRITICAL: "CRITICAL",
}


class Check(Subcommand):
    name = "check"
    help = "Redis reachable, its version, eviction policy, persistence, key signatures, duplicate names, sizes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fail-level",
            choices=("ERROR", "WARNING"),
            default="ERROR",
            help="Exit with status 1 from this level up (default: ERROR).",
        )

    def handle(self, command: Any, **options: Any) -> None:
        found: list[django_checks.CheckMessage] = []

        def ok(message: str) -> None:
            if command.verbosity >= 1:
                command.stdout.write(f"{'OK':8} {message}", command.style.SUCCESS)

        def report(messages: list[django_checks.CheckMessage]) -> None:
            for message in messages:
                if message.is_silenced():
                    continue
                found.append(message)
                style = command.style.ERROR if message.is_serious() else command.style.WARNING
                if message.level < django_checks.WARNING:
                    style = command.style.HTTP_INFO
                command.stdout.write(
                    f"{LEVELS.get(message.level, message.level):8} {message.msg} ({message.id})", style
                )
                if message.hint and command.verbosity >= 1:
                    command.stdout.write(f"{'':9}{message.hint}")

        clashes = checks.check_name_clashes()
        report(clashes)
        statuses = checks.servers()  # unreachable: a CommandError, not a warning
        ok(f"Redis at {connection.describe()} is reachable")
        for status in statuses:
            node = f"{status.node}: " if len(statuses) > 1 else ""
            problems = checks.server_problems([status], node=node)
            ids = {message.id for message in problems}
            if "staste.E003" not in ids:
                ok(f"{node}Redis {status.version}")
            if not ids & {"staste.W002", "staste.I002"}:
                inactive = " (inactive: no maxmemory is set)" if status.maxmemory <= 0 else ""
                ok(f"{node}maxmemory-policy {status.policy}{inactive}: counters are never evicted")
            if not ids & {"staste.W004", "staste.I003"}:
                ok(f"{node}persistence: {status.persistence}")
            report(problems)
        metricas = list(registry)
        stored = housekeeping.stored_signatures([metrica.base for metrica in metricas])
        mismatched = checks.signature_problems(metricas, stored)
        report(mismatched)
        if metricas and not mismatched:
            ok(f"the stored signatures of {len(metricas)} metricas match their code")
        too_large = checks.check_combinations()
        report(too_large)
        bounds = [(checks.fields_per_bucket(metrica), metrica.name) for metrica in metricas]
        if bounds and not too_large:
            fields, name = max(bounds, key=lambda pair: pair[0] or 0)
            ok(f"the axes of {len(metricas)} metricas allow at most {fields or 0:,} fields per bucket ({name})")
        largest = max(housekeeping.inventory().values(), key=lambda usage: usage.largest_fields, default=None)
        if largest is not None and largest.largest is not None:
            ok(f"largest hash: {largest.largest} holds {largest.largest_fields:,} fields")
        errors = sum(1 for message in found if message.is_serious())
        warnings = sum(1 for message in found if django_checks.WARNING <= message.level < django_checks.ERROR)
        if errors or (warnings and options["fail_level"] == "WARNING"):
            raise CommandError(f"staste check found {plural(errors, 'error')} and {plural(warnings, 'warning')}.")
        command.info(f"staste check: no errors ({plural(warnings, 'warning')}).")
