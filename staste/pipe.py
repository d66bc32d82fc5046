"""Script calls sent one after another on one connection, without waiting for each reply.

Why: a buffer flush spends about as long adding up counters in Python as Redis spends bumping
them.  Sent and answered in turn, the two add up; sent ahead, Redis bumps the counters of one
call while Python adds up the next.  Redis still runs the calls one at a time, in order, each
atomic and short, and it reads a client's input 16 KB at a time, serving other clients between
two reads: calls in flight keep a shared Redis no busier than one call does.

What a lost connection means for the calls whose replies were not read (each may have run, or
not) is the caller's to settle (staste/buffer/chain.py numbers its calls), so this tells the two
failures apart: :meth:`Pipe.send` raises only when the call never left (it did not run), and
:meth:`Pipe.reply` raises when the reply was lost (the call, and those sent after it, may have
run).  Nothing here sends a call twice: redis-py's own retry would hide a lost reply.

A NOSCRIPT reply (Redis lost its scripts: SCRIPT FLUSH, a restart) makes the next call of that
script carry its source (EVAL); sending the call again is the caller's choice.  On a Redis
Cluster a call goes to the node of its keys: there each call is sent and answered in turn.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
import redis.cluster

from staste import connection, numbering, scripts
from staste.exceptions import NotReplicated, RedisUnavailable

#: Replies with which a cluster refuses a call it did not run (it will run on a healthy cluster).
_CLUSTER_REFUSALS = (redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)


class _Lost:
    """A direct call's reply that never came (reply() raises it)."""

    __slots__ = ("error",)

    def __init__(self, error: RedisUnavailable) -> None:
        self.error = error


class Pipe:
    """Calls in flight on one connection of the client's pool (taken at the first call)."""

    def __init__(self) -> None:
        self._client = connection.get_redis()
        self._direct = isinstance(self._client, redis.cluster.RedisCluster)
        self._connection: Any = None
        # Per call sent and not answered: its reply when already known (direct calls), else
        # None; and its script and node (for a NOSCRIPT reply).
        self._waiting: deque[Any] = deque()
        self._sent: deque[tuple[str, str]] = deque()
        self._broken = False

    def __len__(self) -> int:
        """How many calls were sent whose replies were not read."""
        return len(self._waiting)

    def send(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Send a call of script ``name``; RedisUnavailable when it never left (it did not run;
        the calls sent before it and not answered may have)."""
        client = self._client
        if isinstance(client, redis.cluster.RedisCluster):
            self._waiting.append(self._run_on_node(client, name, keys, args))
            return
        self._sent.append((name, ""))
        with scripts.translated_errors():
            try:
                if self._connection is None:
                    self._connection = client.connection_pool.get_connection()
                packed = self._connection.pack_command(*scripts.command(client, name), len(keys), *keys, *args)
                # A health check would read a PING's reply before the replies still due.
                self._connection.send_packed_command(packed, check_health=not self._waiting)
            except BaseException:
                self._sent.pop()
                self._broken = True
                raise
        self._waiting.append(None)

    def _run_on_node(
        self, client: redis.cluster.RedisCluster, name: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """A call on a cluster, on the node of its keys: its reply, the ResponseError Redis
        answered, or _Lost.  The connection is made first, so that a failure to connect (the
        call never left) raises here, and anything later means the reply was lost."""
        with scripts.translated_errors():
            try:
                node = client.get_node_from_key(keys[0])
                pool = client.get_redis_connection(node).connection_pool
                pool.release(pool.get_connection())  # connected (redis-py reuses it at once)
            except _CLUSTER_REFUSALS as exc:
                raise RedisUnavailable(connection.describe(), exc) from exc
        command, body = scripts.command(client, name, node.name)
        self._sent.append((name, node.name))
        try:
            with scripts.translated_errors():
                try:
                    # target_nodes: no retry by redis-py (it would send the call again unseen);
                    # a MOVED reply is still followed.
                    return client.execute_command(command, body, len(keys), *keys, *args, target_nodes=node)
                except _CLUSTER_REFUSALS as exc:
                    return exc
        except redis.ResponseError as exc:
            return exc
        except RedisUnavailable as exc:
            return _Lost(exc)

    def reply(self) -> Any:
        """The reply of the oldest call not answered yet: its result, or the ResponseError Redis
        answered (returned, not raised); RedisUnavailable when the reply was lost."""
        known = self._waiting.popleft()
        name, node = self._sent.popleft()
        if self._direct:
            if isinstance(known, _Lost):
                raise known.error
            result = known
        else:
            with scripts.translated_errors():
                try:
                    result = self._connection.read_response()
                except redis.ResponseError as exc:
                    result = exc
                except BaseException:
                    self._broken = True
                    raise
        if isinstance(result, redis.exceptions.NoScriptError):
            scripts.forget(self._client, name, node)
        return result

    def replicated(self, writer_keys: Sequence[str], replicas: int, timeout: float) -> BaseException | None:
        """None once ``replicas`` replicas of each primary holding one of ``writer_keys`` have
        every write made there so far; else why not (NotReplicated, or what Redis raised).

        WAIT counts the writes of the connection it is sent on, and a cluster's calls may have
        gone on any connection of the node's pool: so it follows a write of its own on the same
        connection, PEXPIRE of a writer key to its own TTL (replicated like any write; an answer
        of 0 means the key is gone, and then nothing can be confirmed).
        """
        client = self._client
        wait_ms = max(1, round(timeout * 1000))
        try:
            with scripts.translated_errors():
                targets: dict[str, tuple[Any, str]] = {}
                for key in writer_keys:
                    if isinstance(client, redis.cluster.RedisCluster):
                        node = client.get_node_from_key(key)
                        targets.setdefault(node.name, (client.get_redis_connection(node), key))
                    else:
                        targets.setdefault("", (client, key))
                for name, (node_client, key) in targets.items():
                    pipe = node_client.pipeline(transaction=False)
                    pipe.pexpire(key, numbering.BUFFER_TTL * 1000)
                    pipe.wait(replicas, wait_ms)
                    touched, acknowledged = pipe.execute()
                    if not touched or acknowledged < replicas:
                        return NotReplicated(name or connection.describe(), int(acknowledged), replicas, timeout)
        except (RedisUnavailable, redis.RedisError) as exc:
            return exc
        return None

    def close(self) -> None:
        """Give the connection back to the pool: closed first when replies are still due or it
        failed (a reply left unread would answer the next command sent on it)."""
        if self._connection is None or isinstance(self._client, redis.cluster.RedisCluster):
            return  # a cluster's calls take no connection of their own (_run_on_node)
        if self._broken or self._waiting:
            self._connection.disconnect()
        self._client.connection_pool.release(self._connection)
        self._connection = None
        self._waiting.clear()
        self._sent.clear()
