"""Invalid input is never stored: overlong local parts, invisible and control characters in
names, phone extensions. Each gets a sentence a person understands."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from esp_forms.forms import SignupSubmissionForm
from esp_forms.models import FieldKind, Submission
from tests.conftest import make_form, token

pytestmark = pytest.mark.django_db


@pytest.fixture
def names_form(sandbox_account):
    return make_form(sandbox_account, "names", fields=[
        {"name": "first_name", "kind": FieldKind.FIRST_NAME},
        {"name": "last_name", "kind": FieldKind.LAST_NAME},
        {"name": "phone", "kind": FieldKind.PHONE},
        {"name": "company", "kind": FieldKind.TEXT},
    ])


def bind(form, **data) -> SignupSubmissionForm:
    data.setdefault("email", "ann@example.com")
    data.setdefault("form_token", token(form.form_type))
    return SignupSubmissionForm(form, data=data)


def api(form_type: str, body: dict):
    body.setdefault("form_token", token(form_type))
    return Client().post(reverse("esp_forms:api_submit", args=[form_type]), json.dumps(body),
                         content_type="application/json")


def test_local_part_longer_than_64_is_rejected(names_form):
    form = bind(names_form, email="a" * 65 + "@example.com")
    assert not form.is_valid()
    assert "64" in form.errors["email"][0]
    assert bind(names_form, email="a" * 64 + "@example.com").is_valid()
    # Counted in bytes, as SMTP does: 33 two-byte letters are 66 bytes.
    assert not bind(names_form, email="ж" * 33 + "@example.com").is_valid()


@pytest.mark.parametrize("name", [
    "Ann\u202eeL", "\u2066Ann\u2069", "Ann\u200b", "A\u2060nn", "\ufeffAnn", "Ann\x00",
    "Ann\x1b[31m", "Ann\nLee", "Ann\tLee", "Ann\x7f", "Ann\u00ad", "Ann\ue000",
    "\ufffd\ufffd",  # what a broken encoding leaves: never a name (found by tests/fuzz)
])
def test_invisible_and_control_characters_in_names_are_rejected(names_form, name):
    for field in ("first_name", "last_name", "company"):
        form = bind(names_form, **{field: name})
        assert not form.is_valid(), (field, ascii(name))
        message = form.errors[field][0]
        assert "invisible" in message or "control" in message, message
        assert "U+" in message


def test_names_are_normalised(names_form):
    form = bind(names_form, first_name="  Ann   Marie ", last_name="Zoe\u0301",
                company="Ко\u0301рпорація")
    assert form.is_valid(), form.errors
    data = form.submission_values()["data"]
    assert data["first_name"] == "Ann Marie"
    assert data["last_name"] == "Zoé"  # NFC: one code point
    assert data["company"] == "Ко́рпорація"


@pytest.mark.parametrize("name", ["Олена", "José", "李雷", "O'Brien-Smith", "محمد",
                                  "می\u200cخواهم", "👩\u200d💻 Ann"])
def test_real_names_pass(names_form, name):
    form = bind(names_form, first_name=name)
    assert form.is_valid(), (name, form.errors)


@pytest.mark.parametrize("phone", ["+380501234567 ext. 12", "+380501234567;ext=12",
                                   "+1 650 253 0000 x123", "+380501234567 доб. 5"])
def test_phone_extensions_are_rejected_not_dropped(names_form, phone):
    form = bind(names_form, phone=phone)
    assert not form.is_valid()
    assert "extension" in form.errors["phone"][0]


def test_rejected_input_stores_nothing_through_the_api(names_form):
    for body in ({"email": "a" * 65 + "@example.com"},
                 {"email": "ann@example.com", "first_name": "Ann\u202e"},
                 {"email": "ann@example.com", "phone": "+380501234567 ext. 12"}):
        response = api("names", body)
        assert response.status_code == 400, response.content
        text = response.content.decode()
        assert "ErrorDetail" not in text and "[" not in response.json()["message"]
    assert not Submission.objects.exists()
