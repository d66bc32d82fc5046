"""Alerts: a rule on one number of a metrica, told by mail (and a webhook) when it starts and
when it stops crossing its line.

One module a job, from the rule to the mail:

* :mod:`~staste.alerts.rules`: what a rule may say about a metrica (axes, values, measure,
  window), checked the way the admin's page reads its query string, and the admin link of a rule;
* :mod:`~staste.alerts.reading`: the numbers a rule judges, read through the query API in one
  round trip under the query budget;
* :mod:`~staste.alerts.judging`: the verdict (ok, firing, no data): pure arithmetic;
* :mod:`~staste.alerts.notify`: the mail (text and HTML, through Django's e-mail framework)
  and the webhook (a JSON POST with a Slack-compatible ``text``);
* :mod:`~staste.alerts.runner`: one run over every enabled alert, under a Redis lock, keeping
  each alert's state and history (``staste.models.AlertEvent``).

``manage.py staste alerts`` (cron, once a minute) and the Celery task ``staste.tasks.evaluate_alerts``
call :func:`staste.alerts.runner.run`.  docs/alerts.md has the whole story.
"""
