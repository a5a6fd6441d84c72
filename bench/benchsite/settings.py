"""The demo project's settings, served the way production serves them, for bench/ scripts.

DEBUG off, PostgreSQL (``DATABASE_URL``) and the Redis broker (``CELERY_BROKER_URL``) from the
environment, plus a few views that are the baselines the app is measured against.
"""

import os

from project.settings import *  # noqa: F401,F403
from project.settings import BASE_DIR, ESP_FORMS, TEMPLATES

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "bench.benchsite.urls"
TEMPLATES[0]["DIRS"] = [BASE_DIR / "bench" / "benchsite" / "templates", *TEMPLATES[0]["DIRS"]]
# The load comes from one address: the per-IP submit throttle stays on, with room for it.
ESP_FORMS = {**ESP_FORMS, "SUBMIT_THROTTLE": "100000000/min", "MIN_FILL_SECONDS": 0}
if os.environ.get("BENCH_CONN_MAX_AGE") is not None:
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "root": {"handlers": [], "level": "ERROR"}}
