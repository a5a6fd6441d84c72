"""``manage.py esp_forms_check_accounts`` against the emulator."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from esp_forms.models import DoubleOptIn, ProviderAccount
from tests.conftest import make_form

pytestmark = pytest.mark.django_db

ES_KEY = "es-check-key-0123456789"
US_KEY = "us-check-key-0123456789"


def run(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("esp_forms_check_accounts", *args, stdout=out)
    except CommandError as err:
        return out.getvalue(), err
    return out.getvalue(), None


@pytest.fixture
def accounts(emulator, sandbox_account) -> dict[str, ProviderAccount]:
    emulator.add_esputnik_account(ES_KEY, groups=("Newsletter", "Confirmed"))
    emulator.add_unisender_account(US_KEY, lists=[
        {"id": 555777, "title": "News", "confirmation_letter": True}])
    es = ProviderAccount.objects.create(name="ES", provider="esputnik", api_key=ES_KEY,
                                        api_base_url=emulator.url)
    us = ProviderAccount.objects.create(name="US", provider="unisender", api_key=US_KEY,
                                        api_base_url=emulator.url)
    make_form(es, "es-news", lists="Newsletter", confirmed_group="Confirmed")
    make_form(us, "us-news", lists="555777")
    make_form(sandbox_account, "demo", lists="news")
    return {"esputnik": es, "unisender": us, "sandbox": sandbox_account}


def test_all_accounts_pass(accounts) -> None:
    out, error = run()
    assert error is None, out
    for account in accounts.values():
        assert f"Account {account.pk} '{account.name}'" in out
    assert out.count(": OK") == 3
    # The UniSender caveat is printed even when everything passes.
    assert "- warning: Form 'us-news': UniSender sends the invitation letter of list 555777" in out


def test_problems_fail_with_one_line_each(accounts, emulator) -> None:
    es, us = accounts["esputnik"], accounts["unisender"]
    make_form(us, "us-missing", lists="555777, 42")
    make_form(es, "es-segment", lists="Newsletter", confirmed_group="Double OK")
    make_form(es, "es-new-group", lists="Brand new", double_opt_in=DoubleOptIn.OFF)
    out, error = run()
    assert error is not None
    assert str(error) == "2 of 3 account(s) failed the check."
    lines = out.splitlines()
    assert f"Account {es.pk} 'ES' (eSputnik): FAILED" in lines
    assert f"Account {us.pk} 'US' (UniSender): FAILED" in lines
    assert "  - problem: Form 'us-missing': list 42 does not exist in this account" in lines
    assert any(line.startswith("  - problem: Form 'es-segment': the confirmed segment "
                               "'Double OK' does not exist") for line in lines)
    assert ("  - warning: Form 'es-new-group': group 'Brand new' does not exist yet; eSputnik "
            "creates it on the first signup") in lines


def test_a_refused_key(accounts, emulator) -> None:
    accounts["esputnik"].api_key = "wrong"
    accounts["esputnik"].save()
    out, error = run("--account", str(accounts["esputnik"].pk))
    assert error is not None
    assert "  - problem: API key refused" in out.splitlines()
    assert "wrong" not in out.replace("'ES'", "")
    # Only the chosen account was checked.
    assert f"Account {accounts['unisender'].pk}" not in out


def test_unisender_refused_key(accounts) -> None:
    accounts["unisender"].api_key = "nope-nope"
    accounts["unisender"].save()
    out, error = run("--account", str(accounts["unisender"].pk))
    assert error is not None
    assert any(line.startswith("  - problem: API key refused") for line in out.splitlines())


def test_inactive_accounts_are_skipped_unless_named(accounts) -> None:
    us = accounts["unisender"]
    us.is_active = False
    us.api_key = "broken"
    us.save()
    out, error = run()
    assert error is None and f"Account {us.pk}" not in out
    out, error = run("--account", str(us.pk))
    assert error is not None
    assert "  - warning: The account is inactive: its forms deliver nothing." in out


def test_unknown_account_id(accounts) -> None:
    with pytest.raises(CommandError, match="No provider account with id 999"):
        call_command("esp_forms_check_accounts", "--account", "999", stdout=StringIO())


def test_a_passing_check_clears_the_recorded_configuration_error(accounts) -> None:
    es = accounts["esputnik"]
    es.config_error = "eSputnik refused the API key"
    es.config_error_at = timezone.now()
    es.save()
    out, error = run("--account", str(es.pk))
    assert error is None
    es.refresh_from_db()
    assert es.config_error == "" and es.config_error_at is None
    assert "cleared the earlier configuration error" in out


def test_an_unreachable_provider_fails(accounts, emulator) -> None:
    emulator.fault("unisender", status=503, body="down", times=3)
    out, error = run("--account", str(accounts["unisender"].pk))
    assert error is not None
    assert "  - problem: Could not list the lists: UniSender answered HTTP 503" in out


def test_no_accounts(db) -> None:
    out, error = run()
    assert error is None
    assert "No active provider accounts to check." in out
