"""The results as Markdown: the machine they were measured on, and one table per measurement."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import redis


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(client: redis.Redis) -> str:
    server = client.info("server")
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("Django", "redis", "hiredis"))
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}; "
        f"Redis {server['redis_version']} (on the same machine, over TCP loopback); "
        f"Python {platform.python_version()}, {versions}; load average {load()}"
    )


def load() -> str:
    """The 1-minute load average: above 0.5 on this run's machine, other work competed with it."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned."""
    cells = [[_text(cell) for cell in row] for row in rows]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if right else "---" for right in numeric) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _is_number(cell: object) -> bool:
    return isinstance(cell, (int, float)) or (isinstance(cell, str) and cell[:1].isdigit())


def _text(cell: object) -> str:
    if isinstance(cell, float):
        return f"{cell:,.0f}" if abs(cell) >= 100 else f"{cell:,.2f}"
    if isinstance(cell, int):
        return f"{cell:,}"
    return str(cell)


def significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, never in exponent form: a per-kick cost
    spans 0.001 µs (0 axes, merged) to hundreds of µs (7 axes) in one column."""
    if value >= 10 ** (digits - 1) or value <= 0:
        return _text(float(value))
    decimals = digits - 1 - math.floor(math.log10(value))
    return f"{value:.{decimals}f}"


def kib(size: float) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:,.1f} MiB"
    return f"{size / 1024:,.1f} KiB"
