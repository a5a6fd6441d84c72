"""In Chromium: a form with a CAPTCHA (its widget served by the local stand-in), and the held
signups of a list-bombing attempt as an admin sees, releases and drops them."""

from __future__ import annotations

import pytest

from esp_forms.models import Captcha, DoubleOptIn, EventKind, HoldReason, SignupForm, Submission
from tests.browser.conftest import ADMIN_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 10_000


def test_turnstile_form_signs_up_in_the_browser(page, settings, captcha_standin, shot):
    settings.ESP_FORMS = {**settings.ESP_FORMS, **captcha_standin.settings()}
    SignupForm.objects.filter(form_type="newsletter").update(captcha=Captcha.TURNSTILE)
    page.goto("/forms/newsletter/")
    form = page.locator('form[data-esp-form="newsletter"]')
    # The provider's script (here the stand-in's) turned the placeholder into the widget.
    form.locator(".cf-turnstile", has_text="Verified").wait_for(timeout=TIMEOUT)
    form.locator('[name="email"]').fill("human@example.com")
    shot(page, "captcha-turnstile-widget")
    form.locator('button[type="submit"]').click()
    form.locator(".esp-form__message--success").wait_for(timeout=TIMEOUT)
    shot(page, "captcha-turnstile-success")
    assert Submission.objects.filter(email="human@example.com").exists()
    [call] = captcha_standin.requests
    assert call.path == "/turnstile/siteverify"
    assert call.fields["response"].startswith("pass-")


def test_turnstile_refusal_is_shown_and_the_widget_reset(page, settings, captcha_standin):
    settings.ESP_FORMS = {**settings.ESP_FORMS, **captcha_standin.settings()}
    SignupForm.objects.filter(form_type="newsletter").update(captcha=Captcha.TURNSTILE)
    page.goto("/forms/newsletter/")
    form = page.locator('form[data-esp-form="newsletter"]')
    form.locator(".cf-turnstile", has_text="Verified").wait_for(timeout=TIMEOUT)
    answer = form.locator('[name="cf-turnstile-response"]')
    answer.evaluate("input => { input.value = 'forged' }")
    form.locator('[name="email"]').fill("bot@example.com")
    form.locator('button[type="submit"]').click()
    form.locator(".esp-form__message--error", has_text="complete the CAPTCHA").wait_for(
        timeout=TIMEOUT)
    assert answer.input_value().startswith("pass-")  # reset: a fresh answer for the retry
    form.locator('button[type="submit"]').click()
    form.locator(".esp-form__message--success").wait_for(timeout=TIMEOUT)
    assert Submission.objects.filter(email="bot@example.com").count() == 1


def test_admin_sees_releases_and_drops_held_signups(page, shot):
    SignupForm.objects.filter(form_type="newsletter").update(double_opt_in=DoubleOptIn.LOCAL)
    # A small bombing run through the page: three variants of one mailbox.
    for email in ["target@example.com", "target+1@example.com", "TARGET+2@example.com"]:
        page.goto("/forms/newsletter/")
        form = page.locator('form[data-esp-form="newsletter"]')
        form.locator('[name="email"]').fill(email)
        form.locator('button[type="submit"]').click()
        # Held or not, every visitor reads the same success message.
        form.locator(".esp-form__message--success").wait_for(timeout=TIMEOUT)
    held = Submission.objects.filter(held_reason=HoldReason.MAILBOX_BUDGET)
    assert held.count() == 2

    page.goto("/admin/login/")
    page.fill('[name="username"]', "admin")
    page.fill('[name="password"]', ADMIN_PASSWORD)
    page.click('[type="submit"]')
    page.wait_for_url("**/admin/")
    page.goto("/admin/esp_forms/submission/")
    page.get_by_role("link", name="Held (any reason)").click()
    rows = page.locator("#result_list tbody tr")
    rows.first.wait_for(timeout=TIMEOUT)
    assert rows.count() == 2
    assert rows.first.locator(".esp-forms-badge--held").inner_text() == \
        "Mailbox over its daily budget"
    shot(page, "admin-held-signups")

    rows.filter(has_text="target+1@example.com").locator("input.action-select").check()
    page.select_option('select[name="action"]', "release_held")
    page.click('button[name="index"]')
    page.locator(".messagelist", has_text="1 held submission released.").wait_for(
        timeout=TIMEOUT)
    released = Submission.objects.get(email="target+1@example.com")
    assert released.held_at is None
    assert released.events.filter(kind=EventKind.RELEASED).exists()

    page.goto("/admin/esp_forms/submission/?held=any")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    rows.first.locator("input.action-select").check()
    page.select_option('select[name="action"]', "drop_held")
    page.click('button[name="index"]')
    page.locator(".messagelist", has_text="1 held submission dropped.").wait_for(
        timeout=TIMEOUT)
    shot(page, "admin-held-dropped")
    dropped = Submission.objects.get(email__iexact="target+2@example.com")
    assert dropped.delivery_status == "failed" and "Dropped by admin" in dropped.last_error
