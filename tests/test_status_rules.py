"""What a provider's answer means for a submission's opt-in status (DESIGN.md section 2), and
the configuration rules that make it learnable: eSputnik's confirmed segment, UniSender's
languages."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from esp_forms import delivery, optin
from esp_forms.models import DoubleOptIn, OptinStatus, ProviderAccount, SignupForm, Submission
from esp_forms.providers.unisender import optin_from_contact
from tests.conftest import ESPUTNIK_KEY, UNISENDER_KEY, make_form, make_submission

pytestmark = pytest.mark.django_db(transaction=True)


def delivered(form, email="olena@example.com") -> Submission:
    submission = make_submission(form, email)
    assert delivery.deliver(submission.pk).status == "delivered"
    submission.refresh_from_db()
    return submission


# --- UniSender --------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "lists", "was_confirmed", "expected"), [
    ("active", {"555777": ""}, False, OptinStatus.CONFIRMED),
    ("new", {"555777": ""}, False, OptinStatus.CONFIRMED),  # double_optin=4, no letter
    ("invited", {}, False, OptinStatus.UNCONFIRMED),
    ("invited", {"555777": ""}, False, OptinStatus.UNCONFIRMED),
    ("new", {}, False, OptinStatus.UNCONFIRMED),  # known, but not in this form's list
    ("unsubscribed", {"555777": ""}, True, OptinStatus.UNSUBSCRIBED),
    ("blocked", {"555777": ""}, False, OptinStatus.UNSUBSCRIBED),
    ("active", {"555777": "unsubscribed"}, True, OptinStatus.UNSUBSCRIBED),
    ("active", {"999": ""}, True, OptinStatus.UNSUBSCRIBED),  # removed from the form's list
    ("active", {"999": ""}, False, OptinStatus.UNCONFIRMED),
    ("invited", {}, True, OptinStatus.UNCONFIRMED),  # never downgrades by itself
])
def test_unisender_rules(status, lists, was_confirmed, expected):
    assert optin_from_contact(status, lists, ["555777"], was_confirmed=was_confirmed) == expected


def test_a_known_new_contact_is_subscribed_after_a_provider_mode_signup(unisender_form,
                                                                        emulator):
    """double_optin=4: a contact UniSender already has as "new" is just added to the list, no
    invitation is sent; waiting for "active" would expire someone who receives the mail."""
    import requests

    requests.post(f"{emulator.url}/en/api/subscribe", params={"format": "json"}, data={
        "api_key": UNISENDER_KEY, "list_ids": "555777", "fields[email]": "olena@example.com",
        "double_optin": "3"}, timeout=5).raise_for_status()  # e.g. an import: status "new"
    submission = delivered(unisender_form)
    contact = emulator.contact("unisender", UNISENDER_KEY, "olena@example.com")
    assert contact["status"] == "new" and contact["letters"] == []  # no invitation
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED


def test_invited_waits_and_list_removal_unsubscribes(unisender_form, emulator):
    submission = delivered(unisender_form)
    assert emulator.contact("unisender", UNISENDER_KEY, "olena@example.com")["status"] == \
        "invited"
    assert optin.refresh(submission.pk) == "unchanged"
    emulator.confirm("unisender", UNISENDER_KEY, "olena@example.com")
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    # Removed from the form's list only; the address stays "active" for its other lists.
    emulator.unsubscribe("unisender", UNISENDER_KEY, "olena@example.com", list_id=555777)
    assert optin.refresh(submission.pk) == OptinStatus.UNSUBSCRIBED


def test_unisender_language_is_validated(db):
    account = ProviderAccount(name="U", provider="unisender", api_key="k", api_language="uk")
    with pytest.raises(ValidationError) as caught:
        account.full_clean()
    assert "api_language" in caught.value.message_dict
    for lang in ("en", "ru", "ua"):
        account.api_language = lang
        account.full_clean()


def test_system_check_for_a_bad_language(db):
    ProviderAccount.objects.create(name="U", provider="unisender", api_key="k",
                                   api_language="uk")
    with pytest.raises(SystemCheckError, match="esp_forms.E011"):
        call_command("check", databases=["default"])


def test_migration_maps_old_languages():
    from importlib import import_module

    from django.apps import apps

    migration = import_module("esp_forms.migrations.0002_provider_truth")
    ProviderAccount.objects.create(name="A", provider="unisender", api_key="k", api_language="uk")
    ProviderAccount.objects.create(name="B", provider="unisender", api_key="k", api_language="de")
    ProviderAccount.objects.create(name="C", provider="unisender", api_key="k", api_language="ru")
    migration.fix_languages(apps, None)
    assert dict(ProviderAccount.objects.values_list("name", "api_language")) == {
        "A": "ua", "B": "en", "C": "ru"}


# --- eSputnik ---------------------------------------------------------------------------------

def test_esputnik_provider_mode_needs_a_confirmed_segment(emulator):
    emulator.add_esputnik_account(ESPUTNIK_KEY)
    account = ProviderAccount.objects.create(name="E", provider="esputnik", api_key=ESPUTNIK_KEY)
    form = SignupForm(account=account, form_type="f", title="F", confirmed_group=" ",
                      double_opt_in=DoubleOptIn.PROVIDER)
    with pytest.raises(ValidationError) as caught:
        form.full_clean()
    assert "confirmed_group" in caught.value.message_dict
    for mode in (DoubleOptIn.LOCAL, DoubleOptIn.OFF):  # the segment is not needed there
        form.double_opt_in = mode
        form.full_clean()
    form.double_opt_in, form.confirmed_group = DoubleOptIn.PROVIDER, "Confirmed"
    form.full_clean()


def test_system_check_for_a_form_without_confirmed_segment(emulator):
    emulator.add_esputnik_account(ESPUTNIK_KEY)
    account = ProviderAccount.objects.create(name="E", provider="esputnik", api_key=ESPUTNIK_KEY)
    make_form(account, "no-segment", confirmed_group="")
    with pytest.raises(SystemCheckError, match="esp_forms.E010"):
        call_command("check", databases=["default"])


def test_account_check_fails_a_form_without_confirmed_segment(esputnik_form):
    from esp_forms.providers import get_provider

    SignupForm.objects.filter(pk=esputnik_form.pk).update(confirmed_group="")
    esputnik_form.refresh_from_db()
    check = get_provider(esputnik_form.account).check_account([esputnik_form])
    assert not check.ok
    assert any("no confirmed segment" in problem for problem in check.problems)


def test_esputnik_off_mode_delivers_a_mailable_contact(esputnik_form, emulator):
    esputnik_form.double_opt_in = DoubleOptIn.OFF
    esputnik_form.save()
    submission = make_submission(esputnik_form)
    assert delivery.deliver(submission.pk).status == "delivered"
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.NOT_REQUIRED
    assert emulator.contact("esputnik", ESPUTNIK_KEY, "olena@example.com")["confirmed"] is True


def test_system_check_for_an_esputnik_account_without_webhook_secret(db):
    from esp_forms.checks import check_forms

    ProviderAccount.objects.create(name="E", provider="esputnik", api_key="k", webhook_secret="")
    assert [m.id for m in check_forms(databases=["default"])] == ["esp_forms.W008"]
