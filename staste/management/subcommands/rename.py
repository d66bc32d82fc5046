"""``staste rename``: move a metrica's data to another name (the rules: housekeeping.plan_rename)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from staste import connection, housekeeping
from staste.registration import registry

from . import Subcommand, checked_name, suggestion


class Rename(Subcommand):
    name = "rename"
    help = "Move a metrica's data to another name."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("old", metavar="OLD")
        parser.add_argument("new", metavar="NEW")
        parser.add_argument("--merge", action="store_true", help="When NEW has data, add OLD's counters to it.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Rename even when NEW has data (it is deleted first, unless --merge) or the axes differ.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be moved.")

    def handle(self, command: Any, **options: Any) -> None:
        old, new = checked_name(options["old"]), checked_name(options["new"])
        force, merge = options["force"], options["merge"]
        where = f"in Redis at {connection.describe()} (prefix {housekeeping.prefix()!r})"
        defined = registry.get(new) if new in registry else None
        try:
            plan = housekeeping.plan_rename(old, new, merge=merge, force=force, defined=defined)
        except housekeeping.NothingToRename:
            candidates = sorted(housekeeping.inventory(False))
            raise CommandError(
                f"{old!r} has no data {where}: nothing to rename." + suggestion(old, candidates)
            ) from None
        except housekeeping.RenameError as exc:
            raise CommandError(str(exc)) from None
        if options["dry_run"]:
            verbs = {"move": "Would move", "merge": "Would merge", "replace": "Would replace"}
            detail = f" {new}'s {plan.new_keys} keys with" if plan.action == "replace" else ""
            command.info(f"{verbs[plan.action]}{detail} {plan.old_keys} keys of {old} to {new} {where}.")
            return
        old_base, new_base = housekeeping.base_of(old), housekeeping.base_of(new)
        try:
            moved = housekeeping.rename(old_base, new_base, replace=force and not merge, merge=merge)
        except housekeeping.RenameError as exc:
            raise CommandError(f"Cannot rename {old} to {new}: {exc}") from None
        done = {"move": "Moved", "merge": "Merged", "replace": "Replaced the data of " + new + " with"}[plan.action]
        command.info(f"{done} {moved} keys of {old}" + ("" if plan.action == "replace" else f" to {new}") + ".")
        if old in registry:
            command.warn(f"{old} is still defined in code: its next kick starts new data under the old name.")
