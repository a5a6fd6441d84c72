"""The demo home page in a real browser: in-place submission, errors, two forms, no JavaScript."""

from __future__ import annotations

import pytest

from esp_forms.models import Submission

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEWSLETTER = 'form[data-esp-form="newsletter"]'
UPDATES = 'form[data-esp-form="product-updates"]'
TIMEOUT = 10_000  # ms


def test_home_page_submits_newsletter_in_place(page, shot):
    page.goto("/")
    form = page.locator(NEWSLETTER)
    form.locator('[name="email"]').wait_for()
    shot(page, "home")
    # Survives only if the page never navigates or reloads.
    page.evaluate("window.__espFormsMarker = 'still-here'")
    url = page.url

    form.locator('[name="email"]').fill("olena@example.com")
    form.locator('[name="first_name"]').fill("Olena")
    form.locator('button[type="submit"]').click()

    message = form.locator(".esp-form__message")
    assert message.get_attribute("aria-live") == "polite"
    message.filter(has_text="check your inbox").wait_for(timeout=TIMEOUT)
    assert page.evaluate("window.__espFormsMarker") == "still-here"
    assert page.url == url
    shot(page, "home-success")

    submission = Submission.objects.get(email="olena@example.com")
    assert submission.form.form_type == "newsletter"
    assert submission.data.get("first_name") == "Olena"


def test_validation_error_is_shown_on_the_field(page, shot):
    page.goto("/")
    form = page.locator(UPDATES)
    form.locator('[name="email"]').fill("petro@example.com")
    form.locator('[name="phone"]').fill("12")  # no browser rule for tel; the server refuses it
    form.locator('[name="product"]').select_option("api")
    form.locator('input[type="checkbox"]').check()
    page.evaluate("window.__espFormsMarker = 'still-here'")
    form.locator('button[type="submit"]').click()

    error = form.locator(".esp-form__error").first
    error.wait_for(timeout=TIMEOUT)
    phone = form.locator('[name="phone"]')
    error_id = error.get_attribute("id")
    assert error_id and error_id in (phone.get_attribute("aria-describedby") or "").split()
    assert phone.get_attribute("aria-invalid") == "true"
    assert page.evaluate("window.__espFormsMarker") == "still-here"
    assert not Submission.objects.filter(email="petro@example.com").exists()
    shot(page, "home-errors")

    phone.fill("+380441234567")
    form.locator('button[type="submit"]').click()
    form.locator(".esp-form__message").filter(has_text="check your inbox").wait_for(
        timeout=TIMEOUT)
    assert form.locator(".esp-form__error").count() == 0
    submission = Submission.objects.get(email="petro@example.com")
    assert submission.phone == "+380441234567"


def test_two_forms_on_one_page_submit_independently(page, shot):
    page.goto("/")
    newsletter = page.locator(NEWSLETTER)
    updates = page.locator(UPDATES)

    updates.locator('[name="email"]').fill("both@example.com")
    newsletter.locator('[name="email"]').fill("both@example.com")
    newsletter.locator('button[type="submit"]').click()
    newsletter.locator(".esp-form__message").filter(has_text="check your inbox").wait_for(
        timeout=TIMEOUT)
    # The other form kept what was typed into it and shows no message of its own.
    assert updates.locator('[name="email"]').input_value() == "both@example.com"
    assert updates.locator(".esp-form__message").inner_text().strip() == ""
    assert list(Submission.objects.values_list("form__form_type", flat=True)) == ["newsletter"]

    updates.locator('[name="product"]').select_option("web")
    updates.locator('input[type="checkbox"]').check()
    updates.locator('button[type="submit"]').click()
    updates.locator(".esp-form__message").filter(has_text="check your inbox").wait_for(
        timeout=TIMEOUT)
    assert sorted(Submission.objects.values_list("form__form_type", flat=True)) == [
        "newsletter", "product-updates"]
    shot(page, "home-two-forms")


def test_form_works_without_javascript(nojs_page, shot):
    page = nojs_page
    page.goto("/")
    form = page.locator(NEWSLETTER)
    # Accepted by the browser's own type=email check, refused by the server (no domain dot).
    form.locator('[name="email"]').fill("olena@localhost")
    form.locator('button[type="submit"]').click()
    page.wait_for_load_state()

    form = page.locator(NEWSLETTER)
    error = form.locator(".esp-form__error").first
    error.wait_for(timeout=TIMEOUT)
    email = form.locator('[name="email"]')
    assert error.get_attribute("id") in (email.get_attribute("aria-describedby") or "").split()
    assert not Submission.objects.exists()
    shot(page, "nojs-errors")

    email.fill("olena@example.com")
    form.locator('button[type="submit"]').click()
    page.wait_for_load_state()
    page.get_by_text("check your inbox").first.wait_for(timeout=TIMEOUT)
    assert Submission.objects.filter(email="olena@example.com",
                                     form__form_type="newsletter").exists()
    shot(page, "nojs-success")


def test_ukrainian_browser_sees_the_form_and_the_scripts_messages_in_ukrainian(uk_page, shot):
    page = uk_page
    page.goto("/")
    form = page.locator(NEWSLETTER)
    button = form.locator('button[type="submit"]')
    assert button.inner_text() == "Підписатися"
    assert form.locator('label[for="esp-newsletter-email"]').inner_text().startswith(
        "Електронна пошта")

    # A server error, shown in place by the script.
    form.locator('[name="email"]').fill("olena@localhost")
    button.click()
    form.locator(".esp-form__error").filter(
        has_text="Введіть коректну адресу електронної пошти.").wait_for(timeout=TIMEOUT)
    shot(page, "uk-errors")

    # The script's own message when the server cannot be reached.
    page.route("**/forms/newsletter/", lambda route: route.abort())
    form.locator('[name="email"]').fill("olena@example.com")
    button.click()
    form.locator(".esp-form__message").filter(
        has_text="Не вдалося зв’язатися із сервером.").wait_for(timeout=TIMEOUT)
    assert button.inner_text() == "Підписатися"
    assert not Submission.objects.exists()
