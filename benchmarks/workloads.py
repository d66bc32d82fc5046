"""The metricas and the (seeded, so every run does the same work) events the benchmarks use.

Axes are those of a web site's request metrica, added in this order: the view (a stored axis
of 40 values), the method (4 declared choices), the status class (5), the country (a stored
axis of 30 values), the device (3), the browser (6 declared choices) and the referrer (a
stored axis of 20 values).  Values follow a Zipf-like law, as traffic does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica

AXIS_COUNTS = (0, 1, 3, 5, 7)
SEED = 20100207

VIEWS = [f"app.views.page_{n}" for n in range(40)]
METHODS = ["GET", "POST", "PUT", "DELETE"]
STATUSES = ["2xx", "3xx", "4xx", "5xx", "1xx"]
COUNTRIES = [f"C{n:02d}" for n in range(30)]
DEVICES = ["desktop", "mobile", "tablet"]
BROWSERS = ["chrome", "safari", "edge", "firefox", "samsung", "opera"]
REFERRERS = [f"site{n}.example" for n in range(20)]

#: name, axis factory, values (in popularity order)
AXES: list[tuple[str, Any, Sequence[str]]] = [
    ("view", StoredChoiceAxis, VIEWS),
    ("method", lambda: Axis(choices=METHODS), METHODS),
    ("status", lambda: Axis(choices=STATUSES), STATUSES),
    ("country", StoredChoiceAxis, COUNTRIES),
    ("device", lambda: Axis(choices=DEVICES), DEVICES),
    ("browser", lambda: Axis(choices=BROWSERS), BROWSERS),
    ("referrer", StoredChoiceAxis, REFERRERS),
]


def axes(count: int) -> list[tuple[str, Axis]]:
    return [(name, factory()) for name, factory, _ in AXES[:count]]


def metrica(name: str, count: int, averaged: bool = False) -> Metrica:
    kind = AveragedMetrica if averaged else Metrica
    return kind(name=name, axes=axes(count))


def events(count: int, how_many: int, seed: int = SEED) -> list[dict[str, str]]:
    """``how_many`` kicks' axis values for a metrica of ``count`` axes; the same every run."""
    rng = random.Random(seed + count)
    chosen = [(name, values, [1 / (rank + 1) for rank in range(len(values))]) for name, _, values in AXES[:count]]
    return [{name: rng.choices(values, weights)[0] for name, values, weights in chosen} for _ in range(how_many)]


def latencies(how_many: int, seed: int = SEED) -> list[int]:
    """Response times in milliseconds (log-normal, median about 40 ms)."""
    rng = random.Random(seed)
    return [max(1, int(rng.lognormvariate(3.7, 0.8))) for _ in range(how_many)]
