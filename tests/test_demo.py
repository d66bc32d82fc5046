"""The set-up steps of `make demo`, run for real but without the server: `migrate --noinput` then
`demo_setup`, in fresh processes with the demo's own settings, into a temporary directory and
the test Redis (the demo reads STASTE_REDIS_URL from the environment)."""

from __future__ import annotations

import datetime
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password

from staste import conf
from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica

REPO = Path(__file__).resolve().parents[1]
MANAGE = REPO / "demo" / "manage.py"
MAKEFILE_STEPS = [["migrate", "--noinput"], ["demo_setup"]]  # what `make demo-setup` runs

pytestmark = pytest.mark.slow


def demo_env(directory: Path, redis_url: str, prefix: str) -> dict[str, str]:
    """The environment of a demo process: its settings, a database and data dir of its own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "STASTE_", "DEMO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="demo_site.settings",
        DEMO_DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}",
        STASTE_DATA_DIR=str(directory / "staste"),
        STASTE_REDIS_URL=redis_url,
        STASTE_METRICS_PREFIX=prefix,
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=240
    )


def demo_metricas() -> tuple[Metrica, Metrica, AveragedMetrica]:
    """The demo's metricas as its stats.py defines them (same names and axes), unregistered here."""
    genders = Axis(choices=["boy", "girl"])
    return (
        Metrica(name="guest_visits", axes=[("gender", genders), ("age", StoredChoiceAxis(value_type=int))]),
        Metrica(name="pocket_money", axes=[("shop", StoredChoiceAxis()), ("gender", genders)], multiplier=100),
        AveragedMetrica(name="visit_length", axes=[("gender", genders)], multiplier=10),
    )


def test_make_demo_set_up_steps(tmp_path: Path, redis_server, prefix: str) -> None:
    env = demo_env(tmp_path, redis_server.url, prefix)
    outputs = []
    for step in MAKEFILE_STEPS:
        done = manage(env, *step)
        assert done.returncode == 0, f"{step}: {done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)

    # A staff login, printed, that works.
    found = re.search(r"user: (\S+)\s+password: (\S+)", outputs[-1])
    assert found, outputs[-1]
    username, password = found.groups()
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        stored, is_staff, is_superuser = db.execute(
            "SELECT password, is_staff, is_superuser FROM auth_user WHERE username = ?", (username,)
        ).fetchone()
    assert username == "admin" and is_staff and is_superuser
    assert check_password(password, stored)

    # A year of data, in the test Redis under this test's prefix.
    guests, money, length = demo_metricas()
    total = guests.total()
    assert total > 10_000
    assert {gender for gender, count in guests.iterate("gender") if count} == {"boy", "girl"}
    year_ago = conf.local() - datetime.timedelta(days=340)
    assert guests.timespan(year=year_ago.year, month=year_ago.month).total() > 0
    assert guests.timeserie(conf.local() - datetime.timedelta(hours=12), scale="hour")  # recent hours kept
    assert money.total() > 0 and {shop for shop, _ in money.iterate("shop")} >= {"candy", "books"}
    assert length.count() == total and 5 <= length.average() <= 240
    assert "Added" in outputs[-1] and "guests over 365 days" in outputs[-1]

    # Running the set-up again changes nothing and prints the same login.
    again = manage(env, "demo_setup")
    assert again.returncode == 0, again.stderr
    assert f"password: {password}" in again.stdout
    assert "holds" in again.stdout and guests.total() == total

    # More data can be added at any time.
    more = manage(env, "staste_fake_data", "--days", "3", "--seed", "1", "--no-progress")
    assert more.returncode == 0, more.stderr
    assert guests.total() > total

    # Django's checks pass on the demo's settings (the response-time middleware is on).
    checked = manage(env, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "staste.I001" not in checked.stdout + checked.stderr


def test_demo_setup_says_which_redis_it_could_not_reach(tmp_path: Path, prefix: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = demo_env(tmp_path, f"redis://127.0.0.1:{port}/0", prefix)
    done = manage(env, "demo_setup")
    assert done.returncode == 1
    assert f"could not reach Redis at redis://127.0.0.1:{port}/0" in done.stderr
    assert "unset STASTE_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "staste" / "demo-login.txt").exists()  # stopped before creating the login
