"""The test settings with ResponseTimeMiddleware installed, for a real server (gunicorn) in a test.

STASTE_REDIS_URL and STASTE_METRICS_PREFIX come from the environment the test sets.
"""

from tests.settings import *  # noqa: F403
from tests.settings import MIDDLEWARE as BASE_MIDDLEWARE

MIDDLEWARE = ["staste.middleware.ResponseTimeMiddleware", *BASE_MIDDLEWARE]
