"""A metrica keeping only some combinations of axes (``combinations=2``) in a real headless
Chromium: choosing filters disables the breakdowns (and filters) they would need unkept, says
why, and moves the breakdown to one still kept before the page asks; screenshots light and dark
at a laptop's and a phone's size."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from staste import conf
from staste.axis import Axis, StoredChoiceAxis
from staste.metrica import Metrica
from staste.registration import registry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"1366x768": (1366, 768), "390x844": (390, 844)}


@pytest.fixture
def requests_metrica() -> Iterator[Metrica]:
    saved = registry.save()
    metrica = registry.register(
        Metrica(
            name="requests_pruned",
            axes=[
                ("view", StoredChoiceAxis()),
                ("method", Axis(choices=["GET", "POST"])),
                ("status", Axis(choices=["2xx", "4xx", "5xx"])),
            ],
            combinations=2,
            title="Requests",
        )
    )
    now = conf.local()
    for view, method, status, times in (
        ("home", "GET", "2xx", 30),
        ("home", "POST", "4xx", 4),
        ("shop", "GET", "2xx", 12),
        ("shop", "GET", "5xx", 2),
    ):
        for _ in range(times):
            metrica.kick(date=now, view=view, method=method, status=status)
    yield metrica
    registry.restore(saved)


def log_in(page: Any, url: str) -> None:
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.com", "staste-pw")
    page.goto(f"{url}/admin/login/?next=/admin/staste/requests_pruned/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "staste-pw")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/staste/requests_pruned/$"))


def by_options(page: Any) -> dict[str, bool]:
    """{axis: disabled} of the breakdown's dropdown."""
    return page.eval_on_selector(
        "#staste-by", "select => Object.fromEntries(Array.from(select.options).map(o => [o.value, o.disabled]))"
    )


def test_filters_disable_the_breakdowns_they_would_leave_unkept(live_server, browser_page, requests_metrica) -> None:
    page = browser_page
    log_in(page, live_server.url)
    assert by_options(page) == {"view": False, "method": False, "status": False}
    page.select_option("#staste-by", "status")
    page.wait_for_url(re.compile(r".*_by=status"))

    # One filter: every pair is kept, the breakdown by status stays.
    page.select_option(".staste-filter[data-axis=view] select", "home")
    page.wait_for_url(re.compile(r".*view=home.*"))
    assert "_by=status" in page.url
    assert by_options(page) == {"method": False, "status": False}
    breakdown = page.eval_on_selector("#staste-breakdown-data", "node => JSON.parse(node.textContent)")
    shown = dict(zip(breakdown["labels"], breakdown["datasets"][0]["data"], strict=True))
    assert shown == {"2xx": 30, "4xx": 4, "5xx": 0}

    # A second filter: view x method x status is not kept. The script drops _by=status before
    # the page asks (no 400), and the page disables the breakdown and the third filter, saying why.
    page.select_option(".staste-filter[data-axis=method] select", "GET")
    page.wait_for_url(re.compile(r".*method=GET.*"))
    assert "_by=" not in page.url and page.locator(".errornote").count() == 0
    assert by_options(page) == {"": True, "status": True}  # "none kept", and status disabled
    why = page.inner_text("#staste-by-why")
    assert "No breakdown by status with these filters" in why and "combinations=2" in why
    status_filter = page.locator(".staste-filter[data-axis=status] select")
    assert status_filter.is_disabled()
    assert "view \u00d7 method \u00d7 status" in page.inner_text(".staste-unkept[data-axis=status]")
    assert page.inner_text("#staste-summary [data-card=total] dd") == "30"


@pytest.mark.parametrize(("scheme", "language"), [("light", "en"), ("dark", "en"), ("light", "ru")])
def test_screenshots_of_unkept_breakdowns(
    live_server, chromium, requests_metrica, artifacts_dir, scheme, language
) -> None:
    for size, (width, height) in SIZES.items():
        context = chromium.new_context(
            viewport={"width": width, "height": height}, color_scheme=scheme, locale=language
        )
        page = context.new_page()
        try:
            log_in(page, live_server.url)
            page.goto(f"{live_server.url}/admin/staste/requests_pruned/?view=home&method=GET")
            page.wait_for_selector("#staste-by-why")
            scroll = page.evaluate("() => document.documentElement.scrollWidth")
            assert scroll <= width, f"the page scrolls sideways at {size}"
            name = f"combinations-{size}-{scheme}" + ("" if language == "en" else f"-{language}")
            page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)
        finally:
            context.close()
