"""How a flush is cut into script calls: by the work each call gives Redis, never by a number
of kicks.

Why: Redis serves nobody else while a script runs, so no call may be long, the backlog of a
long outage included.  Each script's work is counted here as the script does it, and each call
is given at most its budget: HINCRBYs for counters.lua (``CALL_BUDGET``), ids for ids.lua
(``UNIQUES_BUDGET``), decisions for choices.lua (``DECISIONS_PER_CALL``), counters for the
kick.lua calls of the overflow fallback.  On a Redis Cluster a call holds one metrica (a script
reaches one hash slot).

What a budget leaves out: a numbered call's GET and SET of its writer key, a counters.lua
call's SADD of each year it writes (once a call) and EXPIRE of each hash it creates (at most
one a hash), and the HDEL of each counter a take-back brings back to 0 (up to one a HINCRBY).
A call that fails midway takes back what it did (up to its HINCRBYs again).  So a call runs its
budget and a few commands more, up to about twice its budget when it takes counters back and
three times when it fails after its last counter; all of these are as cheap as a HINCRBY.
What a count of commands alone would miss is what one HINCRBY costs: a field of a hash still
in Redis' compact listpack encoding (up to ``hash-max-listpack-entries`` fields, 128 by default)
is found by a scan: a server configured for bigger listpacks scans longer (1,000 HINCRBYs into
1,001-field listpacks took 6.4 ms at 1,024 against 3.0 ms at Redis' default 512;
benchmarks/listpack.py, Redis 7.0).  So the HINCRBYs of a
counters.lua call are cut to ``counters_budget()``: ``CALL_BUDGET`` where listpacks hold at
most ``LISTPACK_ENTRIES_PER_UNIT`` fields, proportionally fewer where they may hold more (the
server's setting is read once per client; the largest of a cluster's primaries).

The budgets are the contract a test checks: the work each call was given, which is
deterministic, not how long it took (tests/test_buffer_workload.py; the time a call takes is
measured by ``make bench``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis
import redis.cluster

from staste import conf, connection, kicks, scripts
from staste.exceptions import RedisUnavailable
from staste.kicks import Kick

#: What one counters.lua call may cost Redis, in HINCRBYs, where hashes keep at most Redis'
#: default of listpack fields: a fraction of a millisecond (0.38 ms on average, 1.0 ms the longest,
#: at 5 axes by make bench, where calls of 1,000 took 1.4-1.7 ms and up to 5.6 ms, for the same
#: Redis time a kick), so that a loaded machine, which stretches any call, keeps it short too.
CALL_BUDGET = 250
#: Redis' own default hash-max-listpack-entries (-ziplist- before 7; the redis.conf it ships, and
#: Debian's, set 128): assumed when CONFIG cannot be read.
DEFAULT_LISTPACK_ENTRIES = 512
#: Listpack fields a HINCRBY may scan for the price of one ``CALL_BUDGET`` unit: past it, a
#: call's HINCRBYs are cut in proportion (1,024 fields: half as many, 2,048: a quarter), so that
#: a call into full listpacks costs about what it costs at Redis' default (make bench: 1,000
#: HINCRBYs into 1,001-field listpacks took 6.4 ms at 1,024, 3.0 ms at 512, 1.7 ms at 128).
LISTPACK_ENTRIES_PER_UNIT = DEFAULT_LISTPACK_ENTRIES
#: Per Redis client: the most fields its server keeps a hash in listpack encoding for.
_listpack_entries: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
#: Most stored-choices decisions (members) one choices.lua call makes (each costs a few calls).
DECISIONS_PER_CALL = 300
#: What one ids.lua call may cost Redis, in ids PFADDed (a key costs ``KEY_COST`` more: EXISTS,
#: PFADD, EXPIRE).  Adding an id to a HyperLogLog costs about as much as a HINCRBY, a sparse one
#: turning dense (past ~3 KB) about 100 µs once: see docs/uniques.md.
UNIQUES_BUDGET = 2000
KEY_COST = 3


def cluster() -> bool:
    return isinstance(connection.get_redis(), redis.cluster.RedisCluster)


def listpack_entries() -> int:
    """The most fields a hash keeps in listpack encoding on staste's Redis (on a cluster, the
    largest of its primaries'): ``hash-max-listpack-entries`` (``-ziplist-`` before Redis 7).
    Read once per client; STASTE_LISTPACK_ENTRIES when set, DEFAULT_LISTPACK_ENTRIES when CONFIG
    is refused (a least-privilege user, a managed service), and, not kept, when Redis cannot be
    reached."""
    given = conf.get("STASTE_LISTPACK_ENTRIES")
    if given is not None:
        return max(1, int(given))
    client = connection.get_redis()
    known = _listpack_entries.get(client)
    if known is not None:
        return known
    try:
        with scripts.translated_errors():
            if isinstance(client, redis.cluster.RedisCluster):
                primaries = client.get_primaries()
                replies = [client.config_get("hash-max-*-entries", target_nodes=node) for node in primaries]
            else:
                replies = [client.config_get("hash-max-*-entries")]
    except RedisUnavailable:
        return DEFAULT_LISTPACK_ENTRIES
    except redis.ResponseError:  # CONFIG renamed or disabled
        replies = []
    found = [int(value) for reply in replies for value in reply.values() if value is not None]
    _listpack_entries[client] = entries = max(found, default=DEFAULT_LISTPACK_ENTRIES)
    return entries


def counters_budget() -> int:
    """The HINCRBYs one counters.lua (or kick.lua) call may make on staste's Redis: CALL_BUDGET,
    cut in proportion where listpack hashes may hold more than LISTPACK_ENTRIES_PER_UNIT fields."""
    return max(1, CALL_BUDGET * LISTPACK_ENTRIES_PER_UNIT // max(LISTPACK_ENTRIES_PER_UNIT, listpack_entries()))


def counters_work(chunks: Sequence[kicks.Chunk]) -> int:
    """The HINCRBYs a counters.lua call of ``chunks`` makes: counters times buckets."""
    return sum(len(items) * len(group.hashes) for group, items, _ in chunks)


def counters(groups: Iterable[kicks.Group], budget: int) -> Iterator[list[kicks.Chunk]]:
    """The counters of ``groups`` cut into calls of at most ``budget`` HINCRBYs (a group with
    more buckets than that: one counter a call), each call as soon as it is full."""
    current: list[kicks.Chunk] = []
    cost = 0
    base = None
    split = cluster()
    for group in groups:
        per_field = len(group.hashes)
        items = list(group.sums.items())
        start = 0
        if split and current and group.base != base:
            yield current
            current, cost = [], 0
        base = group.base
        while start < len(items):
            if cost and cost + per_field > budget:
                yield current
                current, cost = [], 0
            room = max(1, (budget - cost) // per_field)
            piece = items[start : start + room]
            current.append((group, piece, group.every and start == 0))
            cost += len(piece) * per_field
            start += len(piece)
    if current:
        yield current


def ids_work(items: Sequence[kicks.Uniques]) -> int:
    """What an ids.lua call of ``items`` costs, in ids (and ``KEY_COST`` a HyperLogLog)."""
    return sum(KEY_COST + len(ids) for _, _, _, ids in items)


def ids(items: list[kicks.Uniques], budget: int) -> list[list[kicks.Uniques]]:
    """The ids of ``items`` cut into calls of at most ``budget`` (ids, plus ``KEY_COST`` per
    key); a HyperLogLog with more ids is split over calls."""
    calls: list[list[kicks.Uniques]] = []
    current: list[kicks.Uniques] = []
    cost = 0
    split = cluster()
    if split:
        items = sorted(items, key=lambda item: item[0])
    for base, key, expiry, members in items:
        if split and current and base != current[-1][0]:
            calls.append(current)
            current, cost = [], 0
        start = 0
        while start < len(members):
            if cost + KEY_COST + 1 > budget and current:
                calls.append(current)
                current, cost = [], 0
            room = max(1, budget - cost - KEY_COST)
            piece = members[start : start + room]
            current.append((base, key, expiry, piece))
            cost += KEY_COST + len(piece)
            start += len(piece)
    if current:
        calls.append(current)
    return calls


def kick_work(kick: Kick) -> int:
    """What writing ``kick`` through kick.lua costs: its HINCRBYs, and 4 PFADDs an id and
    combination (up to 4 buckets keep uniques)."""
    return kick.combinations() * (len(kick.families) * len(kick.spans) + 4 * len(kick.unique))


def kick_by_kick(batch: Sequence[Kick], budget: int) -> list[Sequence[Kick]]:
    """``batch`` cut into kick.lua calls of about ``budget`` (a kick is never split: one whose
    own work is more is a call of its own)."""
    calls = []
    start = 0
    split = cluster()
    while start < len(batch):
        end, cost = start, 0
        while end < len(batch):
            if split and batch[end].metrica.base != batch[start].metrica.base:
                break
            cost += kick_work(batch[end])
            if cost > budget and end > start:
                break
            end += 1
        calls.append(batch[start:end])
        start = end
    return calls


def decide(batch: Sequence[Kick], per_call: int, answered: Callable[[], None]) -> dict[kicks.Chain, int]:
    """Which members of the stored axes the kicks' values are (choices.lua, in kick order), in
    calls of at most ``per_call`` decisions, ``answered()`` after each.  Raises what Redis
    answered (nothing is numbered: deciding again decides the same, as sets only grow)."""
    chains = kicks.chains(batch)
    if cluster():  # a call reaches one hash slot: one metrica's sets
        by_slot: dict[str, list[kicks.Chain]] = {}
        for chain in chains:
            by_slot.setdefault(chain[0].split("}", 1)[0], []).append(chain)
        parts = list(by_slot.values())
    else:
        parts = [chains]
    depths: dict[kicks.Chain, int] = {}
    for part in parts:
        start = 0
        while start < len(part):
            end, members = start, 0
            while end < len(part) and (members == 0 or members + len(part[end][2]) <= per_call):
                members += len(part[end][2])
                end += 1
            script_keys, args = kicks.choices_keys_and_args(part[start:end])
            stored = scripts.run("choices", script_keys, args)
            answered()
            depths.update(zip(part[start:end], (int(depth) for depth in stored), strict=True))
            start = end
    return depths
