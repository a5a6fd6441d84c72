"""eSputnik over real HTTP against the emulator: the wire format and every documented answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esp_forms.exceptions import (
    PermanentProviderError,
    ProviderConfigurationError,
    TransientProviderError,
)
from esp_forms.models import DoubleOptIn, FieldKind, OptinStatus, ProviderAccount
from esp_forms.providers import get_provider
from esp_forms.providers.esputnik import ESputnikProvider, group_names
from tests.conftest import make_form
from tests.provider_contract import (
    EmulatorRemote,
    ProviderContract,
    assert_no_secret,
    basic_auth_password,
    confirm_locally,
    fault_body,
    load_payload,
    make_submission,
)

pytestmark = pytest.mark.django_db

KEY = "es-test-key-0123456789abcdef"
BAD_KEY = "es-wrong-key-fedcba9876543210"
GROUPS = ("Newsletter", "Blog", "Confirmed")


@pytest.fixture
def es_account(db, emulator) -> ProviderAccount:
    emulator.add_esputnik_account(KEY, groups=GROUPS)
    return ProviderAccount.objects.create(name="eSputnik", provider="esputnik", api_key=KEY,
                                          api_base_url=emulator.url)


@pytest.fixture
def full_form(es_account):
    """Names, phone, a mapped and an unmapped custom field, two groups, a formType."""
    return make_form(
        es_account, "footer-form", double_opt_in=DoubleOptIn.PROVIDER,
        lists="Newsletter, Blog", provider_form_type="footer", fields=[
            {"name": "fname", "kind": FieldKind.FIRST_NAME},
            {"name": "lname", "kind": FieldKind.LAST_NAME},
            {"name": "phone", "kind": FieldKind.PHONE},
            {"name": "language", "kind": FieldKind.CHOICE, "choices": "uk\nen",
             "provider_field": "12345"},
            {"name": "note", "kind": FieldKind.TEXT},
        ])


def full_submission(form, **kwargs):
    return make_submission(form, "olena@example.com", phone="+380501234567",
                           data={"fname": "Олена", "lname": "K.", "language": "uk",
                                 "note": "kept here only"}, **kwargs)


class TestESputnikContract(ProviderContract):
    provider_name = "esputnik"
    polls_unsubscribes = False

    @pytest.fixture
    def account(self, es_account) -> ProviderAccount:
        return es_account

    @pytest.fixture
    def bad_key_account(self, emulator) -> ProviderAccount:
        return ProviderAccount.objects.create(name="Wrong key", provider="esputnik",
                                              api_key=BAD_KEY, api_base_url=emulator.url)

    @pytest.fixture
    def remote(self, emulator) -> EmulatorRemote:
        return EmulatorRemote(emulator, "esputnik", KEY, group="Confirmed")

    @pytest.fixture
    def form_kwargs(self) -> dict[str, Any]:
        return {"lists": "Newsletter", "confirmed_group": "Confirmed"}


# ---- the requests on the wire ---------------------------------------------------------------

def assert_esputnik_headers(request, *, body: bool) -> None:
    assert basic_auth_password(request.headers["Authorization"]) == KEY
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"].startswith("esp_forms/")
    if body:
        assert request.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert KEY not in request.path and KEY not in json.dumps(request.query)


def test_subscribe_request(emulator, full_form) -> None:
    result = get_provider(full_form.account).subscribe(full_submission(full_form))

    request = emulator.last_request("esputnik")
    assert (request.method, request.path, request.query) == (
        "POST", "/api/v1/contact/subscribe", {})
    assert_esputnik_headers(request, body=True)
    assert request.json == load_payload("esputnik_subscribe_request.json")
    # Plain UTF-8, not \u escapes.
    assert "Олена".encode() in request.body
    contact = emulator.contact("esputnik", KEY, "olena@example.com")
    assert result.contact_id == str(contact["id"])
    assert result.optin_status == OptinStatus.UNCONFIRMED
    assert result.raw["request"]["json"] == request.json
    assert "subscribeFromApi-footer" in [e["eventTypeKey"] for e in contact["events"]]


def test_minimal_subscribe_leaves_empty_keys_out(emulator, es_account) -> None:
    form = make_form(es_account, "bare", fields=[{"name": "first_name",
                                                  "kind": FieldKind.FIRST_NAME}])
    result = get_provider(es_account).subscribe(make_submission(form, data={"first_name": " "}))
    assert emulator.last_request("esputnik").json == {
        "contact": {"channels": [{"type": "email", "value": "olena@example.com"}]},
        "formType": "bare",
    }
    assert result.optin_status == OptinStatus.UNCONFIRMED


def test_off_mode_creates_a_confirmed_contact(emulator, es_account) -> None:
    # Subscribe contact would leave the contact unconfirmed at eSputnik (no campaign reaches
    # it); "off" means nobody confirms, so the contact is imported confirmed.
    form = make_form(es_account, "bare", double_opt_in=DoubleOptIn.OFF, lists="Newsletter")
    result = get_provider(es_account).subscribe(make_submission(form))
    write = [r for r in emulator.requests("esputnik") if r.method == "POST"][-1]
    assert write.path == "/api/v1/contacts"
    assert write.json["dedupeOn"] == "email" and write.json["groupNames"] == ["Newsletter"]
    assert "Confirmed" not in write.json["groupNames"]  # nobody confirmed anything
    assert result.optin_status == OptinStatus.NOT_REQUIRED
    assert emulator.contact("esputnik", KEY, "olena@example.com")["confirmed"] is True


def test_field_values_are_sent_as_strings(emulator, es_account) -> None:
    form = make_form(es_account, "typed", lists="Newsletter", fields=[
        {"name": "agree", "kind": FieldKind.CHECKBOX, "provider_field": "11"},
        {"name": "age", "kind": FieldKind.TEXT, "provider_field": "12"}])
    get_provider(es_account).subscribe(make_submission(form, data={"agree": True, "age": 42}))
    fields = emulator.last_request("esputnik").json["contact"]["fields"]
    assert fields == [{"id": 11, "value": "true"}, {"id": 12, "value": "42"}]


def test_top_level_names_are_used_when_the_field_has_another_name(emulator, es_account
                                                                   ) -> None:
    form = make_form(es_account, "names", fields=[
        {"name": "given", "kind": FieldKind.FIRST_NAME}])
    get_provider(es_account).subscribe(make_submission(form, data={"first_name": "Ivan"}))
    assert emulator.last_request("esputnik").json["contact"]["firstName"] == "Ivan"


def test_local_confirmation_uses_add_update_contacts(emulator, es_account) -> None:
    form = make_form(es_account, "footer-form", double_opt_in=DoubleOptIn.LOCAL,
                     lists="Newsletter, Blog", fields=[
                         {"name": "fname", "kind": FieldKind.FIRST_NAME},
                         {"name": "lname", "kind": FieldKind.LAST_NAME},
                         {"name": "phone", "kind": FieldKind.PHONE},
                         {"name": "language", "kind": FieldKind.TEXT, "provider_field": "12345"},
                     ])
    submission = confirm_locally(full_submission(form))
    result = get_provider(es_account).subscribe(submission, confirmed=True)

    write, lookup = emulator.requests("esputnik")[-2:]
    assert (write.method, write.path) == ("POST", "/api/v1/contacts")
    assert_esputnik_headers(write, body=True)
    assert write.json == load_payload("esputnik_contacts_request.json")
    assert (lookup.method, lookup.path) == ("GET", "/api/v1/contacts")
    assert lookup.query == {"email": ["olena@example.com"], "startindex": ["1"],
                            "maxrows": ["500"]}
    assert_esputnik_headers(lookup, body=False)
    assert lookup.body == b""

    contact = emulator.contact("esputnik", KEY, "olena@example.com")
    assert contact["confirmed"] is True
    assert result.contact_id == str(contact["id"])
    assert result.optin_status == OptinStatus.CONFIRMED
    assert result.raw["lookup"]["request"]["path"] == "/api/v1/contacts"


def test_local_confirmation_refused_contact_is_permanent(emulator, es_account) -> None:
    form = make_form(es_account, "local", double_opt_in=DoubleOptIn.LOCAL, lists="Newsletter")
    # The emulator validates addresses like eSputnik and lists the contact in failedContacts.
    submission = confirm_locally(make_submission(form, "no-dot@localhost"))
    with pytest.raises(PermanentProviderError) as caught:
        get_provider(es_account).subscribe(submission, confirmed=True)
    assert "no-dot@localhost" in str(caught.value)
    assert caught.value.status_code == 200


def test_local_confirmation_not_searchable_yet_keeps_an_empty_id(emulator, es_account
                                                                 ) -> None:
    form = make_form(es_account, "local", double_opt_in=DoubleOptIn.LOCAL, lists="Newsletter")
    # As if the asynchronous import had not finished: the answer is the documented one, but
    # no contact exists yet for the lookup.
    emulator.fault("esputnik", status=200, path_contains="/api/v1/contacts",
                   body=fault_body({"asyncSessionId": "abc", "failedContacts": []}))
    result = get_provider(es_account).subscribe(confirm_locally(make_submission(form)),
                                                confirmed=True)
    assert result.contact_id == ""
    assert result.optin_status == OptinStatus.CONFIRMED
    assert any("not searchable" in w for w in result.warnings)


# ---- answers to subscribe -------------------------------------------------------------------

def test_409_duplicate_is_success_and_the_id_is_looked_up(emulator, full_form) -> None:
    provider = get_provider(full_form.account)
    first = provider.subscribe(full_submission(full_form))
    again = provider.subscribe(full_submission(full_form))  # identical body within a minute

    statuses = [(r.method, r.path, r.status) for r in emulator.requests("esputnik")[-3:]]
    assert statuses == [("POST", "/api/v1/contact/subscribe", 200),
                        ("POST", "/api/v1/contact/subscribe", 409),
                        ("GET", "/api/v1/contacts", 200)]
    assert emulator.last_request("esputnik").query["email"] == ["olena@example.com"]
    assert again.contact_id == first.contact_id
    assert again.optin_status == OptinStatus.UNCONFIRMED
    assert any("409" in w for w in again.warnings)


def test_a_retry_after_a_lost_answer_gets_409_and_the_id(emulator, full_form) -> None:
    # eSputnik stored the contact but the answer never arrived (the case the 409 exists for).
    emulator.fault("esputnik", status=502, apply=True, path_contains="/contact/subscribe")
    provider = get_provider(full_form.account)
    with pytest.raises(TransientProviderError):
        provider.subscribe(full_submission(full_form))
    result = provider.subscribe(full_submission(full_form))  # the retry
    contact = emulator.contact("esputnik", KEY, "olena@example.com")
    assert result.contact_id == str(contact["id"])
    assert [r.status for r in emulator.requests("esputnik")] == [502, 409, 200]


def test_the_lookup_takes_the_exact_address_only(emulator, full_form) -> None:
    emulator.fault("esputnik", status=409, path_contains="/contact/subscribe")
    emulator.fault("esputnik", status=200, path_contains="/api/v1/contacts",
                   body=fault_body(load_payload("esputnik_contacts_search.json", "contacts")))
    result = get_provider(full_form.account).subscribe(full_submission(full_form))
    assert result.contact_id == "564407320"  # Olena@Example.com, not olena.k@example.com


def test_409_for_an_unknown_contact_is_still_success(emulator, full_form) -> None:
    emulator.fault("esputnik", status=409, body=fault_body({"message": "Duplicated request"}),
                   path_contains="/contact/subscribe")
    result = get_provider(full_form.account).subscribe(full_submission(full_form))
    assert result.contact_id == ""
    assert result.optin_status == OptinStatus.UNCONFIRMED


@pytest.mark.parametrize("body", [{}, {"id": None}, {"status": "ok"}, "OK"])
def test_200_without_an_id_is_permanent(emulator, full_form, body) -> None:
    emulator.fault("esputnik", status=200, body=fault_body(body))
    with pytest.raises(PermanentProviderError, match="without a contact id"):
        get_provider(full_form.account).subscribe(full_submission(full_form))


SUBSCRIBE_ANSWERS = [
    # (id, fault, outcome: an exception class or None for success, text in the message)
    ("400-json", {"status": 400, "body": {"message": "Invalid email: x"}},
     PermanentProviderError, "Invalid email: x"),
    ("400-text", {"status": 400, "body": "Bad things in the body"},
     PermanentProviderError, "HTTP 400: Bad things in the body"),
    ("401", {"status": 401, "body": {"status": 401, "error": "Unauthorized"}},
     ProviderConfigurationError, "API key"),
    ("403", {"status": 403}, ProviderConfigurationError, "full API access"),
    ("404", {"status": 404}, ProviderConfigurationError, "API base URL"),
    ("405", {"status": 405}, ProviderConfigurationError, "HTTP 405"),
    ("409", {"status": 409, "body": {"message": "Duplicated request"}}, None, "409"),
    ("415", {"status": 415}, ProviderConfigurationError, "HTTP 415"),
    ("422", {"status": 422, "body": {"message": "Unprocessable"}},
     PermanentProviderError, "Unprocessable"),
    ("429", {"status": 429, "body": {"message": "Too many requests"}},
     TransientProviderError, "HTTP 429"),
    ("500", {"status": 500, "body": "Internal Server Error"}, TransientProviderError, "HTTP 500"),
    ("502", {"status": 502}, TransientProviderError, "HTTP 502"),
    ("503", {"status": 503}, TransientProviderError, "HTTP 503"),
    ("timeout", {"delay": 1.5}, TransientProviderError, "did not answer in time"),
    ("connection-reset", {"reset_connection": True}, TransientProviderError,
     "Could not reach eSputnik"),
]


@pytest.mark.parametrize(("fault", "outcome", "text"), [case[1:] for case in SUBSCRIBE_ANSWERS],
                         ids=[case[0] for case in SUBSCRIBE_ANSWERS])
def test_subscribe_answers(emulator, full_form, settings, fault, outcome, text) -> None:
    settings.ESP_FORMS = {**settings.ESP_FORMS, "READ_TIMEOUT": 0.3}
    emulator.fault("esputnik", path_contains="/contact/subscribe",
                   **{**fault, "body": fault_body(fault.get("body"))})
    provider = get_provider(full_form.account)
    if outcome is None:
        result = provider.subscribe(full_submission(full_form))
        assert any(text in warning for warning in result.warnings)
        return
    with pytest.raises(outcome) as caught:
        provider.subscribe(full_submission(full_form))
    error = caught.value
    assert type(error) is outcome
    assert text in str(error)
    assert (error.provider, error.account_id, error.status_code) == (
        "esputnik", full_form.account.pk, fault.get("status"))
    assert_no_secret(KEY, str(error), error.response)


def test_a_real_400_from_invalid_data(emulator, es_account) -> None:
    form = make_form(es_account, "bad", lists="Newsletter")
    with pytest.raises(PermanentProviderError, match="Invalid phone"):
        get_provider(es_account).subscribe(make_submission(form, phone="+12"))


def test_a_real_429_from_the_rate_limit(emulator, es_account) -> None:
    emulator.set_rate_limit("esputnik", KEY, 1, 60.0)
    form = make_form(es_account, "limited", lists="Newsletter")
    provider = get_provider(es_account)
    provider.subscribe(make_submission(form, "one@example.com"))
    with pytest.raises(TransientProviderError, match="429"):
        provider.subscribe(make_submission(form, "two@example.com"))


def test_429_without_retry_after_leaves_the_wait_to_the_schedule(emulator, full_form) -> None:
    emulator.fault("esputnik", status=429, body=fault_body({"message": "slow down"}))
    with pytest.raises(TransientProviderError) as caught:
        get_provider(full_form.account).subscribe(full_submission(full_form))
    assert caught.value.retry_after is None  # eSputnik documents no Retry-After


def test_connection_refused_is_transient(es_account, full_form) -> None:
    es_account.api_base_url = "http://127.0.0.1:9"  # discard port: nothing listens
    with pytest.raises(TransientProviderError):
        ESputnikProvider(es_account).subscribe(full_submission(full_form))


def test_non_numeric_field_id_is_a_configuration_error(es_account) -> None:
    form = make_form(es_account, "oops", fields=[
        {"name": "city", "kind": FieldKind.TEXT, "provider_field": "City"}])
    with pytest.raises(ProviderConfigurationError, match="numeric id"):
        get_provider(es_account).subscribe(make_submission(form, data={"city": "Kyiv"}))


# ---- contact status -------------------------------------------------------------------------

def test_status_reads_the_contact_by_id(emulator, es_account) -> None:
    form = make_form(es_account, "news", lists="Newsletter", confirmed_group="Confirmed")
    submission = make_submission(form)
    provider = get_provider(es_account)
    submission.provider_contact_id = provider.subscribe(submission).contact_id

    status = provider.get_contact_status(submission)
    request = emulator.last_request("esputnik")
    assert (request.method, request.path, request.body) == (
        "GET", f"/api/v1/contact/{submission.provider_contact_id}", b"")
    assert_esputnik_headers(request, body=False)
    assert status.optin_status == OptinStatus.UNCONFIRMED
    assert status.contact_id == submission.provider_contact_id

    emulator.confirm("esputnik", KEY, submission.email, group="Confirmed")
    assert provider.get_contact_status(submission).optin_status == OptinStatus.CONFIRMED


def test_status_without_an_id_searches_by_email(emulator, es_account) -> None:
    form = make_form(es_account, "news", lists="Newsletter", confirmed_group="Confirmed")
    submission = make_submission(form)
    provider = get_provider(es_account)
    contact_id = provider.subscribe(submission).contact_id
    emulator.confirm("esputnik", KEY, submission.email, group="Confirmed")

    count = len(emulator.requests("esputnik"))
    status = provider.get_contact_status(submission)  # provider_contact_id still blank
    calls = emulator.requests("esputnik")[count:]
    assert [(r.method, r.path) for r in calls] == [("GET", "/api/v1/contacts")]
    assert status.optin_status == OptinStatus.CONFIRMED
    assert status.contact_id == contact_id


def test_status_reads_the_found_contact_when_the_search_omits_groups(emulator, es_account
                                                                     ) -> None:
    form = make_form(es_account, "news", lists="Newsletter", confirmed_group="Confirmed")
    submission = make_submission(form)
    provider = get_provider(es_account)
    contact_id = provider.subscribe(submission).contact_id
    emulator.confirm("esputnik", KEY, submission.email, group="Confirmed")
    emulator.fault("esputnik", status=200, path_contains="/api/v1/contacts",
                   body=fault_body([{"id": int(contact_id)}]))
    status = provider.get_contact_status(submission)
    assert emulator.last_request("esputnik").path == f"/api/v1/contact/{contact_id}"
    assert status.optin_status == OptinStatus.CONFIRMED


def test_status_of_a_deleted_contact_is_unconfirmed_with_a_note(emulator, es_account) -> None:
    form = make_form(es_account, "news", lists="Newsletter")
    submission = make_submission(form, provider_contact_id="999")
    status = get_provider(es_account).get_contact_status(submission)
    paths = [(r.path, r.status) for r in emulator.requests("esputnik")[-2:]]
    assert paths == [("/api/v1/contact/999", 404), ("/api/v1/contacts", 200)]
    assert status.optin_status == OptinStatus.UNCONFIRMED
    assert "no contact" in status.raw["note"]


def test_status_without_a_confirmed_segment_cannot_confirm(emulator, es_account) -> None:
    # Such a form is refused by validation and system check E010; a read stays unconfirmed.
    form = make_form(es_account, "news", lists="Newsletter", confirmed_group="")
    submission = make_submission(form)
    provider = get_provider(es_account)
    provider.subscribe(submission)
    emulator.confirm("esputnik", KEY, submission.email, group="Confirmed")
    status = provider.get_contact_status(submission)
    assert status.optin_status == OptinStatus.UNCONFIRMED
    assert "no confirmed segment" in status.raw["note"]


@pytest.mark.parametrize(("status", "exception"), [
    (401, ProviderConfigurationError), (500, TransientProviderError),
    (503, TransientProviderError), (429, TransientProviderError)])
def test_status_errors(emulator, es_account, status, exception) -> None:
    form = make_form(es_account, "news", lists="Newsletter")
    emulator.fault("esputnik", status=status, body=fault_body({"message": "no"}))
    with pytest.raises(exception):
        get_provider(es_account).get_contact_status(
            make_submission(form, provider_contact_id="564407320"))


def test_group_names_parses_defensively() -> None:
    contact = load_payload("esputnik_contact.json")
    assert group_names(contact["groups"]) == {"Newsletter", "Confirmed"}
    assert group_names(["A", {"name": "B"}, {"id": 3}, 7]) == {"A", "B"}
    assert group_names(None) == set()


# ---- account check --------------------------------------------------------------------------

def test_check_account_reads_info_and_groups(emulator, es_account) -> None:
    form = make_form(es_account, "news", lists="Newsletter, Blog", confirmed_group="Confirmed")
    check = get_provider(es_account).check_account([form])
    calls = emulator.requests("esputnik")
    assert [(r.method, r.path) for r in calls] == [("GET", "/api/v1/account/info"),
                                                    ("GET", "/api/v1/groups")]
    assert calls[1].query == {"startindex": ["1"], "maxrows": ["500"]}
    for request in calls:
        assert_esputnik_headers(request, body=False)
    assert check.ok and check.problems == [] and check.warnings == []
    assert check.info["organisationName"] == "Demo org"
    assert check.info["groups"] == len(GROUPS)


def test_check_account_pages_through_groups(emulator) -> None:
    emulator.add_esputnik_account("many-groups-key", groups=[f"g{i}" for i in range(501)])
    account = ProviderAccount.objects.create(name="many", provider="esputnik",
                                             api_key="many-groups-key",
                                             api_base_url=emulator.url)
    form = make_form(account, "news", lists="g500", confirmed_group="g0")
    check = get_provider(account).check_account([form])
    pages = [r.query for r in emulator.requests("esputnik") if r.path == "/api/v1/groups"]
    assert pages == [{"startindex": ["1"], "maxrows": ["500"]},
                     {"startindex": ["501"], "maxrows": ["500"]}]
    assert check.ok and check.warnings == [] and check.info["groups"] == 501


def test_check_account_missing_group_is_a_warning(emulator, es_account) -> None:
    form = make_form(es_account, "news", lists="Newsletter, Brand new")
    check = get_provider(es_account).check_account([form])
    assert check.ok
    assert check.warnings == ["Form 'news': group 'Brand new' does not exist yet; eSputnik "
                              "creates it on the first signup"]


def test_check_account_missing_confirmed_segment_fails(emulator, es_account) -> None:
    form = make_form(es_account, "news", lists="Newsletter", confirmed_group="Double OK")
    local = make_form(es_account, "local", lists="Newsletter", confirmed_group="Nope",
                      double_opt_in=DoubleOptIn.LOCAL)
    check = get_provider(es_account).check_account([form, local])
    assert not check.ok
    assert len(check.problems) == 1
    assert "'Double OK' does not exist, so polling can never confirm" in check.problems[0]


def test_check_account_bad_key(emulator) -> None:
    account = ProviderAccount.objects.create(name="x", provider="esputnik", api_key=BAD_KEY,
                                             api_base_url=emulator.url)
    check = get_provider(account).check_account([])
    assert check.problems == ["API key refused"]
    assert len(emulator.requests("esputnik")) == 1


def test_check_account_outage(emulator, es_account) -> None:
    emulator.fault("esputnik", status=503, times=5)
    check = get_provider(es_account).check_account([])
    assert not check.ok
    assert check.problems[0].startswith("Could not read the account info: eSputnik answered "
                                        "HTTP 503")
