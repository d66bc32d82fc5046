"""Synchronous kicks are counted exactly once, on a real Redis that stalls mid-kick.

Redis is frozen with SIGSTOP for longer than the socket timeout, so a kick's reply is lost and
redis-py sends the call again; when Redis resumes it runs both copies.  kick.lua must count
the second copy as the same kick: every kick that returned is counted once, and a kick that
raised is counted at most once (counted <= attempted, counted >= acknowledged).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from staste import connection, keys, numbering, writers
from staste.exceptions import RedisUnavailable
from staste.metrica import Metrica
from staste.testing import RedisServer

TIMEOUT = 0.4  # STASTE_SOCKET_TIMEOUT of these tests: stalls are measured against it


#: How this module's figures are tagged in the terminal (tests/conftest.py's report).
REPORT_TAG = "exactly-once"


@pytest.fixture
def stallable(own_redis, settings) -> RedisServer:
    settings.STASTE_SOCKET_TIMEOUT = TIMEOUT
    connection.reset()
    return own_redis


def stall(server: RedisServer, seconds: float) -> None:
    """Freeze the server process: it accepts connections (the kernel does) but answers nothing."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


class Outcomes:
    def __init__(self) -> None:
        self.acked = self.refused = 0
        self.lock = threading.Lock()
        self.others: list[BaseException] = []

    def kick(self, metrica: Metrica) -> None:
        try:
            metrica.kick()
        except RedisUnavailable:
            with self.lock:
                self.refused += 1
        except BaseException as exc:
            self.others.append(exc)
        else:
            with self.lock:
                self.acked += 1

    @property
    def attempted(self) -> int:
        return self.acked + self.refused


@pytest.mark.single_redis("freezes a server of its own")
def test_a_kick_whose_reply_is_lost_and_sent_again_is_counted_once(stallable, report) -> None:
    """The stall outlasts one socket timeout but not two: redis-py's retry gets the reply."""
    metrica = Metrica(name="stalled", axes=[])
    metrica.kick()  # the connection is open and the script loaded
    outcomes = Outcomes()
    outcomes.acked = 1
    for _ in range(3):
        kicker = threading.Thread(target=outcomes.kick, args=(metrica,))
        kicker.start()
        stall(stallable, TIMEOUT * 1.6)
        kicker.join(30)
    assert not outcomes.others, outcomes.others
    total = metrica.total()
    report(f"{outcomes.attempted} kicks, {outcomes.acked} acknowledged, {outcomes.refused} raised, {total} counted")
    assert outcomes.acked >= 2  # the retry got its reply: the case that used to count twice
    assert outcomes.acked <= total <= outcomes.attempted


@pytest.mark.single_redis("freezes a server of its own")
def test_threads_kicking_through_stalls_never_count_a_kick_twice(stallable, report) -> None:
    metrica = Metrica(name="stalls", axes=[])
    metrica.kick()
    outcomes = Outcomes()
    outcomes.acked = 1
    stopping = threading.Event()

    def run() -> None:
        while not stopping.is_set():
            outcomes.kick(metrica)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    # Stalls shorter than a timeout, between one and two (the retry answers), and longer than
    # two (the kick raises, and Redis may still run it when it resumes).
    for factor in (0.5, 1.3, 1.7, 2.5, 1.5):
        time.sleep(0.1)
        stall(stallable, TIMEOUT * factor)
    time.sleep(0.1)
    stopping.set()
    for thread in threads:
        thread.join(30)
    assert not outcomes.others, outcomes.others
    total = metrica.total()
    report(f"{outcomes.attempted} kicks, {outcomes.acked} acknowledged, {outcomes.refused} raised, {total} counted")
    assert outcomes.acked <= total <= outcomes.attempted


@pytest.mark.single_redis("restarts a server of its own")
def test_kicks_go_on_after_a_restart_with_stale_pooled_connections(settings) -> None:
    """The writer's number survives in the append-only file; the pool's connections do not."""
    with RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"]) as server:
        settings.STASTE_REDIS_URL = server.url
        connection.reset()
        metrica = Metrica(name="restarted", axes=[])
        for _ in range(3):
            metrica.kick()
        server.stop()
        server.start()
        metrica.kick()  # a stale connection: redis-py reconnects and sends it again, once
        metrica.kick()
        assert metrica.total() == 5
        connection.reset()


def _kick_in_child(name: str, times: int) -> None:
    metrica = Metrica(name=name, axes=[])
    for _ in range(times):
        metrica.kick()
    connection.reset()


def test_a_forked_child_numbers_its_kicks_under_writers_of_its_own(staste_redis, prefix) -> None:
    """A child that went on with its parent's writer would send the parent's next numbers:
    kick.lua would skip whichever of the two calls came second."""
    metrica = Metrica(name="forking", axes=[])
    for _ in range(5):
        metrica.kick()  # the parent's writer has numbers in Redis now
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_kick_in_child, args=("forking", 50)) for _ in range(3)]
    for child in children:
        child.start()
    for _ in range(50):
        metrica.kick()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert metrica.total() == 5 + 50 + 3 * 50
    writer_keys = list(staste_redis.scan_iter(match=keys.writer_key(metrica.base, "*")))
    assert len(writer_keys) == 4  # the parent's and one per child


def test_threads_that_come_and_go_reuse_a_few_writers(staste_redis) -> None:
    """A thread per request (runserver) must not leave a key per request in Redis."""
    metrica = Metrica(name="per_request", axes=[])
    made_before = writers.stats()["made"]
    for _ in range(100):
        thread = threading.Thread(target=metrica.kick)
        thread.start()
        thread.join()
    assert metrica.total() == 100
    assert writers.stats()["made"] - made_before <= 1
    writer_keys = list(staste_redis.scan_iter(match=keys.writer_key(metrica.base, "*")))
    assert len(writer_keys) == 1
    assert 0 < staste_redis.ttl(writer_keys[0]) <= numbering.SYNC_TTL


def test_concurrent_threads_hold_writers_of_their_own(staste_redis) -> None:
    metrica = Metrica(name="concurrent", axes=[])
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        for _ in range(100):
            metrica.kick()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrica.total() == 800
