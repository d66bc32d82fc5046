"""The admin section as a staff user sees it in Chromium, at a laptop's, a wide screen's and a
phone's width: no page scrolls sideways, pies keep to a few slices with their legend whole,
a click on a slice or a bar filters by its value, and a refusal is an admin page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from staste.axis import Axis, StoredChoiceAxis
from staste.charts.spec import BAR_LIMIT, PIE_LIMIT, REST_LABEL
from staste.metrica import AveragedMetrica, Metrica
from tests.browser.test_admin_browser import wait_drawn
from tests.test_admin import register  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = [(1366, 768), (1920, 1080), (390, 844)]
#: A view name as long as real ones get.
LONG_VIEW = "shop.views.catalogue.product_detail_with_reviews [shop:product-detail-with-reviews]"


@pytest.fixture
def metricas(register) -> dict[str, Metrica]:  # noqa: F811
    """63 ages (age N kicked N - 7 times) and response times of views with long names."""
    ages = register(
        Metrica(name="test_ages", axes=[("gender", Axis(choices=["boy", "girl"])), ("age", StoredChoiceAxis(int))])
    )
    for age in range(8, 71):
        for n in range(age - 7):
            ages.kick(gender="girl" if n % 3 else "boy", age=age)
    latency = register(
        AveragedMetrica(
            name="test_latency", axes=[("view", StoredChoiceAxis())], multiplier=1000, histogram=True, unit="ms"
        )
    )
    for index in range(6):
        for ms in range(1, 20):
            latency.kick(value=ms * (index + 1), view=f"{LONG_VIEW} {index}")
    return {"ages": ages, "latency": latency}


def log_in(page: Any, url: str, username: str = "admin") -> None:
    page.goto(f"{url}/admin/login/?next=/admin/staste/")
    page.fill("#id_username", username)
    page.fill("#id_password", "staste-pw")
    page.click("input[type=submit]")
    page.wait_for_load_state()


def overflow(page: Any) -> int:
    """How many pixels the page is wider than the window (0: it does not scroll sideways)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


def chart(page: Any, canvas_id: str) -> dict[str, Any]:
    """What Chart.js itself holds for a canvas: type, labels, data, legend boxes, width."""
    return page.eval_on_selector(
        f"#{canvas_id}",
        """canvas => {
          const chart = Chart.getChart(canvas);
          const legend = chart.legend;
          return {
            type: chart.config.type,
            horizontal: chart.options.indexAxis === "y",
            labels: chart.data.labels,
            data: chart.data.datasets[0].data,
            colors: chart.data.datasets[0].backgroundColor,
            legend: legend && legend.options.display ? legend.legendHitBoxes.map(
              (box, i) => ({left: box.left, right: box.left + box.width, text: legend.legendItems[i].text,
                            fill: legend.legendItems[i].fillStyle})) : [],
            width: chart.width,
          };
        }""",
    )


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_no_page_scrolls_sideways(live_server, chromium, metricas, width: int, height: int) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    for scheme in ("light", "dark"):
        context = chromium.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        try:
            page = context.new_page()
            log_in(page, live_server.url)
            for path in ("/admin/staste/", "/admin/staste/test_ages/?_by=age", "/admin/staste/test_latency/"):
                page.goto(live_server.url + path)
                wait_drawn(page)
                assert overflow(page) <= 0, (path, width, scheme)
        finally:
            context.close()


def test_pies_keep_to_a_few_slices_with_whole_legends_and_bars_take_the_rest(
    live_server, browser_page, metricas
) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    page = browser_page
    log_in(page, live_server.url)
    page.goto(live_server.url + "/admin/staste/test_ages/")
    wait_drawn(page)
    pie = chart(page, "staste-breakdown")
    assert pie["type"] == "pie" and pie["labels"] == ["girl", "boy"]
    assert len(set(pie["colors"])) == len(pie["labels"]) <= PIE_LIMIT  # a colour each
    assert [item["text"] for item in pie["legend"]] == ["girl", "boy"]
    assert all(item["left"] >= 0 and item["right"] <= pie["width"] and item["fill"] for item in pie["legend"])

    page.goto(live_server.url + "/admin/staste/test_ages/?_by=age")
    wait_drawn(page)
    bars = chart(page, "staste-breakdown")
    assert bars["type"] == "bar" and bars["horizontal"] and len(bars["labels"]) == BAR_LIMIT
    assert bars["labels"][0] == "70" and bars["labels"][-1] == REST_LABEL
    assert bars["data"][: BAR_LIMIT - 1] == sorted(bars["data"][: BAR_LIMIT - 1], reverse=True)
    assert page.locator("#staste-breakdown-table tbody tr").count() == 63  # the table keeps every value
    # The rest (ages 8 to 59) dwarfs the bars above it: the axis is scaled to those, and the
    # rest's bar, running off its end, has its number written there.
    rest = sum(age - 7 for age in range(8, 71 - (BAR_LIMIT - 1)))
    assert bars["data"][-1] == rest
    end, written = page.eval_on_selector(
        "#staste-breakdown",
        "canvas => { const c = Chart.getChart(canvas); return [c.scales.x.max, c.options.plugins.stasteRest.text]; }",
    )
    assert end < rest and written == f"{rest:,}"

    page.goto(live_server.url + "/admin/staste/test_latency/?_measure=count")
    wait_drawn(page)
    views = chart(page, "staste-breakdown")
    assert views["type"] == "pie" and len(views["legend"]) == 6
    for item in views["legend"]:  # long view names are shortened, never cut by the canvas
        assert len(item["text"]) <= 30 and item["text"].endswith(item["text"][-1])
        assert item["left"] >= 0 and item["right"] <= views["width"] and item["fill"]


def click_element(page: Any, canvas_id: str, index: int) -> None:
    """Click the centre of the ``index``-th slice or bar, where Chart.js drew it."""
    x, y = page.eval_on_selector(
        f"#{canvas_id}",
        f"""canvas => {{
          const element = Chart.getChart(canvas).getDatasetMeta(0).data[{index}];
          const point = element.tooltipPosition();
          return [point.x, point.y];
        }}""",
    )
    box = page.locator(f"#{canvas_id}").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_a_click_on_a_slice_or_a_bar_filters_by_its_value(live_server, browser_page, metricas) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    page = browser_page
    log_in(page, live_server.url)
    page.goto(live_server.url + "/admin/staste/test_ages/?_span=all")
    wait_drawn(page)
    click_element(page, "staste-breakdown", 0)  # girl: the largest slice
    page.wait_for_url(re.compile(r".*[?&]gender=girl(&|$)"))
    wait_drawn(page)
    assert page.locator("select[name=gender]").input_value() == "girl"
    bars = chart(page, "staste-breakdown")  # gender is one value now: the breakdown is by age
    assert bars["horizontal"] and bars["labels"][0] == "70"
    assert page.locator("#staste-by option", has_text="gender").count() == 0
    click_element(page, "staste-breakdown", 0)
    page.wait_for_url(re.compile(r".*[?&]age=70(&|$)"))
    assert "gender=girl" in page.url
    wait_drawn(page)


def test_staff_without_the_permission_see_an_admin_page_naming_it(live_server, browser_page) -> None:
    User.objects.create_user("clerk", password="staste-pw", is_staff=True)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/staste/")
    page.fill("#id_username", "clerk")
    page.fill("#id_password", "staste-pw")
    with page.expect_response(lambda response: response.url == f"{live_server.url}/admin/staste/") as answer:
        page.click("input[type=submit]")
    response = answer.value
    assert response.status == 403
    page.wait_for_load_state()
    assert page.locator("#header").count() == 1 and page.locator("#nav-sidebar").count() == 1  # the admin's chrome
    assert page.locator("code.staste-permission").inner_text() == "staste.view_metrica"
    assert page.locator(".breadcrumbs").inner_text() == "Home \u203a Statistics"  # the section's
    assert overflow(page) <= 0
    # the browser reports a 403 resource as a console error: not a script error of the page
    page.js_errors[:] = [error for error in page.js_errors if "403" not in error]
