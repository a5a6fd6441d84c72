"""Shared fixtures: provider accounts and signup forms."""

from __future__ import annotations

import pytest

from esp_forms.models import DoubleOptIn, FieldKind, FormField, ProviderAccount, SignupForm


def make_form(account: ProviderAccount, form_type: str = "newsletter", *,
              fields: list[dict] | None = None, **kwargs) -> SignupForm:
    """A form with an email field (and the given extra fields)."""
    kwargs.setdefault("title", form_type.replace("-", " ").title())
    form = SignupForm.objects.create(account=account, form_type=form_type, **kwargs)
    FormField.objects.create(form=form, name="email", label="Email", kind=FieldKind.EMAIL,
                             required=True, order=0)
    for order, spec in enumerate(fields or [], start=1):
        spec = {"order": order, "label": spec["name"].replace("_", " ").title(), **spec}
        FormField.objects.create(form=form, **spec)
    return form


@pytest.fixture
def sandbox_account(db) -> ProviderAccount:
    return ProviderAccount.objects.create(name="Sandbox", provider="sandbox")


@pytest.fixture
def newsletter(sandbox_account) -> SignupForm:
    """The sandbox 'newsletter' form: email, first name, optional phone, provider opt-in."""
    return make_form(
        sandbox_account, "newsletter", double_opt_in=DoubleOptIn.PROVIDER,
        fields=[{"name": "first_name", "kind": FieldKind.FIRST_NAME},
                {"name": "phone", "kind": FieldKind.PHONE}],
    )


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Submission throttles count in Django's cache; no test inherits another's counters."""
    from django.core.cache import cache

    from esp_forms import formcache

    cache.clear()
    formcache.clear()  # a rolled-back test's forms fire no signal
    yield
    cache.clear()
    formcache.clear()


def token(form_type: str = "newsletter") -> str:
    """A form token issued 10 s ago: old enough for MIN_FILL_SECONDS, young enough to pass."""
    import time

    from esp_forms import spam

    return spam.issue_token(form_type, issued_at=time.time() - 10)


@pytest.fixture(autouse=True)
def _fresh_rate_limiter():
    """The per-process limiter is module state; every test starts with empty windows."""
    from esp_forms import abuse, ratelimit

    ratelimit._limiter_for.cache_clear()
    abuse._unshared.clear()  # the form budget's not-yet-shared counts
    yield
    ratelimit._limiter_for.cache_clear()
    abuse._unshared.clear()


ESPUTNIK_KEY = "es-test-key-0123456789"
UNISENDER_KEY = "uni-test-key-0123456789"


@pytest.fixture
def esputnik_form(db, emulator) -> SignupForm:
    emulator.add_esputnik_account(ESPUTNIK_KEY, groups=["Newsletter"])
    account = ProviderAccount.objects.create(name="eSputnik", provider="esputnik",
                                             api_key=ESPUTNIK_KEY, api_base_url=emulator.url)
    return make_form(account, "es-news", lists="Newsletter", double_opt_in=DoubleOptIn.PROVIDER,
                     fields=[{"name": "first_name", "kind": FieldKind.FIRST_NAME}])


@pytest.fixture
def unisender_form(db, emulator) -> SignupForm:
    emulator.add_unisender_account(UNISENDER_KEY, lists=[
        {"id": 555777, "title": "News", "confirmation_letter": True}])
    account = ProviderAccount.objects.create(name="UniSender", provider="unisender",
                                             api_key=UNISENDER_KEY, api_base_url=emulator.url)
    return make_form(account, "uni-news", lists="555777", double_opt_in=DoubleOptIn.PROVIDER,
                     fields=[{"name": "first_name", "kind": FieldKind.FIRST_NAME}])


def make_submission(form: SignupForm, email: str = "olena@example.com", **kwargs):
    from django.utils import timezone

    from esp_forms.models import OptinStatus, Submission

    kwargs.setdefault("optin_status", OptinStatus.NOT_REQUIRED
                      if form.double_opt_in == DoubleOptIn.OFF else OptinStatus.UNCONFIRMED)
    kwargs.setdefault("next_attempt_at", timezone.now())
    kwargs.setdefault("data", {"first_name": "Olena"})
    return Submission.objects.create(form=form, email=email, ip="203.0.113.7", **kwargs)


@pytest.fixture
def captcha_standin():
    """A local stand-in for the Turnstile and hCaptcha verifiers (tests/captcha_standin.py):
    a real HTTP server on 127.0.0.1; ``.settings()`` points ESP_FORMS at it."""
    from tests.captcha_standin import start

    state, server = start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _default_language():
    """LocaleMiddleware activates the visitor's language in the thread that serves the request
    and leaves it there: with the test client that is the test's own thread, so a Russian
    request would make every later test's messages Russian. Each test starts in English."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def queued(monkeypatch):
    """Tasks handed to the broker after commit, as (task name, submission id); a test module
    may define its own (e.g. the opt-in module's queue)."""
    from esp_forms import outbox

    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(outbox, "send_task",
                        lambda task, pk, countdown=None: sent.append((task.name, str(pk))))
    return sent


def run_queued(queued) -> None:
    """Run what was queued, as a worker would (the confirmation email, the delivery)."""
    from esp_forms import delivery, optin

    while queued:
        name, pk = queued.pop(0)
        if name == "esp_forms.send_confirmation":
            optin.send_confirmation(pk)
        else:
            delivery.deliver(pk)
