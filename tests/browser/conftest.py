"""Fixtures of the real-browser tests: headless Chromium (Playwright) against pytest-django's
live server, and the directory screenshots are saved to.

Tests here are marked ``browser`` (``pytest -m "not browser"`` leaves them out); they are skipped
when Chromium or Playwright is missing (``make test`` installs Debian's chromium when it can).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("STASTE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where a test run keeps its screenshots: $STASTE_ARTIFACTS_DIR, else ./artifacts."""
    directory = Path(os.environ.get("STASTE_ARTIFACTS_DIR") or REPO / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium per test module.

    Not per session: Playwright's sync API keeps an asyncio loop running in this thread while
    it is started, which would break later tests that run their own loop (``asyncio.run``).
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (set STASTE_CHROMIUM)")
    # With that loop running, Django refuses ORM calls from this thread unless told that the
    # code is synchronous anyway (it is: the test's own fixtures).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _live_server_idle(request: pytest.FixtureRequest, _live_server_helper: None) -> Iterator[None]:
    """Let the live server finish the requests it is serving before the database is flushed.

    A page that refreshes by itself (live mode) may still have a request in the server's thread
    when the test ends and its browser context closes. pytest-django then flushes the database
    the thread is using; SQLite refuses ("couldn't be flushed"), and the next test finds the
    last one's users. Depending on ``_live_server_helper`` orders this teardown before the flush.
    """
    yield
    if "live_server" not in request.fixturenames:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _serving_threads():
        time.sleep(0.02)


def _serving_threads() -> list[threading.Thread]:
    # socketserver.ThreadingMixIn runs each connection in a thread of this target.
    return [t for t in threading.enumerate() if "process_request_thread" in t.name and t.is_alive()]


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh page (own cookies) that fails the test on JavaScript errors."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: _console_error(message, errors))
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def _console_error(message: Any, errors: list[str]) -> None:
    # Browsers ask for /favicon.ico by themselves; the admin has none: not the page's fault.
    if message.type == "error" and not str(message.location.get("url", "")).endswith("/favicon.ico"):
        errors.append(message.text)
