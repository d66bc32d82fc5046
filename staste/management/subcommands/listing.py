"""``staste list``: the registered metricas, their axes, and the keys and memory they take.

"Fields/bucket" is the most fields one bucket hash can hold (checks.fields_per_bucket: the
product of the axes' values, "no limit" with an unbounded axis); "Largest hash" is how many the
largest of its hashes holds now, so the two say how far a metrica is from its bound.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from staste import checks, connection, housekeeping
from staste.checks import human_bytes
from staste.management import output
from staste.registration import registry

from . import Subcommand


class List(Subcommand):
    name = "list"
    help = "Registered metricas, their axes, keys and Redis memory."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all", action="store_true", help="Also list names that have data in Redis but are not registered."
        )
        parser.add_argument(
            "--no-memory", action="store_true", help="Skip MEMORY USAGE (faster on a very large Redis)."
        )

    def handle(self, command: Any, **options: Any) -> None:
        measured = not options["no_memory"]
        usage = housekeeping.inventory(measure_keys=measured)
        rows: list[list[Any]] = []  # output.table's cells: names, texts and numbers
        for metrica in registry:
            found = usage.get(metrica.name, housekeeping.Usage())
            bound = checks.fields_per_bucket(metrica)
            rows.append(
                [
                    metrica.name,
                    type(metrica).__name__,
                    output.describe_axes(metrica),
                    f"{bound:,}" if bound is not None else "no limit",
                    found.largest_fields,
                    found.keys,
                    found.bytes,
                ]
            )
        orphans = sorted(name for name in usage if name not in registry)
        if options["all"]:
            for name in orphans:
                found = usage[name]
                rows.append([name, "(not registered)", "-", "-", found.largest_fields, found.keys, found.bytes])
        headers = ["Metrica", "Type", "Axes", "Fields/bucket", "Largest hash", "Keys", "Memory"]
        if not measured:  # the largest hash and the memory are read key by key
            del headers[4], headers[-1]
            rows = [row[:4] + row[5:-1] for row in rows]
        else:
            for row in rows:
                row[-1] = human_bytes(row[-1])
        output.table(command.stdout.write, headers, rows, left=3)
        shown = [usage.get(row[0], housekeeping.Usage()) for row in rows]
        summary = f"{len(rows)} metricas, {sum(u.keys for u in shown)} keys"
        if not options["no_memory"]:
            summary += f", {human_bytes(sum(u.bytes for u in shown))}"
        command.info(f"\n{summary} in Redis at {connection.describe()} under prefix {housekeeping.prefix()!r}.")
        if orphans and not options["all"]:
            names = "name has" if len(orphans) == 1 else "names have"
            command.info(f"{len(orphans)} more {names} data but no registered metrica: `staste list --all` shows them.")
