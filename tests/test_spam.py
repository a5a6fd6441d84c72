"""Honeypot, signed render-time token, SpamCount, and decoy answers."""

from __future__ import annotations

import logging
import time
import uuid
from unittest import mock

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from esp_forms import spam
from esp_forms.models import SpamCount, Submission


def old_token(form_type: str = "newsletter", age: float = 10) -> str:
    return spam.issue_token(form_type, issued_at=time.time() - age)


def api_post(client: Client, body: dict, form_type: str = "newsletter"):
    return client.post(reverse("esp_forms:api_submit", args=[form_type]), body,
                       content_type="application/json")


def html_post(client: Client, data: dict, form_type: str = "newsletter", **headers):
    return client.post(reverse("esp_forms:form", args=[form_type]), data, **headers)


# --- the token ------------------------------------------------------------------------------

def test_token_older_than_min_fill_is_accepted():
    assert spam.check_token(old_token(), "newsletter") is None


def test_fresh_token_is_too_fast():
    assert spam.check_token(spam.issue_token("newsletter"), "newsletter") == "too_fast"


def test_token_from_the_future_is_too_fast():
    token = spam.issue_token("newsletter", issued_at=time.time() + 60)
    assert spam.check_token(token, "newsletter") == "too_fast"


def test_token_older_than_max_form_age_is_too_old():
    token = old_token(age=3 * 24 * 3600 + 5)
    assert spam.check_token(token, "newsletter") == "too_old"


@override_settings(ESP_FORMS={"MIN_FILL_SECONDS": 0, "MAX_FORM_AGE": 60})
def test_token_limits_follow_the_settings():
    assert spam.check_token(spam.issue_token("newsletter"), "newsletter") is None
    assert spam.check_token(old_token(age=61), "newsletter") == "too_old"


@pytest.mark.parametrize("token", [None, "", "garbage", 42,
                                   "eyJmIjoibmV3c2xldHRlciIsInQiOjF9:1aaaaa:forgedsignature"])
def test_missing_or_forged_token_is_bad(token):
    assert spam.check_token(token, "newsletter") == "bad_token"


def test_token_of_another_form_is_bad():
    assert spam.check_token(old_token("other"), "newsletter") == "bad_token"


def test_token_signed_with_another_salt_is_bad():
    from django.core import signing

    forged = signing.dumps({"f": "newsletter", "t": time.time() - 10}, salt="something-else")
    assert spam.check_token(forged, "newsletter") == "bad_token"


def test_honeypot(newsletter):
    assert spam.check_submission(newsletter, honeypot="http://spam.example",
                                 token=old_token()) == "honeypot"
    assert spam.check_submission(newsletter, honeypot=1, token=old_token()) == "honeypot"
    assert spam.check_submission(newsletter, honeypot="  ", token=old_token()) is None
    assert spam.check_submission(newsletter, honeypot=None, token=old_token()) is None


# --- counting -------------------------------------------------------------------------------

def test_count_spam_increments_per_form_reason_day(newsletter):
    spam.count_spam(newsletter, "honeypot")
    spam.count_spam(newsletter, "honeypot")
    spam.count_spam(newsletter, "too_fast")
    counts = dict(SpamCount.objects.values_list("reason", "count"))
    assert counts == {"honeypot": 2, "too_fast": 1}


def test_every_dropped_submission_is_logged_at_info_with_the_reason(newsletter, caplog):
    with caplog.at_level(logging.INFO, logger="esp_forms.spam"):
        spam.count_spam(newsletter, "too_fast")
        spam.count_spam(newsletter, "too_fast")  # today's row exists now: still logged
        spam.count_spam(newsletter, "honeypot")
    lines = [r.getMessage() for r in caplog.records if r.name == "esp_forms.spam"]
    assert lines[0] == (
        "Dropped a submission to form newsletter as spam (too_fast): its form_token was "
        "younger than MIN_FILL_SECONDS (2 s); an API client must wait that long between "
        "fetching the token and posting. It was answered like a success and not stored.")
    assert lines[1] == lines[0]
    assert "(honeypot): the honeypot field had a value." in lines[2]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_count_spam_survives_losing_the_create_race(newsletter):
    """Another request creates today's row between our UPDATE (0 rows) and our INSERT: the
    INSERT hits the unique constraint and the count falls back to the UPDATE."""
    from django.db.models.query import QuerySet

    SpamCount.objects.create(form=newsletter, reason="bad_token", count=1)
    real_update = QuerySet.update
    calls = []

    def stale_first_update(self, **kwargs):
        calls.append(kwargs)
        return 0 if len(calls) == 1 else real_update(self, **kwargs)

    with mock.patch.object(QuerySet, "update", stale_first_update):
        spam.count_spam(newsletter, "bad_token")
    assert len(calls) == 2
    assert SpamCount.objects.get(reason="bad_token").count == 2


# --- end to end: answered like a success, counted, not stored -------------------------------

SPAM_CASES = [
    ("honeypot", lambda: {"form_token": old_token(), "website": "http://spam.example"}),
    ("too_fast", lambda: {"form_token": spam.issue_token("newsletter")}),
    ("too_old", lambda: {"form_token": old_token(age=4 * 24 * 3600)}),
    ("bad_token", lambda: {"form_token": "forged"}),
    ("bad_token", lambda: {}),
]


@pytest.mark.parametrize("reason, extra", SPAM_CASES)
def test_api_spam_is_answered_like_success(newsletter, reason, extra):
    client = Client()
    response = api_post(client, {"email": "bot@example.com", **extra()})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"ok", "message", "id", "delivery_status", "optin_status"}
    assert body["ok"] is True
    assert body["message"] == newsletter.success_message
    assert body["delivery_status"] == "pending"
    assert body["optin_status"] == "unconfirmed"
    assert not Submission.objects.exists()
    assert SpamCount.objects.get(form=newsletter, reason=reason).count == 1
    # The decoy id reads like a pending submission, so the status endpoint does not tell.
    status = client.get(reverse("esp_forms:api_status", args=[body["id"]]))
    assert status.status_code == 200
    assert status.json() == {"id": body["id"], "form_type": "newsletter",
                             "delivery_status": "pending", "optin_status": "unconfirmed"}


@pytest.mark.parametrize("reason, extra", SPAM_CASES)
def test_html_spam_is_answered_like_success(newsletter, reason, extra):
    response = html_post(Client(), {"email": "bot@example.com", **extra()})
    assert response.status_code == 200
    assert str(newsletter.success_message) in response.content.decode()
    assert not Submission.objects.exists()
    assert SpamCount.objects.get(form=newsletter, reason=reason).count == 1


def test_html_spam_json_answer_is_the_success_answer(newsletter):
    response = html_post(Client(), {"email": "bot@example.com", "website": "x",
                                    "form_token": old_token()},
                         HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": str(newsletter.success_message),
                               "errors": {}}
    assert not Submission.objects.exists()


def test_spam_redirects_like_success(sandbox_account):
    from tests.conftest import make_form

    make_form(sandbox_account, "redirecting", redirect_url="/thanks/")
    response = html_post(Client(), {"email": "bot@example.com", "form_token": "forged"},
                         form_type="redirecting")
    assert response.status_code == 302
    assert response["Location"] == "/thanks/"


def test_invalid_input_is_reported_even_with_a_bad_token(newsletter):
    """Validation comes first: a person who typed a wrong email learns it, spam or not."""
    response = api_post(Client(), {"email": "nope", "form_token": "forged"})
    assert response.status_code == 400
    assert not SpamCount.objects.exists()


# --- decoy ids ------------------------------------------------------------------------------

def test_decoy_ids_look_like_uuid4_and_carry_the_form(newsletter):
    ids = {spam.decoy_submission_id(newsletter) for _ in range(50)}
    assert len(ids) == 50
    for value in ids:
        assert value.version == 4
        assert value.variant == uuid.RFC_4122
        assert spam.decoy_form_pk(value) == newsletter.pk


def test_random_uuid_is_not_a_decoy():
    assert spam.decoy_form_pk(uuid.uuid4()) is None


def test_tampered_decoy_is_not_a_decoy(newsletter):
    raw = bytearray(spam.decoy_submission_id(newsletter).bytes)
    raw[10] ^= 0xFF
    assert spam.decoy_form_pk(uuid.UUID(bytes=bytes(raw))) is None
