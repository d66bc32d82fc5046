"""Count Redis round trips made by staste's own clients, by counting what their real
connections send (one ``send_packed_command`` per command or per pipeline), for the sync
client and the ``redis.asyncio`` ones alike: the one round-trip counter of the suite."""

from __future__ import annotations

import contextlib
import threading
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
    #: Each round trip whole, as sent (every command of a pipeline).
    packets: list[bytes] = field(default_factory=list)


def _first(command: object) -> bytes:
    if isinstance(command, str):
        return command.encode()[:60]
    first = command[0] if isinstance(command, list | tuple) else command
    return bytes(first)[:60]  # type: ignore[arg-type]


def _whole(command: object) -> bytes:
    if isinstance(command, str):
        return command.encode()
    if isinstance(command, list | tuple):
        return b"".join(bytes(part) for part in command)  # type: ignore[arg-type]
    return bytes(command)  # type: ignore[arg-type]


@contextlib.contextmanager
def count_round_trips(this_thread_only: bool = False) -> Iterator[RoundTrips]:
    """Count what is sent while the block runs; ``this_thread_only`` leaves out other threads'
    round trips (the buffer's own thread may flush meanwhile)."""
    seen = RoundTrips()
    me = threading.get_ident()
    original = redis.connection.AbstractConnection.send_packed_command
    original_async = redis.asyncio.connection.AbstractConnection.send_packed_command

    def note(command: object) -> bool:
        if this_thread_only and threading.get_ident() != me:
            return False
        seen.count += 1
        seen.commands.append(_first(command))
        seen.packets.append(_whole(command))
        return True

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        note(command)
        return original(self, command, check_health)

    async def counting_async(self, command, check_health=True):  # type: ignore[no-untyped-def]
        if note(command):
            seen.async_count += 1
        return await original_async(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    redis.asyncio.connection.AbstractConnection.send_packed_command = counting_async
    try:
        yield seen
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
        redis.asyncio.connection.AbstractConnection.send_packed_command = original_async
