"""staste on a real 3-primary Redis Cluster: URLs, one hash slot per metrica, metricas spread over
the nodes, kicks and queries unchanged (and still one round trip), and the core test suite run
whole against the cluster."""

from __future__ import annotations

import datetime
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from staste import connection, keys, metrica, query
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.exceptions import QueryTooExpensive, RedisUnavailable
from staste.metrica import AveragedMetrica, Metrica
from staste.testing import RedisCluster, RedisServer
from tests.roundtrips import count_round_trips

D = datetime.datetime
ROOT = Path(__file__).resolve().parent.parent
IN_CLUSTER_MODE = os.environ.get("STASTE_TEST_REDIS") == "cluster"


@pytest.fixture
def on_cluster(cluster: RedisCluster, staste_redis, settings) -> Iterator[redis.cluster.RedisCluster]:
    """Point staste at the cluster (under this test's prefix); yields a cluster client."""
    settings.STASTE_REDIS_URL = cluster.url
    connection.reset()
    client = cluster.client()
    yield client
    client.close()
    connection.reset()


def node_clients(cluster: RedisCluster) -> list[redis.Redis]:
    return [redis.Redis(port=node.port) for node in cluster.nodes]


def keys_on_each_node(cluster: RedisCluster, pattern: str) -> list[set[str]]:
    found = []
    for client in node_clients(cluster):
        found.append({key.decode() for key in client.scan_iter(match=pattern, count=1000)})
        client.close()
    return found


# -- URLs -----------------------------------------------------------------------------------


def test_a_cluster_url_gives_a_cluster_client(on_cluster, cluster) -> None:
    client = connection.get_redis()
    assert isinstance(client, redis.cluster.RedisCluster)
    assert connection.describe() == cluster.url
    assert len(client.get_primaries()) == 3


def test_the_cluster_flag_turns_a_plain_url_into_a_cluster(cluster, settings) -> None:
    settings.STASTE_REDIS_URL = cluster.nodes[1].url  # any one node finds the others
    settings.STASTE_REDIS_CLUSTER = True
    connection.reset()
    try:
        assert isinstance(connection.get_redis(), redis.cluster.RedisCluster)
        Metrica(name="flagged", axes=[]).kick()
        assert Metrica(name="flagged", axes=[]).total() == 1
    finally:
        connection.reset()


@pytest.fixture
def cluster_user(cluster: RedisCluster) -> Iterator[str]:
    """An ACL user on every node, for URLs with credentials."""
    for client in node_clients(cluster):
        client.acl_setuser("stasteuser", enabled=True, passwords=["+pa ss"], keys=["*"], commands=["+@all"])
        client.close()
    yield "stasteuser"
    for client in node_clients(cluster):
        client.acl_deluser("stasteuser")
        client.close()


def test_credentials_in_a_cluster_url_reach_every_node(cluster, cluster_user, settings) -> None:
    settings.STASTE_REDIS_URL = cluster.url.replace("://", f"://{cluster_user}:pa%20ss@")
    connection.reset()
    counted = Metrica(name="authed", axes=[("kind", StoredChoiceAxis())])
    for kind in "abcdef":
        counted.kick(kind=kind)
    assert counted.total() == 6
    assert "pa%20ss" not in connection.describe()
    settings.STASTE_REDIS_URL = cluster.url.replace("://", f"://{cluster_user}:wrong@")
    connection.reset()
    with pytest.raises(RedisUnavailable, match="invalid username-password") as info:
        counted.total()
    assert "wrong" not in str(info.value)
    connection.reset()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://127.0.0.1:notaport", "bad host:port"),
        ("redis+cluster://127.0.0.1:7000,,127.0.0.1:7001", "bad host:port"),
        ("redis+cluster://:s3cret@127.0.0.1:99999", "bad host:port"),
        ("redis+sentinel://127.0.0.1:26379", "/<service name>"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/notadb", "/<service name>"),
        ("redis+sentinel://127.0.0.1:26379/a/1/2", "/<service name>"),
        ("redis+cluster://127.0.0.1:7000/?socket_timeout=soon", "socket_timeout"),
        ("memcached://127.0.0.1:11211", r"redis\+cluster://"),
    ],
)
def test_bad_cluster_and_sentinel_urls_are_reported(url, message, settings) -> None:
    settings.STASTE_REDIS_URL = url
    connection.reset()
    with pytest.raises(ImproperlyConfigured, match=message) as info:
        connection.get_redis()
    assert "s3cret" not in str(info.value)


def test_passwords_are_redacted_from_multi_host_urls() -> None:
    assert connection.redacted("redis+cluster://me:pw@a:1,b:2") == "redis+cluster://me:***@a:1,b:2"
    assert (
        connection.redacted("redis+sentinel://:pw@s1:26379,s2/mymaster/2?sentinel_password=spw&ssl_cert_reqs=none")
        == "redis+sentinel://:***@s1:26379,s2/mymaster/2?sentinel_password=***&ssl_cert_reqs=none"
    )
    assert connection.redacted("redis+cluster://a:1,b:2") == "redis+cluster://a:1,b:2"


def test_ipv6_and_default_ports_in_host_lists() -> None:
    url = "redis+cluster://[::1]:7001,example.com"
    assert connection._hosts(url, "[::1]:7001,example.com", 6379) == [("::1", 7001), ("example.com", 6379)]


# -- hash slots ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["{}", "x{y}", "{", "}", "staste{"])
def test_braces_in_the_prefix_are_refused(prefix, settings) -> None:
    settings.STASTE_METRICS_PREFIX = prefix
    with pytest.raises(ValueError, match="hash tags"):
        Metrica(name="tagged", axes=[]).kick()


@given(
    prefix=st.text(st.characters(codec="utf-8", exclude_characters="{}"), min_size=1, max_size=20),
    name=st.from_regex(metrica.NAME_PATTERN, fullmatch=True),
    bucket=st.sampled_from(["all", "2010", "201002", "20100207", "2010020713", "201002071305"]),
    axis_name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True),
)
def test_every_key_spelling_shares_the_metrica_slot(prefix, name, bucket, axis_name) -> None:
    """Whatever the prefix, the base ends in ``{name}:`` and holds the only braces, so the hash
    tag Redis uses is the metrica's name: one slot for all keys of one metrica."""
    base = keys.metrica_base(prefix, name)
    spelled = [
        keys.bucket_key(base, bucket),
        keys.bucket_key(base + "h:", bucket),  # families in hashes of their own ('~' prefixes)
        keys.years_key(base),
        keys.choices_key(base, axis_name),
        keys.signature_key(base),
    ]
    assert {key_slot(key.encode()) for key in spelled} == {key_slot(f"{{{name}}}".encode())}


def test_every_key_a_kick_writes_is_in_one_slot_on_one_node(on_cluster, cluster, prefix) -> None:
    visits = AveragedMetrica(
        name="visits",
        axes=[
            ("gender", Axis(choices=["girl", "boy"])),
            ("source", StoredChoiceAxis()),
            ("page", HierarchicalAxis()),
            ("age", Axis(value_type=int, max_choices=2)),
        ],
        histogram=True,  # latency histograms live in hashes of their own
    )
    for age in (18, 19, 20):  # the third age overflows max_choices
        visits.kick(date=D(2010, 2, 7, 13, 5), gender="girl", source="web", page="a/b", age=age, value=2)
    written = sorted(key.decode() for key in on_cluster.scan_iter(match=f"{prefix}:*", count=1000))
    base = visits.base
    assert {base + suffix for suffix in ("all", "2010", "201002", "20100207", "2010020713", "201002071305")} <= set(
        written
    )
    assert {keys.years_key(base), keys.signature_key(base), keys.choices_key(base, "source")} <= set(written)
    assert base + "h:all" in written
    slots = {on_cluster.cluster_keyslot(key) for key in written}
    assert slots == {on_cluster.cluster_keyslot("{visits}")}, written
    holders = [node for node in keys_on_each_node(cluster, f"{prefix}:*") if node]
    assert holders == [set(written)]  # all on one node, none elsewhere


def test_different_metricas_spread_across_the_nodes(on_cluster, cluster, prefix) -> None:
    names = [f"spread{i}" for i in range(24)]
    for name in names:
        Metrica(name=name, axes=[("kind", StoredChoiceAxis())]).kick(kind="x")
    per_node = keys_on_each_node(cluster, f"{prefix}:*")
    metricas_per_node = [{key.split("{")[1].split("}")[0] for key in node_keys} for node_keys in per_node]
    print("metricas per node:", [len(found) for found in metricas_per_node])
    assert all(metricas_per_node), "every primary holds some metricas"
    assert sum(len(found) for found in metricas_per_node) == len(names)  # and each metrica on one node only
    for name in names:
        assert Metrica(name=name, axes=[("kind", StoredChoiceAxis())]).iterate("kind") == [("x", 1)]


# -- kicks and queries ------------------------------------------------------------------------


def test_a_batch_over_several_slots_is_bounded_as_a_whole(on_cluster, cluster) -> None:
    """A cluster sends each script call on its own, where it sees only its slot's keys: a batch
    of stored-axis reads of metricas on different nodes is counted slot by slot first, and
    refused before anything is read when their sum, not each, is past the budget."""
    names = [name for name in (f"slotted{i}" for i in range(24)) if key_slot(f"{{{name}}}".encode()) < 5461][:1]
    names += [name for name in (f"slotted{i}" for i in range(24)) if key_slot(f"{{{name}}}".encode()) > 10922][:1]
    assert len(names) == 2  # one on the first primary, one on the third
    tagged = [Metrica(name=name, axes=[("tag", StoredChoiceAxis())]) for name in names]
    for each in tagged:
        for n in range(40):
            each.kick(tag=f"t{n}")
    calls = [lambda each=each: each.values().iterate("tag") for each in tagged]
    alone = [call() for call in calls]

    def counters_read() -> int:
        clients = node_clients(cluster)
        read = sum(client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0) for client in clients)
        for client in clients:
            client.close()
        return read

    before = counters_read()
    with query.budget(2 * 41 - 1), pytest.raises(QueryTooExpensive) as caught:
        query.pipelined(calls)  # each fits (41 counters: 40 values and the overflow part)
    assert counters_read() == before
    assert (caught.value.work, caught.value.limit) == (2 * 41, 2 * 41 - 1)
    with query.budget(2 * 41) as spent:
        assert query.pipelined(calls) == alone
    assert spent.spent == 2 * 41


def visits_metrica() -> AveragedMetrica:
    return AveragedMetrica(
        name="visits",
        axes=[
            ("gender", Axis(choices=["girl", "boy"])),
            ("age", Axis(value_type=int)),
            ("page", HierarchicalAxis()),
        ],
        multiplier=100,
    )


QUERIES: list[Callable[[AveragedMetrica], Any]] = [
    lambda m: m.values().total(),
    lambda m: m.values().count(),
    lambda m: m.values().average(),
    lambda m: m.values().iterate(),
    lambda m: m.timespan(year=2010).iterate(),
    lambda m: m.timespan(year=2010, month=2).iterate_averages(),
    lambda m: m.timespan(year=2010, month=2, day=7).iterate_counts(),
    lambda m: m.timespan(year=2010, month=2, day=7, hour=13).iterate(),
    lambda m: m.values().iterate("gender"),
    lambda m: m.values().iterate_counts("age"),
    lambda m: m.filter(gender="boy").iterate_averages("age"),
    lambda m: m.values().iterate("page"),
    lambda m: m.filter(page="home").iterate("page"),
    lambda m: m.timespan(year=2011).filter(page="home/news").iterate("page"),
    lambda m: m.filter(gender="girl", age=18).total(),
    lambda m: m.values().timeserie(D(2010, 1, 1), D(2011, 12, 1), scale="month"),
    lambda m: m.filter(gender="girl").timeserie_counts(D(2010, 2, 6), D(2010, 2, 9), scale="day"),
    lambda m: m.values().timeserie_counts_and_averages(D(2010, 2, 7, 13), D(2010, 2, 7, 14), scale="minute"),
]


def kick_history(target: AveragedMetrica) -> None:
    rng = random.Random(7)
    for _ in range(150):
        target.kick(
            date=D(rng.choice([2010, 2011]), rng.choice([2, 3]), rng.randint(6, 8), 13, rng.randint(0, 3)),
            gender=rng.choice(["girl", "boy", None]),
            age=rng.choice([9, 18, 120, None]),
            page=rng.choice(["home", "home/news", "home/news/today", "about", None]),
            value=rng.choice([0.5, 1, 2.25, 10]),
        )


def test_queries_on_the_cluster_equal_those_on_one_server(on_cluster, settings) -> None:
    kick_history(visits_metrica())
    on_cluster_results = [query(visits_metrica()) for query in QUERIES]
    with RedisServer() as single:
        settings.STASTE_REDIS_URL = single.url
        connection.reset()
        kick_history(visits_metrica())
        on_single_results = [query(visits_metrica()) for query in QUERIES]
        connection.reset()
    assert on_cluster_results == on_single_results
    assert on_cluster_results[0] > 0 and any(on_cluster_results[11])  # the history is not empty


@pytest.mark.parametrize("query", QUERIES)
def test_every_query_is_still_one_round_trip(on_cluster, query) -> None:
    visits = visits_metrica()
    visits.kick(date=D(2010, 2, 7, 13, 1), gender="boy", age=9, page="home/news", value=3)
    query(visits)  # warms the slot map and loads the script
    with count_round_trips() as trips:
        query(visits)
    assert trips.count == 1, trips.commands


def test_a_kick_is_still_one_round_trip(on_cluster) -> None:
    visits = visits_metrica()
    visits.kick(gender="boy", age=9, page="home/news", value=3)
    with count_round_trips() as trips:
        visits.kick(gender="girl", age=18, page="about", value=1)
    assert trips.count == 1
    assert trips.commands[0].split(b"\r\n")[2] == b"EVALSHA"


def test_pipelined_reads_cost_one_round_trip_per_node(on_cluster, cluster) -> None:
    """The admin dashboard's batch of many metricas' reads: a ClusterPipeline writes to every
    node holding some of the keys before reading any reply, so the wait is about one round trip."""
    from staste.query import pipelined

    metricas = [Metrica(name=f"dash{i}", axes=[("colour", Axis(choices=["red", "blue"]))]) for i in range(12)]
    for i, counted in enumerate(metricas):
        for _ in range(i):
            counted.kick(date=D(2024, 5, 1, 10), colour="red")
        counted.kick(date=D(2024, 5, 2, 11), colour="blue")
    calls: list[Callable[[], Any]] = []
    for counted in metricas:
        calls.append(lambda m=counted: m.values().total())
        calls.append(lambda m=counted: m.filter(colour="red").timespan(2024, 5, 1).total())
        calls.append(lambda m=counted: m.values().timeserie(D(2024, 5, 1), D(2024, 5, 3), scale="day"))
    expected = [call() for call in calls]
    holders = {cluster.node_of(f"{{{counted.name}}}").port for counted in metricas}
    with count_round_trips() as trips:
        assert pipelined(calls) == expected
    assert trips.count == len(holders) > 1


def test_scripts_are_loaded_again_after_the_nodes_forget_them(on_cluster) -> None:
    visits = visits_metrica()
    visits.kick(date=D(2010, 2, 7), gender="boy", age=9, page="home", value=1)
    assert visits.iterate("age") == [(9, 1)]
    on_cluster.execute_command("SCRIPT FLUSH", target_nodes=redis.cluster.RedisCluster.ALL_NODES)
    visits.kick(date=D(2011, 2, 7), gender="girl", age=18, page="home", value=2)  # NOSCRIPT, then loaded
    assert visits.iterate("age") == [(9, 1), (18, 2)]
    assert visits.iterate() == [(2010, 1), (2011, 2)]


def test_the_cluster_client_is_rebuilt_after_fork(on_cluster) -> None:
    import multiprocessing

    counted = Metrica(name="forked", axes=[])
    counted.kick()
    parent = connection.get_redis()
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_kick_many, args=("forked", 20)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert connection.get_redis() is parent
    assert counted.total() == 61


def _kick_many(name: str, times: int) -> None:
    target = Metrica(name=name, axes=[])
    for _ in range(times):
        target.kick()
    connection.reset()


# -- the core and admin suites, whole, on a cluster ----------------------------------------------

#: Test modules that exercise staste's behaviour through its public API, its admin, its buffered
#: writer and its template tags; the cluster must pass them unchanged.  (This module, the fuzz
#: and the reliability suites start their own servers and clusters and are not repeated; the
#: benchmarks measure one server.)
CORE_AND_ADMIN = (
    "test_kick.py",
    "test_query.py",
    "test_properties_against_a_model.py",
    "test_seed.py",
    "test_connection.py",
)
ALSO_IF_PRESENT = (
    "test_query_cost.py",
    "test_max_choices.py",
    "test_registry.py",
    "test_checks.py",
    "test_histogram.py",
    "test_admin*.py",
    "test_buffer.py",
    "test_pipelined_flush.py",
    "test_flush_faults.py",
    "test_templatetags.py",
    "test_chart_views.py",
    "test_weeks.py",
    "test_async.py",
    "test_uniques.py",
    "test_measures.py",
    "test_users.py",  # (staste.cohorts: every users key under one hash tag)
    "test_funnel.py",
    "test_combinations.py",
    "test_combinations_model.py",
)


def suite_files() -> list[str]:
    found = [f"tests/{name}" for name in CORE_AND_ADMIN]
    for pattern in ALSO_IF_PRESENT:
        found += sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob(pattern))
    return [path for path in dict.fromkeys(found) if (ROOT / path).exists()]


@pytest.mark.slow
@pytest.mark.timeout(960)  # a suite in itself (about 2 minutes alone, more beside another worker)
@pytest.mark.skipif(IN_CLUSTER_MODE, reason="already running the whole suite on a cluster")
def test_core_and_admin_suites_pass_on_a_cluster(cluster, capsys) -> None:
    """Runs the suites in a child pytest with STASTE_TEST_REDIS=cluster (its own cluster)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}  # xdist's too
    env["STASTE_TEST_REDIS"] = "cluster"
    env.pop("STASTE_REDIS_URL", None)
    files = suite_files()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not browser", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    with capsys.disabled():
        print(f"\n[cluster] {len(files)} test modules on a 3-primary Redis Cluster: {summary}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary and " failed" not in summary
