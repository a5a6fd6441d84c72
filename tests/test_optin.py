"""Double opt-in tracking: polling, webhooks as hints, the local link, expiry."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail, signing
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from esp_forms import delivery, optin, signals
from esp_forms.models import DeliveryStatus, DoubleOptIn, EventKind, OptinStatus, Submission
from tests.conftest import ESPUTNIK_KEY, UNISENDER_KEY, make_submission

pytestmark = pytest.mark.django_db(transaction=True)


def delivered(form, email="olena@example.com") -> Submission:
    submission = make_submission(form, email)
    assert delivery.deliver(submission.pk).status == "delivered"
    submission.refresh_from_db()
    return submission


@pytest.fixture
def queued(monkeypatch):
    """Tasks the code queued after commit, as (task name, submission id)."""
    sent = []
    monkeypatch.setattr(optin, "send_task",
                        lambda task, pk, countdown=None: sent.append((task.name, str(pk))))
    return sent


def webhook_url(account, **query) -> str:
    url = reverse("esp_forms:webhook", args=[account.provider, account.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


# --- polling ----------------------------------------------------------------------------------

def test_esputnik_confirmed_through_polling(esputnik_form, emulator):
    confirmed = []
    signals.optin_confirmed.connect(lambda **kw: confirmed.append(kw["submission"].pk),
                                    weak=False, dispatch_uid="t-confirmed")
    try:
        submission = delivered(esputnik_form)
        assert optin.refresh(submission.pk) == "unchanged"
        submission.refresh_from_db()
        assert submission.optin_status == OptinStatus.UNCONFIRMED
        assert submission.next_optin_check_at > timezone.now()
        emulator.confirm("esputnik", ESPUTNIK_KEY, "olena@example.com", group="Confirmed")
        Submission.objects.filter(pk=submission.pk).update(next_optin_check_at=timezone.now())
        assert optin.poll_due() == {"confirmed": 1}
    finally:
        signals.optin_confirmed.disconnect(dispatch_uid="t-confirmed")
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED and submission.confirmed_at
    assert confirmed == [submission.pk]
    # Settled: polling leaves it alone.
    assert optin.poll_due() == {}
    paths = [r.path for r in emulator.requests("esputnik") if r.method == "GET"]
    assert paths == [f"/api/v1/contact/{submission.provider_contact_id}"] * 2


def test_unisender_confirmed_then_unsubscribed(unisender_form, emulator):
    submission = delivered(unisender_form)
    assert optin.refresh(submission.pk) == "unchanged"
    emulator.confirm("unisender", UNISENDER_KEY, "olena@example.com")
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    emulator.unsubscribe("unisender", UNISENDER_KEY, "olena@example.com")
    assert optin.refresh(submission.pk) == OptinStatus.UNSUBSCRIBED
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED and submission.unsubscribed_at
    kinds = list(submission.events.values_list("kind", flat=True))
    assert EventKind.CONFIRMED in kinds and EventKind.UNSUBSCRIBED in kinds


def test_polling_backs_off_with_age(esputnik_form, emulator):
    submission = delivered(esputnik_form)
    Submission.objects.filter(pk=submission.pk).update(
        created_at=timezone.now() - timedelta(days=8))
    submission.refresh_from_db()
    assert optin.next_check_delay(submission) == 24 * 3600  # capped
    Submission.objects.filter(pk=submission.pk).update(created_at=timezone.now())
    submission.refresh_from_db()
    assert optin.next_check_delay(submission) == 300


def test_polling_stops_at_the_rate_limit(esputnik_form, emulator):
    esputnik_form.account.rate_limit_per_minute = 2
    esputnik_form.account.save()
    subs = [delivered(esputnik_form, f"p{i}@example.com") for i in range(2)]
    Submission.objects.filter(pk__in=[s.pk for s in subs]).update(
        next_optin_check_at=timezone.now())
    # Both deliveries used the two slots: polling waits instead of exceeding the limit.
    assert optin.poll_due() == {"throttled": 1}
    assert len(emulator.requests("esputnik")) == 2


def test_expiry(esputnik_form, emulator):
    submission = delivered(esputnik_form)
    Submission.objects.filter(pk=submission.pk).update(
        created_at=timezone.now() - timedelta(days=31))
    out = StringIO()
    call_command("esp_forms_refresh", stdout=out)
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.EXPIRED
    assert "expired" in out.getvalue()


# --- webhooks ---------------------------------------------------------------------------------

def test_esputnik_workflow_webhook_is_a_hint_that_is_verified(client, esputnik_form, emulator,
                                                              queued):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    body = {"email": "olena@example.com", "contactId": submission.provider_contact_id,
            "secret": account.webhook_secret}
    # The hint arrives before the provider shows the contact as confirmed: nothing changes.
    response = client.post(webhook_url(account), json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 200
    assert queued == [("esp_forms.refresh_optin", str(submission.pk))]
    assert optin.refresh(submission.pk) == "unchanged"
    emulator.confirm("esputnik", ESPUTNIK_KEY, "olena@example.com")
    client.post(webhook_url(account), json.dumps(body), content_type="application/json")
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    assert submission.events.filter(kind=EventKind.WEBHOOK).count() == 2


@pytest.mark.parametrize("secret", [None, "", "wrong"])
def test_forged_webhook_changes_nothing(client, esputnik_form, emulator, secret, queued):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    body = {"email": "olena@example.com", "contactId": submission.provider_contact_id}
    if secret is not None:
        body["secret"] = secret
    response = client.post(webhook_url(account), json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 400
    assert queued == []
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNCONFIRMED
    assert not submission.events.filter(kind=EventKind.WEBHOOK).exists()


def test_esputnik_unsubscribe_activity(client, esputnik_form, emulator):
    submission = delivered(esputnik_form)
    account = esputnik_form.account
    body = [{"contactId": 1, "email": "OLENA@example.com", "activityStatus": "UNSUBSCRIBED",
             "messageId": 1, "messageInstanceId": 11, "messageTag": "news",
             "activityDateTime": (timezone.now() + timedelta(seconds=5)).isoformat()}]
    # The legacy ?secret= URL of older setups still works.
    response = client.post(webhook_url(account, secret=account.webhook_secret),
                           json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED
    # Idempotent: the provider's retry changes nothing more.
    client.post(webhook_url(account, secret=account.webhook_secret), json.dumps(body),
                content_type="application/json")
    assert submission.events.filter(kind=EventKind.UNSUBSCRIBED).count() == 1


def test_unisender_webhook_with_md5_auth(client, unisender_form, emulator):
    submission = delivered(unisender_form)
    account = unisender_form.account
    emulator.confirm("unisender", UNISENDER_KEY, "olena@example.com")
    payload = {"auth": UNISENDER_KEY, "event_name": "subscribe", "email": "olena@example.com",
               "event_time": "2026-11-25 10:00:00", "list_id": 555777}
    raw = json.dumps(payload)
    signed = raw.replace(UNISENDER_KEY, hashlib.md5(raw.encode()).hexdigest())
    with_refresh = []
    response = client.post(webhook_url(account), signed, content_type="application/json")
    assert response.status_code == 200, response.content
    with_refresh.append(optin.refresh(submission.pk))
    assert with_refresh == [OptinStatus.CONFIRMED]


def test_unisender_webhook_bad_md5_rejected(client, unisender_form, emulator):
    account = unisender_form.account
    payload = {"auth": "0" * 32, "event_name": "unsubscribe", "email": "olena@example.com"}
    response = client.post(webhook_url(account), json.dumps(payload),
                           content_type="application/json")
    assert response.status_code == 400


def test_webhook_unknown_event_and_url_checks(client, unisender_form):
    account = unisender_form.account
    assert client.get(webhook_url(account)).status_code == 200  # provider's URL check
    response = client.post(webhook_url(account, secret=account.webhook_secret),
                           json.dumps({"event_name": "campaign_status", "status": "completed"}),
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["handled"] == []
    assert client.post(f"/webhooks/unisender/{account.pk + 99}/").status_code == 404
    assert client.post(f"/webhooks/mailchimp/{account.pk}/").status_code == 404
    assert client.put(webhook_url(account)).status_code == 405


# --- local double opt-in ----------------------------------------------------------------------

@pytest.fixture
def local_form(esputnik_form):
    esputnik_form.double_opt_in = DoubleOptIn.LOCAL
    esputnik_form.save()
    return esputnik_form


def link_from(message) -> str:
    return re.search(r"http://\S+/confirm/\S+/", message.body).group(0)


def test_local_confirmation_loop(client, local_form, emulator):
    submission = make_submission(local_form, next_attempt_at=None)
    with override_settings(ESP_FORMS={"SITE_URL": "http://testserver"}):
        assert optin.send_confirmation(submission.pk) == "sent"
    assert optin.send_confirmation(submission.pk) == "cooldown"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["olena@example.com"] and "Confirm" in message.alternatives[0][0]
    path = link_from(message).removeprefix("http://testserver")

    page = client.get(path)  # a mail scanner opening the link confirms nobody
    assert page.status_code == 200 and b"Confirm my subscription" in page.content
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNCONFIRMED

    response = client.post(path, REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 200 and b"Subscription confirmed" in response.content
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED
    assert submission.confirm_ip == "198.51.100.4"
    assert client.post(path).status_code == 200  # a second click is fine

    assert delivery.deliver(submission.pk).status == "delivered"
    request = emulator.last_request("esputnik")
    assert (request.method, request.path) in {("POST", "/api/v1/contacts"),
                                              ("GET", "/api/v1/contacts")}
    posted = [r for r in emulator.requests("esputnik") if r.method == "POST"]
    assert [r.path for r in posted] == ["/api/v1/contacts"]
    assert posted[0].json["dedupeOn"] == "email"


def test_forged_and_expired_links(client, local_form):
    submission = make_submission(local_form)
    assert client.get("/confirm/not-a-token/").status_code == 404
    assert client.post("/confirm/not-a-token/").status_code == 400
    token = optin.make_token(submission)
    with override_settings(ESP_FORMS={"CONFIRMATION_MAX_AGE": -1}):
        response = client.post(f"/confirm/{token}/")
    assert response.status_code == 400 and b"expired" in response.content
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNCONFIRMED
    with pytest.raises(signing.BadSignature):
        optin.read_token(token[:-2] + "xx")


def test_expired_submission_cannot_be_confirmed(client, local_form):
    submission = make_submission(local_form, optin_status=OptinStatus.EXPIRED)
    response = client.post(f"/confirm/{optin.make_token(submission)}/")
    assert response.status_code == 400
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.EXPIRED
    assert submission.delivery_status == DeliveryStatus.PENDING


def test_resend_action_respects_cooldown(local_form):
    submission = make_submission(local_form)
    qs = Submission.objects.filter(pk=submission.pk)
    assert optin.resend_confirmations(qs) == 1
    assert optin.resend_confirmations(qs) == 0
    Submission.objects.filter(pk=submission.pk).update(
        confirmation_sent_at=timezone.now() - timedelta(hours=1))
    assert optin.resend_confirmations(qs) == 1
    assert len(mail.outbox) == 2
