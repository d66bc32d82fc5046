"""staste's own metricas, found by autodiscovery like any app's ``stats.py``.

The response-time metrica is registered when ResponseTimeMiddleware is installed, so that it
is listed (in the admin, by the management commands) before the first request is served.
"""

from staste.middleware import installed, response_time_metrica

if installed():
    response_time = response_time_metrica()
