"""``staste purge``: delete every key of a metrica, registered or not."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from staste import connection, housekeeping
from staste.checks import human_bytes
from staste.registration import registry

from . import Subcommand, checked_name, suggestion


class Purge(Subcommand):
    name = "purge"
    help = "Delete every key of a metrica (registered or not)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME")
        parser.add_argument(
            "--yes",
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be deleted.")

    def handle(self, command: Any, **options: Any) -> None:
        name = checked_name(options["name"])
        base = housekeeping.base_of(name)
        found = sorted(housekeeping.key_set(base))
        where = f"in Redis at {connection.describe()} (prefix {housekeeping.prefix()!r})"
        if not found:
            if name not in registry:
                raise CommandError(
                    f"No metrica named {name!r} is registered and no data is stored under that name {where}."
                    + suggestion(name, [m.name for m in registry] + sorted(housekeeping.inventory(False)))
                )
            command.info(f"{name} has no data {where}: nothing to purge.")
            return
        if options["dry_run"] or options["interactive"]:
            size = human_bytes(housekeeping.memory_usage(found))
        if options["dry_run"]:
            command.info(f"Would delete {len(found)} keys ({size}) of {name} {where}.")
            return
        if options["interactive"]:
            command.stdout.write(
                f"This deletes every counter of {name!r}: {len(found)} keys ({size}) {where}.\n"
                "It cannot be undone. Type 'yes' to continue, or 'no' to cancel: ",
                ending="",
            )
            command.stdout.flush()
            answer = (options.get("stdin") or sys.stdin).readline()
            if not answer.endswith("\n"):  # end of input: end the prompt's line
                command.stdout.write("")
            if answer.strip().lower() != "yes":
                raise CommandError("Purge cancelled: nothing was deleted. Pass --yes to purge without asking.")
        deleted = housekeeping.purge(base)
        command.info(f"Deleted {deleted} keys of {name}.")
        left = len(housekeeping.key_set(base))
        if left:
            command.warn(f"{left} keys of {name} were written during the purge: it is still being kicked.")
        elif name in registry:
            command.info(f"{name} is still defined in code: its next kick starts counting afresh.")
