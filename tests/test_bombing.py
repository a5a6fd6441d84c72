"""A scripted list-bombing run through the real endpoints, in both double opt-in modes.

Hundreds of variants of a few victims' addresses (case, +tags, Gmail dots, googlemail.com) are
signed up from hundreds of IP addresses, half through the HTML form's script path, half through
the JSON API, across two forms of one account. At most one confirmation email (local mode) or
one provider invitation (provider mode, the UniSender emulator over real HTTP) may reach each
mailbox in the budget window; everything else is stored and held, and shows in the admin.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from esp_forms import abuse, delivery
from esp_forms.models import (
    DoubleOptIn,
    EventKind,
    ProviderAccount,
    SpamCount,
    Submission,
    SubmissionEvent,
)
from tests.conftest import UNISENDER_KEY, make_form, run_queued, token

pytestmark = pytest.mark.django_db(transaction=True)

VICTIMS = ["victim@example.com", "ann.lee@gmail.com", "Bob.Stone@example.net"]
ATTEMPTS = 300


def variants(seed: int) -> list[str]:
    """ATTEMPTS addresses, every one of them delivering to one of VICTIMS."""
    rng = random.Random(seed)
    out = []
    for number in range(ATTEMPTS):
        local, domain = VICTIMS[number % len(VICTIMS)].split("@")
        if domain == "gmail.com":
            # Gmail ignores dots and answers for googlemail.com too.
            letters = local.replace(".", "")
            local = "".join(c + ("." if rng.random() < 0.3 else "") for c in letters[:-1])
            local += letters[-1]
            domain = rng.choice(["gmail.com", "googlemail.com", "GMail.com"])
        if number % 5:
            local += f"+{rng.randrange(10**6)}"
        local = "".join(c.upper() if rng.random() < 0.2 else c for c in local)
        out.append(f"{local}@{domain}")
    return out


def distinct_signups(form_types: list[str], seed: int) -> int:
    """Repeats of one address on one form collapse into one submission (DUPLICATE_WINDOW)."""
    return len({(form_types[n % len(form_types)], email.lower())
                for n, email in enumerate(variants(seed))})


def attack(form_types: list[str], seed: int) -> dict[str, int]:
    """Sign every variant up from its own IP, alternating endpoints and forms."""
    statuses: Counter[int] = Counter()
    for number, email in enumerate(variants(seed)):
        form_type = form_types[number % len(form_types)]
        ip = f"10.{seed}.{number // 250}.{number % 250 + 1}"
        if number % 2:
            response = Client().post(
                reverse("esp_forms:api_submit", args=[form_type]),
                json.dumps({"email": email, "form_token": token(form_type)}),
                content_type="application/json", REMOTE_ADDR=ip)
        else:
            response = Client().post(
                reverse("esp_forms:form", args=[form_type]),
                {"email": email, "form_token": token(form_type)}, REMOTE_ADDR=ip,
                HTTP_X_REQUESTED_WITH="XMLHttpRequest", HTTP_ACCEPT="application/json")
        statuses[response.status_code] += 1
    return dict(statuses)


def work(queued) -> None:
    """What the workers would do with the queue, then the sweeper for anything left."""
    run_queued(queued)
    delivery.dispatch_due(grace=0)


def assert_held_in_admin(client, total: int, sent: int) -> None:
    changelist = reverse("admin:esp_forms_submission_changelist")
    page = client.get(changelist, {"held": "any"}).content.decode()
    shown = int(re.search(r"(\d+) submissions?", page).group(1))
    assert shown == total - sent
    assert "Mailbox over its daily budget" in page


def test_local_mode_bombing_sends_one_confirmation_per_mailbox(sandbox_account, queued,
                                                               admin_client):
    for form_type in ("local-a", "local-b"):
        make_form(sandbox_account, form_type, double_opt_in=DoubleOptIn.LOCAL)
    statuses = attack(["local-a", "local-b"], seed=1)
    # Every attempt was answered like a success: nothing tells the attacker what was held.
    assert statuses == {200: ATTEMPTS // 2, 202: ATTEMPTS // 2}
    work(queued)

    confirmations = [m for m in mail.outbox if "hourly budget" not in m.subject]
    per_mailbox = Counter(abuse.normalise_mailbox(m.to[0]) for m in confirmations)
    assert per_mailbox == {abuse.normalise_mailbox(v): 1 for v in VICTIMS}
    total = Submission.objects.count()
    assert total == distinct_signups(["local-a", "local-b"], 1) > 250  # nothing lost
    assert Submission.objects.filter(held_at__isnull=False).count() == total - len(VICTIMS)
    blocked = sum(SpamCount.objects.filter(reason__in=["mailbox_budget", "form_budget"])
                  .values_list("count", flat=True))
    # Held signups, plus repeats of a victim's first signup refused a second email.
    refused_repeats = SubmissionEvent.objects.filter(
        kind=EventKind.HELD, submission__held_at__isnull=True).count()
    assert blocked == total - len(VICTIMS) + refused_repeats
    # 150 per form: over the default hourly budget of 100, so each form alerted once.
    alerts = [m for m in mail.outbox if "hourly budget" in m.subject]
    assert sorted(m.subject.removeprefix("[Django] ") for m in alerts) == [
        "Signup form 'local-a' is over its hourly budget",
        "Signup form 'local-b' is over its hourly budget"]
    assert_held_in_admin(admin_client, total, len(VICTIMS))


def test_provider_mode_bombing_sends_one_invitation_per_mailbox(emulator, queued,
                                                                admin_client):
    emulator.add_unisender_account(UNISENDER_KEY, lists=[
        {"id": 555777, "title": "News", "confirmation_letter": True}])
    account = ProviderAccount.objects.create(name="UniSender", provider="unisender",
                                             api_key=UNISENDER_KEY, api_base_url=emulator.url)
    for form_type in ("uni-a", "uni-b"):
        make_form(account, form_type, lists="555777", double_opt_in=DoubleOptIn.PROVIDER)
    statuses = attack(["uni-a", "uni-b"], seed=2)
    assert statuses == {200: ATTEMPTS // 2, 202: ATTEMPTS // 2}
    work(queued)

    # The provider was asked to subscribe (and so to send its invitation) once per mailbox.
    subscribes = [r for r in emulator.requests("unisender") if r.path.endswith("/subscribe")]
    per_mailbox = Counter(abuse.normalise_mailbox(r.param("fields[email]")) for r in subscribes)
    assert per_mailbox == {abuse.normalise_mailbox(v): 1 for v in VICTIMS}
    assert all(r.param("double_optin") in ("0", "4") for r in subscribes)  # letters go out
    # And the emulated provider "sent" exactly that many invitation letters.
    letters = Counter(abuse.normalise_mailbox(contact["email"])
                      for contact in emulator.contacts("unisender", UNISENDER_KEY)
                      for _letter in contact["letters"])
    assert letters == {abuse.normalise_mailbox(v): 1 for v in VICTIMS}
    total = Submission.objects.count()
    assert total == distinct_signups(["uni-a", "uni-b"], 2) > 250
    assert Submission.objects.filter(delivery_status="delivered").count() == len(VICTIMS)
    assert_held_in_admin(admin_client, total, len(VICTIMS))
