"""WSGI application of tests.middleware_app.settings (``gunicorn tests.middleware_app.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.middleware_app.settings")
application = get_wsgi_application()
