"""Provider webhooks: the recorded body shapes, authentication, order, replays and staleness.

Bodies come from tests/files (their public sources are in tests/files/README.md) or from the
emulator, relayed byte for byte with the headers it sent, so the view is tested on what the
providers (and the emulator standing in for them) really post.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from esp_forms import delivery, optin
from esp_forms.emulator.receiver import ReceivedHook
from esp_forms.models import EventKind, OptinStatus, Submission
from esp_forms.webhooks import (
    ESputnikWebhook,
    UniSenderWebhook,
    latest_moment,
    provider_time,
)
from tests.conftest import ESPUTNIK_KEY, UNISENDER_KEY, make_submission
from tests.provider_contract import load_payload

pytestmark = pytest.mark.django_db(transaction=True)


def delivered(form, email="olena@example.com", **kwargs) -> Submission:
    submission = make_submission(form, email, **kwargs)
    assert delivery.deliver(submission.pk).status == "delivered"
    submission.refresh_from_db()
    return submission


@pytest.fixture
def queued(monkeypatch):
    """Status reads the webhooks queued, as submission ids."""
    sent: list[str] = []
    monkeypatch.setattr(optin, "send_task", lambda task, pk, countdown=None: sent.append(str(pk)))
    return sent


def url(account, **query) -> str:
    path = reverse("esp_forms:webhook", args=[account.provider, account.pk])
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def post(client, account, body: bytes | str, **headers):
    return client.generic("POST", url(account), body, content_type="application/json",
                          **headers)


def relay(client, account, hook: ReceivedHook):
    """Post what the emulator sent, exactly: same bytes, same Authorization header."""
    extra = {}
    if "Authorization" in hook.headers:
        extra["HTTP_AUTHORIZATION"] = hook.headers["Authorization"]
    return post(client, account, hook.body, **extra)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def activity(email: str, status: str, at, **extra) -> dict:
    """One activity item in the recorded shape (tests/files/esputnik_activity_webhook.json)."""
    item = dict(load_payload("esputnik_activity_webhook.json", "items")[3])
    item.update(email=email, activityStatus=status, activityDateTime=at.isoformat(), **extra)
    return item


def md5_signed(raw: str, key: str) -> bytes:
    """UniSender's signature: MD5 of the body with the key in place of ``auth``."""
    assert '"auth":""' in raw
    digest = hashlib.md5(raw.replace('"auth":""', f'"auth":"{key}"', 1).encode()).hexdigest()
    return raw.replace('"auth":""', f'"auth":"{digest}"', 1).encode()


# --- parsing the recorded shapes --------------------------------------------------------------

def test_esputnik_activity_items_are_read_by_activity_status(esputnik_form, rf):
    items = load_payload("esputnik_activity_webhook.json", "items")
    handler = ESputnikWebhook(esputnik_form.account, rf.post("/"))
    events = handler.parse_events(items)
    assert [(e.email, e.name, e.kind) for e in events] == [
        ("olena@example.com", "DELIVERED", "receipt"),
        ("ivan@example.com", "UNDELIVERED", "receipt"),
        ("olena@example.com", "READ", "receipt"),
        ("olena@example.com", "UNSUBSCRIBED", "unsubscribe"),
        ("petro@example.com", "CLICKED", "receipt"),
        ("petro@example.com", "SPAM", "unsubscribe"),
    ]  # in the order of their own activityDateTime, not of the array
    # Second precision: taken as the latest moment of that second.
    assert events[0].at.replace(microsecond=0) == provider_time("2026-11-20T10:15:00")


@pytest.mark.parametrize(("text", "window"), [
    ("2026-11-20T10:15:00.250+02:00", timedelta(0)),
    ("2026-11-20T10:15:00Z", timedelta(seconds=1)),
    ("2026-11-20T10:15", timedelta(minutes=1)),
    ("2026-11-20 10:15:00", timedelta(seconds=1)),
])
def test_item_times_cover_their_precision(text, window):
    start = provider_time(text)
    assert start is not None and start.tzinfo is not None
    assert latest_moment(text) - start == max(window - timedelta(microseconds=1), timedelta(0))


@pytest.mark.parametrize("text", [None, "", "yesterday", 1700000000, "2026-13-45T99:00"])
def test_unreadable_item_times_are_none(text):
    assert latest_moment(text) is None


def test_esputnik_workflow_block_is_a_hint(esputnik_form, rf):
    body = load_payload("esputnik_workflow_webhook.json")
    [event] = ESputnikWebhook(esputnik_form.account, rf.post("/")).parse_events(body)
    assert (event.email, event.kind) == ("olena@example.com", "hint")
    assert "secret" not in event.data  # never written to the event log


def test_unisender_envelope_and_flat_form(unisender_form, rf):
    handler = UniSenderWebhook(unisender_form.account, rf.post("/"))
    events = handler.parse_events(load_payload("unisender_webhook_events_by_user.json"))
    assert [(e.email, e.name, e.kind) for e in events] == [
        ("ivan@example.com", "unsubscribe", "hint"),
        ("olena@example.com", "email_status", "receipt"),  # a delivery receipt: no read
        ("olena@example.com", "subscribe", "hint"),
    ]
    [flat] = handler.parse_events(load_payload("unisender_webhook_single_event.json"))
    assert (flat.email, flat.kind) == ("olena@example.com", "hint")
    assert "auth" not in flat.data


def test_malformed_bodies_change_nothing(client, esputnik_form, unisender_form, queued):
    account = esputnik_form.account
    answers = {}
    for body in (b"", b"null", b"[1, 2]", b'{"no": "email"}', b"\xff\xfe", b"[{\"email\": 5}]"):
        response = post(client, account, body,
                        HTTP_AUTHORIZATION=basic("x", account.webhook_secret))
        answers[body] = response.status_code
        if response.status_code == 200:
            assert response.json()["handled"] == []
    # Bytes that are no text at all are the sender's mistake (400, esp_forms.request_body);
    # well-formed JSON without an item we use is answered 200 so the provider does not resend it.
    assert answers.pop(b"\xff\xfe") == 400
    assert set(answers.values()) == {200}, answers
    assert queued == []


# --- the emulator sends the recorded shapes --------------------------------------------------

def test_emulator_activity_items_have_the_documented_fields(emulator, webhook_receiver,
                                                            esputnik_form):
    delivered(esputnik_form)
    emulator.set_esputnik_webhooks(ESPUTNIK_KEY, account_url=webhook_receiver.url)
    emulator.unsubscribe("esputnik", ESPUTNIK_KEY, "olena@example.com")
    emulator.send_webhook("esputnik", ESPUTNIK_KEY, "undelivered", "olena@example.com")
    items = {hook.json[0]["activityStatus"]: hook.json[0] for hook in webhook_receiver.wait(2)}
    unsubscribed, undelivered = items["UNSUBSCRIBED"], items["UNDELIVERED"]
    recorded = load_payload("esputnik_activity_webhook.json", "items")
    assert set(unsubscribed) == set(recorded[3])
    assert set(undelivered) == set(recorded[2])  # statusDescription for UNDELIVERED only
    assert unsubscribed["activityStatus"] == "UNSUBSCRIBED"
    assert isinstance(unsubscribed["contactId"], int)


def test_emulator_unisender_hooks_have_the_recorded_envelope(emulator, webhook_receiver,
                                                             unisender_form):
    import requests

    for single in ("0", "1"):
        requests.post(f"{emulator.url}/en/api/setHook", params={"format": "json"}, data={
            "api_key": UNISENDER_KEY, "hook_url": f"{webhook_receiver.url}/s{single}",
            "event_format": "json_post", "events[subscribe]": "*", "single_event": single},
            timeout=5).raise_for_status()
    delivered(unisender_form)
    emulator.confirm("unisender", UNISENDER_KEY, "olena@example.com")
    hooks = {hook.path: hook.json for hook in webhook_receiver.wait(2)}
    envelope, flat = hooks["/s0"], hooks["/s1"]
    recorded = load_payload("unisender_webhook_events_by_user.json")
    assert set(envelope) == set(recorded)
    assert set(envelope["events_by_user"][0]) == set(recorded["events_by_user"][0])
    assert set(envelope["events_by_user"][0]["events"][0]) == {"event_name", "event_time",
                                                               "event_data"}
    assert set(load_payload("unisender_webhook_single_event.json")) <= set(flat)


# --- authentication ---------------------------------------------------------------------------

def test_esputnik_basic_auth_from_the_emulator_is_accepted(client, emulator, webhook_receiver,
                                                          esputnik_form):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    emulator.set_esputnik_webhooks(ESPUTNIK_KEY, account_url=webhook_receiver.url,
                                   account_login="esp_forms",
                                   account_password=account.webhook_secret)
    emulator.unsubscribe("esputnik", ESPUTNIK_KEY, "olena@example.com")
    [hook] = webhook_receiver.wait(1)
    assert hook.headers["Authorization"] == basic("esp_forms", account.webhook_secret)
    response = relay(client, account, hook)
    assert response.status_code == 200, response.content
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED


@pytest.mark.parametrize("how", ["basic", "header", "body", "legacy-query"])
def test_esputnik_secret_channels(client, esputnik_form, queued, how):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    body = {"email": "olena@example.com", "contactId": submission.provider_contact_id}
    extra, path = {}, url(account)
    if how == "basic":
        extra["HTTP_AUTHORIZATION"] = basic("anyone", account.webhook_secret)
    elif how == "header":
        extra["HTTP_X_ESP_FORMS_SECRET"] = account.webhook_secret
    elif how == "body":
        body["secret"] = account.webhook_secret
    else:
        path = url(account, secret=account.webhook_secret)
    response = client.post(path, json.dumps(body), content_type="application/json", **extra)
    assert response.status_code == 200
    assert queued == [str(submission.pk)]


@pytest.mark.parametrize("auth", [None, basic("esp_forms", "wrong"), "Basic !!notbase64",
                                  "Bearer whatever", basic("esp_forms", "")])
def test_forged_esputnik_unsubscribe_changes_nothing(client, esputnik_form, auth, queued):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    body = json.dumps([activity("olena@example.com", "UNSUBSCRIBED",
                                timezone.now() + timedelta(minutes=1))])
    extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
    assert post(client, account, body, **extra).status_code == 400
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNCONFIRMED
    assert queued == []


def test_unisender_md5_over_the_raw_bytes(client, unisender_form, queued):
    submission = delivered(unisender_form)
    account = unisender_form.account
    payload = load_payload("unisender_webhook_single_event.json")
    payload["hook_url"] = "https://example.com/webhooks/"  # slashes, escaped as \/ below
    # PHP's json_encode escapes "/" as "\/": the signature covers these very bytes.
    raw = json.dumps(payload, separators=(",", ":")).replace("/", "\\/")
    signed = md5_signed(raw, UNISENDER_KEY)
    normalised = json.dumps(json.loads(signed), separators=(",", ":")).encode()
    assert normalised != signed  # re-serialising would lose the escapes (and the signature)
    response = post(client, account, signed)
    assert response.status_code == 200, response.content
    assert queued == [str(submission.pk)]
    # The same body re-serialised, or tampered with, is refused.
    assert post(client, account, normalised).status_code == 400
    assert post(client, account, signed.replace(b"olena", b"ivan_")).status_code == 400
    assert queued == [str(submission.pk)]


def test_unisender_envelope_from_the_emulator_is_accepted(client, emulator, webhook_receiver,
                                                         unisender_form, queued):
    import requests

    requests.post(f"{emulator.url}/en/api/setHook", params={"format": "json"}, data={
        "api_key": UNISENDER_KEY, "hook_url": webhook_receiver.url, "event_format": "json_post",
        "events[unsubscribe]": "*"}, timeout=5).raise_for_status()
    submission = delivered(unisender_form)
    emulator.unsubscribe("unisender", UNISENDER_KEY, "olena@example.com")
    [hook] = webhook_receiver.wait(1)
    response = relay(client, unisender_form.account, hook)
    assert response.status_code == 200, response.content
    assert queued == [str(submission.pk)]
    # The hook is a hint; the read it asked for applies the provider's truth.
    assert optin.refresh(submission.pk) == OptinStatus.UNSUBSCRIBED


def test_unisender_forged_or_unsigned_changes_nothing(client, unisender_form, queued):
    delivered(unisender_form)
    account = unisender_form.account
    raw = json.dumps(load_payload("unisender_webhook_events_by_user.json"), separators=(",", ":"))
    assert post(client, account, raw).status_code == 400  # empty auth
    assert post(client, account, md5_signed(raw, "not-the-key")).status_code == 400
    assert queued == []


# --- order, replays, staleness ----------------------------------------------------------------

def test_receipts_confirm_nobody_and_read_nothing(client, esputnik_form, queued):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    later = timezone.now() + timedelta(minutes=1)
    body = json.dumps([activity("olena@example.com", status, later)
                       for status in ("DELIVERED", "READ", "CLICKED", "UNDELIVERED")])
    response = post(client, account, body, HTTP_AUTHORIZATION=basic("x", account.webhook_secret))
    assert response.status_code == 200
    assert queued == []
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNCONFIRMED
    assert not submission.events.filter(kind=EventKind.WEBHOOK).exists()


@pytest.mark.parametrize("status", ["UNSUBSCRIBED", "SPAM"])
def test_unsubscribe_and_spam_are_applied_once(client, esputnik_form, status):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    body = json.dumps([activity("OLENA@example.com", status,
                                timezone.now() + timedelta(minutes=1))])
    auth = basic("x", account.webhook_secret)
    for _ in range(3):  # eSputnik repeats batches: applying is idempotent
        assert post(client, account, body, HTTP_AUTHORIZATION=auth).status_code == 200
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED
    assert submission.events.filter(kind=EventKind.UNSUBSCRIBED).count() == 1


def test_a_replayed_unsubscribe_never_undoes_a_later_signup(client, esputnik_form):
    account = esputnik_form.account
    first = delivered(esputnik_form)
    unsubscribed_at = timezone.now() + timedelta(seconds=1)
    body = json.dumps([activity("olena@example.com", "UNSUBSCRIBED", unsubscribed_at)])
    auth = basic("x", account.webhook_secret)
    assert post(client, account, body, HTTP_AUTHORIZATION=auth).status_code == 200
    # The person signs up again afterwards: a new submission (unsubscribed ones never collapse).
    second = delivered(esputnik_form, created_at=unsubscribed_at + timedelta(minutes=5))
    assert second.pk != first.pk
    response = post(client, account, body, HTTP_AUTHORIZATION=auth)  # the replay
    assert response.status_code == 200
    assert response.json()["handled"] == ["unsubscribed:0,newer-signup:1"]
    second.refresh_from_db()
    assert second.optin_status == OptinStatus.UNCONFIRMED


def test_a_stale_item_in_a_batch_applies_in_its_own_time_order(client, esputnik_form):
    account = esputnik_form.account
    now = timezone.now()
    old = delivered(esputnik_form, "old@example.com", created_at=now - timedelta(days=3))
    fresh = delivered(esputnik_form, "fresh@example.com", created_at=now - timedelta(hours=1))
    body = json.dumps([
        activity("fresh@example.com", "UNSUBSCRIBED", now - timedelta(days=2)),  # stale
        activity("old@example.com", "UNSUBSCRIBED", now - timedelta(days=2)),
    ])
    response = post(client, account, body, HTTP_AUTHORIZATION=basic("x", account.webhook_secret))
    assert response.json()["handled"] == ["unsubscribed:0,newer-signup:1", "unsubscribed:1"]
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.optin_status, fresh.optin_status) == (OptinStatus.UNSUBSCRIBED,
                                                      OptinStatus.UNCONFIRMED)


def test_a_replayed_unisender_hook_only_causes_a_read(client, emulator, unisender_form, queued):
    submission = delivered(unisender_form)
    emulator.confirm("unisender", UNISENDER_KEY, "olena@example.com")
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    # An old "unsubscribe" hook replayed later: a hint, and the provider says subscribed.
    payload = load_payload("unisender_webhook_events_by_user.json")
    payload["events_by_user"][0]["events"][2]["event_data"]["email"] = "olena@example.com"
    raw = json.dumps(payload, separators=(",", ":"))
    assert post(client, unisender_form.account, md5_signed(raw, UNISENDER_KEY)).status_code == 200
    assert queued == [str(submission.pk)]
    assert optin.refresh(submission.pk) == "unchanged"
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED


# --- the emulator's status answers have the recorded shapes ---------------------------------

def test_emulator_status_answers_have_the_recorded_shapes(emulator, esputnik_form,
                                                          unisender_form):
    from esp_forms.providers import get_provider

    es = delivered(esputnik_form)
    emulator.confirm("esputnik", ESPUTNIK_KEY, "olena@example.com")
    contact, _raw = get_provider(esputnik_form.account).get_contact(es.provider_contact_id)
    recorded = load_payload("esputnik_contact.json")
    assert set(recorded) <= set(contact)
    assert set(contact["groups"][0]) == set(recorded["groups"][0])

    us = delivered(unisender_form)
    emulator.confirm("unisender", UNISENDER_KEY, "olena@example.com")
    status = get_provider(unisender_form.account).get_contact_status(us)
    answer = status.raw["response"]["body"]
    recorded = load_payload("unisender_getcontact_email_lists.json")
    assert set(answer["result"]) == set(recorded["result"])
    assert set(answer["result"]["email"]) == set(recorded["result"]["email"])
    assert set(answer["result"]["email"]["lists"][0]) == set(
        recorded["result"]["email"]["lists"][0])
    assert status.optin_status == OptinStatus.CONFIRMED
