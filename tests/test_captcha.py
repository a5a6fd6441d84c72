"""CAPTCHA per form: rendered in the HTML form and the API schema, verified server-side against a
local stand-in of the Turnstile and hCaptcha siteverify endpoints (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import re

import pytest
from django.core.checks import run_checks
from django.test import Client, override_settings
from django.urls import reverse

from esp_forms.models import Captcha, SpamCount, Submission
from tests.captcha_standin import SECRET
from tests.conftest import make_form, token

pytestmark = pytest.mark.django_db


@pytest.fixture
def turnstile_form(sandbox_account):
    return make_form(sandbox_account, "guarded", captcha=Captcha.TURNSTILE)


@pytest.fixture
def hcaptcha_form(sandbox_account):
    return make_form(sandbox_account, "hguarded", captcha=Captcha.HCAPTCHA)


def api_submit(form_type: str, **body):
    body.setdefault("form_token", token(form_type))
    return Client().post(reverse("esp_forms:api_submit", args=[form_type]), json.dumps(body),
                         content_type="application/json", REMOTE_ADDR="198.51.100.20")


def html_submit(form_type: str, data: dict):
    data = {"form_token": token(form_type), **data}
    return Client().post(reverse("esp_forms:form", args=[form_type]), data,
                         HTTP_X_REQUESTED_WITH="XMLHttpRequest", HTTP_ACCEPT="application/json",
                         REMOTE_ADDR="198.51.100.21")


def test_forms_without_captcha_never_call_a_verifier(newsletter, captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        assert api_submit("newsletter", email="a@example.com").status_code == 202
    assert captcha_standin.requests == []


@pytest.mark.parametrize("answer", [0, True, ["pass"], {"a": 1}])
def test_a_captcha_answer_that_is_no_string_is_refused(newsletter, answer):
    """Schemathesis found "captcha": 0 accepted by a form without a CAPTCHA."""
    response = api_submit("newsletter", email="a@example.com", captcha=answer)
    assert response.status_code == 400
    assert response.json()["errors"]["captcha"] == ["Send this as a string."]
    assert not Submission.objects.exists()


def test_html_form_renders_the_turnstile_widget_and_its_script_once(turnstile_form,
                                                                    captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        html = Client().get(reverse("esp_forms:form", args=["guarded"])).content.decode()
    assert '<div class="esp-form__captcha cf-turnstile" data-sitekey="ts-site"></div>' in html
    assert html.count(captcha_standin.script_url("turnstile")) == 1


def test_api_schema_describes_the_captcha(hcaptcha_form, newsletter, captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        schema = Client().get(reverse("esp_forms:api_form", args=["hguarded"])).json()
        plain = Client().get(reverse("esp_forms:api_form", args=["newsletter"])).json()
    assert schema["captcha"] == {
        "provider": "hcaptcha", "site_key": "hc-site",
        "script_url": captcha_standin.script_url("hcaptcha"),
        "response_field": "h-captcha-response", "widget_class": "h-captcha"}
    assert plain["captcha"] is None


def test_turnstile_answer_verified_through_the_api(turnstile_form, captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        response = api_submit("guarded", email="ann@example.com", captcha="pass-1")
    assert response.status_code == 202, response.content
    [call] = captcha_standin.requests
    assert call.path == "/turnstile/siteverify"
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.fields == {"secret": SECRET, "response": "pass-1", "remoteip": "198.51.100.20"}
    assert Submission.objects.filter(email="ann@example.com").exists()


def test_hcaptcha_answer_verified_through_the_html_form(hcaptcha_form, captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        response = html_submit("hguarded", {"email": "bo@example.com",
                                            "h-captcha-response": "pass-2"})
    assert response.status_code == 200 and response.json()["ok"] is True
    [call] = captcha_standin.requests
    assert call.path == "/hcaptcha/siteverify"
    assert call.fields == {"secret": SECRET, "response": "pass-2", "remoteip": "198.51.100.21",
                           "sitekey": "hc-site"}


@pytest.mark.parametrize("answer", [None, "", "wrong-token"])
def test_missing_or_wrong_answer_is_refused_with_a_clear_message(turnstile_form,
                                                                captcha_standin, answer):
    body = {"email": "cy@example.com"}
    if answer is not None:
        body["captcha"] = answer
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        response = api_submit("guarded", **body)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "captcha": ["Please complete the CAPTCHA check and try again."]}
    assert not Submission.objects.exists()
    assert SpamCount.objects.get(reason="captcha_failed").count == 1
    # An empty answer never costs a verifier call.
    assert len(captcha_standin.requests) == (1 if answer else 0)


def test_a_replayed_answer_is_refused(turnstile_form, captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        assert api_submit("guarded", email="d1@example.com", captcha="pass-r").status_code == 202
        assert api_submit("guarded", email="d2@example.com", captcha="pass-r").status_code == 400


def test_field_errors_do_not_spend_the_answer(turnstile_form, captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        response = api_submit("guarded", email="not-an-email", captcha="pass-keep")
        assert response.status_code == 400 and "email" in response.json()["errors"]
        assert captcha_standin.requests == []
        assert api_submit("guarded", email="e@example.com", captcha="pass-keep"
                          ).status_code == 202


@pytest.mark.parametrize("mode", ["down", "garbage", "slow"])
def test_verifier_down_fails_closed_with_a_try_again_message(turnstile_form, captcha_standin,
                                                             mode):
    captcha_standin.mode = mode
    captcha_standin.delay = 2.0  # past CAPTCHA_TIMEOUT (1 s in the stand-in's settings)
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        response = api_submit("guarded", email="f@example.com", captcha="pass-3")
        page = html_submit("guarded", {"email": "f@example.com",
                                       "cf-turnstile-response": "pass-4"})
    assert response.status_code == 503 and page.status_code == 503
    message = "We could not check the CAPTCHA just now. Please try again in a moment."
    assert response.json()["message"] == message and page.json()["message"] == message
    assert not Submission.objects.exists()
    assert SpamCount.objects.get(reason="captcha_down").count == 2


def test_verifier_down_can_fail_open(turnstile_form, captcha_standin):
    captcha_standin.mode = "down"
    with override_settings(ESP_FORMS=captcha_standin.settings(CAPTCHA_FAIL_OPEN=True)):
        response = api_submit("guarded", email="g@example.com", captcha="pass-5")
    assert response.status_code == 202
    assert Submission.objects.filter(email="g@example.com").exists()
    assert SpamCount.objects.get(reason="captcha_down").count == 1


def test_verifier_unreachable_port(turnstile_form, captcha_standin):
    settings = captcha_standin.settings(TURNSTILE_VERIFY_URL="http://127.0.0.1:9/siteverify")
    with override_settings(ESP_FORMS=settings):
        assert api_submit("guarded", email="h@example.com", captcha="pass-6").status_code == 503


def test_html_form_without_javascript_shows_the_error(turnstile_form, captcha_standin):
    with override_settings(ESP_FORMS=captcha_standin.settings()):
        response = Client().post(reverse("esp_forms:form", args=["guarded"]),
                                 {"email": "i@example.com", "form_token": token("guarded"),
                                  "cf-turnstile-response": "nope"})
    assert response.status_code == 400
    assert "Please complete the CAPTCHA check and try again." in response.content.decode()
    assert re.search(r'value="i@example.com"', response.content.decode())


def test_system_check_wants_the_keys(turnstile_form):
    with override_settings(ESP_FORMS={}):
        errors = [m for m in run_checks(databases=["default"]) if m.id == "esp_forms.E016"]
    assert len(errors) == 1 and "guarded" in errors[0].msg
    assert "TURNSTILE_SITE_KEY" in errors[0].msg and "TURNSTILE_SECRET_KEY" in errors[0].msg


def test_system_checks_for_the_hook_and_the_mailbox_budget():
    with override_settings(ESP_FORMS={"PRE_SEND_HOOK": "tests.nowhere.hook",
                                      "MAILBOX_BUDGET": None}):
        ids = {m.id for m in run_checks()}
    assert {"esp_forms.E017", "esp_forms.W014"} <= ids
    with override_settings(ESP_FORMS={"PRE_SEND_HOOK": "tests.test_abuse.deny_example_org"}):
        ids = {m.id for m in run_checks()}
    assert not ids & {"esp_forms.E017", "esp_forms.W014"}


@pytest.mark.parametrize(("name", "value"), [
    ("MAILBOX_BUDGET", "1"), ("MAILBOX_BUDGET", -1), ("FORM_HOURLY_BUDGET", 2.5),
    ("MAILBOX_BUDGET_WINDOW", 0), ("MAILBOX_BUDGET_WINDOW", None), ("CAPTCHA_TIMEOUT", "5"),
])
def test_system_check_for_bad_budget_settings(name, value):
    with override_settings(ESP_FORMS={name: value}):
        errors = [m for m in run_checks() if m.id == "esp_forms.E018"]
    assert len(errors) == 1 and name in errors[0].msg


def test_default_settings_pass_the_abuse_checks():
    with override_settings(ESP_FORMS={}):
        ids = {m.id for m in run_checks()}
    assert not ids & {"esp_forms.E016", "esp_forms.E017", "esp_forms.E018", "esp_forms.W014"}
