"""What issue 21 asked of the pages, as Chromium draws them: a long hourly axis that reads as
dates (never as hours that seem to run backwards), the active filters as removable chips, a
value that keeps its colour across a filter and between the admin and a public chart, and a
phone's slowest-views table whose numbers are in view."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User

from staste import conf
from staste.axis import Axis
from staste.metrica import Metrica
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
