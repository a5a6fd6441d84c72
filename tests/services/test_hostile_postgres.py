"""Hostile bodies on PostgreSQL, which refuses what SQLite stores: lone surrogates and NUL
characters must be answered 400 before any query, never reach the database as a 500."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from esp_forms.models import ProviderAccount, Submission
from tests.conftest import make_form, token
from tests.fuzz.test_fuzz_endpoints import (  # noqa: F401 (the fuzz tests, run here on PostgreSQL)
    site,
    test_api_submit,
    test_html_form_post,
    test_webhooks,
)

pytestmark = pytest.mark.services

BODIES = [b'{"email": "ann\\u0000@example.com"}', b'{"email": "\\ud800@example.com"}',
          b'[{"email": "ann\\u0000@example.com", "activity": "unsubscribed"}]',
          b'{"events_by_user": [{"events": [{"event_name": "subscribe", '
          b'"event_data": {"email": "\\u0000"}}]}]}']


@pytest.mark.parametrize("raw", BODIES)
def test_authenticated_webhooks_never_query_with_unstorable_text(raw):
    client = Client(raise_request_exception=False)
    for provider in ("esputnik", "unisender"):
        account = ProviderAccount.objects.create(name=provider, provider=provider,
                                                 api_key="k" * 20)
        url = reverse("esp_forms:webhook", args=[provider, account.pk])
        response = client.generic("POST", f"{url}?secret={account.webhook_secret}", raw,
                                  content_type="application/json")
        assert response.status_code == 400, (provider, response.content[:300])


@pytest.mark.parametrize("body", [
    b'{"email": "ann@example.com", "first_name": "Ann\\u0000", "form_token": "%s"}',
    b'{"email": "ann@example.com", "\\u0000": 1, "form_token": "%s"}',
    b'{"email": "ann@example.com", "fields": {"note": "a\\u0000b"}, "form_token": "%s"}',
])
def test_api_answers_400_for_nul_characters(body):
    account = ProviderAccount.objects.create(name="Sandbox", provider="sandbox")
    make_form(account, "nul")
    response = Client(raise_request_exception=False).generic(
        "POST", reverse("esp_forms:api_submit", args=["nul"]), body % token("nul").encode(),
        content_type="application/json")
    assert response.status_code == 400, response.content
    assert not Submission.objects.exists()


def test_html_form_answers_400_for_nul_characters():
    account = ProviderAccount.objects.create(name="Sandbox", provider="sandbox")
    make_form(account, "nul")
    response = Client(raise_request_exception=False).generic(
        "POST", reverse("esp_forms:form", args=["nul"]),
        f"email=ann%40example.com%00&form_token={token('nul')}".encode(),
        content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400, response.content[:300]
