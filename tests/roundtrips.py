"""Count Redis round trips made by staste's own clients, by counting what their real
connections send (one ``send_packed_command`` per command or per pipeline), for the sync
client and the ``redis.asyncio`` ones alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis.asyncio.connection
import redis.connection


@dataclass
class RoundTrips:
    count: int = 0
    commands: list[bytes] = field(default_factory=list)
    #: How many of ``count`` went through a redis.asyncio connection.
    async_count: int = 0


def _first(command: object) -> bytes:
    if isinstance(command, str):
        return command.encode()[:60]
    first = command[0] if isinstance(command, list | tuple) else command
    return bytes(first)[:60]  # type: ignore[arg-type]


@contextlib.contextmanager
def count_round_trips() -> Iterator[RoundTrips]:
    seen = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command
    original_async = redis.asyncio.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        seen.count += 1
        seen.commands.append(_first(command))
        return original(self, command, check_health)

    async def counting_async(self, command, check_health=True):  # type: ignore[no-untyped-def]
        seen.count += 1
        seen.async_count += 1
        seen.commands.append(_first(command))
        return await original_async(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    redis.asyncio.connection.AbstractConnection.send_packed_command = counting_async
    try:
        yield seen
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
        redis.asyncio.connection.AbstractConnection.send_packed_command = original_async
