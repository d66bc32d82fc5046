"""The Performance pages in a real headless Chromium: drawn without a script error at a laptop's, a
wide screen's and a phone's width, light and dark, in English and Russian, never scrolling
sideways (a phone shows each view as a card, every number under its column's name); the view
page's stacked chart; sorting by a column; and the live refresh putting a new view in the table."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from staste import database, middleware, timing
from staste.registration import registry
from tests.browser.test_admin_browser import wait_drawn

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = [(1366, 768), (1920, 1080), (390, 844)]
SHOP = "shop.views.catalogue.product_detail_with_reviews [shop:product-detail-with-reviews]"
PAGES = {
    "views": "/admin/staste/performance/",
    "view": "/admin/staste/performance/view/?view=" + quote(SHOP),
    "jobs": "/admin/staste/performance/jobs/",
}


@pytest.fixture
def sample(settings) -> Any:
    """Requests of three views (one with an N+1), and job runs, kicked now; registry restored."""
    settings.STASTE_MIN_RANKED_COUNT = 5
    saved = registry.save()
    rt = middleware.response_time_metrica()
    queries, db_time, n_plus_one = database.metricas()
    for view, ms, statements, repeated in ((SHOP, 180, 27, 25), ("home.views.index [home]", 40, 2, 0),
                                           ("search.views.results [search]", 900, 5, 0)):  # fmt: skip
        for step in range(12):
            value = ms * (1 + step / 10)
            rt.kick(value, buffered=False, view=view, method="GET", status="5xx" if step == 11 else "2xx")
            queries.kick(statements, buffered=False, view=view)
            db_time.kick(value * 0.4, buffered=False, view=view)
            if repeated:
                n_plus_one.kick(
                    repeated, buffered=False, view=view, statement='SELECT "shop"."id" FROM "shop" WHERE id = ?'
                )
    tasks = timing.task_metrica()
    for step in range(8):
        tasks.kick(
            300 + step, buffered=False, task="prices.import", state="success" if step else "builtins.TimeoutError"
        )
    yield settings
    registry.restore(saved)
    middleware._metricas.clear()


def log_in(page: Any, url: str, path: str) -> None:
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    page.goto(f"{url}/admin/login/?next={quote(path)}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "staste-pw")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(".*" + re.escape(path.split("?", 1)[0])))


def wide(page: Any) -> list[str]:
    """The elements that reach past the window's right edge (what makes a page scroll sideways)."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right >"
        " window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + e.textContent.slice(0, 40))"
    )


def overflow(page: Any) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_pages_at_every_width_light_and_dark(live_server, chromium, sample, artifacts_dir, width, height) -> None:
    for scheme in ("light", "dark"):
        context = chromium.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        errors: list[str] = []
        try:
            page = context.new_page()
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            log_in(page, live_server.url, PAGES["views"])
            for name, path in PAGES.items():
                page.goto(live_server.url + path)
                canvases = wait_drawn(page)
                assert len(canvases) == {"views": 2, "view": 4, "jobs": 1}[name]
                page.screenshot(path=str(artifacts_dir / f"performance-{name}-{width}-{scheme}.png"), full_page=True)
                assert overflow(page) <= 0, f"{name} scrolls sideways at {width}px ({scheme}): {wide(page)}"
        finally:
            context.close()
        assert errors == []


def test_a_phone_shows_each_view_as_a_card(live_server, chromium, sample) -> None:
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        log_in(page, live_server.url, PAGES["views"])
        wait_drawn(page)
        table = page.locator("#staste-perf-views")
        assert table.locator("thead").evaluate("head => getComputedStyle(head).display") == "none"
        cell = table.locator("tbody tr").first.locator("td").nth(3)  # p95
        label = cell.evaluate("td => getComputedStyle(td, '::before').content")
        assert label == '"p95 (ms)"'
        box = table.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390
    finally:
        context.close()


def test_sorting_by_a_column_and_the_unranked_last(live_server, browser_page, sample) -> None:
    page = browser_page
    middleware.response_time_metrica().kick(5000, buffered=False, view="rare.views.once [once]", method="GET")
    log_in(page, live_server.url, PAGES["views"])
    names = page.locator("#staste-perf-views tbody th").all_inner_texts()
    assert names == ["search.views.results [search]", SHOP, "home.views.index [home]", "rare.views.once [once]"]
    assert "staste-unranked" in (page.locator("#staste-perf-views tbody tr").last.get_attribute("class") or "")
    page.locator("#staste-perf-views thead a", has_text="queries / request").click()
    page.wait_for_url(re.compile(r".*_sort=queries"))
    assert page.locator("#staste-perf-views tbody th").first.inner_text() == SHOP
    page.locator("#staste-perf-views tbody th a", has_text=SHOP).click()
    page.wait_for_url(re.compile(r".*/performance/view/\?.*view="))
    wait_drawn(page)
    stacked = page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById('staste-perf-split'));"
        " return [c.options.scales.y.stacked, c.data.datasets.map(d => d.fill)]; }"
    )
    assert stacked == [True, ["origin", "-1"]]
    assert "SELECT" in page.locator("#staste-perf-statements").inner_text()


def test_a_new_view_appears_live(live_server, browser_page, sample) -> None:
    sample.STASTE_LIVE_INTERVAL = 1
    page = browser_page
    log_in(page, live_server.url, PAGES["views"] + "?_last=60+minutes")
    wait_drawn(page)
    assert page.locator("#staste-live").inner_text() == "live"
    rt = middleware.response_time_metrica()
    for _ in range(6):
        rt.kick(12, buffered=False, view="fresh.views.new [new]", method="GET")
    page.wait_for_function(
        "() => document.getElementById('staste-perf-views').textContent.includes('fresh.views.new')", timeout=15_000
    )
    requests = page.locator('.staste-stat[data-card="requests"] dd').first
    page.wait_for_function(
        "() => document.querySelector('.staste-stat[data-card=\"requests\"] dd').textContent.trim() === '42'",
        timeout=15_000,
    )
    assert requests.inner_text() == "42"


def test_the_pages_in_russian(live_server, chromium, sample, artifacts_dir) -> None:
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU",
                                   extra_http_headers={"Accept-Language": "ru"})  # fmt: skip
    try:
        page = context.new_page()
        log_in(page, live_server.url, PAGES["views"])
        wait_drawn(page)
        text = page.locator("#content-main").inner_text()
        assert "Производительность" in page.title() and "запросы" in text.lower()
        page.screenshot(path=str(artifacts_dir / "performance-views-1366-ru.png"), full_page=True)
        page.goto(live_server.url + PAGES["jobs"])
        wait_drawn(page)
        assert "Задачи" in page.locator("#content-main").inner_text()
    finally:
        context.close()
