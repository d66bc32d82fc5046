"""How ``manage.py staste`` writes to the terminal: tables, numbers, and user data made printable.

Numbers are rounded by :func:`staste.formats.rounded` before they get here; this module only
spells them.  Axis values are user data: control characters (terminal escapes) are shown, not sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from staste import formats
from staste.axis import Axis
from staste.metrica import Metrica


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b`` instead of a terminal escape)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def number(value: Any) -> str:
    """A number already rounded (formats.rounded) as text: its shortest form, never an exponent."""
    if value is None:
        return "-"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text:
            text = f"{value:f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0.0", "0.0") else text.removesuffix(".0")
    return str(value)


def cell_text(value: Any) -> str:
    if isinstance(value, (int, float)) or value is None:
        return number(value)
    return printable(formats.value_label(value))


def table(write: Callable[[str], Any], headers: list[str], rows: list[list[Any]], left: int = 1) -> None:
    """Write an aligned table: columns before ``left`` aligned left (names), the others right (numbers)."""
    cells = [[printable(str(h)) for h in headers]] + [[cell_text(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            text.ljust(width) if i < left else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    write(line(cells[0]))
    write(line(["-" * width for width in widths]))
    for row in cells[1:]:
        write(line(row))


def describe_axes(metrica: Metrica) -> str:
    return ", ".join(f"{name}({_axis_kind(axis)})" for name, axis in metrica.axes.items()) or "-"


def _axis_kind(axis: Axis) -> str:
    if axis.hierarchical:
        return "tree"
    if axis.choices is not None:
        shown = [str(choice) for choice in axis.choices[:4]]
        extra = len(axis.choices) - len(shown)
        return "|".join(shown) + (f"|…+{extra}" if extra > 0 else "")
    kind = getattr(axis.value_type, "__name__", "custom")
    return "stored" if kind == "str" else f"stored {kind}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


class Sink:
    """Lets csv and the JSON writer write through a command's stdout, without added newlines."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, ending="")
