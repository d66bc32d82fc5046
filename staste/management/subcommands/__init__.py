"""The subcommands of ``manage.py staste``, one module each (as Django keeps one command a file).

Each module defines a :class:`Subcommand`: its arguments and what it does.  The command
(``staste/management/commands/staste.py``) only parses, dispatches and turns failures into
``CommandError``.  The lookups they share (a registered metrica by name, ``--filter``) are here.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError, CommandParser

from staste import housekeeping
from staste.metrica import Metrica
from staste.query import MetricaValues
from staste.registration import registry

if TYPE_CHECKING:
    from staste.management.commands.staste import Command


class Subcommand:
    """One subcommand: ``name``, its ``help`` line, its arguments and its work."""

    name: str = ""
    help: str = ""

    def add_arguments(self, parser: CommandParser) -> None:
        pass

    def handle(self, command: Command, **options: Any) -> None:
        raise NotImplementedError


def checked_name(name: str) -> str:
    try:
        return housekeeping.check_name(name)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def suggestion(name: str, candidates: list[str]) -> str:
    """ " Did you mean …?" for a name not found (or what is known, when nothing is close)."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(name, candidates, n=3)
    if close:
        return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    if candidates:
        return " Known: " + ", ".join(candidates[:20]) + ("…" if len(candidates) > 20 else "") + "."
    return " No metrica is registered (define them in an installed app's stats.py)."


def registered(command: Command, name: str) -> Metrica:
    """The metrica registered as ``name``; a CommandError that helps when there is none."""
    name = checked_name(name)
    if name in registry:
        if any(clash == name for clash, _ in registry.clashes):
            command.warn(f"Two metricas are named {name!r}; using the first registered (see `staste check`).")
        return registry.get(name)
    message = f"No metrica named {name!r} is registered."
    orphan = len(housekeeping.key_set(housekeeping.base_of(name)))
    if orphan:
        message += (
            f" Redis still holds {orphan} keys of it, which staste cannot read without its definition:"
            f" `staste rename {name} NEW` or `staste purge {name}`."
        )
    raise CommandError(message + suggestion(name, [m.name for m in registry]))


def filter_arguments(parser: CommandParser, by_help: str) -> None:
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="AXIS=VALUE",
        help="Only events with this axis value (repeatable; a path like a/b for a hierarchical axis).",
    )
    parser.add_argument("--by", metavar="AXIS", help=by_help)


def filters(metrica: Metrica, items: list[str]) -> dict[str, Any]:
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


def query(metrica: Metrica, options: dict[str, Any], span: dict[str, Any] | None = None) -> MetricaValues:
    """The query that ``--filter``, ``--by`` and a timespan describe."""
    try:
        found = metrica.filter(**filters(metrica, options["filter"]))
        if span:
            found = found.timespan(**span)
        if options["by"] is not None and options["by"] not in metrica.axes:
            raise ValueError(f"{metrica.name} has no axis {options['by']!r}; its axes are {list(metrica.axes)}")
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    return found
