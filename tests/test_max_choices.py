"""max_choices: a stored axis keeps at most that many values; later new values count as OTHER.

Checked against Redis itself (the stored-choices set, the counters) and through the query
API, including batches that cross the cap inside one script call and concurrent writers.
"""

from __future__ import annotations

import datetime
import threading

import pytest
import redis

from staste import conf, keys, scripts
from staste.axis import OTHER, Axis, HierarchicalAxis, StoredChoiceAxis
from staste.kicks import batch_keys_and_args
from staste.metrica import AveragedMetrica, Metrica

FEB = datetime.datetime(2010, 2, 7, 13, 5)
MAR = datetime.datetime(2010, 3, 1, 9, 30)


def stored(client: redis.Redis, prefix: str, metrica: str, axis: str) -> set[str]:
    return {member.decode() for member in client.smembers(f"{prefix}:{{{metrica}}}:choices:{axis}")}


def as_dict(rows: list[tuple[object, object]]) -> dict[object, object]:
    found = dict(rows)
    assert len(found) == len(rows), rows
    return found


@pytest.fixture
def tags() -> Metrica:
    return Metrica(
        name="tags", axes=[("gender", Axis(choices=["boy", "girl"])), ("tag", StoredChoiceAxis(max_choices=3))]
    )


def test_the_cap_is_respected_and_the_overflow_counted_exactly(tags, staste_redis, prefix) -> None:
    kicks = [("a", "boy"), ("b", "girl"), ("c", "boy"), ("d", "girl"), ("e", "boy"), ("d", "boy"), ("f", "girl")]
    for tag, gender in kicks:
        tags.kick(tag=tag, gender=gender, date=FEB)
    assert stored(staste_redis, prefix, "tags", "tag") == {"=a", "=b", "=c"}
    rows = tags.iterate("tag")
    assert rows == [("a", 1), ("b", 1), ("c", 1), (OTHER, 4)]
    assert rows[-1][0] is OTHER
    assert sum(total for _, total in rows) == tags.total() == len(kicks)
    # The overflow lands in the field part '!' of every bucket the kicks landed in.
    for bucket in ["all", "2010", "201002", "20100207", "2010020713", "201002071305"]:
        counters = staste_redis.hgetall(f"{prefix}:{{tags}}:{bucket}")
        assert counters[b"*|!"] == b"4"
        assert counters[b"=girl|!"] == b"2"  # d, f
        assert counters[b"=boy|!"] == b"2"  # e, d
        assert not any(b"=d" in field or b"=e" in field or b"=f" in field for field in counters)


def test_values_already_stored_keep_counting_after_the_cap(tags, staste_redis, prefix) -> None:
    for tag in ["a", "b", "c", "d", "a", "e", "c", "a"]:
        tags.kick(tag=tag)
    assert as_dict(tags.iterate("tag")) == {"a": 3, "b": 1, "c": 2, OTHER: 2}
    assert stored(staste_redis, prefix, "tags", "tag") == {"=a", "=b", "=c"}


def test_filters_still_work_with_an_overflowing_axis(tags) -> None:
    for tag, gender, date in [
        ("a", "boy", FEB),
        ("b", "girl", FEB),
        ("c", "girl", MAR),
        ("x", "girl", FEB),
        ("y", "boy", MAR),
        ("y", "girl", MAR),
        ("a", "girl", MAR),
    ]:
        tags.kick(tag=tag, gender=gender, date=date)
    assert as_dict(tags.filter(gender="girl").iterate("tag")) == {"a": 1, "b": 1, "c": 1, OTHER: 2}
    assert as_dict(tags.filter(gender="boy").iterate("tag")) == {"a": 1, "b": 0, "c": 0, OTHER: 1}
    assert as_dict(tags.timespan(year=2010, month=3).iterate("tag")) == {"a": 1, "b": 0, "c": 1, OTHER: 2}
    assert as_dict(tags.timespan(year=2010, month=2).filter(gender="girl").iterate("tag")) == {
        "a": 0,
        "b": 1,
        "c": 0,
        OTHER: 1,
    }
    assert tags.filter(tag="a").total() == 2
    assert tags.filter(tag="a").iterate("gender") == [("boy", 1), ("girl", 1)]
    assert tags.filter(tag="y").timespan(year=2010, month=3).total() == 0
    # A value that overflowed was never stored under its own name.
    assert tags.filter(tag="x").total() == 0
    assert tags.filter(gender="girl").total() == 5
    assert tags.timespan(year=2010, month=3).iterate("gender") == [("boy", 1), ("girl", 3)]


def test_other_is_listed_only_when_something_overflowed(tags) -> None:
    tags.kick(tag="a")
    tags.kick(tag="b")
    assert tags.iterate("tag") == [("a", 1), ("b", 1)]
    for tag in ["c", "d"]:
        tags.kick(tag=tag, gender="boy")
    # Listed for the slices where something overflowed, only.
    assert tags.filter(gender="girl").iterate("tag") == [("a", 0), ("b", 0), ("c", 0)]
    assert tags.filter(gender="boy").iterate("tag") == [("a", 0), ("b", 0), ("c", 1), (OTHER, 1)]
    assert tags.iterate("tag") == [("a", 1), ("b", 1), ("c", 1), (OTHER, 1)]


def test_a_real_value_spelled_like_the_label_stays_a_value_of_its_own() -> None:
    metrica = Metrica(name="spelled", axes=[("tag", StoredChoiceAxis(max_choices=1))])
    metrica.kick(tag="(other)")
    metrica.kick(tag="new")
    rows = metrica.iterate("tag")
    assert rows == [("(other)", 1), (OTHER, 1)]
    assert rows[0][0] is not OTHER and rows[1][0] is OTHER
    assert str(OTHER) == "(other)" and isinstance(OTHER, str) and repr(OTHER) == "OTHER"
    assert metrica.filter(tag="(other)").total() == 1


def test_the_setting_is_the_default_cap(settings, staste_redis, prefix) -> None:
    settings.STASTE_MAX_CHOICES = 2
    metrica = Metrica(
        name="capped",
        axes=[("v", StoredChoiceAxis()), ("unlimited", StoredChoiceAxis(max_choices=0)), ("own", Axis(max_choices=4))],
    )
    for n in range(6):
        metrica.kick(v=n, unlimited=n, own=n)
    assert as_dict(metrica.iterate("v")) == {"0": 1, "1": 1, OTHER: 4}
    assert [label for label, _ in metrica.iterate("unlimited")] == [str(n) for n in range(6)]
    assert as_dict(metrica.iterate("own")) == {"0": 1, "1": 1, "2": 1, "3": 1, OTHER: 2}
    assert len(stored(staste_redis, prefix, "capped", "unlimited")) == 6


def test_setting_zero_means_no_limit(settings, staste_redis, prefix) -> None:
    settings.STASTE_MAX_CHOICES = 0
    metrica = Metrica(name="free", axes=[("v", StoredChoiceAxis())])
    for n in range(50):
        metrica.kick(v=n)
    assert len(stored(staste_redis, prefix, "free", "v")) == 50
    assert OTHER not in dict(metrica.iterate("v"))


def test_the_default_cap_is_a_thousand(staste_redis, prefix) -> None:
    metrica = Metrica(name="thousand", axes=[("user", StoredChoiceAxis(value_type=int))])
    assert metrica.axes["user"].cap() == 1000
    values = list(range(1005))
    # One batch (as a buffer flush would write it) crossing the cap inside one script call.
    script_keys, args = batch_keys_and_args([metrica.prepare_kick(user=n, date=FEB) for n in values])
    scripts.run("kick", script_keys, args)
    assert staste_redis.scard(f"{prefix}:{{thousand}}:choices:user") == 1000
    rows = metrica.iterate("user")
    assert rows[:3] == [(0, 1), (1, 1), (2, 1)]
    assert rows[-2:] == [(999, 1), (OTHER, 5)]
    assert len(rows) == 1001


def test_declared_choices_are_never_capped(settings, staste_keys) -> None:
    settings.STASTE_MAX_CHOICES = 1
    metrica = Metrica(name="declared", axes=[("c", Axis(choices=["a", "b", "c"]))])
    assert metrica.axes["c"].cap() == -1
    for choice in ["a", "b", "c", "c"]:
        metrica.kick(c=choice)
    assert metrica.iterate("c") == [("a", 1), ("b", 1), ("c", 2)]
    assert not any(":choices:" in key for key in staste_keys())


def test_changing_the_cap_later(staste_redis, prefix) -> None:
    wide = Metrica(name="recap", axes=[("v", StoredChoiceAxis(max_choices=4))])
    for value in "abcd":
        wide.kick(v=value)
    narrow = Metrica(name="recap", axes=[("v", StoredChoiceAxis(max_choices=2))])
    narrow.kick(v="a")  # stored before: still counted as itself
    narrow.kick(v="e")  # new, and the set is already past the smaller cap
    assert as_dict(narrow.iterate("v")) == {"a": 2, "b": 1, "c": 1, "d": 1, OTHER: 1}
    wider = Metrica(name="recap", axes=[("v", StoredChoiceAxis(max_choices=6))])
    for value in "efgh":
        wider.kick(v=value)
    assert as_dict(wider.iterate("v")) == {"a": 2, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1, OTHER: 3}
    assert len(stored(staste_redis, prefix, "recap", "v")) == 6


def test_averaged_metricas_count_and_average_the_overflow() -> None:
    metrica = AveragedMetrica(name="spent", axes=[("user", StoredChoiceAxis(max_choices=2))], multiplier=100)
    for user, value in [("ann", 1.5), ("bob", 2), ("cid", 3), ("dan", 4.25), ("ann", 0.5)]:
        metrica.kick(user=user, value=value)
    assert as_dict(metrica.iterate("user")) == {"ann": 2.0, "bob": 2.0, OTHER: 7.25}
    assert as_dict(metrica.iterate_counts("user")) == {"ann": 2, "bob": 1, OTHER: 2}
    assert as_dict(metrica.iterate_averages("user")) == {"ann": 1.0, "bob": 2.0, OTHER: 3.625}


def test_several_capped_axes_overflow_independently(staste_redis, prefix) -> None:
    metrica = Metrica(name="two", axes=[("x", StoredChoiceAxis(max_choices=1)), ("y", StoredChoiceAxis(max_choices=2))])
    for x, y in [("a", "p"), ("b", "q"), ("a", "r"), ("c", "s"), ("a", "p")]:
        metrica.kick(x=x, y=y)
    assert as_dict(metrica.iterate("x")) == {"a": 3, OTHER: 2}
    assert as_dict(metrica.iterate("y")) == {"p": 2, "q": 1, OTHER: 2}
    assert as_dict(metrica.filter(x="a").iterate("y")) == {"p": 2, "q": 0, OTHER: 1}
    assert int(staste_redis.hget(f"{prefix}:{{two}}:all", "!|!")) == 1  # ("c", "s")
    assert int(staste_redis.hget(f"{prefix}:{{two}}:all", "!|=q")) == 1  # ("b", "q")


@pytest.fixture
def pages() -> Metrica:
    return Metrica(name="pages", axes=[("path", HierarchicalAxis(max_choices=4))])


def test_hierarchical_axes_store_each_node_once_up_to_the_cap(pages, staste_redis, prefix) -> None:
    pages.kick(path=("out", "se", "google"))  # stores =out, =out/se, =out/se/google
    pages.kick(path=("out", "se", "bing"))  # stores =out/se/bing: the cap (4) is reached
    pages.kick(path=("out", "se", "yandex"))  # its leaf overflows under out/se
    pages.kick(path=("out", "news"))  # overflows under out
    pages.kick(path=("in",))  # overflows at the top
    pages.kick(path=("in", "deep"))  # overflows at the top; nothing deeper is counted
    assert stored(staste_redis, prefix, "pages", "path") == {"=out", "=out/se", "=out/se/google", "=out/se/bing"}
    assert pages.total() == 6
    top = pages.iterate("path")
    assert top == [(("out",), 4), (OTHER, 2)]
    assert sum(total for _, total in top) == pages.total()
    out = pages.filter(path=("out",)).iterate("path")
    assert out == [(("out", "se"), 3), (OTHER, 1)]
    assert sum(total for _, total in out) == pages.filter(path=("out",)).total()
    se = pages.filter(path=("out", "se")).iterate("path")
    assert se == [(("out", "se", "bing"), 1), (("out", "se", "google"), 1), (OTHER, 1)]
    assert sum(total for _, total in se) == pages.filter(path=("out", "se")).total() == 3
    assert pages.filter(path=("out", "se", "google")).iterate("path") == []
    assert pages.filter(path=("in",)).total() == 0
    # Each level's overflow has a part of its own, so no level double counts.
    counters = staste_redis.hgetall(f"{prefix}:{{pages}}:all")
    assert counters[keys.overflow_part(keys.ALL).encode()] == b"2"
    assert counters[keys.overflow_part("=out").encode()] == b"1"
    assert counters[keys.overflow_part("=out/se").encode()] == b"1"
    assert set(counters) == {b"*", b"=out", b"=out/se", b"=out/se/google", b"=out/se/bing", b"!", b"!out", b"!out/se"}


def test_hierarchical_overflow_parts_cannot_clash_with_values(staste_redis, prefix) -> None:
    metrica = Metrica(name="clash", axes=[("path", HierarchicalAxis(max_choices=2))])
    metrica.kick(path=("!", "x"))  # a real value spelled like the overflow part; the cap is reached
    metrica.kick(path=("!", "y"))  # its leaf overflows under ('!',)
    metrica.kick(path=("z",))  # overflows at the top
    assert metrica.iterate("path") == [(("!",), 2), (OTHER, 1)]
    assert metrica.filter(path=("!",)).iterate("path") == [(("!", "x"), 1), (OTHER, 1)]
    assert metrica.filter(path=("!", "x")).total() == 1


def test_concurrent_writers_never_store_more_than_the_cap(staste_redis, prefix) -> None:
    metrica = Metrica(name="racing", axes=[("v", StoredChoiceAxis(max_choices=10))])
    metrica.kick(v="seed")
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for n in range(15):
                metrica.kick(v=f"{worker}-{n}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert staste_redis.scard(f"{prefix}:{{racing}}:choices:v") == 10
    rows = as_dict(metrica.iterate("v"))
    assert rows[OTHER] == 4 * 15 + 1 - 10
    assert sum(rows.values()) == metrica.total() == 61


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_max_choices_must_be_a_whole_number(bad) -> None:
    with pytest.raises((ValueError, TypeError), match="max_choices"):
        StoredChoiceAxis(max_choices=bad)


def test_overflow_parts_are_never_value_parts() -> None:
    assert keys.overflow_part(keys.ALL) == keys.OVERFLOW == "!"
    assert keys.overflow_part(keys.path_part(("out", "a/b"))) == "!out/a\\sb"
    assert keys.value_part("!") == "=!"
    assert StoredChoiceAxis().from_part(keys.OVERFLOW) is OTHER
    assert HierarchicalAxis().from_part("!out/se") is OTHER
    assert HierarchicalAxis().from_part("=!/se") == ("!", "se")


def test_the_cap_follows_a_setting_changed_at_run_time(settings) -> None:
    metrica = Metrica(name="live_cap", axes=[("v", StoredChoiceAxis())])
    for value in ["a", "b", "a"]:
        metrica.kick(v=value)  # checked values are remembered per axis...
    settings.STASTE_MAX_CHOICES = 2  # ...and forgotten when a setting changes
    for value in ["a", "c", "b"]:
        metrica.kick(v=value)
    assert as_dict(metrica.iterate("v")) == {"a": 3, "b": 2, OTHER: 1}
    settings.STASTE_MAX_VALUE_LENGTH = 1
    with pytest.raises(ValueError, match="at most 1"):
        metrica.kick(v="aa")


# -- the overflow in the admin -------------------------------------------------------------------


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_user("boss", password=None, is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def registered():
    from staste.registration import registry

    added: list[Metrica] = []

    def adding(metrica: Metrica) -> Metrica:
        registry.register(metrica)
        added.append(metrica)
        return metrica

    yield adding
    for metrica in added:
        registry.unregister(metrica)


def breakdown(admin_client, name: str, **params: str) -> dict[str, object]:
    response = admin_client.get(f"/admin/staste/{name}/data.json", params)
    assert response.status_code == 200, response.content
    rows = response.json()["breakdown"]["rows"]
    found = {label: value for label, value, _share in rows}
    assert len(found) == len(rows), rows
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"_span": "2010-02"}, {"_last": "24 hours"}])
def test_the_admin_shows_the_overflow_as_other(admin_client, registered, params) -> None:
    metrica = registered(Metrica(name="admin_tags", axes=[("tag", StoredChoiceAxis(max_choices=2))]))
    date = FEB if "_span" in params else conf.local()
    for tag in ["a", "b", "c", "d", "a", "(other)"]:
        metrica.kick(tag=tag, date=date)
    assert breakdown(admin_client, "admin_tags", _by="tag", **params) == {"a": 2, "b": 1, "(other)": 3}
    page = admin_client.get("/admin/staste/admin_tags/", {"_by": "tag", **params})
    assert page.status_code == 200
    assert "(other)" in page.content.decode()


@pytest.mark.django_db
def test_the_admin_tells_a_real_other_value_from_the_overflow(admin_client, registered) -> None:
    metrica = registered(Metrica(name="admin_spelled", axes=[("tag", StoredChoiceAxis(max_choices=1))]))
    now = conf.local()
    for tag in ["(other)", "x", "y", "(other)"]:
        metrica.kick(tag=tag, date=now)
    for params in ({"_span": f"{now.year}"}, {"_last": "24 hours"}):
        response = admin_client.get("/admin/staste/admin_spelled/data.json", {"_by": "tag", **params})
        rows = response.json()["breakdown"]["rows"]
        # the value first, then OTHER (each half of the events)
        assert rows == [["(other)", 2, 50.0], ["(other)", 2, 50.0]], (params, rows)


@pytest.mark.django_db
def test_the_admin_drills_down_into_hierarchical_overflow(admin_client, registered) -> None:
    metrica = registered(Metrica(name="admin_pages", axes=[("path", HierarchicalAxis(max_choices=3))]))
    for path in [("out", "se", "google"), ("out", "se", "bing"), ("out", "news"), ("in",)]:
        metrica.kick(path=path, date=FEB)
    assert breakdown(admin_client, "admin_pages", _by="path", _span="2010") == {"out": 3, "(other)": 1}
    below = breakdown(admin_client, "admin_pages", _by="path", _span="2010", path="out")
    assert below == {"out/se": 2, "(other)": 1}
    below = breakdown(admin_client, "admin_pages", _by="path", _span="2010", path=["out", "se"])
    assert below == {"out/se/google": 1, "(other)": 1}


def test_other_equals_only_itself() -> None:
    import operator
    import pickle

    assert OTHER == OTHER and OTHER != "(other)" and operator.ne("(other)", OTHER)
    assert len({OTHER, "(other)"}) == 2 and {OTHER: 1, "(other)": 2}[OTHER] == 1
    assert pickle.loads(pickle.dumps(OTHER)) is OTHER
    assert f"{OTHER}" == str(OTHER) == "(other)" and OTHER.upper() == "(OTHER)"
