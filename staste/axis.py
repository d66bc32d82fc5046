"""Axes: the dimensions a metrica's events are counted along.

An axis turns a value given to ``kick()`` or ``filter()`` into the field *parts* its
counters live under, and turns stored parts back into values.  ``None`` always means
"every value"; any other value, the empty string included, is a value of its own.

>>> gender = Axis(choices=["boy", "girl"])
>>> gender.kick_parts("girl")
['*', '=girl']
"""

from __future__ import annotations

import decimal
import math
import numbers
import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from staste import conf, keys
from staste.exceptions import ValueRefused

Value = Any

#: The text of an int as ``str(int)`` writes it: ASCII digits, no sign but '-', no padding.
_INT_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")


def integer(value: Any) -> int:
    """``value`` as the int an ``Axis(value_type=int)`` counts it under; ValueError unless it
    is one exactly, so that one counter never holds several spellings of a value.

    Accepted: ints, integral numbers (``2.0``, ``Decimal('2')``) and the canonical text of an
    int (``'2'``, ``'-7'``: what a query string carries).  Refused: ``True`` (a bool is not
    a count), ``1.9`` (no truncation), ``' 1 '``, ``'+1'``, ``'01'``, Arabic-Indic
    ``'\u0661'`` (other spellings that ``int()`` would read as 1).

    >>> integer(2.0), integer("-7")
    (2, -7)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a bool, not an integer")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        if _INT_TEXT.match(value) and value != "-0":
            return int(value)
        raise ValueError(f"{value[:40]!r} is not an integer written plainly, such as '42' or '-7'")
    if isinstance(value, (numbers.Real, decimal.Decimal)):  # Decimal is no numbers.Real
        try:
            whole = math.trunc(value)  # a numbers.Real defines __trunc__, not necessarily __int__
        except (ValueError, OverflowError, ArithmeticError):  # NaN, infinity, Decimal('sNaN')
            raise ValueError(f"{value!r} is not a whole number") from None
        if whole != value:
            raise ValueError(f"{value!r} is not a whole number")
        return int(whole)
    raise ValueError(f"{type(value).__name__} {value!r} is not an integer")


def same_value(given: Value, choice: Value) -> bool:
    """Whether a kick's ``given`` value is the declared ``choice``.

    A bool only matches a bool (``True == 1``, but a kick of True is not a kick of 1), and a
    comparison that raises (``Decimal('sNaN') == 1`` signals) is no match.
    """
    if isinstance(given, bool) is not isinstance(choice, bool):
        return False
    try:
        return bool(given == choice)
    except (ArithmeticError, TypeError, ValueError):
        return False


class _Other(str):
    """The label of values counted after an axis reached ``max_choices``.

    A ``str`` (so it renders and serialises as "(other)") that is told apart from a real
    value "(other)" by identity: ``label is OTHER``.  It equals and hashes only as itself,
    so that the two stay apart as dict keys and in sets too (sums over several buckets).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "OTHER"

    def __eq__(self, other: object) -> bool:
        return other is self

    def __ne__(self, other: object) -> bool:
        return other is not self

    def __hash__(self) -> int:
        return object.__hash__(self)

    def __reduce__(self) -> str:
        return "OTHER"  # unpickles as the one OTHER of staste.axis


OTHER = _Other("(other)")

#: Every axis alive, so that a changed setting empties their memos of checked values (the
#: checks read STASTE_MAX_VALUE_LENGTH and STASTE_MAX_CHOICES).
_live: weakref.WeakSet[Axis] = weakref.WeakSet()


@conf.on_config_change
def _forget_settings() -> None:
    for axis in list(_live):
        axis._memo = {}


class Axis:
    """A dimension of a metrica.

    With ``choices`` only those values are accepted and they are listed in declared order;
    without, every value seen is remembered in a Redis set and read back through
    ``value_type`` (so ``Axis(value_type=int)`` iterates ints).
    """

    #: Whether the values seen are stored in Redis (so they can be listed later).
    stores_choices: bool = True
    hierarchical: bool = False
    #: How many checked values ``kick_option`` remembers per axis before starting afresh.
    option_memo_size: int = 4096

    def __init__(
        self,
        choices: Sequence[Value] | None = None,
        value_type: Callable[[Any], Value] = str,
        max_length: int | None = None,
        max_choices: int | None = None,
    ) -> None:
        self.value_type = value_type
        self.max_length = max_length
        if max_choices is not None and (
            isinstance(max_choices, bool) or not isinstance(max_choices, int) or max_choices < 0
        ):
            raise ValueError(f"max_choices must be a whole number >= 0, not {max_choices!r}")
        self.max_choices = max_choices
        self._memo: dict[Any, tuple[tuple[str, ...], int]] = {}
        _live.add(self)
        if choices is not None:
            self.choices: list[Value] | None = list(choices)
            if not self.choices:
                raise ValueError("Axis(choices=...) needs at least one choice")
            self.stores_choices = False
            self._choice_text = {self._text(choice): choice for choice in self.choices}
            self._refuse_equal_choices()
        else:
            self.choices = None

    def _refuse_equal_choices(self) -> None:
        """Two choices that compare equal (``1`` and ``True``, ``1`` and ``1.0``) or are
        stored as the same text (``1`` and ``'1'``) would share one counter: the second could
        never be counted as itself."""
        assert self.choices is not None
        for index, choice in enumerate(self.choices):
            if not same_value(choice, choice):
                raise ValueError(f"choice {choice!r} is not equal to itself (a NaN): it could never be counted")
            for earlier in self.choices[:index]:
                try:
                    equal = bool(choice == earlier)
                except (ArithmeticError, TypeError, ValueError):
                    equal = False
                if equal or self._text(choice) == self._text(earlier):
                    raise ValueError(
                        f"choices {earlier!r} and {choice!r} would be counted as one value: give each once"
                    )

    def __repr__(self) -> str:
        kind = type(self).__name__
        if self.choices is not None:
            return f"{kind}(choices={self.choices!r})"
        return f"{kind}(value_type={getattr(self.value_type, '__name__', self.value_type)})"

    def signature(self) -> str:
        """A short description of what this axis accepts, stable across processes."""
        if self.choices is not None:
            return f"{type(self).__name__}:" + ",".join(keys.escape(self._text(c)) for c in self.choices)
        return f"{type(self).__name__}:{getattr(self.value_type, '__name__', 'custom')}"

    # -- values in -------------------------------------------------------------------------

    def _text(self, value: Value) -> str:
        """The stored text of one value, after checking it."""
        if self.choices is None:
            try:
                value = integer(value) if self.value_type is int else self.value_type(value)
            except (TypeError, ValueError, OverflowError) as exc:  # int(float("inf")) overflows
                message = f"cannot read {value!r} as {self._type_name()}: {exc}"
                raise ValueRefused(message, "type", type_name=self._type_name(), value=value) from None
        text = value if isinstance(value, str) else str(value)
        limit = self.max_length or conf.get("STASTE_MAX_VALUE_LENGTH")
        if len(text) > limit:
            raise ValueRefused(
                f"value is {len(text)} characters long; at most {limit} are accepted",
                "length",
                value=text,
                length=len(text),
                limit=limit,
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueRefused(f"value {text[:40]!r} is not valid Unicode text", "unicode") from None
        return text

    def _type_name(self) -> str:
        return getattr(self.value_type, "__name__", repr(self.value_type))

    def check(self, value: Value) -> str:
        """The text stored for ``value``; ValueError when the axis does not accept it."""
        if self.choices is not None:
            for text, choice in self._choice_text.items():
                if same_value(value, choice) or (isinstance(value, str) and value == text):
                    return text
            allowed = ", ".join(repr(choice) for choice in self.choices)
            message = f"{value!r} is not one of the choices ({allowed})"
            raise ValueRefused(message, "choice", choices=self.choices, value=value)
        return self._text(value)

    def kick_parts(self, value: Value) -> list[str]:
        """Every part a kick with ``value`` counts under: all values first, then the value."""
        if value is None:
            return [keys.ALL]
        return [keys.ALL, keys.value_part(self.check(value))]

    def filter_part(self, value: Value) -> str:
        if value is None:
            return keys.ALL
        return keys.value_part(self.check(value))

    def kick_option(self, value: Value) -> tuple[tuple[str, ...], int]:
        """``(kick_parts(value), cap())``, remembered for the values kicks repeat.

        Checking a value (conversion, length, Unicode, escaping) is most of the cost of
        preparing a kick, and kicks repeat a few values.  Only None, str, int and tuples of
        str and int are remembered (never a bool, which is equal to 1 as a key), and only
        when ``value_type`` is a class, so the same value always gives the same parts; the
        memo is dropped when a setting changes (the checks read settings) and when it grows
        past ``option_memo_size``.
        """
        kind = type(value)
        if kind is str:
            memo_key: Any = value  # the commonest case; a str never equals the tuples below
        elif kind is int or value is None or (kind is tuple and all(type(v) is str or type(v) is int for v in value)):
            memo_key = (kind, value)
        else:
            memo_key = None
        if memo_key is not None and isinstance(self.value_type, type):
            option = self._memo.get(memo_key)
            if option is None:
                option = (tuple(self.kick_parts(value)), self.cap())
                if len(self._memo) >= self.option_memo_size:
                    self._memo = {}
                self._memo[memo_key] = option
            return option
        return tuple(self.kick_parts(value)), self.cap()

    def cap(self) -> int:
        """How many values this axis stores before new ones count as OTHER (-1: stores none,
        0: no limit); see ``STASTE_MAX_CHOICES``."""
        if not self.stores_choices:
            return -1
        if self.max_choices is not None:
            return self.max_choices
        return conf.get("STASTE_MAX_CHOICES")

    # -- values out ------------------------------------------------------------------------

    def declared_parts(self) -> list[tuple[Value, str]]:
        """(value, part) for each declared choice, in declared order."""
        assert self.choices is not None
        return [(choice, keys.value_part(text)) for text, choice in self._choice_text.items()]

    def from_part(self, part: str) -> Value:
        if part == keys.OVERFLOW:
            return OTHER
        text = keys.decode_part(part)
        if self.choices is not None and text in self._choice_text:
            return self._choice_text[text]
        return self.value_type(text)

    def sort_key(self, value: Value) -> Any:
        # OTHER sorts last; values of one axis share a type, so they compare among themselves.
        return (value is OTHER, type(value).__name__, value)

    def member_parent(self, filter_value: Value) -> str:
        """What the members script compares members against ('' lists every member)."""
        return ""


class StoredChoiceAxis(Axis):
    """An axis that accepts any value and remembers every value it has seen."""

    def __init__(
        self, value_type: Callable[[Any], Value] = str, max_length: int | None = None, max_choices: int | None = None
    ) -> None:
        super().__init__(choices=None, value_type=value_type, max_length=max_length, max_choices=max_choices)


def _shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut short; even an int too long to write out."""
    try:
        text = repr(value)
    except ValueError:
        return f"a {type(value).__name__} holding an int too long to write out"
    return text if len(text) <= 80 else text[:77] + "..."


class HierarchicalAxis(Axis):
    """An axis whose values are paths, such as ``('out', 'se', 'google')``.

    A kick counts under every prefix of its path, so ``filter(label=('out', 'se'))`` selects
    everything below ``out/se`` and ``filter(label=('out',)).iterate('label')`` yields the
    direct children as tuples.  A plain string is a path of one element.

    A part is a string or an int, as in the seed's ``('exp', 'city', 'all', 1)``; an int is
    stored as its decimal text, so ``1`` and ``'1'`` name the same node and iterate reads it
    back as ``'1'``.  Anything else (a bool, None, a float, a tuple, bytes) is refused: its
    text would be ambiguous (``True``, ``1.0``) or not the value at all (``"('a', 'b')"``).

    >>> HierarchicalAxis().path(("exp", "city", "all", 1))
    ('exp', 'city', 'all', '1')
    """

    hierarchical = True

    def __init__(self, max_depth: int = 8, max_length: int | None = None, max_choices: int | None = None) -> None:
        super().__init__(choices=None, value_type=str, max_length=max_length, max_choices=max_choices)
        self.max_depth = max_depth

    def signature(self) -> str:
        return f"HierarchicalAxis:{self.max_depth}"

    def path(self, value: Value) -> tuple[str, ...]:
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            raise ValueRefused(f"{value!r} is not a path; give a tuple such as ('out', 'se')", "path")
        if len(value) > self.max_depth:
            raise ValueRefused(
                f"path {tuple(value)!r} is deeper than max_depth={self.max_depth}", "depth", limit=self.max_depth
            )
        return tuple(self._text(self._part_text(element, value)) for element in value)

    def _part_text(self, element: Value, path: Sequence[Value]) -> str:
        """The text of one part of ``path``: a str as itself, an int (never a bool) as its
        decimal digits; str() would make ('a', 'b') the text "('a', 'b')", None "None"."""
        if isinstance(element, str):
            return element
        if isinstance(element, int) and not isinstance(element, bool):
            try:
                return str(int(element))  # int(): an IntEnum member is its number too
            except ValueError:  # more digits than Python writes (sys.get_int_max_str_digits)
                raise ValueRefused("a part of a path is an int too long to be written out", "path") from None
        raise ValueRefused(
            f"every part of a path must be a string or an int, not {_shown(element)} in {_shown(tuple(path))}", "path"
        )

    def check(self, value: Value) -> str:
        return keys.path_part(self.path(value))

    def kick_parts(self, value: Value) -> list[str]:
        if value is None:
            return [keys.ALL]
        path = self.path(value)
        return [keys.path_part(path[:n]) for n in range(len(path) + 1)]

    def filter_part(self, value: Value) -> str:
        if value is None:
            return keys.ALL
        return keys.path_part(self.path(value))

    def from_part(self, part: str) -> Value:
        if part.startswith(keys.OVERFLOW):  # '!' at the top, '!<parent path>' below a node
            return OTHER
        return keys.decode_path_part(part)

    def member_parent(self, filter_value: Value) -> str:
        return self.filter_part(filter_value)
