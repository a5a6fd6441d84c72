"""The JSON API: schema, submissions (202/400/404/429), status."""

from __future__ import annotations

import json
import uuid
from unittest import mock

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from esp_forms import spam
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    FieldKind,
    OptinStatus,
    Submission,
)
from tests.conftest import make_form, token


@pytest.fixture
def client() -> Client:
    # The API must work without CSRF: enforce it, as a browser on another origin would.
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def rich_form(sandbox_account):
    return make_form(
        sandbox_account, "rich", consent_text="I agree.",
        fields=[
            {"name": "given", "kind": FieldKind.FIRST_NAME},
            {"name": "surname", "kind": FieldKind.LAST_NAME},
            {"name": "phone", "kind": FieldKind.PHONE},
            {"name": "company", "kind": FieldKind.TEXT, "help_text": "Where you work"},
            {"name": "topic", "kind": FieldKind.CHOICE, "choices": "news|News\ndeals|Deals",
             "required": True},
            {"name": "adult", "kind": FieldKind.CHECKBOX},
            {"name": "birthday", "kind": FieldKind.DATE},
        ])


def submit(client: Client, body, form_type: str = "newsletter", **extra):
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    extra.setdefault("content_type", "application/json")
    return client.post(reverse("esp_forms:api_submit", args=[form_type]), body, **extra)


def valid_rich(**overrides):
    body = {"email": "ann@example.com", "phone": "+380501234567", "first_name": "Ann",
            "last_name": "Lee", "fields": {"company": "ACME", "topic": "news", "adult": True,
                                           "birthday": "1990-04-25"},
            "consent": True, "form_token": token("rich")}
    body.update(overrides)
    return body


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"ok", "message", "errors"}
    assert body["ok"] is False
    assert isinstance(body["message"], str) and body["message"]
    return body


# --- schema ---------------------------------------------------------------------------------

def test_form_schema(client, rich_form):
    response = client.get(reverse("esp_forms:api_form", args=["rich"]))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["form_type"] == "rich"
    assert body["title"] == "Rich"
    assert body["consent_text"] == "I agree."
    assert body["submit_label"] == "Subscribe"
    assert body["honeypot_field"] == "website"
    assert body["submit_url"] == "http://testserver/api/esp-forms/forms/rich/submissions/"
    assert spam.check_token(body["form_token"], "rich") == "too_fast"  # fresh
    assert body["csrf_token"]
    fields = {f["name"]: f for f in body["fields"]}
    assert list(fields) == ["email", "given", "surname", "phone", "company", "topic", "adult",
                            "birthday"]
    assert fields["email"] == {"name": "email", "label": "Email", "kind": "email",
                               "required": True, "choices": [], "help_text": ""}
    assert fields["topic"]["choices"] == [{"value": "news", "label": "News"},
                                          {"value": "deals", "label": "Deals"}]
    assert fields["company"]["help_text"] == "Where you work"


def test_schema_token_is_issued_now(client, newsletter):
    url = reverse("esp_forms:api_form", args=["newsletter"])
    assert spam.check_token(client.get(url).json()["form_token"], "newsletter") == "too_fast"


@pytest.mark.parametrize("form_type", ["nope", "inactive"])
def test_schema_404(client, sandbox_account, form_type):
    make_form(sandbox_account, "inactive", is_active=False)
    body = assert_error_shape(client.get(reverse("esp_forms:api_form", args=[form_type])), 404)
    assert form_type in body["message"]


# --- 202 ------------------------------------------------------------------------------------

def test_valid_submission_is_stored_and_handed_off(client, rich_form,
                                                   django_capture_on_commit_callbacks):
    with mock.patch("esp_forms.tasks.deliver_submission.apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = submit(client, valid_rich(), "rich", REMOTE_ADDR="203.0.113.9",
                              HTTP_USER_AGENT="Test/2.0")
    assert response.status_code == 202
    body = response.json()
    assert body["ok"] is True
    assert body["message"] == rich_form.success_message
    assert body["delivery_status"] == "pending"
    assert body["optin_status"] == "unconfirmed"
    submission = Submission.objects.get()
    assert str(submission.pk) == body["id"]
    assert submission.email == "ann@example.com"
    assert submission.phone == "+380501234567"
    assert submission.data == {"first_name": "Ann", "last_name": "Lee", "company": "ACME",
                               "topic": "news", "adult": True, "birthday": "1990-04-25"}
    assert submission.ip == "203.0.113.9"
    assert submission.user_agent == "Test/2.0"
    assert submission.consent_text == "I agree."
    assert len(callbacks) == 1
    apply_async.assert_called_once()
    assert apply_async.call_args.args == ((str(submission.pk),),)


def test_broker_failure_still_answers_success(client, newsletter,
                                              django_capture_on_commit_callbacks):
    with mock.patch("esp_forms.tasks.deliver_submission.apply_async",
                    side_effect=OSError("Connection refused")):
        with django_capture_on_commit_callbacks(execute=True):
            response = submit(client, {"email": "ann@example.com", "form_token": token()})
    assert response.status_code == 202
    submission = Submission.objects.get()
    assert submission.delivery_status == DeliveryStatus.PENDING
    assert submission.events.filter(kind=EventKind.CREATED).exists()


def test_double_opt_in_off_answers_not_required(client, sandbox_account):
    make_form(sandbox_account, "direct", double_opt_in=DoubleOptIn.OFF)
    response = submit(client, {"email": "ann@example.com", "form_token": token("direct")},
                      "direct")
    assert response.status_code == 202
    assert response.json()["optin_status"] == "not_required"


def test_repeat_signup_answers_the_same_id(client, newsletter):
    first = submit(client, {"email": "ann@example.com", "form_token": token()}).json()
    second = submit(client, {"email": "ann@example.com", "form_token": token()}).json()
    assert first["id"] == second["id"]
    assert Submission.objects.count() == 1


def test_repeat_of_a_confirmed_subscriber_says_already_subscribed(client, newsletter):
    first = submit(client, {"email": "ann@example.com", "form_token": token()}).json()
    Submission.objects.filter(pk=first["id"]).update(
        delivery_status=DeliveryStatus.DELIVERED, optin_status=OptinStatus.CONFIRMED)
    second = submit(client, {"email": "ann@example.com", "form_token": token()}).json()
    assert second["message"] == newsletter.already_subscribed_message
    assert second["delivery_status"] == "delivered"


def test_empty_optional_standard_keys_are_accepted(client, sandbox_account):
    make_form(sandbox_account, "bare")
    response = submit(client, {"email": "ann@example.com", "phone": "", "first_name": None,
                               "fields": {}, "consent": False, "form_token": token("bare"),
                               "website": None},
                      "bare")
    assert response.status_code == 202


def test_numbers_are_accepted_for_text_fields(client, rich_form):
    body = valid_rich(fields={"company": 42, "topic": "news"})
    assert submit(client, body, "rich").status_code == 202
    assert Submission.objects.get().data["company"] == "42"


# --- 400 ------------------------------------------------------------------------------------

def test_invalid_email(client, newsletter):
    body = assert_error_shape(submit(client, {"email": "ann@", "form_token": token()}), 400)
    assert list(body["errors"]) == ["email"]
    assert body["errors"]["email"][0].startswith("Enter a valid email address.")
    assert body["message"] == newsletter.error_message
    assert not Submission.objects.exists()


def test_missing_email(client, newsletter):
    body = assert_error_shape(submit(client, {"form_token": token()}), 400)
    assert body["errors"] == {"email": ["Enter your email address."]}


def test_invalid_phone(client, newsletter):
    body = assert_error_shape(
        submit(client, {"email": "a@example.com", "phone": "12", "form_token": token()}), 400)
    assert body["errors"] == {"phone": ["Enter a valid phone number, e.g. +380501234567."]}


def test_oversized_fields(client, rich_form):
    body = assert_error_shape(submit(client, valid_rich(
        first_name="x" * 300, fields={"company": "y" * 2001, "topic": "news"}), "rich"), 400)
    assert set(body["errors"]) == {"first_name", "fields.company"}
    assert "at most 255" in body["errors"]["first_name"][0]


def test_wrong_choice_and_missing_required_and_consent(client, rich_form):
    body = assert_error_shape(submit(client, valid_rich(fields={"topic": "cars"},
                                                        consent=False), "rich"), 400)
    assert set(body["errors"]) == {"fields.topic", "consent"}
    assert body["errors"]["consent"] == ["Please tick this box to agree."]
    body = assert_error_shape(submit(client, valid_rich(fields={}), "rich"), 400)
    assert body["errors"] == {"fields.topic": ["This field is required."]}


def test_missing_consent_key(client, rich_form):
    payload = valid_rich()
    del payload["consent"]
    body = assert_error_shape(submit(client, payload, "rich"), 400)
    assert body["errors"] == {"consent": ["Please tick this box to agree."]}


def test_invalid_date(client, rich_form):
    body = assert_error_shape(submit(client, valid_rich(
        fields={"topic": "news", "birthday": "tomorrow"}), "rich"), 400)
    assert body["errors"] == {"fields.birthday": ["Enter a date as YYYY-MM-DD, e.g. 1990-04-25."]}


def test_unknown_keys_are_named_and_never_stored(client, newsletter):
    body = assert_error_shape(submit(client, {
        "email": "a@example.com", "form_token": token(), "lists": ["vip"], "tags": "x",
        "double_opt_in": "off", "fields": {"group": "vip"}}), 400)
    assert set(body["errors"]) == {"lists", "tags", "double_opt_in", "fields.group"}
    assert body["errors"]["lists"][0].startswith("Unknown field")
    assert "this form's fields are (none)" in body["errors"]["fields.group"][0]
    assert not Submission.objects.exists()


def test_standard_field_sent_under_fields_is_redirected(client, rich_form):
    body = assert_error_shape(submit(client, valid_rich(fields={"topic": "news",
                                                                "given": "Ann"}), "rich"), 400)
    assert body["errors"] == {"fields.given": ['Send this at the top level, as "first_name".']}


def test_standard_key_the_form_does_not_have(client, sandbox_account):
    make_form(sandbox_account, "bare")
    body = assert_error_shape(submit(client, {"email": "a@example.com", "phone": "+380501234567",
                                              "form_token": token("bare")}, "bare"), 400)
    assert body["errors"] == {"phone": ["This form has no phone field."]}


@pytest.mark.parametrize("payload, key, message", [
    ({"email": ["a@example.com"]}, "email", "Send this as a string."),
    ({"email": "a@example.com", "consent": "maybe"}, "consent", "Send true or false."),
    ({"email": "a@example.com", "fields": ["x"]}, "fields",
     "Send an object of field names and values."),
    ({"email": "a@example.com", "fields": {"adult": "perhaps", "topic": "news"}},
     "fields.adult", "Send true or false."),
    ({"email": "a@example.com", "fields": {"company": {"a": 1}, "topic": "news"}},
     "fields.company", "Send this as a string."),
])
def test_wrong_json_types(client, rich_form, payload, key, message):
    payload = {"consent": True, "form_token": token("rich"), **payload}
    body = assert_error_shape(submit(client, payload, "rich"), 400)
    assert body["errors"][key] == [message]


@pytest.mark.parametrize("raw, fragment", [
    ("{bad json", "not valid JSON"),
    ("", "empty"),
    ("[" * 100_000, "nested too deeply"),
    ('{"email": NaN}', "not valid JSON"),
    (b"\xff\xfe{}", "not valid utf-8"),
    ('["a@example.com"]', "must be a JSON object"),
    ('"a@example.com"', "must be a JSON object"),
])
def test_malformed_bodies(client, newsletter, raw, fragment):
    body = assert_error_shape(submit(client, raw), 400)
    assert fragment in body["message"]
    assert body["errors"]["non_field_errors"] == [body["message"]]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_too_large_body(client, newsletter):
    body = assert_error_shape(submit(client, {"email": "a@example.com", "pad": "x" * 2000}), 413)
    assert body["message"] == "The request body is too large (the limit is 1,000 bytes)."


def test_not_json_content_type(client, newsletter):
    body = assert_error_shape(submit(client, "email=a@example.com",
                                     content_type="application/x-www-form-urlencoded"), 415)
    assert "Content-Type: application/json" in body["message"]


def test_wrong_method(client, newsletter):
    body = assert_error_shape(client.get(reverse("esp_forms:api_submit",
                                                 args=["newsletter"])), 405)
    assert body["message"] == "This address does not accept GET requests."


def test_answers_json_whatever_the_accept_header(client, newsletter):
    response = submit(client, "{bad", HTTP_ACCEPT="text/html")
    assert_error_shape(response, 400)


# --- 404 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("form_type", ["missing", "inactive"])
def test_submit_404(client, sandbox_account, form_type):
    make_form(sandbox_account, "inactive", is_active=False)
    body = assert_error_shape(submit(client, {"email": "a@example.com", "form_token": token(
        form_type)}, form_type), 404)
    assert form_type in body["message"]


# --- 429 ------------------------------------------------------------------------------------

@override_settings(ESP_FORMS={"SUBMIT_THROTTLE": "2/min"})
def test_throttle_by_client_ip(client, newsletter):
    for _ in range(2):
        assert submit(client, {"email": "a@example.com", "form_token": token()}).status_code \
            == 202
    response = submit(client, {"email": "a@example.com", "form_token": token()})
    body = assert_error_shape(response, 429)
    assert body["message"].startswith("Too many signups from your network. Please try again in")
    assert int(response["Retry-After"]) > 0
    # Another client IP has its own allowance; a forged X-Forwarded-For does not help.
    assert submit(client, {"email": "b@example.com", "form_token": token()},
                  HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    assert submit(client, {"email": "b@example.com", "form_token": token()},
                  REMOTE_ADDR="198.51.100.1").status_code == 202


@override_settings(ESP_FORMS={"SUBMIT_THROTTLE": None})
def test_throttle_can_be_turned_off(client, newsletter):
    for _ in range(25):
        assert submit(client, {"email": "a@example.com", "form_token": token()}).status_code \
            == 202


# --- status ---------------------------------------------------------------------------------

def test_status_shows_statuses_only(client, newsletter):
    created = submit(client, {"email": "ann@example.com", "phone": "+380501234567",
                              "first_name": "Ann", "form_token": token()}).json()
    response = client.get(reverse("esp_forms:api_status", args=[created["id"]]))
    assert response.status_code == 200
    assert response.json() == {"id": created["id"], "form_type": "newsletter",
                               "delivery_status": "pending", "optin_status": "unconfirmed"}
    assert b"ann@example.com" not in response.content
    assert b"380501234567" not in response.content


def test_status_404(client, newsletter):
    body = assert_error_shape(client.get(reverse("esp_forms:api_status",
                                                 args=[uuid.uuid4()])), 404)
    assert body["message"] == "There is no submission with this id."


def test_status_of_a_malformed_id_is_a_plain_404(client):
    assert client.get("/api/esp-forms/submissions/not-a-uuid/").status_code == 404


def test_schema_carries_the_texts_around_the_fields_in_the_visitors_language(client, newsletter):
    url = reverse("esp_forms:api_form", args=["newsletter"])
    texts = client.get(url).json()["texts"]
    assert texts["required"] == "* required" and texts["sending"] == "Sending…"
    uk = client.get(url, HTTP_ACCEPT_LANGUAGE="uk").json()["texts"]
    assert uk["required"] == "* обов’язкові поля"
    assert set(uk) == set(texts) and all(uk.values())
