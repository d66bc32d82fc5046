"""staste speaks the admin's language: its catalogue is current and complete, and pages rendered
in Russian keep no English label.

The catalogue checks run GNU gettext's tools, as ``makemessages`` does (``make test`` installs
them on Debian); ``make messages`` refreshes the catalogue after a user-facing string changed.
"""

from __future__ import annotations

import difflib
import gettext
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "staste"
CATALOGUE = Path("locale") / "ru" / "LC_MESSAGES"
TOOLS = ("xgettext", "msgmerge", "msgfmt", "msgattrib")


def require_gettext() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"GNU gettext is needed ({', '.join(missing)} missing): apt-get install gettext (make test does)")


def without_dates(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(('"POT-Creation-Date:', '"PO-Revision-Date:'))]


def test_the_catalogue_is_current(tmp_path: Path) -> None:
    """``makemessages`` run on a copy of the package finds exactly the entries shipped."""
    require_gettext()
    copy = tmp_path / "staste"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "ru", "--no-location", "--no-obsolete"],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = without_dates((copy / CATALOGUE / "django.po").read_text(encoding="utf-8"))
    shipped = without_dates((PACKAGE / CATALOGUE / "django.po").read_text(encoding="utf-8"))
    difference = "\n".join(difflib.unified_diff(shipped, fresh, "shipped", "makemessages", lineterm="", n=1))
    assert fresh == shipped, f"the catalogue is not current: run `make messages` and translate\n{difference}"


@pytest.mark.parametrize("which", ["--untranslated", "--only-fuzzy"])
def test_every_entry_is_translated_and_none_is_fuzzy(which: str) -> None:
    require_gettext()
    found = subprocess.run(
        ["msgattrib", which, "--no-wrap", str(PACKAGE / CATALOGUE / "django.po")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    entries = re.findall(r'^msgid "(.*)"$', found, flags=re.MULTILINE)
    assert entries == [], f"entries {which[2:]}: {entries}"


def test_the_compiled_catalogue_matches_its_source(tmp_path: Path) -> None:
    require_gettext()
    compiled = tmp_path / "django.mo"
    subprocess.run(
        ["msgfmt", "--check", "-o", str(compiled), str(PACKAGE / CATALOGUE / "django.po")],
        check=True,
        capture_output=True,
    )
    with compiled.open("rb") as fresh, (PACKAGE / CATALOGUE / "django.mo").open("rb") as shipped:
        assert gettext.GNUTranslations(shipped)._catalog == gettext.GNUTranslations(fresh)._catalog, (
            "django.mo is older than django.po: run `make messages`"
        )
