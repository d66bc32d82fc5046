"""Reads sent to Redis in one round trip: a query method's plan, executed, and batches of them.

Every query method is plan, execute, decode.  Planning (:mod:`staste.query`) makes a
:class:`Read`: its :mod:`~staste.reads` and how their answers become the result.  Here,
:func:`execute` charges them to the budget and sends the commands of all of them in one
pipeline (:func:`aexecute` through ``redis.asyncio``: the same plan and decoding, only the
sending is awaited), and :func:`pipelined` gathers the reads of many queries into one batch.

Sending owns four Redis subtleties: a pipeline is never sent again because its replies were
late (a busy Redis would be given it twice: see :func:`_once`); scripts go as EVALSHA in the
pipeline and, when Redis lost them (a restart, SCRIPT FLUSH: none ran), are loaded and the
pipeline sent again, which is safe since reads write nothing; a cluster pipeline takes no
script, so there each script call goes on its own, and a batch of several stored-axis reads is
first counted slot by slot; and a read sliced for fewer values than its axis now holds is
sliced again, in one more round trip.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio.cluster
import redis.cluster
import redis.crc

from staste import async_connection, connection, scripts
from staste.budget import budget, charge, current, gate, own, refusal, refuse_past, settle
from staste.reads import Command, Fetch, HMGet, Reslice, Script, is_reslice

T = TypeVar("T")
U = TypeVar("U")


# -- plans ----------------------------------------------------------------------------------


class Read(Generic[T]):
    """What one query method reads, and how the replies become its result.

    Planning (validating the query, choosing keys and fields) makes a Read; :meth:`run`
    executes its reads in one round trip (or, within :func:`pipelined`, joins a batch) and
    :meth:`arun` does the same through ``redis.asyncio``; both hand the replies to the same
    ``decode``.  So the sync and async methods share every line of query logic.

    Its ``reads`` are :class:`~staste.reads.Fetch` es; each is charged to the work budget
    before anything is sent (:func:`~staste.budget.budget`).
    """

    __slots__ = ("decode", "reads")

    def __init__(self, reads: list[Fetch], decode: Callable[[list[Any]], T]) -> None:
        self.reads = reads
        self.decode = decode

    def then(self, after: Callable[[T], U]) -> Read[U]:
        """The same reads, with ``after`` applied to the result."""
        decode = self.decode
        return Read(self.reads, lambda replies: after(decode(replies)))

    def run(self) -> T:
        batch = _batch.get()
        if batch is not None:
            return self.decode(batch.answer(self.reads))
        with own():
            charge(self.reads)
            return self.decode(execute(self.reads))

    async def arun(self) -> T:
        with own():
            charge(self.reads)
            return self.decode(await aexecute(self.reads))


# -- execution ------------------------------------------------------------------------------


def execute(reads: Sequence[Fetch]) -> list[Any]:
    """The decoded answers to ``reads``, all sent in one pipeline (the budget is the caller's)."""
    if not reads:
        return []
    with scripts.translated_errors():
        client = connection.get_redis()
        cluster = isinstance(client, redis.cluster.RedisCluster)
        planned, checks, limit = _plan(reads, cluster)
        if checks:
            refuse_past(limit, _send(client, cluster, checks))
        replies = _send(client, cluster, [command for commands in planned for command in commands])
    answers, again = _decoded(reads, planned, replies)
    if again:  # sliced for the axis' real size this time (one more round trip, rarely)
        for index, answer in zip(again, execute([answers[i] for i in again]), strict=True):
            answers[index] = answer
    return answers


async def aexecute(reads: Sequence[Fetch]) -> list[Any]:
    """:func:`execute` through this event loop's ``redis.asyncio`` client."""
    if not reads:
        return []
    with scripts.translated_errors():
        async with async_connection.using() as client:
            cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
            planned, checks, limit = _plan(reads, cluster)
            if checks:
                refuse_past(limit, await _asend(client, cluster, checks))
            replies = await _asend(client, cluster, [command for commands in planned for command in commands])
    answers, again = _decoded(reads, planned, replies)
    if again:
        for index, answer in zip(again, await aexecute([answers[i] for i in again]), strict=True):
            answers[index] = answer
    return answers


def _plan(reads: Sequence[Fetch], cluster: bool) -> tuple[list[list[Command]], list[Command], int]:
    """The commands of each read, and the budget checks to send before them, with their limit.

    One Redis gets every read script of the batch gated by the batch's budget (``gate``), in
    the one pipeline.  A cluster sends its script calls one by one, and each can only see the
    keys of its own hash slot: there each read is gated by itself, and a batch of several axis
    reads is first counted slot by slot (read.lua 'work'), its sum checked before any read is
    sent.
    """
    if not cluster:
        batch_gate = gate(reads)
        return [one.commands(cluster, batch_gate) for one in reads], [], 0
    planned = [one.commands(cluster, gate([one])) for one in reads]
    batch_gate = gate(reads)
    if sum(one.variable for one in reads) < 2:
        return planned, [], 0
    by_slot: dict[int, list[Any]] = {}
    for at in range(2, len(batch_gate), 3):
        by_slot.setdefault(redis.crc.key_slot(batch_gate[at].encode()), []).extend(batch_gate[at : at + 3])
    checks: list[Command] = [
        Script("read", [terms[0]], ["work", 0, len(terms) // 3, *terms]) for terms in by_slot.values()
    ]
    return planned, checks, batch_gate[0]


def _decoded(reads: Sequence[Fetch], planned: list[list[Command]], replies: list[Any]) -> tuple[list[Any], list[int]]:
    """Each read's answer from its replies, and the reads to send again (sliced anew): their
    answer is the read to make instead.  The budget keeps what each read really touched."""
    answers: list[Any] = []
    again: list[int] = []
    at = 0
    for one, commands in zip(reads, planned, strict=True):
        mine = replies[at : at + len(commands)]
        try:
            answers.append(one.combine(commands, mine))
        except Reslice as exc:
            answers.append(exc.fetch)
            again.append(len(answers) - 1)
            settle(exc.fetch.work - one.work)  # the read sent again is charged its own minimum
        else:
            settle(one.spent(mine) - one.work)
        at += len(commands)
    return answers, again


def _send(client: Any, cluster: bool, commands: list[Command]) -> list[Any]:
    """The replies to ``commands``, in one round trip where Redis allows (see the module's docstring)."""
    if not commands:
        return []
    if cluster:
        if len(commands) == 1:
            command = commands[0]
            return [_script(client, command) if isinstance(command, Script) else _plain(client, command)]
        pipe = _pipeline(client, commands, scripts_too=False)
        replies = iter(pipe.execute() if len(pipe) else [])
        return [_script(client, command) if isinstance(command, Script) else next(replies) for command in commands]
    for attempt in range(2):
        replies = _once(client, commands)
        lost = _lost_scripts(commands, replies) if attempt == 0 else set()
        if not lost:
            return _checked(replies)
        for name in lost:
            client.script_load(scripts.source(name))
    raise AssertionError("unreachable")  # pragma: no cover


def _once(client: Any, commands: list[Command]) -> list[Any]:
    """Send ``commands`` on one connection and read their replies (an error Redis answered is
    a reply), never sending them twice.

    Why not a redis-py pipeline: its retry sends the whole pipeline again after a socket
    timeout, which doubles what a busy Redis is given just when it is slowest (an axis read
    of many calls ran 2.5 times).  Here a timeout or a lost reply raises (RedisUnavailable:
    the page says Redis failed); only a connection found broken while sending (a Redis
    restarted since it was opened: nothing reached it) is opened again, once.
    """
    pool = client.connection_pool
    connection_ = pool.get_connection()
    try:
        packed = connection_.pack_commands([_args(client, command) for command in commands])
        try:
            connection_.send_packed_command(packed)
        except redis.ConnectionError:
            connection_.disconnect()
            connection_.send_packed_command(packed)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection_.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        connection_.disconnect()  # (replies may be due on it)
        raise
    finally:
        pool.release(connection_)


async def _asend(client: Any, cluster: bool, commands: list[Command]) -> list[Any]:
    """:func:`_send` through a ``redis.asyncio`` client."""
    if not commands:
        return []
    if cluster:
        if len(commands) == 1:
            command = commands[0]
            return [await _ascript(client, command) if isinstance(command, Script) else await _plain(client, command)]
        pipe = _pipeline(client, commands, scripts_too=False)
        replies = iter(await pipe.execute() if len(pipe) else [])
        return [
            await _ascript(client, command) if isinstance(command, Script) else next(replies) for command in commands
        ]
    for attempt in range(2):
        replies = await _aonce(client, commands)
        lost = _lost_scripts(commands, replies) if attempt == 0 else set()
        if not lost:
            return _checked(replies)
        for name in lost:
            await client.script_load(scripts.source(name))
    raise AssertionError("unreachable")  # pragma: no cover


async def _aonce(client: Any, commands: list[Command]) -> list[Any]:
    """:func:`_once` through a ``redis.asyncio`` client."""
    pool = client.connection_pool
    connection_ = await pool.get_connection()
    try:
        packed = connection_.pack_commands([_args(client, command) for command in commands])
        try:
            await connection_.send_packed_command(packed)
        except redis.ConnectionError:
            await connection_.disconnect()
            await connection_.send_packed_command(packed)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection_.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        await connection_.disconnect()
        raise
    finally:
        await pool.release(connection_)


# What follows is the part of sending that does no I/O, shared by the sync and async clients
# (redis-py's pipelines queue commands the same way in both; only execute() is awaited).


def _pipeline(client: Any, commands: list[Command], scripts_too: bool = True) -> Any:
    """A pipeline of ``commands``, queued, not sent: scripts as EVALSHA (a cluster pipeline
    takes none: ``scripts_too=False`` leaves them out, to be called one by one)."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        if not isinstance(command, Script):
            _plain(pipe, command)
        elif scripts_too:
            sha = scripts.script(client, command.name).sha
            pipe.evalsha(sha, len(command.keys), *command.keys, *command.args)
    return pipe


def _args(client: Any, command: Command) -> tuple[Any, ...]:
    """The Redis command of ``command``: scripts as EVALSHA."""
    if isinstance(command, HMGet):
        return ("HMGET", command.key, *command.fields)
    if isinstance(command, Script):
        sha = scripts.script(client, command.name).sha
        return ("EVALSHA", sha, len(command.keys), *command.keys, *command.args)
    return ("PFCOUNT", *command.keys)


def _lost_scripts(commands: list[Command], replies: list[Any]) -> set[str]:
    """The scripts to load and send again when Redis lost them (a restart, SCRIPT FLUSH): the
    pipeline is safe to send twice, since reads write nothing.  Empty when none was lost."""
    if not any(isinstance(reply, redis.exceptions.NoScriptError) for reply in replies):
        return set()
    return {command.name for command in commands if isinstance(command, Script)}


def _checked(replies: list[Any]) -> list[Any]:
    """``replies``, or the first error among them raised (a refused budget as QueryTooExpensive);
    an axis read to slice again stays a reply (see reads.Reslice)."""
    for reply in replies:
        if isinstance(reply, Exception) and not is_reslice(reply):
            raise refusal(reply) or reply
    return replies


def _plain(client: Any, command: Command) -> Any:
    """Send (or queue, on a pipeline) a command that is not a script."""
    if isinstance(command, HMGet):
        return client.hmget(command.key, command.fields)
    # execute_command: redis-py's cluster pipeline blocks its pfcount() (a multi-key command);
    # the keys of one PFCOUNT share the metrica's hash slot, so the node can answer it.
    return client.execute_command("PFCOUNT", *command.keys)


def _script(client: Any, command: Script) -> Any:
    try:
        return scripts.script(client, command.name)(keys=command.keys, args=command.args, client=client)
    except redis.ResponseError as exc:
        return _failed(exc)


async def _ascript(client: Any, command: Script) -> Any:
    try:
        return await scripts.script(client, command.name)(keys=command.keys, args=command.args, client=client)
    except redis.ResponseError as exc:
        return _failed(exc)


def _failed(exc: redis.ResponseError) -> Any:
    """What a script call that Redis answered with an error gives: the error itself when the
    read is to be sliced again (a reply like the others), else raised."""
    if is_reslice(exc):
        return exc
    raise refusal(exc) or exc from None


# -- batches --------------------------------------------------------------------------------


class _Batch:
    """The reads of several queries: recorded in a first pass, answered in a second.

    Each distinct read is charged to the budget and sent once.
    """

    def __init__(self) -> None:
        self.reads: dict[Fetch, None] = {}  # distinct reads, in order
        self.answers: dict[Fetch, Any] | None = None

    def answer(self, reads: list[Fetch]) -> list[Any]:
        if self.answers is None:
            new = [one for one in dict.fromkeys(reads) if one not in self.reads]
            charge(new)
            self.reads.update(dict.fromkeys(new))
            return [one.blank() for one in reads]
        missing = [one for one in dict.fromkeys(reads) if one not in self.answers]
        if missing:
            # A call that reads otherwise the second time (e.g. it looked at the clock and an
            # hour went by) still gets true numbers, at the price of one more round trip.
            charge(missing)
            self.answers.update(zip(missing, execute(missing), strict=True))
        return [self.answers[one] for one in reads]

    def execute(self) -> None:
        reads = list(self.reads)
        self.answers = dict(zip(reads, execute(reads), strict=True))


_batch: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("staste_query_batch", default=None)


def pipelined(calls: Sequence[Callable[[], T]]) -> list[T]:
    """The results of ``calls`` (e.g. ``lambda: query.total()``), their reads in one round trip.

    Pages that show many queries (the admin dashboard: several numbers and a series for each
    of 50 metricas) would otherwise pay one round trip per number.  Each call runs twice: first
    to record the reads it makes (answered with empty counters), then against the replies of
    one pipeline of all of them; so calls must be pure reads whose keys do not depend on what
    they read (a call that reads other keys the second time, say because the hour changed,
    still gets true numbers, at the cost of one more round trip).  The batch is one round trip
    for the budget: without an enclosing :func:`~staste.budget.budget`, its reads together are
    bounded by STASTE_MAX_QUERY_WORK.  Called within another ``pipelined`` call, the reads join
    the outer batch.
    """
    if _batch.get() is not None:
        return [call() for call in calls]
    with contextlib.ExitStack() as stack:
        if current() is None:
            stack.enter_context(budget())
        batch = _Batch()
        token = _batch.set(batch)
        try:
            for call in calls:
                call()
        finally:
            _batch.reset(token)
        batch.execute()
        token = _batch.set(batch)
        try:
            return [call() for call in calls]
        finally:
            _batch.reset(token)
