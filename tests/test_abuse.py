"""The abuse gate: mailbox and form budgets, the pre-send hook, held signups and their admin."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from esp_forms import abuse, delivery, signals
from esp_forms.models import (
    AbuseCounter,
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    HoldReason,
    ProviderAccount,
    SpamCount,
    Submission,
)
from tests.conftest import make_form, run_queued, token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def local_form(sandbox_account):
    return make_form(sandbox_account, "local", double_opt_in=DoubleOptIn.LOCAL)


@pytest.fixture
def provider_form(sandbox_account):
    return make_form(sandbox_account, "invites", double_opt_in=DoubleOptIn.PROVIDER)


def signup(email: str, form_type: str, *, ip: str = "203.0.113.9"):
    return Client().post(reverse("esp_forms:api_submit", args=[form_type]),
                         json.dumps({"email": email, "form_token": token(form_type)}),
                         content_type="application/json", REMOTE_ADDR=ip)


# --- mailboxes ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("email", "mailbox"), [
    ("Victim@Example.com", "victim@example.com"),
    ("victim+1@example.com", "victim@example.com"),
    ("VICTIM+news+x@example.com", "victim@example.com"),
    ("v.i.c.t.i.m@example.com", "v.i.c.t.i.m@example.com"),  # dots matter outside Gmail
    ("V.ic.Tim+77@gmail.com", "victim@gmail.com"),
    ("victim@googlemail.com", "victim@gmail.com"),
])
def test_mailbox_normalisation(email, mailbox):
    assert abuse.normalise_mailbox(email) == mailbox


def test_mailbox_key_holds_no_address():
    key = abuse.mailbox_key(7, "victim+1@example.com")
    assert key == abuse.mailbox_key(7, "VICTIM@example.com")
    assert key != abuse.mailbox_key(8, "victim@example.com")
    assert "victim" not in key and key.startswith("mailbox:7:")


# --- budgets ------------------------------------------------------------------------------------

def test_local_mode_sends_one_confirmation_per_mailbox_and_holds_the_rest(local_form, queued):
    variants = ["victim@example.com", "victim+1@example.com", "Victim+2@Example.com",
                "victim+promo@example.com"]
    for number, email in enumerate(variants):
        response = signup(email, "local", ip=f"198.51.100.{number + 1}")
        # Held signups are answered exactly like the others: nothing tells the sender.
        assert response.status_code == 202, response.content
        assert response.json()["delivery_status"] == "pending"
    run_queued(queued)
    assert [m.to for m in mail.outbox] == [["victim@example.com"]]

    held = Submission.objects.filter(held_at__isnull=False)
    assert held.count() == 3
    assert set(held.values_list("held_reason", flat=True)) == {HoldReason.MAILBOX_BUDGET}
    assert not held.filter(next_attempt_at__isnull=False).exists()
    assert SpamCount.objects.get(form=local_form, reason="mailbox_budget").count == 3
    event = held.first().events.get(kind=EventKind.HELD)
    assert "budget is 1" in event.message and event.data["action"] == "confirmation"
    # The sweeper never touches a held row.
    due = {pk for pk, _account in delivery.due_submissions(grace=0)}
    assert due.isdisjoint(held.values_list("pk", flat=True))
    delivery.dispatch_due(grace=0)
    assert len(mail.outbox) == 1
    # Nor does a stray task: a held row is never mailed or delivered behind the admin's back.
    assert {delivery.deliver(pk).status for pk in held.values_list("pk", flat=True)} == {"held"}
    assert len(mail.outbox) == 1


def test_mailbox_budget_spans_the_accounts_forms_but_not_other_accounts(
        sandbox_account, local_form, provider_form, queued):
    other = make_form(ProviderAccount.objects.create(name="Other", provider="sandbox"),
                      "other", double_opt_in=DoubleOptIn.PROVIDER)
    assert signup("ann@example.com", "local").status_code == 202
    assert signup("ann+x@example.com", "invites").status_code == 202  # same account: held
    assert signup("ann+y@example.com", "other").status_code == 202  # another account
    by_form = dict(Submission.objects.values_list("form__form_type", "held_reason"))
    assert by_form == {"local": "", "invites": HoldReason.MAILBOX_BUDGET, "other": ""}
    run_queued(queued)
    # Our confirmation, and the sandbox provider's invitation from the other account.
    assert sorted(m.to[0] for m in mail.outbox) == ["ann+y@example.com", "ann@example.com"]
    assert Submission.objects.get(form=other).delivery_status == DeliveryStatus.DELIVERED
    assert Submission.objects.get(form=provider_form).delivery_status == DeliveryStatus.PENDING


@override_settings(ESP_FORMS={"MAILBOX_BUDGET": 2, "MAILBOX_BUDGET_WINDOW": 3600})
def test_mailbox_budget_and_window_are_settings(local_form, queued):
    for email in ["bo@example.com", "bo+1@example.com", "bo+2@example.com"]:
        signup(email, "local")
    run_queued(queued)
    assert len(mail.outbox) == 2
    assert Submission.objects.filter(held_at__isnull=False).count() == 1
    assert AbuseCounter.objects.get(key__startswith="mailbox:").window_start.minute == 0


def test_opt_in_off_counts_no_mailbox_budget(sandbox_account, queued):
    make_form(sandbox_account, "direct", double_opt_in=DoubleOptIn.OFF)
    for email in ["cy@example.com", "cy+1@example.com", "cy+2@example.com"]:
        assert signup(email, "direct").status_code == 202
    # Nothing is mailed to the person in this mode, so nothing to bomb them with.
    assert not Submission.objects.filter(held_at__isnull=False).exists()


def test_repeat_signup_gets_no_second_email_but_is_not_held(local_form, queued, monkeypatch):
    signup("dee@example.com", "local")
    run_queued(queued)
    first = Submission.objects.get()
    # After the resend cooldown a repeat would mail again; the mailbox budget says no.
    Submission.objects.filter(pk=first.pk).update(
        confirmation_sent_at=timezone.now() - timedelta(hours=1))
    signup("dee@example.com", "local")
    run_queued(queued)
    first.refresh_from_db()
    assert first.held_at is None and len(mail.outbox) == 1
    assert first.events.filter(kind=EventKind.HELD,
                               message__startswith="Confirmation email not sent again").exists()


def test_repeat_signup_into_a_held_one_stays_held(local_form, queued):
    signup("eve@example.com", "local")
    signup("eve+2@example.com", "local")
    signup("eve+2@example.com", "local")  # collapses into the held one
    run_queued(queued)
    assert Submission.objects.count() == 2
    held = Submission.objects.get(email="eve+2@example.com")
    assert held.held_at is not None and held.events.filter(kind=EventKind.COLLAPSED).exists()
    assert len(mail.outbox) == 1


@override_settings(ESP_FORMS={"MAILBOX_BUDGET": None}, ADMINS=[("Ops", "ops@example.com")])
def test_form_hourly_budget_holds_and_alerts_once_per_window(provider_form, queued,
                                                             monkeypatch):
    provider_form.hourly_budget = 3
    provider_form.save()
    for number in range(6):
        assert signup(f"p{number}@example.com", "invites").status_code == 202
    held = Submission.objects.filter(held_reason=HoldReason.FORM_BUDGET)
    assert held.count() == 3
    alerts = [m for m in mail.outbox if "hourly budget" in m.subject]
    assert [m.to for m in alerts] == [["ops@example.com"]]
    assert "invites" in alerts[0].subject and "More than 3 signups" in alerts[0].body
    assert SpamCount.objects.get(form=provider_form, reason="form_budget").count == 3

    # The next hour has a fresh budget, and the next alert may go out.
    later = timezone.now() + timedelta(hours=1)
    monkeypatch.setattr(abuse.timezone, "now", lambda: later)
    for number in range(6, 11):
        signup(f"p{number}@example.com", "invites")
    assert held.count() == 5
    assert len([m for m in mail.outbox if "hourly budget" in m.subject]) == 2


def mailbox_count(email: str, account_id: int) -> int:
    return sum(AbuseCounter.objects.filter(key=abuse.mailbox_key(account_id, email))
               .values_list("count", flat=True))


def test_a_signup_held_for_another_reason_takes_no_mailbox_budget(provider_form, queued,
                                                                   settings):
    """On PostgreSQL the mailbox is counted with the row's INSERT; a hold by the form's budget
    or the hook takes that count back, and the admin's release counts it once."""
    provider_form.hourly_budget = 1
    provider_form.save()
    account = provider_form.account_id
    assert signup("first@example.com", "invites").status_code == 202
    assert signup("second@example.com", "invites").status_code == 202
    held = Submission.objects.get(email="second@example.com")
    assert held.held_reason == HoldReason.FORM_BUDGET
    assert (mailbox_count("first@example.com", account),
            mailbox_count("second@example.com", account)) == (1, 0)
    abuse.release(Submission.objects.filter(pk=held.pk), by="test")
    assert mailbox_count("second@example.com", account) == 1

    settings.ESP_FORMS = {**settings.ESP_FORMS,
                          "PRE_SEND_HOOK": "tests.test_abuse.deny_example_org"}
    provider_form.hourly_budget = 0
    provider_form.save()
    assert signup("third@example.org", "invites").status_code == 202
    assert Submission.objects.get(email="third@example.org").held_reason == \
        HoldReason.HOOK_DENIED
    assert mailbox_count("third@example.org", account) == 0


class RecordingRedis:
    """Enough of a Redis client for the form budget's counter: INCRBY/EXPIRE pipelines."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.round_trips = 0

    def pipeline(self, transaction=True):
        client, commands = self, []

        class Pipe:
            def incrby(self, key, amount):
                commands.append((key, amount))

            def expire(self, key, seconds):
                pass

            def execute(self):
                client.round_trips += 1
                key, amount = commands[0]
                client.values[key] = client.values.get(key, 0) + amount
                return [client.values[key], True]

        return Pipe()


@pytest.mark.parametrize(("limit", "round_trips"), [
    (100, 120),  # the default budget: every signup is counted at once
    (10_000, 7),  # a campaign's: 16 per round trip (the last 8 wait for the next ones)
    (200, 70),  # batches of 2 (1% of the budget) up to half of it, then one by one
])
def test_large_form_budgets_are_counted_in_batches(monkeypatch, limit, round_trips, db):
    redis = RecordingRedis()
    monkeypatch.setattr(abuse, "_shared_redis", lambda: redis)

    class Form:
        pk = 7

    seen = [abuse.form_signups(Form, limit) for _ in range(120)]
    assert redis.round_trips == round_trips
    # What this process reports never runs ahead of the truth, and is the shared count
    # itself (exact) whenever a batch goes out or the budget is within reach.
    assert seen == list(range(1, 121))
    assert sum(redis.values.values()) == 120 - (120 % abuse.FORM_COUNT_BATCH
                                                if limit == 10_000 else 0)


def test_a_batched_count_is_exact_near_the_budget(monkeypatch, db):
    redis = RecordingRedis()
    monkeypatch.setattr(abuse, "_shared_redis", lambda: redis)

    class Form:
        pk = 8

    limit = 1_000  # batches of 10 up to 500
    for _ in range(600):
        abuse.form_signups(Form, limit)
    assert sum(redis.values.values()) == 600  # past half the budget, every signup is shared
    redis.values[next(iter(redis.values))] += 400  # other processes' signups
    assert abuse.form_signups(Form, limit) == 1001  # over: the gate holds this one


@override_settings(ESP_FORMS={"FORM_HOURLY_BUDGET": 0, "MAILBOX_BUDGET": None})
def test_budgets_can_be_switched_off(provider_form, queued):
    for number in range(5):
        signup("same@example.com" if number % 2 else f"s{number}@example.com", "invites")
    assert not Submission.objects.filter(held_at__isnull=False).exists()


def test_counter_rows_are_pruned(monkeypatch):
    monkeypatch.setattr(abuse, "PRUNE_CHANCE", 1.0)
    old = timezone.now() - timedelta(days=3)
    AbuseCounter.objects.create(key="form:1", window_start=old, count=5,
                                expires_at=old + timedelta(hours=1))
    assert abuse.bump("form:1", 3600) == 1
    assert AbuseCounter.objects.count() == 1
    assert abuse.bump("form:1", 3600) == 2


@pytest.mark.parametrize("upsert", [True, False])
def test_bump_counts_per_key_and_window(monkeypatch, upsert):
    """Both ways of counting: the one-statement upsert, and the portable fallback."""
    monkeypatch.setattr(abuse, "_upsert_supported", lambda: upsert)
    now = timezone.now()
    assert [abuse.bump("k", 3600, now=now) for _ in range(3)] == [1, 2, 3]
    assert abuse.bump("other", 3600, now=now) == 1
    assert abuse.bump("k", 3600, now=now + timedelta(hours=1)) == 1
    row = AbuseCounter.objects.get(key="k", window_start=abuse.window_start(now, 3600))
    assert row.count == 3 and row.expires_at == row.window_start + timedelta(hours=1)


# --- the pre-send hook --------------------------------------------------------------------------

def deny_example_org(submission, action):
    if submission.email.endswith("@example.org"):
        return f"example.org is not allowed ({action})"
    return None


def broken_hook(submission, action):
    raise RuntimeError("reputation service down")


@override_settings(ESP_FORMS={"PRE_SEND_HOOK": "tests.test_abuse.deny_example_org"})
def test_hook_setting_denies_with_a_reason(provider_form, queued):
    signup("ok@example.com", "invites")
    signup("no@example.org", "invites")
    denied = Submission.objects.get(email="no@example.org")
    assert denied.held_reason == HoldReason.HOOK_DENIED
    event = denied.events.get(kind=EventKind.HELD)
    assert "example.org is not allowed (invitation)" in event.message
    assert Submission.objects.get(email="ok@example.com").held_at is None
    assert [name for name, _pk in queued] == ["esp_forms.deliver_submission"]
    assert SpamCount.objects.get(reason="hook_denied").count == 1


def test_hook_signal_can_deny_and_sees_the_action(local_form, queued):
    seen = []

    def receiver(sender, submission, action, **kwargs):
        seen.append((submission.email, action))
        return False

    signals.pre_send.connect(receiver)
    try:
        signup("sig@example.com", "local")
    finally:
        signals.pre_send.disconnect(receiver)
    assert seen == [("sig@example.com", "confirmation")]
    assert Submission.objects.get().held_reason == HoldReason.HOOK_DENIED
    assert queued == []


@override_settings(ESP_FORMS={"PRE_SEND_HOOK": "tests.test_abuse.broken_hook"})
def test_a_failing_hook_holds_rather_than_mails(local_form, queued):
    assert signup("fail@example.com", "local").status_code == 202
    held = Submission.objects.get()
    assert held.held_reason == HoldReason.HOOK_DENIED
    assert "reputation service down" in held.events.get(kind=EventKind.HELD).message
    assert queued == [] and mail.outbox == []


# --- the admin ----------------------------------------------------------------------------------

@pytest.fixture
def held_pair(local_form, queued):
    signup("zoe@example.com", "local")
    signup("zoe+1@example.com", "local")
    signup("zoe+2@example.com", "local")
    run_queued(queued)
    assert len(mail.outbox) == 1
    return list(Submission.objects.filter(held_at__isnull=False).order_by("email"))


def test_admin_lists_and_filters_held_signups(admin_client, held_pair):
    changelist = reverse("admin:esp_forms_submission_changelist")
    page = admin_client.get(changelist, {"held": "any"}).content.decode()
    assert "zoe+1@example.com" in page and "zoe+2@example.com" in page
    assert ">zoe@example.com<" not in page
    assert "Mailbox over its daily budget" in page and "esp-forms-badge--held" in page
    page = admin_client.get(changelist, {"held": "form_budget"}).content.decode()
    assert "zoe+1@example.com" not in page
    counts = admin_client.get(reverse("admin:esp_forms_spamcount_changelist")).content.decode()
    assert "Held: mailbox over its daily budget" in counts


def test_admin_releases_a_held_signup(admin_client, held_pair, queued):
    first, second = held_pair
    response = admin_client.post(reverse("admin:esp_forms_submission_changelist"), {
        "action": "release_held", "_selected_action": [first.pk]}, follow=True)
    assert "1 held submission released." in [str(m) for m in response.context["messages"]]
    run_queued(queued)
    assert [m.to for m in mail.outbox][-1] == [first.email]
    first.refresh_from_db()
    assert first.held_at is None and first.held_reason == ""
    event = first.events.get(kind=EventKind.RELEASED)
    assert event.data["reason"] == HoldReason.MAILBOX_BUDGET and "admin" in event.message
    # Releasing again does nothing; the other one is still held.
    assert abuse.release(Submission.objects.filter(pk=first.pk)) == 0
    second.refresh_from_db()
    assert second.held_at is not None


def test_admin_drops_a_held_signup(admin_client, held_pair, queued):
    first, _second = held_pair
    response = admin_client.post(reverse("admin:esp_forms_submission_changelist"), {
        "action": "drop_held", "_selected_action": [first.pk]}, follow=True)
    assert "1 held submission dropped." in [str(m) for m in response.context["messages"]]
    first.refresh_from_db()
    assert first.delivery_status == DeliveryStatus.FAILED and first.held_at is None
    assert "Dropped by admin" in first.last_error
    assert first.events.filter(kind=EventKind.DROPPED).exists()
    run_queued(queued)
    assert len(mail.outbox) == 1


def test_resend_action_skips_held_signups(admin_client, held_pair):
    admin_client.post(reverse("admin:esp_forms_submission_changelist"), {
        "action": "resend_confirmation", "_selected_action": [s.pk for s in held_pair]})
    assert len(mail.outbox) == 1


def test_admin_form_page_has_the_abuse_fields(admin_client, local_form):
    page = admin_client.get(reverse("admin:esp_forms_signupform_change",
                                    args=[local_form.pk])).content.decode()
    assert 'name="captcha"' in page and 'name="hourly_budget"' in page


@override_settings(ESP_FORMS={"MAILBOX_BUDGET": 2})
def test_a_double_submit_uses_one_unit_of_the_budget(local_form, queued):
    signup("fay@example.com", "local")
    signup("fay@example.com", "local")  # a double click: collapsed, its email already queued
    signup("fay+news@example.com", "local")
    run_queued(queued)
    assert not Submission.objects.filter(held_at__isnull=False).exists()
    assert sorted(m.to[0] for m in mail.outbox) == ["fay+news@example.com", "fay@example.com"]


def test_held_signups_nobody_released_are_purged_with_the_old_ones(held_pair):
    from esp_forms import retention

    first, second = held_pair
    old = timezone.now() - timedelta(days=400)
    Submission.objects.filter(pk=first.pk).update(created_at=old)
    assert retention.purge() == 1
    first.refresh_from_db()
    assert first.email == "" and first.purged_at is not None
    # Nothing to send to any more; the recent held one stays whole.
    assert abuse.release(Submission.objects.filter(pk=first.pk)) == 0
    assert Submission.objects.get(pk=second.pk).email == second.email
