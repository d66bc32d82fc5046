"""What issue 21 asked of the pages, as Chromium draws them: a long hourly axis that reads as
dates (never as hours that seem to run backwards), the active filters as removable chips, a
value that keeps its colour across a filter and between the admin and a public chart, and a
phone's slowest-views table whose numbers are in view."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User

from staste import conf
from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import AveragedMetrica, Metrica
from tests.browser.test_admin_browser import wait_drawn
from tests.browser.test_admin_layout_browser import log_in
from tests.test_admin import register  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOW = datetime.datetime(2026, 12, 6, 11, 30)

#: The x axis' shown ticks: the bucket each stands at and its text (null: hidden).
X_TICKS = """canvas => {
  const chart = Chart.getChart(canvas);
  return chart.scales.x.ticks
    .filter(t => t.label !== null && t.label !== undefined)
    .map(t => ({bucket: chart.data.labels[t.value], text: [].concat(t.label).join(" ")}));
}"""


@pytest.fixture
def guests(register, clock) -> Metrica:  # noqa: F811
    clock.set(NOW)
    metrica = register(Metrica(name="test_guests", axes=[("gender", Axis(choices=["boy", "girl"]))]))
    for back in range(70):
        moment = NOW - datetime.timedelta(hours=back * 21)
        metrica.kick(date=moment, gender="girl" if back % 3 else "boy")
    return metrica


@pytest.mark.parametrize("query", ["?_last=30+days&_scale=hour", "?_last=1500+hours"])
def test_a_long_hourly_axis_reads_as_dates_in_order(live_server, browser_page, guests, query: str) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    log_in(browser_page, live_server.url)
    browser_page.goto(live_server.url + "/admin/staste/test_guests/" + query)
    wait_drawn(browser_page)
    ticks = browser_page.eval_on_selector("#staste-line", X_TICKS)
    assert len(ticks) >= 4
    buckets = [tick["bucket"] for tick in ticks]
    assert buckets == sorted(buckets)  # time runs forward, tick after tick
    for tick in ticks:
        # every tick stands at a midnight of the page's time zone and names its date ("Nov 7")
        assert tick["bucket"].endswith(" 00:00"), ticks
        day = datetime.datetime.strptime(tick["bucket"], "%Y-%m-%d %H:%M")
        assert day.strftime("%b") in tick["text"] and str(day.day) in tick["text"], ticks
    assert conf.time_zone().key in browser_page.inner_text(".staste-zone")


PIE_COLORS = """canvas => {
  const chart = Chart.getChart(canvas);
  const out = {};
  chart.data.labels.forEach((label, i) => { out[label] = chart.data.datasets[0].backgroundColor[i]; });
  return out;
}"""


@pytest.fixture
def people(register, clock) -> Metrica:  # noqa: F811
    clock.set(NOW)
    metrica = register(
        Metrica(
            name="test_people",
            axes=[("gender", Axis(choices=["boy", "girl"])), ("colour", Axis(choices=["red", "green", "blue"]))],
        )
    )
    for n in range(30):
        metrica.kick(date=NOW, gender="girl" if n % 3 else "boy", colour=["red", "green", "blue"][n % 3])
    return metrica


def test_a_filter_becomes_a_chip_and_moves_the_breakdown_on(live_server, browser_page, people) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    log_in(browser_page, live_server.url)
    browser_page.goto(live_server.url + "/admin/staste/test_people/?_span=all")
    wait_drawn(browser_page)
    assert browser_page.input_value("#staste-by") == "gender"
    with browser_page.expect_navigation():
        browser_page.select_option(".staste-filter[data-axis=gender] select", "girl")
    wait_drawn(browser_page)
    # the dropdown, as a click on a slice does, moves the breakdown on to the next axis
    assert browser_page.input_value("#staste-by") == "colour"
    labels = browser_page.eval_on_selector("#staste-breakdown", "c => Chart.getChart(c).data.labels")
    assert sorted(labels) == ["blue", "green", "red"]  # not one slice of 100%
    chip = browser_page.locator(".staste-filter-chip[data-axis=gender]")
    assert chip.inner_text().replace("\u00d7", "").split() == ["gender:", "girl"]
    with browser_page.expect_navigation():
        chip.locator(".staste-chip-remove").click()
    wait_drawn(browser_page)
    assert browser_page.locator(".staste-filter-chip").count() == 0
    assert browser_page.input_value("#staste-by") == "gender"


def test_a_value_keeps_its_colour_across_a_filter_and_in_a_public_chart(live_server, browser_page, people) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    log_in(browser_page, live_server.url)
    browser_page.goto(live_server.url + "/admin/staste/test_people/?_span=all&_by=colour")
    wait_drawn(browser_page)
    everyone = browser_page.eval_on_selector("#staste-breakdown", PIE_COLORS)
    browser_page.goto(live_server.url + "/admin/staste/test_people/?_span=all&_by=colour&gender=boy")
    wait_drawn(browser_page)
    boys = browser_page.eval_on_selector("#staste-breakdown", PIE_COLORS)
    assert len(set(everyone.values())) == 3
    assert boys == {name: everyone[name] for name in boys}  # blue stays blue, whoever else is drawn
    browser_page.goto(live_server.url + "/admin/staste/test_people/?_span=all")
    wait_drawn(browser_page)
    genders = browser_page.eval_on_selector("#staste-breakdown", PIE_COLORS)
    browser_page.goto(live_server.url + "/admin/staste/test_people/?_span=all&colour=red")
    wait_drawn(browser_page)
    assert browser_page.eval_on_selector("#staste-breakdown", PIE_COLORS) == genders


#: The colours a pie drawn from ``spec`` gives its slices (staste's own config()).
SLICE_COLORS = """spec => StasteCharts.config(spec, document.createElement("canvas"))
  .data.datasets[0].backgroundColor"""


def test_a_hashed_value_never_takes_a_declared_values_colour(live_server, browser_page, people) -> None:
    """A value no axis declares takes a colour from its text's hash; one declared later in the
    same chart keeps its declared colour all the same, and the hashed one moves on."""
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    log_in(browser_page, live_server.url)
    browser_page.goto(live_server.url + "/admin/staste/test_people/?_span=all")
    wait_drawn(browser_page)

    def colors(labels: list[str], declared: list[int | None]) -> list[str]:
        spec = {"type": "pie", "labels": labels, "colors": declared, "datasets": [{"data": [1] * len(labels)}]}
        return browser_page.evaluate(SLICE_COLORS, spec)

    (first,) = colors(["declared"], [0])
    clashing = next(f"v{n}" for n in range(500) if colors([f"v{n}"], [None]) == [first])  # hashes to slot 0
    hashed, declared = colors([clashing, "declared"], [None, 0])
    assert declared == first and hashed != first
    together = colors([clashing, "a", "b", "declared", "c"], [None, None, None, 0, None])
    assert len(set(together)) == 5 and together[3] == first


def test_a_phone_sees_the_numbers_of_the_slowest_views_beside_their_names(live_server, chromium, register) -> None:  # noqa: F811
    axes = [("view", StoredChoiceAxis())]
    latency = register(AveragedMetrica(name="test_speed", axes=axes, multiplier=1000, histogram=True, unit="ms"))
    for index in range(4):
        for ms in range(1, 30):
            latency.kick(value=ms * (index + 1), view=f"shop.views.catalogue.product_detail_with_reviews_{index}")
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        log_in(page, live_server.url)
        page.goto(live_server.url + "/admin/staste/test_speed/?_span=all")
        wait_drawn(page)
        first_row = page.locator("#staste-breakdown-table tbody tr").first
        first_row.scroll_into_view_if_needed()
        name = first_row.locator("th").bounding_box()
        count = first_row.locator("td").first.bounding_box()
        assert name["width"] <= 160 and count["x"] + count["width"] <= 390  # the count is in view
        assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
    finally:
        context.close()
