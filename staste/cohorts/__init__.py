"""Exact per-user activity: who did what, on which day, for metricas made with ``users=True``.

A kick with ``user=`` sets the user's bit in the metrica's bitmaps of its day, ISO week and
month (staste.cohorts.marks); ``metrica.users()`` and ``user_ids()`` count and list the users of
a range, :func:`funnel` follows them through ordered steps and :func:`retention` through
periods.  The layout and its costs: docs/cohorts.md.

>>> staste.cohorts.funnel([signed_up, added_to_cart, paid], since, until, within=7)  # doctest: +SKIP
"""

from staste.cohorts.errors import NotKeptForUsers, RangeNotKept, TooManyUsers
from staste.cohorts.funnel import Funnel, FunnelStep, funnel
from staste.cohorts.reading import user_ids, users
from staste.cohorts.retention import Cohort, retention

__all__ = [
    "Cohort",
    "Funnel",
    "FunnelStep",
    "NotKeptForUsers",
    "RangeNotKept",
    "TooManyUsers",
    "funnel",
    "retention",
    "user_ids",
    "users",
]
