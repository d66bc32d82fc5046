"""Exact per-user activity (metricas made with users=True): kick(user=...) synchronous and
buffered marks day, ISO week and month bitmaps; users() and user_ids() over ranges compared
with a Python model of who kicked when; mapped ids; the cap; bad input writes nothing; the
work of each users.lua call of a flush; TTLs and the hash slot."""

from __future__ import annotations

import datetime
import random
import uuid

import pytest

from staste import buffer, keys
from staste.axis import Axis, StoredChoiceAxis
from staste.buffer import flushes
from staste.cohorts import NotKeptForUsers, RangeNotKept, TooManyUsers, layout, marks
from staste.metrica import Metrica

D = datetime.date

pytestmark = pytest.mark.usefixtures("quiet_buffer")


@pytest.fixture
def visits() -> Metrica:
    return Metrica(
        name="visits",
        axes=[("shop", Axis(choices=["north", "south"])), ("page", StoredChoiceAxis())],
        users=True,
        users_axes=["shop"],
    )


def model_users(events: list[tuple[int, D, str]], since: D, until: D, shop: str | None = None) -> set[int]:
    return {user for user, day, where in events if since <= day <= until and (shop is None or where == shop)}


@pytest.mark.parametrize("buffered", [False, True])
def test_users_over_ranges_equal_a_model(visits, buffered, clock) -> None:
    clock.set(datetime.datetime(2026, 5, 20, 12))
    rng = random.Random(24)
    events = []
    for _ in range(400):
        user = rng.randrange(0, 300)
        day = D(2026, 1, 1) + datetime.timedelta(days=rng.randrange(0, 139))
        shop = rng.choice(["north", "south"])
        events.append((user, day, shop))
        visits.kick(
            user=user, shop=shop, page="home", date=datetime.datetime.combine(day, datetime.time(13)), buffered=buffered
        )
    visits.kick(shop="north", date=datetime.datetime(2026, 3, 3))  # no user: counted, marks nobody
    buffer.flush()
    assert visits.total() == 401
    ranges = [
        (D(2026, 1, 1), D(2026, 5, 19)),  # whole months, weeks and days
        (D(2026, 2, 26), D(2026, 4, 2)),  # a week across a month's end, a month, days
        (D(2026, 3, 9), D(2026, 3, 9)),  # one day
        (D(2026, 5, 18), D(2026, 5, 20)),  # up to today, the last day included
        (D(2025, 12, 1), D(2026, 1, 4)),  # before the first kick
    ]
    for since, until in ranges:
        assert visits.users(since, until) == len(model_users(events, since, until)), (since, until)
        assert visits.users(since, until, shop="south") == len(model_users(events, since, until, "south"))
    expected = sorted(model_users(events, D(2026, 2, 26), D(2026, 4, 2)))
    assert visits.user_ids(D(2026, 2, 26), D(2026, 4, 2), limit=300) == expected
    with pytest.raises(TooManyUsers, match="more than 5 users"):
        visits.user_ids(D(2026, 2, 26), D(2026, 4, 2), limit=5)


def test_mapped_ids_get_one_position_each(visits, settings, staste_redis, prefix, clock) -> None:
    settings.STASTE_USER_IDS = "mapped"
    clock.set(datetime.datetime(2026, 5, 20, 12))
    people = [uuid.UUID(int=n) for n in range(1, 6)] + ["alice", "bob"]
    for round_ in range(3):
        for person in people:
            visits.kick(user=person, shop="north", date=datetime.datetime(2026, 5, 10 + round_))
    base = layout.users_base(prefix)
    assert staste_redis.hlen(layout.ids_key(base)) == len(people)
    assert int(staste_redis.get(layout.next_key(base))) == len(people)
    assert visits.users(D(2026, 5, 10), D(2026, 5, 12)) == len(people)
    assert visits.users(D(2026, 5, 12), D(2026, 5, 12)) == len(people)
    assert visits.user_ids(D(2026, 5, 1), D(2026, 5, 31)) == [str(person) for person in people]


def test_the_cap_refuses_new_ids_and_writes_nothing(visits, settings, staste_keys) -> None:
    settings.STASTE_USER_IDS = "mapped"
    settings.STASTE_MAX_USER_POSITION = 2
    visits.kick(user="a")
    visits.kick(user="b")
    before = staste_keys()
    with pytest.raises(ValueError, match="STASTE_MAX_USER_POSITION"):
        visits.kick(user="c")
    assert staste_keys() == before
    visits.kick(user="a")  # a known id still fits


@pytest.mark.parametrize(
    ("user", "error", "message"),
    [
        ("7f3a-uuid", TypeError, "STASTE_USER_IDS = 'mapped'"),
        (10_000_001, ValueError, "STASTE_MAX_USER_POSITION"),
        (-1, ValueError, "outside"),
        (True, TypeError, "integer id"),
        (1.5, TypeError, "integer id"),
    ],
)
def test_bad_users_are_clear_errors_and_write_nothing(visits, staste_keys, user, error, message) -> None:
    with pytest.raises(error, match=message):
        visits.kick(user=user, shop="north")
    with pytest.raises(error, match=message):
        visits.kick(user=user, shop="north", buffered=True)
    buffer.flush()
    assert staste_keys() == {}


def test_a_metrica_without_users_refuses_user_and_queries(staste_keys) -> None:
    plain = Metrica(name="plain", axes=[("shop", Axis(choices=["north"]))])
    with pytest.raises(TypeError, match="users=True"):
        plain.kick(user=3)
    with pytest.raises(NotKeptForUsers, match="users=True"):
        plain.users(D(2026, 1, 1))
    assert staste_keys() == {}
    with pytest.raises(NotKeptForUsers, match="users_axes"):
        Metrica(name="v", axes=[("page", StoredChoiceAxis())], users=True).users(D(2026, 1, 1), page="x")
    with pytest.raises(ValueError, match="Axis\\(choices"):
        Metrica(name="v", axes=[("page", StoredChoiceAxis())], users=True, users_axes=["page"])
    with pytest.raises(TypeError, match="needs users=True"):
        Metrica(name="v", axes=[("shop", Axis(choices=["n"]))], users_axes=["shop"])


def test_an_axis_named_user_stays_an_axis() -> None:
    legacy = Metrica(name="legacy", axes=[("user", StoredChoiceAxis())])
    legacy.kick(user="bob")
    assert legacy.iterate("user") == [("bob", 1)]
    with pytest.raises(ValueError, match="axis named 'user'"):
        Metrica(name="clash", axes=[("user", StoredChoiceAxis())], users=True)


def test_a_range_past_the_day_retention_is_refused(visits, clock) -> None:
    clock.set(datetime.datetime(2026, 5, 20, 12))
    with pytest.raises(RangeNotKept, match="STASTE_RETENTION\\['day'\\]"):
        visits.users(D(2025, 11, 10), D(2025, 11, 12))
    # whole months are read from month bitmaps, kept three years
    assert visits.users(D(2025, 10, 1), D(2025, 11, 30)) == 0


def test_bitmaps_live_as_long_as_their_buckets_in_one_slot(visits, staste_redis, prefix, clock) -> None:
    clock.set(datetime.datetime(2026, 5, 20, 12))
    visits.kick(user=9, shop="south", date=datetime.datetime(2026, 5, 20, 9))
    base = layout.users_base(prefix)
    found = sorted(key.decode() for key in staste_redis.scan_iter(match=base.replace("{", "[{]") + "b:*"))
    assert found == sorted(
        f"{base}b:visits:{bucket}{suffix}"
        for bucket in ("20260520", "w20260518", "202605")
        for suffix in ("", ":shop=south")
    )
    day_ttl = staste_redis.ttl(f"{base}b:visits:20260520")
    assert 185 * 86400 < day_ttl <= 186 * 86400
    assert 3 * 366 * 86400 < staste_redis.ttl(f"{base}b:visits:202605") <= 3 * 366 * 86400 + 12 * 86400
    assert staste_redis.getbit(f"{base}b:visits:20260520", 9) == 1
    from redis.cluster import key_slot

    assert len({key_slot(key.encode()) for key in found}) == 1


def test_each_users_call_of_a_flush_is_bounded(visits, monkeypatch, clock) -> None:
    clock.set(datetime.datetime(2026, 5, 20, 12))
    made: list[flushes.Call] = []
    original = flushes.users_calls

    def spy(flush, batch):  # type: ignore[no-untyped-def]
        found = original(flush, batch)
        made.extend(found)
        return found

    monkeypatch.setattr(flushes, "users_calls", spy)
    for user in range(2500):
        visits.kick(user=user, shop="north", buffered=True)
        visits.kick(user=user, shop="north", buffered=True)  # the same bits: merged
    buffer.flush()
    setbits = []
    for call in made:
        head = call.args[1].split("|")
        count, users = int(head[0]), int(head[1])
        rows = call.args[2 + count :]
        assert len(rows) == users
        setbits.append(sum(len(row.split("|")) - 2 for row in rows))
    assert len(made) > 1 and max(setbits) <= marks.CALL_BUDGET
    assert sum(setbits) == 2500 * 6
    assert visits.users(D(2026, 5, 20), D(2026, 5, 20), shop="north") == 2500
    assert visits.total() == 5000


def test_field_parts_of_filters_and_kicks_agree(visits) -> None:
    assert visits.axes["shop"].filter_part("north") == keys.value_part("north")


def test_a_system_check_gives_the_memory_the_cap_implies(settings) -> None:
    from staste.checks import check_users_memory
    from staste.registration import registry

    saved = registry.save()
    try:
        registry.register(
            Metrica(name="orders", axes=[("shop", Axis(choices=["n", "s", "e"]))], users=True, users_axes=["shop"])
        )
        settings.STASTE_MAX_USER_POSITION = 8_000_000
        (found,) = [m for m in check_users_memory() if "'orders'" in m.msg]
        # 1 MB a bitmap; 382 periods (186 days, 158 weeks, 38 months) x 4 bitmaps each
        assert found.id == "staste.I004"
        assert "976.6 KiB each" in found.msg and "1,528 of them" in found.msg and "1.4 GiB" in found.msg
    finally:
        registry.restore(saved)
