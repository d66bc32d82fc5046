"""Hostile input: hypothesis throws garbage at kicks and queries.

Every call either works or raises a clear ValueError or TypeError (never a Redis error, an
OverflowError or anything else), a refused kick writes nothing, an accepted kick adds exactly
its value, queries never write, and every key staste writes is one of the spellings of
staste.keys (no user-chosen key).
"""

from __future__ import annotations

import csv
import datetime
import decimal
import fractions
import io
import json
import zoneinfo
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import redis
import redis.cluster
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from staste import keys, timescale
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.testing import RedisCluster, RedisServer
from tests import keydump

D = datetime.datetime
MEGABYTE = "x" * 1_000_000
AXES = ("colour", "age", "tag", "path")

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fuzzed() -> AveragedMetrica:
    return AveragedMetrica(
        name="fuzzed",
        axes=[
            ("colour", Axis(choices=["red", "blue"])),
            ("age", Axis(value_type=int)),
            ("tag", StoredChoiceAxis(max_length=50, max_choices=20)),
            ("path", HierarchicalAxis(max_depth=3)),
        ],
        multiplier=100,
    )


control_text = st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp", "L", "N", "P", "S"]))
nasty_text = st.one_of(
    control_text,
    st.sampled_from(["", "*", "|", "/", "\\", "=", "!", "#", "~", "{x}", "}{", "\\p", "a|b/c", "<script>", "=1+1"]),
    st.just(MEGABYTE),
    st.text(max_size=5).map(lambda text: text + "\ud800"),  # not encodable: lone surrogate
)
numbers = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.complex_numbers(max_magnitude=10),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63), 10**400, 1e308, 5e-324, decimal.Decimal("sNaN")]),
)
garbage = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    nasty_text,
    st.binary(max_size=20),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=5),
    st.tuples(nasty_text),
    st.tuples(st.text(max_size=5), st.text(max_size=5), st.text(max_size=5), st.text(max_size=5)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
)
zones = st.sampled_from([zoneinfo.ZoneInfo(name) for name in ("UTC", "Pacific/Kiritimati", "America/Los_Angeles")])
dates = st.one_of(
    st.none(),
    st.datetimes(),
    st.datetimes(timezones=zones),
    st.dates(),
    st.sampled_from([D(9999, 12, 31, 23, 59), D(1, 1, 1), D(9999, 12, 31, 23, 59, tzinfo=datetime.UTC)]),
    st.times(),
    garbage,
)
short_text = st.one_of(
    control_text.map(lambda text: text[:50]),
    st.sampled_from(["", "*", "|", "/", "\\", "=", "!", "#", "~", "{x}", "\\p", "a|b/c", "<script>", "=1+1"]),
)
plausible = {
    "colour": st.sampled_from(["red", "blue"]),
    "age": st.one_of(st.integers(-(10**6), 10**6), st.integers(0, 200).map(str)),
    "tag": short_text,
    "path": st.lists(short_text, min_size=1, max_size=3).map(tuple),
}
axis_values = st.one_of(
    st.fixed_dictionaries({}, optional=plausible),
    st.fixed_dictionaries({}, optional={name: st.one_of(plausible[name], garbage) for name in AXES}),
    st.dictionaries(
        st.one_of(st.sampled_from(AXES), st.text(max_size=8).filter(lambda name: name != "buffered")),
        garbage,
        max_size=5,
    ),
)


@pytest.fixture(scope="module")
def redis_server(redis_server: RedisServer | RedisCluster):
    """A server of this module's own (a cluster stays the session's): each example proves that
    nothing was written by dumping its prefix, a SCAN of the whole keyspace, which on the
    session's server holds every key of the modules run before this one."""
    if isinstance(redis_server, RedisCluster):
        yield redis_server
        return
    with RedisServer() as server:
        yield server


def snapshot(client, prefix: str) -> dict[str, Any]:
    """Every key of this test with its content and whether it expires."""
    return keydump.dump(client, prefix, ttl=True)


def allowed_keys(prefix: str, metrica: AveragedMetrica, written: set[str]) -> bool:
    """Whether every key is a spelling staste.keys makes for this metrica."""
    base = keys.metrica_base(prefix, metrica.name)
    fixed = {keys.years_key(base), keys.signature_key(base)} | {keys.choices_key(base, name) for name in AXES}
    for key in written:
        if key in fixed or key.startswith(keys.writer_key(base, "")):  # a writer's last call number
            continue
        bucket = key.removeprefix(base)
        if bucket == key or (bucket != keys.ALL_TIME and not (bucket.isdigit() and len(bucket) in (4, 6, 8, 10, 12))):
            return False
    return True


@FUZZ
@given(
    value=st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6), numbers, garbage),
    date=st.one_of(st.none(), st.datetimes(), dates),
    axes=axis_values,
)
@example(value=1, date=D(9999, 12, 31, 23, 59), axes={})
@example(value=1, date=D(9999, 12, 31, 23, 59, tzinfo=zoneinfo.ZoneInfo("America/Los_Angeles")), axes={})
@example(value=2**63, date=None, axes={})
@example(value=1, date=None, axes={"tag": MEGABYTE})
@example(value=1, date=None, axes={"path": ("a", "b", "c", "d")})
@example(value=1, date=None, axes={"nope": 1})
@example(value=1, date=None, axes={"age": decimal.Decimal("Infinity")})
@example(value=1, date=None, axes={"age": float("-inf")})
@example(value=1, date=None, axes={"colour": "\x00red"})
@example(value=1, date=None, axes={"tag": "=1+1|\\s/\x1b[31m", "path": ("{a}", "|", "\n")})
def test_a_kick_works_or_refuses_cleanly_and_writes_nothing(staste_redis, prefix, value, date, axes) -> None:
    metrica = fuzzed()
    before = snapshot(staste_redis, prefix)
    count_before, total_before = metrica.count(), metrica.total()
    try:
        metrica.kick(value, date, **axes)
    except (ValueError, TypeError) as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc), "the error says what is wrong"
        assert snapshot(staste_redis, prefix) == before
        return
    event("accepted")
    assert metrica.count() == count_before + 1
    assert metrica.total() * 100 == pytest.approx(total_before * 100 + metrica.scaled(value), abs=0.5)
    written = set(snapshot(staste_redis, prefix))
    assert allowed_keys(prefix, metrica, written), sorted(written)


@FUZZ
@given(
    kicks=st.lists(
        st.tuples(
            st.one_of(st.integers(-1000, 1000), st.decimals(-1000, 1000, places=2), st.floats(-1e6, 1e6)),
            st.one_of(st.none(), st.datetimes(), st.datetimes(timezones=zones)),
            st.fixed_dictionaries({}, optional=plausible),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_odd_but_valid_kicks_count_exactly_under_escaped_keys(staste_redis, prefix, kicks) -> None:
    """Control characters, separators, markup and spreadsheet formulas are just values."""
    metrica = fuzzed()
    start_count, start_total = metrica.count(), metrica.total()
    added = 0
    for value, date, axes in kicks:
        metrica.kick(value, date, **axes)
        added += metrica.scaled(value)
    assert metrica.count() == start_count + len(kicks)
    assert round(metrica.total() * 100) == round(start_total * 100) + added
    for name, _ in kicks[-1][2].items():
        assert sum(count for _, count in metrica.iterate_counts(name)) >= 1
    written = {key.decode() for key in staste_redis.scan_iter(match=f"{prefix}:*", count=1000)}
    assert allowed_keys(prefix, metrica, written), sorted(written)


@FUZZ
@given(
    span=st.fixed_dictionaries(
        {},
        optional={scale: st.one_of(st.integers(-5, 10_000), garbage) for scale in timescale.SCALES},
    ),
    filters=axis_values,
    axis=st.one_of(st.none(), st.sampled_from(AXES), garbage),
)
@example(span={"year": 9999, "month": 12, "day": 31, "hour": 23}, filters={}, axis=None)
@example(span={"year": 10**30}, filters={}, axis=None)
@example(span={"month": 2}, filters={}, axis=None)
@example(span={}, filters={"tag": MEGABYTE}, axis="tag")
@example(span={}, filters={"path": ("a", "b")}, axis="path")
@example(span={}, filters={}, axis=["path"])
def test_a_query_works_or_refuses_cleanly_and_writes_nothing(staste_redis, prefix, span, filters, axis) -> None:
    metrica = fuzzed()
    metrica.kick(3, D(2010, 2, 7, 13, 5), colour="red", age=18, tag="a", path=("x", "y"))
    before = snapshot(staste_redis, prefix)
    calls = [
        lambda: metrica.timespan(**span).total(),
        lambda: metrica.timespan(**span).filter(**filters).count(),
        lambda: metrica.filter(**filters).timespan(**span).average(),
        lambda: metrica.timespan(**span).filter(**filters).iterate(axis),
        lambda: metrica.filter(**filters).iterate_averages(axis),
    ]
    for call in calls:
        try:
            call()
        except (ValueError, TypeError) as exc:
            assert str(exc)
    assert snapshot(staste_redis, prefix) == before


@FUZZ
@given(since=dates, until=dates, scale=st.one_of(st.none(), st.sampled_from([*timescale.SCALES, "week"]), garbage))
@example(since=D(9999, 12, 31, 23), until=D(9999, 12, 31, 23, 59), scale="minute")
@example(since=D(9999, 12, 31), until=None, scale="day")
@example(since=D(1, 1, 1), until=D(9999, 12, 31), scale="minute")
@example(since=D(2010, 1, 2), until=D(2010, 1, 1), scale="day")
@example(since="2010-01-01", until=None, scale="day")
def test_a_time_series_works_or_refuses_cleanly(staste_redis, prefix, since, until, scale) -> None:
    metrica = fuzzed()
    metrica.kick(3, D(2010, 2, 7, 13, 5), colour="red")
    before = snapshot(staste_redis, prefix)
    for call in (metrica.timeserie, metrica.timeserie_counts_and_averages):
        try:
            rows = call(since, until, scale)
        except (ValueError, TypeError) as exc:
            assert str(exc)
        else:
            assert [moment for moment, *_ in rows] == sorted({moment for moment, *_ in rows})
    assert snapshot(staste_redis, prefix) == before


@pytest.mark.parametrize("value", ["x" * 1001, MEGABYTE])
def test_long_values_are_refused_with_their_length(value) -> None:
    with pytest.raises(ValueError, match=f"{len(value)} characters long"):
        fuzzed().kick(tag=None, age=None, path=(value,))


def test_a_huge_value_is_refused_before_reaching_redis(staste_redis, prefix) -> None:
    for value in (2**63, 10**400, 1e300, decimal.Decimal("1e30"), fractions.Fraction(2**70, 3)):
        with pytest.raises(ValueError, match=r"too large|finite"):
            fuzzed().kick(value)
    assert snapshot(staste_redis, prefix) == {}


# -- the admin's query strings ---------------------------------------------------------------------

HOSTILE_VALUE = "<script>alert('x')</script>"
control_values = st.sampled_from(
    [
        "all", "2024", "2024-13", "2024-02-30", "2024-03-10T14:05", "9999-12-31T23:59", "0000", "10000",
        "30 days", "1 minute", "0 hours", "-1 days", "99999999999999999999 days", "1e9 days", "2 weeks",
        "3 years", "total", "count", "average", "bogus", "colour", "tag", "path", "age", str(10**30),
        "", " ", "%", "\x00", "\u202e", "=1+1", HOSTILE_VALUE, "x" * 5000,
    ]
)  # fmt: skip
query_pairs = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from([*AXES, "_last", "_span", "_by", "_measure", "_table", "page", "o", "q"]),
            st.sampled_from([*AXES, "_last", "_span", "_by", "_measure", "_table"]),
            st.text(max_size=10),
        ),
        st.one_of(control_values, control_text, st.integers().map(str)),
    ),
    max_size=8,
)
raw_queries = st.sampled_from(
    [
        "%ff%fe=1", "_span=%00", "colour=%E2%80%AE", "colour=red&colour=blue&colour=red", "&&&", "=",
        "_by=tag&_by=path", "path=a&path=b&path=c&path=d&path=e", "_last=30+days&_span=2024",
        "tag=" + "y" * 1_000_000, "a=" + "&a=" * 1100, "_by=tag&_span=all&_table=breakdown", "_table=pie",
    ]
)  # fmt: skip


@pytest.fixture
def admin_client(client, django_user_model) -> Any:
    client.force_login(django_user_model.objects.create_superuser("fuzzer", "fuzzer@example.com", None))
    return client


@pytest.fixture
def registered() -> Any:
    from staste.registration import registry

    metrica = fuzzed()
    registry.register(metrica)
    metrica.kick(3, D(2024, 3, 10, 14, 5), colour="red", age=18, tag=HOSTILE_VALUE, path=("a", "=1+1"))
    metrica.kick(2, None, colour="blue", age=7, tag='=HYPERLINK("http://x")', path=("@b",))
    yield metrica
    registry.unregister(metrica)


def check_response(response: Any, url: str) -> None:
    assert 200 <= response.status_code < 500, (url[:300], response.status_code)
    body = response.content.decode("utf-8", "replace")
    path = url.split("?")[0]
    if not path.endswith("data.csv"):  # a CSV attachment (nosniff) holds the text as it is
        assert HOSTILE_VALUE not in body, url[:300]  # escaped in HTML and JSON
    if response.status_code == 200 and path.endswith("data.json"):
        json.loads(body)
    if response.status_code == 200 and path.endswith("data.csv"):
        assert response["Content-Disposition"].startswith("attachment")
        assert response["X-Content-Type-Options"] == "nosniff"
        for row in csv.reader(io.StringIO(body)):
            assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in row), row
            assert not any(cell.startswith("-") and not _number(cell) for cell in row), row


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


plausible_query = st.fixed_dictionaries(
    {},
    optional={
        "colour": st.sampled_from(["red", "blue", ""]),
        "age": st.integers(-5, 200).map(str),
        "tag": short_text,
        "_last": st.sampled_from(["60 minutes", "24 hours", "30 days", "12 months", "2 weeks", "3 years"]),
        "_span": st.sampled_from(["all", "2024", "2024-03", "2024-03-10", "2024-03-10T14", "2024-03-10T14:05"]),
        "_by": st.sampled_from(AXES),
        "_measure": st.sampled_from(["total", "count", "average"]),
    },
)


@FUZZ
@given(
    name=st.one_of(st.just("fuzzed"), st.just("fuzzed"), st.just("fuzzed"), st.text(min_size=1, max_size=20)),
    suffix=st.sampled_from(["", "data.json", "data.csv"]),
    query=st.one_of(plausible_query.map(urlencode), query_pairs.map(urlencode), raw_queries),
)
@example(name="fuzzed", suffix="", query="_by=tag&_span=all")
@example(name="fuzzed", suffix="data.csv", query="_by=tag&_span=all&_table=breakdown")
@example(name="fuzzed", suffix="data.csv", query="_by=path&_span=all&_table=breakdown")
@example(name="fuzzed", suffix="data.json", query="_by=tag&_span=all")
@example(name="..", suffix="", query="")
@example(name="fuzzed", suffix="", query="_span=9999-12-31T23:59")
@example(name="fuzzed", suffix="data.json", query="_last=10000+years")
def test_admin_query_strings_never_break_a_page(
    admin_client, registered, staste_redis, prefix, name, suffix, query
) -> None:
    """Every response is 2xx-4xx (never a 500), user data is escaped, and reading writes nothing."""
    before = snapshot(staste_redis, prefix)
    url = f"/admin/staste/{quote(name, safe='')}/{suffix}?{query}"
    response = admin_client.get(url)
    event(f"{suffix or 'page'} {response.status_code}")
    check_response(response, url)
    assert snapshot(staste_redis, prefix) == before


def test_the_admin_pages_show_hostile_values_escaped(admin_client, registered) -> None:
    body = admin_client.get("/admin/staste/fuzzed/?_by=tag&_span=all").content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body or "\\u003Cscript\\u003E" in body
    exported = admin_client.get("/admin/staste/fuzzed/data.csv?_by=tag&_span=all&_table=breakdown").content.decode()
    assert "'=HYPERLINK" in exported  # a formula is shown as text, not run
    by_path = admin_client.get("/admin/staste/fuzzed/data.csv?_by=path&_span=all&_table=breakdown").content.decode()
    assert "'@b" in by_path


# -- the generic chart views: public pages ----------------------------------------------------------

chart_params = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *AXES,
                "axis",
                "last",
                "scale",
                "measure",
                "limit",
                "format",
                "show_axis",
                "timescale",
                *(f"timespan__{scale}" for scale in timescale.SCALES),
                *timescale.SCALES,
                *(f"filter__{name}" for name in AXES),
            ]
        ),
        st.one_of(control_values, st.integers(-(10**20), 10**20).map(str), st.sampled_from(["json", "html"])),
    ),
    max_size=6,
)


plausible_chart_params = st.lists(
    st.sampled_from(
        [
            ("axis", "tag"),
            ("axis", "colour"),
            ("axis", "path"),
            ("last", "30 days"),
            ("last", "24 hours"),
            ("measure", "count"),
            ("measure", "average"),
            ("limit", "2"),
            ("format", "json"),
            ("colour", "red"),
            ("tag", HOSTILE_VALUE),
            ("timespan__year", "2024"),
            ("timespan__month", "3"),
            ("scale", "day"),
        ]
    ),
    max_size=5,
    unique_by=lambda pair: pair[0],
)


@FUZZ
@given(
    kind=st.sampled_from(["pie", "timeline", "lines", "latest"]),
    params=st.one_of(plausible_chart_params, chart_params),
)
@example(kind="pie", params=[("axis", "tag"), ("last", "30 days")])
@example(kind="lines", params=[("axis", "tag"), ("format", "json")])
@example(kind="pie", params=[("axis", "tag"), ("timespan__year", "2024"), ("format", "json")])
@example(kind="timeline", params=[("timespan__year", "9999"), ("timespan__month", "12")])
@example(kind="latest", params=[("last", "10000 minutes"), ("scale", "minute")])
@pytest.mark.django_db  # a line chart reads its annotations
def test_public_chart_views_answer_garbage_with_a_4xx(registered, rf, staste_redis, prefix, kind, params) -> None:
    from staste.charts.views import LatestCountAndAverageChart, PieChart, TimelineChart, TimeserieChart

    views = {
        "pie": PieChart.as_view(metrica=registered),
        "timeline": TimelineChart.as_view(metrica=registered),
        "lines": TimeserieChart.as_view(metrica=registered),
        "latest": LatestCountAndAverageChart.as_view(metrica=registered),
    }
    before = snapshot(staste_redis, prefix)
    response = views[kind](rf.get("/chart/", params))
    if hasattr(response, "render"):
        response.render()
    event(f"{kind} {response.status_code}")
    assert 200 <= response.status_code < 500, (kind, params, response.status_code)
    assert HOSTILE_VALUE not in response.content.decode("utf-8", "replace")
    assert snapshot(staste_redis, prefix) == before


TOO_MANY_FIELDS = "&".join(["a="] * 1001)  # past DATA_UPLOAD_MAX_NUMBER_FIELDS: Django refuses to parse it


@pytest.mark.parametrize("suffix", ["", "data.json", "data.csv"])
def test_a_query_string_django_cannot_parse_is_a_400_not_a_500(admin_client, registered, suffix) -> None:
    """Django 4.2's error reporting reads request.GET again and turned this into a 500."""
    response = admin_client.get(f"/admin/staste/fuzzed/{suffix}?{TOO_MANY_FIELDS}")
    assert response.status_code == 400
    body = response.content.decode()
    if suffix:
        assert body.startswith("bad query string: ")
    else:  # the page as it opens, the message above its controls
        assert '<li class="error staste-bad-request">bad query string: ' in body and 'id="staste-controls"' in body


@pytest.mark.parametrize("fmt", ["", "&format=json"])
def test_a_chart_view_answers_an_unparsable_query_string_with_a_400(registered, rf, fmt) -> None:
    from staste.charts.views import PieChart

    response = PieChart.as_view(metrica=registered)(rf.get(f"/chart/?{TOO_MANY_FIELDS}{fmt}"))
    if hasattr(response, "render"):
        response.render()
    assert response.status_code == 400 and b"bad query string" in response.content


# -- counters at Redis' 64-bit limit ----------------------------------------------------------------

BIG = 2**63 // 1024 - 1  # the largest value one kick may carry


def counters(client, prefix: str) -> dict[str, Any]:
    """The snapshot as staste reads it: a counter at 0 and an absent one are the same."""
    found = {}
    for key, (content, expires) in snapshot(client, prefix).items():
        if ":w:" in key:  # a writer's last call number (staste.writers), not a counter
            continue
        if isinstance(content, dict):
            content = {name: value for name, value in content.items() if value != b"0"}
        if content:
            found[key] = (content, expires)
    return found


def test_an_overflowing_kick_is_refused_whole_even_after_others_went_in(staste_redis, prefix) -> None:
    """Opposite values keep the every-value counter small while one value's counter climbs: the
    kick that would overflow it is refused after its first counters were bumped, and taken back."""
    signed = Metrica(name="signed", axes=[("side", Axis(choices=["up", "down"])), ("tag", StoredChoiceAxis())])
    for _ in range(1024):
        signed.kick(BIG, D(2024, 1, 1), side="up", tag="u")
        signed.kick(-BIG, D(2024, 1, 1), side="down", tag="d")
    before = counters(staste_redis, prefix)
    assert signed.filter(side="up").total() == 1024 * BIG and signed.total() == 0
    with pytest.raises(ValueError, match="past Redis' limit"):
        signed.kick(BIG, D(2025, 6, 1, 12, 30), side="up", tag="brand new")  # new buckets, year, tag
    assert counters(staste_redis, prefix) == before  # nothing left behind: counters, year, stored tag
    signed.kick(1, D(2024, 1, 1), side="down", tag="d")  # and the metrica carries on
    assert signed.filter(side="down").total() == -1024 * BIG + 1


def test_a_batch_writes_its_other_kicks_when_one_would_overflow(staste_redis, prefix) -> None:
    from staste import scripts
    from staste.kicks import batch_keys_and_args

    near = Metrica(name="near", axes=[])
    for _ in range(1024):
        near.kick(BIG, D(2024, 1, 1))
    other = Metrica(name="other", axes=[("kind", StoredChoiceAxis())])
    kicks = [
        other.prepare_kick(1, D(2024, 1, 1), kind="a"),
        near.prepare_kick(BIG, D(2024, 1, 1)),
        other.prepare_kick(2, D(2024, 1, 2), kind="b"),
    ]
    if isinstance(staste_redis, redis.cluster.RedisCluster):
        pytest.skip("a cluster batch holds one metrica (one hash slot)")
    with pytest.raises(redis.ResponseError, match=r"^STASTE_OVERFLOW 2$"):
        scripts.run("kick", *batch_keys_and_args(kicks))
    assert other.iterate("kind") == [("a", 1), ("b", 2)]
    assert near.total() == 1024 * BIG


def test_a_buffered_kick_that_would_overflow_drops_only_itself(staste_redis, prefix) -> None:
    from staste import buffer

    buffer.reset()
    near = Metrica(name="near", axes=[])
    for _ in range(1024):
        near.kick(BIG, D(2024, 1, 1))
    other = Metrica(name="other", axes=[("kind", StoredChoiceAxis())])
    other.kick(1, D(2024, 1, 1), kind="a", buffered=True)
    near.kick(BIG, D(2024, 1, 1), buffered=True)
    other.kick(2, D(2024, 1, 2), kind="b", buffered=True)
    buffer.flush()  # (or the background thread did, in one flush or two)
    assert buffer.stats()["pending"] == 0 and buffer.stats()["dropped"] == 1
    assert other.iterate("kind") == [("a", 1), ("b", 2)]
    assert near.total() == 1024 * BIG
    buffer.reset()
