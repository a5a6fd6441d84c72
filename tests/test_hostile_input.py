"""Hostile request bodies: codec charsets, lone surrogates, deep nesting, wrong shapes, sizes.

Each answer is a 4xx in the API's error shape, never a 500, and nothing is stored.
"""

from __future__ import annotations

import bz2
import codecs
import json
import zlib

import pytest
from django.test import Client
from django.urls import reverse

from esp_forms import request_body
from esp_forms.models import ProviderAccount, Submission
from tests.conftest import token

pytestmark = pytest.mark.django_db

CODECS = ["zlib", "bz2", "base64", "rot13", "hex", "uu", "quopri", "zip", "base_64",
          "unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "utf-7"]


def body_in(charset: str, text: str) -> bytes:
    raw = text.encode()
    try:
        return codecs.encode(raw, charset) if charset not in ("rot13",) else raw
    except (LookupError, TypeError, ValueError, AttributeError):
        return raw


def api_url(form_type: str = "newsletter") -> str:
    return reverse("esp_forms:api_submit", args=[form_type])


def form_url(form_type: str = "newsletter") -> str:
    return reverse("esp_forms:form", args=[form_type])


def post(path: str, raw: bytes, content_type: str, **extra):
    return Client().generic("POST", path, raw, content_type=content_type, **extra)


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["ok"] is False and body["message"]
    assert "ErrorDetail" not in response.content.decode()
    return body


@pytest.fixture
def esputnik_account(db) -> ProviderAccount:
    return ProviderAccount.objects.create(name="eSputnik", provider="esputnik", api_key="k" * 20)


@pytest.fixture
def unisender_account(db) -> ProviderAccount:
    return ProviderAccount.objects.create(name="UniSender", provider="unisender",
                                          api_key="u" * 20)


def webhook_url(account: ProviderAccount, secret: bool = True) -> str:
    url = reverse("esp_forms:webhook", args=[account.provider, account.pk])
    return f"{url}?secret={account.webhook_secret}" if secret else url


# --- charsets -------------------------------------------------------------------------------

def test_only_text_encodings_are_charsets():
    for name in ("utf-8", "UTF8", "utf-16", "latin-1", "cp1251", "koi8-r", "ascii", "utf-8-sig"):
        assert request_body.text_encoding(name)
    for name in CODECS + ["no-such-charset", "", "utf-8\x00"]:
        with pytest.raises(request_body.BodyError) as err:
            request_body.text_encoding(name)
        assert err.value.status == 415


@pytest.mark.parametrize("charset", CODECS)
def test_api_rejects_codec_charsets_with_415(newsletter, charset):
    raw = body_in(charset, json.dumps({"email": "ann@example.com", "form_token": token()}))
    response = post(api_url(), raw, f"application/json; charset={charset}")
    body = assert_json_error(response, 415)
    assert charset in body["message"] and "UTF-8" in body["message"]
    assert not Submission.objects.exists()


def test_zlib_bomb_is_not_inflated(newsletter):
    bomb = zlib.compress(json.dumps({"email": "ann@example.com", "x": "a" * 5_000_000}).encode())
    assert len(bomb) < 50_000
    assert_json_error(post(api_url(), bomb, "application/json; charset=zlib"), 415)
    assert not Submission.objects.exists()


def test_api_accepts_real_text_encodings(newsletter):
    text = json.dumps({"email": "ann@example.com", "first_name": "Олена",
                       "form_token": token()}, ensure_ascii=False)
    for charset in ("utf-8", "utf-16", "cp1251"):
        response = post(api_url(), text.encode(charset), f"application/json; charset={charset}")
        assert response.status_code == 202, (charset, response.content)
    assert Submission.objects.get().data == {"first_name": "Олена"}


@pytest.mark.parametrize("charset", ["zlib", "bz2", "base64", "rot13", "hex", "utf-16"])
def test_html_form_post_rejects_codec_and_non_utf8_charsets(newsletter, charset):
    raw = f"email=ann%40example.com&form_token={token()}".encode()
    response = post(form_url(), raw, f"application/x-www-form-urlencoded; charset={charset}")
    assert_json_error(response, 415)
    assert not Submission.objects.exists()


@pytest.mark.parametrize("charset", ["zlib", "bz2", "base64", "hex"])
def test_webhooks_reject_codec_charsets(esputnik_account, unisender_account, charset):
    for account in (esputnik_account, unisender_account):
        raw = body_in(charset, json.dumps({"email": "ann@example.com"}))
        response = post(webhook_url(account, secret=False), raw,
                        f"application/json; charset={charset}")
        assert response.status_code == 415, response.content
        assert charset in response.json()["message"]


@pytest.mark.parametrize("charset", ["utf-16", "cp1251", "zlib"])
def test_wsgi_guard_refuses_non_utf8_form_posts_for_every_view(charset):
    """The admin's login form too: Django's own refusal of these comes from inside
    CsrfViewMiddleware, whose error page reads the body again and turns it into a 500."""
    from project.wsgi import application

    calls = []
    raw = b"username=a&password=b"
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/admin/login/", "QUERY_STRING": "",
        "CONTENT_TYPE": f"application/x-www-form-urlencoded; charset={charset}",
        "CONTENT_LENGTH": str(len(raw)), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "wsgi.input": __import__("io").BytesIO(raw), "wsgi.url_scheme": "http",
    }
    b"".join(application(environ, lambda status, headers: calls.append(status)))
    assert calls[0].startswith("415")


def test_wsgi_guard_answers_415_before_django_reads_the_query_string():
    """Django decodes the query string with the declared charset while it builds the request,
    before any middleware: only the WSGI entry point can answer."""
    from project.wsgi import application

    calls = []

    def start_response(status, headers):
        calls.append((status, dict(headers)))

    raw = bz2.compress(b'{"email": "ann@example.com"}')
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/esp-forms/forms/newsletter/submissions/",
        "QUERY_STRING": "a=1", "CONTENT_TYPE": "application/json; charset=bz2",
        "CONTENT_LENGTH": str(len(raw)), "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "wsgi.input": __import__("io").BytesIO(raw), "wsgi.url_scheme": "http",
    }
    body = b"".join(application(environ, start_response))
    assert calls[0][0].startswith("415")
    assert calls[0][1]["Content-Type"] == "application/json"
    assert "bz2" in json.loads(body)["message"]


# --- lone surrogates --------------------------------------------------------------------------

SURROGATE_BODIES = [
    b'{"\\ud800": 1}',
    b'{"email": "\\ud800@example.com"}',
    b'{"email": "ann@example.com", "first_name": "\\udc00"}',
    b'{"email": "ann@example.com", "fields": {"\\udfff": "x"}}',
    b'{"email": "ann@example.com", "form_token": "\\ud83d"}',
]


@pytest.mark.parametrize("raw", SURROGATE_BODIES)
def test_api_rejects_lone_surrogates_with_400(newsletter, raw):
    body = assert_json_error(post(api_url(), raw, "application/json"), 400)
    assert "Unicode" in body["message"]
    assert not Submission.objects.exists()


def test_surrogate_pairs_are_real_characters(newsletter):
    raw = b'{"email": "ann@example.com", "first_name": "Ann \\ud83d\\ude00", "form_token": "%s"}'
    response = post(api_url(), raw % token().encode(), "application/json")
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("raw", [
    b"email=%ED%A0%80%40example.com",  # an encoded surrogate: not UTF-8
    b"email=ann%40example.com&first_name=%FF%FE",  # not UTF-8 at all
    b"email=ann%40example.com&first_name=\xff\xfe",  # raw bytes, not UTF-8
    b"%ED%A0%80=1&email=ann%40example.com",
])
def test_html_form_rejects_invalid_utf8_instead_of_storing_replacement_chars(newsletter, raw):
    raw += b"&form_token=" + token().encode()
    response = post(form_url(), raw, "application/x-www-form-urlencoded")
    body = assert_json_error(response, 400)
    assert "UTF-8" in body["message"]
    assert not Submission.objects.exists()


def test_html_form_multipart_rejects_invalid_utf8(newsletter):
    boundary = "XyZ"
    parts = [("email", b"ann@example.com"), ("first_name", b"\xc3\x28"),
             ("form_token", token().encode())]
    raw = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"" +
        name.encode() + b"\"\r\n\r\n" + value + b"\r\n" for name, value in parts
    ) + b"--" + boundary.encode() + b"--\r\n"
    response = post(form_url(), raw, f"multipart/form-data; boundary={boundary}")
    assert_json_error(response, 400)
    assert not Submission.objects.exists()


def test_html_form_still_takes_valid_utf8(newsletter):
    raw = ("email=ann%40example.com&first_name=%D0%9E%D0%BB%D0%B5%D0%BD%D0%B0&form_token="
           + token()).encode()
    response = post(form_url(), raw, "application/x-www-form-urlencoded; charset=UTF-8")
    assert response.status_code == 200, response.content[:300]
    assert Submission.objects.get().data == {"first_name": "Олена"}


@pytest.mark.parametrize("raw", [
    b'{"email": "\\ud800@example.com", "secret": "x"}',
    b'[{"email": "ann@example.com", "activity": "\\udfff"}]',
    b'{"auth": "\\ud800", "events_by_user": []}',
])
def test_webhooks_reject_lone_surrogates(esputnik_account, unisender_account, raw):
    for account in (esputnik_account, unisender_account):
        for secret in (False, True):
            response = post(webhook_url(account, secret), raw, "application/json")
            assert response.status_code == 400, response.content


# --- nesting and shapes -----------------------------------------------------------------------

DEEP = [b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"[" * 500 + b"]" * 500]


@pytest.mark.parametrize("raw", DEEP)
def test_deep_nesting_is_a_400_everywhere(newsletter, esputnik_account, unisender_account, raw):
    assert_json_error(post(api_url(), raw, "application/json"), 400)
    for account in (esputnik_account, unisender_account):
        for secret in (False, True):
            response = post(webhook_url(account, secret), raw, "application/json")
            assert response.status_code == 400, response.content[:200]


@pytest.mark.parametrize("raw", [
    b'{"events_by_user": "x"}', b'{"events_by_user": [1, "x", {"events": 5}]}',
    b'{"events_by_user": [{"events": [{"event_name": "x", "event_data": [1, 2]}]}]}',
    b'{"events_by_user": [{"events": [{"event_data": {"email": {"a": 1}}}]}]}',
    b'{"email": ["a"]}', b'[1, "x", null, {"email": {"x": 1}}]', b'"just a string"', b"42",
    b'{"email": 12345678901234567890}', b"email=x&email=y",
])
def test_wrong_webhook_shapes_are_4xx_after_authentication(esputnik_account, unisender_account,
                                                           raw):
    for account in (esputnik_account, unisender_account):
        response = post(webhook_url(account), raw, "application/json")
        assert response.status_code < 500, (account.provider, response.content[:300])


def test_webhook_body_size_is_limited(esputnik_account, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    raw = json.dumps({"email": "ann@example.com", "pad": "x" * 20_000}).encode()
    response = post(webhook_url(esputnik_account), raw, "application/json")
    assert response.status_code == 413


def test_api_body_size_is_limited(newsletter, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    raw = json.dumps({"email": "ann@example.com", "pad": "x" * 20_000}).encode()
    assert_json_error(post(api_url(), raw, "application/json"), 413)


# --- bounded answers --------------------------------------------------------------------------

def test_100k_unknown_keys_get_a_small_answer(newsletter):
    raw = json.dumps({f"key{i}": 1 for i in range(100_000)}).encode()
    response = post(api_url(), raw, "application/json")
    body = assert_json_error(response, 400)
    assert len(response.content) < 4_000
    assert "99,995 more" in json.dumps(body) or "99995 more" in json.dumps(body)


def test_many_unknown_custom_fields_get_a_small_answer(newsletter):
    raw = json.dumps({"email": "ann@example.com",
                      "fields": {f"f{i}": 1 for i in range(50_000)}}).encode()
    response = post(api_url(), raw, "application/json")
    assert_json_error(response, 400)
    assert len(response.content) < 4_000


def test_a_huge_unknown_key_is_not_echoed_whole(newsletter):
    raw = json.dumps({"k" * 500_000: 1}).encode()
    response = post(api_url(), raw, "application/json")
    assert_json_error(response, 400)
    assert len(response.content) < 2_000


def test_nested_field_errors_are_human_text(newsletter):
    raw = json.dumps({"email": "ann@example.com", "fields": "x", "consent": [1],
                      "first_name": {"a": 1}}).encode()
    response = post(api_url(), raw, "application/json")
    body = assert_json_error(response, 400)
    for messages in body["errors"].values():
        assert all(isinstance(m, str) and "ErrorDetail" not in m and "{" not in m
                   for m in messages)


# --- JSON everywhere under the API prefix -----------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/esp-forms/submissions/not-a-uuid/", "/api/esp-forms/forms/newsletter.json/",
    "/api/esp-forms/nothing/", "/api/esp-forms/", "/api/esp-forms/forms/%ED%A0%80/",
    "/api/esp-forms/forms/newsletter/submissions/extra/",
])
def test_unknown_api_paths_answer_json_404(newsletter, path):
    for method in ("get", "post", "put", "delete"):
        response = getattr(Client(), method)(path)
        assert_json_error(response, 404)


def test_api_path_without_slash_points_to_the_right_one(newsletter):
    response = Client().post("/api/esp-forms/forms/newsletter/submissions",
                             b"{}", content_type="application/json")
    body = assert_json_error(response, 404)
    assert "/api/esp-forms/forms/newsletter/submissions/" in body["message"]


def test_the_schema_answers_json_by_default(db):
    response = Client().get("/api/esp-forms/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert json.loads(response.content)["info"]["title"] == "esp_forms API"
    assert Client().get("/api/esp-forms/schema/?format=yaml").content.startswith(b"openapi:")


def test_an_unexpected_error_in_the_api_is_still_json(newsletter, monkeypatch):
    from esp_forms.api import views

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views, "FormLayout", broken)
    response = Client(raise_request_exception=False).get(
        reverse("esp_forms:api_form", args=["newsletter"]))
    body = assert_json_error(response, 500)
    assert "a bug" not in body["message"]


@pytest.mark.parametrize("content_type, raw", [
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=email\r\n\r\na\r\n--x--"),
    ("multipart/form-data; boundary=", b"garbage"),
    ("multipart/form-data; boundary=x", b"garbage without parts"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--"),
    ("multipart/form-data; boundary=" + "x" * 100, b"--x"),
])
def test_malformed_multipart_is_never_a_500(newsletter, esputnik_account, content_type, raw):
    client = Client(raise_request_exception=False)
    response = client.generic("POST", form_url(), raw, content_type=content_type)
    # Unreadable: the JSON error shape; readable but empty: the form's own 400 page.
    assert response.status_code == 400
    # An authenticated callback without a usable event is acknowledged (200), never a 500.
    response = client.generic("POST", webhook_url(esputnik_account), raw,
                              content_type=content_type)
    assert response.status_code < 500
    assert not Submission.objects.exists()
