"""Property-based attack on every public endpoint (``-m fuzz``; ``make test`` runs it).

Hypothesis throws arbitrary JSON, form bodies, raw bytes, charsets, unicode, sizes and shapes
at the JSON API, the HTML form, both provider webhooks and any path under the API prefix. For
every answer: no status >= 500, a bounded body, and no row unless the input was valid (every
stored row passes the form's validation again).
"""

from __future__ import annotations

import json
import os
import string
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from esp_forms.forms import SignupSubmissionForm, forbidden_character
from esp_forms.models import FieldKind, ProviderAccount, SignupForm, Submission
from esp_forms.request_body import reject_codec_charsets
from tests.conftest import make_form, token

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

# CI runs 120 examples per test (about a minute in all); FUZZ_EXAMPLES=2000 for a deep run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
# The default run is derandomized (the same examples every time, so CI is reproducible); a
# deep run with FUZZ_EXAMPLES explores new ones.
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize="FUZZ_EXAMPLES" not in os.environ, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
JSON_ANSWER_LIMIT = 8_000
HTML_ANSWER_LIMIT = 64_000

# --- strategies -----------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None), max_size=80)  # any code point, surrogates too
nasty_chars = st.sampled_from(["\ud800", "\udfff", "\u202e", "\u200b", "\x00", "\x1b", "\ufeff",
                               "\ufffd", "\u0301", "'", '"', "<", "%", "\\", "\n", "😀"])
names = st.one_of(any_text, st.lists(st.one_of(nasty_chars, st.sampled_from(
    ["Ann", "Олена", "李", " ", "x" * 300])), max_size=6).map("".join))
plausible_emails = st.builds("{}@{}.com".format,
                             st.text(string.ascii_lowercase + "._+-", min_size=1, max_size=70),
                             st.text(string.ascii_lowercase, min_size=1, max_size=12))
plain_names = st.text(st.characters(categories=["L", "M", "Zs", "Pd"]), max_size=40)
emails = st.one_of(plausible_emails, st.emails(), any_text,
                   st.builds(lambda a, b: f"{a}@{b}", any_text, any_text),
                   st.builds(lambda n: "a" * n + "@example.com", st.integers(60, 70)))
phones = st.one_of(any_text, st.sampled_from(["+380501234567", "+380501234567 ext. 5",
                                              "050 123 45 67", "+1 650 253 0000 x1"]))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         any_text)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)), max_leaves=20)
charsets = st.one_of(st.none(), st.just("utf-8"), st.sampled_from([
    "utf-8", "UTF-8", "utf-16", "utf-32", "latin-1", "cp1251", "ascii", "zlib", "bz2", "base64",
    "rot13", "hex", "uu", "quopri", "unicode_escape", "idna", "utf-7", "undefined", "nope",
    "", '"utf-8"', "utf-8; charset=zlib"]), st.text(string.printable, max_size=12))


def submission_bodies(form_type: str):
    known = st.fixed_dictionaries({}, optional={
        "email": st.one_of(emails, json_values), "first_name": st.one_of(names, json_values),
        "phone": st.one_of(phones, json_values), "consent": json_values,
        "fields": st.one_of(json_values, st.dictionaries(any_text, json_values, max_size=5)),
        "form_token": st.one_of(st.just(token(form_type)), any_text, json_values),
        "website": json_values,
    })
    # Mostly right, one thing possibly wrong: what reaches the validation and the database.
    nearly_valid = st.fixed_dictionaries(
        {"email": plausible_emails, "form_token": st.just(token(form_type))},
        optional={"first_name": st.one_of(plain_names, names), "phone": phones,
                  "fields": st.fixed_dictionaries({}, optional={
                      "topic": st.sampled_from(["a", "b", "c", ""]), "agree": json_values,
                      "born": st.one_of(st.dates().map(str), any_text),
                      "note": st.one_of(plain_names, names)})})
    return st.one_of(nearly_valid, known, json_values,
                     st.dictionaries(any_text, json_values, max_size=8))


def encode(body, charset: str | None) -> bytes:
    """A body as JSON bytes: in the declared charset when it is one, else UTF-8 (surrogate
    escapes kept as JSON escapes)."""
    text = json.dumps(body)  # ensure_ascii: lone surrogates become \\udXXX escapes
    try:
        return text.encode(charset or "utf-8")
    except (LookupError, UnicodeError, TypeError):
        return text.encode()


raw_bytes_only = st.one_of(st.binary(max_size=300), st.sampled_from([
    b"[" * 5000, b'{"a":' * 2000, b"", b"null", b"1e999999", b"NaN", b'"\\ud800"',
    b'{"email": "\\ud800"}', b"\xff\xfe\x00", b'{"email": 1}' * 100]))
# A raw body (instead of one built from the drawn values) a quarter of the time.
maybe_raw = st.one_of(st.none(), st.none(), st.none(), raw_bytes_only)


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def site(db, settings, sandbox_account):
    settings.DEBUG = False
    settings.ESP_FORMS = {**settings.ESP_FORMS, "MIN_FILL_SECONDS": 0,
                          "SUBMIT_THROTTLE": "1000000/min"}
    form = make_form(sandbox_account, "fuzz", consent_text="", fields=[
        {"name": "first_name", "kind": FieldKind.FIRST_NAME},
        {"name": "phone", "kind": FieldKind.PHONE},
        {"name": "topic", "kind": FieldKind.CHOICE, "choices": "a|A\nb|B"},
        {"name": "agree", "kind": FieldKind.CHECKBOX},
        {"name": "born", "kind": FieldKind.DATE},
        {"name": "note", "kind": FieldKind.TEXT},
    ])
    esputnik = ProviderAccount.objects.create(name="es", provider="esputnik", api_key="e" * 20)
    unisender = ProviderAccount.objects.create(name="uni", provider="unisender",
                                               api_key="u" * 20)
    return {"form": form, "accounts": [esputnik, unisender]}


class Answer:
    """What the WSGI guard answered by itself, shaped like a test client response."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code = int(status.split()[0])
        self.headers = dict(headers)
        self.content = body

    def __getitem__(self, name: str) -> str:
        return self.headers[name]


class GuardedClient(Client):
    """The test client behind the demo's WSGI guard (project/wsgi.py), as requests reach the
    demo: the guard answers codec charsets itself, everything else goes on to Django."""

    def generic(self, method, path, data="", content_type="application/octet-stream",
                **extra):
        answered: list = []

        def start_response(status, headers):
            answered.append((status, headers))

        def django(environ, start_response):
            return None

        body = reject_codec_charsets(django)({"CONTENT_TYPE": content_type}, start_response)
        if body is not None:
            return Answer(answered[0][0], answered[0][1], b"".join(body))
        return super().generic(method, path, data, content_type=content_type, **extra)


def client() -> Client:
    return GuardedClient(raise_request_exception=bool(os.environ.get("FUZZ_RAISE")))


def check(response, *, limit: int = JSON_ANSWER_LIMIT) -> None:
    event(f"status {response.status_code}")  # shown by --hypothesis-show-statistics
    assert response.status_code < 500, (response.status_code, response.content[:500])
    assert len(response.content) <= limit, (response.status_code, len(response.content))


def assert_rows_valid(form: SignupForm) -> None:
    """Every stored row is valid input: it passes the same form again, unchanged."""
    for row in Submission.objects.filter(form=form):
        data = {"email": row.email, "phone": row.phone, "form_token": token(form.form_type),
                **{k: v for k, v in row.data.items()}}
        bound = SignupSubmissionForm(form, data=data)
        assert bound.is_valid(), (row.email, row.data, bound.errors)
        for value in [row.email, row.phone, *map(str, row.data.values())]:
            assert forbidden_character(value) is None and "\ufffd" not in value, ascii(value)
            value.encode("utf-8")  # no lone surrogate


# --- the API --------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_api_submit(site, data):
    form = site["form"]
    body = data.draw(submission_bodies("fuzz"))
    charset = data.draw(charsets)
    raw = data.draw(maybe_raw)
    content_type = "application/json" + (f"; charset={charset}" if charset is not None else "")
    payload = encode(body, charset) if raw is None else raw
    before = Submission.objects.count()
    response = client().generic("POST", "/api/esp-forms/forms/fuzz/submissions/", payload,
                                content_type=content_type)
    check(response)
    assert response["Content-Type"].startswith("application/json")
    if response.status_code != 202:
        assert Submission.objects.count() == before
    assert_rows_valid(form)


@FUZZ
@given(segment=st.one_of(any_text, st.text(string.printable, max_size=40)),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
def test_api_paths_answer_json(site, segment, method):
    from urllib.parse import quote

    quoted = quote(segment.encode("utf-8", "surrogatepass"), safe="/")
    for path in (f"/api/esp-forms/{quoted}", f"/api/esp-forms/forms/{quoted}/",
                 f"/api/esp-forms/submissions/{quoted}/"):
        response = client().generic(method, path)
        check(response)
        if response.status_code not in (301, 204) and method != "HEAD":
            assert response["Content-Type"].startswith("application/json"), (path, response)


# --- the HTML form --------------------------------------------------------------------------

nearly_valid_form = st.fixed_dictionaries(
    {"email": plausible_emails},
    optional={"first_name": st.one_of(plain_names, names), "phone": phones,
              "topic": st.sampled_from(["a", "b", "x"]), "agree": st.sampled_from(["on", ""]),
              "born": st.one_of(st.dates().map(str), any_text),
              "note": st.one_of(plain_names, names)})
form_values = nearly_valid_form | st.dictionaries(
    st.one_of(st.sampled_from(["email", "first_name", "phone", "topic", "agree", "born", "note",
                               "form_token", "website", "csrfmiddlewaretoken"]), any_text),
    st.one_of(any_text, names, emails, phones), max_size=10)


@FUZZ
@given(values=form_values, charset=charsets, raw=maybe_raw,
       as_json=st.booleans(), multipart=st.booleans(), with_token=st.booleans())
def test_html_form_post(site, values, charset, raw, as_json, multipart, with_token):
    form = site["form"]
    if with_token:
        values["form_token"] = token("fuzz")
    headers = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"} if as_json else {}
    suffix = f"; charset={charset}" if charset is not None else ""
    if raw is not None:
        payload = raw
        content_type = "application/x-www-form-urlencoded" + suffix
    elif multipart:
        boundary = "fuzzBoundary"
        payload = b"".join(
            b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="'
            + k.encode("utf-8", "surrogatepass") + b'"\r\n\r\n'
            + v.encode("utf-8", "surrogatepass") + b"\r\n" for k, v in values.items()
        ) + b"--" + boundary.encode() + b"--\r\n"
        content_type = f"multipart/form-data; boundary={boundary}{suffix}"
    else:
        payload = urlencode({k.encode("utf-8", "surrogatepass"): v.encode("utf-8",
                                                                           "surrogatepass")
                             for k, v in values.items()}).encode()
        content_type = "application/x-www-form-urlencoded" + suffix
    before = Submission.objects.count()
    response = client().generic("POST", "/forms/fuzz/", payload, content_type=content_type,
                                **headers)
    check(response, limit=HTML_ANSWER_LIMIT)
    if response.status_code not in (200, 302):
        assert Submission.objects.count() == before
    assert_rows_valid(form)


# --- the webhooks ---------------------------------------------------------------------------

def webhook_bodies():
    event = st.fixed_dictionaries({}, optional={
        "email": st.one_of(emails, json_values), "activity": json_values, "status": json_values,
        "event_name": json_values, "event_data": json_values, "secret": json_values,
        "auth": json_values, "events": json_values, "contactId": json_values})
    unisender = st.fixed_dictionaries({"events_by_user": st.one_of(json_values, st.lists(
        st.fixed_dictionaries({}, optional={"events": st.one_of(json_values, st.lists(
            event, max_size=3))}), max_size=3))}, optional={"auth": json_values})
    return st.one_of(event, st.lists(event, max_size=4), unisender, json_values)


@FUZZ
@given(body=webhook_bodies(), charset=charsets, raw=maybe_raw,
       authenticated=st.booleans(), which=st.integers(0, 1),
       form_encoded=st.booleans())
def test_webhooks(site, body, charset, raw, authenticated, which, form_encoded):
    account = site["accounts"][which]
    url = f"/webhooks/{account.provider}/{account.pk}/"
    if authenticated:
        url += f"?secret={account.webhook_secret}"
    suffix = f"; charset={charset}" if charset is not None else ""
    if raw is not None:
        payload = raw
    elif form_encoded and isinstance(body, dict):
        payload = urlencode({str(k).encode("utf-8", "surrogatepass"):
                             str(v).encode("utf-8", "surrogatepass") for k, v in body.items()}
                            ).encode()
    else:
        payload = encode(body, charset)
    media = "application/x-www-form-urlencoded" if form_encoded else "application/json"
    before = Submission.objects.count()
    response = client().generic("POST", url, payload, content_type=media + suffix)
    check(response)
    assert Submission.objects.count() == before


@FUZZ
@given(form_type=st.one_of(st.just("fuzz"), st.text(string.ascii_letters + "-_.", max_size=20)),
       public_id=st.one_of(st.uuids().map(str), any_text))
def test_schema_and_status_gets(site, form_type, public_id):
    from urllib.parse import quote

    for path in (f"/api/esp-forms/forms/{quote(form_type)}/",
                 f"/api/esp-forms/submissions/{quote(public_id.encode('utf-8', 'surrogatepass'))}/",
                 f"/forms/{quote(form_type)}/"):
        response = client().get(path)
        check(response, limit=HTML_ANSWER_LIMIT)
