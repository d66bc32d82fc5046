"""Script calls sent one after another on one connection, without waiting for each reply.

Why: a buffer flush spends about as long adding up counters in Python as Redis spends bumping
them.  Sent and answered in turn, the two add up; sent ahead, Redis bumps the counters of one
call while Python adds up the next.  Redis still runs the calls one at a time, in order, each
atomic and short, and it reads a client's input 16 KB at a time, serving other clients between
two reads: calls in flight keep a shared Redis no busier than one call does.

What a lost connection means for the calls whose replies were not read (each may have run, or
not) is the caller's to settle: staste/buffer.py numbers its calls so that a call sent again
never runs twice, and so that a call never runs when the one before it did not.

On a Redis Cluster a call goes to the node of its keys, which this does not track: there each
call is sent and answered in turn (through ``scripts.run``, which follows redirections).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
import redis.cluster

from staste import connection, scripts


class Pipe:
    """Calls in flight on one connection of the client's pool (taken at the first call)."""

    def __init__(self) -> None:
        self._client = connection.get_redis()
        self._direct = isinstance(self._client, redis.cluster.RedisCluster)
        self._connection: Any = None
        # Per call sent and not answered: its reply when already known (direct calls), else None.
        self._waiting: deque[Any] = deque()
        self._broken = False

    def __len__(self) -> int:
        """How many calls were sent whose replies were not read."""
        return len(self._waiting)

    def send(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Send a call of script ``name``; RedisUnavailable when the connection fails (then
        the calls sent and not answered, this one too, may have run or not)."""
        if self._direct:
            try:
                self._waiting.append(scripts.run(name, keys, args))
            except redis.ResponseError as exc:
                self._waiting.append(exc)
            return
        with scripts.translated_errors():
            try:
                if self._connection is None:
                    self._connection = self._client.connection_pool.get_connection()
                packed = self._connection.pack_command(*scripts.command(self._client, name), len(keys), *keys, *args)
                # A health check would read a PING's reply before the replies still due.
                self._connection.send_packed_command(packed, check_health=not self._waiting)
            except BaseException:
                self._broken = True
                raise
        self._waiting.append(None)

    def reply(self) -> Any:
        """The reply of the oldest call not answered yet: its result, or the ResponseError
        Redis answered (returned, not raised); RedisUnavailable when the connection fails."""
        known = self._waiting.popleft()
        if self._direct:
            return known
        with scripts.translated_errors():
            try:
                return self._connection.read_response()
            except redis.ResponseError as exc:
                return exc
            except BaseException:
                self._broken = True
                raise

    def close(self) -> None:
        """Give the connection back to the pool: closed first when replies are still due or it
        failed (a reply left unread would answer the next command sent on it)."""
        if self._connection is None:
            return
        if self._broken or self._waiting:
            self._connection.disconnect()
        self._client.connection_pool.release(self._connection)
        self._connection = None
        self._waiting.clear()
