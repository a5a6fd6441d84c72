"""Root conftest: test-wide environment and the plugins the suite shares."""

import os

# Tests queue tasks in memory unless a test starts real workers (tests/services sets its own
# broker through the environment before Django loads).
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

pytest_plugins = ["esp_forms.emulator.pytest_plugin"]
