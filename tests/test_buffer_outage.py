"""The buffer through a long outage (issue 20, item 3): one bound in bytes over everything it
holds, kicks that never wait while Redis is away, and the byte estimates checked against what
Python really allocates.

Counts and bytes are asserted, never time: how long a kick takes during an outage is measured
by ``make bench`` (benchmarks/outage.py).
"""

from __future__ import annotations

import datetime
import random
import tracemalloc

import pytest

from staste import conf, connection
from staste.axis import StoredChoiceAxis
from staste.buffer import Buffer, held
from staste.metrica import Metrica
from staste.testing import free_port

DATE = datetime.datetime(2024, 3, 9, 12, 30)


def three_axes(uniques: bool = False) -> Metrica:
    """The issue's workload: 1,000 x 50 x 11 values."""
    return Metrica(
        name="outage",
        axes=[("page", StoredChoiceAxis()), ("referrer", StoredChoiceAxis()), ("country", StoredChoiceAxis())],
        uniques=uniques,
    )


def values(how_many: int) -> list[tuple[str, str, str]]:
    rng = random.Random(20)
    return [(f"/p/{rng.randrange(1000)}", f"r{rng.randrange(50)}", f"c{rng.randrange(11)}") for _ in range(how_many)]


@pytest.fixture
def away(settings) -> None:
    """Redis at a port nobody listens on: every flush fails at once."""
    settings.STASTE_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    connection.reset()


def test_a_million_kicks_into_an_outage_stay_within_the_byte_bound(away, settings, quiet_buffer: Buffer) -> None:
    """1,000,000 kicks of 3 axes, one in four with a new unique id, while Redis is away: what
    the buffer holds never passes STASTE_BUFFER_MAX_BYTES, no kick waits for room (each that
    finds none is dropped at once, counted), and every kick is held or counted as dropped."""
    settings.STASTE_BUFFER_MAX_BYTES = 8 * 1024 * 1024
    metrica = three_axes(uniques=True)
    seen = values(20_000)
    most = 0
    for n in range(1_000_000):
        page, referrer, country = seen[n % len(seen)]
        unique = f"visitor-{n}" if n % 4 == 0 else None
        metrica.kick(date=DATE, page=page, referrer=referrer, country=country, unique=unique, buffered=True)
        if n % 10_000 == 0:
            most = max(most, quiet_buffer.stats()["bytes"])
    stats = quiet_buffer.stats()
    most = max(most, stats["bytes"])
    assert 0.9 * settings.STASTE_BUFFER_MAX_BYTES < most <= settings.STASTE_BUFFER_MAX_BYTES
    # one flush failed (made by the kick that found the buffer full first): from then on, no
    # kick waited for room, and none made a flush
    assert stats["failed_flushes"] == 1 and stats["waits"] == 0
    kept = quiet_buffer._flushes.parked + quiet_buffer._held.kicks()
    assert sum(kick.increments[0] for kick in kept) + stats["dropped"] == 1_000_000
    assert stats["dropped"] > 0 and quiet_buffer._held.ids + sum(len(kick.unique) for kick in kept) > 0
    assert stats["pending"] == len(kept) <= conf.get("STASTE_BUFFER_MAX_KEYS")
    quiet_buffer.reset()  # (nothing to write them to at exit)


def test_a_failing_flush_parks_its_kicks_and_never_merges_them_back(away, quiet_buffer: Buffer) -> None:
    """Each failed flush used to merge its kicks back into the buffer under its lock, and give
    new kicks a new holding area: the buffer grew with every failure, and kicking threads waited
    for the merge.  Now a failed flush's kicks are parked as they are, written first when Redis
    is back, and count against the bounds."""
    metrica = three_axes()
    for page, referrer, country in values(100):
        metrica.kick(date=DATE, page=page, referrer=referrer, country=country, buffered=True)
    quiet_buffer.flush()  # fails
    parked = quiet_buffer._flushes.parked
    assert len(parked) == 100 and len(quiet_buffer._held) == 0
    assert quiet_buffer.stats()["bytes"] == 100 * held.ENTRY_BYTES
    for _ in range(3):
        quiet_buffer.flush()  # fail again, touching nothing
        assert quiet_buffer._flushes.parked is not parked or len(quiet_buffer._flushes.parked) == 100
    assert quiet_buffer.stats()["pending"] == 100 and quiet_buffer.stats()["failed_flushes"] == 4
    quiet_buffer.reset()  # (nothing to write them to at exit)


def test_the_byte_estimates_cover_what_python_allocates() -> None:
    """ENTRY_BYTES a held kick and ID_BYTES (and its length) an id, against tracemalloc's count of
    what holding 20,000 kicks, then 20,000 new ids in them, allocated."""
    box = Buffer(background=False)
    metrica = three_axes(uniques=True)
    seen = values(20_000)
    kicks = [metrica.prepare_kick(date=DATE, page=p, referrer=r, country=c) for p, r, c in seen]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for kick in kicks:
            box.add(kick)
        entries = len(box._held)
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / entries
        ids = [f"visitor-{n}" for n in range(20_000)]
        before = tracemalloc.get_traced_memory()[0]
        for kick, unique in zip(kicks, ids, strict=True):
            box.add(kick._replace(unique=(unique,)))
        held_ids = box._held.ids
        per_id = (tracemalloc.get_traced_memory()[0] - before) / held_ids
    finally:
        tracemalloc.stop()
        box.reset()
    assert per_entry <= held.ENTRY_BYTES, per_entry
    # an entry's first id makes its set: SET_BYTES, then ID_BYTES and the id's length
    assert per_id <= held.ID_BYTES + len("visitor-00000") + held.SET_BYTES * entries / held_ids, per_id
