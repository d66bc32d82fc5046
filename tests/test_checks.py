"""System checks: metrica name clashes (E001), axes changed after data was written (E002), and a
warning (W001), not a crash, when Redis cannot be asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from staste.axis import Axis, StoredChoiceAxis
from staste.checks import check_axes_signatures, check_name_clashes
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Leave the registry as the test found it."""
    saved, clashes = dict(registry._metricas), list(registry.clashes)
    yield
    registry._metricas.clear()
    registry._metricas.update(saved)
    registry.clashes[:] = clashes


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [message.id for message in messages]


def test_the_project_passes_its_checks() -> None:
    assert check_name_clashes() == []
    assert check_axes_signatures() == []
    call_command("check", "--fail-level", "WARNING")


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
