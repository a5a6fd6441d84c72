"""The offline sandbox provider and its confirmation page."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings
from django.urls import reverse

from esp_forms.exceptions import TransientProviderError
from esp_forms.models import (
    DoubleOptIn,
    FieldKind,
    OptinStatus,
    ProviderAccount,
    SandboxContact,
)
from esp_forms.providers import get_provider
from esp_forms.providers.sandbox import SandboxProvider, site_url
from tests.conftest import make_form
from tests.provider_contract import ProviderContract, confirm_locally, make_submission

pytestmark = pytest.mark.django_db

SITE = "https://news.example.com"


class DatabaseRemote:
    """The sandbox's 'provider side' is its own table."""

    def __init__(self, account: ProviderAccount) -> None:
        self.account = account

    def _set(self, email: str, status: str) -> None:
        updated = SandboxContact.objects.filter(account=self.account,
                                                email__iexact=email).update(status=status)
        assert updated == 1

    def confirm(self, email: str) -> None:
        self._set(email, SandboxContact.Status.ACTIVE)

    def unsubscribe(self, email: str) -> None:
        self._set(email, SandboxContact.Status.UNSUBSCRIBED)


class TestSandboxContract(ProviderContract):
    provider_name = "sandbox"
    has_api_key = False

    @pytest.fixture
    def account(self, sandbox_account: ProviderAccount) -> ProviderAccount:
        return sandbox_account

    @pytest.fixture
    def bad_key_account(self, account: ProviderAccount) -> ProviderAccount:
        return account

    @pytest.fixture
    def remote(self, account: ProviderAccount) -> DatabaseRemote:
        return DatabaseRemote(account)

    @pytest.fixture
    def form_kwargs(self) -> dict[str, Any]:
        return {"lists": "news, offers"}


@pytest.fixture
def refresh_calls(monkeypatch) -> list[tuple[ProviderAccount, str]]:
    """Record ``esp_forms.optin.request_refresh`` calls.

    ``esp_forms.optin`` is written by another engineer; until it exists a stand-in module is
    installed for the duration of the test, so the view's contract is still exercised.
    """
    calls: list[tuple[ProviderAccount, str]] = []

    def record(account: ProviderAccount, email: str) -> None:
        calls.append((account, email))

    try:
        module = importlib.import_module("esp_forms.optin")
    except ModuleNotFoundError:
        module = types.ModuleType("esp_forms.optin")
        monkeypatch.setitem(sys.modules, "esp_forms.optin", module)
    monkeypatch.setattr(module, "request_refresh", record, raising=False)
    return calls


@pytest.fixture(autouse=True)
def site(settings) -> None:
    settings.ESP_FORMS = {**getattr(settings, "ESP_FORMS", {}), "SITE_URL": SITE + "/"}


# ---- subscribe ------------------------------------------------------------------------------

def test_provider_mode_invites_and_sends_the_confirmation_email(newsletter) -> None:
    submission = make_submission(newsletter, "Olena@Example.com", phone="+380501234567",
                                 data={"first_name": "Олена"})
    result = get_provider(newsletter.account).subscribe(submission)

    contact = SandboxContact.objects.get()
    assert result.contact_id == str(contact.pk)
    assert result.is_new is True
    assert result.optin_status == OptinStatus.UNCONFIRMED
    assert contact.status == SandboxContact.Status.INVITED
    assert contact.phone == "+380501234567"
    assert contact.fields == {"first_name": "Олена"}

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    link = SITE + reverse("esp_forms:sandbox_confirm", args=[contact.token])
    assert message.to == ["Olena@Example.com"]
    assert newsletter.title in message.subject and "\n" not in message.subject
    assert link in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'href="{link}"' in html
    assert result.raw["response"]["invited"] is True


def test_off_mode_adds_a_new_contact_without_email(sandbox_account) -> None:
    form = make_form(sandbox_account, "quiet", double_opt_in=DoubleOptIn.OFF, lists="news")
    result = get_provider(sandbox_account).subscribe(make_submission(form))
    contact = SandboxContact.objects.get()
    assert contact.status == SandboxContact.Status.NEW
    assert contact.lists == ["news"]
    assert result.optin_status == OptinStatus.NOT_REQUIRED
    assert mail.outbox == []


def test_confirmed_subscribe_activates_without_email(sandbox_account) -> None:
    form = make_form(sandbox_account, "local", double_opt_in=DoubleOptIn.LOCAL)
    submission = confirm_locally(make_submission(form))
    result = get_provider(sandbox_account).subscribe(submission, confirmed=True)
    assert SandboxContact.objects.get().status == SandboxContact.Status.ACTIVE
    assert result.optin_status == OptinStatus.CONFIRMED
    assert mail.outbox == []


def test_an_active_contact_is_not_invited_again(newsletter) -> None:
    provider = get_provider(newsletter.account)
    provider.subscribe(make_submission(newsletter))
    SandboxContact.objects.update(status=SandboxContact.Status.ACTIVE)
    mail.outbox.clear()

    result = provider.subscribe(make_submission(newsletter, "OLENA@example.com"))
    assert result.optin_status == OptinStatus.CONFIRMED
    assert result.is_new is False
    assert mail.outbox == []
    assert SandboxContact.objects.get().status == SandboxContact.Status.ACTIVE


def test_lists_and_fields_accumulate(sandbox_account) -> None:
    form_a = make_form(sandbox_account, "a", lists="news", fields=[
        {"name": "city", "kind": FieldKind.TEXT}])
    form_b = make_form(sandbox_account, "b", lists="offers, news")
    provider = get_provider(sandbox_account)
    provider.subscribe(make_submission(form_a, data={"city": "Kyiv"}))
    provider.subscribe(make_submission(form_b, data={"city": "ignored: not a field of b"}))
    contact = SandboxContact.objects.get()
    assert contact.lists == ["news", "offers"]
    assert contact.fields == {"city": "Kyiv"}


class ExplodingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("SMTP server down")


@override_settings(EMAIL_BACKEND=f"{__name__}.ExplodingBackend")
def test_a_mail_failure_is_transient(newsletter) -> None:
    with pytest.raises(TransientProviderError) as caught:
        get_provider(newsletter.account).subscribe(make_submission(newsletter))
    assert caught.value.provider == "sandbox"
    # The contact is kept; the retry sends the invitation again.
    assert SandboxContact.objects.get().status == SandboxContact.Status.INVITED


def test_site_url_falls_back_to_allowed_hosts(settings) -> None:
    settings.ESP_FORMS = {}
    settings.ALLOWED_HOSTS = ["*", ".example.org"]
    assert site_url() == "https://example.org"


def test_check_account_counts_contacts(newsletter) -> None:
    get_provider(newsletter.account).subscribe(make_submission(newsletter))
    check = SandboxProvider(newsletter.account).check_account([newsletter])
    assert check.ok and check.info["contacts"] == 1


# ---- the confirmation page ------------------------------------------------------------------

@pytest.fixture
def invited(newsletter) -> SandboxContact:
    get_provider(newsletter.account).subscribe(make_submission(newsletter))
    return SandboxContact.objects.get()


def confirm_path(contact: SandboxContact) -> str:
    return reverse("esp_forms:sandbox_confirm", args=[contact.token])


def test_get_shows_a_button_nothing_submits_and_confirms_nobody(client, invited,
                                                               refresh_calls) -> None:
    response = client.get(confirm_path(invited))
    assert response.status_code == 200
    body = response.content.decode()
    assert '<form method="post"' in body and "<button" in body
    # Mail scanners run scripts: nothing on the page may submit the form by itself.
    assert "<script" not in body and "submit()" not in body
    assert response["Cache-Control"].startswith("max-age=0")
    assert client.head(confirm_path(invited)).status_code == 200
    invited.refresh_from_db()
    assert invited.status == SandboxContact.Status.INVITED
    assert refresh_calls == []


def test_post_confirms_and_requests_a_refresh(client, invited, refresh_calls) -> None:
    response = client.post(confirm_path(invited))
    assert response.status_code == 200
    assert "Subscription confirmed" in response.content.decode()
    invited.refresh_from_db()
    assert invited.status == SandboxContact.Status.ACTIVE
    assert refresh_calls == [(invited.account, invited.email)]
    # A second POST (double click, reload) is harmless and repeats the refresh request.
    assert client.post(confirm_path(invited)).status_code == 200
    assert len(refresh_calls) == 2


def test_post_works_without_a_csrf_cookie(invited, refresh_calls) -> None:
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post(confirm_path(invited))
    assert response.status_code == 200


def test_get_after_confirmation_says_so(client, invited, refresh_calls) -> None:
    client.post(confirm_path(invited))
    response = client.get(confirm_path(invited))
    assert "Subscription confirmed" in response.content.decode()
    assert "<script>" not in response.content.decode()


def test_unknown_token_is_a_404_page(client, refresh_calls) -> None:
    for method in (client.get, client.post):
        response = method(reverse("esp_forms:sandbox_confirm", args=["nope"]))
        assert response.status_code == 404
        assert "not valid" in response.content.decode()
    assert refresh_calls == []


def test_other_methods_are_refused(client, invited) -> None:
    assert client.put(confirm_path(invited)).status_code == 405


def test_the_real_refresh_hook_accepts_the_call(client, invited) -> None:
    """Runs against the lead's ``esp_forms.optin`` once it exists."""
    optin = pytest.importorskip("esp_forms.optin")
    assert callable(getattr(optin, "request_refresh", None))
    assert client.post(confirm_path(invited)).status_code == 200
