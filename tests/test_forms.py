"""The one validation (esp_forms.forms) and storing (esp_forms.submissions)."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.test import RequestFactory, override_settings
from django.utils import timezone

from esp_forms.forms import FormLayout, SignupSubmissionForm
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    FieldKind,
    OptinStatus,
    Submission,
)
from esp_forms.submissions import process_signup, store_submission, success_message
from tests.conftest import make_form, token


def bind(form, **data) -> SignupSubmissionForm:
    data.setdefault("form_token", token(form.form_type))
    return SignupSubmissionForm(form, data=data)


@pytest.fixture
def full_form(sandbox_account):
    return make_form(
        sandbox_account, "full", consent_text="I agree to receive the newsletter.",
        fields=[
            {"name": "given", "kind": FieldKind.FIRST_NAME, "required": True},
            {"name": "family", "kind": FieldKind.LAST_NAME},
            {"name": "mobile", "kind": FieldKind.PHONE},
            {"name": "company", "kind": FieldKind.TEXT},
            {"name": "topic", "kind": FieldKind.CHOICE, "choices": "news|News\ndeals|Deals",
             "required": True},
            {"name": "adult", "kind": FieldKind.CHECKBOX},
            {"name": "birthday", "kind": FieldKind.DATE},
        ])


VALID = {"email": "Ann.Lee@Example.COM", "given": "Ann", "family": "Lee",
         "mobile": "+380 50 123 45 67", "company": "ACME", "topic": "deals", "adult": "on",
         "birthday": "1990-04-25", "consent": "on"}


# --- normalisation --------------------------------------------------------------------------

def test_valid_submission_is_normalised(full_form):
    form = bind(full_form, **VALID)
    assert form.is_valid(), form.errors
    values = form.submission_values()
    # The domain is lower-cased, the local part kept as typed.
    assert values["email"] == "Ann.Lee@example.com"
    assert values["phone"] == "+380501234567"
    # Standard kinds are stored under the kind, whatever the FormField is called.
    assert values["data"] == {"first_name": "Ann", "last_name": "Lee", "company": "ACME",
                              "topic": "deals", "adult": True, "birthday": "1990-04-25"}


def test_optional_fields_left_empty_are_not_stored(full_form):
    form = bind(full_form, email="a@example.com", given="Ann", topic="news", consent="on")
    assert form.is_valid(), form.errors
    assert form.submission_values() == {"email": "a@example.com", "phone": "",
                                        "data": {"first_name": "Ann", "topic": "news",
                                                 "adult": False}}


@override_settings(ESP_FORMS={"PHONE_DEFAULT_REGION": "UA"})
def test_phone_default_region_allows_national_numbers(newsletter):
    form = bind(newsletter, email="a@example.com", phone="050 123 45 67")
    assert form.is_valid(), form.errors
    assert form.submission_values()["phone"] == "+380501234567"


# --- every error path ----------------------------------------------------------------------

@pytest.mark.parametrize("email, message", [
    ("not-an-email", "An email address must have an @-sign."),
    ("ann@localhost", "It should have a period."),
    ("ann@@example.com", "Enter a valid email address."),
])
def test_invalid_email(newsletter, email, message):
    form = bind(newsletter, email=email)
    assert not form.is_valid()
    assert message in form.errors["email"][0]


def test_missing_email(newsletter):
    form = bind(newsletter)
    assert not form.is_valid()
    assert form.errors["email"] == ["Enter your email address."]


def test_email_longer_than_254(newsletter):
    form = bind(newsletter, email="a" * 250 + "@example.com")
    assert not form.is_valid()
    assert "at most 254 characters" in form.errors["email"][0]


@pytest.mark.parametrize("phone", ["12345", "abc", "0501234567", "+380 12"])
def test_invalid_phone(newsletter, phone):
    form = bind(newsletter, email="a@example.com", phone=phone)
    assert not form.is_valid()
    assert form.errors["phone"] == ["Enter a valid phone number, e.g. +380501234567."]


def test_oversized_short_and_text_fields(full_form):
    data = {**VALID, "given": "x" * 256, "company": "y" * 2001}
    form = bind(full_form, **data)
    assert not form.is_valid()
    assert "at most 255 characters" in form.errors["given"][0]
    assert "at most 2000 characters" in form.errors["company"][0]


@override_settings(ESP_FORMS={"MAX_FIELD_LENGTH": 10, "MAX_TEXT_LENGTH": 20})
def test_length_limits_follow_the_settings(full_form):
    form = bind(full_form, **{**VALID, "given": "x" * 11, "company": "y" * 20})
    assert not form.is_valid()
    assert "at most 10 characters" in form.errors["given"][0]
    assert "company" not in form.errors


def test_wrong_choice(full_form):
    form = bind(full_form, **{**VALID, "topic": "cars"})
    assert not form.is_valid()
    assert form.errors["topic"] == [
        "Select a valid choice. cars is not one of the available choices."]


def test_missing_required_fields(full_form):
    form = bind(full_form, email="a@example.com", consent="on")
    assert not form.is_valid()
    assert set(form.errors) == {"given", "topic"}


def test_missing_consent(full_form):
    form = bind(full_form, **{**VALID, "consent": ""})
    assert not form.is_valid()
    assert form.errors["consent"] == ["Please tick this box to agree."]


def test_no_consent_field_without_consent_text(newsletter):
    assert "consent" not in SignupSubmissionForm(newsletter).fields


def test_invalid_date(full_form):
    form = bind(full_form, **{**VALID, "birthday": "25/04/1990"})
    assert not form.is_valid()
    assert form.errors["birthday"] == ["Enter a date as YYYY-MM-DD, e.g. 1990-04-25."]


def test_required_checkbox(sandbox_account):
    form_model = make_form(sandbox_account, "adults", fields=[
        {"name": "adult", "kind": FieldKind.CHECKBOX, "required": True}])
    form = bind(form_model, email="a@example.com")
    assert not form.is_valid()
    assert form.errors["adult"] == ["Please tick this box."]


def test_error_dict_uses_api_keys_when_asked(full_form):
    form = bind(full_form, email="bad", given="Ann", topic="cars", consent="on")
    assert not form.is_valid()
    assert set(form.error_dict()) == {"email", "topic"}
    assert set(form.error_dict(api=True)) == {"email", "fields.topic"}


# --- layout ---------------------------------------------------------------------------------

def test_field_named_like_an_internal_input_is_renamed(sandbox_account):
    form_model = make_form(sandbox_account, "clash", fields=[
        {"name": "website", "kind": FieldKind.TEXT}, {"name": "consent", "kind": FieldKind.TEXT}])
    layout = FormLayout(form_model)
    assert layout.by_api_key["fields.website"].html_name == "field:website"
    form = bind(form_model, email="a@example.com", **{"field:website": "https://a.example"})
    assert form.is_valid(), form.errors
    assert form.submission_values()["data"] == {"website": "https://a.example"}
    # The real honeypot stays empty, so this is not spam.
    assert form.spam_reason() is None


def test_form_without_email_field_still_asks_for_one(sandbox_account):
    form_model = make_form(sandbox_account, "broken")
    form_model.fields.all().delete()
    form = bind(form_model)
    assert not form.is_valid()
    assert form.errors["email"] == ["Enter your email address."]


def test_element_ids_use_the_uid(newsletter):
    form = SignupSubmissionForm(newsletter, uid="esp-newsletter-2")
    assert form["email"].id_for_label == "esp-newsletter-2-email"


# --- storing --------------------------------------------------------------------------------

def cleaned(email="ann@example.com", phone="", **data):
    return {"email": email, "phone": phone, "data": data}


def test_store_creates_row_with_consent_proof(sandbox_account, django_capture_on_commit_callbacks):
    form = make_form(sandbox_account, "consenting", consent_text="Yes, send me news.")
    with django_capture_on_commit_callbacks() as callbacks:
        submission, created = store_submission(form, cleaned(first_name="Ann"),
                                               ip="203.0.113.7", user_agent="Browser/1.0")
    assert created
    assert len(callbacks) == 1  # the delivery hand-off, after commit
    submission.refresh_from_db()
    assert submission.ip == "203.0.113.7"
    assert submission.user_agent == "Browser/1.0"
    assert submission.consent_text == "Yes, send me news."
    assert submission.created_at is not None
    assert submission.delivery_status == DeliveryStatus.PENDING
    assert submission.optin_status == OptinStatus.UNCONFIRMED
    assert submission.next_attempt_at is not None
    assert submission.data == {"first_name": "Ann"}
    assert list(submission.events.values_list("kind", flat=True)) == [EventKind.CREATED]


def test_optin_not_required_when_double_opt_in_is_off(sandbox_account):
    form = make_form(sandbox_account, "direct", double_opt_in=DoubleOptIn.OFF)
    submission, _created = store_submission(form, cleaned(), ip=None, user_agent="")
    assert submission.optin_status == OptinStatus.NOT_REQUIRED


def test_user_agent_is_truncated(newsletter):
    submission, _created = store_submission(newsletter, cleaned(), ip=None,
                                            user_agent="x" * 900)
    assert len(submission.user_agent) == 500


def test_repeat_signup_is_collapsed(newsletter, django_capture_on_commit_callbacks):
    first, created = store_submission(newsletter, cleaned(first_name="Ann"), ip=None,
                                      user_agent="")
    assert created
    with django_capture_on_commit_callbacks() as callbacks:
        second, created = store_submission(
            newsletter, cleaned("ANN@example.com", "+380501234567", first_name="Annie"),
            ip=None, user_agent="")
    assert not created
    assert second.pk == first.pk
    # Provider opt-in: a repeat does not queue a second delivery.
    assert callbacks == []
    first.refresh_from_db()
    assert first.data == {"first_name": "Annie"}
    assert first.phone == "+380501234567"
    assert Submission.objects.count() == 1
    collapsed = first.events.get(kind=EventKind.COLLAPSED)
    assert collapsed.data == {"changed": ["first_name", "phone"]}


@pytest.mark.parametrize("change", [
    {"delivery_status": DeliveryStatus.FAILED},
    {"optin_status": OptinStatus.UNSUBSCRIBED},
    {"created_at": timezone.now() - timedelta(days=2)},
])
def test_no_collapse_into_failed_unsubscribed_or_old(newsletter, change):
    first, _created = store_submission(newsletter, cleaned(), ip=None, user_agent="")
    Submission.objects.filter(pk=first.pk).update(**change)
    second, created = store_submission(newsletter, cleaned(), ip=None, user_agent="")
    assert created
    assert second.pk != first.pk


@override_settings(ESP_FORMS={"DUPLICATE_WINDOW": 0})
def test_duplicate_window_zero_never_collapses(newsletter):
    store_submission(newsletter, cleaned(), ip=None, user_agent="")
    _second, created = store_submission(newsletter, cleaned(), ip=None, user_agent="")
    assert created


def test_already_subscribed_message(newsletter):
    submission, _created = store_submission(newsletter, cleaned(), ip=None, user_agent="")
    assert success_message(newsletter, submission, True) == newsletter.success_message
    # Collapsed into one that is still pending: the normal message.
    assert success_message(newsletter, submission, False) == newsletter.success_message
    submission.delivery_status = DeliveryStatus.DELIVERED
    submission.optin_status = OptinStatus.CONFIRMED
    assert success_message(newsletter, submission, False) == \
        newsletter.already_subscribed_message


@pytest.mark.django_db(transaction=True)
def test_committed_row_and_broker_failure_keeps_it_pending(sandbox_account):
    """A real commit: the hand-off runs after it; a broker that is down changes nothing for the
    visitor and the row stays pending for the sweeper."""
    form = make_form(sandbox_account, "committed")
    bound = bind(form, email="ann@example.com")
    request = RequestFactory().post("/forms/committed/", REMOTE_ADDR="198.51.100.4",
                                    HTTP_USER_AGENT="UA/1")
    with mock.patch("esp_forms.tasks.deliver_submission.apply_async",
                    side_effect=ConnectionError("broker down")) as apply_async:
        outcome = process_signup(bound, request)
    assert outcome.ok and outcome.created
    apply_async.assert_called_once()
    assert not transaction.get_connection().in_atomic_block
    submission = Submission.objects.get()
    assert submission.delivery_status == DeliveryStatus.PENDING
    assert submission.ip == "198.51.100.4"
    assert submission.user_agent == "UA/1"
