"""The admin section in a real headless Chromium: log in, see the charts drawn, filter, and
save screenshots of the dashboard and of a metrica page."""

from __future__ import annotations

import datetime
import random
import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from staste import buffer, conf
from staste.registration import registry
from tests.statsapp.stats import gender_age, pocket_money

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Counts the non-blank pixels of a canvas (drawn by Chart.js, read back through its 2D context).
INKED_PIXELS = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) { inked++; } }
  return inked;
}"""


def fill_sample_data() -> dict[str, int]:
    """A month of visits and pocket money, written in one batch per metrica; girls counted."""
    rng = random.Random(7)
    now = conf.local()
    visits, money = [], []
    girls = 0
    for _ in range(1500):
        moment = now - datetime.timedelta(minutes=rng.randrange(0, 29 * 24 * 60))
        gender = rng.choice(["boy", "girl", "girl"])
        girls += gender == "girl"
        visits.append(gender_age.prepare_kick(date=moment, gender=gender, age=str(rng.randint(14, 19))))
    for _ in range(300):
        moment = now - datetime.timedelta(minutes=rng.randrange(0, 29 * 24 * 60))
        money.append(
            pocket_money.prepare_kick(
                value=rng.randint(50, 2000) / 100, date=moment, gender=rng.choice(["boy", "girl"])
            )
        )
    for kicks in (visits, money):
        buffer.write(kicks)
    return {"girls": girls, "all": len(visits)}


def wait_drawn(page: Any) -> list[Any]:
    page.wait_for_function(
        "() => { const c = document.querySelectorAll('canvas[data-staste-chart]');"
        " return c.length > 0 && Array.from(c).every(x => x.dataset.stasteDrawn === '1'); }"
    )
    canvases = page.query_selector_all("canvas[data-staste-chart]")
    for canvas in canvases:
        assert canvas.evaluate(INKED_PIXELS) > 200, "a chart canvas stayed blank"
    return canvases


def drawn_spec(page: Any, canvas_id: str) -> dict[str, Any]:
    return page.eval_on_selector(f"#{canvas_id}", "canvas => canvas.__stasteSpec")


def test_admin_pages_draw_their_charts_and_filter_in_a_real_browser(live_server, browser_page, artifacts_dir) -> None:
    counted = fill_sample_data()
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/?next=/admin/staste/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "staste-pw")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/staste/$"))
    assert page.title().startswith("Statistics")
    assert page.locator("#nav-sidebar a", has_text="Statistics").count() == 1
    canvases = wait_drawn(page)
    # One small chart per registered metrica (other tests of the run may have registered more,
    # such as the response-time metrica).
    assert len(canvases) == len(list(registry)) >= 2
    page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)

    page.click("text=Guest visits")
    page.wait_for_url(re.compile(r".*/admin/staste/guest_visits_gender_age/$"))
    wait_drawn(page)
    line = drawn_spec(page, "staste-line")
    assert sum(line["datasets"][0]["data"]) == counted["all"]
    pie = drawn_spec(page, "staste-breakdown")
    assert dict(zip(pie["labels"], pie["datasets"][0]["data"], strict=True))["girl"] == counted["girls"]

    page.select_option("select[name=gender]", "girl")  # applies at once: a new URL, new data
    page.wait_for_url(re.compile(r".*[?&]gender=girl(&|$)"))
    wait_drawn(page)
    filtered = drawn_spec(page, "staste-line")
    assert filtered["datasets"][0]["data"] != line["datasets"][0]["data"]
    assert sum(filtered["datasets"][0]["data"]) == counted["girls"]
    assert page.locator(".staste-stat dd").first.inner_text() == f"{counted['girls']:,}"

    page.select_option("#staste-by", "age")  # the breakdown by another axis, filters kept
    page.wait_for_url(re.compile(r".*_by=age"))
    wait_drawn(page)
    assert "gender=girl" in page.url
    by_age = drawn_spec(page, "staste-breakdown")
    assert by_age["x"] == "age" and sum(by_age["datasets"][0]["data"]) == counted["girls"]
    page.screenshot(path=str(artifacts_dir / "metrica.png"), full_page=True)

    page.click("text=Last 24 hours")
    page.wait_for_url(re.compile(r".*_last=24\+hours"))
    wait_drawn(page)
    assert drawn_spec(page, "staste-line")["x"] == "hour"


def test_charts_follow_the_dark_theme(live_server, chromium, artifacts_dir) -> None:
    fill_sample_data()
    user = User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    context = chromium.new_context(color_scheme="dark", viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/admin/login/?next=/admin/staste/pocket_money/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "staste-pw")
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(r".*/admin/staste/pocket_money/$"))
        wait_drawn(page)
        text_color = page.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--body-fg')")
        chart_color = page.eval_on_selector("#staste-line", "c => Chart.getChart(c).options.plugins.title.color")
        assert chart_color.strip() == text_color.strip()
        assert chart_color.strip().lower() not in ("#333", "#333333", "")
        page.screenshot(path=str(artifacts_dir / "metrica-dark.png"), full_page=True)
    finally:
        context.close()
