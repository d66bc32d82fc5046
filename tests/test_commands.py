"""``manage.py staste``: list, show, export, purge, rename and check, against a real Redis
(and a real Redis Cluster for the moves across hash slots)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from staste import checks, conf, connection, export, housekeeping, keys
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry
from staste.testing import RedisCluster, RedisServer, free_port
from tests import keydump
from tests.roundtrips import count_round_trips
from tests.statsapp.stats import gender_age, pocket_money

D = datetime.datetime
UTC = datetime.UTC
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    options = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command("staste", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def fails(*args: str, stdin: str | None = None) -> str:
    with pytest.raises(CommandError) as info:
        run(*args, stdin=stdin)
    return str(info.value)


def scan(client: redis.Redis, pattern: str) -> set[str]:
    return {key.decode() for key in client.scan_iter(match=pattern, count=1000)}


def snapshot(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key of this test with its contents, to prove a refused command wrote nothing."""
    return keydump.dump(client, prefix)


def table(output: str) -> dict[str, list[str]]:
    """The rows of a printed table keyed by their first cell (columns split on 2+ spaces)."""
    import re

    rows = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("--")) + 1
    for line in lines[start:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def registered() -> Iterator[list[Metrica]]:
    """Register metricas for one test, and take them away again."""
    added: list[Metrica] = []
    yield added
    for metrica in added:
        if metrica.name in registry and registry.get(metrica.name) is metrica:
            registry.unregister(metrica)
        registry.clashes = [(n, m) for n, m in registry.clashes if m is not metrica]


def kick_guests() -> None:
    for age, gender, count in (("10", "boy", 3), ("11", "girl", 2), ("11", "boy", 1)):
        for minute in range(count):
            gender_age.kick(date=D(2010, 2, 7, 13, minute), gender=gender, age=age)
    gender_age.kick(date=D(2011, 5, 1), gender="girl", age="12")


# -- list ------------------------------------------------------------------------------------


def test_list_shows_each_registered_metrica_with_its_keys_and_memory(staste_redis, prefix) -> None:
    kick_guests()
    Metrica(name="removed_long_ago", axes=[]).kick(date=D(2012, 1, 1))
    out, _ = run("list")
    rows = table(out)
    written = sorted(scan(staste_redis, f"{prefix}:{{guest_visits_gender_age}}:*"))
    memory = sum(staste_redis.memory_usage(key) for key in written)
    assert rows["guest_visits_gender_age"][0] == "Metrica"
    assert rows["guest_visits_gender_age"][1] == "gender(boy|girl), age(stored)"
    largest = max(staste_redis.hlen(key) for key in written if staste_redis.type(key) == b"hash")
    # Fields/bucket: (2 choices + all) x (1000 stored + (other) + all); then the largest hash now
    assert rows["guest_visits_gender_age"][2:4] == ["3,006", str(largest)]
    assert rows["guest_visits_gender_age"][4] == str(len(written))
    assert rows["guest_visits_gender_age"][5] == f"{memory / 1024:.1f} KiB"
    # an AveragedMetrica keeps two counters (sum and count) per combination
    assert rows["pocket_money"][:5] == ["AveragedMetrica", "gender(boy|girl)", "6", "0", "0"]
    assert "removed_long_ago" not in rows
    assert "1 more name has data but no registered metrica" in out
    assert f"prefix {prefix!r}" in out


def test_list_all_also_shows_data_no_code_defines(staste_redis, prefix) -> None:
    Metrica(name="removed_long_ago", axes=[("kind", StoredChoiceAxis())]).kick(date=D(2012, 1, 1), kind="x")
    out, _ = run("list", "--all", "--no-memory")
    rows = table(out)
    keys_of_it = str(len(scan(staste_redis, f"{prefix}:{{removed*")))
    assert rows["removed_long_ago"] == ["(not registered)", "-", "-", keys_of_it]
    assert "Largest hash" not in out  # read key by key, like the memory
    assert "Memory" not in out
    assert "more name" not in out


def test_list_pipelines_memory_usage_and_never_uses_keys(staste_redis, monkeypatch) -> None:
    monkeypatch.setattr(housekeeping, "BATCH", 10)
    kick_guests()  # 50-odd keys
    connection.get_redis().ping()
    with count_round_trips() as trips:
        run("list")
    names = [command.split(b"\r\n")[2].upper() for command in trips.commands]
    assert b"KEYS" not in names
    assert b"SCAN" in names
    key_count = len(housekeeping.key_set(gender_age.base))
    assert key_count > 10
    assert names.count(b"MEMORY") == math.ceil(key_count / 10)  # pipelines of 10, not a trip per key


# -- show ------------------------------------------------------------------------------------


def test_show_prints_totals_and_a_breakdown_by_axis(staste_redis) -> None:
    kick_guests()
    out, _ = run("show", "guest_visits_gender_age", "--year", "2010", "--by", "age")
    assert "Guest visits (guest_visits_gender_age, Metrica)" in out
    assert "span: 2010\n" in out
    assert "total: 6\n" in out
    assert table(out) == {"10": ["3"], "11": ["3"], "12": ["0"]}


def test_show_breaks_down_by_the_next_time_scale_and_filters(staste_redis) -> None:
    kick_guests()
    out, _ = run("show", "guest_visits_gender_age", "--filter", "gender=boy")
    assert "filters: gender=boy" in out
    assert "total: 4\n" in out
    assert table(out) == {"2010": ["4"], "2011": ["0"]}
    out, _ = run("show", "guest_visits_gender_age", "--year", "2010", "--month", "2", "--day", "7", "--hour", "13")
    rows = table(out)
    assert list(rows)[:4] == ["2010-02-07 13:00", "2010-02-07 13:01", "2010-02-07 13:02", "2010-02-07 13:03"]
    assert [rows[label][0] for label in list(rows)[:4]] == ["3", "2", "1", "0"]
    assert len(rows) == 60


def test_show_an_averaged_metrica_prints_counts_and_averages(staste_redis) -> None:
    for value, gender in ((2.5, "boy"), (1.5, "boy"), (4, "girl")):
        pocket_money.kick(value=value, date=D(2020, 3, 1), gender=gender)
    out, _ = run("show", "pocket_money", "--by", "gender")
    assert "total: 8   count: 3   average: 2.6667" in out  # formats.rounded: cents, plus 2 for an average
    assert table(out) == {"boy": ["4", "2", "2"], "girl": ["4", "1", "4"]}


def test_show_a_minute_says_there_is_nothing_finer(staste_redis) -> None:
    kick_guests()
    out, _ = run(
        "show",
        "guest_visits_gender_age",
        "--year",
        "2010",
        "--month",
        "2",
        "--day",
        "7",
        "--hour",
        "13",
        "--minute",
        "1",
    )
    assert "total: 2\n" in out
    assert "(guest_visits_gender_age records no time scale finer than minutes; --by AXIS" in out
    assert "----" not in out  # no table


def test_show_a_metrica_kept_for_all_time_only(staste_redis, registered) -> None:
    forever = Metrica(name="forever", axes=[("kind", Axis(choices=["a", "b"]))], date_scales=[])
    registered.append(registry.register(forever))
    forever.kick(kind="a", value=2)
    out, _ = run("show", "forever")
    assert "total: 2\n" in out
    assert "(forever records only all time;" in out
    out, _ = run("show", "forever", "--by", "kind")
    assert table(out) == {"a": ["2"], "b": ["0"]}
    assert "forever records only all time" in fails("export", "forever")


def test_show_prints_control_characters_in_values_escaped(staste_redis, registered) -> None:
    labels = Metrica(name="labels", axes=[("label", StoredChoiceAxis())])
    registered.append(registry.register(labels))
    labels.kick(label="\x1b[2Jred\nline")
    out, _ = run("show", "labels", "--by", "label")
    assert "\x1b" not in out
    assert "\\x1b[2Jred\\nline" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "guest_visits_gender"), "Did you mean 'guest_visits_gender_age'?"),
        (("show", "not a name"), "is not a metrica name"),
        (("show", "pocket_money", "--filter", "gender"), "write AXIS=VALUE, e.g. --filter gender=..."),
        (("show", "pocket_money", "--filter", "sex=boy"), "pocket_money has no axis 'sex'; its axes are ['gender']"),
        (("show", "pocket_money", "--filter", "gender=x"), "'x' is not one of the choices ('boy', 'girl')"),
        (("show", "pocket_money", "--filter", "gender=boy", "--filter", "gender=girl"), "given twice"),
        (("show", "pocket_money", "--by", "age"), "pocket_money has no axis 'age'"),
        (("show", "pocket_money", "--month", "2"), "month= needs year= too"),
        (("show", "pocket_money", "--year", "2010", "--month", "13"), "month=13 is out of range 1..12"),
        (("show", "pocket_money", "--year", "x"), "invalid int value: 'x'"),
        (("nonsense",), "invalid choice: 'nonsense'"),
        ((), "the following arguments are required"),
    ],
)
def test_bad_arguments_are_command_errors_with_a_useful_message(staste_redis, prefix, args, message) -> None:
    assert message in fails(*args)
    assert scan(staste_redis, f"{prefix}:*") == set()


def test_show_names_the_data_of_an_unregistered_metrica(staste_redis) -> None:
    Metrica(name="removed_long_ago", axes=[]).kick(date=D(2012, 1, 1))
    message = fails("show", "removed_long_ago")
    assert "No metrica named 'removed_long_ago' is registered" in message
    assert "Redis still holds 9 keys of it" in message  # 6 buckets, years, signature, a writer's number
    assert "`staste purge removed_long_ago`" in message


# -- export ----------------------------------------------------------------------------------


def test_export_csv_is_the_time_series_of_the_query_api(staste_redis) -> None:
    kick_guests()
    out, _ = run(
        "export",
        "guest_visits_gender_age",
        "--since",
        "2010-02-07T12:00",
        "--until",
        "2010-02-07T15:30",
        "--scale",
        "hour",
        "--filter",
        "gender=boy",
    )
    rows = list(csv.reader(io.StringIO(out)))
    expected = gender_age.filter(gender="boy").timeserie(D(2010, 2, 7, 12), D(2010, 2, 7, 15), scale="hour")
    assert rows[0] == ["time", "total"]
    assert rows[1:] == [[moment.isoformat(), str(total)] for moment, total in expected]
    assert [row[1] for row in rows[1:]] == ["0", "4", "0", "0"]


def test_export_json_by_axis_with_counts_and_averages(staste_redis, settings) -> None:
    settings.STASTE_TIME_ZONE = "UTC"  # the times below are written in it
    pocket_money.kick(value=2.5, date=D(2020, 3, 1, 10), gender="boy")
    pocket_money.kick(value=1.5, date=D(2020, 3, 2, 11), gender="boy")
    pocket_money.kick(value=4, date=D(2020, 3, 2, 12), gender="girl")
    out, _ = run(
        "export",
        "pocket_money",
        "--format",
        "json",
        "--by",
        "gender",
        "--since",
        "2020-03-01",
        "--until",
        "2020-03-02",
        "--scale",
        "day",
    )
    data = json.loads(out)
    assert data["metrica"] == "pocket_money"
    assert data["scale"] == "day"
    assert data["columns"] == ["time", "gender", "total", "count", "average"]
    assert data["since"] == "2020-03-01T00:00:00+00:00"
    assert data["rows"] == [
        {"time": "2020-03-01T00:00:00+00:00", "gender": "boy", "total": 2.5, "count": 1, "average": 2.5},
        {"time": "2020-03-01T00:00:00+00:00", "gender": "girl", "total": 0, "count": 0, "average": None},
        {"time": "2020-03-02T00:00:00+00:00", "gender": "boy", "total": 1.5, "count": 1, "average": 1.5},
        {"time": "2020-03-02T00:00:00+00:00", "gender": "girl", "total": 4, "count": 1, "average": 4.0},
    ]


def test_export_defaults_to_all_years_with_data(staste_redis, settings) -> None:
    settings.STASTE_TIME_ZONE = "UTC"  # the times below are written in it
    kick_guests()
    out, _ = run("export", "guest_visits_gender_age", "--until", "2012-06-01")
    rows = list(csv.reader(io.StringIO(out)))
    # From the first year with data; 2010 is past every finer scale's retention, so years.
    assert rows[1:] == [
        ["2010-01-01T00:00:00+00:00", "6"],
        ["2011-01-01T00:00:00+00:00", "1"],
        ["2012-01-01T00:00:00+00:00", "0"],
    ]


def test_export_escapes_formulas_in_csv_but_not_negative_numbers(staste_redis, registered) -> None:
    notes = Metrica(name="notes", axes=[("note", StoredChoiceAxis()), ("page", HierarchicalAxis())])
    registered.append(registry.register(notes))
    hostile = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"]
    for note in hostile:
        notes.kick(value=-3, date=D(2020, 1, 1), note=note)
    notes.kick(date=D(2020, 1, 1), page=("=cmd", "sub"))
    out, _ = run("export", "notes", "--by", "note", "--since", "2020", "--until", "2020", "--scale", "year")
    rows = list(csv.reader(io.StringIO(out)))
    exported = {row[1]: row[2] for row in rows[1:]}
    assert exported == {
        '\'=HYPERLINK("http://x")': "-3",
        "'+1": "-3",
        "'-2": "-3",
        "'@SUM(A1)": "-3",
        "'\tx": "-3",
        "'\rx": "-3",
        "plain": "-3",
        "a=b": "-3",
    }
    export = ("export", "notes", "--by", "page", "--filter", "page==cmd")
    year_2020 = ("--since", "2020", "--until", "2020", "--scale", "year")
    out, _ = run(*export, *year_2020)
    assert list(csv.reader(io.StringIO(out)))[1][1:] == ["'=cmd/sub", "1"]
    out, _ = run(*export, *year_2020, "--format", "json")
    assert json.loads(out)["rows"][0]["page"] == ["=cmd", "sub"]


def test_export_read_by_a_semicolon_spreadsheet_runs_nothing(staste_redis, registered) -> None:
    """Issue 13: `x;=1+1` was exported bare as `x;=1+1,1`, which a `;` spreadsheet runs."""
    notes = registry.register(Metrica(name="semicolons", axes=[("note", StoredChoiceAxis())]))
    registered.append(notes)
    for note in ("x;=1+1", "x;-1", "a\n=1", "y\t+z"):
        notes.kick(value=-3, date=D(2020, 1, 1), note=note)
    out, _ = run("export", "semicolons", "--by", "note", "--since", "2020", "--until", "2020", "--scale", "year")
    assert out.startswith('"time","note","total"\r\n"2020-01-01T00:00:00')  # every text cell quoted
    for delimiter in (";", "\t"):
        cells = [cell for row in csv.reader(io.StringIO(out, newline=""), delimiter=delimiter) for cell in row]
        assert cells and not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert {row[1]: row[2] for row in rows[1:]} == {"x;'=1+1": "-3", "x;'-1": "-3", "a\n'=1": "-3", "y\t'+z": "-3"}


def test_a_long_export_is_read_in_chunks_one_round_trip_each(staste_redis, settings) -> None:
    settings.STASTE_MAX_BUCKETS = 10
    kick_guests()
    gender_age.kick(date=D(2010, 2, 8, 20), gender="girl", age="10")
    since, until = D(2010, 2, 7), D(2010, 2, 8, 23)  # 48 hours: 5 chunks of at most 10
    expected = []
    for start in range(0, 48, 10):
        first = since + datetime.timedelta(hours=start)
        last = min(first + datetime.timedelta(hours=9), until)
        expected += gender_age.values().timeserie(first, last, scale="hour")
    gender_age.total()  # connect first
    with count_round_trips() as trips:
        out, _ = run(
            "export",
            "guest_visits_gender_age",
            "--since",
            "2010-02-07",
            "--until",
            "2010-02-08T23:00",
            "--scale",
            "hour",
        )
    rows = list(csv.reader(io.StringIO(out)))[1:]
    assert rows == [[moment.isoformat(), str(total)] for moment, total in expected]
    assert sum(int(total) for _, total in rows) == 7
    assert trips.count == 5


def test_export_to_a_file_with_a_progress_bar(staste_redis, tmp_path) -> None:
    kick_guests()
    target = tmp_path / "guests.json"
    out, err = run(
        "export",
        "guest_visits_gender_age",
        "--since",
        "2010-02-07",
        "--until",
        "2010-02-08",
        "--scale",
        "hour",
        "-o",
        str(target),
        "--progress",
    )
    assert f"Wrote 25 rows (hours, json) to {target}" in out
    assert len(json.loads(target.read_text())["rows"]) == 25
    assert "25/25" in err  # tqdm's bar, on stderr
    assert [path.name for path in tmp_path.iterdir()] == ["guests.json"]
    _, err = run("export", "guest_visits_gender_age", "-o", str(tmp_path / "quiet.csv"), "--no-progress")
    assert err == ""


def test_a_failed_export_leaves_no_file(staste_redis, tmp_path, settings) -> None:
    kick_guests()
    target = tmp_path / "out.csv"
    assert "cannot read 'yesterday' as a date" in fails(
        "export", "guest_visits_gender_age", "--since", "yesterday", "-o", str(target)
    )
    assert "is before --since" in fails(
        "export", "guest_visits_gender_age", "--since", "2011", "--until", "2010", "-o", str(target)
    )
    assert "does not exist" in fails("export", "guest_visits_gender_age", "-o", str(tmp_path / "no" / "x.csv"))
    settings.STASTE_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    connection.reset()
    message = fails("export", "guest_visits_gender_age", "--since", "2010", "-o", str(target))
    assert f"could not reach Redis at redis://127.0.0.1:{settings.STASTE_REDIS_URL.split(':')[2]}" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024", D(2024, 1, 1)),
        ("2024-05", D(2024, 5, 1)),
        ("2024-05-03", D(2024, 5, 3)),
        ("2024-05-03T10:30", D(2024, 5, 3, 10, 30)),
        ("2024-05-03 10:30", D(2024, 5, 3, 10, 30)),
        ("2024-05-03T10:30+02:00", D(2024, 5, 3, 8, 30)),  # converted to the staste zone (UTC here)
        ("2024-05-03T10:30Z", D(2024, 5, 3, 10, 30)),
        ("now", D(2024, 6, 1, 12)),
        ("90m", D(2024, 6, 1, 10, 30)),
        ("12h", D(2024, 6, 1)),
        ("7d", D(2024, 5, 25, 12)),
        ("2w", D(2024, 5, 18, 12)),
    ],
)
def test_parse_moment(text, expected, settings) -> None:
    settings.STASTE_TIME_ZONE = "UTC"
    assert export.parse_moment(text, now=D(2024, 6, 1, 12)) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13", "7y", "", "2024-05-03T25:00"])
def test_parse_moment_refuses_what_it_cannot_read(text) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        export.parse_moment(text, now=D(2024, 6, 1))


# -- purge -----------------------------------------------------------------------------------


def test_purge_deletes_every_key_of_one_metrica_in_batches(staste_redis, prefix, monkeypatch) -> None:
    monkeypatch.setattr(housekeeping, "BATCH", 5)
    kick_guests()
    pocket_money.kick(value=1, date=D(2010, 2, 7), gender="boy")
    others = scan(staste_redis, f"{prefix}:{{pocket_money}}:*")
    doomed = scan(staste_redis, f"{prefix}:{{guest_visits_gender_age}}:*")
    assert len(doomed) > 3 * 5
    with count_round_trips() as trips:
        out, _ = run("purge", "guest_visits_gender_age", "--yes")
    assert f"Deleted {len(doomed)} keys of guest_visits_gender_age." in out
    assert scan(staste_redis, f"{prefix}:*") == others
    unlinks = [command for command in trips.commands if b"UNLINK" in command]
    assert len(unlinks) >= len(doomed) // 5
    assert not any(b"\r\nKEYS\r\n" in command for command in trips.commands)
    assert gender_age.total() == 0


def test_purge_asks_first(staste_redis, prefix) -> None:
    kick_guests()
    before = snapshot(staste_redis, prefix)
    message = fails("purge", "guest_visits_gender_age", stdin="no\n")
    assert "Purge cancelled: nothing was deleted" in message
    assert "--yes" in message
    assert fails("purge", "guest_visits_gender_age", stdin="").startswith("Purge cancelled")  # end of input
    assert snapshot(staste_redis, prefix) == before
    out, _ = run("purge", "guest_visits_gender_age", stdin="yes\n")
    assert f"This deletes every counter of 'guest_visits_gender_age': {len(before)} keys" in out
    assert "Type 'yes' to continue" in out
    assert scan(staste_redis, f"{prefix}:*") == set()


def test_purge_dry_run_and_quiet(staste_redis, prefix) -> None:
    kick_guests()
    before = snapshot(staste_redis, prefix)
    out, _ = run("purge", "guest_visits_gender_age", "--dry-run")
    assert f"Would delete {len(before)} keys" in out
    assert snapshot(staste_redis, prefix) == before
    out, _ = run("purge", "guest_visits_gender_age", "--no-input", "-v", "0")  # Django's options after it too
    assert out == ""
    assert scan(staste_redis, f"{prefix}:*") == set()


def test_purge_reaches_data_no_code_defines_and_refuses_unknown_names(staste_redis, prefix) -> None:
    Metrica(name="removed_long_ago", axes=[]).kick(date=D(2012, 1, 1))
    assert "Did you mean 'removed_long_ago'?" in fails("purge", "removed_long_ago_", "--yes")
    out, _ = run("purge", "removed_long_ago", "--yes")
    assert "Deleted 9 keys of removed_long_ago." in out
    assert scan(staste_redis, f"{prefix}:*") == set()
    out, _ = run("purge", "pocket_money", "--yes")  # registered, no data: nothing to do
    assert "pocket_money has no data" in out


# -- rename ----------------------------------------------------------------------------------


def kick_old_name() -> Metrica:
    old = Metrica(name="visits_v1", axes=[("kind", StoredChoiceAxis())])
    old.kick(date=D(2010, 2, 7, 13, 5), kind="a")
    old.kick(date=D(2010, 2, 7, 13, 6), kind="b", value=2)
    old.kick(kind="a")  # now: a minute bucket that has a TTL
    return old


def test_rename_moves_every_key_with_its_ttl(staste_redis, prefix) -> None:
    old = kick_old_name()
    before = snapshot(staste_redis, prefix)
    ttls = {key: staste_redis.pttl(key) for key in before}
    out, _ = run("rename", "visits_v1", "visits")
    assert f"Moved {len(before)} keys of visits_v1 to visits." in out
    after = snapshot(staste_redis, prefix)
    old_base, new_base = old.base, keys.metrica_base(prefix, "visits")
    assert after == {new_base + key[len(old_base) :]: value for key, value in before.items()}
    for key, ttl in ttls.items():
        moved = staste_redis.pttl(new_base + key[len(old_base) :])
        assert (moved == -1) if ttl == -1 else (0 < moved <= ttl)
    assert any(ttl > 0 for ttl in ttls.values())
    renamed = Metrica(name="visits", axes=[("kind", StoredChoiceAxis())])
    assert renamed.timespan(2010).iterate("kind") == [("a", 1), ("b", 2)]
    assert old.total() == 0


def test_rename_refuses_to_overwrite_without_force(staste_redis, prefix) -> None:
    kick_old_name()
    Metrica(name="visits", axes=[("kind", StoredChoiceAxis())]).kick(date=D(2010, 3, 1), kind="c")
    before = snapshot(staste_redis, prefix)
    message = fails("rename", "visits_v1", "visits")
    assert "'visits' already has data" in message
    assert "--merge" in message and "--force" in message
    assert snapshot(staste_redis, prefix) == before
    out, _ = run("rename", "visits_v1", "visits", "--force")
    assert "Replaced the data of visits with" in out
    renamed = Metrica(name="visits", axes=[("kind", StoredChoiceAxis())])
    assert renamed.values().iterate("kind") == [("a", 2), ("b", 2)]  # "c" is gone


def test_rename_merge_adds_the_counters(staste_redis, prefix) -> None:
    kick_old_name()
    new = Metrica(name="visits", axes=[("kind", StoredChoiceAxis())])
    new.kick(date=D(2010, 2, 7, 13, 5), kind="a", value=10)
    new.kick(date=D(2011, 1, 1), kind="c")
    out, _ = run("rename", "visits_v1", "visits", "--merge")
    assert "Merged" in out
    assert new.values().iterate("kind") == [("a", 12), ("b", 2), ("c", 1)]
    assert new.timespan(2010, 2, 7, 13, 5).total() == 11
    assert new.values().iterate() == [(2010, 13), (2011, 1), (conf.local().year, 1)]
    assert scan(staste_redis, f"{prefix}:{{visits_v1}}:*") == set()


def test_rename_merge_skips_a_string_that_expires_between_its_reads(own_redis: RedisServer) -> None:
    """A string (the signature) gone between the merge's TYPE and GET was merged as SET of None:
    redis-py raised DataError and the rename stopped halfway.  Now it is skipped: it expired."""

    class ExpiresAfterType(redis.Redis):  # as if it expired, or another client deleted it, after TYPE
        def type(self, name):
            kind = super().type(name)
            self.delete(name)
            return kind

    source = ExpiresAfterType.from_url(own_redis.url)
    target = redis.Redis.from_url(own_redis.url)
    source.set("old", "old signature")
    target.set("new", "new signature")
    assert housekeeping._merge_key(source, target, "old", "new") == 1
    assert target.get("new") == b"new signature" and not target.exists("old")
    source.close()
    target.close()


def test_rename_refuses_data_written_with_other_axes(staste_redis, prefix, registered) -> None:
    kick_old_name()
    registered.append(registry.register(Metrica(name="visits", axes=[("kind", Axis(choices=["a", "b"]))])))
    before = snapshot(staste_redis, prefix)
    message = fails("rename", "visits_v1", "visits")
    assert "written with other axes" in message and "--force" in message
    assert snapshot(staste_redis, prefix) == before
    Metrica(name="other", axes=[("colour", StoredChoiceAxis())]).kick(colour="red")
    assert "merging would mix counters" in fails("rename", "visits_v1", "other", "--merge")
    assert snapshot(staste_redis, prefix).keys() >= before.keys()


def test_rename_refuses_what_it_cannot_do(staste_redis, prefix) -> None:
    kick_old_name()
    before = snapshot(staste_redis, prefix)
    assert "both 'visits_v1'" in fails("rename", "visits_v1", "visits_v1")
    assert "'visits_v2' has no data" in fails("rename", "visits_v2", "visits")
    assert "Did you mean 'visits_v1'?" in fails("rename", "visits_v2", "visits")
    assert "is not a metrica name" in fails("rename", "visits_v1", "visits{x}")
    out, _ = run("rename", "visits_v1", "visits", "--dry-run")
    assert f"Would move {len(before)} keys of visits_v1 to visits" in out
    assert snapshot(staste_redis, prefix) == before


def test_renaming_a_registered_metrica_warns_that_its_kicks_go_on(staste_redis) -> None:
    kick_guests()
    _, err = run("rename", "guest_visits_gender_age", "guests_archived_2011")
    assert "guest_visits_gender_age is still defined in code" in err
    run("rename", "guests_archived_2011", "guest_visits_gender_age")
    assert gender_age.total() == 7


# -- check -----------------------------------------------------------------------------------


def test_check_passes_on_a_healthy_redis(staste_redis, redis_server, prefix) -> None:
    kick_guests()
    out, _ = run("check")
    assert f"Redis at {connection.describe()} is reachable" in out
    node = redis_server.nodes[0] if isinstance(redis_server, RedisCluster) else redis_server
    version = redis.Redis.from_url(node.url).info("server")["redis_version"]
    assert f"Redis {version}\n" in out
    assert f"the stored signatures of {len(registry)} metricas match their code" in out
    assert f"the axes of {len(registry)} metricas allow at most " in out
    ours = scan(staste_redis, f"{prefix}:*")
    largest = max(staste_redis.hlen(key) for key in ours if staste_redis.type(key) == b"hash")
    assert f" holds {largest:,} fields\n" in out
    assert "staste check: no errors" in out


def test_check_warns_about_a_policy_that_evicts_counters(settings) -> None:
    with RedisServer(extra_args=["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]) as server:
        settings.STASTE_REDIS_URL = server.url
        connection.reset()
        out, _ = run("check")
        assert "WARNING  maxmemory-policy allkeys-lru may evict any key" in out
        assert "persistence is off" in out
        message = fails("check", "--fail-level", "WARNING")
        assert "found 0 errors and 2 warnings" in message
        connection.get_redis().config_set("maxmemory-policy", "volatile-lru")
        out, _ = run("check")
        assert "INFO     maxmemory-policy volatile-lru" in out
        assert "all-time and yearly counters have no TTL and are kept" in out
        connection.reset()


@pytest.mark.parametrize(
    ("policy", "maxmemory", "check_id"),
    [
        ("noeviction", 0, None),
        ("noeviction", 10**9, None),
        ("allkeys-lru", 0, None),
        ("allkeys-lru", 10**9, "staste.W002"),
        ("allkeys-lfu", 10**9, "staste.W002"),
        ("allkeys-random", 10**9, "staste.W002"),
        ("volatile-lru", 10**9, "staste.I002"),
        ("volatile-lfu", 10**9, "staste.I002"),
        ("volatile-random", 10**9, "staste.I002"),
        ("volatile-ttl", 10**9, "staste.I002"),
    ],
)
def test_eviction_risk(policy, maxmemory, check_id) -> None:
    found = checks.eviction_risk(policy, maxmemory)
    assert (found and found.id) == check_id
    assert found is None or policy in found.msg


def test_check_reports_a_signature_mismatch(staste_redis) -> None:
    kick_guests()
    staste_redis.set(keys.signature_key(gender_age.base), "Metrica|None|gender=Axis:boy,girl")
    message = fails("check")
    assert "staste check found 1 error and " in message
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("staste", "check", stdout=out)
    assert (
        "ERROR    The axes of metrica 'guest_visits_gender_age' changed since its data was first written: "
        "Redis has 'Metrica|None|gender=Axis:boy,girl'" in out.getvalue()
    )
    assert "(staste.E002)" in out.getvalue()  # the system check's own message, presented
    assert "staste rename guest_visits_gender_age guest_visits_gender_age_old" in out.getvalue()


def test_check_reports_two_metricas_with_one_name(staste_redis, registered) -> None:
    twin = Metrica(name="pocket_money", axes=[])
    registered.append(registry.register(twin))
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"staste check found [1-9]"):
        call_command("staste", "check", stdout=out)
    assert "ERROR    Two different metricas are named 'pocket_money'" in out.getvalue()
    assert "(staste.E001)" in out.getvalue()
    assert registry.get("pocket_money") is pocket_money


def test_a_redis_that_is_down_is_a_command_error_naming_it(settings) -> None:
    port = free_port()
    settings.STASTE_REDIS_URL = f"redis://:secret@127.0.0.1:{port}/0"
    connection.reset()
    for args in (
        ("check",),
        ("list",),
        ("show", "pocket_money"),
        ("purge", "pocket_money", "--yes"),
        ("rename", "pocket_money", "x"),
    ):
        message = fails(*args)
        assert f"could not reach Redis at redis://:***@127.0.0.1:{port}/0" in message, args
        assert "secret" not in message


# -- the command line ------------------------------------------------------------------------


def manage(*args: str, url: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "STASTE_REDIS_URL": url,
        "STASTE_METRICS_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "staste", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_exit_codes_from_the_command_line(redis_server, prefix) -> None:
    kick_guests()
    done = manage("show", "guest_visits_gender_age", "--by", "gender", url=redis_server.url, prefix=prefix)
    assert done.returncode == 0, done.stderr
    assert "total: 7" in done.stdout
    refused = manage("purge", "guest_visits_gender", "--yes", url=redis_server.url, prefix=prefix)
    assert refused.returncode == 1
    assert refused.stderr.startswith("CommandError: No metrica named 'guest_visits_gender' is registered")
    unreadable = manage("export", "pocket_money", "--format", "xml", url=redis_server.url, prefix=prefix)
    assert unreadable.returncode == 2
    assert "invalid choice: 'xml'" in unreadable.stderr
    assert gender_age.total() == 7


# -- a Redis Cluster -------------------------------------------------------------------------


def test_rename_list_and_purge_across_slots_of_a_cluster(cluster, settings, prefix) -> None:
    settings.STASTE_REDIS_URL = cluster.url
    connection.reset()
    client = cluster.client()
    try:
        old = kick_old_name()
        averaged = AveragedMetrica(name="spend", axes=[])
        averaged.kick(value=3, date=D(2010, 1, 1))
        before = {key: client.pttl(key) for key in scan(client, f"{prefix}:{{visits_v1}}:*")}
        new_base = keys.metrica_base(prefix, "visits")
        assert client.keyslot(new_base) != client.keyslot(old.base)
        assert table(run("list", "--all")[0])["visits_v1"][4] == str(len(before))
        out, _ = run("rename", "visits_v1", "visits")
        assert f"Moved {len(before)} keys" in out
        moved = scan(client, f"{prefix}:{{visits}}:*")
        assert moved == {new_base + key[len(old.base) :] for key in before}
        for key, ttl in before.items():
            assert (client.pttl(new_base + key[len(old.base) :]) == -1) == (ttl == -1)
        renamed = Metrica(name="visits", axes=[("kind", StoredChoiceAxis())])
        assert renamed.timespan(2010).iterate("kind") == [("a", 1), ("b", 2)]
        kick_old_name()
        run("rename", "visits_v1", "visits", "--merge")
        assert renamed.timespan(2010).iterate("kind") == [("a", 2), ("b", 4)]
        out, _ = run("purge", "visits", "--yes")
        assert f"Deleted {len(moved)} keys" in out
        assert scan(client, f"{prefix}:*") == scan(client, f"{prefix}:{{spend}}:*") != set()
        out, _ = run("check")
        assert out.count("maxmemory-policy noeviction") == 3  # each primary
    finally:
        client.close()
        connection.reset()
