"""A fully cached page with four forms: one CSRF token per page load, shared by every form.

The page's HTML is served as a cache would (the same bytes for everyone, no Set-Cookie), so its
CSRF token belongs to nobody; the bundled script must get one token for the page and give it to
all four forms, however its schema fetches interleave.
"""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.test import RequestFactory

from esp_forms.models import DoubleOptIn, SignupForm, Submission
from tests.conftest import make_form

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FORM_TYPES = ["newsletter", "product-updates", "cached-three", "cached-four"]
TIMEOUT = 10_000


def cached_html() -> str:
    """The page as a cache stored it: rendered once for an earlier visitor."""
    template = Template(
        "{% load esp_forms %}<!doctype html><html><head><title>Cached</title>"
        "{% esp_forms_assets %}</head><body>"
        + "".join(f'{{% esp_form "{t}" %}}' for t in FORM_TYPES) + "</body></html>")
    request = RequestFactory().get("/cached/")
    return template.render(Context({"request": request}))


def submit_cached_page(browser, live_server, round_: int, *, together: bool, shot=None) -> None:
    """Load the cached page in a fresh browser (no cookies), fill and submit its four forms,
    and check that every one of them succeeded with the page's one token."""
    html = cached_html()
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    schema_fetches: list[str] = []
    page.on("request", lambda r: schema_fetches.append(r.url)
            if "/api/esp-forms/forms/" in r.url else None)
    page.route("**/cached/", lambda route: route.fulfill(
        status=200, body=html, headers={"Content-Type": "text/html; charset=utf-8",
                                        "Cache-Control": "public, max-age=600"}))
    try:
        page.goto("/cached/")
        forms = [page.locator(f'form[data-esp-form="{t}"]') for t in FORM_TYPES]
        for number, form in enumerate(forms):
            form.locator('[name="email"]').fill(f"cached{round_}-{number}@example.com")
            for box in form.locator('input[type="checkbox"]').all():
                box.check()
            selects = form.locator("select")
            for index in range(selects.count()):
                selects.nth(index).select_option(index=1)
        outcome = ".esp-form__message--success, .esp-form__message--error"
        if together:
            # All four at once, as soon as the page is there: the submits wait for the token.
            page.evaluate("""() => document.querySelectorAll('form[data-esp-form]')
                              .forEach(f => f.requestSubmit())""")
            for form in forms:
                form.locator(outcome).wait_for(timeout=TIMEOUT)
        else:
            # One after the other. (At once would only test the test server's in-memory
            # SQLite, which refuses concurrent writers instead of waiting; the service tests
            # do it on PostgreSQL.)
            for form in forms:
                form.locator('button[type="submit"]').click()
                form.locator(outcome).wait_for(timeout=TIMEOUT)
        if shot is not None:
            shot(page, f"cached-four-forms-{round_}")
        messages = [f.locator(".esp-form__message").inner_text() for f in forms]
        assert [f.locator(".esp-form__message--success").count() for f in forms] == [1] * 4, \
            messages
        tokens = page.evaluate("""() => Array.from(document.querySelectorAll(
            'form[data-esp-form] [name=csrfmiddlewaretoken]')).map(i => i.value)""")
        # One token for the page, in every form; asked for by exactly one of the four fetches.
        assert len(tokens) == 4 and len(set(tokens)) == 1
        assert len(schema_fetches) == 4
        assert sum(1 for url in schema_fetches if not url.endswith("?csrf=0")) == 1
        assert [c["name"] for c in context.cookies()].count("csrftoken") == 1
    finally:
        context.close()


def add_forms() -> None:
    account = SignupForm.objects.get(form_type="newsletter").account
    for form_type in FORM_TYPES[2:]:
        make_form(account, form_type, double_opt_in=DoubleOptIn.PROVIDER)


@pytest.mark.parametrize("round_", range(3))
def test_every_form_on_a_cached_four_form_page_submits(browser, live_server, demo_site, shot,
                                                       round_):
    add_forms()
    submit_cached_page(browser, live_server, round_, together=False, shot=shot)
    assert Submission.objects.count() == 4
