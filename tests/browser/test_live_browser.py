"""Live refresh and comparison with the previous period in a real headless Chromium.

The test process kicks into the same Redis the live server reads (pytest-django's live server
runs in a thread of this process, with the settings of the test), and reads what the page
draws through Chart.js' own registry, ``Chart.instances``.
"""

from __future__ import annotations

import datetime
import re
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from staste import conf
from staste.metrica import Metrica
from staste.registration import registry
from tests.browser.test_admin_browser import fill_sample_data, wait_drawn
from tests.statsapp.stats import gender_age

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Seconds between refreshes in these tests; a change must show within a few of them.
INTERVAL = 1
PATIENCE_MS = 15_000

#: The numbers a chart draws, read from Chart.js itself: {datasets: [{label, data, dash}], labels}.
CHART_DATA = """id => {
  const chart = Object.values(Chart.instances).find(c => c.canvas.id === id);
  if (!chart) { return null; }
  return {
    labels: chart.data.labels.slice(),
    datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data.slice(), dash: d.borderDash || []}))
  };
}"""
CHART_SUM = """([id, index]) => {
  const chart = Object.values(Chart.instances).find(c => c.canvas.id === id);
  return chart ? chart.data.datasets[index].data.reduce((a, b) => a + (b || 0), 0) : null;
}"""
HIDE = """hidden => {
  Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => hidden ? "hidden" : "visible"});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


@pytest.fixture
def live_settings(settings) -> Any:
    settings.STASTE_LIVE_INTERVAL = INTERVAL
    return settings


def log_in(page: Any, live_server: Any, path: str) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    page.goto(f"{live_server.url}/admin/login/?next={quote(path)}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "staste-pw")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(".*" + re.escape(path.split("?", 1)[0])))
    wait_drawn(page)


def chart_sum(page: Any, canvas_id: str, index: int = 0) -> float:
    return page.evaluate(CHART_SUM, [canvas_id, index])


def test_a_kick_made_now_appears_on_an_open_page_without_a_reload(live_server, browser_page, live_settings) -> None:
    counted = fill_sample_data()
    page = browser_page
    log_in(page, live_server, "/admin/staste/guest_visits_gender_age/?_last=24+hours")
    page.evaluate("() => { window.__stasteSamePage = true; }")
    assert page.locator("#staste-live").inner_text() == "live"
    before_line, before_pie = chart_sum(page, "staste-line"), chart_sum(page, "staste-breakdown")
    before_total = page.locator('.staste-stat[data-card="total"] dd').first.inner_text()

    for _ in range(3):
        gender_age.kick(gender="girl", age="16")

    page.wait_for_function(f"() => ({CHART_SUM})(['staste-line', 0]) === {before_line + 3}", timeout=PATIENCE_MS)
    page.wait_for_function(f"() => ({CHART_SUM})(['staste-breakdown', 0]) === {before_pie + 3}", timeout=PATIENCE_MS)
    total = page.locator('.staste-stat[data-card="total"] dd').first
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).textContent !== text",
        arg=['.staste-stat[data-card="total"] dd', before_total],
        timeout=PATIENCE_MS,
    )
    assert int(total.inner_text().replace(",", "")) == int(before_total.replace(",", "")) + 3
    girls = page.locator("#staste-breakdown-table tbody tr", has_text="girl").locator("td").first
    assert girls.inner_text().replace(",", "") != ""
    assert page.evaluate("() => window.__stasteSamePage") is True  # updated in place, never reloaded
    assert counted["all"] > 0


def test_refreshing_pauses_while_the_tab_is_hidden_and_by_hand(live_server, browser_page, live_settings) -> None:
    fill_sample_data()
    page = browser_page
    log_in(page, live_server, "/admin/staste/guest_visits_gender_age/?_last=60+minutes")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "data.json" in request.url else None)
    page.wait_for_function("() => document.documentElement.dataset.stasteRefreshed", timeout=PATIENCE_MS)

    shown_before = chart_sum(page, "staste-line")
    page.evaluate(HIDE, True)
    button = page.locator("#staste-live")
    assert button.inner_text() == "live · paused"
    assert button.get_attribute("aria-pressed") == "false"
    page.wait_for_timeout(300)  # a request already on its way may still land
    asked.clear()
    gender_age.kick(gender="boy", age="15")
    page.wait_for_timeout(3 * INTERVAL * 1000)
    assert asked == []  # nothing asked while hidden

    page.evaluate(HIDE, False)  # shown again: refreshes at once
    page.wait_for_function(f"() => ({CHART_SUM})(['staste-line', 0]) === {shown_before + 1}", timeout=PATIENCE_MS)
    assert button.inner_text() == "live"
    assert asked

    button.click()  # paused by hand
    assert button.inner_text() == "live · paused"
    page.wait_for_timeout(300)
    asked.clear()
    page.wait_for_timeout(3 * INTERVAL * 1000)
    assert asked == []
    with page.expect_request(lambda request: "data.json" in request.url, timeout=PATIENCE_MS):
        button.click()  # resumed: asks at once
    assert button.inner_text() == "live"


def test_compare_draws_the_previous_period_dashed_and_the_cards_show_the_change(
    live_server, browser_page, live_settings
) -> None:
    fill_sample_data()
    page = browser_page
    log_in(page, live_server, "/admin/staste/guest_visits_gender_age/?_last=24+hours")
    assert len(page.evaluate(CHART_DATA, "staste-line")["datasets"]) == 1

    page.check("#staste-compare")  # applies at once
    page.wait_for_url(re.compile(r".*_compare=previous"))
    wait_drawn(page)
    drawn = page.evaluate(CHART_DATA, "staste-line")
    current, previous = drawn["datasets"]
    assert previous["label"] == "total (previous period)"
    assert previous["dash"] and not current["dash"]
    assert len(previous["data"]) == len(current["data"]) == len(drawn["labels"]) == 24
    assert sum(previous["data"]) > 0  # the sample data spans a month
    change = page.locator('.staste-stat[data-card="total"] .staste-change')
    assert re.fullmatch(r"([▲▼] [\d.,]+%|= 0%|—) vs [\d.,]+", change.inner_text())

    # Live with the comparison on: both datasets stay, the current one moves.
    before = chart_sum(page, "staste-line", 0)
    gender_age.kick(gender="girl", age="17")
    page.wait_for_function(f"() => ({CHART_SUM})(['staste-line', 0]) === {before + 1}", timeout=PATIENCE_MS)
    assert len(page.evaluate(CHART_DATA, "staste-line")["datasets"]) == 2

    page.uncheck("#staste-compare")
    page.wait_for_url(lambda url: "_compare" not in url)
    wait_drawn(page)
    assert len(page.evaluate(CHART_DATA, "staste-line")["datasets"]) == 1


def test_compare_shows_the_change_of_distinct_ids_and_keeps_it_live(live_server, browser_page, live_settings) -> None:
    visitors = Metrica(name="browser_visitors", axes=[], uniques=True, title="Visitors")
    registry.register(visitors)
    try:
        now = conf.local()
        month_ago = now - datetime.timedelta(days=30)
        for unique in "abcd":  # the 30 days before the last 30: 4 distinct ids, in a day past the point
            visitors.kick(date=month_ago - datetime.timedelta(days=3), unique=unique)
        for unique in "ab":
            visitors.kick(date=now, unique=unique)
        page = browser_page
        log_in(page, live_server, "/admin/staste/browser_visitors/?_last=30+days&_compare=previous")
        card = page.locator('.staste-stat[data-card="uniques"]')
        assert card.locator("dd").first.inner_text() == "2"
        assert card.locator(".staste-change").inner_text() == "▼ 50% vs 4"
        assert "staste-down" in card.locator(".staste-change").get_attribute("class")

        for unique in "xyz":  # three new visitors: 5 against 4
            visitors.kick(date=conf.local(), unique=unique)
        page.wait_for_function(
            "sel => document.querySelector(sel).textContent === '5'",
            arg='.staste-stat[data-card="uniques"] dd',
            timeout=PATIENCE_MS,
        )
        page.wait_for_function(
            "sel => document.querySelector(sel).textContent.startsWith('▲ 25%')",
            arg='.staste-stat[data-card="uniques"] .staste-change',
            timeout=PATIENCE_MS,
        )
        assert page.js_errors == []
    finally:
        registry.unregister(visitors)


def test_the_dashboard_today_numbers_and_sparklines_are_live(live_server, browser_page, live_settings) -> None:
    fill_sample_data()
    page = browser_page
    log_in(page, live_server, "/admin/staste/")
    row = page.locator('tr.staste-metrica-row[data-metrica="guest_visits_gender_age"]')
    today = row.locator(".staste-today-value")
    before = int(today.inner_text().replace(",", ""))
    assert row.locator(".staste-change").inner_text()  # against the same time yesterday
    spark_id = row.locator("canvas").get_attribute("data-staste-chart")
    spark_before = page.evaluate(
        """id => { const c = Object.values(Chart.instances).find(c => c.canvas.dataset.stasteChart === id);
                   return c.data.datasets[0].data.reduce((a, b) => a + (b || 0), 0); }""",
        spark_id,
    )
    for _ in range(2):
        gender_age.kick(gender="boy", age="18")
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).textContent !== text",
        arg=['tr[data-metrica="guest_visits_gender_age"] .staste-today-value', today.inner_text()],
        timeout=PATIENCE_MS,
    )
    assert int(today.inner_text().replace(",", "")) == before + 2
    spark_after = page.evaluate(
        """id => { const c = Object.values(Chart.instances).find(c => c.canvas.dataset.stasteChart === id);
                   return c.data.datasets[0].data.reduce((a, b) => a + (b || 0), 0); }""",
        spark_id,
    )
    assert spark_after == spark_before + 2


def test_live_and_compare_speak_the_page_language(live_server, chromium, live_settings) -> None:
    fill_sample_data()
    context = chromium.new_context(locale="ru-RU", viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        log_in(page, live_server, "/admin/staste/guest_visits_gender_age/?_last=24+hours&_compare=previous")
        button = page.locator("#staste-live")
        assert button.inner_text() == "онлайн"
        drawn = page.evaluate(CHART_DATA, "staste-line")
        assert [d["label"] for d in drawn["datasets"]] == ["сумма", "сумма (предыдущий период)"]
        assert page.evaluate("() => Object.values(Chart.instances)[0].options.locale") == "ru"
        change = page.locator('.staste-stat[data-card="total"] .staste-versus').inner_text()
        assert change.startswith("было ")
        before = chart_sum(page, "staste-line")
        for _ in range(1000):
            gender_age.kick(gender="girl", age="16")
        page.wait_for_function(f"() => ({CHART_SUM})(['staste-line', 0]) === {before + 1000}", timeout=PATIENCE_MS)
        total = page.locator('.staste-stat[data-card="total"] dd').first.inner_text()
        assert "\xa0" in total or " " in total  # refreshed in place, still with Russian digit grouping
        assert page.locator("#staste-line-table thead th").first.text_content() == "час"
        page.evaluate(HIDE, True)
        assert button.inner_text() == "онлайн · пауза"
    finally:
        context.close()


def test_a_refresh_without_redis_says_so_keeps_the_numbers_and_recovers(
    live_server, browser_page, live_settings, redis_server
) -> None:
    fill_sample_data()
    page = browser_page
    log_in(page, live_server, "/admin/staste/guest_visits_gender_age/?_last=24+hours")
    before = chart_sum(page, "staste-line")
    button = page.locator("#staste-live")
    live_settings.STASTE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: 503 from data.json
    page.wait_for_function(
        "() => document.getElementById('staste-live').dataset.state === 'failed'", timeout=PATIENCE_MS
    )
    assert button.inner_text() == "live · no answer"
    assert chart_sum(page, "staste-line") == before  # the numbers shown stay
    live_settings.STASTE_REDIS_URL = redis_server.url
    gender_age.kick(gender="boy", age="15")
    page.wait_for_function(f"() => ({CHART_SUM})(['staste-line', 0]) === {before + 1}", timeout=PATIENCE_MS)
    assert button.inner_text() == "live"
    page.js_errors[:] = [error for error in page.js_errors if "503" not in error]  # the failed fetches, expected
