"""``Metrica(combinations=...)`` and ``uniques_axes=``: which sets of axes get counters (and
HyperLogLogs), on every path that writes, and what a question outside them is told.

The property test against a Python model is in tests/test_combinations_model.py."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from staste import buffer, checks, keys
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.combinations import Combinations
from staste.exceptions import CombinationNotKept
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry
from tests import keydump
from tests.test_commands import fails, run, table

pytestmark = pytest.mark.usefixtures("quiet_buffer")


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Metricas registered by a test are taken away after it."""
    saved = registry.save()
    yield
    registry.restore(saved)


D = datetime.datetime(2024, 3, 5, 10, 30)
SEVEN = ("view", "method", "status", "country", "device", "plan", "release")


def seven(name: str = "wide", **options) -> Metrica:
    return Metrica(name=name, axes=[(axis, StoredChoiceAxis()) for axis in SEVEN], **options)


def fixed_axes(metrica: Metrica, field: str) -> tuple[str, ...]:
    parts = field.split(keys.PART_SEPARATOR)
    return tuple(name for name, part in zip(metrica.axes, parts, strict=True) if part != keys.ALL)


def counter_fields(dump: dict[str, object], metrica: Metrica) -> dict[str, set[str]]:
    """{bucket key: its field names} of the metrica's counter hashes."""
    return {
        key: {field.decode() for field in content}  # type: ignore[union-attr]
        for key, content in dump.items()
        if isinstance(content, dict) and key.startswith(metrica.base) and ":w:" not in key
    }


# -- the setting ----------------------------------------------------------------------------


def test_k_keeps_every_set_of_at_most_k_axes() -> None:
    kept = Combinations(SEVEN, 2, "combinations")
    assert len(kept.masks) == 1 + 7 + 21 == 29
    assert kept.masks[0] == 0  # the totals first: kick.lua writes the every-value field first
    assert kept.keeps(()) and kept.keeps(("plan",)) and kept.keeps(("view", "release"))
    assert not kept.keeps(("view", "method", "status"))
    assert kept.count([1] * 7) == 29 and Combinations(SEVEN, None, "combinations").count([1] * 7) == 128
    assert kept.describe() == "combinations=2" and kept.widened(("view", "method", "status")) == "combinations=3"


def test_a_list_keeps_its_sets_and_every_set_they_contain() -> None:
    kept = Combinations(("view", "status", "country"), [("view", "status"), ("country",)], "combinations")
    assert {kept.label(mask) for mask in kept.masks} == {
        "()",
        "('view',)",
        "('status',)",
        "('view', 'status')",
        "('country',)",
    }
    assert not kept.keeps(("view", "country"))
    assert kept.describe() == "combinations=[('view', 'status'), ('country',)]"
    assert kept.widened(("view", "country")) == "combinations=[('view', 'status'), ('view', 'country')]"


def test_settings_that_keep_everything_are_none_and_equivalent_ones_sign_alike() -> None:
    assert Combinations(SEVEN, 7, "combinations").everything
    assert Combinations(("a", "b"), [("a", "b")], "combinations").everything
    axes = ("a", "b", "c")
    assert (
        Combinations(axes, 2, "combinations").signature()
        == Combinations(axes, [("a", "b"), ("a", "c"), ("b", "c")], "combinations").signature()
        == "a+b,a+c,b+c"
    )


@pytest.mark.parametrize(
    ("setting", "error", "match"),
    [
        (0, ValueError, "at least single axes"),
        (-1, ValueError, "at least single axes"),
        (True, TypeError, "whole number"),
        ("2", TypeError, "whole number"),
        ([("view",)], ValueError, "'method', 'status' .* in no kept combination"),
        ([("view", "nope")], ValueError, "'nope' is not an axis"),
        (["view", ("method", "status")], TypeError, r"write \('view',\) for one axis"),
    ],
)
def test_bad_settings_are_refused(setting, error, match) -> None:
    with pytest.raises(error, match=match):
        Metrica(name="m", axes=[(axis, Axis()) for axis in ("view", "method", "status")], combinations=setting)


def test_uniques_axes_needs_uniques_and_stays_within_the_counters() -> None:
    axes = [(axis, Axis()) for axis in ("a", "b", "c")]
    with pytest.raises(TypeError, match="needs uniques=True"):
        Metrica(name="m", axes=axes, uniques_axes=2)
    with pytest.raises(ValueError, match=r"keeps \('a', 'b'\), which combinations does not keep"):
        Metrica(name="m", axes=axes, uniques=True, combinations=[("a",), ("b",), ("c",)], uniques_axes=2)
    default = Metrica(name="m", axes=axes, uniques=True)
    assert default.uniques_axes.keeps(("a",)) and not default.uniques_axes.keeps(("a", "b"))


def test_the_signature_records_combinations_and_unchanged_metricas_keep_theirs() -> None:
    axes = [("a", Axis()), ("b", Axis()), ("c", Axis())]
    plain = Metrica(name="m", axes=axes)
    assert "combinations" not in plain.signature()  # data written before this setting existed
    assert Metrica(name="m", axes=axes, combinations=3).signature() == plain.signature()
    assert Metrica(name="m", axes=axes, combinations=2).signature() == plain.signature() + "|combinations=a+b,a+c,b+c"
    assert "uniques_axes" not in Metrica(name="m", axes=axes, uniques=True).signature()
    assert Metrica(name="m", axes=axes, uniques=True, uniques_axes=2).signature().endswith("|uniques_axes=a+b,a+c,b+c")


# -- what is written ---------------------------------------------------------------------------


def kick_both_ways(metrica: Metrica, buffered: bool, **values) -> None:
    metrica.kick(date=D, buffered=buffered, **values)
    if buffered:
        buffer.flush()


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_a_seven_axis_kick_at_k2_writes_29_fields_a_bucket(buffered, staste_keys) -> None:
    metrica = seven(combinations=2)
    kick_both_ways(metrica, buffered, **{axis: f"{axis}-1" for axis in SEVEN})
    found = counter_fields(staste_keys(), metrica)
    assert len(found) == 6  # all time, year, month, day, hour, minute
    for fields in found.values():
        assert len(fields) == 29
        assert all(len(fixed_axes(metrica, field)) <= 2 for field in fields)


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_a_hierarchical_axis_is_one_axis_and_its_levels_all_count(buffered, staste_keys) -> None:
    metrica = Metrica(
        name="paths",
        axes=[("source", HierarchicalAxis()), ("page", StoredChoiceAxis()), ("status", Axis(choices=[200, 404]))],
        combinations=1,
    )
    kick_both_ways(metrica, buffered, source=("out", "se", "google"), page="home", status=200)
    fields = next(iter(counter_fields(staste_keys(), metrica).values()))
    assert fields == {"*|*|*", "=out|*|*", "=out/se|*|*", "=out/se/google|*|*", "*|=home|*", "*|*|=200"}


@pytest.mark.parametrize("buffered", [False, True], ids=["sync", "buffered"])
def test_averaged_histogram_and_uniques_follow_their_settings(buffered, staste_keys) -> None:
    metrica = AveragedMetrica(
        name="rt",
        axes=[("view", StoredChoiceAxis()), ("method", Axis(choices=["GET", "POST"])), ("status", StoredChoiceAxis())],
        combinations=2,
        histogram=True,
        uniques=True,
        uniques_scales=[],
    )
    kick_both_ways(metrica, buffered, value=12, view="v", method="GET", status="2xx", unique="u1")
    dump = staste_keys()
    fields = counter_fields(dump, metrica)
    counts = dump[metrica.base + "all"]
    assert {name.decode() for name in counts} == {  # type: ignore[union-attr]
        prefix + field
        for prefix in ("", "#")
        for field in ("*|*|*", "=v|*|*", "*|=GET|*", "*|*|=2xx", "=v|=GET|*", "=v|*|=2xx", "*|=GET|=2xx")
    }
    histogram_fields = {field.lstrip("~0123456789") for field in fields[metrica.base + "h:all"]}
    assert histogram_fields == {field.lstrip("#") for field in fields[metrica.base + "all"]}
    hyperloglogs = sorted(key.removeprefix(metrica.base + "u:all:") for key in dump if ":u:" in key)
    assert hyperloglogs == ["*|*|*", "*|*|=2xx", "*|=GET|*", "=v|*|*"]  # uniques_axes: totals and single axes


def test_sync_and_buffered_write_the_same_keys(staste_keys, staste_redis) -> None:
    values = [
        {"view": "a", "method": "GET", "status": "2xx", "country": "fr"},
        {"view": "b", "method": "POST", "country": "de"},
        {"view": "a", "device": "phone", "plan": "pro", "release": "1.2"},
    ]
    for buffered in (False, True):
        kept = [("view", "method", "status"), ("country", "device"), ("plan", "release")]
        metrica = seven(f"same_{int(buffered)}", combinations=kept)
        for given in values:
            metrica.kick(date=D, buffered=buffered, unique=None, **given)
        buffer.flush()
    dump = staste_keys()
    written = [
        {key.split("}", 1)[1]: content for key, content in dump.items() if f"same_{flag}" in key and ":w:" not in key}
        for flag in (0, 1)
    ]
    assert written[0] == written[1]


# -- questions outside the kept combinations ------------------------------------------------


def test_an_unkept_question_is_refused_before_anything_is_read(staste_redis) -> None:
    metrica = seven(combinations=2)
    metrica.kick(date=D, view="home", method="GET", status="200")
    calls_before = staste_redis.info("commandstats")
    with pytest.raises(CombinationNotKept) as refused:
        metrica.filter(view="home", method="GET").iterate("status")
    message = str(refused.value)
    assert "wide" in message and "view x method x status" in message
    assert "combinations=2" in message and "combinations=3 would keep them" in message
    assert refused.value.axes == ("view", "method", "status")
    with pytest.raises(CombinationNotKept):
        metrica.filter(view="home", method="GET", status="200").total()
    with pytest.raises(CombinationNotKept):
        metrica.filter(view="home", method="GET").top("country")
    assert staste_redis.info("commandstats").get("cmdstat_hmget") == calls_before.get("cmdstat_hmget")
    # What is kept answers.
    assert metrica.filter(view="home").iterate("method") == [("GET", 1)]
    assert metrica.filter(view="home", method="GET").total() == 1


def test_unique_counts_follow_uniques_axes() -> None:
    metrica = Metrica(
        name="visits", axes=[("gender", Axis(choices=["boy", "girl"])), ("page", StoredChoiceAxis())], uniques=True
    )
    metrica.kick(gender="girl", page="home", unique="ann")
    assert metrica.iterate_uniques("page") == [("home", 1)]
    assert metrica.filter(gender="girl").iterate("page") == [("home", 1)]  # counters: every pair
    with pytest.raises(CombinationNotKept, match=r"no unique counts by gender x page .*uniques_axes=2 would keep"):
        metrica.filter(gender="girl").iterate_uniques("page")
    with pytest.raises(CombinationNotKept):
        metrica.filter(gender="girl", page="home").uniques()


def test_the_combinations_check_counts_only_kept_fields() -> None:
    axes = [(axis, Axis(choices=[str(i) for i in range(9)])) for axis in SEVEN]  # 10 values with "all"
    unpruned = Metrica(name="unpruned", axes=axes)
    pruned = Metrica(name="pruned", axes=axes, combinations=2)
    assert checks.combinations(unpruned) == 10**7
    assert checks.combinations(pruned) == 1 + 7 * 9 + 21 * 81


def test_the_combinations_check_warns_about_hyperloglogs_with_their_memory(clean_registry, settings) -> None:
    """Issue 20 item 5: 3 axes of 20 values with uniques passed `check` silently at 9,261 HyperLogLogs."""
    axes = [(axis, Axis(choices=[f"{axis}{i}" for i in range(20)])) for axis in ("a", "b", "c")]
    registry.register(Metrica(name="hll_default", axes=axes, uniques=True))  # totals and single axes: 61
    assert checks.hyperloglogs(registry.get("hll_default")) == 1 + 3 * 20
    assert checks.check_combinations() == []
    every = registry.register(Metrica(name="hll_every", axes=axes, uniques=True, uniques_axes=3))
    found = checks.check_combinations()
    assert [message.id for message in found] == ["staste.W005"] and found[0].obj is every
    assert checks.hyperloglogs(every) == 21**3 == 9261
    buckets = 1 + 1 + 36 + 185  # all time, a year, 3 years of months, 185 days (the default retention)
    assert checks.uniques_buckets(every) == buckets
    assert "9,261 HyperLogLogs a bucket" in found[0].msg
    assert "up to 108.7 MiB a bucket once dense" in found[0].msg  # 12,304 bytes each
    assert f"over the {buckets} buckets" in found[0].msg and "uniques_axes=1" in found[0].hint
    settings.STASTE_UNIQUES_WARNING = 9261
    assert checks.check_combinations() == []


def test_the_field_check_counts_kept_fields_and_names_the_setting(clean_registry) -> None:
    axes = [(f"a{i}", StoredChoiceAxis(max_choices=50)) for i in range(5)]
    registry.register(Metrica(name="check_pruned", axes=axes, combinations=2))  # 1 + 5*51 + 10*51² = 26,266
    assert checks.combinations(registry.get("check_pruned")) == 1 + 5 * 51 + 10 * 51**2
    assert checks.check_combinations() == []
    wide = registry.register(Metrica(name="check_wide", axes=axes, combinations=4))
    found = checks.check_combinations()
    assert [message.obj for message in found] == [wide]
    assert "its kept combinations (it keeps combinations=4) allow" in found[0].msg
    assert "Metrica(combinations=2)" in found[0].hint


def test_list_shows_the_kept_fields_per_bucket(clean_registry) -> None:
    metrica = registry.register(seven("list_pruned", combinations=1))
    metrica.kick(date=D, **{axis: "x" for axis in SEVEN})
    out, _ = run("list")
    assert f"{1 + 7 * 1001:,}" in table(out)["list_pruned"][2]  # 1,000 stored values and (other) per axis


def test_export_refuses_an_unkept_breakdown_and_reads_a_kept_one(clean_registry) -> None:
    metrica = registry.register(seven("export_pruned", combinations=1))
    metrica.kick(date=D, view="home", method="GET")
    message = fails("export", "export_pruned", "--filter", "view=home", "--by", "method", "--since", "2024-03-05")
    assert "export_pruned keeps no counters by view x method together (combinations=1)" in message
    out, _ = run("export", "export_pruned", "--by", "method", "--since", "2024-03-05", "--until", "2024-03-05")
    assert "GET" in out


def test_rename_and_check_treat_a_changed_setting_as_changed_axes(clean_registry, staste_redis, prefix) -> None:
    seven("moved", combinations=2).kick(date=D, view="home")
    seven("target", combinations=3).kick(date=D, view="home")
    before = keydump.dump(staste_redis, prefix)
    assert "merging would mix counters" in fails("rename", "moved", "target", "--merge")
    assert keydump.dump(staste_redis, prefix) == before
    changed = registry.register(seven("moved", combinations=3))
    errors = checks.signature_problems([changed], [staste_redis.get(changed.base + "signature").decode()])
    assert [error.id for error in errors] == ["staste.E002"] and "combinations=" in errors[0].msg
    run("purge", "moved", "--yes")
    assert not list(staste_redis.scan_iter(match=changed.base + "*"))
