"""Annotations and alerts as a staff user sees them in Chromium: the marker drawn where its note
falls, its text shown while pointed at, in light and dark, at a phone's, a laptop's and a wide
screen's width; and the alert's admin page (screenshots in artifacts/)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User

from staste import annotations
from staste.axis import Axis
from staste.metrica import AveragedMetrica
from staste.models import Alert, AlertEvent
from tests.browser.test_admin_browser import wait_drawn
from tests.browser.test_admin_layout_browser import log_in, overflow
from tests.test_admin import register  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = [(390, 844), (1366, 768), (1920, 1080)]
DAY = "2024-03-10"


@pytest.fixture
def noted(register) -> AveragedMetrica:  # noqa: F811
    metrica = register(
        AveragedMetrica(
            name="noted", axes=[("gender", Axis(choices=["boy", "girl"]))], title="Checkout time", unit="ms",
            histogram=True, multiplier=10,
        )
    )  # fmt: skip
    for hour in range(24):
        for n in range(3 + hour % 5):
            at = datetime.datetime(2024, 3, 10, hour, 5)
            metrica.kick(value=80 + 7 * n + 40 * (hour >= 14), date=at, gender="girl")
    annotations.annotate("Release 2.3", when=datetime.datetime(2024, 3, 10, 14, 30))
    annotations.annotate("Newsletter sent", when=datetime.datetime(2024, 3, 10, 6), metricas=["noted"])
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    return metrica


def marker(page: Any) -> dict[str, Any]:
    """Where the line chart drew its markers, and the colour under the first one."""
    return page.eval_on_selector(
        "#staste-line",
        """canvas => {
          const chart = Chart.getChart(canvas);
          const area = chart.chartArea, x = chart.$stasteNoteX;
          const ctx = canvas.getContext("2d"), ratio = canvas.width / canvas.clientWidth;
          let inked = 0;
          for (let y = area.top + 12; y < area.bottom - 2; y += 3) {
            const px = ctx.getImageData(Math.round(x[0] * ratio), Math.round(y * ratio), 1, 1).data;
            if (px[3] > 0) { inked += 1; }
          }
          return {x: x, area: area, hour14: chart.scales.x.getPixelForValue(14),
                  hour15: chart.scales.x.getPixelForValue(15), hour6: chart.scales.x.getPixelForValue(6), inked: inked};
        }""",
    )


def test_a_note_is_a_marker_whose_text_shows_when_pointed_at(live_server, browser_page, noted) -> None:
    page = browser_page
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/staste/noted/?_span={DAY}")
    wait_drawn(page)
    found = marker(page)
    assert found["x"][0] == pytest.approx(found["hour6"], abs=0.5)  # 06:00 sharp: on the 06:00 point
    assert found["x"][1] == pytest.approx((found["hour14"] + found["hour15"]) / 2, abs=0.5)  # 14:30
    assert found["inked"] > 10  # the dashed line is drawn down the chart
    canvas = page.query_selector("#staste-line").bounding_box()
    assert page.get_attribute("#staste-line", "data-staste-note") is None
    page.mouse.move(canvas["x"] + found["x"][1] + 2, canvas["y"] + found["area"]["top"] + 60)
    page.wait_for_function("() => document.querySelector('#staste-line').dataset.stasteNote === 'Release 2.3'")
    page.mouse.move(canvas["x"] + found["x"][1] + 60, canvas["y"] + found["area"]["top"] + 60)
    page.wait_for_function("() => !('stasteNote' in document.querySelector('#staste-line').dataset)")


def test_screenshots_of_an_annotated_chart_and_of_an_alert(live_server, chromium, noted, artifacts_dir) -> None:
    alert = Alert.objects.create(
        name="Checkout is slow", metrica="noted", filters={"gender": "girl"}, measure="p95", window="60 minutes",
        above=120, min_count=5, recipients="owner@example.com", state="firing", value=163.4,
        detail="p95 = 163.4 ms", webhook="https://hooks.example.com/services/T000/B000/XXXX",
    )  # fmt: skip
    for previous, state, value in (("unknown", "ok", 92.1), ("ok", "firing", 163.4)):
        AlertEvent.objects.create(
            alert=alert, previous=previous, state=state, value=value, detail=f"p95 = {value} ms",
            mailed=state == "firing", notice="webhook: 200" if state == "firing" else "",
        )  # fmt: skip
    for width, height in SIZES:
        for scheme in ("light", "dark"):
            context = chromium.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            try:
                log_in(page, live_server.url)
                page.goto(f"{live_server.url}/admin/staste/noted/?_span={DAY}")
                wait_drawn(page)
                found = marker(page)
                box = page.query_selector("#staste-line").bounding_box()
                page.mouse.move(box["x"] + found["x"][1], box["y"] + found["area"]["top"] + 60)
                page.wait_for_function("() => document.querySelector('#staste-line').dataset.stasteNote")
                page.query_selector("#staste-line").screenshot(
                    path=str(artifacts_dir / f"annotated-{width}-{scheme}.png")
                )
                assert overflow(page) == 0
                for name, url in (
                    ("alert", f"/admin/staste/alert/{alert.pk}/change/"),
                    ("alerts", "/admin/staste/alert/"),
                ):
                    page.goto(live_server.url + url)
                    page.screenshot(path=str(artifacts_dir / f"{name}-{width}-{scheme}.png"), full_page=True)
            finally:
                context.close()
            assert errors == []
