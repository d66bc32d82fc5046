"""``manage.py staste alerts`` end to end, in processes of their own: four runs started at once
against one firing alert send exactly one mail, through a real SMTP server on loopback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import smtp_server

REPO = Path(__file__).resolve().parents[1]
RUNS = 4

pytestmark = pytest.mark.slow

SETUP = """
from staste.models import Alert
from tests.statsapp.stats import gender_age
Alert.objects.create(name="Girls", metrica=gender_age.name, filters={"gender": "girl"}, measure="total",
                     window="60 minutes", above=3, recipients="owner@example.com")
for _ in range(5):
    gender_age.kick(gender="girl", age=18)
"""


def test_runs_at_once_send_one_mail_through_a_real_smtp_server(tmp_path: Path, redis_server, prefix: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "STASTE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.alerts_settings",
        ALERTS_TEST_DATABASE=str(tmp_path / "db.sqlite3"),
        STASTE_REDIS_URL=redis_server.url,
        STASTE_METRICS_PREFIX=prefix,
        PYTHONPATH=str(REPO),
    )

    def django(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )

    assert django("migrate", "--noinput", "-v", "0").returncode == 0
    made = django("shell", "-c", SETUP)
    assert made.returncode == 0, made.stderr
    with smtp_server() as (port, mailbox):
        env["ALERTS_TEST_SMTP_PORT"] = str(port)
        command = [sys.executable, "-m", "django", "staste", "alerts"]
        runs = [
            subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(RUNS)
        ]
        outputs = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0] * RUNS, outputs
        told = [out for out, _err in outputs if "-> firing (mailed)" in out]
        assert len(told) == 1, outputs
        assert len(mailbox.messages) == 1
        message = mailbox.messages[0]
        assert message["Subject"] == "[Django] Alert firing: Girls"
        assert message["To"] == "owner@example.com" and message["From"] == "staste@example.com"
        assert mailbox.envelopes[0].rcpt_tos == ["owner@example.com"]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        link = "https://shop.example/admin/staste/guest_visits_gender_age/?gender=girl&_last=60+minutes"
        assert link in text and link.replace("&", "&amp;") in html
        assert "total of Guest visits (gender=girl), last 60 minutes: 5" in text

        again = django("staste", "alerts")  # still firing: quiet
        assert "0 change(s)" in again.stdout and len(mailbox.messages) == 1
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        events = db.execute("SELECT previous, state, mailed FROM staste_alertevent ORDER BY id").fetchall()
    assert events == [("unknown", "firing", 1)]
