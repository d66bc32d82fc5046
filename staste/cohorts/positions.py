"""Which bit stands for which user: integer primary keys are their own positions; other keys
(UUIDs, strings) get one through a mapping kept in Redis, written once per new id.

Why one rule per site: two users must never share a bit, so every metrica of a site counts in
the same kind of positions.  ``STASTE_USER_IDS`` says which: ``"int"``, ``"mapped"``, or
``"auto"`` (the default: ``"int"`` when ``AUTH_USER_MODEL``'s primary key is an integer field).
``STASTE_MAX_USER_POSITION`` caps the positions, so no bitmap grows past ``cap / 8`` bytes.

>>> user_ref(42, "int", 1_000_000)
'p42'
>>> user_ref("7f3a", "mapped", 1_000_000)
'i7f3a'
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from staste import conf

INT, MAPPED, AUTO = "int", "mapped", "auto"
#: Integer fields whose values are bit positions as they are.
INTEGER_FIELDS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)
#: The longest primary key text the mapping takes.
MAX_ID_LENGTH = 200


@conf.on_config_change
def _forget() -> None:
    mode.cache_clear()


@functools.cache
def mode() -> str:
    """``"int"`` or ``"mapped"``: how this site's user ids become positions."""
    chosen = conf.get("STASTE_USER_IDS")
    if chosen in (INT, MAPPED):
        return chosen
    if chosen != AUTO:
        raise ValueError(f"STASTE_USER_IDS must be 'int', 'mapped' or 'auto', not {chosen!r}")
    from django.contrib.auth import get_user_model  # (the user model: only once apps are ready)

    return INT if get_user_model()._meta.pk.get_internal_type() in INTEGER_FIELDS else MAPPED


def cap() -> int:
    """The highest position a bit may have (STASTE_MAX_USER_POSITION)."""
    return int(conf.get("STASTE_MAX_USER_POSITION"))


def user_ref(user: Any, how: str, highest: int) -> str:
    """How a kick names its user to users.lua: ``p<position>`` or ``i<id>`` (mapped in Redis).

    ``user`` is a user object (its ``pk``) or an id.  ValueError or TypeError, naming the
    setting to change, for an id this site's positions cannot take.
    """
    pk = getattr(user, "pk", user)
    if pk is None:
        raise ValueError("user= has no primary key (an unsaved user?)")
    if how == INT:
        if isinstance(pk, bool) or not isinstance(pk, int):
            if isinstance(pk, str) and pk.isascii() and pk.isdigit() and (pk == "0" or not pk.startswith("0")):
                pk = int(pk)
            else:
                raise TypeError(
                    f"user= must be an integer id here (STASTE_USER_IDS is 'int'), not {pk!r}; "
                    "set STASTE_USER_IDS = 'mapped' for a site whose users have other keys"
                )
        if not 0 <= pk <= highest:
            raise ValueError(
                f"user id {pk} is outside 0..{highest:,}, the positions a users bitmap may have; "
                "raise STASTE_MAX_USER_POSITION (a bitmap takes up to position / 8 bytes)"
            )
        return f"p{pk}"
    if isinstance(pk, uuid.UUID):
        text = str(pk)
    elif isinstance(pk, str):
        text = pk
    elif isinstance(pk, int) and not isinstance(pk, bool):
        text = str(pk)
    else:
        raise TypeError(f"user= must be a user, or a str, int or UUID id, not {type(pk).__name__}")
    if not text or len(text) > MAX_ID_LENGTH:
        raise ValueError(f"user id must be 1 to {MAX_ID_LENGTH} characters, not {len(text)}")
    return "i" + text


def reference(user: Any) -> str:
    """:func:`user_ref` under the current settings."""
    return user_ref(user, mode(), cap())


def decoded_ids(positions: list[int], mapped: list[bytes | str | None] | None) -> list[Any]:
    """The user ids of ``positions`` (read back from Redis' mapping when ``mapped`` is given)."""
    if mapped is None:
        return list(positions)
    return [value.decode() if isinstance(value, bytes) else value for value in mapped if value is not None]
