"""Funnels and retention tables (staste.funnel, staste.retention) against a Python model of who
did what, when: random users doing steps in and out of order, on the range's last day and
outside it, with and without ``within``, step filters on a users axis, mapped ids, buffered
kicks; the errors that name the fix and write nothing; the commands a funnel is given.  Also
run on a Redis Cluster (tests/test_cluster.py)."""

from __future__ import annotations

import datetime
import random

import pytest

import staste
from staste import buffer
from staste.axis import Axis
from staste.cohorts import NotKeptForUsers, RangeNotKept, TooManyUsers, bitops, funnel
from staste.metrica import Metrica

D = datetime.date
SINCE, UNTIL = D(2026, 4, 6), D(2026, 4, 30)

pytestmark = pytest.mark.usefixtures("quiet_buffer")


@pytest.fixture
def steps() -> list[Metrica]:
    return [
        Metrica(name="signed_up", axes=[], users=True),
        Metrica(name="added_to_cart", axes=[], users=True),
        Metrica(name="paid", axes=[("shop", Axis(choices=["north", "south"]))], users=True, users_axes=["shop"]),
    ]


@pytest.fixture(autouse=True)
def in_may(clock) -> None:
    clock.set(datetime.datetime(2026, 5, 3, 10))


def model_funnel(done: list[set[tuple[int, D]]], since: D, until: D, within: int | None) -> list[set[int]]:
    """Who reached each step, user by user, by the documented rule."""
    users = {user for step in done for user, _ in step}
    reached: list[set[int]] = [set() for _ in done]
    for user in users:
        first_days = sorted(day for who, day in done[0] if who == user and since <= day <= until)
        if not first_days:
            continue
        start = at = first_days[0]
        reached[0].add(user)
        for k in range(1, len(done)):
            deadline = until if within is None else min(until, start + datetime.timedelta(days=within))
            later = sorted(day for who, day in done[k] if who == user and at <= day <= deadline)
            if not later:
                break
            at = later[0]
            reached[k].add(user)
    return reached


def kick_randomly(steps: list[Metrica], seed: int, users: int = 120, buffered: bool = False):
    rng = random.Random(seed)
    done: list[set[tuple[int, D]]] = [set() for _ in steps]
    north: set[tuple[int, D]] = set()
    for _ in range(users * 4):
        user = rng.randrange(1, users)
        k = rng.choices(range(len(steps)), weights=[3, 2, 2])[0]
        day = SINCE + datetime.timedelta(days=rng.randrange(-4, 28))  # before, in and after the range
        if rng.random() < 0.05:
            day = UNTIL  # the range's last day
        shop = rng.choice(["north", "south"])
        extra = {"shop": shop} if steps[k].axes else {}
        at = datetime.datetime.combine(day, datetime.time(rng.randrange(24), rng.randrange(60)))
        steps[k].kick(user=user, date=at, buffered=buffered, **extra)
        done[k].add((user, day))
        if k == 2 and shop == "north":
            north.add((user, day))
    buffer.flush()
    return done, north


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("within", [None, 0, 3, 10])
def test_funnels_equal_the_model(steps, seed, within) -> None:
    done, north = kick_randomly(steps, seed, buffered=seed == 2)
    found = staste.funnel(steps, SINCE, UNTIL, within=within)
    expected = model_funnel(done, SINCE, UNTIL, within)
    assert [step.count for step in found] == [len(users) for users in expected]
    assert found[1].lost_ids(limit=500) == sorted(expected[0] - expected[1])
    assert found[2].lost_ids(limit=500) == sorted(expected[1] - expected[2])
    assert found[0].lost_ids() == []
    filtered = staste.funnel([steps[0], steps[1], steps[2].filter(shop="north")], SINCE, UNTIL, within=within)
    expected_north = model_funnel([done[0], done[1], north], SINCE, UNTIL, within)
    assert [step.count for step in filtered] == [len(users) for users in expected_north]
    assert filtered[2].label == "Paid (shop=north)"


def test_order_same_day_and_the_last_day(steps) -> None:
    at = lambda day: datetime.datetime.combine(day, datetime.time(12))  # noqa: E731
    # 1: in order over three days; 2: all on the range's last day; 3: cart before sign-up only;
    # 4: cart before and after sign-up; 5: pays 5 days after signing up; 6: signs up after the range
    for user, marks in {
        1: [(0, D(2026, 4, 7)), (1, D(2026, 4, 8)), (2, D(2026, 4, 9))],
        2: [(0, UNTIL), (1, UNTIL), (2, UNTIL)],
        3: [(1, D(2026, 4, 7)), (0, D(2026, 4, 8))],
        4: [(1, D(2026, 4, 7)), (0, D(2026, 4, 8)), (1, D(2026, 4, 20))],
        5: [(0, D(2026, 4, 10)), (1, D(2026, 4, 10)), (2, D(2026, 4, 15))],
        6: [(0, D(2026, 5, 1)), (1, D(2026, 5, 1))],
    }.items():
        for k, day in marks:
            steps[k].kick(user=user, date=at(day), **({"shop": "south"} if k == 2 else {}))
    found = funnel(steps, SINCE, UNTIL)
    assert [s.count for s in found] == [5, 4, 3]
    assert found[1].lost_ids() == [3] and found[2].lost_ids() == [4]
    assert [s.count for s in funnel(steps, SINCE, UNTIL, within=4)] == [5, 3, 2]  # 4 paid 12 days on; 5 too late
    assert [s.count for s in funnel(steps, SINCE, UNTIL, within=datetime.timedelta(0))] == [5, 2, 1]
    only_last = funnel(steps, UNTIL, UNTIL)
    assert [s.count for s in only_last] == [1, 1, 1]
    assert found[1].conversion == 4 / 5 and found[2].step_conversion == 3 / 4 and found[2].lost == 1


def test_retention_equals_the_model(steps, clock) -> None:
    signed_up, visited = steps[0], steps[1]
    rng = random.Random(5)
    first: set[tuple[int, D]] = set()
    then: set[tuple[int, D]] = set()
    for _ in range(600):
        user, day = rng.randrange(200), D(2026, 3, 2) + datetime.timedelta(days=rng.randrange(62))
        if rng.random() < 0.4:
            signed_up.kick(user=user, date=datetime.datetime.combine(day, datetime.time(9)))
            first.add((user, day))
        else:
            visited.kick(user=user, date=datetime.datetime.combine(day, datetime.time(9)))
            then.add((user, day))
    table = staste.retention(first=signed_up, then=visited, period="week", periods=8, until=D(2026, 5, 3))
    weeks = [D(2026, 3, 9) + datetime.timedelta(days=7 * w) for w in range(8)]  # 2026-05-03 is a Sunday
    assert [row.start for row in table] == weeks
    for at, row in enumerate(table):

        def in_week(events: set[tuple[int, D]], monday: D) -> set[int]:
            return {user for user, day in events if monday <= day < monday + datetime.timedelta(days=7)}

        cohort = in_week(first, row.start)
        assert row.size == len(cohort)
        assert row.returned == tuple(len(cohort & in_week(then, monday)) for monday in weeks[at:])
        assert row.shares[0] == (row.returned[0] / row.size if row.size else None)
    months = staste.retention(first=signed_up, then=visited, period="month", periods=3, until=D(2026, 5, 3))
    assert [row.start for row in months] == [D(2026, 3, 1), D(2026, 4, 1), D(2026, 5, 1)]
    march = {u for u, d in first if d.month == 3}
    assert months[0].returned[1] == len(march & {u for u, d in then if d.month == 4})
    days = staste.retention(first=signed_up, then=visited, period="day", periods=3, since=D(2026, 4, 1))
    assert len(days) == 3 and len(days[0].returned) == 3 and len(days[2].returned) == 1


def test_bad_funnels_are_clear_errors_and_write_nothing(steps, staste_keys) -> None:
    plain = Metrica(name="plain", axes=[("shop", Axis(choices=["north"]))])
    with pytest.raises(NotKeptForUsers, match="users=True"):
        funnel([steps[0], plain], SINCE, UNTIL)
    with pytest.raises(NotKeptForUsers, match="users_axes"):
        funnel([steps[0], Metrica(name="x", axes=[("shop", Axis(choices=["n"]))], users=True).filter(shop="n")], SINCE)
    with pytest.raises(RangeNotKept, match="STASTE_RETENTION"):
        funnel(steps, D(2025, 6, 1), D(2025, 6, 30))
    with pytest.raises(ValueError, match="2 to 10 steps"):
        funnel(steps[:1], SINCE, UNTIL)
    with pytest.raises(ValueError, match="whole days"):
        funnel(steps, SINCE, UNTIL, within=datetime.timedelta(hours=36))
    with pytest.raises(ValueError, match="before it starts"):
        funnel(steps, UNTIL, SINCE)
    with pytest.raises(ValueError, match="period must be"):
        staste.retention(steps[0], steps[1], period="year")
    assert staste_keys() == {}


def test_drill_down_limit(steps) -> None:
    for user in range(30):
        steps[0].kick(user=user, date=datetime.datetime(2026, 4, 10))
    with pytest.raises(TooManyUsers, match="more than 20"):
        funnel(steps[:2], SINCE, UNTIL)[1].lost_ids(limit=20)


def test_a_funnel_is_bounded_commands_in_one_pipeline(steps, monkeypatch) -> None:
    sent: list[int] = []
    original = bitops.Plan.run

    def spy(plan, keep=()):  # type: ignore[no-untyped-def]
        sources = [len(command) - 3 for command in plan.commands if command[0] == "BITOP"]
        sent.append(plan.bitops)
        assert max(sources) <= bitops.SOURCES
        return original(plan, keep)

    monkeypatch.setattr(bitops.Plan, "run", spy)
    funnel(steps, SINCE, UNTIL, within=7)  # 25 days, 3 steps
    # per day: 1 OR for step 1, then per later step AND, OR (and AND, XOR once days are 8 old)
    assert sent == [25 * 1 + 25 * 2 * 2 + (25 - 8) * 1 + (25 - 8) * 2 * 2]
