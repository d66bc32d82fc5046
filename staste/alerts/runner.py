"""One run over every enabled alert: read, judge, keep the state, tell the changes.

:func:`run` is what ``manage.py staste alerts`` and the Celery task call, once a minute.

* **One run at a time.**  A run holds a lock in Redis (``<prefix>:alerts:lock``, ``SET NX`` with
  a ``STASTE_ALERTS_LOCK_TIMEOUT`` expiry, renewed before each alert); a run that finds it
  taken does nothing.  The mail itself is claimed in the database too (the alert's
  ``notified`` is moved with a conditional UPDATE before anything is sent), so even a run whose
  lock expired under it cannot send a mail another run sent.
* **A state per alert, a history of its changes.**  ok, firing, no data (too few events), or
  unknown (not read: Redis away, a rule its metrica no longer answers).  Every change of state
  is an :class:`~staste.models.AlertEvent`.
* **Mail on a change only.**  An alert that starts firing is told once ("firing"); told once
  more when it is back to ok ("resolved"); never while it stays firing.  Unknown and no data
  are never mailed and end nothing: an alert that fired, then could not be read during a
  Redis outage, is resolved only when it is read again and found ok — never by the outage.
* **Redis away**: the lock cannot be taken, so nothing is read nor told; every alert becomes
  unknown (each once: the change is a conditional UPDATE too).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Any

import redis
from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import override

from staste import annotations as notes  # named apart from `from __future__ import annotations`
from staste import conf, connection, formats, refusals
from staste.alerts import notify
from staste.alerts.judging import FIRING, NO_DATA, OK, Numbers, Rule, Verdict, judge
from staste.alerts.reading import read
from staste.alerts.rules import RuleError, check
from staste.exceptions import RedisUnavailable
from staste.models import Alert, AlertEvent, State

logger = logging.getLogger("staste")

#: What reading an alert's numbers may raise that makes its state unknown, not the run fail.
READ_FAILURES = (RedisUnavailable, redis.RedisError, redis.exceptions.RedisClusterException)


@dataclasses.dataclass
class Report:
    """What a run did: the alerts it judged, the changes of state (events), and why it
    did nothing when it did nothing (another run holds the lock, Redis is away)."""

    evaluated: int = 0
    events: list[AlertEvent] = dataclasses.field(default_factory=list)
    locked: bool = False
    outage: str | None = None
    lost_lock: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "changes": len(self.events),
            "mailed": sum(event.mailed for event in self.events),
            "locked": self.locked,
            "outage": self.outage,
        }


def lock_key() -> str:
    return f"{conf.get('STASTE_METRICS_PREFIX')}:alerts:lock"


def run(now: datetime.datetime | None = None, alerts: Any = None) -> Report:
    """Evaluate every enabled alert (or those of the queryset ``alerts``) once, at ``now``
    (default: the present; aware, or naive in STASTE_TIME_ZONE).  What it records and mails
    is in the site's language (``LANGUAGE_CODE``), whoever runs it (cron, a Celery worker)."""
    with override(settings.LANGUAGE_CODE):
        return _run(conf.local(now), alerts)


def _run(moment: datetime.datetime, alerts: Any) -> Report:
    stamp = notes.to_database(moment)
    notes.mark_release()  # a process that only runs alerts marks its release too
    chosen = list((alerts if alerts is not None else Alert.objects.all()).filter(enabled=True))
    report = Report()
    try:
        lock = connection.get_redis().lock(
            lock_key(), timeout=conf.get("STASTE_ALERTS_LOCK_TIMEOUT"), blocking=False, thread_local=False
        )
        taken = lock.acquire()
    except (*READ_FAILURES, OSError) as exc:
        report.outage = str(exc)
        for alert in chosen:
            settle(alert, State.UNKNOWN, None, _("Redis could not be read: %(error)s") % {"error": exc}, stamp, report)
        return report
    if not taken:
        report.locked = True
        return report
    try:
        for alert in chosen:
            try:
                lock.reacquire()  # a fresh expiry for each alert: a long run keeps its lock
            except redis.exceptions.LockError:
                report.lost_lock = True
                break
            except READ_FAILURES:
                pass  # Redis went away: the reads fail too, and the alert is unknown
            evaluate(alert, moment, stamp, report)
            report.evaluated += 1
    finally:
        try:
            lock.release()
        except (redis.exceptions.LockError, *READ_FAILURES):
            pass  # expired, or Redis away: it expires by itself
    return report


def evaluate(alert: Alert, moment: datetime.datetime, stamp: datetime.datetime, report: Report) -> None:
    """Read, judge and settle one alert; tell its change of state if it is one to tell."""
    try:
        state = check(alert.metrica, alert.filters, alert.measure, alert.window)
    except RuleError as exc:
        settle(alert, State.UNKNOWN, None, str(exc), stamp, report)
        return
    try:
        numbers = read(state, moment, with_previous=alert.change is not None)
    except READ_FAILURES as exc:
        settle(alert, State.UNKNOWN, None, _("Redis could not be read: %(error)s") % {"error": exc}, stamp, report)
        return
    except (TypeError, ValueError) as exc:  # QueryTooExpensive, a window past the retention...
        settle(alert, State.UNKNOWN, None, refusals.refusal(exc), stamp, report)
        return
    verdict = judge(numbers, Rule(alert.above, alert.below, alert.change, alert.min_count))
    new = {OK: State.OK, FIRING: State.FIRING, NO_DATA: State.NO_DATA}[verdict.state]
    detail = describe(alert, state, numbers, verdict)
    settle(alert, new, numbers.value, detail, stamp, report, state=state, numbers=numbers, verdict=verdict)


def describe(alert: Alert, state: Any, numbers: Numbers, verdict: Verdict) -> str:
    """One line for the admin and the history: the number, and why it is judged so."""
    unit = notify.unit_of(state)
    shown = formats.with_unit(numbers.value, unit)
    if verdict.state == NO_DATA:
        if verdict.too_few:
            return _("%(events)s events, fewer than the %(min)s needed to judge") % {
                "events": formats.display(numbers.events),
                "min": alert.min_count,
            }
        return _("no number to judge (%(value)s)") % {"value": shown}
    text = f"{formats.measure_label(state.measure)} = {shown}"
    if verdict.change is not None:
        text += (
            " ("
            + _("%(change)s against the previous window") % {"change": formats.signed_percent(verdict.change)}
            + ")"
        )
    return text


def settle(
    alert: Alert,
    new: str,
    value: float | None,
    detail: str,
    stamp: datetime.datetime,
    report: Report,
    *,
    state: Any = None,
    numbers: Numbers | None = None,
    verdict: Verdict | None = None,
) -> None:
    """Keep ``alert``'s new state; on a change, record it and tell it when it is one to tell."""
    previous = alert.state
    changed = new != previous
    fields: dict[str, Any] = {"value": value, "detail": detail[:2000], "checked_at": stamp}
    if changed:
        # Conditional: two runs that both saw the old state (an outage, without the lock) record one change.
        fields.update(state=new, changed_at=stamp)
        if not Alert.objects.filter(pk=alert.pk, state=previous).update(**fields):
            return
    else:
        Alert.objects.filter(pk=alert.pk).update(**fields)
    for name, field_value in fields.items():
        setattr(alert, name, field_value)
    kind = None
    if new == State.FIRING and alert.notified != State.FIRING:
        kind = notify.FIRING
    elif new == State.OK and alert.notified == State.FIRING:
        kind = notify.RESOLVED
    mailed, notice = False, ""
    if kind is not None and state is not None and claim(alert, new):
        mailed, notice = tell(alert, kind, state, numbers, verdict, stamp)
    if changed or kind is not None:
        event = AlertEvent.objects.create(
            alert=alert,
            time=stamp,
            state=new,
            previous=previous,
            value=value,
            detail=detail[:2000],
            mailed=mailed,
            notice=notice,
        )
        report.events.append(event)


def claim(alert: Alert, new: str) -> bool:
    """Move ``notified`` to ``new`` unless another run did: only the run that moved it tells."""
    claimed = Alert.objects.filter(pk=alert.pk).filter(~Q(notified=new)).update(notified=new)
    alert.notified = new
    return bool(claimed)


def tell(
    alert: Alert, kind: str, state: Any, numbers: Numbers | None, verdict: Verdict | None, stamp: datetime.datetime
) -> tuple[bool, str]:
    """Mail (and post) the change; (mailed, what failed or what the webhook answered)."""
    since = formats.bucket_label(conf.local(stamp), "minute") + f" ({conf.time_zone().key})"
    message = notify.context(alert, kind, state, numbers, verdict, since)
    problems = []
    failed = notify.send_mail(alert, message)
    if failed:
        problems.append(failed)
    if alert.webhook:
        value = numbers.value if numbers is not None else None
        problems.append(notify.post_webhook(alert.webhook, notify.webhook_payload(alert, state, message, value)))
    return failed is None, "; ".join(problems)
