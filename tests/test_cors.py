"""CORS: only the JSON API, only for the origins the form allows."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from esp_forms import spam
from esp_forms.cors import normalise_origin
from esp_forms.models import Submission
from tests.conftest import make_form

SHOP = "https://shop.example.com"
ACAO = "Access-Control-Allow-Origin"


@pytest.fixture
def shop_form(sandbox_account):
    return make_form(sandbox_account, "shop",
                     allowed_origins="https://shop.example.com/\nhttp://localhost:3000")


def preflight(path: str, origin: str):
    return Client().options(path, HTTP_ORIGIN=origin,
                            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type")


def submit_url(form_type: str = "shop") -> str:
    return reverse("esp_forms:api_submit", args=[form_type])


def test_preflight_allowed_for_a_listed_origin(shop_form):
    response = preflight(submit_url(), SHOP)
    assert response.status_code == 200
    assert response[ACAO] == SHOP
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "content-type" in response["Access-Control-Allow-Headers"]


def test_post_from_a_listed_origin_can_read_the_answer(shop_form):
    token = spam.issue_token("shop", issued_at=time.time() - 10)
    response = Client().post(submit_url(), {"email": "ann@example.com", "form_token": token},
                             content_type="application/json", HTTP_ORIGIN=SHOP)
    assert response.status_code == 202
    assert response[ACAO] == SHOP
    # Credentials are never allowed: the API uses no cookies.
    assert "Access-Control-Allow-Credentials" not in response


def test_schema_and_status_follow_the_form(shop_form):
    response = Client().get(reverse("esp_forms:api_form", args=["shop"]),
                            HTTP_ORIGIN="http://localhost:3000")
    assert response[ACAO] == "http://localhost:3000"
    submission = Submission.objects.create(form=shop_form, email="ann@example.com")
    response = Client().get(reverse("esp_forms:api_status", args=[submission.pk]),
                            HTTP_ORIGIN=SHOP)
    assert response[ACAO] == SHOP
    decoy = spam.decoy_submission_id(shop_form)
    response = Client().get(reverse("esp_forms:api_status", args=[decoy]), HTTP_ORIGIN=SHOP)
    assert response.status_code == 200
    assert response[ACAO] == SHOP


@pytest.mark.parametrize("origin", ["https://evil.example", "http://shop.example.com",
                                    "https://shop.example.com:8443", "null", "not a url"])
def test_other_origins_are_denied(shop_form, origin):
    assert ACAO not in preflight(submit_url(), origin)
    assert ACAO not in Client().get(reverse("esp_forms:api_form", args=["shop"]),
                                    HTTP_ORIGIN=origin)


def test_an_origin_allowed_by_one_form_is_denied_for_another(shop_form, newsletter):
    assert ACAO not in preflight(submit_url("newsletter"), SHOP)


def test_unknown_or_inactive_forms_are_denied(shop_form, sandbox_account):
    make_form(sandbox_account, "closed", is_active=False, allowed_origins=SHOP)
    assert ACAO not in preflight(submit_url("closed"), SHOP)
    assert ACAO not in preflight(submit_url("missing"), SHOP)


def test_html_form_and_other_paths_are_never_cors(shop_form):
    assert ACAO not in preflight(reverse("esp_forms:form", args=["shop"]), SHOP)
    assert ACAO not in Client().get(reverse("esp_forms:api_schema"), HTTP_ORIGIN=SHOP)
    assert ACAO not in Client().get("/", HTTP_ORIGIN=SHOP)


@pytest.mark.parametrize("raw, expected", [
    ("https://Shop.Example.com", "https://shop.example.com"),
    ("https://shop.example.com:443/", "https://shop.example.com"),
    ("http://localhost:3000", "http://localhost:3000"),
    ("http://[::1]:8000", "http://[::1]:8000"),
    ("ftp://example.com", None),
    ("https://example.com/path", None),
    ("https://example.com:99999", None),
    ("null", None),
])
def test_normalise_origin(raw, expected):
    assert normalise_origin(raw) == expected
