"""System checks (``manage.py check``) for staste: configuration problems surface here, each
with an id (``staste.E001``...), a message and a hint, never as exceptions at import time."""

from __future__ import annotations
