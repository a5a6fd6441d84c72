"""System checks with stable ids (``manage.py check``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

from esp_forms.conf import get_setting, unknown_settings


class Codes:
    FORM_WITHOUT_ACTIVE_ACCOUNT = "esp_forms.E001"
    UNKNOWN_PROVIDER = "esp_forms.E002"
    MISSING_EMAIL_FIELD = "esp_forms.E003"
    UNISENDER_WITHOUT_LISTS = "esp_forms.E004"
    BAD_SETTING = "esp_forms.E005"
    DUPLICATE_STANDARD_FIELD = "esp_forms.E006"
    ESPUTNIK_WITHOUT_CONFIRMED_GROUP = "esp_forms.E010"
    UNISENDER_BAD_LANGUAGE = "esp_forms.E011"
    UNKNOWN_SETTING = "esp_forms.W001"
    ACCOUNT_WITHOUT_KEY = "esp_forms.W002"
    LOCAL_RATE_LIMITER = "esp_forms.W003"
    ACCOUNT_CONFIG_ERROR = "esp_forms.W004"
    ESPUTNIK_WITHOUT_WEBHOOK_SECRET = "esp_forms.W008"
    ORIGINS_WITHOUT_CORS = "esp_forms.W023"
    METRICS_WITHOUT_LIBRARY = "esp_forms.E022"
    BAD_METRICS_ALLOWED_IPS = "esp_forms.E023"
    METRICS_SINGLE_PROCESS = "esp_forms.W020"
    LOCAL_THROTTLE_CACHE = "esp_forms.W005"
    DUMMY_THROTTLE_CACHE = "esp_forms.W006"
    SITE_URL_NOT_SERVED = "esp_forms.W007"


class Messages:
    FORM_WITHOUT_ACTIVE_ACCOUNT = (
        "Signup form '{form}' is active but its account '{account}' is not.")
    UNKNOWN_PROVIDER = "Provider account '{account}' names an unknown provider '{provider}'."
    MISSING_EMAIL_FIELD = "Signup form '{form}' has {count} email fields; it needs exactly one."
    UNISENDER_WITHOUT_LISTS = "UniSender form '{form}' has no numeric list ids."
    BAD_SETTING = "ESP_FORMS['{name}'] is invalid: {why}"
    UNKNOWN_SETTING = "ESP_FORMS has unknown keys: {keys}."
    DUPLICATE_STANDARD_FIELD = "Signup form '{form}' has {count} fields of kind '{kind}'."
    ACCOUNT_WITHOUT_KEY = "Provider account '{account}' ({provider}) has no API key."
    LOCAL_RATE_LIMITER = (
        "esp_forms has no Redis for its rate limiter, so each worker process counts alone."
    )
    ACCOUNT_CONFIG_ERROR = "Provider account '{account}' is failing: {error}"
    ESPUTNIK_WITHOUT_CONFIRMED_GROUP = (
        "eSputnik form '{form}' uses provider double opt-in without a confirmed segment, so no "
        "signup can ever be confirmed.")
    ESPUTNIK_WITHOUT_WEBHOOK_SECRET = (
        "eSputnik account '{account}' has no webhook secret, so every callback (confirmations, "
        "unsubscribes) is refused.")
    UNISENDER_BAD_LANGUAGE = (
        "UniSender account '{account}' uses the API language '{language}'; UniSender knows "
        "en, ru and ua only.")
    ORIGINS_WITHOUT_CORS = (
        "Signup form '{form}' allows other origins, but django-cors-headers is not set up, so "
        "browsers there cannot read the API's answers (the embed script shows nothing).")
    METRICS_WITHOUT_LIBRARY = (
        "The metrics endpoint is enabled but prometheus_client is not installed.")
    BAD_METRICS_ALLOWED_IPS = "ESP_FORMS['METRICS_ALLOWED_IPS'] has entries that are not IP "\
        "addresses or networks: {bad}"
    METRICS_SINGLE_PROCESS = (
        "The metrics endpoint is enabled without PROMETHEUS_MULTIPROC_DIR: provider call and "
        "rate-limit counters of Celery workers are not visible to it.")
    LOCAL_THROTTLE_CACHE = (
        "The per-IP submit throttle (SUBMIT_THROTTLE) counts in the '{alias}' cache, which is "
        "local to each process ({backend}): with several web processes each counts alone.")
    DUMMY_THROTTLE_CACHE = (
        "The per-IP submit throttle (SUBMIT_THROTTLE) counts in the '{alias}' cache, which "
        "stores nothing ({backend}): no client is ever throttled.")
    SITE_URL_NOT_SERVED = (
        "ESP_FORMS['SITE_URL'] is '{url}', but this site does not answer to '{host}' "
        "(ALLOWED_HOSTS): confirmation emails, the admin's embed links and the webhook URLs "
        "built from it point elsewhere.")


class Hints:
    FORM_WITHOUT_ACTIVE_ACCOUNT = "Activate the account or deactivate the form in the admin."
    UNKNOWN_PROVIDER = "Use one of: esputnik, unisender, sandbox."
    MISSING_EMAIL_FIELD = "Add one field of kind 'email' to the form in the admin."
    UNISENDER_WITHOUT_LISTS = "Set the form's lists to UniSender list ids, e.g. 555777 (getLists)."
    BAD_SETTING = "See docs/settings.md for the accepted values."
    UNKNOWN_SETTING = "Check the spelling against docs/settings.md."
    DUPLICATE_STANDARD_FIELD = (
        "Phone, first name and last name map onto one contact attribute each; keep one field "
        "of each kind (only the first is used).")
    ACCOUNT_WITHOUT_KEY = "Paste the API key into the account in the admin."
    LOCAL_RATE_LIMITER = (
        "Set ESP_FORMS['RATE_LIMIT_REDIS_URL'] (or use a redis:// CELERY_BROKER_URL) before "
        "running more than one worker process."
    )
    ACCOUNT_CONFIG_ERROR = "Fix the account, then run 'manage.py esp_forms_check_accounts'."
    ESPUTNIK_WITHOUT_CONFIRMED_GROUP = (
        "Set the form's confirmed segment (e.g. Confirmed) and add an 'Add to segment' step "
        "after 'Confirm contact' in the eSputnik workflow; see docs/providers/esputnik.md.")
    ESPUTNIK_WITHOUT_WEBHOOK_SECRET = (
        "Set a long random webhook secret on the account and use it as the activity webhook's "
        "password and in the workflow Webhook block.")
    UNISENDER_BAD_LANGUAGE = "Set the account's API language to en, ru or ua (ua for Ukrainian)."
    ORIGINS_WITHOUT_CORS = (
        "Add 'corsheaders' to INSTALLED_APPS and 'corsheaders.middleware.CorsMiddleware' to "
        "MIDDLEWARE above CommonMiddleware (docs/embedding.md, CORS).")
    METRICS_WITHOUT_LIBRARY = "pip install 'esp-forms[metrics]', or unset METRICS_TOKEN and "\
        "METRICS_ALLOWED_IPS."
    BAD_METRICS_ALLOWED_IPS = "Use a list such as ['127.0.0.1', '10.0.0.0/8', '::1']."
    METRICS_SINGLE_PROCESS = (
        "Set PROMETHEUS_MULTIPROC_DIR to the same empty directory for the web server and the "
        "workers (see docs/operations.md), or silence this check if they share one process.")
    LOCAL_THROTTLE_CACHE = (
        "Point CACHES['default'] at a cache every process shares (Redis, Memcached, the "
        "database), or silence esp_forms.W005 if the site runs in one process.")
    DUMMY_THROTTLE_CACHE = (
        "Point CACHES['default'] at a real shared cache, or set ESP_FORMS['SUBMIT_THROTTLE'] "
        "to None to turn the throttle off on purpose.")
    SITE_URL_NOT_SERVED = (
        "Set SITE_URL to the address visitors and providers reach this site at (locally e.g. "
        "http://127.0.0.1:8000), or add its host to ALLOWED_HOSTS.")


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    errors = []
    unknown = unknown_settings()
    if unknown:
        errors.append(Warning(Messages.UNKNOWN_SETTING.format(keys=", ".join(unknown)),
                              hint=Hints.UNKNOWN_SETTING, id=Codes.UNKNOWN_SETTING))
    schedule = get_setting("RETRY_SCHEDULE")
    if not schedule or not all(isinstance(s, (int, float)) and s > 0 for s in schedule):
        errors.append(Error(
            Messages.BAD_SETTING.format(name="RETRY_SCHEDULE", why="a non-empty list of positive "
                                        "seconds is needed"),
            hint=Hints.BAD_SETTING, id=Codes.BAD_SETTING))
    visibility = (getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}).get(
        "visibility_timeout")
    if visibility is not None and visibility <= get_setting("MAX_COUNTDOWN"):
        errors.append(Error(
            Messages.BAD_SETTING.format(
                name="MAX_COUNTDOWN",
                why=f"it must stay below the broker's visibility_timeout ({visibility} s), or "
                    "Redis delivers waiting tasks twice"),
            hint=Hints.BAD_SETTING, id=Codes.BAD_SETTING))
    from esp_forms.ratelimit import redis_url

    if redis_url() is None:
        errors.append(Warning(Messages.LOCAL_RATE_LIMITER, hint=Hints.LOCAL_RATE_LIMITER,
                              id=Codes.LOCAL_RATE_LIMITER))
    return errors


@register(Tags.database)
def check_forms(app_configs=None, databases=None, **kwargs):
    """Configuration stored in the database; runs only when checks are asked for databases."""
    if not databases:
        return []
    from esp_forms.models import FieldKind, ProviderAccount, SignupForm
    from esp_forms.providers import PROVIDERS

    errors = []
    try:
        accounts = list(ProviderAccount.objects.all())
        forms = list(SignupForm.objects.select_related("account").prefetch_related("fields"))
    except DatabaseError:  # not migrated yet
        return []
    for account in accounts:
        if account.provider not in PROVIDERS:
            errors.append(Error(Messages.UNKNOWN_PROVIDER.format(
                account=account.name, provider=account.provider),
                hint=Hints.UNKNOWN_PROVIDER, obj=account, id=Codes.UNKNOWN_PROVIDER))
        elif account.provider != "sandbox" and not account.api_key:
            errors.append(Warning(Messages.ACCOUNT_WITHOUT_KEY.format(
                account=account.name, provider=account.provider),
                hint=Hints.ACCOUNT_WITHOUT_KEY, obj=account, id=Codes.ACCOUNT_WITHOUT_KEY))
        if account.provider == "esputnik" and not account.webhook_secret.strip():
            errors.append(Warning(Messages.ESPUTNIK_WITHOUT_WEBHOOK_SECRET.format(
                account=account.name), hint=Hints.ESPUTNIK_WITHOUT_WEBHOOK_SECRET, obj=account,
                id=Codes.ESPUTNIK_WITHOUT_WEBHOOK_SECRET))
        if account.provider == "unisender" and account.api_language not in ("en", "ru", "ua"):
            errors.append(Error(Messages.UNISENDER_BAD_LANGUAGE.format(
                account=account.name, language=account.api_language),
                hint=Hints.UNISENDER_BAD_LANGUAGE, obj=account,
                id=Codes.UNISENDER_BAD_LANGUAGE))
        if account.is_active and account.config_error:
            errors.append(Warning(Messages.ACCOUNT_CONFIG_ERROR.format(
                account=account.name, error=account.config_error),
                hint=Hints.ACCOUNT_CONFIG_ERROR, obj=account, id=Codes.ACCOUNT_CONFIG_ERROR))
    for form in forms:
        if not form.is_active:
            continue
        if not form.account.is_active:
            errors.append(Error(Messages.FORM_WITHOUT_ACTIVE_ACCOUNT.format(
                form=form.form_type, account=form.account.name),
                hint=Hints.FORM_WITHOUT_ACTIVE_ACCOUNT, obj=form,
                id=Codes.FORM_WITHOUT_ACTIVE_ACCOUNT))
        emails = sum(1 for f in form.fields.all() if f.kind == FieldKind.EMAIL)
        if emails != 1:
            errors.append(Error(Messages.MISSING_EMAIL_FIELD.format(form=form.form_type,
                                                                   count=emails),
                                hint=Hints.MISSING_EMAIL_FIELD, obj=form,
                                id=Codes.MISSING_EMAIL_FIELD))
        for kind in (FieldKind.PHONE, FieldKind.FIRST_NAME, FieldKind.LAST_NAME):
            count = sum(1 for f in form.fields.all() if f.kind == kind)
            if count > 1:
                errors.append(Error(Messages.DUPLICATE_STANDARD_FIELD.format(
                    form=form.form_type, count=count, kind=kind.value),
                    hint=Hints.DUPLICATE_STANDARD_FIELD, obj=form,
                    id=Codes.DUPLICATE_STANDARD_FIELD))
        if (form.account.provider == "esputnik" and form.double_opt_in == "provider"
                and not form.confirmed_group.strip()):
            errors.append(Error(
                Messages.ESPUTNIK_WITHOUT_CONFIRMED_GROUP.format(form=form.form_type),
                hint=Hints.ESPUTNIK_WITHOUT_CONFIRMED_GROUP, obj=form,
                id=Codes.ESPUTNIK_WITHOUT_CONFIRMED_GROUP))
        if form.account.provider == "unisender" and (
                not form.list_values or not all(v.isdigit() for v in form.list_values)):
            errors.append(Error(Messages.UNISENDER_WITHOUT_LISTS.format(form=form.form_type),
                                hint=Hints.UNISENDER_WITHOUT_LISTS, obj=form,
                                id=Codes.UNISENDER_WITHOUT_LISTS))
    return errors


# --- the outbox and the submit path (esp_forms.outbox) -----------------------------------------

class OutboxCodes:
    LEASE_TOO_SHORT = "esp_forms.E019"
    NEW_CONNECTION_PER_REQUEST = "esp_forms.W017"
    NEW_CONNECTION_PER_TASK = "esp_forms.W018"


class OutboxMessages:
    LEASE_TOO_SHORT = ("ESP_FORMS['LEASE_SECONDS'] ({lease:g} s) is shorter than one provider "
                       "call may take ({call:g} s: CONNECT_TIMEOUT + READ_TIMEOUT).")
    NEW_CONNECTION_PER_REQUEST = (
        "The database '{alias}' (PostgreSQL) opens a new connection for every request and task "
        "(CONN_MAX_AGE = 0).")
    NEW_CONNECTION_PER_TASK = (
        "Celery closes the database connection before and after every task unless "
        "CELERY_DB_REUSE_MAX is set, whatever CONN_MAX_AGE says.")


class OutboxHints:
    LEASE_TOO_SHORT = ("Raise LEASE_SECONDS (or leave it None): a worker still calling could lose "
                       "its row to another, and the person would be called twice.")
    NEW_CONNECTION_PER_REQUEST = (
        "Set CONN_MAX_AGE (e.g. 600, or dj_database_url's conn_max_age=600) and "
        "CONN_HEALTH_CHECKS = True: connecting costs about as much as the whole signup. See "
        "docs/performance.md.")
    NEW_CONNECTION_PER_TASK = (
        "Set CELERY_DB_REUSE_MAX = 1000 (with the CELERY settings namespace): esp_forms then "
        "applies CONN_MAX_AGE and CONN_HEALTH_CHECKS around its tasks itself. A new "
        "connection per delivery halves the workers' throughput (docs/performance.md).")


@register(Tags.compatibility)
def check_outbox(app_configs=None, **kwargs):
    errors = []
    lease = get_setting("LEASE_SECONDS")
    call = float(get_setting("CONNECT_TIMEOUT")) + float(get_setting("READ_TIMEOUT"))
    if lease is not None and float(lease) < call:
        errors.append(Error(OutboxMessages.LEASE_TOO_SHORT.format(lease=float(lease), call=call),
                            hint=OutboxHints.LEASE_TOO_SHORT, id=OutboxCodes.LEASE_TOO_SHORT))
    for alias, db in settings.DATABASES.items():
        if db.get("ENGINE") == "django.db.backends.postgresql" and not db.get("CONN_MAX_AGE"):
            errors.append(Warning(
                OutboxMessages.NEW_CONNECTION_PER_REQUEST.format(alias=alias),
                hint=OutboxHints.NEW_CONNECTION_PER_REQUEST,
                id=OutboxCodes.NEW_CONNECTION_PER_REQUEST))
    persistent = any(db.get("ENGINE") == "django.db.backends.postgresql"
                     and db.get("CONN_MAX_AGE") for db in settings.DATABASES.values())
    if persistent and not _celery_reuses_connections():
        errors.append(Warning(OutboxMessages.NEW_CONNECTION_PER_TASK,
                              hint=OutboxHints.NEW_CONNECTION_PER_TASK,
                              id=OutboxCodes.NEW_CONNECTION_PER_TASK))
    return errors


def _celery_reuses_connections() -> bool:
    """Whether Celery's Django fixup keeps connections between tasks: it reads
    ``DB_REUSE_MAX`` from the app's configuration (``CELERY_DB_REUSE_MAX`` in settings with
    the usual namespace)."""
    if getattr(settings, "CELERY_DB_REUSE_MAX", None):
        return True
    from celery import current_app

    try:
        return bool(current_app.conf.get("db_reuse_max")
                    or current_app.conf.get("CELERY_DB_REUSE_MAX"))
    except Exception:  # an app that cannot load its configuration is reported elsewhere
        return False


CORS_MIDDLEWARE = "corsheaders.middleware.CorsMiddleware"


@register(Tags.database)
def check_embedding(app_configs=None, databases=None, **kwargs):
    """Forms that allow other origins need django-cors-headers to be wired in."""
    if not databases:
        return []
    if "corsheaders" in settings.INSTALLED_APPS and CORS_MIDDLEWARE in settings.MIDDLEWARE:
        return []
    from esp_forms.models import SignupForm

    try:
        forms = list(SignupForm.objects.filter(is_active=True).exclude(allowed_origins=""))
    except DatabaseError:  # not migrated yet
        return []
    return [Warning(Messages.ORIGINS_WITHOUT_CORS.format(form=form.form_type),
                    hint=Hints.ORIGINS_WITHOUT_CORS, obj=form, id=Codes.ORIGINS_WITHOUT_CORS)
            for form in forms if form.origin_values]


@register(Tags.compatibility)
def check_metrics(app_configs=None, **kwargs):
    import ipaddress
    import os

    from esp_forms import metrics

    allowed = get_setting("METRICS_ALLOWED_IPS") or []
    errors = []
    bad = []
    for entry in [allowed] if isinstance(allowed, str) else allowed:
        try:
            ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            bad.append(str(entry))
    if bad:
        errors.append(Error(Messages.BAD_METRICS_ALLOWED_IPS.format(bad=", ".join(bad)),
                            hint=Hints.BAD_METRICS_ALLOWED_IPS,
                            id=Codes.BAD_METRICS_ALLOWED_IPS))
    if not (get_setting("METRICS_TOKEN") or allowed):
        return errors
    if not metrics.AVAILABLE:
        errors.append(Error(Messages.METRICS_WITHOUT_LIBRARY, hint=Hints.METRICS_WITHOUT_LIBRARY,
                            id=Codes.METRICS_WITHOUT_LIBRARY))
    elif not os.environ.get(metrics.MULTIPROC_ENV):
        errors.append(Warning(Messages.METRICS_SINGLE_PROCESS, hint=Hints.METRICS_SINGLE_PROCESS,
                              id=Codes.METRICS_SINGLE_PROCESS))
    return errors


# Cache backends that cannot throttle across processes: counting alone, or not at all.
_PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)
_DUMMY_CACHES = ("django.core.cache.backends.dummy.DummyCache",)


@register(Tags.caches)
def check_throttle_cache(app_configs=None, **kwargs):
    """The submit throttle counts in Django's default cache (DRF's SimpleRateThrottle).

    Under DEBUG (runserver, one process) a local cache is fine; a deployed site runs several
    processes, where a per-process cache lets each allow the full rate.
    """
    from django.core.cache import DEFAULT_CACHE_ALIAS

    if settings.DEBUG or not get_setting("SUBMIT_THROTTLE"):
        return []
    backend = (settings.CACHES.get(DEFAULT_CACHE_ALIAS) or {}).get("BACKEND", "")
    args = {"alias": DEFAULT_CACHE_ALIAS, "backend": backend}
    if backend in _PER_PROCESS_CACHES:
        return [Warning(Messages.LOCAL_THROTTLE_CACHE.format(**args),
                        hint=Hints.LOCAL_THROTTLE_CACHE, id=Codes.LOCAL_THROTTLE_CACHE)]
    if backend in _DUMMY_CACHES:
        return [Warning(Messages.DUMMY_THROTTLE_CACHE.format(**args),
                        hint=Hints.DUMMY_THROTTLE_CACHE, id=Codes.DUMMY_THROTTLE_CACHE)]
    return []


@register(Tags.compatibility)
def check_site_url(app_configs=None, **kwargs):
    """SITE_URL is the base of every link built without a request; a copied example (or a
    stale host) sends visitors and providers somewhere else, and nothing else would say so."""
    from django.http.request import split_domain_port, validate_host

    configured = get_setting("SITE_URL")
    if not configured:
        return []  # derived from ALLOWED_HOSTS, so it agrees by construction
    parts = urlsplit(str(configured))
    domain, _port = split_domain_port(parts.netloc.rpartition("@")[2])
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # what Django itself accepts then
    if parts.scheme in ("http", "https") and domain and validate_host(domain, allowed):
        return []
    return [Warning(Messages.SITE_URL_NOT_SERVED.format(url=configured, host=domain or "?"),
                    hint=Hints.SITE_URL_NOT_SERVED, id=Codes.SITE_URL_NOT_SERVED)]
# --- abuse gate and CAPTCHA (esp_forms.abuse, esp_forms.captcha) ------------------------------

class AbuseCodes:
    CAPTCHA_WITHOUT_KEYS = "esp_forms.E016"
    BAD_PRE_SEND_HOOK = "esp_forms.E017"
    BAD_BUDGET_SETTING = "esp_forms.E018"
    NO_MAILBOX_BUDGET = "esp_forms.W014"


class AbuseMessages:
    CAPTCHA_WITHOUT_KEYS = ("Signup form '{form}' asks for {provider} but ESP_FORMS has no "
                            "{missing}.")
    BAD_PRE_SEND_HOOK = "ESP_FORMS['PRE_SEND_HOOK'] = {path!r} cannot be used: {why}"
    BAD_BUDGET_SETTING = "ESP_FORMS['{name}'] = {value!r} is not {what}."
    NO_MAILBOX_BUDGET = ("ESP_FORMS['MAILBOX_BUDGET'] is None: anyone can have any address "
                         "sent any number of confirmation emails (list bombing).")


class AbuseHints:
    CAPTCHA_WITHOUT_KEYS = ("Add the site and secret keys from the provider's dashboard to "
                            "ESP_FORMS, or switch the form's CAPTCHA off in the admin.")
    BAD_PRE_SEND_HOOK = "Give the dotted path of a callable hook(submission, action)."
    BAD_BUDGET_SETTING = "See the abuse gate and CAPTCHA settings in docs/settings.md."
    NO_MAILBOX_BUDGET = "Set it to a small number, e.g. 1 (the default). See docs/security.md."


@register(Tags.security)
def check_abuse_settings(app_configs=None, **kwargs):
    from django.utils.module_loading import import_string

    errors = []
    path = get_setting("PRE_SEND_HOOK")
    if path:
        why = None
        try:
            hook = import_string(path) if isinstance(path, str) else path
            if not callable(hook):
                why = "it is not callable"
        except ImportError as err:
            why = str(err)
        if why:
            errors.append(Error(AbuseMessages.BAD_PRE_SEND_HOOK.format(path=path, why=why),
                                hint=AbuseHints.BAD_PRE_SEND_HOOK,
                                id=AbuseCodes.BAD_PRE_SEND_HOOK))
    expectations = [
        ("MAILBOX_BUDGET", True, "a whole number of emails (0 or more) or None"),
        ("FORM_HOURLY_BUDGET", True, "a whole number of signups (0 or more) or None"),
        ("MAILBOX_BUDGET_WINDOW", False, "a positive whole number of seconds"),
    ]
    for name, none_ok, what in expectations:
        value = get_setting(name)
        if value is None and none_ok:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if none_ok
                                                                               else 1):
            errors.append(Error(AbuseMessages.BAD_BUDGET_SETTING.format(
                name=name, value=value, what=what),
                hint=AbuseHints.BAD_BUDGET_SETTING, id=AbuseCodes.BAD_BUDGET_SETTING))
    timeout = get_setting("CAPTCHA_TIMEOUT")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        errors.append(Error(AbuseMessages.BAD_BUDGET_SETTING.format(
            name="CAPTCHA_TIMEOUT", value=timeout, what="a positive number of seconds"),
            hint=AbuseHints.BAD_BUDGET_SETTING, id=AbuseCodes.BAD_BUDGET_SETTING))
    if get_setting("MAILBOX_BUDGET") is None:
        errors.append(Warning(AbuseMessages.NO_MAILBOX_BUDGET, hint=AbuseHints.NO_MAILBOX_BUDGET,
                              id=AbuseCodes.NO_MAILBOX_BUDGET))
    return errors


@register(Tags.database)
def check_captcha_keys(app_configs=None, databases=None, **kwargs):
    if not databases:
        return []
    from esp_forms.captcha import VERIFIERS
    from esp_forms.models import SignupForm

    try:
        forms = list(SignupForm.objects.filter(is_active=True).exclude(captcha=""))
    except DatabaseError:  # not migrated yet
        return []
    errors = []
    for form in forms:
        verifier = VERIFIERS.get(form.captcha)
        if verifier is None:
            continue
        missing = [f"{verifier.settings_prefix}_{suffix}" for suffix in ("SITE_KEY", "SECRET_KEY")
                   if not verifier.setting(suffix)]
        if missing:
            errors.append(Error(AbuseMessages.CAPTCHA_WITHOUT_KEYS.format(
                form=form.form_type, provider=verifier.label, missing=" and ".join(missing)),
                hint=AbuseHints.CAPTCHA_WITHOUT_KEYS, obj=form,
                id=AbuseCodes.CAPTCHA_WITHOUT_KEYS))
    return errors
