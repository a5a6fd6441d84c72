"""System checks: stable ids, wording from the constants in esp_forms.checks."""

import pytest
from django.core.checks import Error, Warning
from django.test import override_settings

from esp_forms.checks import (
    Codes,
    Hints,
    Messages,
    check_forms,
    check_settings,
    check_site_url,
    check_throttle_cache,
)
from esp_forms.models import FormField, ProviderAccount
from tests.conftest import make_form


def ids(messages):
    return [m.id for m in messages]


def test_clean_settings_only_warn_about_the_local_limiter():
    assert check_settings() == [Warning(Messages.LOCAL_RATE_LIMITER, hint=Hints.LOCAL_RATE_LIMITER,
                                        id=Codes.LOCAL_RATE_LIMITER)]


def test_unknown_and_bad_settings():
    with override_settings(ESP_FORMS={"RETRY_SCHEDULE": [], "RETRY_SHEDULE": [1],
                                      "RATE_LIMIT_REDIS_URL": "redis://x:6379/0"}):
        result = check_settings()
    assert result[0] == Warning(Messages.UNKNOWN_SETTING.format(keys="RETRY_SHEDULE"),
                                hint=Hints.UNKNOWN_SETTING, id=Codes.UNKNOWN_SETTING)
    assert ids(result) == [Codes.UNKNOWN_SETTING, Codes.BAD_SETTING]


def test_countdown_must_stay_below_visibility_timeout():
    with override_settings(CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 300},
                           ESP_FORMS={"RATE_LIMIT_REDIS_URL": "redis://x:6379/0"}):
        assert ids(check_settings()) == [Codes.BAD_SETTING]


@pytest.mark.django_db
def test_database_checks(sandbox_account):
    unisender = ProviderAccount.objects.create(name="Uni", provider="unisender", api_key="")
    make_form(unisender, "uni", lists="not-a-number")
    inactive = ProviderAccount.objects.create(name="Off", provider="sandbox", is_active=False)
    make_form(inactive, "off-form")
    make_form(sandbox_account, "two-phones", fields=[{"name": "phone", "kind": "phone"},
                                                     {"name": "mobile", "kind": "phone"}])
    no_email = make_form(sandbox_account, "no-email")
    FormField.objects.filter(form=no_email).delete()
    ProviderAccount.objects.create(name="Odd", provider="mailchimp")
    broken = ProviderAccount.objects.create(name="Broken", provider="sandbox",
                                            config_error="bad key")
    assert broken.is_active

    result = check_forms(databases=["default"])
    assert sorted(ids(result)) == sorted([
        Codes.ACCOUNT_WITHOUT_KEY, Codes.UNKNOWN_PROVIDER, Codes.ACCOUNT_CONFIG_ERROR,
        Codes.FORM_WITHOUT_ACTIVE_ACCOUNT, Codes.MISSING_EMAIL_FIELD,
        Codes.UNISENDER_WITHOUT_LISTS, Codes.DUPLICATE_STANDARD_FIELD,
    ])
    assert Error(Messages.MISSING_EMAIL_FIELD.format(form="no-email", count=0),
                 hint=Hints.MISSING_EMAIL_FIELD, obj=no_email,
                 id=Codes.MISSING_EMAIL_FIELD) in result
    assert check_forms(databases=None) == []


@pytest.mark.django_db
def test_forms_with_allowed_origins_need_cors_headers(sandbox_account, settings):
    from esp_forms.checks import check_embedding
    from tests.conftest import make_form

    make_form(sandbox_account, "shop", allowed_origins="https://shop.example.com")
    make_form(sandbox_account, "plain")
    assert check_embedding(databases=["default"]) == []  # the demo wires corsheaders in
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "corsheaders" not in m]
    [warning] = check_embedding(databases=["default"])
    assert warning.id == Codes.ORIGINS_WITHOUT_CORS == "esp_forms.W023"
    assert "'shop'" in warning.msg and warning.hint == Hints.ORIGINS_WITHOUT_CORS
    assert check_embedding(databases=None) == []


LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DUMMY = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                     "LOCATION": "redis://127.0.0.1:6379/0"}}


def test_a_per_process_throttle_cache_warns_outside_debug():
    with override_settings(DEBUG=False, CACHES=LOCMEM):
        assert check_throttle_cache() == [Warning(
            Messages.LOCAL_THROTTLE_CACHE.format(
                alias="default", backend="django.core.cache.backends.locmem.LocMemCache"),
            hint=Hints.LOCAL_THROTTLE_CACHE, id=Codes.LOCAL_THROTTLE_CACHE)]
    with override_settings(DEBUG=False, CACHES=DUMMY):
        assert ids(check_throttle_cache()) == [Codes.DUMMY_THROTTLE_CACHE]


@pytest.mark.parametrize("overrides", [
    {"DEBUG": True, "CACHES": LOCMEM},  # runserver: one process
    {"DEBUG": False, "CACHES": REDIS},  # shared
    {"DEBUG": False, "CACHES": LOCMEM, "ESP_FORMS": {"SUBMIT_THROTTLE": None}},  # no throttle
])
def test_no_throttle_cache_warning(overrides):
    with override_settings(**overrides):
        assert check_throttle_cache() == []


def test_the_throttle_cache_check_runs_with_manage_py_check():
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with override_settings(DEBUG=False, CACHES=DUMMY), pytest.raises(SystemCheckError) as err:
        call_command("check", "--fail-level", "WARNING")
    assert "esp_forms.W006" in str(err.value)


@pytest.mark.parametrize("overrides", [
    {"ESP_FORMS": {"SITE_URL": "https://www.example.com"}, "ALLOWED_HOSTS": ["www.example.com"]},
    {"ESP_FORMS": {"SITE_URL": "https://shop.example.com/"}, "ALLOWED_HOSTS": [".example.com"]},
    {"ESP_FORMS": {"SITE_URL": "http://127.0.0.1:8000"}, "ALLOWED_HOSTS": [], "DEBUG": True},
    {"ESP_FORMS": {"SITE_URL": "https://anything.test"}, "ALLOWED_HOSTS": ["*"]},
    {"ESP_FORMS": {"SITE_URL": None}, "ALLOWED_HOSTS": []},  # derived from ALLOWED_HOSTS
])
def test_site_url_served_by_this_site(overrides):
    with override_settings(**overrides):
        assert check_site_url() == []


@pytest.mark.parametrize(("overrides", "host"), [
    # The README's example kept on a local project: links would point at example.com.
    ({"ESP_FORMS": {"SITE_URL": "https://www.example.com"}, "ALLOWED_HOSTS": [],
      "DEBUG": True}, "www.example.com"),
    ({"ESP_FORMS": {"SITE_URL": "http://127.0.0.1:8000"}, "ALLOWED_HOSTS": ["shop.example.com"],
      "DEBUG": False}, "127.0.0.1"),
    ({"ESP_FORMS": {"SITE_URL": "shop.example.com"}, "ALLOWED_HOSTS": ["shop.example.com"]},
     "?"),
])
def test_site_url_elsewhere_warns(overrides, host):
    with override_settings(**overrides):
        assert check_site_url() == [Warning(
            Messages.SITE_URL_NOT_SERVED.format(url=overrides["ESP_FORMS"]["SITE_URL"],
                                                host=host),
            hint=Hints.SITE_URL_NOT_SERVED, id=Codes.SITE_URL_NOT_SERVED)]
