"""These tests need Wagtail's apps, so they run in their own pytest invocation with
``--ds=tests.wagtail_site.settings`` (``make test`` does); the main run skips collecting them."""

from django.conf import settings

if "wagtail" not in settings.INSTALLED_APPS:
    collect_ignore_glob = ["test_*.py"]
