"""staste: a Redis-backed, multi-dimensional event tracker for Django sites.

The public names are re-exported here; they can be imported from the modules that define
them too (``staste.metrica``, ``staste.axis``, ``staste.registration``, ``staste.timing``,
``staste.annotations``).
"""

from typing import Any

__version__ = "1.0.0"

__all__ = [
    "AveragedMetrica",
    "Axis",
    "HierarchicalAxis",
    "Metrica",
    "StoredChoiceAxis",
    "annotate",
    "funnel",
    "register",
    "registry",
    "retention",
    "timed",
]

_EXPORTS = {
    "Axis": "staste.axis",
    "StoredChoiceAxis": "staste.axis",
    "HierarchicalAxis": "staste.axis",
    "Metrica": "staste.metrica",
    "AveragedMetrica": "staste.metrica",
    "annotate": "staste.annotations",
    "register": "staste.registration",
    "registry": "staste.registration",
    "timed": "staste.timing",
    "funnel": "staste.cohorts",
    "retention": "staste.cohorts",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import staste` in settings.py does not import Django's settings.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'staste' has no attribute {name!r}")
