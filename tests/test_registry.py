"""The registry: autodiscovered stats.py modules, explicit registration, clashes set aside."""

from __future__ import annotations

import types

import pytest

import staste
from staste.axis import StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import NotRegistered, Registry, autodiscover, registry
from tests.statsapp import stats


def test_stats_modules_of_installed_apps_are_autodiscovered() -> None:
    assert registry.get("guest_visits_gender_age") is stats.gender_age
    assert registry.get("pocket_money") is stats.pocket_money
    assert stats.gender_age.title == "Guest visits" and stats.gender_age.category == "Guests"
    autodiscover()  # idempotent: the same objects again are no clash
    assert registry.clashes == []


def test_register_returns_the_metrica_and_is_exported() -> None:
    local = Registry()
    metrica = Metrica(name="reg_one", axes=[])
    assert local.register(metrica) is metrica
    assert "reg_one" in local and len(local) == 1
    shared = Metrica(name="reg_shared", axes=[])
    assert staste.register(shared) is shared  # the package-level shortcut registers globally
    try:
        assert registry.get("reg_shared") is shared
    finally:
        registry.unregister(shared)


def test_staste_registry_is_the_registry_even_after_its_module_is_imported() -> None:
    # The module is imported by now (this file imports from it); a submodule named "registry"
    # would have replaced the package attribute with itself.
    assert staste.registry is registry
    from staste import registry as imported

    assert isinstance(imported, Registry) and "reg_none" not in imported


def test_a_second_metrica_with_a_taken_name_is_set_aside_not_swapped_in() -> None:
    local = Registry()
    first, second = Metrica(name="reg_twin", axes=[]), AveragedMetrica(name="reg_twin", axes=[])
    local.register(first)
    local.register(second)
    local.register(second)  # reported once
    assert local.get("reg_twin") is first
    assert local.clashes == [("reg_twin", second)]
    local.unregister("reg_twin")
    assert local.clashes == [] and "reg_twin" not in local


def test_unknown_names_and_non_metricas() -> None:
    local = Registry()
    with pytest.raises(NotRegistered, match="reg_none"):
        local.get("reg_none")
    with pytest.raises(NotRegistered):
        local.unregister("reg_none")
    with pytest.raises(TypeError, match="only metricas"):
        local.register("reg_none")  # type: ignore[arg-type]


def test_iteration_is_grouped_by_category_then_name() -> None:
    local = Registry()
    for name, category in [("b", "Sales"), ("a", None), ("c", "Guests"), ("d", "Sales")]:
        local.register(Metrica(name=name, axes=[], category=category))
    assert [m.name for m in local] == ["a", "c", "b", "d"]


def test_register_module_takes_the_metricas_defined_at_its_top_level() -> None:
    module = types.ModuleType("fake_stats")
    module.visits = Metrica(name="reg_visits", axes=[("page", StoredChoiceAxis())])
    module.not_a_metrica = 42
    local = Registry()
    local.register_module(module)
    assert [m.name for m in local] == ["reg_visits"]


def test_save_and_restore_leave_the_registry_as_it_was() -> None:
    local = Registry()
    kept = local.register(Metrica(name="reg_kept", axes=[]))
    saved = local.save()
    local.register(Metrica(name="reg_added", axes=[]))
    local.register(AveragedMetrica(name="reg_kept", axes=[]))  # a clash
    local.unregister("reg_added")
    local.register(Metrica(name="reg_other", axes=[]))
    assert len(local) == 2 and local.clashes
    local.restore(saved)
    assert list(local) == [kept] and local.clashes == []
    local.register(Metrica(name="reg_after", axes=[]))
    assert "reg_after" not in saved.metricas  # the saved state is a copy, not a view
