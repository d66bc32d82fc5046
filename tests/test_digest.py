"""``manage.py staste digest``: a pinned day and week of real counters, mailed in English and in
Russian, numbers spelled as the admin spells them."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import override_settings

from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry

pytestmark = pytest.mark.django_db

DAY = datetime.date(2024, 3, 9)  # a Saturday; the week is 2024-W10, from Monday the 4th


@pytest.fixture
def filled() -> Iterator[None]:
    visits = Metrica(name="digest_visits", axes=[("gender", Axis(choices=["boy", "girl"]))], title="Visits")
    money = Metrica(name="digest_money", axes=[("shop", StoredChoiceAxis())], multiplier=100, title="Money", unit="€")
    timing = AveragedMetrica(
        name="digest_timing", axes=[("view", StoredChoiceAxis())], histogram=True, unit="ms", multiplier=1000
    )
    saved = registry.save()
    for metrica in (visits, money, timing):
        registry.register(metrica)
    at = datetime.datetime(2024, 3, 9, 12)
    before = datetime.datetime(2024, 3, 8, 12)
    for gender, times in (("girl", 4), ("boy", 2)):
        for _ in range(times):
            visits.kick(date=at, gender=gender)
    for _ in range(4):
        visits.kick(date=before, gender="boy")
    money.kick(value=1234.5, date=at, shop="toys")
    money.kick(value=100, date=before, shop="toys")
    for view, now_ms, then_ms in (("shop.a", 100, 50), ("shop.b", 300, 300), ("shop.c", 20, 40)):
        for _ in range(10):
            timing.kick(value=now_ms, date=at, view=view)
            timing.kick(value=then_ms, date=before, view=view)
    timing.kick(value=5000, date=datetime.datetime(2024, 3, 4, 8), view="shop.monday")  # in the week, not the day
    with override_settings(STASTE_RESPONSE_TIME_METRICA="digest_timing", ADMINS=[("Owner", "owner@example.com")]):
        yield
    registry.restore(saved)


def digest(*args: str) -> mail.EmailMultiAlternatives:
    call_command("staste", "digest", *args, "--metrica", "digest_visits", "--metrica", "digest_money",
                 "--metrica", "digest_timing")  # fmt: skip
    assert len(mail.outbox) == 1
    return mail.outbox[0]


def test_the_daily_digest_in_english(filled) -> None:
    message = digest("--date", "2024-03-09")
    assert message.subject == "[Django] Daily digest: 2024-03-09"
    assert message.to == ["owner@example.com"]
    text = message.body
    assert "== Visits (digest_visits) ==" in text
    assert "Total: 6  ▲ 50% vs 4" in text
    assert "Top gender:\n  1. girl: 4\n  2. boy: 2" in text
    assert "Total: 1,234.50 €  ▲ 1,134% vs 100 €" in text
    assert "/admin/staste/digest_visits/?_span=2024-03-09" in text
    slowest = text.split("== Slowest views by p95 ==")[1]
    order = re.findall(r"\d\. (shop\.\w+): ", slowest)
    assert order == ["shop.b", "shop.a", "shop.c"]  # shop.monday was not that day
    assert re.search(r"shop\.a: [\d.]+ ms  ▲ \d+% vs [\d.]+ ms · 10 events", slowest)
    assert re.search(r"shop\.c: [\d.]+ ms  ▼ \d+%", slowest)
    html, kind = message.alternatives[0]
    assert kind == "text/html" and "Slowest views by p95" in html and "1,234.50 €" in html


def test_the_weekly_digest_covers_the_iso_week(filled) -> None:
    message = digest("--period", "week", "--date", "2024-03-09")
    assert message.subject == "[Django] Weekly digest: 2024-W10 (2024-03-04 to 2024-03-10)"
    assert "Total: 10  ▲ 10 vs 0" in message.body or "Total: 10  — vs 0" in message.body
    assert "1. shop.monday: " in message.body


def test_the_digest_in_russian(filled) -> None:
    message = digest("--date", "2024-03-09", "--language", "ru", "--to", "a@example.com,b@example.com")
    assert message.to == ["a@example.com", "b@example.com"]
    text = message.body
    assert message.subject == "[Django] Сводка за день: 2024-03-09"
    assert "Сумма: 6  ▲ 50% было 4" in text
    assert "Сумма: 1\xa0234,50 €" in text
    assert "Самые медленные представления по p95" in text
    assert "10 событий" in text
    english = re.findall(r"\b(Total|Top|Slowest|events|All statistics)\b", text)
    assert english == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--metrica", "nope"], "no metrica named 'nope'"),
        (["--date", "2024-13-01"], "give a day as YYYY-MM-DD"),
        (["--language", "xx"], "no such language"),
    ],
)
def test_bad_arguments_are_command_errors(filled, args: list[str], words: str) -> None:
    with pytest.raises(CommandError, match=words):
        call_command("staste", "digest", *args)
    assert mail.outbox == []


def test_without_recipients_nothing_is_sent(filled) -> None:
    with override_settings(ADMINS=[]), pytest.raises(CommandError, match="No recipient"):
        call_command("staste", "digest", "--date", "2024-03-09")
