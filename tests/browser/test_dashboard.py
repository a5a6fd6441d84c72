"""The admin dashboard and the demo's language switcher in a real browser.

The dashboard screenshots in docs/img/ come from here: run this module, then copy
test-artifacts/admin-dashboard.png and admin-dashboard-ru.png there.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from esp_forms.models import (
    DeliveryStatus,
    OptinStatus,
    ProviderAccount,
    SignupForm,
    SpamCount,
    Submission,
)
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_admin_pages import admin_page  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def seed_history(days: int = 14) -> None:
    """Two weeks of signups on the demo forms, with every outcome (fixed seed)."""
    rng = random.Random(7)
    now = timezone.now()
    rows, spam = [], []
    for form in SignupForm.objects.filter(form_type__in=["newsletter", "esputnik-news"]):
        for ago in range(days - 1, -1, -1):
            created = now - timedelta(days=ago, hours=rng.randint(0, 6))
            for n in range(rng.randint(6, 22)):
                roll = rng.random()
                delivery, optin = DeliveryStatus.DELIVERED, OptinStatus.UNCONFIRMED
                if roll < 0.06:
                    delivery = DeliveryStatus.FAILED
                elif roll < 0.55 and ago > 0:
                    optin = OptinStatus.CONFIRMED
                elif ago == 0 and roll > 0.8:
                    delivery = DeliveryStatus.PENDING  # a few minutes old: in the queue
                elif ago > 7 and roll > 0.85:
                    optin = OptinStatus.EXPIRED
                at = (now - timedelta(minutes=rng.randint(1, 8))
                      if delivery == DeliveryStatus.PENDING else created)
                rows.append(Submission(
                    form=form, email=f"{form.form_type}-{ago}-{n}@example.com",
                    delivery_status=delivery, optin_status=optin, created_at=at,
                    next_attempt_at=at if delivery == DeliveryStatus.PENDING else None))
            spam.append(SpamCount(form=form, reason="honeypot", day=created.date(),
                                  count=rng.randint(0, 5)))
    Submission.objects.bulk_create(rows)
    SpamCount.objects.bulk_create(spam)
    # One pending signup stuck for half an hour, and a broken account: both need attention.
    stuck = rows[-1]
    Submission.objects.filter(pk=stuck.pk).update(
        delivery_status=DeliveryStatus.PENDING, created_at=now - timedelta(minutes=35))
    ProviderAccount.objects.filter(provider="unisender").update(
        config_error="UniSender refused the API key (invalid_api_key)", config_error_at=now)


def test_dashboard_from_the_app_index(admin_page, shot):  # noqa: F811
    page = admin_page
    seed_history()
    page.goto("/admin/esp_forms/")
    page.get_by_role("link", name="Signups dashboard").click()
    page.wait_for_url("**/admin/esp_forms/signupform/dashboard/")
    assert page.title().startswith("Signups dashboard")

    health = page.locator(".esp-health")
    oldest = health.locator('[data-health="oldest_pending"]')
    assert "35 minutes" in oldest.inner_text() and "Needs attention" in oldest.inner_text()
    accounts = health.locator('[data-health="failing_accounts"]')
    assert "Needs attention" in accounts.inner_text()
    assert "UniSender" in accounts.inner_text()

    panel = page.locator('[data-form="newsletter"]')
    # Charts are images with accessible names and descriptions, drawn on the server.
    bars = panel.get_by_role("img", name="Signups per day for newsletter")
    assert bars.is_visible()
    box = bars.bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    assert bars.locator("rect").count() > 14 * 3
    assert panel.get_by_role("img", name="Confirmation rate per day for newsletter").is_visible()
    # What the README shows: the top of the page, down to the first form's two charts.
    page.set_viewport_size({"width": 1280, "height": 1100})
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"))
    legend = panel.locator(".esp-legend").inner_text()
    for label in ("failed", "confirmed", "delivered", "pending", "spam"):
        assert f"{label}:" in legend
    assert "confirmation rate" in panel.locator(".esp-sub").inner_text()
    # The numbers behind the bars, for anyone who cannot see them.
    panel.get_by_text("Numbers per day").click()
    assert panel.locator("details table tbody tr").count() == 14
    shot(page, "admin-dashboard-full")

    page.locator(".esp-periods").get_by_role("link", name="30 days").click()
    page.wait_for_url("**/dashboard/?days=30")
    assert panel.get_by_role("img", name="Signups per day for newsletter").is_visible()


def test_dashboard_in_russian(browser, live_server, demo_site, shot):
    from tests.browser.conftest import ADMIN_PASSWORD

    seed_history()
    context = browser.new_context(base_url=live_server.url, locale="ru-RU",
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 1100})
    page.goto("/admin/login/?next=/admin/esp_forms/signupform/dashboard/")
    page.fill('[name="username"]', "admin")
    page.fill('[name="password"]', ADMIN_PASSWORD)
    page.click('[type="submit"]')
    page.wait_for_url("**/dashboard/")
    assert page.locator("h1").inner_text() == "Панель подписок"
    assert "Состояние очереди" in page.content()
    assert page.get_by_role("img", name="Подписки по дням для newsletter").is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin-dashboard-ru.png"))
    # The form editor's drag handles (added by the admin script) speak Russian too.
    form = SignupForm.objects.get(form_type="newsletter")
    page.goto(f"/admin/esp_forms/signupform/{form.pk}/change/")
    handle = page.locator(".esp-forms-handle").first
    handle.wait_for()
    assert handle.get_attribute("title") == "Перетащите, чтобы изменить порядок"
    context.close()


def test_language_switcher_on_the_demo(page, shot):
    page.goto("/")
    form = page.locator('form[data-esp-form="newsletter"]')
    assert form.locator('button[type="submit"]').inner_text() == "Subscribe"
    page.get_by_role("button", name="RU").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "ru"
    assert form.locator('button[type="submit"]').inner_text() == "Подписаться"
    assert page.get_by_role("button", name="RU").get_attribute("aria-pressed") == "true"
    # The script's messages follow too: a wrong address gets a Russian error.
    form.locator('[name="email"]').fill("ann@")
    form.locator('button[type="submit"]').click()
    error = form.locator(".esp-form__error").first
    error.wait_for()
    assert "адрес" in error.inner_text()
    shot(page, "demo-language-ru")
    page.get_by_role("button", name="UK").click()
    page.wait_for_load_state()
    assert form.locator('button[type="submit"]').inner_text() == "Підписатися"
