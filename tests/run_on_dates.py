"""Run the suite "on" the moments that break calendars, to show no test knows what day it is.

Each run is a pytest of its own with staste's clock pinned (``STASTE_TEST_NOW``, see
tests/clock.py) and, for the changes of daylight saving time, the tests' time zone changed
(``STASTE_TEST_TIME_ZONE``)::

    .venv/bin/python -m tests.run_on_dates                        # every moment, the fast suite
    .venv/bin/python -m tests.run_on_dates --only dst -- tests/test_weeks.py
    .venv/bin/python -m tests.run_on_dates --list

Arguments after ``--`` go to pytest (default: the suite without the browser and slow tests,
as ``make test-django`` runs it).  ``make test-dates`` runs it.  Each run's whole output is
kept in ``artifacts/dates/<moment>.txt``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

LOGS = Path(__file__).resolve().parents[1] / "artifacts" / "dates"


class Moment(NamedTuple):
    name: str
    zone: str
    when: str  # STASTE_TEST_NOW: naive means on the wall clock of ``zone``


MOMENTS: tuple[Moment, ...] = (
    Moment("monday", "UTC", "2026-12-07T12:00:00"),
    Moment("tuesday", "UTC", "2026-12-08T12:00:00"),
    Moment("wednesday", "UTC", "2026-12-09T12:00:00"),
    Moment("thursday", "UTC", "2026-12-10T12:00:00"),
    Moment("friday", "UTC", "2026-12-11T12:00:00"),
    Moment("saturday", "UTC", "2026-12-12T12:00:00"),
    Moment("sunday", "UTC", "2026-12-13T12:00:00"),
    Moment("midnight", "UTC", "2026-12-09T00:00:00"),
    Moment("month-end", "UTC", "2026-11-30T23:59:00"),
    Moment("leap-day-end", "UTC", "2028-02-29T23:59:00"),
    Moment("year-end", "UTC", "2026-12-31T23:59:00"),
    Moment("new-year", "UTC", "2027-01-01T00:00:00"),
    # 2026 has 53 ISO weeks: W53 runs from Monday 28 December to Sunday 3 January 2027.
    Moment("week-53-end", "UTC", "2027-01-03T23:59:00"),
    # Local late evening is already tomorrow in UTC (and another weekday).
    Moment("new-york-evening", "America/New_York", "2026-12-06T23:30:00"),
    # Berlin's clocks go from 02:00 to 03:00 on 29 March 2026, and from 03:00 back to 02:00
    # on 25 October 2026 (02:30 happens twice).
    Moment("dst-before-spring", "Europe/Berlin", "2026-03-29T01:59:00"),
    Moment("dst-after-spring", "Europe/Berlin", "2026-03-29T03:00:00"),
    Moment("dst-autumn-first", "Europe/Berlin", "2026-10-25T02:30:00+02:00"),
    Moment("dst-autumn-second", "Europe/Berlin", "2026-10-25T02:30:00+01:00"),
)

DEFAULT_PYTEST_ARGS = ["-m", "not browser and not slow"]


def run(moment: Moment, pytest_args: list[str]) -> tuple[int, str, float]:
    """Run pytest at ``moment``; its exit status, its last line and its duration."""
    env = {**os.environ, "STASTE_TEST_NOW": moment.when, "STASTE_TEST_TIME_ZONE": moment.zone}
    env.pop("STASTE_REDIS_URL", None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
        env=env,
        capture_output=True,
        text=True,
    )
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / f"{moment.name}.txt").write_text(result.stdout + result.stderr)
    lines = result.stdout.strip().splitlines()
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    summary = "\n    ".join([*failures, lines[-1] if lines else result.stderr.strip()[-300:]])
    return result.returncode, summary, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="moments whose name contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the moments and stop")
    parser.add_argument("pytest_args", nargs="*", help="after --: what pytest runs")
    options = parser.parse_args(argv)
    moments = [m for m in MOMENTS if not options.only or any(part in m.name for part in options.only)]
    if options.list:
        for moment in moments:
            print(f"{moment.name:20} {moment.when:26} {moment.zone}")
        return 0
    failed = []
    for moment in moments:
        status, summary, seconds = run(moment, options.pytest_args or DEFAULT_PYTEST_ARGS)
        print(f"{moment.name:20} {moment.when:26} {moment.zone:17} {seconds:6.0f} s  {summary}", flush=True)
        if status != 0:
            failed.append(moment.name)
    verdict = f"; failed: {', '.join(failed)}" if failed else ""
    print(f"{len(moments) - len(failed)} of {len(moments)} moments green{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
