"""The contract every provider is held to, run by each provider's test module.

A provider's tests subclass :class:`ProviderContract` in a ``Test...`` class and override the
fixtures ``account`` (a working account), ``bad_key_account`` and ``remote`` (a handle that can
confirm or unsubscribe a contact on the provider's side: the emulator for the real providers,
the database for the sandbox), plus ``form_kwargs`` for lists that exist there. Every call goes
through the provider's public API; for the HTTP providers it travels over real HTTP to the
emulator. The base class is not collected itself (its name does not start with ``Test``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest
from django.utils import timezone

from esp_forms.exceptions import ProviderConfigurationError
from esp_forms.models import (
    DoubleOptIn,
    FieldKind,
    OptinStatus,
    ProviderAccount,
    SignupForm,
    Submission,
)
from esp_forms.providers import PROVIDERS, get_provider, get_provider_class
from esp_forms.providers.base import AccountCheck, BaseProvider, ContactStatus, SubscribeResult
from tests.conftest import make_form

FILES = Path(__file__).parent / "files"
# A public address (example.com's), so providers that only accept public IPs send it.
PUBLIC_IP = "93.184.216.34"


def load_payload(name: str, key: str | None = None) -> Any:
    """A payload from tests/files without its ``_source`` note (``key`` unwraps arrays)."""
    data = json.loads((FILES / name).read_text(encoding="utf-8"))
    if key is not None:
        return data[key]
    if isinstance(data, dict):
        data.pop("_source", None)
    return data


def make_submission(form: SignupForm, email: str = "olena@example.com", *, phone: str = "",
                    data: dict[str, Any] | None = None, ip: str | None = PUBLIC_IP,
                    **kwargs: Any) -> Submission:
    kwargs.setdefault("consent_text", form.consent_text)
    return Submission.objects.create(form=form, email=email, phone=phone, data=data or {},
                                     ip=ip, **kwargs)


def confirm_locally(submission: Submission, ip: str = PUBLIC_IP) -> Submission:
    """What the local double opt-in link does before delivery."""
    submission.confirmed_at = timezone.now()
    submission.confirm_ip = ip
    submission.save(update_fields=["confirmed_at", "confirm_ip"])
    return submission


def assert_no_secret(secret: str, *values: Any) -> None:
    """The API key appears in none of ``values`` (results, events, error texts)."""
    for value in values:
        text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                               ensure_ascii=False)
        assert secret not in text, f"API key leaked into {text[:200]!r}"


class Remote(Protocol):
    """The provider's side of the world, as far as the contract needs it."""

    def confirm(self, email: str) -> None: ...

    def unsubscribe(self, email: str) -> None: ...


class ProviderContract:
    provider_name: ClassVar[str] = ""
    # eSputnik's API shows no unsubscribe on the contact (it arrives by webhook only).
    polls_unsubscribes: ClassVar[bool] = True
    # The sandbox has no key to get wrong.
    has_api_key: ClassVar[bool] = True

    # ---- fixtures a provider's test class overrides ----------------------------------------
    @pytest.fixture
    def account(self) -> ProviderAccount:
        raise NotImplementedError("the provider's test class provides a working account")

    @pytest.fixture
    def bad_key_account(self, account: ProviderAccount) -> ProviderAccount:
        raise NotImplementedError("the provider's test class provides an account with a bad key")

    @pytest.fixture
    def remote(self, account: ProviderAccount) -> Remote:
        raise NotImplementedError("the provider's test class provides the remote side")

    @pytest.fixture
    def form_kwargs(self) -> dict[str, Any]:
        """Form options valid for this provider (lists that exist on the remote side)."""
        return {}

    # ---- helpers ----------------------------------------------------------------------------
    def form(self, account: ProviderAccount, form_kwargs: dict[str, Any],
             mode: str = DoubleOptIn.PROVIDER, form_type: str = "newsletter") -> SignupForm:
        return make_form(account, form_type, double_opt_in=mode,
                         fields=[{"name": "first_name", "kind": FieldKind.FIRST_NAME},
                                 {"name": "phone", "kind": FieldKind.PHONE}],
                         **form_kwargs)

    # ---- the contract ----------------------------------------------------------------------
    def test_registered_under_its_name(self, account: ProviderAccount) -> None:
        provider = get_provider(account)
        assert self.provider_name in PROVIDERS
        assert type(provider) is get_provider_class(self.provider_name)
        assert isinstance(provider, BaseProvider)
        assert provider.name == self.provider_name
        assert provider.verbose_name

    def test_rate_limit_default_and_account_override(self, account: ProviderAccount) -> None:
        limit, window = get_provider(account).rate_limit
        assert limit > 0 and window > 0
        account.rate_limit_per_minute = 7
        assert get_provider(account).rate_limit == (7, 60.0)

    def test_provider_mode_subscribe_is_unconfirmed(self, account, form_kwargs) -> None:
        form = self.form(account, form_kwargs)
        submission = make_submission(form, data={"first_name": "Olena"})
        result = get_provider(account).subscribe(submission)
        assert isinstance(result, SubscribeResult)
        assert result.contact_id
        assert result.optin_status == OptinStatus.UNCONFIRMED
        assert result.raw["request"] and result.raw["response"]

    def test_off_mode_subscribe_needs_no_confirmation(self, account, form_kwargs) -> None:
        form = self.form(account, form_kwargs, mode=DoubleOptIn.OFF)
        result = get_provider(account).subscribe(make_submission(form))
        assert result.contact_id
        assert result.optin_status == OptinStatus.NOT_REQUIRED

    def test_confirmed_subscribe_is_confirmed_and_reads_back(self, account, form_kwargs
                                                             ) -> None:
        form = self.form(account, form_kwargs, mode=DoubleOptIn.LOCAL)
        submission = confirm_locally(make_submission(form))
        provider = get_provider(account)
        result = provider.subscribe(submission, confirmed=True)
        assert result.optin_status == OptinStatus.CONFIRMED
        submission.provider_contact_id = result.contact_id
        status = provider.get_contact_status(submission)
        assert isinstance(status, ContactStatus)
        assert status.optin_status == OptinStatus.CONFIRMED

    def test_status_follows_the_remote_confirmation(self, account, form_kwargs, remote) -> None:
        form = self.form(account, form_kwargs)
        submission = make_submission(form)
        provider = get_provider(account)
        submission.provider_contact_id = provider.subscribe(submission).contact_id
        assert provider.get_contact_status(submission).optin_status == OptinStatus.UNCONFIRMED
        remote.confirm(submission.email)
        assert provider.get_contact_status(submission).optin_status == OptinStatus.CONFIRMED

    def test_status_shows_an_unsubscribe(self, account, form_kwargs, remote) -> None:
        if not self.polls_unsubscribes:
            pytest.skip(f"{self.provider_name} reports unsubscribes by webhook only")
        form = self.form(account, form_kwargs)
        submission = make_submission(form)
        provider = get_provider(account)
        submission.provider_contact_id = provider.subscribe(submission).contact_id
        remote.confirm(submission.email)
        remote.unsubscribe(submission.email)
        assert provider.get_contact_status(submission).optin_status == OptinStatus.UNSUBSCRIBED

    def test_unknown_contact_is_unconfirmed(self, account, form_kwargs) -> None:
        form = self.form(account, form_kwargs)
        submission = make_submission(form, "nobody@example.com")
        status = get_provider(account).get_contact_status(submission)
        assert status.optin_status == OptinStatus.UNCONFIRMED

    def test_repeat_subscribe_keeps_the_contact(self, account, form_kwargs) -> None:
        form = self.form(account, form_kwargs)
        provider = get_provider(account)
        first = provider.subscribe(make_submission(form))
        again = provider.subscribe(make_submission(form))
        assert first.contact_id == again.contact_id

    def test_check_account_passes(self, account, form_kwargs) -> None:
        form = self.form(account, form_kwargs)
        check = get_provider(account).check_account([form])
        assert isinstance(check, AccountCheck)
        assert check.ok, check.problems
        assert check.problems == []

    def test_bad_key_fails_the_check(self, bad_key_account, form_kwargs) -> None:
        if not self.has_api_key:
            pytest.skip("no API key")
        form = self.form(bad_key_account, form_kwargs)
        check = get_provider(bad_key_account).check_account([form])
        assert not check.ok
        assert any("key" in problem.lower() for problem in check.problems)
        assert_no_secret(bad_key_account.api_key, check.problems, check.info)

    def test_bad_key_subscribe_is_a_configuration_error(self, bad_key_account, form_kwargs
                                                        ) -> None:
        if not self.has_api_key:
            pytest.skip("no API key")
        form = self.form(bad_key_account, form_kwargs)
        with pytest.raises(ProviderConfigurationError) as caught:
            get_provider(bad_key_account).subscribe(make_submission(form))
        assert caught.value.provider == self.provider_name
        assert caught.value.account_id == bad_key_account.pk
        assert_no_secret(bad_key_account.api_key, str(caught.value), caught.value.response)

    def test_the_api_key_never_leaves_in_results(self, account, form_kwargs, remote) -> None:
        form = self.form(account, form_kwargs)
        submission = make_submission(form)
        provider = get_provider(account)
        result = provider.subscribe(submission)
        status = provider.get_contact_status(submission)
        check = provider.check_account([form])
        if account.api_key:
            assert_no_secret(account.api_key, result.raw, result.warnings, status.raw,
                             check.info, check.problems, check.warnings)


class EmulatorRemote:
    """The provider side for the HTTP providers: the emulator's control API."""

    def __init__(self, emulator: Any, provider: str, api_key: str, *,
                 group: str = "Confirmed") -> None:
        self.emulator = emulator
        self.provider = provider
        self.api_key = api_key
        self.group = group

    def confirm(self, email: str) -> None:
        if self.provider == "esputnik":
            self.emulator.confirm(self.provider, self.api_key, email, group=self.group)
        else:
            self.emulator.confirm(self.provider, self.api_key, email)

    def unsubscribe(self, email: str) -> None:
        self.emulator.unsubscribe(self.provider, self.api_key, email)


def basic_auth_password(header: str) -> str:
    """The password of an HTTP Basic ``Authorization`` header."""
    import base64

    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic", header
    user, sep, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    assert sep and user, "Basic auth needs a user name (any) and the key as the password"
    return password


def fault_body(value: Any) -> str | None:
    """The emulator's faults take the body as text: JSON for anything but a string."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
