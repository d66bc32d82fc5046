"""``manage.py staste``: staste's data from the shell.

``list`` the metricas and what they take in Redis, ``show`` one as a table, ``export`` its time
series as CSV or JSON, ``purge`` or ``rename`` its data, ``check`` the Redis it lives in,
``time`` any management command into ``task_time``, evaluate the ``alerts`` and mail a ``digest``.
Each subcommand is a module of :mod:`staste.management.subcommands` and has ``--help``.
Failures raise CommandError (exit status 1, message on stderr); arguments argparse cannot read
exit with status 2, as for every Django command.
"""

from __future__ import annotations

import argparse
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from staste import connection
from staste.exceptions import RedisUnavailable
from staste.management.subcommands import Subcommand
from staste.management.subcommands.alerts import Alerts
from staste.management.subcommands.check import Check
from staste.management.subcommands.digest import Digest
from staste.management.subcommands.exporting import Export
from staste.management.subcommands.listing import List
from staste.management.subcommands.purge import Purge
from staste.management.subcommands.rename import Rename
from staste.management.subcommands.show import Show
from staste.management.subcommands.timing import Time

SUBCOMMANDS: dict[str, Subcommand] = {
    sub.name: sub for sub in (List(), Show(), Export(), Purge(), Rename(), Check(), Time(), Alerts(), Digest())
}


class Command(BaseCommand):
    help = (
        "Operate staste's data: list metricas, show or export their numbers, purge or rename their "
        "data in Redis, check the Redis they live in, time a management command, evaluate alerts, mail a digest. "
        "`manage.py staste <subcommand> --help` for each."
    )
    # `staste check` reports staste's problems itself, and purge/rename must work while they last.
    requires_system_checks: list[str] = []
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(
            dest="subcommand", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}", title="subcommands"
        )
        for name, sub in SUBCOMMANDS.items():
            sub.add_arguments(self._subparser(subparsers, name, sub.help))

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

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options.get("verbosity", 1)
        try:
            SUBCOMMANDS[options["subcommand"]].handle(self, **options)
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
