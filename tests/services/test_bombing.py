"""List bombing under real concurrency: many clients at once over HTTP, PostgreSQL, real Celery
workers mailing (local mode) and calling the UniSender emulator (provider mode).

The budgets are counted in the database by every web thread, so concurrent signups of one
mailbox must still add up to at most one confirmation email or provider invitation.
"""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from esp_forms import abuse
from esp_forms.models import DoubleOptIn, ProviderAccount, Submission
from tests.conftest import UNISENDER_KEY, make_form
from tests.services.conftest import wait_for

pytestmark = pytest.mark.services

VICTIMS = ["victim@example.com", "ann.lee@gmail.com", "bob@example.net"]


def variant(number: int) -> str:
    local, domain = VICTIMS[number % len(VICTIMS)].split("@")
    if domain == "gmail.com":
        local = local.replace(".", "") if number % 2 else local
        domain = "googlemail.com" if number % 4 == 1 else domain
    return f"{local.upper() if number % 7 == 0 else local}+{number}@{domain}"


def test_concurrent_bombing_from_many_ips(live_server, emulator, start_worker, settings):
    # Hundreds of client IPs, as a proxy in front of the site reports them.
    settings.ESP_FORMS = {**settings.ESP_FORMS, "TRUSTED_PROXY_COUNT": 1, "MIN_FILL_SECONDS": 0}
    emulator.add_unisender_account(UNISENDER_KEY, lists=[
        {"id": 555777, "title": "News", "confirmation_letter": True}])
    uni = ProviderAccount.objects.create(name="UniSender", provider="unisender",
                                         api_key=UNISENDER_KEY, api_base_url=emulator.url)
    make_form(uni, "uni-bomb", lists="555777", double_opt_in=DoubleOptIn.PROVIDER)
    local = ProviderAccount.objects.create(name="Local", provider="sandbox")
    make_form(local, "local-bomb", double_opt_in=DoubleOptIn.LOCAL)
    worker = start_worker("bomb", concurrency=2)

    def hit(number: int) -> int:
        form_type = ("uni-bomb", "local-bomb")[number % 2]
        with requests.Session() as session:
            schema = session.get(f"{live_server.url}/api/esp-forms/forms/{form_type}/?csrf=0",
                                 timeout=30).json()
            response = session.post(
                schema["submit_url"], json={"email": variant(number),
                                            "form_token": schema["form_token"]},
                headers={"X-Forwarded-For": f"10.9.{number // 250}.{number % 250 + 1}"},
                timeout=30)
        return response.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = Counter(pool.map(hit, range(240)))
    assert codes == {202: 240}
    assert Submission.objects.count() == 240

    held = Submission.objects.filter(held_at__isnull=False)
    assert held.count() == 240 - 2 * len(VICTIMS)  # one per mailbox per account goes out

    def subscribes():
        return [r for r in emulator.requests("unisender") if r.path.endswith("/subscribe")]

    wait_for(lambda: len(subscribes()) >= len(VICTIMS), 60, "the invitations")
    wait_for(lambda: worker.output().count("Subject: ") >= len(VICTIMS), 60,
             "the confirmation emails")
    per_mailbox = Counter(abuse.normalise_mailbox(r.param("fields[email]"))
                          for r in subscribes())
    assert per_mailbox == {abuse.normalise_mailbox(v): 1 for v in VICTIMS}
    mailed = Counter(abuse.normalise_mailbox(to)
                     for to in re.findall(r"^To: (\S+)$", worker.output(), re.M))
    assert mailed == {abuse.normalise_mailbox(v): 1 for v in VICTIMS}


def test_form_budget_is_counted_in_the_rate_limiters_redis(settings):
    """With a shared Redis the form budget is one INCR per signup, shared by every process."""
    import redis
    from django.core import mail

    from esp_forms.models import HoldReason
    from esp_forms.submissions import store_submission

    settings.ADMINS = [("Ops", "ops@example.com")]
    account = ProviderAccount.objects.create(name="Sandbox", provider="sandbox")
    form = make_form(account, "budgeted", double_opt_in=DoubleOptIn.PROVIDER, hourly_budget=3)
    for number in range(5):
        store_submission(form, {"email": f"r{number}@example.com", "phone": "", "data": {}},
                         ip="203.0.113.1", user_agent="test")
    assert Submission.objects.filter(held_reason=HoldReason.FORM_BUDGET).count() == 2
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    [key] = client.keys(f"esp_forms:abuse:form:{form.pk}:*")
    assert int(client.get(key)) == 5 and 3600 < client.ttl(key) <= 7200
    assert [m.to for m in mail.outbox if "hourly budget" in m.subject] == [["ops@example.com"]]
