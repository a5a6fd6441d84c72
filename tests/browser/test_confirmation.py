"""Scanner-safe confirmation: opening a confirmation link (even in a browser that runs scripts,
as mail scanners do) confirms nobody; a person's click on the button does."""

from __future__ import annotations

import pytest
from django.urls import reverse

from esp_forms import optin
from esp_forms.models import DoubleOptIn, OptinStatus, SandboxContact, SignupForm
from tests.conftest import make_submission

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Longer than any script on the page would wait before submitting on its own.
SCANNER_WAIT_MS = 3_000


def test_local_link_confirms_only_on_click(page, shot):
    form = SignupForm.objects.filter(double_opt_in=DoubleOptIn.LOCAL).first()
    submission = make_submission(form, "scanner@example.com")
    page.goto(reverse("esp_forms:confirm", args=[optin.make_token(submission)]))
    page.get_by_role("heading", name="Confirm your subscription").wait_for()
    page.wait_for_timeout(SCANNER_WAIT_MS)
    page.wait_for_load_state("networkidle")
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNCONFIRMED
    shot(page, "confirm-local-waiting")

    page.get_by_role("button", name="Confirm my subscription").click()
    page.get_by_role("heading", name="Subscription confirmed").wait_for(timeout=10_000)
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED
    shot(page, "confirm-local-done")


def test_sandbox_link_confirms_only_on_click(page, shot):
    account = SignupForm.objects.filter(account__provider="sandbox").first().account
    contact = SandboxContact.objects.create(account=account, email="scanner@example.com")
    page.goto(f"/sandbox/confirm/{contact.token}/")
    page.get_by_role("heading", name="Confirm your subscription").wait_for()
    page.wait_for_timeout(SCANNER_WAIT_MS)
    page.wait_for_load_state("networkidle")
    contact.refresh_from_db()
    assert contact.status == SandboxContact.Status.INVITED
    shot(page, "confirm-sandbox-waiting")

    page.get_by_role("button", name="Confirm my subscription").click()
    page.get_by_text("confirmed", exact=False).first.wait_for(timeout=10_000)
    contact.refresh_from_db()
    assert contact.status == SandboxContact.Status.ACTIVE
