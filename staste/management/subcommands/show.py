"""``staste show``: a metrica's numbers as a table (the query API from the shell)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError, CommandParser

from staste import formats, timescale
from staste.management import output
from staste.query import pipelined

from . import Subcommand, filter_arguments, query, registered


class Show(Subcommand):
    name = "show"
    help = "A metrica's numbers as a table (the query API from the shell)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME")
        for scale in timescale.SCALES:
            parser.add_argument(f"--{scale}", type=int, metavar="N", help=f"Only this {scale} (give the scales above).")
        filter_arguments(parser, "Break the numbers down by this axis (default: by the next finer time scale).")

    def handle(self, command: Any, **options: Any) -> None:
        metrica = registered(command, options["name"])
        span = {scale: options[scale] for scale in timescale.SCALES if options[scale] is not None}
        found = query(metrica, options, span)
        by = options["by"]
        averaged, multiplier = metrica.averaged, metrica.multiplier
        heads: list[Callable[[], Any]] = [found.total]
        if averaged:
            heads += [found.count, found.average]
        breakdown = by is not None or len(found.span) < len(metrica.date_scales)
        tails: list[Callable[[], Any]] = []
        if breakdown:
            tails.append(lambda: found.iterate(by))
            if averaged:
                tails += [lambda: found.iterate_counts(by), lambda: found.iterate_averages(by)]
        try:
            results = pipelined(heads + tails)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None

        write = command.stdout.write
        write(f"{output.printable(str(metrica.title))} ({metrica.name}, {type(metrica).__name__})")
        filters = ", ".join(
            f"{name}={output.printable(formats.value_label(value))}" for name, value in found.filters.items()
        )
        write(f"span: {formats.bucket_label(found.span)}" + (f"; filters: {filters}" if filters else ""))
        totals = f"total: {output.number(formats.rounded(results[0], multiplier))}"
        if averaged:
            average = formats.rounded(results[2], multiplier, average=True)
            totals += f"   count: {output.number(results[1])}   average: {output.number(average)}"
        write(totals)
        if not breakdown:
            finest = timescale.scale_of(found.span)
            why = f"records no time scale finer than {finest}s" if finest else "records only all time"
            command.info(f"({metrica.name} {why}; --by AXIS breaks the numbers down by an axis)")
            return
        rows = results[len(heads)]
        if averaged:
            counts, averages = dict(results[len(heads) + 1]), dict(results[len(heads) + 2])
        table = []
        for label, total in rows:
            shown = formats.value_label(label) if by else formats.bucket_label((*found.span, label))
            row = [shown, formats.rounded(total, multiplier)]
            if averaged:
                row += [counts.get(label), formats.rounded(averages.get(label), multiplier, average=True)]
            table.append(row)
        column = by or timescale.SCALES[len(found.span)]
        write("")
        output.table(write, [column, "total"] + (["count", "average"] if averaged else []), table, left=1)
