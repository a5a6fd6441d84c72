"""The admin in a real browser: log in, find a submission and its log, see only a masked key."""

from __future__ import annotations

import pytest

from esp_forms.emulator.demo import DEMO_ESPUTNIK_KEY
from esp_forms.models import ProviderAccount, SignupForm, Submission
from tests.browser.conftest import ADMIN_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def admin_page(page):
    page.goto("/admin/login/")
    page.fill('[name="username"]', "admin")
    page.fill('[name="password"]', ADMIN_PASSWORD)
    page.click('[type="submit"]')
    page.wait_for_url("**/admin/")
    return page


def submit_newsletter(page, email: str) -> Submission:
    page.goto("/")
    form = page.locator('form[data-esp-form="newsletter"]')
    form.locator('[name="email"]').fill(email)
    form.locator('button[type="submit"]').click()
    form.locator(".esp-form__message").filter(has_text="check your inbox").wait_for(
        timeout=10_000)
    return Submission.objects.get(email=email)


def test_submission_list_and_detail_with_event_log(admin_page, shot):
    page = admin_page
    submission = submit_newsletter(page, "hanna@example.com")

    page.goto("/admin/esp_forms/submission/")
    row = page.locator("#result_list tbody tr", has_text="hanna@example.com")
    assert row.count() == 1
    assert "newsletter" in row.inner_text().lower() or "weekly" in row.inner_text().lower()
    shot(page, "admin-submissions")

    row.locator("a", has_text="hanna@example.com").click()
    page.wait_for_url(f"**/admin/esp_forms/submission/{submission.pk}/change/")
    events = page.locator("#events-group")
    assert events.is_visible()
    assert events.locator("tbody tr").count() >= 1
    assert events.locator("tbody tr").first.inner_text().strip()
    # Read-only: nothing to type into, nothing to save.
    assert page.locator('input[name="email"]').count() == 0
    assert page.locator('[name="_save"]').count() == 0
    shot(page, "admin-submission-detail")


def test_account_page_shows_the_masked_key_only(admin_page, shot):
    page = admin_page
    account = ProviderAccount.objects.get(provider="esputnik")
    page.goto(f"/admin/esp_forms/provideraccount/{account.pk}/change/")
    assert DEMO_ESPUTNIK_KEY not in page.content()
    assert account.masked_api_key in page.content()
    assert page.locator('input[name="api_key"]').input_value() == ""
    assert page.locator(".field-webhook_setup").inner_text().count(
        f"/webhooks/esputnik/{account.pk}/") == 1
    shot(page, "admin-account")

    page.goto("/admin/esp_forms/provideraccount/")
    assert DEMO_ESPUTNIK_KEY not in page.content()
    shot(page, "admin-accounts")


def test_signup_form_pages(admin_page, shot):
    page = admin_page
    submit_newsletter(page, "counted@example.com")
    page.goto("/admin/esp_forms/signupform/")
    row = page.locator("#result_list tbody tr", has_text="newsletter")
    assert "1" in row.locator("td.field-n_pending, td.field-n_unconfirmed").all_inner_texts()
    shot(page, "admin-forms")

    form = SignupForm.objects.get(form_type="newsletter")
    page.goto(f"/admin/esp_forms/signupform/{form.pk}/change/")
    preview = page.frame_locator("iframe.esp-forms-preview")
    preview.locator('form[data-esp-form="newsletter"]').wait_for(timeout=10_000)
    shot(page, "admin-form-change")
    shot(page.locator("#fields-group"), "admin-form-fields")
    shot(page.locator(".field-embed_snippet"), "admin-form-embed")


def test_signup_form_page_shows_spam_dropped_by_the_api(admin_page, live_server, settings,
                                                        shot):
    """A JSON client that posts at once is answered like a success; the form page tells why
    nothing arrived, and its link lists the counts."""
    import json
    import urllib.request

    settings.ESP_FORMS = {**settings.ESP_FORMS, "MIN_FILL_SECONDS": 2}  # the default
    page = admin_page
    form = SignupForm.objects.get(form_type="newsletter")
    schema_url = f"{live_server.url}/api/esp-forms/forms/newsletter/"
    with urllib.request.urlopen(schema_url, timeout=10) as answer:
        token = json.load(answer)["form_token"]
    request = urllib.request.Request(
        f"{schema_url}submissions/", headers={"Content-Type": "application/json"},
        data=json.dumps({"email": "hasty@example.com", "form_token": token}).encode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202
    assert not Submission.objects.filter(email="hasty@example.com").exists()

    page.goto(f"/admin/esp_forms/signupform/{form.pk}/change/")
    summary = page.locator(".field-spam_summary")
    assert summary.is_visible()
    assert "In the last 7 days: Submitted too fast: 1." in summary.inner_text()
    shot(summary, "admin-form-spam")
    summary.locator("a", has_text="Spam counts").click()
    page.wait_for_url("**/admin/esp_forms/spamcount/**")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    assert "Submitted too fast" in row.inner_text() and "1" in row.inner_text()


def test_fields_can_be_reordered_by_dragging(admin_page):
    page = admin_page
    form = SignupForm.objects.get(form_type="newsletter")
    page.goto(f"/admin/esp_forms/signupform/{form.pk}/change/")
    rows = page.locator("#fields-group tbody tr.form-row.has_original")
    assert rows.nth(1).locator("td.field-name input").input_value() == "first_name"

    rows.nth(1).locator(".esp-forms-handle").drag_to(rows.nth(0), target_position={"x": 10,
                                                                                  "y": 2})
    assert rows.nth(0).locator("td.field-name input").input_value() == "first_name"
    assert rows.nth(0).locator("td.field-order input").input_value() == "0"
    page.click('[name="_save"]')
    page.wait_for_url("**/admin/esp_forms/signupform/")
    assert list(form.fields.order_by("order").values_list("name", flat=True)) == [
        "first_name", "email"]
