"""The HTML form page: GET, POST without and with JavaScript, CSRF, 404s, throttling."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from esp_forms import spam
from esp_forms.models import FieldKind, Submission
from tests.conftest import make_form, token

JS = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "HTTP_ACCEPT": "application/json"}


def url(form_type: str = "newsletter") -> str:
    return reverse("esp_forms:form", args=[form_type])


def csrf_client_and_token(form_type: str = "newsletter") -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    html = client.get(url(form_type)).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    return client, csrf


# --- GET ------------------------------------------------------------------------------------

def test_page_renders_an_accessible_form(newsletter):
    response = Client().get(url())
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith("<!doctype html>")
    assert 'data-esp-form="newsletter"' in html
    assert 'action="/forms/newsletter/"' in html
    assert 'data-esp-schema-url="/api/esp-forms/forms/newsletter/"' in html
    assert 'class="esp-form__message"' in html and 'aria-live="polite"' in html
    assert '<label class="esp-form__label" for="esp-newsletter-email">' in html
    assert 'type="email"' in html and 'autocomplete="email"' in html
    assert 'type="tel"' in html and 'autocomplete="tel"' in html
    assert 'autocomplete="given-name"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "/static/esp_forms/esp_forms.js" in html
    assert "/static/esp_forms/esp_forms.css" in html
    # The honeypot is off-screen, out of the tab order and hidden from screen readers.
    assert re.search(r'<div class="esp-form__hp" aria-hidden="true" style="position:absolute',
                     html)
    assert 'name="website" tabindex="-1" autocomplete="off"' in html
    token_value = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    assert spam.check_token(token_value, "newsletter") == "too_fast"  # issued just now


def test_consent_checkbox_with_its_text(sandbox_account):
    make_form(sandbox_account, "consenting", consent_text="Send me news.\nI can leave anytime.")
    html = Client().get(url("consenting")).content.decode()
    assert 'type="checkbox" name="consent"' in html
    assert 'for="esp-consenting-consent">Send me news.<br>I can leave anytime.' in html


def test_every_kind_renders(sandbox_account):
    make_form(sandbox_account, "kinds", fields=[
        {"name": "last", "kind": FieldKind.LAST_NAME},
        {"name": "note", "kind": FieldKind.TEXT, "help_text": "Anything"},
        {"name": "topic", "kind": FieldKind.CHOICE, "choices": "a|A\nb|B"},
        {"name": "adult", "kind": FieldKind.CHECKBOX},
        {"name": "born", "kind": FieldKind.DATE},
    ])
    html = Client().get(url("kinds")).content.decode()
    assert 'autocomplete="family-name"' in html
    assert 'aria-describedby="esp-kinds-note_helptext"' in html
    assert '<p class="esp-form__help" id="esp-kinds-note_helptext">Anything</p>' in html
    assert '<select name="topic"' in html and '<option value="b">B</option>' in html
    assert 'type="checkbox" name="adult"' in html
    assert 'type="date" name="born"' in html


@pytest.mark.parametrize("form_type", ["missing", "inactive"])
def test_page_404(sandbox_account, form_type):
    make_form(sandbox_account, "inactive", is_active=False)
    assert Client().get(url(form_type)).status_code == 404
    assert Client().post(url(form_type), {"email": "a@example.com"}).status_code == 404


def test_other_methods_are_refused(newsletter):
    assert Client().put(url()).status_code == 405


# --- POST without JavaScript ----------------------------------------------------------------

def test_csrf_is_required(newsletter):
    client = Client(enforce_csrf_checks=True)
    response = client.post(url(), {"email": "ann@example.com", "form_token": token()})
    assert response.status_code == 403
    assert not Submission.objects.exists()


def test_post_with_csrf_stores_and_shows_success(newsletter):
    client, csrf = csrf_client_and_token()
    response = client.post(url(), {"csrfmiddlewaretoken": csrf, "email": "ann@example.com",
                                   "first_name": "Ann", "form_token": token()},
                           REMOTE_ADDR="192.0.2.5")
    assert response.status_code == 200
    html = response.content.decode()
    assert str(newsletter.success_message) in html
    assert "esp-form__message--success" in html
    assert 'class="esp-form__body"' not in html  # the form is done
    submission = Submission.objects.get()
    assert submission.email == "ann@example.com"
    assert submission.data == {"first_name": "Ann"}
    assert submission.ip == "192.0.2.5"


def test_extra_post_keys_are_ignored_never_stored(newsletter):
    response = Client().post(url(), {"email": "ann@example.com", "form_token": token(),
                                     "lists": "vip", "tags": "x", "double_opt_in": "off"})
    assert response.status_code == 200
    submission = Submission.objects.get()
    assert submission.data == {}
    assert submission.optin_status == "unconfirmed"


def test_post_redirects_when_the_form_says_so(sandbox_account):
    make_form(sandbox_account, "redirecting", redirect_url="https://example.com/thanks/")
    response = Client().post(url("redirecting"), {"email": "ann@example.com",
                                                  "form_token": token("redirecting")})
    assert response.status_code == 302
    assert response["Location"] == "https://example.com/thanks/"
    assert Submission.objects.count() == 1


def test_bad_redirect_url_falls_back_to_the_message(sandbox_account):
    form = make_form(sandbox_account, "badredirect", redirect_url="javascript:alert(1)")
    response = Client().post(url("badredirect"), {"email": "ann@example.com",
                                                  "form_token": token("badredirect")})
    assert response.status_code == 200
    assert str(form.success_message) in response.content.decode()


def test_errors_rerender_with_status_400_and_accessible_markup(newsletter):
    response = Client().post(url(), {"email": "ann@", "first_name": "Ann", "phone": "12",
                                     "form_token": token()})
    assert response.status_code == 400
    html = response.content.decode()
    assert str(newsletter.error_message) in html
    assert "esp-form__message--error" in html
    # Each error is tied to its field.
    assert 'aria-invalid="true" aria-describedby="esp-newsletter-email_error"' in html
    assert '<p class="esp-form__error" id="esp-newsletter-email_error">Enter a valid email' in html
    assert '<p class="esp-form__error" id="esp-newsletter-phone_error">Enter a valid phone ' \
        'number, e.g. +380501234567.</p>' in html
    # What was typed is kept.
    assert 'value="Ann"' in html
    assert not Submission.objects.exists()


def test_rerender_replaces_a_forged_token_but_keeps_a_young_one(newsletter):
    html = Client().post(url(), {"email": "bad", "form_token": "forged"}).content.decode()
    renewed = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    assert spam.check_token(renewed, "newsletter") in (None, "too_fast")
    young = spam.issue_token("newsletter")
    html = Client().post(url(), {"email": "bad", "form_token": young}).content.decode()
    assert f'value="{young}"' in html


# --- POST from the bundled script (JSON answers) --------------------------------------------

def test_json_success(newsletter):
    client, csrf = csrf_client_and_token()
    response = client.post(url(), {"email": "ann@example.com", "form_token": token()},
                           HTTP_X_CSRFTOKEN=csrf, **JS)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": str(newsletter.success_message),
                               "errors": {}}
    assert Submission.objects.count() == 1


def test_json_errors_are_keyed_by_input_name(sandbox_account):
    make_form(sandbox_account, "named", fields=[{"name": "given", "kind": FieldKind.FIRST_NAME,
                                                 "required": True}])
    response = Client().post(url("named"), {"email": "nope", "form_token": token("named")},
                             **JS)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"ok", "message", "errors"}
    assert body["ok"] is False
    assert set(body["errors"]) == {"email", "given"}


def test_accept_json_alone_is_enough(newsletter):
    response = Client().post(url(), {"email": "nope"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json()["errors"]["email"]


def test_json_post_without_csrf_is_refused(newsletter):
    client = Client(enforce_csrf_checks=True)
    response = client.post(url(), {"email": "ann@example.com", "form_token": token()}, **JS)
    assert response.status_code == 403


def test_schema_endpoint_gives_the_script_a_working_csrf_token(newsletter):
    """A fully cached page holds someone else's CSRF token; the script fetches its own."""
    client = Client(enforce_csrf_checks=True)
    schema = client.get(reverse("esp_forms:api_form", args=["newsletter"])).json()
    response = client.post(url(), {"email": "ann@example.com", "form_token": token()},
                           HTTP_X_CSRFTOKEN=schema["csrf_token"], **JS)
    assert response.status_code == 200
    assert response.json()["ok"] is True


def test_schema_with_csrf_0_leaves_the_cookie_alone(newsletter):
    """The script asks for the CSRF token once per page; its other fetches must not set a
    cookie, or parallel cookie-less fetches would overwrite each other's."""
    client = Client(enforce_csrf_checks=True)
    response = client.get(reverse("esp_forms:api_form", args=["newsletter"]) + "?csrf=0")
    assert response.json()["csrf_token"] == "" and response.json()["form_token"]
    assert "csrftoken" not in response.cookies
    asked = client.get(reverse("esp_forms:api_form", args=["newsletter"]))
    assert asked.json()["csrf_token"] and "csrftoken" in asked.cookies


# --- throttling -----------------------------------------------------------------------------

@override_settings(ESP_FORMS={"SUBMIT_THROTTLE": "1/min"})
def test_html_post_is_throttled(newsletter):
    client = Client()
    assert client.post(url(), {"email": "a@example.com", "form_token": token()}).status_code \
        == 200
    response = client.post(url(), {"email": "b@example.com", "first_name": "Bea",
                                    "form_token": token()})
    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many signups from your network" in html
    assert 'value="Bea"' in html  # nothing typed is lost
    assert int(response["Retry-After"]) > 0
    response = client.post(url(), {"email": "b@example.com"}, **JS)
    assert response.status_code == 429
    assert response.json()["message"].startswith("Too many signups")
    assert Submission.objects.count() == 1


@override_settings(ESP_FORMS={"SUBMIT_THROTTLE": "1/min"})
def test_html_and_api_share_one_allowance(newsletter):
    client = Client()
    client.post(url(), {"email": "a@example.com", "form_token": token()})
    response = client.post(reverse("esp_forms:api_submit", args=["newsletter"]),
                           {"email": "a@example.com", "form_token": token()},
                           content_type="application/json")
    assert response.status_code == 429
