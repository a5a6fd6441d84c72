"""Settings of the demo project that sits beside the esp_forms app.

With no environment it runs on SQLite and an embedded Celery broker (kombu's filesystem
transport), so ``make run`` needs no server. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to
PostgreSQL and Redis.
"""

import importlib.util
import json
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DEMO_DIR = Path(os.environ.get("ESP_FORMS_DEMO_DIR", BASE_DIR / ".demo"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-insecure-key-change-me-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "esp_forms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # The visitor's language from the Accept-Language header (or the django_language cookie):
    # the forms, their messages and the confirmation page follow it. After the session, before
    # CommonMiddleware; after CORS, so that its answers carry CORS headers too.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        # Persistent connections, checked before each request or task reuses them: a new
        # PostgreSQL connection costs about as much as a whole signup (docs/performance.md).
        default=f"sqlite:///{DEMO_DIR / 'db.sqlite3'}", conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, worker and beat share one file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares esp_forms' hot statements after five runs on a connection (Django's own
    # queries stay unprepared); None behind PgBouncer's transaction pooling (esp_forms.prepared).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5

LANGUAGE_CODE = "en-us"
# The languages visitors can get; esp_forms ships Ukrainian and Russian (esp_forms/locale/).
LANGUAGES = [("en", "English"), ("uk", "Українська"), ("ru", "Русский")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DEMO_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The demo writes every email (confirmation links, alerts) to files that /demo/mail/ shows.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = DEMO_DIR / "mail"
DEFAULT_FROM_EMAIL = "newsletter@example.com"
ADMINS = [("Demo admin", "admin@example.com")]

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    # The embedded demo runs exactly one worker process, so a per-process rate limiter is right,
    # and one web process (runserver), so the submit throttle may count in the local cache.
    SILENCED_SYSTEM_CHECKS = ["esp_forms.W003", "esp_forms.W005"]
    _broker_dir = DEMO_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast (remote control) messages; kombu's default is ./control in the cwd.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _d in (_broker_dir, _broker_dir / "processed", _broker_dir / "control"):
        _d.mkdir(parents=True, exist_ok=True)
else:
    # Redis redelivers an unacknowledged task after this many seconds; it must stay longer
    # than any countdown esp_forms uses (ESP_FORMS["MAX_COUNTDOWN"]).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the database connection around every task unless this is set;
# esp_forms then applies CONN_MAX_AGE and CONN_HEALTH_CHECKS around its own tasks instead
# (docs/performance.md: a new PostgreSQL connection per delivery halves the throughput).
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "esp-forms-sweep": {"task": "esp_forms.sweep_outbox", "schedule": 30.0},
    "esp-forms-poll-optin": {"task": "esp_forms.poll_optin", "schedule": 60.0},
    "esp-forms-reconcile": {"task": "esp_forms.reconcile_optin", "schedule": 900.0},
    "esp-forms-expire": {"task": "esp_forms.expire_unconfirmed", "schedule": 3600.0},
    "esp-forms-purge": {"task": "esp_forms.purge", "schedule": 24 * 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DEMO_DIR / "celerybeat-schedule")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "esp_forms API",
    "DESCRIPTION": "Newsletter signup forms: public schema, submissions and their status.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- esp_forms ------------------------------------------------------------------------------
ESP_FORMS = {
    "SITE_URL": os.environ.get("ESP_FORMS_SITE_URL",
                               f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"),
    # Demo and test convenience: extra settings as JSON, e.g. '{"RETRY_SCHEDULE": [1, 5]}'.
    **json.loads(os.environ.get("ESP_FORMS_JSON", "{}")),
}
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and importlib.util.find_spec("prometheus_client"):
    # `make run` shares one metrics directory between the web server and the worker: the demo
    # then serves /esp-forms/metrics/ to this machine (docs/operations.md, Metrics).
    ESP_FORMS.setdefault("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"esp_forms": {"handlers": ["console"],
                              "level": os.environ.get("ESP_FORMS_LOG_LEVEL", "INFO")}},
}

DEMO_DIR.mkdir(parents=True, exist_ok=True)
