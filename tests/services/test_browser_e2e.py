"""The whole loop a visitor and a site owner see: a real Chromium subscribes on the demo page,
a real Celery worker delivers through PostgreSQL and Redis, the admin shows it delivered, and
the sandbox's confirmation link confirms it."""

from __future__ import annotations

import re

import pytest

from esp_forms.models import DeliveryStatus, OptinStatus, SandboxContact, Submission
from tests.browser.conftest import ADMIN_PASSWORD, browser, demo_site  # noqa: F401 (fixtures)
from tests.services.conftest import ARTIFACTS_DIR, wait_for

pytestmark = [pytest.mark.services, pytest.mark.browser]


def test_subscribe_in_the_browser_worker_delivers_admin_shows_it(
        browser, demo_site, live_server, start_worker, settings):  # noqa: F811
    settings.ESP_FORMS = {**settings.ESP_FORMS, "SITE_URL": live_server.url}
    start_worker(extra={"SITE_URL": live_server.url})
    context = browser.new_context(base_url=live_server.url,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto("/")
    form = page.locator('form[data-esp-form="newsletter"]')
    form.get_by_label(re.compile("email", re.I)).fill("e2e@example.com")
    page.evaluate("window.__noReload = true")
    form.locator('button[type="submit"]').click()
    message = form.locator(".esp-form__message")
    message.wait_for(state="visible")
    wait_for(lambda: "thank" in message.inner_text().lower(), 10, "the success message")
    assert page.evaluate("window.__noReload") is True  # no page load happened

    submission = Submission.objects.get(email="e2e@example.com")
    wait_for(lambda: Submission.objects.get(pk=submission.pk).delivery_status
             == DeliveryStatus.DELIVERED, 30, "the worker's delivery")

    page.goto("/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click('input[type="submit"]')
    page.goto(f"/admin/esp_forms/submission/{submission.pk}/change/")
    body = page.locator("body").inner_text()
    assert "e2e@example.com" in body and "Delivered" in body
    page.screenshot(path=str(ARTIFACTS_DIR / "e2e-admin-delivered.png"), full_page=True)

    # The sandbox sent its confirmation email from the worker; follow its link like a person.
    contact = SandboxContact.objects.get(email="e2e@example.com")
    page.goto(f"/sandbox/confirm/{contact.token}/")
    page.get_by_role("button", name="Confirm my subscription").click()
    wait_for(lambda: Submission.objects.get(pk=submission.pk).optin_status
             == OptinStatus.CONFIRMED, 30, "confirmation through the webhook-style hint")
    context.close()
