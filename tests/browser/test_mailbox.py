"""Local double opt-in through the demo mailbox: sign up, open the email, follow its link."""

from __future__ import annotations

import pytest

from esp_forms.models import OptinStatus, Submission

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def eager_tasks(monkeypatch):
    """Run Celery tasks inside the request that queues them: no worker in this test."""
    from project.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


def test_confirm_from_the_demo_mailbox(page, live_server, settings, tmp_path, eager_tasks, shot):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "mail"
    settings.ESP_FORMS = {**settings.ESP_FORMS, "SITE_URL": live_server.url}

    page.goto("/")
    form = page.locator('form[data-esp-form="product-updates"]')
    form.locator('[name="email"]').fill("iryna@example.com")
    form.locator('[name="product"]').select_option("mobile")
    form.locator('input[type="checkbox"]').check()
    form.locator('button[type="submit"]').click()
    form.locator(".esp-form__message").filter(has_text="check your inbox").wait_for(
        timeout=10_000)
    submission = Submission.objects.get(email="iryna@example.com")
    assert submission.optin_status == OptinStatus.UNCONFIRMED

    page.goto("/demo/mail/")
    mail = page.locator(".mail", has_text="iryna@example.com")
    assert mail.count() == 1
    shot(page, "mailbox")
    link = mail.locator(".mail-body a", has_text="/confirm/")
    link.click()
    # Opening the link confirms nothing (scanners open links too); the button does.
    page.get_by_role("button", name="Confirm my subscription").click()
    page.get_by_role("heading", name="Subscription confirmed").wait_for(timeout=10_000)
    shot(page, "confirmed")
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED
