"""Count Redis round trips made by staste's own client, by counting what its real
connections send (one ``send_packed_command`` per command or per pipeline)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis.connection


@dataclass
class RoundTrips:
    count: int = 0
    commands: list[bytes] = field(default_factory=list)


@contextlib.contextmanager
def count_round_trips() -> Iterator[RoundTrips]:
    seen = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        seen.count += 1
        first = command[0] if isinstance(command, list) else command
        seen.commands.append(bytes(first)[:60])
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    try:
        yield seen
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
