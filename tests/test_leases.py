"""Leases and everything else that writes a submission.

A worker holds a lease, not a lock, while it calls the provider, so webhooks, confirmation
clicks, reconciliation and erasure may change the row meanwhile. These tests prove that the
worker's outcome never overwrites what changed (an unsubscribe, a confirmation, an erasure),
that a confirmed row is always delivered eventually, and that reconciliation claims rows
through the outbox like any worker: no provider call inside a transaction, no leased row read.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from esp_forms import delivery, outbox
from esp_forms.models import OptinStatus
from esp_forms.providers.esputnik import ESputnikProvider
from tests.conftest import make_submission

pytestmark = pytest.mark.django_db(transaction=True)


def esputnik_unsubscribe(client, account, email: str):
    item = {"contactId": 1, "email": email, "activityStatus": "UNSUBSCRIBED", "messageId": 1,
            "messageInstanceId": 11, "messageTag": "news",
            "activityDateTime": (timezone.now() + timedelta(seconds=2)).isoformat()}
    auth = "Basic " + base64.b64encode(f"esp_forms:{account.webhook_secret}".encode()).decode()
    return client.post(reverse("esp_forms:webhook", args=["esputnik", account.pk]),
                       json.dumps([item]), content_type="application/json",
                       HTTP_AUTHORIZATION=auth)


def test_an_unsubscribe_arriving_during_the_delivery_call_is_not_undone(
        client, esputnik_form, monkeypatch):
    """The worker holds a lease and no lock during the call, so the unsubscribe is applied at
    once; the worker's finish must not write its stale opt-in status (unconfirmed) over it."""
    submission = make_submission(esputnik_form)
    real_subscribe = ESputnikProvider.subscribe
    answers = []

    def subscribe_while_person_unsubscribes(self, sub, *, confirmed):
        result = real_subscribe(self, sub, confirmed=confirmed)
        # The provider's answer is on its way back; meanwhile the person's unsubscribe of an
        # earlier mailing arrives (its time is after this signup).
        answers.append(esputnik_unsubscribe(client, esputnik_form.account, sub.email))
        return result

    monkeypatch.setattr(ESputnikProvider, "subscribe", subscribe_while_person_unsubscribes)
    assert delivery.deliver(submission.pk).status == "delivered"
    assert answers[0].status_code == 200, answers[0].content
    assert answers[0].json()["handled"] == ["unsubscribed:1"]
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.UNSUBSCRIBED
    assert submission.next_optin_check_at is None


# --- reconciliation on the outbox ----------------------------------------------------------------

def test_reconcile_calls_the_provider_outside_any_transaction(esputnik_form, monkeypatch):
    """No database lock or transaction is held while a provider is called (outbox.py): a row
    lock held for a whole read would make an unsubscribe webhook for that row time out."""
    from django.db import connection

    from esp_forms import reconcile

    submission = make_submission(esputnik_form)
    assert delivery.deliver(submission.pk).status == "delivered"
    real = ESputnikProvider.get_contact_status
    inside: list[bool] = []

    def spy(self, sub):
        inside.append(connection.in_atomic_block)
        return real(self, sub)

    monkeypatch.setattr(ESputnikProvider, "get_contact_status", spy)
    reconcile.reconcile_account(esputnik_form.account)
    assert inside == [False]


def test_reconcile_leaves_a_row_leased_by_a_worker_alone(esputnik_form, monkeypatch):
    """A row a worker holds the lease of (mid status read or delivery) is not read again."""
    from esp_forms import reconcile

    submission = make_submission(esputnik_form)
    assert delivery.deliver(submission.pk).status == "delivered"
    assert outbox.claim_one(submission.pk, owner="worker-1") is not None
    report = reconcile.reconcile_account(esputnik_form.account)
    assert report.checked == 0


def test_a_confirmation_click_while_the_sweeper_holds_the_row_still_gets_delivered(
        sandbox_account):
    """confirm() does not wait for the sweeper's lease: its delivery task finds the row leased
    (LOCKED, not retried), then the sweeper, deciding on its stale copy (unconfirmed), releases
    the row. The row must stay due, or nothing would ever deliver it."""
    from esp_forms import optin
    from esp_forms.models import DeliveryStatus, DoubleOptIn, Submission
    from tests.conftest import make_form

    form = make_form(sandbox_account, "local-news", double_opt_in=DoubleOptIn.LOCAL)
    submission = make_submission(form, "ann@example.com")
    owner = outbox.new_owner()
    assert outbox.claim(Submission.objects.filter(pk=submission.pk), owner=owner, limit=1)
    stale = Submission.objects.select_related("form__account").get(pk=submission.pk)
    optin.confirm(optin.make_token(submission), ip=None)  # the person clicks now
    # (the task confirm() queued on commit runs here: it finds the sweeper's lease)
    assert delivery.deliver(submission.pk).status == "locked"
    delivery.deliver_claimed(stale, owner=owner)  # the sweeper goes on with its copy
    row = Submission.objects.get(pk=submission.pk)
    assert row.optin_status == OptinStatus.CONFIRMED
    assert row.delivery_status == DeliveryStatus.DELIVERED or row.next_attempt_at is not None


def test_an_erasure_during_the_delivery_call_leaves_the_lease_and_the_outcome_is_dropped(
        esputnik_form):
    """Erasure on request does not take a worker's lease away (that worker would not know);
    the worker's finish, which would write the provider's answer (quoting the person) and
    "delivered" over "failed", records nothing and gives the lease back."""
    from esp_forms import consent
    from esp_forms.models import DeliveryStatus, Submission

    submission = make_submission(esputnik_form, "erase.me@example.com")
    owner = outbox.new_owner()
    stale = outbox.claim_one(submission.pk, owner=owner)
    assert stale is not None
    assert consent.erase("erase.me@example.com").submissions == 1
    row = Submission.objects.get(pk=submission.pk)
    assert (row.lease_owner, row.email) == (owner, "")
    assert delivery.deliver_claimed(stale, owner=owner).status == "lease-lost"
    row = Submission.objects.get(pk=submission.pk)
    assert row.delivery_status == DeliveryStatus.FAILED
    assert (row.email, row.lease_owner, row.lease_until) == ("", "", None)
    assert row.next_optin_check_at is None and row.purged_at is not None
    assert not row.events.filter(kind="delivered").exists()
    assert "erase.me" not in str(list(row.events.values_list("message", "data")))
