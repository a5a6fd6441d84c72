"""Consent records in the admin, in a real browser: download one person's data, then erase it."""

from __future__ import annotations

import json

import pytest

from esp_forms.models import EventKind, Submission
from tests.browser.test_admin_pages import admin_page, submit_newsletter  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _select(page, email: str, action_label: str) -> None:
    page.goto("/admin/esp_forms/submission/")
    row = page.locator("#result_list tbody tr", has_text=email)
    row.locator('input[name="_selected_action"]').check()
    page.select_option('select[name="action"]', label=action_label)


def test_export_then_erase_from_the_submission_list(admin_page, shot):  # noqa: F811
    page = admin_page
    submission = submit_newsletter(page, "Mykola@example.com")

    _select(page, "Mykola@example.com", "Export the personal data of these people (JSON)")
    with page.expect_download() as download_info:
        page.click('button[name="index"]')
    download = download_info.value
    assert download.suggested_filename.startswith("esp-forms-consent-")
    doc = json.loads(open(download.path(), encoding="utf-8").read())
    [person] = doc["people"]
    assert person["email"] == "mykola@example.com"
    assert [s["id"] for s in person["submissions"]] == [str(submission.pk)]
    assert person["submissions"][0]["user_agent"]  # the browser's, as stored

    _select(page, "Mykola@example.com", "Erase the personal data of these people…")
    page.click('button[name="index"]')
    page.get_by_text("mykola@example.com (1 submission)").wait_for()
    shot(page, "admin-consent-erase-confirm")
    page.click('input[type="submit"][value="Yes, erase their personal data"]')
    page.locator(".messagelist .success").wait_for()
    assert "was erased" in page.locator(".messagelist").inner_text()
    assert page.locator("#result_list", has_text="Mykola@example.com").count() == 0
    shot(page, "admin-consent-erased")

    submission.refresh_from_db()
    assert submission.email == "" and submission.purged_at is not None
    assert submission.events.filter(kind=EventKind.PURGED).exists()
    assert Submission.objects.filter(pk=submission.pk).exists()
