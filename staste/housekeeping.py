"""Housekeeping of the keys a metrica owns in Redis: find, count, measure, delete and move them.

Every key of a metrica starts with its *base*, ``<prefix>:{<name>}:`` (see ``staste.keys``):
the bucket hashes (``all``, ``2010``, ``201002``...), the histogram hashes ``h:<bucket>``, the
sets ``years`` and ``choices:<axis>`` and the string ``signature``.  Keys are found with SCAN
(never KEYS, which blocks a busy server for as long as it walks the whole keyspace) and
deleted with UNLINK (which frees their memory in a background thread), a batch at a time.

The same functions work for names that no code defines any more, so data left behind by a
removed metrica can still be listed, purged or renamed.

On a Redis Cluster the hash tag ``{<name>}`` puts all keys of one metrica in one slot, so
they are found, measured and deleted on the one primary that serves that slot, through its
own connection (a cluster pipeline would ask the server where the key of every MEMORY USAGE
is).  Renaming changes the hash tag and therefore the slot: RENAME and COPY refuse keys in
different slots (CROSSSLOT), so on a cluster each key is moved with DUMP, RESTORE (keeping
its remaining PTTL) and UNLINK, a pipeline of each per batch.  That is not atomic: a kick
into the old name between the DUMP and the UNLINK of its key is lost, so rename once the
code kicks the new name.  On one server RENAME moves a batch of keys in one MULTI/EXEC.
A slot that migrates while a command runs (resharding) makes it fail with MOVED; run it again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
import redis.cluster

from staste import conf, connection, keys, scripts
from staste.connection import Client
from staste.metrica import NAME_PATTERN, Metrica

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing's own from Python 3.13

#: Keys per SCAN step, UNLINK, MEMORY USAGE pipeline or rename transaction: large enough to
#: need few round trips, small enough that no single command keeps Redis busy for long.
BATCH = 500

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def glob_escape(text: str) -> str:
    """``text`` as a SCAN MATCH pattern that matches only itself (prefixes may hold ``*`` or ``[``)."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a metrica name (1-200 letters, digits, '_', '.' or '-')")
    return name


def prefix() -> str:
    return conf.get("STASTE_METRICS_PREFIX")


def base_of(name: str) -> str:
    """The base of the metrica called ``name``, registered or not."""
    return keys.metrica_base(prefix(), check_name(name))


def name_of(key: str, key_prefix: str | None = None) -> str | None:
    """The metrica name a key belongs to (None for a key that is not a metrica's)."""
    start = (prefix() if key_prefix is None else key_prefix) + ":{"
    if not key.startswith(start):
        return None
    end = key.find("}:", len(start))
    name = key[len(start) : end] if end > 0 else ""
    return name if NAME_PATTERN.match(name) else None


def is_cluster(client: Client) -> TypeIs[redis.cluster.RedisCluster]:
    return isinstance(client, redis.cluster.RedisCluster)


def as_text(raw: bytes | str) -> str:
    """A key, field or value Redis returned, as text (bytes that are not UTF-8 survive a round trip)."""
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


def server_of(client: Client, key: str) -> redis.Redis:
    """The client of the one server holding ``key`` (and every key of its metrica)."""
    if is_cluster(client):
        node = client.get_node_from_key(key)
        return node.redis_connection or client.get_redis_connection(node)
    return client


def _scan(client: Client, pattern: str) -> Iterator[str]:
    """SCAN MATCH ``pattern`` (on a cluster client: every primary, one after the other)."""
    for raw in client.scan_iter(match=pattern, count=BATCH * 2):
        yield as_text(raw)


def metrica_keys(base: str) -> Iterator[str]:
    """Every key under ``base`` (SCAN may repeat one; callers that count dedupe)."""
    with scripts.translated_errors():
        yield from _scan(server_of(connection.get_redis(), base), glob_escape(base) + "*")


def key_set(base: str) -> set[str]:
    return set(metrica_keys(base))


def has_keys(base: str) -> bool:
    return next(metrica_keys(base), None) is not None


def memory_usage(key_list: list[str]) -> int:
    """Bytes the keys of one metrica take (MEMORY USAGE, pipelined; keys gone meanwhile count 0)."""
    return measure(key_list).bytes


@dataclass
class Usage:
    """What one metrica name holds in Redis."""

    keys: int = 0
    bytes: int = 0
    #: Its hash with the most fields (a bucket, or a bucket's histogram), and how many.
    largest: str | None = None
    largest_fields: int = 0


def measure(key_list: list[str]) -> Usage:
    """Memory and largest hash of the keys of one metrica: MEMORY USAGE and HLEN, pipelined
    ``BATCH`` keys at a time (keys gone meanwhile count 0; HLEN of a set or string is skipped)."""
    usage = Usage(keys=len(key_list))
    if not key_list:
        return usage
    with scripts.translated_errors():
        server = server_of(connection.get_redis(), key_list[0])
        for start in range(0, len(key_list), BATCH):
            batch = key_list[start : start + BATCH]
            pipe = server.pipeline(transaction=False)
            for key in batch:
                pipe.memory_usage(key)
                pipe.hlen(key)
            replies = pipe.execute(raise_on_error=False)
            for key, size, fields in zip(batch, replies[0::2], replies[1::2], strict=True):
                usage.bytes += size if isinstance(size, int) else 0
                if isinstance(fields, int) and fields > usage.largest_fields:
                    usage.largest, usage.largest_fields = key, fields
    return usage


def inventory(measure_keys: bool = True) -> dict[str, Usage]:
    """Every metrica name with keys under the current prefix: one SCAN of the keyspace.

    With ``measure_keys`` the memory of each key is summed and the largest hash found too
    (:func:`measure`).
    """
    key_prefix = prefix()
    found: dict[str, set[str]] = {}
    with scripts.translated_errors():
        client = connection.get_redis()
        for key in _scan(client, glob_escape(key_prefix) + ":{*}:*"):
            name = name_of(key, key_prefix)
            if name is not None:
                found.setdefault(name, set()).add(key)
    if not measure_keys:
        return {name: Usage(keys=len(names)) for name, names in found.items()}
    return {name: measure(sorted(names)) for name, names in found.items()}


def purge(base: str, passes: int = 3) -> int:
    """Delete every key under ``base``, a batch of UNLINKs at a time; returns how many.

    A key written while the SCAN runs may be missed, so the scan is repeated until a pass
    finds nothing (at most ``passes`` times: a metrica still being kicked keeps growing back).
    """
    deleted = 0
    with scripts.translated_errors():
        server = server_of(connection.get_redis(), base)
        for _ in range(passes):
            found = 0
            batch: list[str] = []
            for key in metrica_keys(base):
                batch.append(key)
                if len(batch) >= BATCH:
                    deleted += server.unlink(*batch)
                    found += len(batch)
                    batch = []
            if batch:
                deleted += server.unlink(*batch)
                found += len(batch)
            if not found:
                break
    return deleted


def stored_signatures(bases: list[str]) -> list[str | None]:
    """The ``signature`` string under each base (None where none was recorded)."""
    if not bases:
        return []
    with scripts.translated_errors():
        client = connection.get_redis()
        pipe = client.pipeline(transaction=False)
        for base in bases:
            pipe.get(keys.signature_key(base))
        return [None if raw is None else as_text(raw) for raw in pipe.execute()]


# -- renaming -------------------------------------------------------------------------------

#: Key types whose contents ``rename(merge=True)`` can add into an existing key.
MERGEABLE = ("hash", "set", "string")


class RenameError(ValueError):
    """A rename that was refused before anything was written."""


class NothingToRename(RenameError):
    """The old name has no data."""


@dataclass(frozen=True)
class RenamePlan:
    """What ``rename`` will do, checked before anything is written."""

    old: str
    new: str
    old_keys: int
    new_keys: int
    #: "move" (NEW has no data), "merge" (OLD's counters added to NEW's) or "replace" (NEW's deleted first).
    action: str


def plan_rename(
    old: str, new: str, *, merge: bool = False, force: bool = False, defined: Metrica | None = None
) -> RenamePlan:
    """Check that the data of the metrica ``old`` may move to ``new``: RenameError says why not.

    Refused: the same name twice; ``old`` without data (NothingToRename); ``new`` with data,
    unless ``merge`` or ``force``; and, unless ``force``, counters that mean different things:
    a merge of data written with other axes, or data moved under a metrica ``defined`` in code
    with other axes (its queries would read the wrong counters).
    """
    if old == new:
        raise RenameError(f"OLD and NEW are both {old!r}")
    old_base, new_base = base_of(old), base_of(new)
    old_keys = key_set(old_base)
    if not old_keys:
        raise NothingToRename(f"{old!r} has no data: nothing to rename")
    new_keys = key_set(new_base)
    if new_keys and not (force or merge):
        raise RenameError(
            f"{new!r} already has data ({len(new_keys)} keys). Pass --merge to add {old}'s counters to it, "
            f"or --force to replace it (its data is deleted)."
        )
    old_signature, new_signature = stored_signatures([old_base, new_base])
    if not force:
        if merge and new_keys and old_signature and new_signature and old_signature != new_signature:
            raise RenameError(
                f"{old}'s data was written with other axes than {new}'s ({old_signature!r} vs "
                f"{new_signature!r}): merging would mix counters that mean different things. "
                "Pass --force to merge anyway."
            )
        if defined is not None and old_signature and old_signature != defined.signature():
            raise RenameError(
                f"{old}'s data was written with other axes ({old_signature!r}) than {new} has in code "
                f"({defined.signature()!r}): its queries would read the wrong counters. "
                "Pass --force to rename anyway (`staste check` will report the mismatch)."
            )
    action = "merge" if merge and new_keys else "replace" if new_keys else "move"
    return RenamePlan(old, new, len(old_keys), len(new_keys), action)


def rename(old_base: str, new_base: str, *, replace: bool = False, merge: bool = False) -> int:
    """Move every key under ``old_base`` to the same suffix under ``new_base``; returns how many.

    When keys already exist under ``new_base`` this refuses (RenameError) unless ``replace``
    (they are deleted first) or ``merge`` (the old counters are added to them: hash fields
    with HINCRBY, set members with SADD; a string, the signature, keeps the new one's value;
    a key that only the old name has is moved whole, with its TTL).
    """
    if old_base == new_base:
        raise RenameError("the old and the new name are the same")
    if replace and merge:
        raise RenameError("replace and merge exclude each other")
    old_keys = sorted(key_set(old_base))
    if not old_keys:
        return 0
    with scripts.translated_errors():
        client = connection.get_redis()
        source, target = server_of(client, old_base), server_of(client, new_base)
        if merge:
            _check_mergeable(source, old_keys)
        elif has_keys(new_base):
            if not replace:
                raise RenameError("the new name already has data")
            purge(new_base)
        moved = 0
        for start in range(0, len(old_keys), BATCH):
            batch = old_keys[start : start + BATCH]
            pairs = [(key, new_base + key[len(old_base) :]) for key in batch]
            if is_cluster(client):
                done, taken = _restore_elsewhere(source, target, pairs, replace=not merge)
            else:
                done, taken = _rename_here(client, pairs, merge)
            moved += done + sum(_merge_key(source, target, old, new) for old, new in taken)
    return moved


def _check_mergeable(client: redis.Redis, old_keys: list[str]) -> None:
    for start in range(0, len(old_keys), BATCH):
        batch = old_keys[start : start + BATCH]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.type(key)
        for key, kind in zip(batch, pipe.execute(), strict=True):
            kind = as_text(kind)
            if kind not in (*MERGEABLE, "none"):
                raise RenameError(f"cannot merge {key!r}: a {kind} (only {', '.join(MERGEABLE)} keys merge)")


def _rename_here(client: redis.Redis, pairs: list[tuple[str, str]], merge: bool) -> tuple[int, list[tuple[str, str]]]:
    """RENAME (RENAMENX when merging) a batch in one MULTI/EXEC; returns (moved, pairs whose
    new key was taken)."""
    pipe = client.pipeline(transaction=True)
    for old, new in pairs:
        if merge:
            pipe.renamenx(old, new)
        else:
            pipe.rename(old, new)
    moved = 0
    taken: list[tuple[str, str]] = []
    for pair, result in zip(pairs, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(result, redis.ResponseError):
            if "no such key" in str(result).lower():  # expired since the scan
                continue
            raise result
        if merge and not result:
            taken.append(pair)
        else:
            moved += 1
    return moved, taken


def _restore_elsewhere(
    source: redis.Redis, target: redis.Redis, pairs: list[tuple[str, str]], replace: bool
) -> tuple[int, list[tuple[str, str]]]:
    """DUMP on the old slot's server, RESTORE (with the remaining PTTL) on the new one's, then
    UNLINK; returns (moved, pairs whose new key was taken), the latter only when not ``replace``."""
    pipe = source.pipeline(transaction=False)
    for old, _ in pairs:
        pipe.dump(old)
        pipe.pttl(old)
    replies = pipe.execute()
    present = [
        (pair, payload, pttl)
        for pair, payload, pttl in zip(pairs, replies[0::2], replies[1::2], strict=True)
        if payload is not None and pttl != -2  # not expired since the scan
    ]
    pipe = target.pipeline(transaction=False)
    for (_, new), payload, pttl in present:
        pipe.restore(new, max(pttl, 0), payload, replace=replace)
    taken: list[tuple[str, str]] = []
    moved: list[str] = []
    for ((old, new), _, _), result in zip(present, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(result, redis.ResponseError):
            if "BUSYKEY" not in str(result):
                raise result
            taken.append((old, new))
        else:
            moved.append(old)
    if moved:
        source.unlink(*moved)
    return len(moved), taken


def _merge_key(source: redis.Redis, target: redis.Redis, old: str, new: str) -> int:
    """Add the contents of ``old`` into the existing ``new``, then drop ``old``; 1 if it existed."""
    kind = as_text(source.type(old))
    if kind == "none":
        return 0
    pipe = target.pipeline(transaction=False)
    if kind == "hash":
        for field, raw in source.hgetall(old).items():
            text = as_text(raw)
            if re.fullmatch(r"-?\d+", text):
                pipe.hincrby(new, field, int(text))
            else:
                try:
                    pipe.hincrbyfloat(new, field, float(text))
                except ValueError:
                    raise RenameError(f"cannot merge {old!r}: field {as_text(field)!r} is not a number") from None
    elif kind == "set":
        members = source.smembers(old)
        if members:
            pipe.sadd(new, *members)
    elif kind == "string":
        value = source.get(old)
        if value is not None:  # else it is gone since TYPE (expired, or deleted by another client)
            pipe.set(new, value, nx=True)
    else:
        raise RenameError(f"cannot merge {old!r}: a {kind}")
    pipe.execute()
    source.unlink(old)
    return 1
