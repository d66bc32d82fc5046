"""staste speaks the admin's language: its catalogue is current and complete, and pages rendered
in Russian keep no English label.

The catalogue checks run GNU gettext's tools, as ``makemessages`` does (``make test`` installs
them on Debian); ``make messages`` refreshes the catalogue after a user-facing string changed.
"""

from __future__ import annotations

import datetime
import difflib
import gettext
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from staste import conf, formats
from staste.axis import Axis, HierarchicalAxis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from staste.registration import registry

PACKAGE = Path(__file__).resolve().parents[1] / "staste"
CATALOGUE = Path("locale") / "ru" / "LC_MESSAGES"
TOOLS = ("xgettext", "msgmerge", "msgfmt", "msgattrib")


def require_gettext() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"GNU gettext is needed ({', '.join(missing)} missing): apt-get install gettext (make test does)")


def without_dates(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(('"POT-Creation-Date:', '"PO-Revision-Date:'))]


def test_the_catalogue_is_current(tmp_path: Path) -> None:
    """``makemessages`` run on a copy of the package finds exactly the entries shipped."""
    require_gettext()
    copy = tmp_path / "staste"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "ru", "--no-location", "--no-obsolete"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = without_dates((copy / CATALOGUE / "django.po").read_text(encoding="utf-8"))
    shipped = without_dates((PACKAGE / CATALOGUE / "django.po").read_text(encoding="utf-8"))
    difference = "\n".join(difflib.unified_diff(shipped, fresh, "shipped", "makemessages", lineterm="", n=1))
    assert fresh == shipped, f"the catalogue is not current: run `make messages` and translate\n{difference}"


@pytest.mark.parametrize("which", ["--untranslated", "--only-fuzzy"])
def test_every_entry_is_translated_and_none_is_fuzzy(which: str) -> None:
    require_gettext()
    found = subprocess.run(
        ["msgattrib", which, "--no-wrap", str(PACKAGE / CATALOGUE / "django.po")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    entries = re.findall(r'^msgid "(.*)"$', found, flags=re.MULTILINE)
    assert entries == [], f"entries {which[2:]}: {entries}"


def test_the_compiled_catalogue_matches_its_source(tmp_path: Path) -> None:
    require_gettext()
    compiled = tmp_path / "django.mo"
    subprocess.run(
        ["msgfmt", "--check", "-o", str(compiled), str(PACKAGE / CATALOGUE / "django.po")],
        check=True,
        capture_output=True,
    )
    with compiled.open("rb") as fresh, (PACKAGE / CATALOGUE / "django.mo").open("rb") as shipped:
        assert gettext.GNUTranslations(shipped)._catalog == gettext.GNUTranslations(fresh)._catalog, (
            "django.mo is older than django.po: run `make messages`"
        )


# -- pages in Russian ----------------------------------------------------------------------------

#: Latin words a Russian page may keep: names of things (formats, Redis, percentiles, settings),
#: the query string's own words, and what the test's metricas are made of (axis names and values).
ALLOWED_LATIN = {
    "CSV",
    "JSON",
    "Redis",
    "Django",
    "p50",
    "p95",
    "p99",
    "UTC",
    "STASTE_RETENTION",
    "STASTE_TIME_ZONE",
    "ms",
    "redis",
    "staste",
    "view_metrica",
    "_last",
    "_span",
    "_compare",
    "_by",
    "_measure",
    "_scale",
    "previous",
    "all",
    "colour",
    "red",
    "blue",
    "lang",
    "kind",
    "path",
    "out",
    "se",
    "social",
    "google",
    "next",  # the bad value of a query string, quoted back in the 400
}


class VisibleText(html.parser.HTMLParser):
    """The words a reader meets on a page: text, titles, labels, and the charts' own words."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("title", "aria-label", "placeholder", "alt"):
            if found.get(name):
                self.parts.append(found[name] or "")
        if tag == "input" and found.get("type") in ("submit", "button") and found.get("value"):
            self.parts.append(found["value"] or "")
        if tag in ("style", "svg") or (tag == "script" and found.get("type") != "application/json"):
            self.skip += 1
        self.json = tag == "script" and found.get("type") == "application/json"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "svg") or (tag == "script" and not self.json and self.skip):
            self.skip = max(0, self.skip - 1)
        self.json = False

    def handle_data(self, data: str) -> None:
        if self.json:
            self.parts += list(_chart_words(json.loads(data)))
        elif not self.skip:
            self.parts.append(data)


def _chart_words(spec: Any) -> Iterator[str]:
    """What a chart spec (or the live settings) shows in words: dataset labels, axis titles, x."""
    if not isinstance(spec, dict):
        return
    if "datasets" not in spec and "url" not in spec:  # words for the scripts (staste-words)
        yield from (str(text) for text in spec.values() if isinstance(text, str))
    for dataset in spec.get("datasets", []):
        yield str(dataset.get("label", ""))
    yield from (str(title) for title in (spec.get("axes") or {}).values())
    if spec.get("x_label") or spec.get("x"):
        yield str(spec.get("x_label") or spec["x"])
    yield from (
        (str(text) for text in (spec.get("labels") or {}).values()) if isinstance(spec.get("labels"), dict) else ()
    )


def project_words() -> set[str]:
    """The registered metricas' own words (names, titles, axes): the project's, not staste's."""
    words: set[str] = set()
    for metrica in registry:
        texts = [metrica.name, str(metrica.title), str(metrica.description or ""), str(metrica.category or "")]
        texts += [f"{name} {type(axis).__name__}" for name, axis in metrica.axes.items()]
        for text in texts:
            words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]+", text))
    return words


def django_chrome(client: Any) -> set[str]:
    """The words Django's own admin chrome (skip link, theme toggle, sidebar, breadcrumbs)
    leaves English in its Russian catalogue, in some versions (4.2: "Sidebar", "Breadcrumbs"):
    what Django's own pages show untranslated (an index and a change list) is Django's."""
    return set().union(*(english_left(client.get(url).content.decode()) for url in ("/admin/", "/admin/auth/user/")))


def english_left(page: str) -> set[str]:
    reader = VisibleText()
    reader.feed(page)
    text = " ".join(reader.parts)
    text = re.sub(r"(?:redis|unix|https?)://\S+", " ", text)  # addresses are what they are
    allowed = ALLOWED_LATIN | project_words() | set(conf.time_zone().key.split("/"))  # "America", "New_York"
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]+", text))
    return {word for word in words if word not in allowed and not re.fullmatch(r"W\d\d", word)}  # ISO weeks


@pytest.fixture
def russian(client: Any, django_user_model: Any) -> Any:
    user = django_user_model.objects.create_superuser("админ", "admin@example.com", "pw")
    client.force_login(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "ru"
    yield client
    translation.deactivate()  # LocaleMiddleware leaves the last request's language active in this thread


@pytest.fixture
def russian_metricas() -> Iterator[list[Metrica]]:
    made = [
        Metrica(
            name="ru_hits",
            axes=[("colour", Axis(choices=["red", "blue"])), ("path", HierarchicalAxis())],
            title="Посещения",
            description="Посещения сайта по цвету",
            category="Гости",
        ),
        AveragedMetrica(
            name="ru_latency", axes=[("kind", StoredChoiceAxis())], histogram=True, unit="ms", title="Задержка"
        ),
    ]
    for metrica in made:
        registry.register(metrica)
    now = conf.local()
    for days in (0, 1, 40):
        moment = now - datetime.timedelta(days=days)
        made[0].kick(date=moment, colour="red", path=("out", "se", "google"))
        made[0].kick(date=moment, colour="blue", path=("out", "social"))
        made[1].kick(date=moment, value=120, kind="out")
        made[1].kick(date=moment, value=30, kind="se")
    yield made
    for metrica in made:
        registry.unregister(metrica)


@pytest.mark.django_db
def test_pages_rendered_in_russian_keep_no_english_label(russian: Any, russian_metricas: list[Metrica]) -> None:
    today = conf.local().strftime("%Y-%m-%d")
    pages = [
        "/admin/staste/",
        "/admin/staste/ru_hits/",
        "/admin/staste/ru_hits/?_last=24+hours&_compare=previous",
        "/admin/staste/ru_hits/?_last=12+weeks",
        "/admin/staste/ru_hits/?_last=30+days&_scale=week",
        f"/admin/staste/ru_hits/?_span={today}&_compare=previous&_by=path",
        "/admin/staste/ru_hits/?path=out&_span=all",
        "/admin/staste/ru_latency/?_last=60+minutes&_compare=previous",
        f"/admin/staste/ru_latency/?_span={today[:7]}&_measure=average",
        "/admin/staste/ru_hits/?_span=2024-02-30",  # a 400 keeps its controls and says why in Russian
        "/admin/staste/ru_hits/?_compare=next",
    ]
    # Django's own admin chrome (skip link, theme toggle, sidebar) is translated by Django's
    # catalogue, which leaves a few strings English in some versions: what Django's own
    # pages show untranslated (an index and a change list) is Django's, not staste's.
    djangos = django_chrome(russian)
    for path in pages:
        response = russian.get(path)
        assert response.status_code in (200, 400), path
        page = response.content.decode()
        assert '<html lang="ru"' in page, path
        assert english_left(page) - djangos == set(), path
    data = json.loads(russian.get("/admin/staste/ru_hits/data.json?_last=24+hours&_compare=previous").content)
    shown = " ".join(card["label"] + " " + (card["change"] or {}).get("versus", "") for card in data["shown"]["cards"])
    assert english_left(f"<p>{shown}</p>") == set()
    assert data["line"]["chart"]["datasets"][1]["label"] == "сумма (предыдущий период)"


@pytest.mark.django_db
def test_numbers_follow_the_language(russian: Any, russian_metricas: list[Metrica]) -> None:
    for _ in range(1234):
        russian_metricas[0].kick(colour="red", path=("out",))
    page = russian.get("/admin/staste/ru_hits/?_last=60+minutes").content.decode()
    assert re.search(r"<dd>1\xa02\d\d</dd>", page)  # a Russian thousands separator
    english = russian.get("/admin/staste/ru_hits/?_last=60+minutes", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert re.search(r"<dd>1,2\d\d</dd>", english)


def test_a_translated_range_and_measure() -> None:
    with translation.override("ru"):
        assert formats.range_label("24 hours") == "Последние 24 часа"
        assert formats.range_label("1 hour") == "Последний 1 час"
        assert formats.range_label("12 weeks") == "Последние 12 недель"
        assert formats.range_label("60 minutes") == "Последние 60 минут"
        assert formats.measure_label("count") == "количество"
    with translation.override("en"):
        assert formats.range_label("24 hours") == "Last 24 hours"


@pytest.mark.django_db
@pytest.mark.urls("tests.test_chart_views")
def test_the_generic_chart_views_speak_the_language(client: Any) -> None:
    from tests.statsapp.stats import gender_age, pocket_money

    pocket_money.kick(value=2.5, gender="girl")
    gender_age.kick(gender="girl", age="16")
    money = client.get("/money/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert '<html lang="ru">' in money
    assert "Диапазон" in money and ">Последние 60 минут</option>" in money and ">Показать</button>" in money
    pie = client.get("/pie-any/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Разбить по" in pie and ">времени</option>" in pie
    translation.deactivate()
    for page in (money, pie):
        assert english_left(page) <= {"girl", "boy", "gender", "age"}, page


# -- what a page refuses, in its reader's language ---------------------------------------------

#: The refused value quoted back, the units a range is written with, the settings named.
REFUSAL_LATIN = {
    "forever",
    "yesterday",
    "abc",
    "x" * 80,  # a long value is cut short
    "T14",  # a span's hour, as the query string writes it
    "minutes",
    "hours",
    "days",
    "weeks",
    "months",
    "years",
    "STASTE_MAX_QUERY_WORK",
    "STASTE_MAX_BUCKETS",
    "DATA_UPLOAD_MAX_NUMBER_FIELDS",
}


def refusal_of(page: str) -> str:
    found = re.search(r'<li class="error staste-bad-request">(.*?)</li>', page, re.S)
    assert found, page[-2000:]
    return html.unescape(found.group(1))


@pytest.fixture
def russian_ages() -> Iterator[Metrica]:
    made = Metrica(
        name="ru_ages",
        axes=[("age", Axis(value_type=int)), ("path", HierarchicalAxis(max_depth=2)), ("kind", StoredChoiceAxis())],
        date_scales=["year", "month", "day"],
        title="Возрасты",
    )
    registry.register(made)
    made.kick(age=18, path=("out", "se"), kind="out")
    yield made
    registry.unregister(made)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "english"),
    [
        ("age=%2B1", "bad filter age='+1': age takes whole numbers, such as 18"),
        ("age=abc", "bad filter age='abc': age takes whole numbers, such as 18"),
        ("kind=" + "x" * 1001, "kind takes at most 1,000 characters; this value is 1,001 characters long"),
        ("path=out&path=se&path=google", "path takes paths of at most 2 levels"),
        ("_last=forever", "bad range 'forever': give a number and a unit of time"),
        ("_last=0+days", "bad range '0 days': the number of days must be between 1 and 10,000"),
        ("_last=9999+years", "bad range '9999 years': it starts before the year 1"),
        ("_span=yesterday", "bad _span 'yesterday': give all, a year (2024)"),
        ("_span=2024-13", "bad _span '2024-13': this date or time is out of range"),
        ("_span=2024-03-10T14", "bad _span '2024-03-10T14': ru_ages does not record hours"),
        ("_last=60+minutes", "bad _last '60 minutes': ru_ages does not record minutes"),
        ("_last=30+days&_scale=week", "more than 4 weeks (STASTE_MAX_BUCKETS): draw it by days or"),
        ("_last=30+days", "more than STASTE_MAX_QUERY_WORK allows (2); choose a shorter range"),
        ("&".join(["a="] * 1001), "bad query string: it has more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS allows"),
    ],
)
def test_what_a_page_refuses_is_said_in_its_language(
    russian: Any, russian_ages: Metrica, settings: Any, query: str, english: str
) -> None:
    """Each kind of bad input (a value an axis refuses, a range, a span, the query budget, too
    many buckets, a query string Django cannot parse) is a 400 whose message is the page's
    language: the English sentence is nowhere on the Russian page, which keeps no English word
    but the refused value, the units a range is written with and the settings named."""
    if "_scale=week" in query:
        settings.STASTE_MAX_BUCKETS = 31  # 30 days fit, the 5 or 6 weeks read as their 35 or 42 days do not
    if query == "_last=30+days":
        settings.STASTE_MAX_QUERY_WORK = 2  # the page reads more counters than that
    url = f"/admin/staste/ru_ages/?{query}"
    in_english = russian.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert in_english.status_code == 400
    english_message = refusal_of(in_english.content.decode())
    assert english in english_message
    translation.deactivate()
    response = russian.get(url)
    assert response.status_code == 400
    page = response.content.decode()
    message = refusal_of(page)
    assert english_message not in html.unescape(page) and re.search("[\u0430-\u044f]", message), message
    assert english_left(page) - django_chrome(russian) - REFUSAL_LATIN == set(), message
    as_json = russian.get(f"/admin/staste/ru_ages/data.json?{query}")
    json_page = as_json["Content-Type"] == "application/json"
    assert as_json.status_code == 400
    assert (as_json.json()["error"] if json_page else as_json.content.decode()) == message  # the same words


@pytest.mark.django_db
def test_a_dashboard_past_the_query_budget_says_so_in_its_language(
    russian: Any, russian_ages: Metrica, settings: Any
) -> None:
    settings.STASTE_MAX_QUERY_WORK = 2  # far below what the rows read together
    english = "more than STASTE_MAX_QUERY_WORK allows (2); choose a shorter range"
    in_english = russian.get("/admin/staste/", HTTP_ACCEPT_LANGUAGE="en")
    assert in_english.status_code == 200 and english in html.unescape(in_english.content.decode())
    translation.deactivate()
    page = russian.get("/admin/staste/")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    assert english not in text and "больше счётчиков" in text and "STASTE_MAX_QUERY_WORK" in text
    assert russian.get("/admin/staste/data.json").status_code == 503  # the live refresh keeps what it shows


@pytest.mark.django_db
@pytest.mark.urls("tests.test_chart_views")
@pytest.mark.parametrize(
    ("query", "english"),
    [
        ("gender=robot", "bad filter gender='robot': gender takes one of boy, girl"),
        ("last=forever", "bad range 'forever': give a number and a unit of time"),
        ("year=soon", "year= must be a whole number, not 'soon'"),
        ("month=2", "month= needs year= too"),
        ("year=2010&month=13", "month=13 is out of range 1..12"),
        ("measure=average", "measure='average' needs an AveragedMetrica"),
        ("limit=0", "limit= must be at least 1, not 0"),
    ],
)
def test_a_chart_views_refusal_is_said_in_its_language(client: Any, query: str, english: str) -> None:
    """What a visitor can get wrong in a chart view's query string is a 400 in the page's
    language (the query string's own words, and the class a metrica must be, aside)."""
    in_english = client.get(f"/pie/?{query}", HTTP_ACCEPT_LANGUAGE="en")
    assert in_english.status_code == 400 and english in html.unescape(in_english.content.decode())
    translation.deactivate()
    page = client.get(f"/pie/?{query}", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    translation.deactivate()
    assert english not in html.unescape(page)
    query_words = {"year", "month", "day", "hour", "minute", "last", "limit", "measure", "AveragedMetrica"}
    query_words |= {"soon", "average"}  # the refused values
    assert english_left(page) <= {"girl", "boy", "gender", "robot", "forever"} | REFUSAL_LATIN | query_words, page
    assert client.get(f"/pie/?{query}&format=json", HTTP_ACCEPT_LANGUAGE="ru").status_code == 400
    translation.deactivate()
