"""The demo's settings plus Wagtail, for the tests of ``esp_forms.contrib.wagtail`` only
(``pytest tests/wagtail_site --ds=tests.wagtail_site.settings``; ``make test`` runs it)."""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "tests.wagtail_site",
]
ROOT_URLCONF = "tests.wagtail_site.urls"
WAGTAIL_SITE_NAME = "esp_forms on Wagtail"
WAGTAILADMIN_BASE_URL = "http://127.0.0.1:8000"
