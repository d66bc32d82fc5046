"""``manage.py staste``: staste's data from the shell.

``list`` the metricas and what they take in Redis, ``show`` one as a table, ``export`` its time
series as CSV or JSON, ``purge`` or ``rename`` its data, and ``check`` the Redis it lives in.
Each subcommand has ``--help``.  Failures raise CommandError (exit status 1, message on
stderr); arguments argparse cannot read exit with status 2, as for every Django command.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from staste import connection, export, formats, housekeeping, timescale
from staste.axis import OTHER, Axis
from staste.exceptions import RedisUnavailable
from staste.metrica import Metrica
from staste.query import MetricaValues, pipelined
from staste.registration import registry

SUBCOMMANDS = ("list", "show", "export", "purge", "rename", "check")


class Command(BaseCommand):
    help = (
        "Operate staste's data: list metricas, show or export their numbers, purge or rename their "
        "data in Redis, check the Redis they live in. `manage.py staste <subcommand> --help` for each."
    )
    # `staste check` reports staste's problems itself, and purge/rename must work while they last.
    requires_system_checks: list[str] = []
    stealth_options = ("stdin",)

    # -- arguments --------------------------------------------------------------------------

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(
            dest="subcommand", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}", title="subcommands"
        )

        listing = self._subparser(subparsers, "list", "Registered metricas, their axes, keys and Redis memory.")
        listing.add_argument(
            "--all", action="store_true", help="Also list names that have data in Redis but are not registered."
        )
        listing.add_argument(
            "--no-memory", action="store_true", help="Skip MEMORY USAGE (faster on a very large Redis)."
        )

        show = self._subparser(subparsers, "show", "A metrica's numbers as a table (the query API from the shell).")
        show.add_argument("name", metavar="NAME")
        for scale in timescale.SCALES:
            show.add_argument(f"--{scale}", type=int, metavar="N", help=f"Only this {scale} (give the scales above).")
        self._filter_arguments(show, "Break the numbers down by this axis (default: by the next finer time scale).")

        exporting = self._subparser(subparsers, "export", "A metrica's time series as CSV or JSON.")
        exporting.add_argument("name", metavar="NAME")
        exporting.add_argument(
            "--format", choices=("csv", "json"), help="Output format (default: from the -o suffix, else csv)."
        )
        exporting.add_argument(
            "--since",
            help="Start: 2024-05-01, 2024-05, 2024, 2024-05-01T10:00, 7d, 12h... (default: the first year with data).",
        )
        exporting.add_argument("--until", help="End, same forms (default: now).")
        exporting.add_argument(
            "--scale", choices=timescale.SCALES, help="Bucket size (default: the finest retained since --since)."
        )
        self._filter_arguments(exporting, "One series per value of this axis.")
        exporting.add_argument("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
        exporting.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Progress bar on stderr (default: when stderr is a terminal and the rows go elsewhere).",
        )

        purge = self._subparser(subparsers, "purge", "Delete every key of a metrica (registered or not).")
        purge.add_argument("name", metavar="NAME")
        purge.add_argument(
            "--yes",
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )
        purge.add_argument("--dry-run", action="store_true", help="Only say what would be deleted.")

        rename = self._subparser(subparsers, "rename", "Move a metrica's data to another name.")
        rename.add_argument("old", metavar="OLD")
        rename.add_argument("new", metavar="NEW")
        rename.add_argument("--merge", action="store_true", help="When NEW has data, add OLD's counters to it.")
        rename.add_argument(
            "--force",
            action="store_true",
            help="Rename even when NEW has data (it is deleted first, unless --merge) or the axes differ.",
        )
        rename.add_argument("--dry-run", action="store_true", help="Only say what would be moved.")

        check = self._subparser(
            subparsers, "check", "Redis reachable, its version, eviction policy, key signatures, duplicate names."
        )
        check.add_argument(
            "--fail-level",
            choices=("ERROR", "WARNING"),
            default="ERROR",
            help="Exit with status 1 from this level up (default: ERROR).",
        )

    def _subparser(self, subparsers: Any, name: str, text: str) -> CommandParser:
        sub = subparsers.add_parser(name, help=text, description=text)
        # Django's own options, accepted after the subcommand too (`staste purge x --yes -v 0`).
        hidden = argparse.SUPPRESS
        sub.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=hidden, help=hidden)
        sub.add_argument("--settings", default=hidden, help=hidden)
        sub.add_argument("--pythonpath", default=hidden, help=hidden)
        for flag in ("--traceback", "--no-color", "--force-color"):
            sub.add_argument(flag, action="store_true", default=hidden, help=hidden)
        return sub

    def _filter_arguments(self, sub: CommandParser, by_help: str) -> None:
        sub.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="AXIS=VALUE",
            help="Only events with this axis value (repeatable; a path like a/b for a hierarchical axis).",
        )
        sub.add_argument("--by", metavar="AXIS", help=by_help)

    # -- running ------------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options.get("verbosity", 1)
        try:
            getattr(self, "handle_" + options["subcommand"])(**options)
        except RedisUnavailable as exc:
            raise CommandError(str(exc)) from exc
        except ImproperlyConfigured as exc:
            raise CommandError(f"staste is not configured: {exc}") from exc
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise CommandError(f"Redis at {connection.describe()} answered: {exc}") from exc

    def info(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)

    def warn(self, message: str) -> None:
        self.stderr.write(message, self.style.WARNING)

    # -- names ------------------------------------------------------------------------------

    def _name(self, name: str) -> str:
        try:
            return housekeeping.check_name(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def _suggestion(self, name: str, candidates: list[str]) -> str:
        candidates = sorted(set(candidates))
        close = difflib.get_close_matches(name, candidates, n=3)
        if close:
            return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        if candidates:
            return " Known: " + ", ".join(candidates[:20]) + ("…" if len(candidates) > 20 else "") + "."
        return " No metrica is registered (define them in an installed app's stats.py)."

    def _registered(self, name: str) -> Metrica:
        name = self._name(name)
        if name in registry:
            if any(clash == name for clash, _ in registry.clashes):
                self.warn(f"Two metricas are named {name!r}; using the first registered (see `staste check`).")
            return registry.get(name)
        message = f"No metrica named {name!r} is registered."
        orphan = len(housekeeping.key_set(housekeeping.base_of(name)))
        if orphan:
            message += (
                f" Redis still holds {orphan} keys of it, which staste cannot read without its definition:"
                f" `staste rename {name} NEW` or `staste purge {name}`."
            )
        raise CommandError(message + self._suggestion(name, [m.name for m in registry]))

    def _filters(self, metrica: Metrica, items: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        axes = list(metrica.axes)
        for item in items:
            axis_name, equals, value = item.partition("=")
            axis_name = axis_name.strip()
            if not equals:
                example = f"{axes[0]}=..." if axes else "AXIS=VALUE"
                raise CommandError(f"--filter {item!r}: write AXIS=VALUE, e.g. --filter {example}")
            if axis_name not in metrica.axes:
                raise CommandError(
                    f"--filter {item!r}: {metrica.name} has no axis {axis_name!r}; its axes are {axes or 'none'}"
                )
            if axis_name in found:
                raise CommandError(f"--filter {axis_name}=... is given twice")
            found[axis_name] = tuple(value.split("/")) if metrica.axes[axis_name].hierarchical else value
        return found

    def _query(self, metrica: Metrica, options: dict[str, Any], span: dict[str, Any] | None = None) -> MetricaValues:
        try:
            query = metrica.filter(**self._filters(metrica, options["filter"]))
            if span:
                query = query.timespan(**span)
            if options["by"] is not None and options["by"] not in metrica.axes:
                raise ValueError(f"{metrica.name} has no axis {options['by']!r}; its axes are {list(metrica.axes)}")
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        return query

    # -- list ---------------------------------------------------------------------------------

    def handle_list(self, **options: Any) -> None:
        usage = housekeeping.inventory(measure=not options["no_memory"])
        rows = []
        for metrica in registry:
            found = usage.get(metrica.name, housekeeping.Usage())
            rows.append([metrica.name, type(metrica).__name__, describe_axes(metrica), found.keys, found.bytes])
        orphans = sorted(name for name in usage if name not in registry)
        if options["all"]:
            for name in orphans:
                rows.append([name, "(not registered)", "-", usage[name].keys, usage[name].bytes])
        headers = ["Metrica", "Type", "Axes", "Keys", "Memory"]
        if options["no_memory"]:
            headers.pop()
            rows = [row[:-1] for row in rows]
        else:
            for row in rows:
                row[-1] = human_bytes(row[-1])
        self.print_table(headers, rows, left=3)
        shown = [usage.get(row[0], housekeeping.Usage()) for row in rows]
        summary = f"{len(rows)} metricas, {sum(u.keys for u in shown)} keys"
        if not options["no_memory"]:
            summary += f", {human_bytes(sum(u.bytes for u in shown))}"
        self.info(f"\n{summary} in Redis at {connection.describe()} under prefix {housekeeping.prefix()!r}.")
        if orphans and not options["all"]:
            names = "name has" if len(orphans) == 1 else "names have"
            self.info(f"{len(orphans)} more {names} data but no registered metrica: `staste list --all` shows them.")

    # -- show ---------------------------------------------------------------------------------

    def handle_show(self, **options: Any) -> None:
        metrica = self._registered(options["name"])
        span = {scale: options[scale] for scale in timescale.SCALES if options[scale] is not None}
        query = self._query(metrica, options, span)
        by = options["by"]
        averaged = metrica.averaged
        heads: list[Callable[[], Any]] = [query.total]
        if averaged:
            heads += [query.count, query.average]
        breakdown = by is not None or len(query.span) < len(metrica.date_scales)
        tails: list[Callable[[], Any]] = []
        if breakdown:
            tails.append(lambda: query.iterate(by))
            if averaged:
                tails += [lambda: query.iterate_counts(by), lambda: query.iterate_averages(by)]
        try:
            results = pipelined(heads + tails)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None

        self.stdout.write(f"{printable(str(metrica.title))} ({metrica.name}, {type(metrica).__name__})")
        where = formats.bucket_label(query.span)
        filters = ", ".join(f"{name}={printable(formats.value_label(value))}" for name, value in query.filters.items())
        self.stdout.write(f"span: {where}" + (f"; filters: {filters}" if filters else ""))
        multiplier = metrica.multiplier
        totals = f"total: {number(formats.rounded(results[0], multiplier))}"
        if averaged:
            average = formats.rounded(results[2], multiplier, average=True)
            totals += f"   count: {number(results[1])}   average: {number(average)}"
        self.stdout.write(totals)
        if not breakdown:
            finest = timescale.scale_of(query.span)
            why = f"records no time scale finer than {finest}s" if finest else "records only all time"
            self.info(f"({metrica.name} {why}; --by AXIS breaks the numbers down by an axis)")
            return
        rows = results[len(heads)]
        if averaged:
            counts, averages = dict(results[len(heads) + 1]), dict(results[len(heads) + 2])
        table = []
        for label, total in rows:
            shown = formats.value_label(label) if by else formats.bucket_label((*query.span, label))
            row = [shown, formats.rounded(total, multiplier)]
            if averaged:
                row += [counts.get(label), formats.rounded(averages.get(label), multiplier, average=True)]
            table.append(row)
        column = by or timescale.SCALES[len(query.span)]
        self.stdout.write("")
        self.print_table([column, "total"] + (["count", "average"] if averaged else []), table, left=1)

    # -- export -------------------------------------------------------------------------------

    def handle_export(self, **options: Any) -> None:
        metrica = self._registered(options["name"])
        query = self._query(metrica, options)
        output = options["output"]
        to_file = output not in (None, "-")
        fmt = options["format"] or ("json" if to_file and output.lower().endswith(".json") else "csv")
        try:
            since = export.parse_moment(options["since"]) if options["since"] else None
            until = export.parse_moment(options["until"]) if options["until"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if to_file:
            target = Path(output)
            if not target.parent.is_dir():
                raise CommandError(f"-o {output}: the directory {str(target.parent)!r} does not exist")
            if target.is_dir():
                raise CommandError(f"-o {output}: is a directory")
        try:
            plan = export.plan(query, since, until, options["scale"], options["by"])
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if plan.other_left_out:
            self.warn(f"The values of {plan.by} counted as {OTHER} (past max_choices) have no series of their own.")
        writer = export.write_json if fmt == "json" else export.write_csv
        bar = self._progress_bar(options["progress"], plan, to_file)
        on_progress = bar.update if bar is not None else None
        try:
            if to_file:
                written = self._write_file(Path(output), lambda out: writer(out, plan, export.rows(plan, on_progress)))
            else:
                written = writer(_Sink(self.stdout), plan, export.rows(plan, on_progress))
        except BrokenPipeError:
            # The reader went away (`... | head`): stop quietly, as command-line tools do.
            if not to_file and self.stdout._out is sys.stdout:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return
            raise
        finally:
            if bar is not None:
                bar.close()
        if to_file:
            self.info(f"Wrote {written} rows ({plan.scale}s, {fmt}) to {output}.")

    def _write_file(self, target: Path, write: Callable[[Any], int]) -> int:
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

    def _progress_bar(self, wanted: bool | None, plan: export.Plan, to_file: bool) -> Any:
        stream = getattr(self.stderr, "_out", sys.stderr)
        automatic = wanted is None
        if automatic:
            wanted = stream.isatty() and (to_file or not self.stdout.isatty())
        if not wanted:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            if not automatic:
                self.warn("--progress needs tqdm (pip install tqdm); exporting without a progress bar.")
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

    # -- purge --------------------------------------------------------------------------------

    def handle_purge(self, **options: Any) -> None:
        name = self._name(options["name"])
        base = housekeeping.base_of(name)
        found = sorted(housekeeping.key_set(base))
        where = f"in Redis at {connection.describe()} (prefix {housekeeping.prefix()!r})"
        if not found:
            if name not in registry:
                raise CommandError(
                    f"No metrica named {name!r} is registered and no data is stored under that name {where}."
                    + self._suggestion(name, [m.name for m in registry] + sorted(housekeeping.inventory(False)))
                )
            self.info(f"{name} has no data {where}: nothing to purge.")
            return
        if options["dry_run"] or options["interactive"]:
            size = human_bytes(housekeeping.memory_usage(found))
        if options["dry_run"]:
            self.info(f"Would delete {len(found)} keys ({size}) of {name} {where}.")
            return
        if options["interactive"]:
            self.stdout.write(
                f"This deletes every counter of {name!r}: {len(found)} keys ({size}) {where}.\n"
                "It cannot be undone. Type 'yes' to continue, or 'no' to cancel: ",
                ending="",
            )
            self.stdout.flush()
            answer = (options.get("stdin") or sys.stdin).readline()
            if not answer.endswith("\n"):  # end of input: end the prompt's line
                self.stdout.write("")
            if answer.strip().lower() != "yes":
                raise CommandError("Purge cancelled: nothing was deleted. Pass --yes to purge without asking.")
        deleted = housekeeping.purge(base)
        self.info(f"Deleted {deleted} keys of {name}.")
        left = len(housekeeping.key_set(base))
        if left:
            self.warn(f"{left} keys of {name} were written during the purge: it is still being kicked.")
        elif name in registry:
            self.info(f"{name} is still defined in code: its next kick starts counting afresh.")

    # -- rename -------------------------------------------------------------------------------

    def handle_rename(self, **options: Any) -> None:
        old, new = self._name(options["old"]), self._name(options["new"])
        force, merge = options["force"], options["merge"]
        if old == new:
            raise CommandError(f"OLD and NEW are both {old!r}")
        old_base, new_base = housekeeping.base_of(old), housekeeping.base_of(new)
        old_keys = housekeeping.key_set(old_base)
        where = f"in Redis at {connection.describe()} (prefix {housekeeping.prefix()!r})"
        if not old_keys:
            candidates = sorted(housekeeping.inventory(False))
            raise CommandError(f"{old!r} has no data {where}: nothing to rename." + self._suggestion(old, candidates))
        new_keys = housekeeping.key_set(new_base)
        if new_keys and not (force or merge):
            raise CommandError(
                f"{new!r} already has data ({len(new_keys)} keys). Pass --merge to add {old}'s counters to it, "
                f"or --force to replace it (its data is deleted)."
            )
        old_signature, new_signature = housekeeping.stored_signatures([old_base, new_base])
        if not force:
            if merge and new_keys and old_signature and new_signature and old_signature != new_signature:
                raise CommandError(
                    f"{old}'s data was written with other axes than {new}'s ({old_signature!r} vs "
                    f"{new_signature!r}): merging would mix counters that mean different things. "
                    "Pass --force to merge anyway."
                )
            if new in registry and old_signature and old_signature != registry.get(new).signature():
                raise CommandError(
                    f"{old}'s data was written with other axes ({old_signature!r}) than {new} has in code "
                    f"({registry.get(new).signature()!r}): its queries would read the wrong counters. "
                    "Pass --force to rename anyway (`staste check` will report the mismatch)."
                )
        action = "merge" if merge and new_keys else "replace" if new_keys else "move"
        if options["dry_run"]:
            verbs = {"move": "Would move", "merge": "Would merge", "replace": "Would replace"}
            detail = f" {new}'s {len(new_keys)} keys with" if action == "replace" else ""
            self.info(f"{verbs[action]}{detail} {len(old_keys)} keys of {old} to {new} {where}.")
            return
        try:
            moved = housekeeping.rename(old_base, new_base, replace=force and not merge, merge=merge)
        except housekeeping.RenameError as exc:
            raise CommandError(f"Cannot rename {old} to {new}: {exc}") from None
        done = {"move": "Moved", "merge": "Merged", "replace": "Replaced the data of " + new + " with"}[action]
        self.info(f"{done} {moved} keys of {old}" + ("" if action == "replace" else f" to {new}") + ".")
        if old in registry:
            self.warn(f"{old} is still defined in code: its next kick starts new data under the old name.")

    # -- check --------------------------------------------------------------------------------

    def handle_check(self, **options: Any) -> None:
        findings: list[tuple[str, str]] = []

        def report(level: str, message: str) -> None:
            findings.append((level, message))
            style = {"ok": self.style.SUCCESS, "info": self.style.HTTP_INFO, "warning": self.style.WARNING}.get(
                level, self.style.ERROR
            )
            if level != "ok" or self.verbosity >= 1:
                self.stdout.write(f"{level.upper():8} {message}", style)

        for name, loser in registry.clashes:
            report(
                "error",
                f"two metricas are named {name!r}: {registry.get(name)!r} is used, {loser!r} is ignored; "
                "rename one of them",
            )
        statuses = housekeeping.servers()
        report("ok", f"Redis at {connection.describe()} is reachable")
        cluster = len(statuses) > 1 or housekeeping.is_cluster(connection.get_redis())
        for status in statuses:
            node = f"{status.node}: " if cluster else ""
            if housekeeping.version_tuple(status.version) < housekeeping.MIN_VERSION:
                minimum = ".".join(map(str, housekeeping.MIN_VERSION))
                report("error", f"{node}Redis {status.version} is too old: staste needs {minimum} or later")
            else:
                report("ok", f"{node}Redis {status.version}")
            level, message = housekeeping.eviction_risk(status.policy, status.maxmemory)
            report(level, node + message)
            if status.maxmemory and status.used_memory >= 0.9 * status.maxmemory:
                report(
                    "warning",
                    f"{node}Redis uses {human_bytes(status.used_memory)} of its maxmemory "
                    f"{human_bytes(status.maxmemory)}",
                )
            if status.persistence == "":
                report(
                    "warning",
                    f"{node}persistence is off (no RDB snapshots, no AOF): a restart of Redis loses every counter",
                )
            elif status.persistence is None:
                report("info", f"{node}persistence unknown (CONFIG GET is not allowed)")
        metricas = list(registry)
        stored = housekeeping.stored_signatures([metrica.base for metrica in metricas])
        mismatched = 0
        for metrica, signature in zip(metricas, stored, strict=True):
            if signature is not None and signature != metrica.signature():
                mismatched += 1
                report(
                    "error",
                    f"{metrica.name}: its data was written with axes {signature!r} but the code now defines "
                    f"{metrica.signature()!r}, so queries read the wrong counters. Move the old data away "
                    f"(`staste rename {metrica.name} {metrica.name}_old`) or delete it (`staste purge {metrica.name}`)",
                )
        if metricas and not mismatched:
            report("ok", f"the stored signatures of {len(metricas)} metricas match their code")
        errors = sum(1 for level, _ in findings if level == "error")
        warnings = sum(1 for level, _ in findings if level == "warning")
        if errors or (warnings and options["fail_level"] == "WARNING"):
            raise CommandError(f"staste check found {plural(errors, 'error')} and {plural(warnings, 'warning')}.")
        self.info(f"staste check: no errors ({plural(warnings, 'warning')}).")

    # -- output ---------------------------------------------------------------------------------

    def print_table(self, headers: list[str], rows: list[list[Any]], left: int = 1) -> None:
        """Columns before ``left`` are aligned left (names), the others right (numbers)."""
        cells = [[printable(str(h)) for h in headers]] + [[cell_text(value) for value in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

        def line(row: list[str]) -> str:
            return "  ".join(
                text.ljust(width) if i < left else text.rjust(width)
                for i, (text, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()

        self.stdout.write(line(cells[0]))
        self.stdout.write(line(["-" * width for width in widths]))
        for row in cells[1:]:
            self.stdout.write(line(row))


class _Sink:
    """Lets csv and the JSON writer write through the command's stdout, without added newlines."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, ending="")


def printable(text: str) -> str:
    """Axis values are user data: control characters (terminal escapes) are shown, not sent."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def number(value: Any) -> str:
    """A number already rounded (formats.rounded) as text: its shortest form, never an exponent."""
    if value is None:
        return "-"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text:
            text = f"{value:f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0.0", "0.0") else text.removesuffix(".0")
    return str(value)


def cell_text(value: Any) -> str:
    if isinstance(value, (int, float)) or value is None:
        return number(value)
    return printable(formats.value_label(value))


def describe_axes(metrica: Metrica) -> str:
    return ", ".join(f"{name}({_axis_kind(axis)})" for name, axis in metrica.axes.items()) or "-"


def _axis_kind(axis: Axis) -> str:
    if axis.hierarchical:
        return "tree"
    if axis.choices is not None:
        shown = [str(choice) for choice in axis.choices[:4]]
        extra = len(axis.choices) - len(shown)
        return "|".join(shown) + (f"|…+{extra}" if extra > 0 else "")
    kind = getattr(axis.value_type, "__name__", "custom")
    return "stored" if kind == "str" else f"stored {kind}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
