"""Celery tasks (``pip install 'staste[celery]'``): the alerts, for Celery beat.

Celery's ``app.autodiscover_tasks()`` finds this module in the installed app ``staste``; beat
runs it on a schedule of your own (docs/alerts.md)::

    app.conf.beat_schedule = {
        "staste-alerts": {"task": "staste.evaluate_alerts", "schedule": 60.0},
    }

It does what ``manage.py staste alerts`` does, under the same Redis lock, so the cron line and
the task may even both run: one of two runs at once does nothing.  Importing this module needs
Celery; nothing else in staste does.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from staste.alerts import runner


@shared_task(name="staste.evaluate_alerts", ignore_result=False)
def evaluate_alerts() -> dict[str, Any]:
    """Evaluate every enabled alert once; what the run did (see ``runner.Report.summary``)."""
    return runner.run().summary()
