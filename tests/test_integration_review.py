"""Integration review: where the merged branches meet (leases vs. row locks, gate vs. outbox).

Each test here shows one integration bug found after merging; it fails until the bug is fixed.
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
    """i8's webhook waits for a *row lock* to be sure no worker is mid-delivery; since i12 a
    worker holds a *lease* and no lock during the call, so the unsubscribe is applied at once,
    and the worker's finish then writes its stale optin_status (unconfirmed) over it."""
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


# --- i9b's block counters read by i10a's dashboard and metrics ---------------------------------

def test_a_held_signup_is_counted_once_on_the_dashboard_not_also_as_spam(newsletter):
    """abuse.hold() counts its reason in SpamCount (i9b); the dashboard and the metrics sum
    every SpamCount row as "spam" (i10a), so one held signup shows as held AND spam."""
    from esp_forms import abuse, stats

    submission = make_submission(newsletter, "held@example.com")
    abuse.hold(submission, "mailbox_budget", detail="test")
    [series] = stats.signups_per_day([newsletter], days=1)
    counts = {key: sum(values) for key, values in series.counts.items() if sum(values)}
    assert counts == {"held": 1}


def test_held_signups_are_not_the_delivery_queue(newsletter):
    """A held row waits for an admin, not for a worker: it must not age "oldest pending" (the
    queue-health card and esp_forms_queue_oldest_pending_age_seconds)."""
    from esp_forms import abuse, stats

    submission = make_submission(newsletter, "held@example.com",
                                 created_at=timezone.now() - timedelta(days=2))
    abuse.hold(submission, "form_budget", detail="test")
    health = stats.queue_health()
    assert health.pending == 0
    assert health.oldest_pending_seconds == 0


# --- i8's reconciliation on i12's outbox --------------------------------------------------------

def test_reconcile_calls_the_provider_outside_any_transaction(esputnik_form, monkeypatch):
    """i12's rule (outbox.py): no database lock or transaction is held while a provider is
    called. reconcile.py still reads the provider inside the row-locking transaction
    (delivery._locked), so each read holds a row lock for up to CONNECT+READ_TIMEOUT, during
    which an eSputnik unsubscribe webhook for that row times out (WEBHOOK_LOCK_TIMEOUT 2 s) and
    is answered 503, and which ignores a worker's lease on the row."""
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
    """confirm() takes a row lock but ignores the sweeper's lease: its delivery task finds the
    row leased (LOCKED, not retried), then the sweeper, deciding on its stale copy
    (unconfirmed), releases the row with next_attempt_at=None. Confirmed, pending, and nothing
    will ever deliver it."""
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
