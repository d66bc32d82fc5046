"""A TCP proxy between staste and a real Redis that makes Redis itself fail chosen script calls.

Why a proxy: a flush sends many calls on one connection before it reads their replies
(staste/pipe.py), so a fault set from another connection lands at some call or another,
depending on timing.  The proxy sees each call as it passes and puts the fault in the same
stream, just before (and after) it: Redis then answers that very call with a real error, and
the replies of the commands the proxy added are swallowed, so the client sees exactly one reply
per command it sent.  What each fault does to the call numbered ``n`` (script calls, EVAL or
EVALSHA, counted over every connection of every proxy sharing the plan):

* ``oom``: ``CONFIG SET maxmemory 1`` before it, ``0`` after: Redis answers OOM;
* ``readonly``: ``REPLICAOF`` an address nobody listens on before it, ``REPLICAOF NO ONE`` after:
  the call reaches a read-only replica (which keeps its data: it never gets a master to sync
  from), and Redis answers READONLY.  Not on a cluster node (REPLICAOF is refused there);
* ``noscript``: ``SCRIPT FLUSH`` before it: Redis answers NOSCRIPT to an EVALSHA;
* ``forget``: the writer keys of the call's metrica deleted before it (a TTL that ran out, an
  operator, a failover to a replica that never got them), the counters kept;
* ``rollback``: those keys set back by 1 to 3 calls (a failover to a replica that was behind on
  them), the counters kept;
* ``lost``: the call goes through and runs; its reply (and any after it) never comes back, and
  the connection is closed, as a reset or a timeout leaves it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from staste.testing import free_port

FAULTS = ("oom", "readonly", "noscript", "forget", "rollback", "lost")

#: Deletes (ARGV[2] = 'del') or sets back by ARGV[3] calls ('back') the writer keys matching
#: ARGV[1]; KEYS[1] is a key of the call's slot, so this runs on a cluster node too.
WRITER_KEYS_SCRIPT = b"""
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  if ARGV[2] == 'del' then
    redis.call('DEL', key)
  else
    local number = tonumber(redis.call('GET', key)) or 0
    redis.call('SET', key, math.max(0, number - tonumber(ARGV[3])), 'KEEPTTL')
  end
end
return 1
"""


def pack(*args: bytes | str | int) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


#: RESP3 aggregates (redis-py 8 speaks RESP3): how many values each of their items is.
AGGREGATES = {b"*": 1, b"~": 1, b">": 1, b"%": 2}
BLOBS = (b"$", b"!", b"=")


def frame(buffer: bytes | bytearray, at: int) -> tuple[object, int] | None:
    """The RESP2 or RESP3 value that starts at ``buffer[at]`` and the index past it; None while
    incomplete.  Aggregates are lists, blob strings bytes, anything else its raw line (an error
    starts with '-')."""
    line_end = buffer.find(b"\r\n", at)
    if line_end < 0:
        return None
    kind, line = bytes(buffer[at : at + 1]), bytes(buffer[at + 1 : line_end])
    if kind in BLOBS:
        size = int(line)
        if size < 0:
            return None, line_end + 2
        end = line_end + 2 + size
        return (bytes(buffer[line_end + 2 : end]), end + 2) if len(buffer) >= end + 2 else None
    if kind in AGGREGATES:
        items: list[object] = []
        position = line_end + 2
        for _ in range(max(0, int(line)) * AGGREGATES[kind]):
            found = frame(buffer, position)
            if found is None:
                return None
            item, position = found
            items.append(item)
        return items, position
    return kind + line, line_end + 2


@dataclass
class Plan:
    """Which script calls get which fault; shared by the proxies of one test (a cluster's)."""

    faults: dict[int, str] = field(default_factory=dict)
    calls: int = 0  # script calls seen since the plan was last armed
    applied: list[tuple[int, str]] = field(default_factory=list)
    errors: list[bytes] = field(default_factory=list)  # a command the proxy added that failed
    cluster: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, faults: dict[int, str]) -> None:
        """Fault the calls ``faults`` names, counted from the next script call on."""
        with self.lock:
            self.faults, self.calls = dict(faults), 0

    def next_fault(self) -> str | None:
        with self.lock:
            number, self.calls = self.calls, self.calls + 1
            fault = self.faults.pop(number, None)
            if fault == "readonly" and self.cluster:
                fault = None  # a cluster node cannot be made a replica of nothing
            if fault is not None:
                self.applied.append((number, fault))
            return fault


def writer_pattern(keys: list[bytes]) -> bytes:
    """The writer keys of the metrica a call's keys belong to: ``<base>w:*``."""
    key = keys[-1]
    if b"}:w:" not in key:
        key = keys[0]
    return key[: key.index(b"}:") + 2] + b"w:*"


class Link:
    """One client connection and its connection to Redis, with what each reply is for."""

    def __init__(self, client: socket.socket, upstream_port: int, plan: Plan) -> None:
        self.client = client
        self.upstream = socket.create_connection(("127.0.0.1", upstream_port))
        self.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.plan = plan
        # per command sent to Redis, what its reply is for: 'client', 'swallow' or 'lose'
        self.expected: deque[str] = deque()
        self.ready = threading.Condition()
        self.closed = False
        self.threads = [threading.Thread(target=run, daemon=True) for run in (self._requests, self._replies)]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self.ready:
            self.ready.notify_all()

    def _send(self, data: bytes, reply_for: str) -> None:
        with self.ready:
            self.expected.append(reply_for)
            self.ready.notify()
        self.upstream.sendall(data)

    def _commands(self) -> Iterator[tuple[list[bytes], bytes]]:
        buffer = bytearray()
        while not self.closed:
            try:
                data = self.client.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            at = 0
            while (found := frame(buffer, at)) is not None:
                command, end = found
                yield command, bytes(buffer[at:end])  # type: ignore[misc]
                at = end
            del buffer[:at]

    def _requests(self) -> None:
        try:
            for command, raw in self._commands():
                name = command[0].upper() if command else b""
                fault = self.plan.next_fault() if name in (b"EVAL", b"EVALSHA") else None
                if fault is None:
                    self._send(raw, "client")
                    continue
                keys = command[3 : 3 + int(command[2])]
                slot_key = keys[0] if keys else b"x"
                if fault == "oom":
                    self._send(pack("CONFIG", "SET", "maxmemory", 1), "swallow")
                    self._send(raw, "client")
                    self._send(pack("CONFIG", "SET", "maxmemory", 0), "swallow")
                elif fault == "readonly":
                    self._send(pack("REPLICAOF", "127.0.0.1", free_port()), "swallow")
                    self._send(raw, "client")
                    self._send(pack("REPLICAOF", "NO", "ONE"), "swallow")
                elif fault == "noscript":
                    self._send(pack("SCRIPT", "FLUSH"), "swallow")
                    self._send(raw, "client")
                elif fault in ("forget", "rollback"):
                    how = b"del" if fault == "forget" else b"back"
                    back = 1 + self.plan.calls % 3
                    script = pack("EVAL", WRITER_KEYS_SCRIPT, 1, slot_key, writer_pattern(keys), how, back)
                    self._send(script, "swallow")
                    self._send(raw, "client")
                else:  # lost
                    self._send(raw, "lose")
        except OSError:
            pass
        finally:
            self.close()

    def _replies(self) -> None:
        buffer = bytearray()
        try:
            while not self.closed:
                data = self.upstream.recv(65536)
                if not data:
                    return
                buffer += data
                at = 0
                while (found := frame(buffer, at)) is not None:
                    reply, end = found
                    with self.ready:
                        while not self.expected and not self.closed:
                            self.ready.wait()
                        if self.closed:
                            return
                        reply_for = self.expected.popleft()
                    if reply_for == "lose":
                        return  # Redis ran it; the client never hears of it
                    if reply_for == "swallow":
                        if isinstance(reply, bytes) and reply.startswith(b"-"):
                            self.plan.errors.append(reply)
                    else:
                        self.client.sendall(bytes(buffer[at:end]))
                    at = end
                del buffer[:at]
        except OSError:
            pass
        finally:
            self.close()


class FaultProxy:
    """Listens on ``port`` (a free one by default) and forwards every connection to Redis at
    ``upstream_port``, applying ``plan`` to the script calls that pass."""

    def __init__(self, upstream_port: int, plan: Plan, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.plan = plan
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port or 0))
        self.port = self.listener.getsockname()[1]
        self.links: list[Link] = []
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> FaultProxy:
        self.listener.listen(64)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self.links.append(Link(client, self.upstream_port, self.plan))
            except OSError:
                client.close()  # Redis is not there: the client sees its connection closed

    def stop(self) -> None:
        self.listener.close()
        for link in self.links:
            link.close()
        for link in self.links:
            for thread in link.threads:
                thread.join(5)
        if self.thread is not None:
            self.thread.join(5)
