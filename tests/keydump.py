"""What a test wrote to Redis: every key under a prefix with its content (one helper for every
test that compares what was written, or proves that nothing was)."""

from __future__ import annotations

import redis


def dump(client: redis.Redis, prefix: str, *, ttl: bool = False) -> dict[str, object]:
    """``{key: content}`` for every key under ``prefix:`` (hash, set or string), sorted by key;
    with ``ttl``, ``{key: (content, expires)}``."""
    found: dict[str, object] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}:*", count=1000)):
        kind = client.type(key).decode()
        content = {"hash": client.hgetall, "set": client.smembers, "string": client.get}[kind](key)
        found[key.decode()] = (content, client.ttl(key) > 0) if ttl else content
    return found
