"""The funnel and retention pages in Chromium: bars drawn to their share, the drop-off link
opening the users' changelist with exactly the users lost, no sideways scroll at a laptop's, a
wide screen's and a phone's width, light and dark, English and Russian; screenshots of each
kept in artifacts/cohorts/ to be looked at."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User

from staste.axis import Axis
from staste.metrica import Metrica
from tests.browser.test_admin_layout_browser import SIZES, log_in, overflow
from tests.test_admin import register  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FUNNEL = "/admin/staste/funnel/?step=signed_up&step=visited&step=ordered:shop=north&since=2026-04-01&until=2026-04-30"
RETENTION = "/admin/staste/retention/?first=signed_up&then=visited&period=week&periods=6&until=2026-05-03"


@pytest.fixture
def story(register, clock) -> None:  # noqa: F811
    clock.set(datetime.datetime(2026, 5, 3, 10))
    signed_up = register(Metrica(name="signed_up", axes=[], users=True, title="Signed up"))
    visited = register(Metrica(name="visited", axes=[], users=True, title="Visited the shop"))
    ordered = register(
        Metrica(
            name="ordered",
            axes=[("shop", Axis(choices=["north", "south"]))],
            users=True,
            users_axes=["shop"],
            title="Ordered",
        )
    )
    User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    for n in range(1, 61):
        user = User.objects.create_user(f"guest{n:02d}")
        day = datetime.datetime(2026, 3, 23, 12) + datetime.timedelta(days=n % 35)
        signed_up.kick(user=user, date=day)
        for week in range(n % 6):  # a sixth never come back
            visited.kick(user=user, date=day + datetime.timedelta(days=1 + 7 * week))
        if n % 3 == 0:
            ordered.kick(user=user, shop="north" if n % 2 else "south", date=day + datetime.timedelta(days=2))


def test_the_funnel_bars_and_the_link_to_the_lost_users(live_server, browser_page, story) -> None:
    page = browser_page
    log_in(page, live_server.url)
    page.goto(live_server.url + FUNNEL)
    values = page.eval_on_selector_all("progress.staste-funnel-bar", "bars => bars.map(bar => bar.value)")
    assert values[0] == 100 and values[0] > values[1] > values[2] > 0
    counts = page.eval_on_selector_all(".staste-funnel-count", "els => els.map(el => el.textContent)")
    page.click("text=show these users")
    page.wait_for_load_state()
    assert "/admin/auth/user/" in page.url and "pk__in=" in page.url
    listed = page.eval_on_selector_all("#result_list tbody tr", "rows => rows.length")
    assert listed == int(counts[0]) - int(counts[1]) > 0  # the first link: signed up, never visited


def _shoot(page: Any, url: str, path: str) -> None:
    page.goto(url)
    page.wait_for_load_state()
    assert overflow(page) == 0, url
    page.screenshot(path=path, full_page=True)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_sideways_scroll_and_screenshots(live_server, chromium, story, artifacts_dir, scheme) -> None:
    folder = artifacts_dir / "cohorts"
    folder.mkdir(parents=True, exist_ok=True)
    for width, height in SIZES:
        for language in ("en", "ru"):
            context = chromium.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme, locale=language
            )
            page = context.new_page()
            try:
                log_in(page, live_server.url)
                for name, url in (("funnel", FUNNEL), ("retention", RETENTION)):
                    _shoot(
                        page, live_server.url + url, str(folder / f"{name}-{width}x{height}-{scheme}-{language}.png")
                    )
                if language == "ru":
                    assert "Удержание" in page.content()
            finally:
                context.close()
