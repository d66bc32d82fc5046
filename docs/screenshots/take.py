"""Take the README's screenshots from a running demo (`make demo`), in headless Chromium.

    .venv/bin/python docs/screenshots/take.py [http://127.0.0.1:8000]

Logs in with the demo's printed login (demo/.staste/demo-login.txt) and saves, at 1366 px wide,
the dashboard (dashboard.png), a metrica's page (metrica.png: guests this month by age) and the
public page (demo.png) next to this file.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
LOGIN = HERE.parents[1] / "demo" / ".staste" / "demo-login.txt"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def main(base: str) -> None:
    username, password = LOGIN.read_text().split()[:2]
    month = datetime.date.today().strftime("%Y-%m")
    pages = {
        "dashboard.png": "/admin/staste/",
        "metrica.png": f"/admin/staste/guest_visits/?_span={month}&_by=age",
        "demo.png": "/",
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
        page.goto(f"{base}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_load_state()
        for name, path in pages.items():
            page.goto(base + path)
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('canvas[data-staste-chart]'))"
                ".every(c => c.dataset.stasteDrawn === '1')"
            )
            page.screenshot(path=str(HERE / name), full_page=True)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000")
