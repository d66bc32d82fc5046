"""Database work per request, by view: the metricas ``db_queries``, ``db_time`` and ``db_n_plus_one``.

The response-time middleware counts every SQL statement a request runs (:mod:`staste.work`)
and, once the response is ready, records (``STASTE_DATABASE_TIMING``, on by default):

* ``db_queries``, an AveragedMetrica: the request's number of statements;
* ``db_time``, an AveragedMetrica: the milliseconds spent in them;

one kick each per request (a request that ran no statement counts 0), with the ``view`` axis
``response_time`` has, so ``db_queries.filter(view=...).average()`` is the statements per
request of a view, and ``db_time`` against ``response_time`` the share of its time spent in
the database.  And

* ``db_n_plus_one``, an AveragedMetrica with the axes ``view`` and ``statement``: one kick
  per request that ran one statement (the same SQL text, before its parameters) at least
  ``STASTE_N_PLUS_ONE`` times (default 5; 0 turns it off), whose value is how many times.
  ``statement`` is that SQL, normalised (literals and ``IN`` lists as ``?``, spaces collapsed)
  and cut to ``STATEMENT_LENGTH`` characters; it keeps at most ``STATEMENTS`` values.

All three are buffered: recording is a dictionary update, no Redis round trip.

>>> statement_text('SELECT "shop_item"."id" FROM "shop_item" WHERE "shop_item"."id" IN (%s, %s, %s)')
'SELECT "shop_item"."id" FROM "shop_item" WHERE "shop_item"."id" IN (?)'
"""

from __future__ import annotations

import re

from staste.axis import StoredChoiceAxis
from staste.metrica import AveragedMetrica
from staste.registration import registered

QUERIES = "db_queries"
TIME = "db_time"
N_PLUS_ONE = "db_n_plus_one"
#: Longest statement text the ``statement`` axis keeps (the start of a statement tells it apart).
STATEMENT_LENGTH = 200
#: Distinct statements ``db_n_plus_one`` keeps; later ones count as "(other)".
STATEMENTS = 200

#: How many SQL texts :func:`statement_text` remembers the normalised text of.
MAX_REMEMBERED = 1000
_texts: dict[str, str] = {}

_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w\"`.$])-?\d+(?:\.\d+)?(?![\w\"`])")
_PLACEHOLDER = re.compile(r"%s|%\(\w+\)s|\?|:\w+|\$\d+")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_SPACE = re.compile(r"\s+")


def statement_text(sql: str) -> str:
    """``sql`` as the ``statement`` axis keeps it: one line, literals and parameters as ``?``
    (an ``IN`` list of any length as one), at most ``STATEMENT_LENGTH`` characters.  Remembered
    for the last ``MAX_REMEMBERED`` texts: a view's N+1 repeats its SQL request after request."""
    text = _texts.get(sql)
    if text is None:
        if len(_texts) >= MAX_REMEMBERED:
            _texts.clear()
        text = _texts[sql] = _normalised(sql)
    return text


def _normalised(sql: str) -> str:
    text = _SPACE.sub(" ", sql).strip()
    text = _STRING.sub("?", text)
    text = _PLACEHOLDER.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _LIST.sub("(?)", text)
    if len(text) > STATEMENT_LENGTH:
        text = text[: STATEMENT_LENGTH - 1] + "…"
    return text


def view_axis() -> StoredChoiceAxis:
    """The ``view`` axis of the per-request metricas: the values ``response_time`` stores."""
    return StoredChoiceAxis()


def queries_metrica() -> AveragedMetrica:
    """``db_queries``: SQL statements per request, by view (registered on first use)."""
    return registered(
        QUERIES,
        lambda: AveragedMetrica(
            name=QUERIES,
            axes=[("view", view_axis())],
            title="Database queries",
            description="SQL statements each request ran, by view (staste.database).",
            category="Site",
            buffered=True,
        ),
    )


def time_metrica() -> AveragedMetrica:
    """``db_time``: milliseconds each request spent in SQL statements, by view."""
    return registered(
        TIME,
        lambda: AveragedMetrica(
            name=TIME,
            axes=[("view", view_axis())],
            multiplier=1000,  # milliseconds, kept to the microsecond
            title="Database time",
            description="Milliseconds each request spent running SQL statements, by view (staste.database).",
            unit="ms",
            category="Site",
            buffered=True,
        ),
    )


def n_plus_one_metrica() -> AveragedMetrica:
    """``db_n_plus_one``: requests that repeated one statement, by view and statement."""
    return registered(
        N_PLUS_ONE,
        lambda: AveragedMetrica(
            name=N_PLUS_ONE,
            axes=[("view", view_axis()), ("statement", StoredChoiceAxis(max_choices=STATEMENTS))],
            title="Repeated queries (N+1)",
            description=(
                "Requests that ran one SQL statement at least STASTE_N_PLUS_ONE times; the value is "
                "how many times (staste.database)."
            ),
            category="Site",
            buffered=True,
        ),
    )


def metricas() -> tuple[AveragedMetrica, AveragedMetrica, AveragedMetrica]:
    """The three, registered: ``db_queries``, ``db_time``, ``db_n_plus_one``."""
    return queries_metrica(), time_metrica(), n_plus_one_metrica()
