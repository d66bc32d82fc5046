"""System checks: metrica name clashes (E001), axes changed after data was written (E002), and a
warning (W001), not a crash, when Redis cannot be asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from staste import conf, connection
from staste.axis import Axis, StoredChoiceAxis
from staste.checks import (
    ServerStatus,
    check_axes_signatures,
    check_combinations,
    check_name_clashes,
    check_redis_servers,
    check_shadowed_pages,
    combinations,
    fields_per_bucket,
    server_problems,
)
from staste.metrica import AveragedMetrica, Metrica
from staste.middleware import response_time_axes
from staste.registration import registry
from staste.testing import RedisServer

# Django's own model checks run too (call_command("check")), and from Django 6.1 the
# JSONField check of staste's Alert asks SQLite whether it supports JSON: a database query.
pytestmark = pytest.mark.django_db


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Leave the registry as the test found it."""
    saved = registry.save()
    yield
    registry.restore(saved)


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [message.id for message in messages]


def test_the_project_passes_its_checks(settings) -> None:
    assert check_name_clashes() == []
    assert check_axes_signatures() == []
    # The test servers keep nothing on disk on purpose: that warning is silenced as a project would.
    assert set(ids(check_redis_servers())) == {"staste.W004"}  # once per server: three on a cluster
    settings.SILENCED_SYSTEM_CHECKS = ["staste.W004"]
    call_command("check", "--fail-level", "WARNING")


def test_the_server_checks_run_by_their_tag(settings) -> None:
    with pytest.raises(SystemCheckError, match=r"staste\.W004") as raised:
        call_command("check", "--tag", "staste_redis", "--fail-level", "WARNING")
    assert "staste.I001" not in str(raised.value)  # the middleware reminder is not a Redis check
    # "--save", "3600", "1": Redis 6.2 ignores a save rule given as one argument ("3600 1").
    with RedisServer(
        extra_args=["--save", "3600", "1", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]
    ) as server:
        settings.STASTE_REDIS_URL = server.url
        connection.reset()
        try:
            found = check_redis_servers()
            # persisted, but with an eviction policy that may lose all-time counters
            assert ids(found) == ["staste.W002"]
            assert isinstance(found[0], checks.Warning) and "allkeys-lru" in found[0].msg
            server_client = connection.get_redis()
            server_client.config_set("maxmemory", str(server_client.info("memory")["used_memory"]))
            assert ids(check_redis_servers()) == ["staste.W002", "staste.W003"]  # and nearly full
            server_client.config_set("maxmemory-policy", "volatile-ttl")
            server_client.config_set("maxmemory", "0")
            assert check_redis_servers() == []
        finally:
            connection.reset()


def test_old_servers_and_unknown_persistence() -> None:
    old = ServerStatus("node-1", "3.2.12", "noeviction", 0, 0, None)
    assert ids(server_problems([old])) == ["staste.E003", "staste.I003"]
    assert "3.2.12 is too old" in server_problems([old])[0].msg
    two = server_problems([old, old])
    assert [message.msg.split(":")[0] for message in two] == ["node-1"] * 4  # which primary, on a cluster


def test_two_metricas_with_one_name_are_an_error(clean_registry) -> None:
    first = registry.register(Metrica(name="check_twins", axes=[("a", StoredChoiceAxis())]))
    second = registry.register(Metrica(name="check_twins", axes=[("b", StoredChoiceAxis())]))
    registry.register(first)  # the same object again is no clash
    assert registry.get("check_twins") is first
    errors = check_name_clashes()
    assert ids(errors) == ["staste.E001"]
    assert errors[0].obj is second
    assert "check_twins" in errors[0].msg and "rename" in errors[0].hint
    with pytest.raises(SystemCheckError, match=r"staste\.E001"):
        call_command("check")


def test_a_metrica_named_as_a_page_of_the_section_is_an_error(clean_registry) -> None:
    registry.register(Metrica(name="performance", axes=[("a", StoredChoiceAxis())]))
    registry.register(Metrica(name="alert", axes=[("a", StoredChoiceAxis())]))
    registry.register(Metrica(name="performances", axes=[("a", StoredChoiceAxis())]))  # its page is its own
    errors = check_shadowed_pages()
    assert ids(errors) == ["staste.E004", "staste.E004"]
    shadowed = {error.obj.name: error for error in errors}
    assert sorted(shadowed) == ["alert", "performance"]
    assert "/admin/staste/performance/" in shadowed["performance"].msg
    assert "rename performance" in shadowed["performance"].hint


def test_changed_axes_are_an_error_once_data_was_written(clean_registry) -> None:
    before = registry.register(Metrica(name="check_shape", axes=[("gender", Axis(choices=["boy", "girl"]))]))
    assert check_axes_signatures() == []  # nothing written yet: nothing to compare with
    before.kick(gender="girl")
    assert check_axes_signatures() == []
    registry.unregister(before)
    after = registry.register(Metrica(name="check_shape", axes=[("gender", Axis(choices=["boy", "girl", "other"]))]))
    errors = check_axes_signatures()
    assert ids(errors) == ["staste.E002"]
    assert errors[0].obj is after
    assert before.signature() in errors[0].msg and after.signature() in errors[0].msg
    registry.unregister(after)
    registry.register(AveragedMetrica(name="check_shape", axes=[("gender", Axis(choices=["boy", "girl"]))]))
    assert ids(check_axes_signatures()) == ["staste.E002"]  # an AveragedMetrica stores other counters
    with pytest.raises(SystemCheckError, match=r"staste\.E002"):
        call_command("check")


def test_an_unreachable_redis_is_a_warning_naming_it(clean_registry, settings) -> None:
    settings.STASTE_REDIS_URL = "redis://127.0.0.1:9/0"
    warnings = check_axes_signatures()
    assert ids(warnings) == ["staste.W001"]
    assert isinstance(warnings[0], checks.Warning)
    assert "redis://127.0.0.1:9/0" in warnings[0].msg + warnings[0].hint
    call_command("check")  # a warning does not stop manage.py
    with pytest.raises(SystemCheckError, match=r"staste\.W001"):
        call_command("check", "--fail-level", "WARNING")


def test_the_checks_are_tagged(clean_registry) -> None:
    assert "staste" in checks.registry.registry.tags_available()
    assert "staste_redis" in checks.registry.registry.tags_available()
    call_command("check", "--tag", "staste")


def test_a_metrica_whose_axes_multiply_past_the_limit_is_a_warning(clean_registry, settings) -> None:
    """Issue 13: 5 axes of 50 values took 175 MB after 20,000 random kicks; max_choices bounds each axis only."""
    wide = registry.register(
        Metrica(name="check_wide", axes=[(f"a{i}", StoredChoiceAxis(max_choices=50)) for i in range(5)])
    )
    found = check_combinations()
    assert ids(found) == ["staste.W005"] and found[0].obj is wide
    assert combinations(wide) == 52**5  # 50 values, (other) and "all" per axis
    assert "380,204,032 combinations (52 x 52 x 52 x 52 x 52)" in found[0].msg
    assert f"{52**5:,} fields, about 18.1 GiB" in found[0].msg  # 51 bytes a field (docs/performance.md)
    assert "never expire" in found[0].msg and "max_choices" in found[0].hint
    settings.STASTE_COMBINATIONS_WARNING = 52**5
    assert check_combinations() == []
    registry.register(Metrica(name="check_endless", axes=[("user", StoredChoiceAxis(max_choices=0))]))
    endless = check_combinations()
    assert ids(endless) == ["staste.W005"] and "'user' stores values without limit" in endless[0].msg


def test_the_bound_is_what_a_bucket_really_holds(clean_registry, staste_redis) -> None:
    tight = registry.register(
        AveragedMetrica(
            name="check_tight",
            axes=[("gender", Axis(choices=["boy", "girl"])), ("kind", StoredChoiceAxis(max_choices=3))],
        )
    )
    for gender in ("boy", "girl"):
        for kind in "abcde":  # d and e count as (other)
            tight.kick(5, gender=gender, kind=kind)
    stored = staste_redis.hlen(tight.base + "all")
    assert stored == fields_per_bucket(tight) == (2 + 1) * (3 + 1 + 1) * 2


def test_the_response_time_metrica_stays_below_the_warning() -> None:
    own = AveragedMetrica(name="check_response_time", axes=response_time_axes())
    assert combinations(own) == 1002 * 11 * 6 * 102  # views, methods, status classes, exception classes
    assert combinations(own) < conf.get("STASTE_COMBINATIONS_WARNING")
