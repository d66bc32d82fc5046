"""Every test runs against a real redis-server started once per session, each test under
a key prefix of its own.

With ``STASTE_TEST_REDIS=cluster`` in the environment (``make test-cluster``) the session runs
against a real 3-primary Redis Cluster instead: STASTE_REDIS_URL is its ``redis+cluster://`` URL
and ``staste_redis`` a ``RedisCluster`` client.  Tests marked ``single_redis`` (they need one
plain server, e.g. its per-server command statistics) are skipped in that mode.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
import redis.cluster
from hypothesis import settings

from staste.testing import RedisCluster, RedisServer, cluster_support, redis_server_binary
from tests import clock as clocks
from tests.keydump import dump

CLUSTER_MODE = os.environ.get("STASTE_TEST_REDIS") == "cluster"

# Property tests are deterministic (the same examples every run) and never timed: this machine
# is shared and noisy, and Hypothesis' default 200 ms deadline would be a timing assertion.
settings.register_profile("staste", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("staste")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "single_redis: needs one plain redis-server; skipped in cluster mode")
    pinned_moment()  # now, before any worker or child process is started: they inherit it


@functools.cache
def pinned_moment() -> float:
    from django.conf import settings as django_settings

    return clocks.session_moment(ZoneInfo(django_settings.TIME_ZONE))


def pytest_report_header(config: pytest.Config) -> list[str]:
    from django.conf import settings as django_settings

    moment = clocks.describe(pinned_moment(), ZoneInfo(django_settings.TIME_ZONE))
    return [
        f"staste clock: every test runs at {moment}; {clocks.ENVIRON}={os.environ[clocks.ENVIRON]} runs at it again",
        f"redis-server: {redis_server_version()} (STASTE_TEST_REDIS_SERVER chooses another)",
    ]


def redis_server_version() -> str:
    """Which redis-server the session starts, and its version (CI runs two: say which)."""
    binary = redis_server_binary()
    try:
        found = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError as exc:
        return f"{binary}: {exc}"
    version = re.search(r"v=(\S+)", found)
    return f"{binary} {version[1] if version else found.strip()}"


@pytest.fixture(scope="session", autouse=True)
def pinned_clock() -> Iterator[clocks.Clock]:
    """staste's clock, pinned for the whole session (module fixtures that kick included)."""
    from staste import timescale

    pinned = clocks.Clock(pinned_moment())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timescale, "now", pinned)
        yield pinned


@pytest.fixture(autouse=True)
def clock(pinned_clock: clocks.Clock) -> Iterator[clocks.Clock]:
    """The pinned clock; a test may move it, and the next one starts at the pinned moment again."""
    yield pinned_clock
    pinned_clock.reset()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not CLUSTER_MODE:
        return
    for item in items:
        marker = item.get_closest_marker("single_redis")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "needs one plain server")
            item.add_marker(pytest.mark.skip(reason=f"STASTE_TEST_REDIS=cluster: {reason}"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | RedisCluster]:
    if CLUSTER_MODE:
        missing = cluster_support()
        if missing:
            pytest.skip(f"STASTE_TEST_REDIS=cluster but no Redis Cluster can be started: {missing}")
        with RedisCluster() as cluster:
            os.environ["STASTE_REDIS_URL"] = cluster.url
            yield cluster
        return
    with RedisServer() as server:
        os.environ["STASTE_REDIS_URL"] = server.url
        yield server


@functools.cache
def script_sources() -> dict[str, str]:
    """Every Lua script staste runs, by its SHA1 (what EVALSHA names)."""
    from staste import scripts

    found = (scripts.source(path.stem) for path in (Path(scripts.__file__).parent / "lua").glob("*.lua"))
    return {hashlib.sha1(text.encode()).hexdigest(): text for text in found}


def load_scripts(client: redis.Redis | redis.cluster.RedisCluster) -> None:
    """SCRIPT LOAD whichever of staste's scripts Redis does not hold (a test may have flushed
    them), so that a test's first call of a script is one round trip wherever it runs: round
    trips are counted, and a script Redis does not know costs redis-py two more (NOSCRIPT,
    SCRIPT LOAD).  Tests of that answer flush or restart the server themselves."""
    shas = list(script_sources())
    for sha, known in zip(shas, client.script_exists(*shas), strict=True):
        if not known:
            client.script_load(script_sources()[sha])


@pytest.fixture(autouse=True)
def staste_redis(redis_server: RedisServer | RedisCluster, settings) -> Iterator[redis.Redis]:
    """Point staste at the session's server, under a key prefix unique to this test."""
    from staste import connection

    settings.STASTE_REDIS_URL = redis_server.url
    settings.STASTE_METRICS_PREFIX = f"t{uuid.uuid4().hex[:12]}"
    connection.reset()
    client = redis_server.client() if isinstance(redis_server, RedisCluster) else redis.Redis.from_url(redis_server.url)
    load_scripts(client)
    yield client
    client.close() if isinstance(redis_server, RedisCluster) else client.connection_pool.disconnect()
    connection.reset()


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer | RedisCluster) -> Iterator[RedisCluster]:
    """The session's cluster in cluster mode, else a 3-primary cluster of the module's own."""
    if isinstance(redis_server, RedisCluster):
        yield redis_server
        return
    missing = cluster_support()
    if missing:
        pytest.skip(f"no Redis Cluster can be started here: {missing}")
    with RedisCluster() as started:
        yield started


@pytest.fixture
def own_redis(settings) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, kill and restart; staste points at it."""
    from staste import connection

    server = RedisServer().start()
    settings.STASTE_REDIS_URL = server.url
    connection.reset()
    try:
        yield server
    finally:
        connection.reset()
        server.stop()


@pytest.fixture
def prefix(settings) -> str:
    return settings.STASTE_METRICS_PREFIX


@pytest.fixture
def staste_keys(staste_redis: redis.Redis, prefix: str):
    """A callable listing this test's keys (what has been written)."""

    def listing() -> dict[str, object]:
        return dump(staste_redis, prefix)

    return listing


@pytest.fixture
def quiet_buffer(monkeypatch):  # type: ignore[no-untyped-def]
    """The process' buffer, replaced by one without a background thread: a test flushes when
    it chooses and sees what is held in between (the thread has tests of its own).  Modules
    use it for every test with ``pytestmark = pytest.mark.usefixtures("quiet_buffer")``."""
    from staste import buffer

    box = buffer.Buffer(background=False)
    monkeypatch.setattr(buffer, "default", box)
    return box


@pytest.fixture
def report(request, capsys) -> Iterator[Callable[[str], None]]:
    """Lines a reliability test measured (kicks made, lost, counted twice), printed to the
    terminal even under -q and without -s, tagged with the module's REPORT_TAG ("reliability"
    unless it says otherwise), and kept in the test's junit properties."""
    tag = getattr(request.module, "REPORT_TAG", "reliability")
    lines: list[str] = []
    yield lines.append
    for line in lines:
        request.node.user_properties.append((tag, line))
        with capsys.disabled():
            print(f"\n[{tag}] {request.node.name}: {line}")
