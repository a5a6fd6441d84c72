"""The embed script on a page of ANOTHER origin: a plain static page served on its own
127.0.0.1 port by a tiny HTTP server, the Django live server as the API's origin (CORS)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from esp_forms.models import SignupForm, Submission

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Rules a careless host page might have: element selectors, !important, and a class that
# happens to share the form's names. None of them may reach a form in its shadow root.
HOSTILE_CSS = """
body { font-family: Georgia, serif; background: #fff8e1; margin: 2rem; }
input, select, button { border: 6px dashed rgb(255, 0, 255) !important; }
h2 { color: rgb(0, 128, 0) !important; text-transform: uppercase; }
.esp-form__submit { display: none !important; }
.esp-embed::part(submit) { background: rgb(123, 45, 38); }  /* the documented way in */
"""


def host_page(script_tag: str, css: str = HOSTILE_CSS) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Olena's pottery shop</title>
<style>{css}</style></head>
<body>
<h1>Olena's pottery shop</h1>
<p>Hand-made cups and bowls. Hear about new batches first:</p>
{script_tag}
<button type="button" class="shop-button">Buy a cup</button>
</body></html>"""


class StaticSite:
    """Serves ``pages`` (path -> HTML) on a free 127.0.0.1 port: not Django, not the API."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                data = (body or "not found").encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[StaticSite]:
    server = StaticSite()
    yield server
    server.close()


def embed_tag(live_server, form_type: str = "product-updates", **attrs: str) -> str:
    extra = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return (f'<script src="{live_server.url}/static/esp_forms/embed.js" '
            f'data-form="{form_type}"{extra} async></script>')


def allow(site: StaticSite, form_type: str = "product-updates") -> None:
    SignupForm.objects.filter(form_type=form_type).update(allowed_origins=site.origin)


def labels(form) -> list[str]:
    return [text.strip() for text in form.locator(".esp-form__label").all_inner_texts()]


def test_embedded_form_matches_the_bundled_one_and_subscribes(page, live_server, site, shot):
    allow(site)
    site.pages["/"] = host_page(embed_tag(live_server))
    assert site.origin.split(":")[-1] != live_server.url.split(":")[-1]

    page.goto("/forms/product-updates/")
    bundled = page.locator("form.esp-form")
    bundled_labels = labels(bundled)
    bundled_options = bundled.locator("select option").all_inner_texts()
    bundled_blocks = bundled.locator(".esp-form__field").evaluate_all(
        "els => els.map(e => e.className)")

    page.goto(site.origin + "/")
    page.evaluate("window.__sameDocument = true")
    form = page.locator("form.esp-form")  # Playwright's CSS selectors pierce open shadow roots
    form.wait_for()
    assert page.evaluate("document.querySelector('.esp-embed').shadowRoot !== null")
    assert labels(form) == bundled_labels
    assert form.locator(".esp-form__field").evaluate_all(
        "els => els.map(e => e.className)") == bundled_blocks
    assert form.locator("select option").all_inner_texts() == bundled_options
    assert "I agree to receive product update emails" in form.inner_text()
    assert form.locator(".esp-form__help").inner_text() == (
        "International format, e.g. +380 44 123 4567.")
    message = form.locator(".esp-form__message")
    assert message.get_attribute("aria-live") == "polite"

    # The host's rules stay out, and the form's stay in.
    submit = form.locator("button.esp-form__submit")
    assert submit.is_visible() and submit.inner_text() == "Keep me posted"
    assert submit.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(123, 45, 38)"
    email = form.locator('input[type="email"]')
    assert email.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    assert form.locator("h2").evaluate("e => getComputedStyle(e).color") != "rgb(0, 128, 0)"
    host_button = page.locator("button.shop-button")
    assert host_button.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
    shot(page, "embed-host-page")

    # Server-side validation, shown in place: nothing is checked in the browser first.
    email.fill("olena@")
    form.locator('input[type="tel"]').fill("12")
    submit.click()
    email_error = form.locator('[data-esp-field="email"] .esp-form__error')
    email_error.wait_for()
    assert "Enter a valid email address." in email_error.inner_text()
    assert email.get_attribute("aria-invalid") == "true"
    assert email_error.get_attribute("id") in email.get_attribute("aria-describedby")
    def error_of(name: str) -> str:
        return form.locator(f'[data-esp-field="{name}"] .esp-form__error').inner_text()

    assert "valid phone number" in error_of("phone")
    assert error_of("product") == "This field is required."
    assert "tick this box" in error_of("consent")
    assert message.inner_text() == "Please correct the errors below."
    assert email.evaluate("e => e.getRootNode().activeElement === e")
    assert not Submission.objects.exists()
    shot(page, "embed-validation-errors")

    email.fill("olena@example.com")
    form.locator('input[type="tel"]').fill("+380 44 123 4567")
    form.locator("select").select_option("api")
    form.locator('input[name="consent"]').check()
    submit.click()
    message.filter(has_text="check your inbox").wait_for(timeout=10_000)
    assert "esp-form__message--success" in message.get_attribute("class")
    assert not form.locator(".esp-form__body").is_visible()
    assert page.evaluate("window.__sameDocument") is True  # no reload
    shot(page, "embed-subscribed")

    submission = Submission.objects.get()
    assert (submission.email, submission.phone) == ("olena@example.com", "+380441234567")
    assert submission.form.form_type == "product-updates"
    assert submission.data == {"product": "api"}
    assert submission.consent_text.startswith("I agree to receive product update emails")
    assert submission.ip == "127.0.0.1" and "Chrome" in submission.user_agent


def test_a_disallowed_origin_gets_a_clear_failure(page, live_server, site, shot):
    SignupForm.objects.filter(form_type="newsletter").update(
        allowed_origins="https://somewhere-else.example")
    site.pages["/"] = host_page(embed_tag(live_server, "newsletter"), css="")
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(site.origin + "/")
    host = page.locator('[data-esp-embed="newsletter"][data-esp-error="origin"]')
    host.wait_for()
    assert host.locator('[role="alert"]').inner_text() == "This signup form is not available here."
    assert page.locator("form.esp-form").count() == 0
    explained = [e for e in errors if e.startswith("esp_forms embed (newsletter)")]
    assert explained and f"Add {site.origin} to the form's allowed origins" in explained[0]
    shot(page, "embed-origin-refused")


def test_light_dom_in_the_visitors_language(browser, live_server, demo_site, site, shot):
    """data-shadow="off" renders into the page (host CSS applies), data-lang picks Ukrainian."""
    allow(site, "newsletter")
    site.pages["/"] = host_page(embed_tag(live_server, "newsletter", shadow="off", lang="uk"),
                                css="body { font-family: sans-serif; margin: 2rem; }")
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    try:
        page.goto(site.origin + "/")
        form = page.locator('.esp-embed form.esp-form[data-esp-form="newsletter"]')
        form.wait_for()
        assert page.evaluate("document.querySelector('.esp-embed').shadowRoot") is None
        # The bundled stylesheet, added once to the page's head.
        assert page.locator("head link[data-esp-css]").count() == 1
        assert form.locator("button.esp-form__submit").inner_text() == "Підписатися"
        assert form.locator(".esp-form__legend").inner_text() == "* обов’язкові поля"
        form.locator('input[type="email"]').fill("nope")
        form.locator("button.esp-form__submit").click()
        error = form.locator('[data-esp-field="email"] .esp-form__error')
        error.wait_for()
        assert error.inner_text() == "Введіть коректну адресу електронної пошти."
        shot(page, "embed-light-dom-uk")
    finally:
        context.close()


def test_an_embedded_form_with_a_captcha(page, live_server, site, settings, captcha_standin,
                                         shot):
    """The widget renders inside the shadow root (explicit mode) and its answer is sent to the
    API as "captcha", verified by the (stand-in) provider."""
    from esp_forms.models import Captcha

    settings.ESP_FORMS = {**settings.ESP_FORMS, **captcha_standin.settings()}
    allow(site, "newsletter")
    SignupForm.objects.filter(form_type="newsletter").update(captcha=Captcha.TURNSTILE)
    site.pages["/"] = host_page(embed_tag(live_server, "newsletter"), css="")
    page.goto(site.origin + "/")
    form = page.locator('form.esp-form[data-esp-form="newsletter"]')
    form.locator(".cf-turnstile", has_text="Verified").wait_for(timeout=10_000)
    form.locator('input[type="email"]').fill("human@example.com")
    form.locator("button.esp-form__submit").click()
    form.locator(".esp-form__message--success").wait_for(timeout=10_000)
    shot(page, "embed-captcha-subscribed")
    assert Submission.objects.filter(email="human@example.com").exists()
    [call] = captcha_standin.requests
    assert call.path == "/turnstile/siteverify" and call.fields["response"].startswith("pass-")
