"""kick(): what it writes, what it refuses (writing nothing), and what it costs."""

from __future__ import annotations

import datetime
import decimal
import fractions
import math

import pytest

from staste import conf, keys, timescale, writers
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from tests.roundtrips import count_round_trips


@pytest.fixture
def guests() -> Metrica:
    return Metrica(
        name="guests",
        axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis())],
    )


def test_kick_writes_every_combination_at_every_scale(guests, staste_keys, prefix) -> None:
    guests.kick(gender="girl", age=18, date=datetime.datetime(2010, 2, 7, 13, 5))
    written = staste_keys()
    base = f"{prefix}:{{guests}}:"
    buckets = ["all", "2010", "201002", "20100207", "2010020713", "201002071305"]
    for bucket in buckets:
        assert written[base + bucket] == {b"*|*": b"1", b"*|=18": b"1", b"=girl|*": b"1", b"=girl|=18": b"1"}
    assert written[base + "years"] == {b"2010"}
    assert written[base + "choices:age"] == {b"=18"}
    assert written[base + "signature"]  # recorded on first write
    # and the writer's number (staste.numbering): the 10 keys of docs/keys.md's "What it costs"
    writer_key = keys.writer_key(base, writers.current().id)
    assert written[writer_key] == str(writers.current().calls).encode()
    assert sorted(written) == sorted(
        [base + b for b in buckets] + [base + "years", base + "choices:age"] + [base + "signature", writer_key]
    )


def test_one_kick_is_one_round_trip_and_one_command(guests, staste_redis) -> None:
    guests.kick(gender="boy", age=1)  # the first kick of a process also records the signature
    staste_redis.config_resetstat()
    with count_round_trips() as trips:
        guests.kick(gender="girl", age=18)
    assert trips.count == 1
    calls = {name[8:]: v["calls"] for name, v in staste_redis.info("commandstats").items()}
    calls.pop("info", None)
    calls.pop("config|resetstat", None)  # Redis 7
    calls.pop("config", None)  # Redis 6
    # The client sent one EVALSHA; everything else ran inside the script.
    assert calls.pop("evalsha") == 1
    assert calls["hincrby"] == 4 * 6  # (all, girl) x (all, 18) in six buckets
    # GET and SET: the thread's writer number, which makes the kick count once (staste.writers)
    assert calls.pop("get") == calls.pop("set") == 1
    assert set(calls) <= {"hincrby", "sadd", "sismember", "scard", "expire"}, calls


@pytest.mark.parametrize("axes_count", [0, 1, 3, 5])
def test_round_trips_do_not_grow_with_axes(axes_count) -> None:
    metrica = Metrica(name=f"wide{axes_count}", axes=[(f"a{i}", StoredChoiceAxis()) for i in range(axes_count)])
    values = {f"a{i}": str(i) for i in range(axes_count)}
    metrica.kick(**values)
    with count_round_trips() as trips:
        metrica.kick(**values)
    assert trips.count == 1
    assert metrica.total() == 2
    for name, value in values.items():
        assert metrica.filter(**{name: value}).total() == 2


BAD_KICKS = [
    ({"gender": "other"}, ValueError, "gender"),
    ({"colour": "red"}, TypeError, "colour"),
    ({"value": "12"}, ValueError, "number"),
    ({"value": None}, ValueError, "number"),
    ({"value": float("nan")}, ValueError, "finite"),
    ({"value": float("inf")}, ValueError, "finite"),
    ({"value": decimal.Decimal("NaN")}, ValueError, "finite"),
    ({"value": True}, ValueError, "number"),
    ({"value": 1.5}, ValueError, "multiplier"),
    ({"value": 10**30}, ValueError, "too large"),
    ({"value": 1j}, ValueError, "number"),
    ({"age": "x" * 1001}, ValueError, "1000"),
    ({"age": "\ud800"}, ValueError, "Unicode"),
    ({"date": "2010-01-01"}, TypeError, "date"),
]


@pytest.mark.parametrize(("kwargs", "error", "words"), BAD_KICKS)
def test_bad_kicks_raise_clearly_and_write_nothing(guests, staste_keys, kwargs, error, words) -> None:
    with pytest.raises(error, match=words):
        guests.kick(**{"gender": "girl", "age": 3, **kwargs})
    assert staste_keys() == {}


def test_int_axis_rejects_what_it_cannot_read(staste_keys) -> None:
    metrica = Metrica(name="ints", axes=[("n", Axis(value_type=int))])
    with pytest.raises(ValueError, match=r"axis 'n'.*int"):
        metrica.kick(n="twelve")
    assert staste_keys() == {}


def test_hierarchical_axis_rejects_non_paths(staste_keys) -> None:
    metrica = Metrica(name="tree", axes=[("path", HierarchicalAxis(max_depth=2))])
    with pytest.raises(ValueError, match="deeper"):
        metrica.kick(path=("a", "b", "c"))
    with pytest.raises(ValueError, match="not a path"):
        metrica.kick(path=12)
    assert staste_keys() == {}


@pytest.mark.parametrize(
    ("value", "stored"),
    [(1, 100), (12.5, 1250), (0.16, 16), (decimal.Decimal("2.345"), 234), (fractions.Fraction(1, 4), 25), (-3, -300)],
)
def test_multiplier_stores_integers(value, stored, staste_redis, prefix) -> None:
    money = Metrica(name="money", axes=[], multiplier=100)
    money.kick(value=value)
    assert int(staste_redis.hget(f"{prefix}:{{money}}:all", "")) == stored
    assert money.total() == stored / 100


def test_whole_floats_need_no_multiplier() -> None:
    metrica = Metrica(name="plain", axes=[])
    metrica.kick(value=3.0)
    metrica.kick(value=2)
    assert metrica.total() == 5
    assert isinstance(metrica.total(), int)


def test_metrica_definition_errors() -> None:
    with pytest.raises(ValueError, match="name"):
        Metrica(name="bad name", axes=[])
    with pytest.raises(ValueError, match="name"):
        Metrica(name="a{b}", axes=[])
    with pytest.raises(ValueError, match="identifier"):
        Metrica(name="m", axes=[("not valid", Axis())])
    with pytest.raises(ValueError, match="reserved"):
        Metrica(name="m", axes=[("value", Axis())])
    with pytest.raises(TypeError, match="Axis"):
        Metrica(name="m", axes=[("x", "not an axis")])
    with pytest.raises(ValueError, match="multiplier"):
        Metrica(name="m", axes=[], multiplier=0)
    with pytest.raises(ValueError, match="scale"):
        Metrica(name="m", axes=[], date_scales=["week"])
    with pytest.raises(ValueError, match="choice"):
        Axis(choices=[])


def test_date_scales_limit_what_is_written(staste_keys, prefix) -> None:
    metrica = Metrica(name="daily", axes=[], date_scales=["day"])
    assert metrica.date_scales == ("year", "month", "day")
    metrica.kick(date=datetime.datetime(2010, 2, 7, 13, 5))
    buckets = {key.rsplit(":", 1)[1] for key in staste_keys() if ":w:" not in key}  # w: a writer's number
    assert buckets == {"all", "2010", "201002", "20100207", "years", "signature"}
    with pytest.raises(ValueError, match="does not record hours"):
        metrica.timespan(year=2010, month=2, day=7, hour=13)


def test_retention_sets_ttls(staste_redis, prefix, settings) -> None:
    metrica = Metrica(name="live", axes=[])
    metrica.kick()  # now, by staste's clock
    base = f"{prefix}:{{live}}:"
    local = conf.local()
    ttl = {
        scale: staste_redis.ttl(base + local.strftime(fmt))
        for scale, fmt in [
            ("year", "%Y"),
            ("month", "%Y%m"),
            ("day", "%Y%m%d"),
            ("hour", "%Y%m%d%H"),
            ("minute", "%Y%m%d%H%M"),
        ]
    }
    assert staste_redis.ttl(base + "all") == -1
    assert ttl["year"] == -1
    day = 86400
    # retention after the bucket's end: at most one bucket length more than the retention
    assert day < ttl["minute"] <= day + 61
    assert 185 * day < ttl["day"] <= 186 * day + 1
    assert 3 * 366 * day < ttl["month"] <= 3 * 366 * day + 31 * day + 1
    # An hour bucket is a local hour: the 02:xx of the night clocks go back holds two real
    # hours, so its end may be up to two hours away.
    hour_end = timescale.end(timescale.truncate(local, "hour")).replace(tzinfo=conf.time_zone()).timestamp()
    assert 0 < hour_end - timescale.now() <= 2 * 3600
    assert 14 * day + hour_end - timescale.now() - 2 <= ttl["hour"] <= 14 * day + hour_end - timescale.now() + 1


def test_backfilled_buckets_are_kept_a_full_retention(staste_redis, prefix, settings) -> None:
    settings.STASTE_RETENTION = {"minute": 60, "day": datetime.timedelta(days=2), "month": None}
    metrica = Metrica(name="old", axes=[])
    metrica.kick(date=datetime.datetime(2010, 2, 7, 13, 5))
    base = f"{prefix}:{{old}}:"
    assert 0 < staste_redis.ttl(base + "201002071305") <= 61
    assert 86400 < staste_redis.ttl(base + "20100207") <= 2 * 86400 + 1
    assert staste_redis.ttl(base + "201002") == -1


def test_aware_dates_are_bucketed_in_the_staste_time_zone(settings) -> None:
    settings.STASTE_TIME_ZONE = "Europe/Moscow"  # UTC+3
    metrica = Metrica(name="tz", axes=[])
    metrica.kick(date=datetime.datetime(2010, 12, 31, 22, 30, tzinfo=datetime.UTC))  # 01:30 on Jan 1st
    metrica.kick(date=datetime.datetime(2010, 12, 31, 22, 30))  # naive: already Moscow time
    assert metrica.timespan(year=2011).total() == 1
    assert metrica.timespan(year=2011, month=1, day=1, hour=1).iterate()[30] == (30, 1)
    assert metrica.timespan(year=2010, month=12, day=31).iterate()[22] == (22, 1)


def test_time_zone_from_time_zone_setting(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    metrica = Metrica(name="ny", axes=[])
    metrica.kick(date=datetime.datetime(2011, 1, 1, 3, 0, tzinfo=datetime.UTC))  # 22:00 Dec 31st in New York
    assert metrica.timespan(year=2010).total() == 1


def test_dates_as_dates() -> None:
    metrica = Metrica(name="dates", axes=[])
    metrica.kick(date=datetime.date(2012, 2, 29))
    assert metrica.timespan(year=2012, month=2, day=29).total() == 1


def test_special_values_are_values_of_their_own(staste_keys) -> None:
    metrica = Metrica(name="special", axes=[("x", StoredChoiceAxis()), ("y", StoredChoiceAxis())])
    specials = ["", "*", "__all__", "a|b", "a/b", "a:b", "line\nbreak", "\\", "\\p", "=", "!", "#", "мир", "🙂"]
    for value in specials:
        metrica.kick(x=value, y=value)
    assert metrica.total() == len(specials)
    assert [label for label, _ in metrica.iterate("x")] == sorted(specials)
    for value in specials:
        assert metrica.filter(x=value).total() == 1
        assert metrica.filter(x=value, y=value).total() == 1
    assert metrica.filter(x="", y="*").total() == 0


def test_averaged_counts_and_sums() -> None:
    metrica = AveragedMetrica(name="avg", axes=[("k", Axis(choices=["a", "b"]))], multiplier=10)
    metrica.kick(value=1.5, k="a")
    metrica.kick(value=2.5, k="a")
    metrica.kick(value=-1, k="b")
    assert metrica.count() == 3
    assert metrica.total() == 3.0
    assert metrica.average() == 1.0
    assert metrica.filter(k="a").average() == 2.0
    assert math.isclose(metrica.filter(k="b").average(), -1)


def test_every_key_of_a_metrica_shares_its_hash_tag(guests, staste_keys) -> None:
    guests.kick(gender="girl", age=18)
    tags = {key.split("{", 1)[1].split("}", 1)[0] for key in staste_keys()}
    assert tags == {"guests"}


def test_keys_module_escaping_round_trips() -> None:
    for value in ["", "|", "/", "\\", "\\p", "a|b/c\\d"]:
        assert keys.decode_part(keys.value_part(value)) == value
        assert keys.PART_SEPARATOR not in keys.value_part(value)
        assert keys.PATH_SEPARATOR not in keys.value_part(value)
