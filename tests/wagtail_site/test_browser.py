"""A Wagtail page with a SignupFormBlock, in a real browser: the visitor subscribes in place."""

from __future__ import annotations

import pytest

from esp_forms.models import Submission
from tests.browser.conftest import browser, shot  # noqa: F401 (fixtures)
from tests.wagtail_site.test_blocks import landing

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_visitor_subscribes_on_a_wagtail_page(browser, live_server, newsletter, settings,  # noqa: F811
                                              shot):  # noqa: F811
    settings.ESP_FORMS = {**settings.ESP_FORMS, "MIN_FILL_SECONDS": 0}
    page_model = landing([("text", "Pottery news, once a month."),
                          ("signup", {"form_type": "newsletter", "heading": "h2"})],
                         title="Pottery news")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1000, "height": 700})
    page = context.new_page()
    try:
        page.goto(page_model.url)
        form = page.locator('form[data-esp-form="newsletter"]')
        form.locator('[name="email"]').fill("bad@")
        form.locator('button[type="submit"]').click()
        form.locator(".esp-form__error").wait_for()
        page.evaluate("window.__sameDocument = true")
        form.locator('[name="email"]').fill("halyna@example.com")
        form.locator('button[type="submit"]').click()
        form.locator(".esp-form__message--success").wait_for(timeout=10_000)
        assert page.evaluate("window.__sameDocument") is True
        shot(page, "wagtail-page-subscribed")
    finally:
        context.close()
    assert Submission.objects.get().email == "halyna@example.com"
