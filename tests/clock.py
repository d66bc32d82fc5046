"""The clock every test runs at: staste's one clock (``staste.timescale.now``), pinned.

A test must not know what day it is, so the whole session runs at one moment: the value of
``STASTE_TEST_NOW`` (an ISO date-time, naive in the tests' time zone or with an offset), else
the moment the session began.  The moment is printed in pytest's header and passed on, in the
environment, to the processes a test starts (the cluster re-run's pytest, xdist workers), so
any run can be repeated on the same date:

    STASTE_TEST_NOW=2026-12-06T23:59:00 .venv/bin/pytest tests/test_weeks.py

The clock stands still within a test (two reads of "now" agree, whatever the load); a test
that needs time to pass moves it (``clock.advance(seconds)``, ``clock.set(moment)``), and
the next test starts at the pinned moment again.  ``tests/run_on_dates.py`` runs the
date-sensitive modules at every kind of moment that has broken a calendar.
"""

from __future__ import annotations

import datetime
import os
import time
from zoneinfo import ZoneInfo

ENVIRON = "STASTE_TEST_NOW"


def parse(text: str, zone: ZoneInfo) -> float:
    """The timestamp of ``text`` (ISO 8601; naive means on the wall clock of ``zone``)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{ENVIRON}={text!r} is no ISO date-time (e.g. 2026-12-06T23:59:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def session_moment(zone: ZoneInfo) -> float:
    """The moment of this session: ``STASTE_TEST_NOW``, else now (written to the environment,
    so the processes the session starts run at the same moment)."""
    given = os.environ.get(ENVIRON)
    if given:
        return parse(given, zone)
    moment = float(int(time.time()))
    os.environ[ENVIRON] = datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()
    return moment


def describe(timestamp: float, zone: ZoneInfo) -> str:
    local = datetime.datetime.fromtimestamp(timestamp, zone)
    return f"{local:%A %Y-%m-%d %H:%M:%S} {zone.key} (UTC{local:%z})"


class Clock:
    """What ``staste.timescale.now`` returns while a test runs: a moment that only the test moves."""

    def __init__(self, timestamp: float) -> None:
        self.pinned = self.timestamp = timestamp

    def __call__(self) -> float:
        return self.timestamp

    def set(self, moment: datetime.datetime) -> None:
        """Move to ``moment`` (naive: on the wall clock of staste's time zone)."""
        from staste import conf

        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=conf.time_zone())
        self.timestamp = moment.timestamp()

    def advance(self, seconds: float) -> None:
        self.timestamp += seconds

    def reset(self) -> None:
        self.timestamp = self.pinned

    def set_to_real_time(self) -> None:
        """Stand at the real present: for a test that reads what processes of its own wrote
        "now" by the real clock (the demo's set-up), which no pinned moment reaches."""
        self.timestamp = time.time()
