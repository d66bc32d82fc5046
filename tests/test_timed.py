"""``staste.timed`` (context manager and decorator, sync and async) and timed management commands,
recorded into task_time; the clock it reads is pinned where the milliseconds matter."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import staste
from staste import buffer, timing
from staste.axis import StoredChoiceAxis
from staste.metrica import Metrica
from staste.registration import registry


@pytest.fixture(autouse=True)
def quiet(monkeypatch) -> Iterator[None]:
    saved = registry.save()
    monkeypatch.setattr(buffer, "default", buffer.Buffer(background=False))
    yield
    registry.restore(saved)


class Clock:
    """A perf_counter that answers the given readings in turn (then the last one again)."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def perf_counter(self) -> float:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


@pytest.fixture
def clock(monkeypatch):  # type: ignore[no-untyped-def]
    def pin(*readings: float) -> Clock:
        fake = Clock(*readings)
        monkeypatch.setattr(timing, "time", fake)
        return fake

    return pin


def runs(task: str | None = None) -> dict[tuple[str, str], int]:
    metrica = timing.task_metrica()
    found = {}
    tasks = [task] if task else [value for value, count in metrica.iterate_counts("task") if count]
    for name in tasks:
        for state, count in metrica.filter(task=name).iterate_counts("state"):
            if count:
                found[(name, state)] = count
    return found


def test_a_block_and_a_function_are_runs_of_a_task(clock) -> None:
    clock(0, 0.120, 1, 1.080, 2, 2.300)  # runs of 120, 80 and 300 ms
    with staste.timed("import.prices"):
        pass

    @staste.timed("mail.send")
    def send(to: str) -> str:
        return f"sent to {to}"

    assert send("ann") == "sent to ann"
    assert send("bob") == "sent to bob"
    assert send.__name__ == "send"  # functools.wraps
    buffer.flush()
    metrica = timing.task_metrica()
    assert runs() == {("import.prices", "success"): 1, ("mail.send", "success"): 2}
    assert metrica.filter(task="import.prices").average() == 120.0
    assert metrica.filter(task="mail.send").total() == 380.0
    assert metrica.unit == "ms" and metrica.histogram


def test_an_exception_is_the_state_and_is_raised_on(clock) -> None:
    clock(0, 0.01, 1, 1.02, 2, 2.03)

    class Declined(Exception):
        pass

    with pytest.raises(KeyError), staste.timed("lookup"):
        raise KeyError("missing")

    @staste.timed("charge")
    def charge() -> None:
        raise Declined("card declined")

    for _ in range(2):
        with pytest.raises(Declined):
            charge()
    buffer.flush()
    assert runs() == {
        ("lookup", "builtins.KeyError"): 1,
        ("charge", f"{__name__}.test_an_exception_is_the_state_and_is_raised_on.<locals>.Declined"): 2,
    }


def test_async_functions_and_async_blocks(clock) -> None:
    clock(0, 0.05, 1, 1.25, 2, 2.5)

    @staste.timed("feeds.refresh")
    async def refresh(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise TimeoutError("feed too slow")
        return "fresh"

    async def main() -> str:
        async with staste.timed("warm.up"):
            await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await refresh(True)
        return await refresh(False)

    assert asyncio.iscoroutinefunction(refresh)
    assert asyncio.run(main()) == "fresh"
    buffer.flush()
    assert runs() == {
        ("warm.up", "success"): 1,
        ("feeds.refresh", "builtins.TimeoutError"): 1,
        ("feeds.refresh", "success"): 1,
    }
    assert timing.task_metrica().filter(task="warm.up").average() == 50.0


def test_percentiles_of_pinned_runs(clock) -> None:
    clock(*[t for run in range(9) for t in (run, run + 0.010)], 10, 12)  # nine runs of 10 ms, one of 2 s
    timer = staste.timed("batch")
    for _ in range(10):
        with timer:
            pass
    buffer.flush()
    percentiles = timing.task_metrica().filter(task="batch").percentiles([50, 99])
    assert 7.94 < percentiles[50] <= 10.0  # within their histogram buckets: (7.94, 10] ms
    assert 1995 < percentiles[99] <= 2512  # and (1,995, 2,512] ms


def test_the_same_timer_nested_in_itself(clock) -> None:
    clock(0, 1, 1.002, 1.003)
    timer = staste.timed("recursive")
    with timer, timer:
        pass
    buffer.flush()
    assert runs() == {("recursive", "success"): 2}


def test_no_redis_round_trip_while_timing() -> None:
    from tests.roundtrips import count_round_trips

    timing.task_metrica()
    with count_round_trips(this_thread_only=True) as trips:
        for _ in range(20):
            with staste.timed("cheap"):
                pass
    assert trips.count == 0
    buffer.flush()
    assert runs() == {("cheap", "success"): 20}


@pytest.mark.parametrize("name", ["", "   ", 7, None, "x" * 201])
def test_a_bad_name_is_refused_when_made(name) -> None:
    with pytest.raises(ValueError, match="task name"):
        staste.timed(name)


def test_a_failure_to_record_never_reaches_the_timed_code(caplog, monkeypatch) -> None:
    monkeypatch.setattr(timing, "_failures", set())  # (a kind of failure is logged once a process)
    # A project registered a task_time of its own that has no such axes: every kick is refused.
    if timing.NAME in registry:
        registry.unregister(timing.NAME)  # (staste's own, registered by an earlier test)
    registry.register(Metrica(name=timing.NAME, axes=[("job", StoredChoiceAxis())]))
    with caplog.at_level(logging.ERROR, logger="staste"), staste.timed("still.runs"):
        answer = 42
    assert answer == 42
    assert "could not record a run of 'still.runs'" in caplog.text


# -- management commands ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_command_decorated_on_its_handle(clock) -> None:
    clock(0, 1.5, 2, 2.25)
    out = io.StringIO()
    call_command("slow_report", stdout=out)
    with pytest.raises(CommandError, match="asked to fail"):
        call_command("slow_report", "--fail", stdout=out)
    buffer.flush()
    assert "report done" in out.getvalue()
    assert runs() == {
        ("reports.slow", "success"): 1,
        ("reports.slow", "django.core.management.base.CommandError"): 1,
    }
    assert timing.task_metrica().filter(task="reports.slow", state="success").average() == 1500.0


@pytest.mark.django_db
def test_any_command_timed_by_staste_time(clock) -> None:
    # staste time starts, the command's own @timed starts and ends, staste time ends: three runs
    clock(0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75)
    out = io.StringIO()
    call_command("staste", "time", "slow_report", stdout=out)
    call_command("staste", "time", "--name", "nightly", "slow_report", stdout=out)
    with pytest.raises(CommandError, match="asked to fail"):
        call_command("staste", "time", "slow_report", "--fail", stdout=out)
    assert runs("manage.py slow_report") == {
        ("manage.py slow_report", "success"): 1,
        ("manage.py slow_report", "django.core.management.base.CommandError"): 1,
    }
    assert runs("nightly") == {("nightly", "success"): 1}
    assert timing.task_metrica().filter(task="manage.py slow_report", state="success").average() == 750.0
    assert timing.task_metrica().filter(task="reports.slow", state="success").average() == 250.0  # its own @timed


def test_an_unknown_command_is_refused_and_not_recorded() -> None:
    with pytest.raises(CommandError, match=r"Unknown command 'slow_reprot'\. Did you mean 'slow_report'"):
        call_command("staste", "time", "slow_reprot")
    buffer.flush()
    assert timing.NAME not in registry or timing.task_metrica().values().count() == 0
