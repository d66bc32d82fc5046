"""Annotations: notes at a moment ("Release 2.3", "Newsletter sent"), drawn on the line charts.

::

    import staste
    staste.annotate("Newsletter sent")                                   # now, on every chart
    staste.annotate("Prices up 10%", when=datetime(2024, 3, 1, 9), metricas=["pocket_money"])

They are rows of :class:`staste.models.Annotation`, edited in the admin too.  Two kinds are
added by themselves, each switched off by a setting:

* **a release** (``STASTE_ANNOTATE_RELEASES``): the first process that runs with a
  ``STASTE_RELEASE`` (a setting, or the environment) that no annotation marks yet creates
  "Release <name>".  The check is made once per process, on its first request (and when an
  alerts run or a digest starts), never at import: starting a process costs no query, and the
  release is unique in the database, so workers starting at once create it once.
* **migrations** (``STASTE_ANNOTATE_MIGRATIONS``): after ``migrate`` applied migrations, one
  annotation names each app migrated and the migration it stopped at ("Migrations: shop
  0007_price, staste 0002_annotation_alert"); a ``migrate`` that had nothing to do adds none.

Charts find theirs with :func:`between` (see ``staste.charts.annotations``).
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, router, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from staste import conf
from staste.models import Annotation

logger = logging.getLogger("staste")

#: Most annotations one chart shows (the latest of its range): a marker every few pixels says nothing.
MAX_SHOWN = 100

_release_lock = threading.Lock()
#: The release this process checked already (a setting may change it in tests: then it is checked again).
_release_checked: str | None = None


def annotate(
    text: str, when: datetime.datetime | datetime.date | None = None, metricas: Iterable[str] | None = None
) -> Annotation:
    """Create an annotation: ``text`` at ``when`` (default now) on the charts of ``metricas``
    (names; None or empty: every chart).  A naive ``when`` is read in ``STASTE_TIME_ZONE``, as a
    kick's date is.  ValueError for an empty or too long text."""
    text = str(text).strip()
    limit = Annotation._meta.get_field("text").max_length
    assert limit is not None  # a CharField has one (Django's check fields.E120)
    if not text or len(text) > limit:
        raise ValueError(f"annotate: give a text of 1 to {limit} characters, not {len(text)}")
    names = sorted({str(name) for name in metricas or ()})
    moment = timezone.now() if when is None else to_database(conf.local(when))
    return Annotation.objects.create(time=moment, text=text, metricas=names)


def to_database(local: datetime.datetime) -> datetime.datetime:
    """A naive datetime on the clock of ``STASTE_TIME_ZONE`` as the database keeps times: aware
    with ``USE_TZ``, else naive in ``TIME_ZONE``.  Clamped to what the database can hold."""
    local = min(max(local, datetime.datetime(1, 1, 2)), datetime.datetime(9999, 12, 30))
    aware = local.replace(tzinfo=conf.time_zone())
    if settings.USE_TZ:
        return aware
    return timezone.make_naive(aware, timezone.get_default_timezone())


def to_local(stored: datetime.datetime) -> datetime.datetime:
    """A time read from the database as a naive datetime on the clock the buckets follow."""
    if timezone.is_naive(stored):  # USE_TZ = False: the database keeps TIME_ZONE's wall clock
        stored = timezone.make_aware(stored, timezone.get_default_timezone())
    return conf.local(stored)


def between(start: datetime.datetime, end: datetime.datetime) -> list[Annotation]:
    """The annotations from ``start`` up to ``end`` (naive, in ``STASTE_TIME_ZONE``), oldest
    first: at most the ``MAX_SHOWN`` latest.  One indexed query."""
    found = Annotation.objects.filter(time__gte=to_database(start), time__lt=to_database(end)).order_by("-time")
    return sorted(found[:MAX_SHOWN], key=lambda note: note.time)


# -- releases ---------------------------------------------------------------------------------


def mark_release() -> Annotation | None:
    """Annotate the release this process runs (``STASTE_RELEASE``), unless an annotation marks
    it already; once per process (later calls return at once).  None when there is no release
    or ``STASTE_ANNOTATE_RELEASES`` is off.

    A database that cannot take it (no table yet: ``migrate`` has not run) is logged, never
    raised: this runs on a request.
    """
    global _release_checked
    release = conf.get("STASTE_RELEASE")
    release = str(release).strip() if release else ""
    if not release or not conf.get("STASTE_ANNOTATE_RELEASES") or _release_checked == release:
        return None
    with _release_lock:
        if _release_checked == release:
            return None
        _release_checked = release
        try:
            return _release_annotation(release)
        except DatabaseError as exc:
            logger.warning("staste: release %r not annotated: %s", release, exc)
            return None


def _release_annotation(release: str) -> Annotation:
    using = router.db_for_write(Annotation)
    found = Annotation.objects.using(using).filter(release=release).first()
    if found is not None:
        return found
    try:
        with transaction.atomic(using=using):  # (a savepoint: a race lost leaves the transaction usable)
            return Annotation.objects.using(using).create(
                text=(_("Release %(release)s") % {"release": release})[:200],
                kind=Annotation.Kind.RELEASE,
                release=release,
            )
    except IntegrityError:  # another process created it first
        return Annotation.objects.using(using).get(release=release)


def forget_release_check() -> None:
    """Check the release again at the next request (a setting changed)."""
    global _release_checked
    _release_checked = None


conf.on_config_change(forget_release_check)


def on_request_started(**kwargs: Any) -> None:
    """``request_started`` receiver: the release check, on a process' first request (later
    requests find it made and return at once)."""
    mark_release()


# -- migrations -------------------------------------------------------------------------------


def migrations_text(plan: Sequence[tuple[Any, bool]]) -> str | None:
    """What an annotation says about a ``migrate`` run's plan: each app and the migration it
    stopped at, in the plan's order (None when the plan is empty).

    >>> migrations_text([(Migration("0002_a", "shop"), False), (Migration("0003_b", "shop"), False)])  # doctest: +SKIP
    'Migrations: shop 0003_b'
    """
    forwards: dict[str, str] = {}
    backwards: dict[str, str] = {}
    for migration, backward in plan:
        (backwards if backward else forwards)[migration.app_label] = migration.name
    parts = []
    if forwards:
        parts.append(
            _("Migrations: %(migrations)s") % {"migrations": ", ".join(f"{a} {n}" for a, n in forwards.items())}
        )
    if backwards:
        parts.append(
            _("Migrations unapplied: %(migrations)s")
            % {"migrations": ", ".join(f"{a} {n}" for a, n in backwards.items())}
        )
    if not parts:
        return None
    text = "; ".join(parts)
    return text if len(text) <= 200 else text[:199] + "…"


def on_post_migrate(
    *, plan: Sequence[tuple[Any, bool]] | None = None, using: str = "default", apps: Any = None, **kwargs: Any
) -> None:
    """``post_migrate`` receiver (sent once per ``migrate`` for staste's app): annotate the
    migrations the run applied.  ``flush`` sends the signal without a plan: nothing is added."""
    if not plan or not conf.get("STASTE_ANNOTATE_MIGRATIONS"):
        return
    text = migrations_text(plan)
    if text is None:
        return
    try:
        model = apps.get_model("staste", "Annotation") if apps is not None else Annotation
    except LookupError:  # staste migrated back past the table
        return
    model.objects.using(using).create(text=text, kind=Annotation.Kind.MIGRATION, time=timezone.now())
