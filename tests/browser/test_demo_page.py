"""The demo's public page in headless Chromium, served by the demo itself (`manage.py runserver`
with the demo's settings, on the test Redis): every chart the template tags embed is drawn under
the page's strict Content-Security-Policy, and a guest noted on the form shows up in it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_admin_browser import INKED_PIXELS
from tests.test_demo import MANAGE, REPO, demo_env, demo_metricas, manage, shop_visitors_metrica

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PUBLIC_PAGE_CHARTS = 7  # the {% staste_chart %} tags of demo/guests/templates/guests/index.html


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def demo_url(tmp_path: Path, redis_server, prefix: str) -> Iterator[str]:
    """The demo served on a free port, with a month of sample data; stopped after the test."""
    env = demo_env(tmp_path, redis_server.url, prefix)
    fake_data = ["staste_fake_data", "--days", "35", "--per-day", "40", "--seed", "3", "--no-progress"]
    for step in (["migrate", "--noinput"], fake_data):
        done = manage(env, *step)
        assert done.returncode == 0, done.stderr
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "server.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def drawn_canvases(page: Any, expected: int) -> list[Any]:
    page.wait_for_function(
        "n => { const c = document.querySelectorAll('canvas[data-staste-chart]');"
        " return c.length === n && Array.from(c).every(x => x.dataset.stasteDrawn === '1'); }",
        arg=expected,
    )
    canvases = page.query_selector_all("canvas[data-staste-chart]")
    for canvas in canvases:
        assert canvas.evaluate(INKED_PIXELS) > 500, f"chart {canvas.get_attribute('data-staste-chart')} stayed blank"
    return canvases


def numbers(page: Any) -> dict[str, str]:
    cards = page.query_selector_all(".number")
    return {card.query_selector(".label").inner_text(): card.query_selector(".value").inner_text() for card in cards}


def test_public_page_draws_its_charts_under_a_strict_csp(demo_url: str, browser_page: Any, artifacts_dir: Path) -> None:
    page = browser_page
    response = page.goto(demo_url)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
    drawn_canvases(page, PUBLIC_PAGE_CHARTS)
    # The page itself holds no script code: only files and JSON data (CSP violations would also
    # be console errors, which fail the test through the browser_page fixture).
    inline = page.evaluate(
        "() => Array.from(document.scripts).filter(s => !s.src && s.type !== 'application/json').length"
    )
    assert inline == 0
    guests, _, _ = demo_metricas()
    shown = numbers(page)
    assert shown["guests, ever"] == f"{guests.total():,}"
    # distinct guests (staste_uniques; its count is checked in tests/test_templatetags.py):
    # some, and fewer than all the visits ever made
    different = int(shown["different guests in 30 days"].replace(",", ""))
    assert 0 < different < shop_visitors_metrica().total()
    page.screenshot(path=str(artifacts_dir / "demo-public-page.png"), full_page=True)

    # A guest noted on the form is counted on the public page.
    before = guests.total()
    books = shop_visitors_metrica().filter(shop="books")
    books_before = books.total()
    today = int(shown["guests today"].replace(",", ""))
    page.goto(demo_url + "visit/")
    page.select_option("select[name=gender]", "girl")
    page.fill("input[name=age]", "33")
    page.select_option("select[name=shop]", "books")
    page.fill("input[name=spent]", "2.50")
    page.fill("input[name=minutes]", "20")
    page.fill("input[name=card]", "987654321")  # not one of the fake data's guest ids
    page.click("button[type=submit]")
    page.wait_for_selector("text=Recorded a 33-year-old girl (card 987654321).")
    assert guests.total() == before + 1
    assert books.total() == books_before + 1
    page.goto(demo_url)
    drawn_canvases(page, PUBLIC_PAGE_CHARTS)
    assert int(numbers(page)["guests today"].replace(",", "")) == today + 1


def drawn_data(page: Any) -> dict[str, list[Any]]:
    """What Chart.js drew on the page's chart: its labels and the data of each dataset."""
    return page.evaluate(
        "() => { const chart = Chart.getChart(document.querySelector('canvas[data-staste-chart]'));"
        " return Object.fromEntries([['labels', chart.data.labels],"
        " ...chart.data.datasets.map(d => [d.label, d.data])]); }"
    )


def test_generic_chart_views_draw_in_the_demo(demo_url: str, browser_page: Any) -> None:
    for path in ("charts/timeline/", "charts/ages/?last=7+days", "charts/gender/", "charts/speed/"):
        browser_page.goto(demo_url + path)
        drawn_canvases(browser_page, 1)
    # The numbers drawn are those in Redis, not only some ink.
    guests, _, _ = demo_metricas()
    browser_page.goto(demo_url + "charts/gender/")
    drawn_canvases(browser_page, 1)
    assert drawn_data(browser_page) == {
        "labels": ["boy", "girl"],
        "total": [total for _, total in guests.iterate("gender")],
    }
    assert sum(drawn_data(browser_page)["total"]) == guests.total() > 0
    browser_page.goto(demo_url + "charts/timeline/")
    drawn_canvases(browser_page, 1)
    years = guests.iterate()
    assert drawn_data(browser_page) == {"labels": [str(year) for year, _ in years], "total": [t for _, t in years]}


def luminance(rgb: str) -> float:
    """The relative luminance (WCAG) of a CSS colour "rgb(r, g, b)" or "#rrggbb"."""
    if rgb.startswith("#"):
        channels = [int(rgb[i : i + 2], 16) for i in (1, 3, 5)]
    else:
        channels = [int(part) for part in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_chart_titles_and_legends_are_readable_on_a_dark_page(demo_url: str, chromium: Any) -> None:
    """Chart.js is told the colours the page gives the chart (its CSS), not a fixed dark grey."""
    context = chromium.new_context(color_scheme="dark", viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        page.goto(demo_url)
        canvases = drawn_canvases(page, PUBLIC_PAGE_CHARTS)
        background = luminance(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))
        for canvas in canvases:
            text = canvas.evaluate("c => Chart.getChart(c).options.plugins.title.color")
            legend = canvas.evaluate("c => Chart.getChart(c).options.plugins.legend.labels.color")
            for colour in (text, legend):
                contrast = (max(luminance(colour), background) + 0.05) / (min(luminance(colour), background) + 0.05)
                assert contrast >= 4.5, (canvas.get_attribute("data-staste-chart"), colour, contrast)
    finally:
        context.close()
