"""``staste time COMMAND [ARGUMENTS...]``: run any management command, timed into ``task_time``.

The one line that times a cron job, whoever wrote the command::

    python manage.py staste time clearsessions
    python manage.py staste time --name nightly-import import_prices --since yesterday

The run is recorded as ``staste.timed`` records it (:mod:`staste.timing`): task
``manage.py <command>`` (or ``--name``), state ``success`` or the class of the exception
that escaped, which then fails the command as it would have.  The command runs through
``call_command``, in this process, and the buffer is written before it exits.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management import call_command, get_commands
from django.core.management.base import CommandError, CommandParser

from staste import buffer
from staste.timing import MAX_NAME_LENGTH, timed

from . import Subcommand, suggestion


class Time(Subcommand):
    name = "time"
    help = "Run a management command and record how long it took (and how it ended) in task_time."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", metavar="TASK", help="the task name to record (default: 'manage.py <command>')")
        parser.add_argument("timed_command", metavar="COMMAND", help="the management command to run")
        parser.add_argument(
            "arguments", nargs=argparse.REMAINDER, metavar="ARGUMENTS", help="its arguments and options"
        )

    def handle(self, command: Any, **options: Any) -> None:
        name = options["timed_command"]
        known = get_commands()
        if name not in known:
            raise CommandError(f"Unknown command {name!r}." + suggestion(name, list(known)))
        task = options.get("name") or f"manage.py {name}"
        if not task.strip() or len(task) > MAX_NAME_LENGTH:
            raise CommandError(f"--name must be a non-empty text of at most {MAX_NAME_LENGTH} characters")
        try:
            with timed(task):
                call_command(name, *options["arguments"], stdout=command.stdout, stderr=command.stderr)
        finally:
            buffer.flush()  # the process ends here: the run is in Redis before it does
