"""Bitmap arithmetic in Redis: BITOPs sent in one pipeline, each command bounded.

Why a pipeline of plain commands rather than one script: Redis serves other clients between
the commands of a pipeline, so a funnel's hundreds of BITOPs never hold Redis for more than
one of them, and one BITOP combines at most ``SOURCES`` bitmaps of at most
``STASTE_MAX_USER_POSITION / 8`` bytes each.  Intermediate results live in temporary keys of
the users hash tag (one slot on a cluster), given a TTL when created and deleted at the end of
the same pipeline.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from staste import conf, connection, scripts
from staste.cohorts import layout

#: Most bitmaps one BITOP combines (a longer OR is folded into its result in several commands).
SOURCES = 32
#: Seconds a temporary key outlives a query that failed before deleting it.
TEMPORARY_TTL = 60
#: Bytes of a bitmap read per GETRANGE when listing its users.
READ_CHUNK = 65536


class Plan:
    """The commands of one bitmap query, sent in one pipeline by :meth:`run`."""

    def __init__(self) -> None:
        self.base = layout.users_base(conf.get("STASTE_METRICS_PREFIX"))
        self.prefix = layout.temporary_prefix(self.base, uuid.uuid4().hex)
        self.commands: list[tuple[Any, ...]] = []
        self.temporary: dict[str, None] = {}
        self.bitops = 0
        self._names = 0

    def new(self, name: str = "") -> str:
        """A temporary key, empty until a BITOP writes it."""
        self._names += 1
        return f"{self.prefix}{self._names}{name}"

    def bitop(self, operation: str, destination: str, sources: Sequence[str]) -> None:
        """``destination = sources[0] <operation> sources[1] ...`` (OR of many: in folds of
        ``SOURCES``)."""
        sources = list(sources)
        if not sources:
            raise ValueError("a BITOP needs a source")
        first = True
        while sources:
            take = SOURCES if first else SOURCES - 1
            piece, sources = sources[:take], sources[take:]
            self.commands.append(("BITOP", operation, destination, *(piece if first else [destination, *piece])))
            self.bitops += 1
            first = False
        if destination.startswith(self.prefix) and destination not in self.temporary:
            self.temporary[destination] = None
            self.commands.append(("EXPIRE", destination, TEMPORARY_TTL))

    def count(self, key: str) -> int:
        """Queue a BITCOUNT of ``key``; its index in :meth:`run`'s answers."""
        self.commands.append(("BITCOUNT", key))
        return len(self.commands) - 1

    def run(self, keep: Sequence[str] = ()) -> list[Any]:
        """Send every command in one pipeline, then delete the temporary keys (but ``keep``,
        which expire by themselves); the replies, in order."""
        commands = list(self.commands)
        dropped = [key for key in self.temporary if key not in set(keep)]
        if dropped:
            commands.append(("DEL", *dropped))
        with scripts.translated_errors():
            pipe = connection.get_redis().pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute()


def positions_in(key: str, limit: int) -> tuple[list[int], bool]:
    """The positions of the first ``limit`` bits set in ``key``, and whether there are more,
    read ``READ_CHUNK`` bytes at a time (Redis' bit 0 is the high bit of byte 0)."""
    found: list[int] = []
    offset = 0
    with scripts.translated_errors():
        client = connection.get_redis()
        while True:
            chunk = client.getrange(key, offset, offset + READ_CHUNK - 1)
            assert isinstance(chunk, bytes)  # staste's clients never decode replies
            for index, byte in enumerate(chunk):
                if not byte:
                    continue
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        if len(found) == limit:
                            return found, True
                        found.append((offset + index) * 8 + bit)
            if len(chunk) < READ_CHUNK:
                return found, False
            offset += READ_CHUNK
