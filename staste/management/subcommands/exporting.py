"""``staste export``: a metrica's time series as CSV or JSON (see :mod:`staste.export`)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from staste import export, timescale
from staste.axis import OTHER
from staste.management import output

from . import Subcommand, filter_arguments, query, registered


class Export(Subcommand):
    name = "export"
    help = "A metrica's time series as CSV or JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME")
        parser.add_argument(
            "--format", choices=("csv", "json"), help="Output format (default: from the -o suffix, else csv)."
        )
        parser.add_argument(
            "--since",
            help="Start: 2024-05-01, 2024-05, 2024, 2024-05-01T10:00, 7d, 12h... (default: the first year with data).",
        )
        parser.add_argument("--until", help="End, same forms (default: now).")
        parser.add_argument(
            "--scale", choices=timescale.SCALES, help="Bucket size (default: the finest retained since --since)."
        )
        filter_arguments(parser, "One series per value of this axis.")
        parser.add_argument("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Progress bar on stderr (default: when stderr is a terminal and the rows go elsewhere).",
        )

    def handle(self, command: Any, **options: Any) -> None:
        metrica = registered(command, options["name"])
        found = query(metrica, options)
        target = options["output"]
        to_file = target not in (None, "-")
        fmt = options["format"] or ("json" if to_file and target.lower().endswith(".json") else "csv")
        try:
            since = export.parse_moment(options["since"]) if options["since"] else None
            until = export.parse_moment(options["until"]) if options["until"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if to_file:
            path = Path(target)
            if not path.parent.is_dir():
                raise CommandError(f"-o {target}: the directory {str(path.parent)!r} does not exist")
            if path.is_dir():
                raise CommandError(f"-o {target}: is a directory")
        try:
            plan = export.plan(found, since, until, options["scale"], options["by"])
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if plan.other_left_out:
            command.warn(f"The values of {plan.by} counted as {OTHER} (past max_choices) have no series of their own.")
        writer = export.write_json if fmt == "json" else export.write_csv
        bar = progress_bar(command, options["progress"], plan, to_file)
        on_progress = bar.update if bar is not None else None
        try:
            if to_file:
                written = write_file(Path(target), lambda out: writer(out, plan, export.rows(plan, on_progress)))
            else:
                written = writer(output.Sink(command.stdout), plan, export.rows(plan, on_progress))
        except BrokenPipeError:
            # The reader went away (`... | head`): stop quietly, as command-line tools do.
            if not to_file and command.stdout._out is sys.stdout:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return
            raise
        finally:
            if bar is not None:
                bar.close()
        if to_file:
            command.info(f"Wrote {written} rows ({plan.scale}s, {fmt}) to {target}.")


def write_file(target: Path, write: Callable[[Any], int]) -> int:
    """Write next to ``target`` and move into place, so a failed export leaves no half file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            written = write(out)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return written


def progress_bar(command: Any, wanted: bool | None, plan: export.Plan, to_file: bool) -> Any:
    stream = getattr(command.stderr, "_out", sys.stderr)
    automatic = wanted is None
    if automatic:
        wanted = stream.isatty() and (to_file or not command.stdout.isatty())
    if not wanted:
        return None
    try:
        from tqdm import tqdm  # an optional dependency: only imported when a bar is wanted
    except ImportError:
        if not automatic:
            command.warn("--progress needs tqdm (pip install tqdm); exporting without a progress bar.")
        return None
    # Shown only once an export has run for a moment: short ones stay quiet.
    return tqdm(
        total=plan.buckets * plan.series,
        unit="bucket",
        file=stream,
        delay=0.5 if automatic else 0,
        desc=plan.query.metrica.name,
        dynamic_ncols=True,
    )
