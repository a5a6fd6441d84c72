"""Reconciliation (esp_forms_reconcile, the esp_forms.reconcile_optin beat task), and the
promise it keeps with polling: lost webhooks are repaired within one polling cycle."""

from __future__ import annotations

from io import StringIO

import pytest
import requests
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse

from esp_forms import delivery, optin, reconcile, tasks
from esp_forms.models import EventKind, OptinStatus, Submission
from tests.conftest import ESPUTNIK_KEY, UNISENDER_KEY, make_submission

pytestmark = pytest.mark.django_db(transaction=True)


def delivered(form, email="olena@example.com") -> Submission:
    submission = make_submission(form, email)
    assert delivery.deliver(submission.pk).status == "delivered"
    submission.refresh_from_db()
    return submission


def status_of(submission: Submission) -> str:
    submission.refresh_from_db()
    return submission.optin_status


def run(*args: str) -> str:
    out = StringIO()
    call_command("esp_forms_reconcile", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_reconcile_repairs_drift_and_reports_it(unisender_form, emulator):
    confirmed_there = delivered(unisender_form, "a@example.com")
    unsubscribed_there = delivered(unisender_form, "b@example.com")
    expired_here = delivered(unisender_form, "c@example.com")
    fine = delivered(unisender_form, "d@example.com")
    for email in ("a@example.com", "b@example.com", "c@example.com", "d@example.com"):
        emulator.confirm("unisender", UNISENDER_KEY, email)
    for submission in (unsubscribed_there, fine):
        assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    emulator.unsubscribe("unisender", UNISENDER_KEY, "b@example.com")  # the hook was lost
    Submission.objects.filter(pk=expired_here.pk).update(optin_status=OptinStatus.EXPIRED)

    dry = run("--dry-run")
    assert "3 would change" in dry
    assert status_of(confirmed_there) == OptinStatus.UNCONFIRMED  # dry run: untouched

    out = run()
    assert "UniSender: 4 read, 3 changed" in out
    assert "a@example.com (uni-news): unconfirmed → confirmed" in out
    assert "b@example.com (uni-news): confirmed → unsubscribed" in out
    assert "c@example.com (uni-news): expired → confirmed" in out  # nobody subscribed expires
    assert [status_of(s) for s in (confirmed_there, unsubscribed_there, expired_here, fine)] == [
        OptinStatus.CONFIRMED, OptinStatus.UNSUBSCRIBED, OptinStatus.CONFIRMED,
        OptinStatus.CONFIRMED]
    assert unsubscribed_there.events.filter(kind=EventKind.UNSUBSCRIBED,
                                            message__contains="reconcile").exists()
    assert "0 changed" in run()  # nothing left to repair


def test_reconcile_reads_only_what_esputnik_can_repair(esputnik_form, emulator):
    submission = delivered(esputnik_form)
    emulator.confirm("esputnik", ESPUTNIK_KEY, "olena@example.com")
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    # The owner emptied the segment: eSputnik now says less, which repairs nothing.
    emulator.state.esputnik[ESPUTNIK_KEY].contacts[
        int(submission.provider_contact_id)].group_ids.clear()
    expired = delivered(esputnik_form, "late@example.com")
    emulator.confirm("esputnik", ESPUTNIK_KEY, "late@example.com")
    Submission.objects.filter(pk=expired.pk).update(optin_status=OptinStatus.EXPIRED)
    [report] = reconcile.reconcile()
    # Subscribed rows are not read (eSputnik shows no unsubscribes); the expired one is.
    assert report.checked == 1
    assert [str(c) for c in report.changes] == [
        "late@example.com (es-news): expired → confirmed"]
    assert status_of(submission) == OptinStatus.CONFIRMED


def test_reconcile_stays_inside_the_rate_limit(unisender_form, emulator):
    account = unisender_form.account
    account.rate_limit_per_minute = 3
    account.save()
    for n in range(5):
        delivered(unisender_form, f"p{n}@example.com") if n < 1 else make_submission(
            unisender_form, f"p{n}@example.com", delivery_status="delivered")
    requests_before = len(emulator.requests("unisender"))
    out = run()
    reads = len(emulator.requests("unisender")) - requests_before
    # One call went to the delivery; the limit of 3 per minute leaves 2 reads.
    assert reads == 2
    assert "2 read, 0 changed, stopped at the rate limit" in out


def test_reconcile_is_a_beat_task():
    schedule = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}
    assert "esp_forms.reconcile_optin" in schedule
    assert tasks.reconcile_optin.name == "esp_forms.reconcile_optin"


# --- the promise: lost webhooks, one polling cycle -------------------------------------------

N = 10
UNSUBSCRIBERS = range(0, N, 3)  # 4 of the 10 unsubscribe after confirming


def one_polling_cycle() -> None:
    """What the beat runs every polling interval: the due-poll and the reconciliation."""
    tasks.poll_optin()
    tasks.reconcile_optin()


def test_lost_webhooks_are_reflected_within_one_polling_cycle(
        live_server, emulator, esputnik_form, unisender_form, settings, monkeypatch):
    settings.ESP_FORMS = {**(getattr(settings, "ESP_FORMS", None) or {}),
                          "POLL_INITIAL_DELAY": 0}
    # The status read a webhook hint queues runs at once, as a worker would run it.
    monkeypatch.setattr(optin, "send_task", lambda task, pk, countdown=None: task(str(pk)))
    es_account, us_account = esputnik_form.account, unisender_form.account
    es_url = live_server.url + reverse("esp_forms:webhook", args=["esputnik", es_account.pk])
    us_url = live_server.url + reverse("esp_forms:webhook", args=["unisender", us_account.pk])
    emulator.set_esputnik_webhooks(
        ESPUTNIK_KEY, workflow_url=es_url, account_url=es_url, secret=es_account.webhook_secret,
        account_login="esp_forms", account_password=es_account.webhook_secret)
    requests.post(f"{emulator.url}/en/api/setHook", params={"format": "json"}, data={
        "api_key": UNISENDER_KEY, "hook_url": us_url, "event_format": "json_post",
        "events[subscribe]": "*", "events[unsubscribe]": "*"}, timeout=5).raise_for_status()
    emulator.drop_webhooks(0.3, seed=16)

    def figure(rows: list[Submission], provider: str, unsubscribed_too: bool) -> str:
        statuses = [status_of(s) for s in rows]
        confirmed = sum(statuses[n] != OptinStatus.UNCONFIRMED for n in range(N))
        text = f"{provider}: {confirmed} of {N} confirmations"
        if unsubscribed_too:
            gone = sum(statuses[n] == OptinStatus.UNSUBSCRIBED for n in UNSUBSCRIBERS)
            kept = sum(statuses[n] == OptinStatus.CONFIRMED for n in range(N)
                       if n not in UNSUBSCRIBERS)
            text += (f", {gone} of {len(UNSUBSCRIBERS)} unsubscribes, "
                     f"{kept} of {N - len(UNSUBSCRIBERS)} still subscribed")
        return text

    es = [delivered(esputnik_form, f"es{n}@example.com") for n in range(N)]
    us = [delivered(unisender_form, f"us{n}@example.com") for n in range(N)]
    for n in range(N):  # every person confirms at the provider
        emulator.confirm("esputnik", ESPUTNIK_KEY, f"es{n}@example.com")
        emulator.confirm("unisender", UNISENDER_KEY, f"us{n}@example.com")
    assert emulator.wait_for_webhooks(30)
    one_polling_cycle()
    assert figure(es, "eSputnik", False) == "eSputnik: 10 of 10 confirmations"
    assert figure(us, "UniSender", False) == "UniSender: 10 of 10 confirmations"

    for n in UNSUBSCRIBERS:  # then some of them unsubscribe again
        emulator.unsubscribe("esputnik", ESPUTNIK_KEY, f"es{n}@example.com")
        emulator.unsubscribe("unisender", UNISENDER_KEY, f"us{n}@example.com")
    assert emulator.wait_for_webhooks(30)
    sent = emulator.webhooks()
    lost = [(d.provider, d.event) for d in sent if d.dropped]
    # The seeded 30% fault lost 8 of the 28 callbacks, of every kind.
    assert (len(lost), len(sent)) == (8, 28)
    assert set(lost) == {("esputnik", "confirmed"), ("esputnik", "unsubscribed"),
                         ("unisender", "subscribe"), ("unisender", "unsubscribe")}
    one_polling_cycle()
    assert figure(us, "UniSender", True) == (
        "UniSender: 10 of 10 confirmations, 4 of 4 unsubscribes, 6 of 6 still subscribed")
    # eSputnik's contact shows no unsubscribe, and 3 of its 4 unsubscribe webhooks were lost:
    # the reconciliation's activity read finds them, without waiting for eSputnik to resend.
    assert lost.count(("esputnik", "unsubscribed")) == 3
    assert figure(es, "eSputnik", True) == (
        "eSputnik: 10 of 10 confirmations, 4 of 4 unsubscribes, 6 of 6 still subscribed")


def test_reconcile_never_moves_anyone_back_to_unconfirmed(unisender_form, emulator):
    submission = delivered(unisender_form)
    emulator.confirm("unisender", UNISENDER_KEY, "olena@example.com")
    assert optin.refresh(submission.pk) == OptinStatus.CONFIRMED
    account = emulator.state.unisender[UNISENDER_KEY]
    account.contacts[account.by_email["olena@example.com"]].status = "invited"
    [report] = reconcile.reconcile()
    assert report.checked == 1 and report.changes == []
    assert status_of(submission) == OptinStatus.CONFIRMED
