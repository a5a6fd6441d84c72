"""Every ``ESP_FORMS`` setting and its default, read through :func:`get_setting`.

Values are read from ``settings.ESP_FORMS`` on every call, so ``override_settings`` works in tests
and nothing is cached at import time. The documented reference is ``docs/settings.md``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # --- provider HTTP -------------------------------------------------------------------
    # (connect, read) seconds for every provider call. Short connect, longer read, as the
    # providers' own plugins use; a worker never waits on the network without a limit.
    "CONNECT_TIMEOUT": 5.0,
    "READ_TIMEOUT": 15.0,
    # --- delivery and retries ------------------------------------------------------------
    # Seconds to wait before each retry of a transient failure; jitter is added on top.
    # When the schedule is exhausted the submission is marked failed.
    "RETRY_SCHEDULE": [30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600],
    # Random extra delay, as a fraction of the step, so retries after an outage spread out.
    "RETRY_JITTER": 0.2,
    # Waits up to this long are handed to Celery as a countdown; longer ones stay in
    # ``next_attempt_at`` for the sweeper (Redis redelivers unacked tasks after its
    # visibility timeout, which must stay longer than any countdown).
    "MAX_COUNTDOWN": 600,
    # The sweeper only touches pending rows that have been due for this long, so it does
    # not race the task that ``on_commit`` just queued.
    "SWEEP_GRACE_SECONDS": 60,
    "SWEEP_BATCH_SIZE": 200,
    # How long an outbox claim (delivery, status read, purge) owns a row before another
    # worker may take it over. None: three provider calls' timeouts plus 10 s.
    "LEASE_SECONDS": None,
    # Seconds a process keeps a form's configuration (fields included) before reading it
    # again; saving a form or field in this process clears it at once.
    "FORM_CACHE_SECONDS": 60,
    # A repeat signup of the same email on the same form within this window is collapsed
    # into the existing submission.
    "DUPLICATE_WINDOW": 24 * 3600,
    # --- rate limiting -------------------------------------------------------------------
    # Redis URL of the limiter shared by every worker. None: use CELERY_BROKER_URL when it is
    # a redis:// URL, else a per-process limiter (fine for one worker; system check W003).
    "RATE_LIMIT_REDIS_URL": None,
    # Extra seconds added to every provider window, so clock skew and network jitter between
    # us and the provider never push a window over the limit on their side.
    "RATE_LIMIT_SAFETY_SECONDS": 1.0,
    # --- double opt-in -------------------------------------------------------------------
    # Unconfirmed submissions become expired after this many seconds.
    "UNCONFIRMED_EXPIRY": 30 * 24 * 3600,
    # Polling: the first check this long after delivery, then the gap grows with age up to
    # the maximum.
    "POLL_INITIAL_DELAY": 5 * 60,
    "POLL_MAX_INTERVAL": 24 * 3600,
    "POLL_BATCH_SIZE": 100,
    # Reconciliation (esp_forms_reconcile and its beat task): how many tracked submissions
    # one run reads at most, least recently checked first; the account's rate limit applies.
    "RECONCILE_BATCH_SIZE": 200,
    # How long an eSputnik unsubscribe webhook waits for a submission a worker has locked
    # before answering 503 (eSputnik then sends it again). UniSender wants an answer in 3 s.
    "WEBHOOK_LOCK_TIMEOUT": 2.0,
    # Local double opt-in: how long a confirmation link is valid, and the least time between
    # two confirmation emails to the same submission.
    "CONFIRMATION_MAX_AGE": 7 * 24 * 3600,
    "RESEND_COOLDOWN": 15 * 60,
    "FROM_EMAIL": None,  # None: DEFAULT_FROM_EMAIL
    # Absolute base URL for links in emails sent by workers (no request there), e.g.
    # "https://example.com". None: the first ALLOWED_HOSTS entry over https.
    "SITE_URL": None,
    # --- anti-spam -----------------------------------------------------------------------
    "MIN_FILL_SECONDS": 2,
    "MAX_FORM_AGE": 3 * 24 * 3600,
    "HONEYPOT_FIELD": "website",
    # --- abuse gate (esp_forms.abuse; docs/security.md) -----------------------------------
    # Confirmation emails plus provider invitations one mailbox may be sent per window,
    # across all forms of one provider account. The mailbox is normalised first (case,
    # +tag, dots of Gmail addresses), so victim+1@ and v.i.c.t.i.m@ share one budget.
    # Signups over it are held for review. None: no limit.
    "MAILBOX_BUDGET": 1,
    "MAILBOX_BUDGET_WINDOW": 24 * 3600,
    # Signups per form per hour handed on to a confirmation email or the provider (a form's
    # own "hourly budget" overrides it); more are held and the admins get one alert per form
    # per hour. None or 0: no limit.
    "FORM_HOURLY_BUDGET": 100,
    # Dotted path of a callable ``hook(submission, action) -> bool | str | None`` asked before
    # anything is sent; False or a string (the reason) holds the signup. See also the
    # ``pre_send`` signal.
    "PRE_SEND_HOOK": None,
    # --- CAPTCHA (switched on per form) --------------------------------------------------
    "TURNSTILE_SITE_KEY": None,
    "TURNSTILE_SECRET_KEY": None,
    "TURNSTILE_VERIFY_URL": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "TURNSTILE_SCRIPT_URL": "https://challenges.cloudflare.com/turnstile/v0/api.js",
    "HCAPTCHA_SITE_KEY": None,
    "HCAPTCHA_SECRET_KEY": None,
    "HCAPTCHA_VERIFY_URL": "https://api.hcaptcha.com/siteverify",
    "HCAPTCHA_SCRIPT_URL": "https://js.hcaptcha.com/1/api.js",
    # Seconds to wait for the verifier; and whether a signup is accepted when the verifier
    # cannot be reached (False: the visitor is asked to try again; nothing is stored).
    "CAPTCHA_TIMEOUT": 5.0,
    "CAPTCHA_FAIL_OPEN": False,
    # --- input ---------------------------------------------------------------------------
    "PHONE_DEFAULT_REGION": None,  # e.g. "UA"; None: numbers must start with +
    "MAX_FIELD_LENGTH": 255,
    "MAX_TEXT_LENGTH": 2000,
    # --- throttling of the public endpoints (requests per IP) ----------------------------
    "SUBMIT_THROTTLE": "20/min",
    # --- client IP -----------------------------------------------------------------------
    # How many reverse proxies in front of Django append to X-Forwarded-For. 0: use
    # REMOTE_ADDR and never trust the header.
    "TRUSTED_PROXY_COUNT": 0,
    # --- retention and alerts ------------------------------------------------------------
    # Personal data of submissions older than this many days is erased by esp_forms_purge.
    # None keeps it forever.
    "RETENTION_DAYS": 365,
    # Who gets the email when an account's configuration breaks; None: settings.ADMINS.
    "ALERT_EMAILS": None,
    "ALERT_INTERVAL": 3600,
    # Celery queue for the app's tasks; None: the default queue.
    "CELERY_QUEUE": None,
    # --- metrics (GET /esp-forms/metrics/, Prometheus text) ------------------------------
    # Off while both are empty. A scrape needs "Authorization: Bearer <METRICS_TOKEN>" or a
    # client IP inside one of METRICS_ALLOWED_IPS (addresses or networks, e.g. "10.0.0.0/8").
    "METRICS_TOKEN": None,
    "METRICS_ALLOWED_IPS": [],
}


def get_setting(name: str) -> Any:
    """Return ``settings.ESP_FORMS[name]`` or its documented default."""
    if name not in DEFAULTS:
        raise ImproperlyConfigured(
            f"esp_forms has no setting {name!r}; known settings: {', '.join(sorted(DEFAULTS))}."
        )
    user = getattr(settings, "ESP_FORMS", None) or {}
    return user.get(name, DEFAULTS[name])


def unknown_settings() -> list[str]:
    """Keys in ``settings.ESP_FORMS`` that esp_forms does not know (typos), for a system check."""
    user = getattr(settings, "ESP_FORMS", None) or {}
    return sorted(set(user) - set(DEFAULTS))


def site_url() -> str:
    """Absolute base URL (no trailing slash) for links built without a request: emails sent
    by workers, the admin's webhook URLs. ``SITE_URL``, else https:// + the first usable
    ``ALLOWED_HOSTS`` entry."""
    configured = get_setting("SITE_URL")
    if configured:
        return str(configured).rstrip("/")
    for host in getattr(settings, "ALLOWED_HOSTS", []):
        host = host.lstrip(".")
        if host and host != "*":
            return f"https://{host}"
    return "http://localhost"
