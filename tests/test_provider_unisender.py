"""UniSender over real HTTP against the emulator: the wire format and every documented answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from esp_forms import __version__
from esp_forms.exceptions import (
    PermanentProviderError,
    ProviderConfigurationError,
    TransientProviderError,
)
from esp_forms.models import DoubleOptIn, FieldKind, OptinStatus, ProviderAccount
from esp_forms.providers import get_provider
from esp_forms.providers.unisender import (
    UniSenderProvider,
    collect_warnings,
    contact_state,
    format_time,
    public_ipv4,
)
from tests.conftest import make_form
from tests.provider_contract import (
    PUBLIC_IP,
    EmulatorRemote,
    ProviderContract,
    assert_no_secret,
    confirm_locally,
    fault_body,
    load_payload,
    make_submission,
)

pytestmark = pytest.mark.django_db

KEY = "us-test-key-0123456789abcdef0123"
BAD_KEY = "us-wrong-key-fedcba9876543210fedc"
LISTS = [{"id": 555777, "title": "News", "confirmation_letter": True},
         {"id": 555778, "title": "Blog", "confirmation_letter": True},
         {"id": 555779, "title": "No letter", "confirmation_letter": False}]
CREATED = datetime(2026, 11, 20, 10, 11, 12, tzinfo=UTC)


@pytest.fixture
def us_account(db, emulator) -> ProviderAccount:
    emulator.add_unisender_account(KEY, lists=LISTS)
    return ProviderAccount.objects.create(name="UniSender", provider="unisender", api_key=KEY,
                                          api_base_url=emulator.url)


@pytest.fixture
def full_form(us_account):
    return make_form(
        us_account, "footer-form", double_opt_in=DoubleOptIn.PROVIDER,
        lists="555777, 555778", tags="site, footer", fields=[
            {"name": "fname", "kind": FieldKind.FIRST_NAME},
            {"name": "lname", "kind": FieldKind.LAST_NAME},
            {"name": "phone", "kind": FieldKind.PHONE},
            {"name": "city", "kind": FieldKind.TEXT, "provider_field": "City"},
            {"name": "news", "kind": FieldKind.CHECKBOX, "provider_field": "wants_news"},
            {"name": "note", "kind": FieldKind.TEXT},
        ])


def full_submission(form, **kwargs):
    kwargs.setdefault("created_at", CREATED)
    return make_submission(form, "olena@example.com", phone="+380501234567",
                           data={"fname": "Олена", "lname": "K.", "city": "Київ",
                                 "news": True, "note": "kept here only"}, **kwargs)


class TestUniSenderContract(ProviderContract):
    provider_name = "unisender"

    @pytest.fixture
    def account(self, us_account) -> ProviderAccount:
        return us_account

    @pytest.fixture
    def bad_key_account(self, emulator) -> ProviderAccount:
        return ProviderAccount.objects.create(name="Wrong key", provider="unisender",
                                              api_key=BAD_KEY, api_base_url=emulator.url)

    @pytest.fixture
    def remote(self, emulator) -> EmulatorRemote:
        return EmulatorRemote(emulator, "unisender", KEY)

    @pytest.fixture
    def form_kwargs(self) -> dict[str, Any]:
        return {"lists": "555777"}


# ---- the requests on the wire ---------------------------------------------------------------

def assert_unisender_call(request, method: str, *, lang: str = "en") -> dict[str, str]:
    """One POST, ``format=json`` alone in the URL, everything else in the form body."""
    assert request.method == "POST"
    assert request.path == f"/{lang}/api/{method}"
    assert request.query == {"format": ["json"]}
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["User-Agent"].startswith("esp_forms/")
    assert KEY not in request.path and KEY not in json.dumps(request.query)
    assert request.form is not None
    assert all(len(values) == 1 for values in request.form.values()), request.form
    params = {name: values[0] for name, values in request.form.items()}
    assert params.pop("api_key") == KEY
    assert params.pop("platform") == f"esp_forms {__version__}"
    return params


def test_subscribe_request(emulator, full_form) -> None:
    result = get_provider(full_form.account).subscribe(full_submission(full_form))
    params = assert_unisender_call(emulator.last_request("unisender"), "subscribe")
    assert params == {
        "list_ids": "555777,555778",
        "fields[email]": "olena@example.com",
        "fields[phone]": "+380501234567",
        "fields[Name]": "Олена K.",
        "fields[City]": "Київ",
        "fields[wants_news]": "1",
        "tags": "site,footer",
        "double_optin": "4",
        "overwrite": "2",
        "request_ip": PUBLIC_IP,
        "request_time": "2026-11-20 10:11:12",
    }
    # The 64-bit person_id survives as a string.
    assert int(result.contact_id) > 2**32
    assert result.optin_status == OptinStatus.UNCONFIRMED
    assert result.raw["request"]["data"]["api_key"] == "[redacted]"
    assert_no_secret(KEY, result.raw)


def test_off_mode_sends_3_without_confirmation_data(emulator, us_account) -> None:
    form = make_form(us_account, "quiet", double_opt_in=DoubleOptIn.OFF, lists="555777",
                     overwrite=0)
    result = get_provider(us_account).subscribe(
        make_submission(form, ip="10.1.2.3", created_at=CREATED))
    params = assert_unisender_call(emulator.last_request("unisender"), "subscribe")
    assert params == {"list_ids": "555777", "fields[email]": "olena@example.com",
                      "double_optin": "3", "overwrite": "0",
                      "request_time": "2026-11-20 10:11:12"}  # private IP left out
    assert result.optin_status == OptinStatus.NOT_REQUIRED


def test_local_confirmation_sends_3_with_confirm_ip_and_time(emulator, us_account) -> None:
    form = make_form(us_account, "local", double_opt_in=DoubleOptIn.LOCAL, lists="555777")
    submission = confirm_locally(make_submission(form, created_at=CREATED), ip="8.8.4.4")
    submission.confirmed_at = datetime(2026, 11, 20, 12, 0, 1, tzinfo=UTC)
    result = get_provider(us_account).subscribe(submission, confirmed=True)
    params = assert_unisender_call(emulator.last_request("unisender"), "subscribe")
    assert params["double_optin"] == "3"
    assert params["request_ip"] == PUBLIC_IP
    assert params["request_time"] == "2026-11-20 10:11:12"
    assert params["confirm_ip"] == "8.8.4.4"
    assert params["confirm_time"] == "2026-11-20 12:00:01"
    assert result.optin_status == OptinStatus.CONFIRMED
    assert emulator.contact("unisender", KEY, submission.email) is not None


def test_api_language_is_the_path_prefix(emulator, full_form) -> None:
    full_form.account.api_language = "ru"
    get_provider(full_form.account).subscribe(full_submission(full_form))
    assert emulator.last_request("unisender").path == "/ru/api/subscribe"


def test_mapped_names_and_at_most_ten_tags(emulator, us_account) -> None:
    form = make_form(us_account, "names", lists="555777",
                     tags=",".join(f"t{i}" for i in range(12)), fields=[
                         {"name": "first_name", "kind": FieldKind.FIRST_NAME,
                          "provider_field": "FirstName"},
                         {"name": "last_name", "kind": FieldKind.LAST_NAME}])
    get_provider(us_account).subscribe(
        make_submission(form, data={"first_name": "Ivan", "last_name": "Petrenko"}))
    params = assert_unisender_call(emulator.last_request("unisender"), "subscribe")
    assert params["fields[FirstName]"] == "Ivan"
    assert params["fields[Name]"] == "Petrenko"
    assert params["tags"] == ",".join(f"t{i}" for i in range(10))


def test_warnings_are_kept(emulator, full_form) -> None:
    emulator.fault("unisender", status=200,
                   body=fault_body(load_payload("unisender_subscribe_warnings.json")))
    result = get_provider(full_form.account).subscribe(full_submission(full_form))
    assert result.contact_id == "6795032842"
    assert result.warnings == ['probably not a mobile phone "+380"']


# ---- error answers --------------------------------------------------------------------------

ERRORS = load_payload("unisender_errors.json")
CODE_CASES = [
    # (case in unisender_errors.json, exception, text in the message, retry_after at least)
    ("retry_later", TransientProviderError, "retry later", None),
    ("api_call_limit_exceeded_for_api_key", TransientProviderError, "rate limit", 60),
    ("api_call_limit_exceeded_for_ip", TransientProviderError, "rate limit", 60),
    ("invalid_api_key", ProviderConfigurationError, 'Wrong API key "abc"', None),
    ("access_denied", ProviderConfigurationError, "denied access", None),
    ("not_enough_money", ProviderConfigurationError, "not enough money", None),
    ("unknown_method", ProviderConfigurationError, "Unknown method <subscrib>", None),
    ("invalid_arg", PermanentProviderError, "Invalid argument fields[email]", None),
    ("unspecified", PermanentProviderError, "OB13012016 [Something went wrong]", None),
    ("owned_by_others", PermanentProviderError, "two different UniSender contacts", None),
    ("no_confirmation_letter", ProviderConfigurationError, 'ids="555777" has no', None),
    ("mixed_get_post", ProviderConfigurationError, "GET and POST", None),
    ("too_many_double_optins", PermanentProviderError, "Too many double optins", None),
]


@pytest.mark.parametrize(("case", "exception", "text", "retry_after"), CODE_CASES,
                         ids=[c[0] for c in CODE_CASES])
def test_error_codes(emulator, full_form, case, exception, text, retry_after) -> None:
    answer = ERRORS[case]
    emulator.fault("unisender", unisender_code=answer["code"],
                   unisender_message=answer["error"])
    with pytest.raises(exception) as caught:
        get_provider(full_form.account).subscribe(full_submission(full_form))
    error = caught.value
    assert type(error) is exception
    assert text.lower() in str(error).lower()
    assert "&quot;" not in error.message and "&lt;" not in error.message
    assert (error.provider, error.code, error.status_code) == (
        "unisender", answer["code"], 200)
    if retry_after:
        assert error.retry_after >= retry_after
    assert_no_secret(KEY, str(error), error.response)


def test_a_message_without_a_code_is_read(emulator, full_form) -> None:
    emulator.fault("unisender", status=200,
                   body=fault_body({"error": "These list ids=&quot;1&quot; has no "
                                               "confirmation letters"}))
    with pytest.raises(ProviderConfigurationError, match="no invitation letter"):
        get_provider(full_form.account).subscribe(full_submission(full_form))


def test_an_unknown_code_is_permanent(emulator, full_form) -> None:
    emulator.fault("unisender", unisender_code="brand_new_code", unisender_message="Huh")
    with pytest.raises(PermanentProviderError, match="Huh"):
        get_provider(full_form.account).subscribe(full_submission(full_form))


CONFIGURATION_CASES = [
    # UniSender answers every API call with HTTP 200: anything else from the configured host
    # means a wrong base URL or language, reported at once instead of retried for a day.
    ("http-401", {"status": 401, "body": "Unauthorized"}, "HTTP 401"),
    ("http-404", {"status": 404, "body": "<html>Not Found</html>"}, "HTTP 404"),
    ("http-301", {"status": 301, "body": ""}, "HTTP 301"),
    ("200-html", {"status": 200, "body": "<html>captive portal</html>"}, "not a JSON object"),
    ("200-array", {"status": 200, "body": ["not", "an", "object"]}, "not a JSON object"),
]


@pytest.mark.parametrize(("fault", "text"), [case[1:] for case in CONFIGURATION_CASES],
                         ids=[case[0] for case in CONFIGURATION_CASES])
def test_non_200_answers_are_configuration_errors(emulator, full_form, fault, text) -> None:
    emulator.fault("unisender", **{**fault, "body": fault_body(fault.get("body"))})
    with pytest.raises(ProviderConfigurationError) as caught:
        get_provider(full_form.account).subscribe(full_submission(full_form))
    assert text in str(caught.value)
    assert_no_secret(KEY, str(caught.value), caught.value.response)


def test_a_wrong_language_is_a_configuration_error_not_a_day_of_retries(emulator, us_account
                                                                        ) -> None:
    # "uk" slipped past older versions; the emulator, like UniSender, has no /uk/api/.
    form = make_form(us_account, "lang", lists="555777")
    us_account.api_language = "uk"
    us_account.save()
    provider = get_provider(us_account)
    assert provider.language == "en"  # never sent as a path segment
    emulator.fault("unisender", status=404, body="Not Found")
    with pytest.raises(ProviderConfigurationError, match="language"):
        provider.subscribe(make_submission(form))


TRANSPORT_CASES = [
    # (id, fault, text in the message): an outage, so transient.
    ("http-429", {"status": 429, "body": "Too Many Requests"}, "HTTP 429"),
    ("http-500", {"status": 500, "body": "Internal Server Error"}, "HTTP 500"),
    ("http-502", {"status": 502}, "HTTP 502"),
    ("http-503-json", {"status": 503, "body": {"error": "down", "code": "invalid_api_key"}},
     "HTTP 503"),
    ("timeout", {"delay": 1.5}, "did not answer in time"),
    ("connection-reset", {"reset_connection": True}, "Could not reach UniSender"),
]


@pytest.mark.parametrize(("fault", "text"), [case[1:] for case in TRANSPORT_CASES],
                         ids=[case[0] for case in TRANSPORT_CASES])
def test_transport_trouble_is_transient(emulator, full_form, settings, fault, text) -> None:
    settings.ESP_FORMS = {**settings.ESP_FORMS, "READ_TIMEOUT": 0.3}
    emulator.fault("unisender", **{**fault, "body": fault_body(fault.get("body"))})
    with pytest.raises(TransientProviderError) as caught:
        get_provider(full_form.account).subscribe(full_submission(full_form))
    assert text in str(caught.value)
    assert caught.value.status_code == fault.get("status")
    assert_no_secret(KEY, str(caught.value), caught.value.response)


def test_real_list_without_letter_is_a_configuration_error(emulator, us_account) -> None:
    form = make_form(us_account, "noletter", lists="555779")
    with pytest.raises(ProviderConfigurationError, match="invitation letter"):
        get_provider(us_account).subscribe(make_submission(form))


def test_real_invalid_arg_is_permanent(emulator, us_account) -> None:
    form = make_form(us_account, "unknown-list", lists="42")
    with pytest.raises(PermanentProviderError) as caught:
        get_provider(us_account).subscribe(make_submission(form))
    assert caught.value.code == "invalid_arg"


def test_real_phone_conflict_is_permanent(emulator, us_account) -> None:
    form = make_form(us_account, "quiet", lists="555777", double_opt_in=DoubleOptIn.OFF)
    provider = get_provider(us_account)
    provider.subscribe(make_submission(form, "a@example.com", phone="+380501111111"))
    provider.subscribe(make_submission(form, "b@example.com", phone="+380502222222"))
    with pytest.raises(PermanentProviderError, match="two different UniSender contacts"):
        provider.subscribe(make_submission(form, "a@example.com", phone="+380502222222"))


def test_real_rate_limit(emulator, us_account) -> None:
    emulator.set_rate_limit("unisender", KEY, 1, 60.0)
    form = make_form(us_account, "limited", lists="555777", double_opt_in=DoubleOptIn.OFF)
    provider = get_provider(us_account)
    provider.subscribe(make_submission(form, "one@example.com"))
    with pytest.raises(TransientProviderError) as caught:
        provider.subscribe(make_submission(form, "two@example.com"))
    assert caught.value.code in ("api_call_limit_exceeded_for_api_key",
                                 "api_call_limit_exceeded_for_ip")
    assert caught.value.retry_after >= 60


# ---- contact status -------------------------------------------------------------------------

def test_status_request_and_mapping(emulator, us_account) -> None:
    form = make_form(us_account, "news", lists="555777")
    submission = make_submission(form)
    provider = get_provider(us_account)
    provider.subscribe(submission)

    status = provider.get_contact_status(submission)
    params = assert_unisender_call(emulator.last_request("unisender"), "getContact")
    assert params == {"email": "olena@example.com", "include_lists": "1"}
    assert status.optin_status == OptinStatus.UNCONFIRMED  # invited

    emulator.confirm("unisender", KEY, submission.email)
    assert provider.get_contact_status(submission).optin_status == OptinStatus.CONFIRMED
    emulator.unsubscribe("unisender", KEY, submission.email)
    assert provider.get_contact_status(submission).optin_status == OptinStatus.UNSUBSCRIBED


def test_active_in_another_list_only_is_unconfirmed(emulator, us_account) -> None:
    other = make_form(us_account, "blog", lists="555778", double_opt_in=DoubleOptIn.OFF)
    form = make_form(us_account, "news", lists="555777")
    provider = get_provider(us_account)
    provider.subscribe(make_submission(other))
    emulator.confirm("unisender", KEY, "olena@example.com")
    status = provider.get_contact_status(make_submission(form))
    assert status.optin_status == OptinStatus.UNCONFIRMED


def test_status_of_an_unknown_contact(emulator, us_account) -> None:
    form = make_form(us_account, "news", lists="555777")
    status = get_provider(us_account).get_contact_status(make_submission(form, "x@example.com"))
    assert status.optin_status == OptinStatus.UNCONFIRMED
    assert "no contact" in status.raw["note"]


@pytest.mark.parametrize(("fault", "exception"), [
    ({"unisender_code": "invalid_api_key", "unisender_message": "Wrong key"},
     ProviderConfigurationError),
    ({"unisender_code": "retry_later", "unisender_message": "Later"}, TransientProviderError),
    ({"status": 500, "body": "oops"}, TransientProviderError),
])
def test_status_errors(emulator, us_account, fault, exception) -> None:
    form = make_form(us_account, "news", lists="555777")
    emulator.fault("unisender", **fault)
    with pytest.raises(exception):
        get_provider(us_account).get_contact_status(make_submission(form))


@pytest.mark.parametrize(("payload", "lists", "expected"), [
    ("unisender_getcontact_email_lists.json", "555777", OptinStatus.CONFIRMED),
    ("unisender_getcontact_email_lists.json", "555778", OptinStatus.UNCONFIRMED),
    ("unisender_getcontact_top_lists.json", "555777", OptinStatus.UNCONFIRMED),  # invited
])
def test_get_contact_answers_in_either_shape(emulator, us_account, payload, lists, expected
                                             ) -> None:
    form = make_form(us_account, "news", lists=lists)
    emulator.fault("unisender", status=200, body=fault_body(load_payload(payload)))
    status = get_provider(us_account).get_contact_status(make_submission(form))
    assert status.optin_status == expected


def test_contact_state_parses_defensively() -> None:
    top = load_payload("unisender_getcontact_top_lists.json")["result"]
    assert contact_state(top) == ("invited", {"555777": "", "555778": ""})
    assert contact_state({"email": {"status": "Active", "lists": {"7": {"title": "x"}}}}) == (
        "active", {"7": ""})
    assert contact_state({"email": {"status": "active", "lists": [7, {"list_id": 8,
                                                                      "status": "unsubscribed"}]}}
                         ) == ("active", {"7": "", "8": "unsubscribed"})
    assert contact_state(None) == ("", {})
    assert contact_state({"email": "weird", "lists": "nope"}) == ("", {})


def test_helpers() -> None:
    assert public_ipv4("8.8.8.8") == "8.8.8.8"
    assert public_ipv4("::ffff:8.8.8.8") == "8.8.8.8"
    for value in ("10.0.0.1", "192.168.1.1", "127.0.0.1", "2001:4860::8888", "", None, "x"):
        assert public_ipv4(value) is None
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02 03:04:05"
    assert collect_warnings({"result": {"warnings": [{"warning": "a &amp; b"}]}}) == ["a & b"]


# ---- account check --------------------------------------------------------------------------

def test_check_account(emulator, us_account) -> None:
    news = make_form(us_account, "news", lists="555777")
    quiet = make_form(us_account, "quiet", lists="555778", double_opt_in=DoubleOptIn.OFF)
    check = get_provider(us_account).check_account([news, quiet])
    params = assert_unisender_call(emulator.last_request("unisender"), "getLists")
    assert params == {}
    assert check.ok and check.problems == []
    assert check.info["lists"]["555777"] == "News"
    # The invitation letter cannot be read through the API: said for the opt-in form only.
    assert len(check.info["invitation_letters"]) == 1
    assert "list 555777" in check.info["invitation_letters"][0]
    assert check.warnings == check.info["invitation_letters"]


def test_check_account_missing_list(emulator, us_account) -> None:
    form = make_form(us_account, "news", lists="555777, 42")
    check = UniSenderProvider(us_account).check_account([form])
    assert not check.ok
    assert check.problems == ["Form 'news': list 42 does not exist in this account"]


def test_check_account_bad_key(emulator) -> None:
    account = ProviderAccount.objects.create(name="x", provider="unisender", api_key=BAD_KEY,
                                             api_base_url=emulator.url)
    check = get_provider(account).check_account([])
    assert not check.ok
    assert check.problems[0].startswith("API key refused")
    assert_no_secret(BAD_KEY, check.problems)


def test_check_account_access_denied_and_outage(emulator, us_account) -> None:
    emulator.fault("unisender", unisender_code="access_denied", unisender_message="No API")
    assert get_provider(us_account).check_account([]).problems[0].startswith("Access refused")
    emulator.fault("unisender", status=503, body="down")
    assert get_provider(us_account).check_account([]).problems[0].startswith(
        "Could not list the lists")
