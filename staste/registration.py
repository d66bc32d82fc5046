"""The registry of metricas, filled from every installed app's ``stats.py``.

Like ``admin.py`` for the admin: ``StasteConfig.ready()`` imports each app's ``stats``
module and registers every :class:`~staste.metrica.Metrica` defined at its top level.
Metricas defined elsewhere are registered with ``staste.register(metrica)``.  Two different
metricas with one name are kept aside and reported by ``manage.py check`` (staste.E001)
rather than silently replacing each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, TypeVar, cast

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from staste.metrica import Metrica

M = TypeVar("M", bound=Metrica)


class NotRegistered(Exception):
    """No metrica is registered under that name."""


class RegistryState(NamedTuple):
    """What :meth:`Registry.save` keeps, for :meth:`Registry.restore`."""

    metricas: dict[str, Metrica]
    clashes: list[tuple[str, Metrica]]


class Registry:
    def __init__(self) -> None:
        self._metricas: dict[str, Metrica] = {}
        #: (name, metrica) pairs that lost a name clash, for the system check.
        self.clashes: list[tuple[str, Metrica]] = []

    def register(self, metrica: M) -> M:
        """Register ``metrica`` (returns it, so it can wrap a definition)."""
        if not isinstance(metrica, Metrica):
            raise TypeError(f"only metricas can be registered, not {metrica!r}")
        current = self._metricas.get(metrica.name)
        if current is None:
            self._metricas[metrica.name] = metrica
        elif current is not metrica and all(other is not metrica for _, other in self.clashes):
            self.clashes.append((metrica.name, metrica))
        return metrica

    def unregister(self, metrica: Metrica | str) -> None:
        name = metrica if isinstance(metrica, str) else metrica.name
        if name not in self._metricas:
            raise NotRegistered(f"no metrica named {name!r} is registered")
        del self._metricas[name]
        self.clashes = [(n, m) for n, m in self.clashes if n != name]

    def get(self, name: str) -> Metrica:
        try:
            return self._metricas[name]
        except KeyError:
            raise NotRegistered(f"no metrica named {name!r} is registered") from None

    def get_or_register(self, name: str, make: Callable[[], M]) -> M:
        """The metrica registered under ``name``, or the one ``make()`` returns, registered now.

        How staste's own metricas (``db_time``, ``task_time``...) come to exist on first use;
        a project may register its own metrica under such a name first (other date scales, say).
        """
        found = self._metricas.get(name)
        return cast(M, found) if found is not None else self.register(make())

    def __contains__(self, name: object) -> bool:
        return name in self._metricas

    def __iter__(self) -> Iterator[Metrica]:
        return iter(sorted(self._metricas.values(), key=lambda m: ((m.category or ""), m.name)))

    def __len__(self) -> int:
        return len(self._metricas)

    def save(self) -> RegistryState:
        """The registered metricas and clashes as they are now, for :meth:`restore` (tests that
        register metricas of their own leave the registry as they found it)."""
        return RegistryState(dict(self._metricas), list(self.clashes))

    def restore(self, state: RegistryState) -> None:
        """Register exactly what ``state`` (from :meth:`save`) held, and nothing else."""
        self._metricas = dict(state.metricas)
        self.clashes = list(state.clashes)

    def register_module(self, module: object) -> None:
        for value in vars(module).values():
            if isinstance(value, Metrica):
                self.register(value)


registry = Registry()


def register(metrica: Metrica) -> Metrica:
    return registry.register(metrica)


def registered(name: str, make: Callable[[], M]) -> M:
    """``registry.get_or_register(name, make)``: staste's own metricas, made on first use."""
    return registry.get_or_register(name, make)


def autodiscover(module_name: str = "stats") -> None:
    """Import every installed app's ``stats`` module and register the metricas it defines."""
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, module_name):
            module = importlib.import_module(f"{app_config.name}.{module_name}")
            registry.register_module(module)
