"""The provider emulator, exercised over real HTTP the way the provider modules call it.

Every assertion here is about the wire: status codes, bodies and headers as documented in
``shared/providers/ESPUTNIK.md`` and ``UNISENDER.md``, plus the control API and the Python API
the rest of the suite builds on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from esp_forms.emulator import EmulatorServer
from esp_forms.emulator.demo import (
    DEMO_ESPUTNIK_CONFIRMED_GROUP,
    DEMO_ESPUTNIK_GROUP,
    DEMO_ESPUTNIK_KEY,
    DEMO_UNISENDER_KEY,
    DEMO_UNISENDER_LIST_ID,
    DEMO_UNISENDER_NO_LETTER_LIST_ID,
    seed_demo,
)
from esp_forms.emulator.receiver import WebhookReceiver
from esp_forms.emulator.state import (
    ESPUTNIK_DEFAULT_RATE,
    UNISENDER_ALL_METHODS_RATE,
    UNISENDER_SUBSCRIBE_RATE,
)

ES_KEY = "es-test-key"
US_KEY = "us-test-key"
LETTER_LIST = 11
NO_LETTER_LIST = 12
OTHER_LIST = 13
TIMEOUT = 5


@pytest.fixture
def emu(emulator: EmulatorServer) -> EmulatorServer:
    emulator.add_esputnik_account(ES_KEY, groups=["Existing"], org="Acme")
    emulator.add_unisender_account(US_KEY, lists=[
        {"id": LETTER_LIST, "title": "News", "confirmation_letter": True},
        {"id": NO_LETTER_LIST, "title": "Bare", "confirmation_letter": False},
        {"id": OTHER_LIST, "title": "Other", "confirmation_letter": True},
    ], login="acme")
    return emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


# ---- helpers --------------------------------------------------------------------------------


def es(emu: EmulatorServer, http: requests.Session, method: str, path: str, *,
       key: str | None = ES_KEY, **kwargs: Any) -> requests.Response:
    auth = ("any-user", key) if key is not None else None
    return http.request(method, emu.url + "/api/v1" + path, auth=auth, timeout=TIMEOUT, **kwargs)


def es_subscribe(emu: EmulatorServer, http: requests.Session, email: str = "olena@example.com",
                 **extra: Any) -> requests.Response:
    body = {"contact": {"channels": [{"type": "email", "value": email}]}, **extra}
    return es(emu, http, "POST", "/contact/subscribe", json=body)


def us(emu: EmulatorServer, http: requests.Session, method: str, key: str | None = US_KEY,
       lang: str = "en", **params: Any) -> dict[str, Any]:
    """One UniSender call the documented way: format in the URL, the rest in a form body."""
    data = {"api_key": key, **params} if key is not None else params
    response = http.post(f"{emu.url}/{lang}/api/{method}", params={"format": "json"},
                         data=data, timeout=TIMEOUT)
    assert response.status_code == 200, response.text  # errors are HTTP 200 too
    return response.json()


def us_subscribe(emu: EmulatorServer, http: requests.Session, email: str = "ivan@example.com",
                 list_ids: str = str(LETTER_LIST), **params: Any) -> dict[str, Any]:
    return us(emu, http, "subscribe", list_ids=list_ids, **{"fields[email]": email}, **params)


def us_contact(emu: EmulatorServer, http: requests.Session, email: str) -> dict[str, Any]:
    return us(emu, http, "getContact", email=email, include_lists=1, include_fields=1)


def list_ids_of(answer: dict[str, Any]) -> list[int]:
    return [item["id"] for item in answer["result"]["email"]["lists"]]


# ---- eSputnik: subscribe --------------------------------------------------------------------


def test_esputnik_subscribe_creates_an_unconfirmed_contact(emu, http):
    response = es(emu, http, "POST", "/contact/subscribe", json={
        "contact": {"firstName": "Olena", "channels": [
            {"type": "email", "value": "olena@example.com"},
            {"type": "sms", "value": "380501234567"}],
            "fields": [{"id": 12345, "value": "uk"}]},
        "groups": ["Newsletter", "Existing"], "formType": "footer"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    contact_id = response.json()["id"]
    assert isinstance(contact_id, int) and list(response.json()) == ["id"]

    stored = emu.contact("esputnik", ES_KEY, "OLENA@example.com")
    assert stored["id"] == contact_id and stored["confirmed"] is False
    assert stored["source"] == "Subscription form"
    assert [e["eventTypeKey"] for e in stored["events"]] == ["subscribeFromApi-footer"]
    assert stored["events"][0]["params"] == {"ContactId": str(contact_id),
                                             "EmailAddress": "olena@example.com"}

    detail = es(emu, http, "GET", f"/contact/{contact_id}").json()
    assert detail["firstName"] == "Olena"
    assert detail["fields"] == [{"id": 12345, "value": "uk"}]
    assert sorted(g["name"] for g in detail["groups"]) == ["Existing", "Newsletter"]
    assert all(set(g) == {"id", "name", "type"} for g in detail["groups"])
    assert "confirmed" not in detail  # the real API has no such field


def test_esputnik_subscribe_updates_an_existing_contact_but_not_its_channels(emu, http):
    first = es(emu, http, "POST", "/contact/subscribe", json={"contact": {
        "firstName": "A", "channels": [{"type": "email", "value": "a@example.com"},
                                       {"type": "sms", "value": "380501111111"}]},
        "groups": ["One"]}).json()["id"]
    again = es(emu, http, "POST", "/contact/subscribe", json={"contact": {
        "firstName": "B", "channels": [{"type": "email", "value": "a@example.com"},
                                       {"type": "sms", "value": "380502222222"}]},
        "groups": ["Two"], "formType": "popup"})
    assert again.status_code == 200 and again.json()["id"] == first
    detail = es(emu, http, "GET", f"/contact/{first}").json()
    assert detail["firstName"] == "B"
    assert {"type": "sms", "value": "380501111111"} in detail["channels"]  # kept
    assert sorted(g["name"] for g in detail["groups"]) == ["One", "Two"]  # never removed
    events = [e["eventTypeKey"] for e in emu.esputnik_events(ES_KEY)]
    assert events == ["subscribeFromApi", "subscribeUpdateFromApi-popup"]


def test_esputnik_subscribe_matches_by_phone_when_no_email_matches(emu, http):
    by_phone = es(emu, http, "POST", "/contact/subscribe", json={
        "contact": {"channels": [{"type": "sms", "value": "+380503333333"}]}}).json()["id"]
    again = es(emu, http, "POST", "/contact/subscribe", json={"contact": {"channels": [
        {"type": "email", "value": "new@example.com"}, {"type": "sms", "value": "380503333333"}]}})
    assert again.json()["id"] == by_phone
    event = emu.esputnik_events(ES_KEY)[0]
    assert "EmailAddress" not in event["params"]  # documented: missing for a phone-only contact


def test_esputnik_same_request_within_a_minute_is_409(emu, http):
    assert es_subscribe(emu, http).status_code == 200
    repeat = es_subscribe(emu, http)
    assert repeat.status_code == 409
    assert repeat.json() == {"message": "Duplicated request"}
    # A different body is a different request.
    assert es_subscribe(emu, http, groups=["Other"]).status_code == 200
    # Another key with the same body is not a duplicate either.
    emu.add_esputnik_account("second-key")
    assert es(emu, http, "POST", "/contact/subscribe", key="second-key", json={
        "contact": {"channels": [{"type": "email", "value": "olena@example.com"}]}},
    ).status_code == 200


def test_esputnik_duplicate_window_expires(emu, http):
    emu.set_duplicate_window(0.2)
    assert es_subscribe(emu, http).status_code == 200
    assert es_subscribe(emu, http).status_code == 409
    time.sleep(0.3)
    assert es_subscribe(emu, http).status_code == 200


def test_esputnik_a_refused_request_is_not_remembered_as_a_duplicate(emu, http):
    body = {"contact": {"channels": {"type": "email", "value": "x@example.com"}}}
    assert es(emu, http, "POST", "/contact/subscribe", json=body).status_code == 400
    assert es(emu, http, "POST", "/contact/subscribe", json=body).status_code == 400


@pytest.mark.parametrize("body, message", [
    ({"contact": {"channels": {"type": "email", "value": "a@example.com"}}}, "array"),
    ({"contact": {"channels": []}}, "at least one"),
    ({"contact": {}}, "channels is required"),
    ({"contact": {"channels": [{"type": "email", "value": "not-an-email"}]}}, "Invalid email"),
    ({"contact": {"channels": [{"type": "fax", "value": "1"}]}}, "channel type"),
    ({"contact": {"channels": [{"type": "sms", "value": "call me"}]}}, "phone"),
    ({"groups": ["G"]}, "contact is required"),
    ({"contact": "a@example.com"}, "contact must be an object"),
    ({"contact": {"channels": [{"type": "email", "value": "a@example.com"}],
                  "fields": [{"value": 1}]}}, "fields"),
    ({"contact": {"channels": [{"type": "email", "value": "a@example.com"}],
                  "fields": [{"id": "abc", "value": 1}]}}, "field id"),
    ({"contact": {"channels": [{"type": "email", "value": "a@example.com"}]},
      "groups": "Newsletter"}, "groups"),
    ({"contact": {"channels": [{"type": "email", "value": "a@example.com"}]},
      "formType": "a/b"}, "formType"),
    ({"contact": {"channels": [{"type": "email", "value": "a@example.com"}]},
      "formType": "what?"}, "formType"),
    ([1, 2], "object"),
])
def test_esputnik_subscribe_validation_is_400(emu, http, body, message):
    response = es(emu, http, "POST", "/contact/subscribe", json=body)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert emu.contacts("esputnik", ES_KEY) == []


def test_esputnik_subscribe_accepts_allowed_form_type_characters(emu, http):
    response = es_subscribe(emu, http, formType="footer-form_2 ünï")
    assert response.status_code == 200


def test_esputnik_invalid_json_is_400(emu, http):
    response = es(emu, http, "POST", "/contact/subscribe", data=b"{not json",
                  headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_esputnik_post_without_json_content_type_is_415(emu, http):
    response = es(emu, http, "POST", "/contact/subscribe",
                  data=json.dumps({"contact": {}}), headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "message" in response.json()
    # ...and with the documented header (charset included) it is fine.
    ok = es(emu, http, "POST", "/contact/subscribe", data=json.dumps(
        {"contact": {"channels": [{"type": "email", "value": "c@example.com"}]}}),
        headers={"Content-Type": "application/json; charset=UTF-8"})
    assert ok.status_code == 200


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_esputnik_bad_or_missing_key_is_401(emu, http, key):
    response = es(emu, http, "GET", "/account/info", key=key)
    assert response.status_code == 401
    assert response.json()["status"] == 401 and response.json()["message"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_esputnik_bearer_or_garbled_auth_is_401(emu, http):
    for header in ("Bearer " + ES_KEY, "Basic !!!notbase64"):
        response = http.get(emu.url + "/api/v1/account/info",
                            headers={"Authorization": header}, timeout=TIMEOUT)
        assert response.status_code == 401


def test_esputnik_user_name_is_ignored(emu, http):
    for user in ("", "someone", "owner@example.com"):
        response = http.get(emu.url + "/api/v1/account/info", auth=(user, ES_KEY), timeout=TIMEOUT)
        assert response.status_code == 200


def test_esputnik_unknown_path_is_404_and_wrong_method_405(emu, http):
    assert es(emu, http, "GET", "/no/such/thing").status_code == 404
    wrong = es(emu, http, "GET", "/contact/subscribe")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert es(emu, http, "DELETE", "/contacts").status_code == 405


def test_esputnik_trailing_slash_is_accepted(emu, http):
    response = es(emu, http, "POST", "/contact/subscribe/", json={
        "contact": {"channels": [{"type": "email", "value": "slash@example.com"}]}})
    assert response.status_code == 200


# ---- eSputnik: bulk, search, reading ---------------------------------------------------------


def test_esputnik_add_update_contacts_creates_confirmed_contacts(emu, http):
    existing = es_subscribe(emu, http, "old@example.com", groups=["Subscribers"]).json()["id"]
    bad = {"channels": [{"type": "email", "value": "broken"}]}
    response = es(emu, http, "POST", "/contacts", json={
        "contacts": [{"channels": [{"type": "email", "value": "new@example.com"}],
                      "firstName": "New", "externalCustomerId": "django-1"},
                     {"channels": [{"type": "email", "value": "old@example.com"}]},
                     bad, {"firstName": "No channels"}],
        "dedupeOn": "email", "groupNames": ["Customers"], "groupNamesExclude": ["Subscribers"]})
    assert response.status_code == 200
    answer = response.json()
    assert re.fullmatch(r"[0-9a-f-]{36}", answer["asyncSessionId"])
    assert [f["contact"] for f in answer["failedContacts"]] == [bad, {"firstName": "No channels"}]
    assert all(isinstance(f["errors"], str) and f["errors"] for f in answer["failedContacts"])

    new = emu.contact("esputnik", ES_KEY, "new@example.com")
    old = emu.contact("esputnik", ES_KEY, "old@example.com")
    assert new["confirmed"] and new["source"] == "API" and new["events"] == []
    assert old["id"] == existing and old["confirmed"]
    assert [g["name"] for g in old["groups"]] == ["Customers"]

    status = es(emu, http, "GET", f"/importstatus/{answer['asyncSessionId']}").json()
    assert status["status"] == "FINISHED"
    assert [m["contactId"] for m in status["mapping"]] == [new["id"], existing]
    assert es(emu, http, "GET", "/importstatus/nope").status_code == 404


@pytest.mark.parametrize("body", [
    {"contacts": [{"channels": [{"type": "email", "value": "a@example.com"}]}]},  # no dedupeOn
    {"contacts": [], "dedupeOn": "email"},
    {"dedupeOn": "email"},
    {"contacts": [{"channels": [{"type": "email", "value": "a@example.com"}]}] * 3001,
     "dedupeOn": "email"},
    {"contacts": [{"channels": [{"type": "email", "value": "a@example.com"}]}],
     "dedupeOn": "nickname"},
])
def test_esputnik_add_update_contacts_validation(emu, http, body):
    assert es(emu, http, "POST", "/contacts", json=body).status_code == 400


def test_esputnik_search_contacts_by_email_with_total_count(emu, http):
    ids = [es_subscribe(emu, http, f"p{i}@example.com").json()["id"] for i in range(3)]
    found = es(emu, http, "GET", "/contacts",
               params={"email": "P1@example.com", "startindex": 1, "maxrows": 500})
    assert found.status_code == 200
    assert [c["id"] for c in found.json()] == [ids[1]]
    assert found.headers["TotalCount"] == "1"
    page = es(emu, http, "GET", "/contacts", params={"startindex": 2, "maxrows": 1})
    assert [c["id"] for c in page.json()] == [ids[1]] and page.headers["TotalCount"] == "3"
    none = es(emu, http, "GET", "/contacts", params={"email": "nobody@example.com"})
    assert none.json() == [] and none.headers["TotalCount"] == "0"
    assert es(emu, http, "GET", "/contacts", params={"maxrows": 501}).status_code == 400
    assert es(emu, http, "GET", "/contacts", params={"startindex": "x"}).status_code == 400


def test_esputnik_contact_of_another_account_is_404(emu, http):
    contact_id = es_subscribe(emu, http).json()["id"]
    emu.add_esputnik_account("other")
    assert es(emu, http, "GET", f"/contact/{contact_id}", key="other").status_code == 404
    assert es(emu, http, "GET", "/contact/999").status_code == 404
    assert es(emu, http, "GET", "/contact/abc").status_code == 404


def test_esputnik_account_info_version_and_groups(emu, http):
    info = es(emu, http, "GET", "/account/info").json()
    assert info["organisationName"] == "Acme"
    assert isinstance(info["orgId"], int) and "@" in info["userEmail"]
    assert es(emu, http, "GET", "/version").json()["protocolVersion"] == "1.0"
    es_subscribe(emu, http, groups=["Newsletter EN", "Promo"])
    groups = es(emu, http, "GET", "/groups", params={"name": "news"}).json()
    assert [g["name"] for g in groups] == ["Newsletter EN"]
    assert set(groups[0]) == {"id", "name", "type"}
    everything = es(emu, http, "GET", "/groups", params={"startindex": 1, "maxrows": 500}).json()
    assert [g["name"] for g in everything] == ["Existing", "Newsletter EN", "Promo"]


def test_esputnik_rate_limit_is_429(emu, http):
    assert ESPUTNIK_DEFAULT_RATE == (200, 1.0)  # documented: more than 200 per second
    emu.set_rate_limit("esputnik", ES_KEY, 3, 60)
    codes = [es(emu, http, "GET", "/version").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    emu.add_esputnik_account("other")  # per key
    assert es(emu, http, "GET", "/version", key="other").status_code == 200


def test_esputnik_rate_limit_window_slides(emu, http):
    emu.set_rate_limit("esputnik", ES_KEY, 1, 0.2)
    assert es(emu, http, "GET", "/version").status_code == 200
    assert es(emu, http, "GET", "/version").status_code == 429
    time.sleep(0.25)
    assert es(emu, http, "GET", "/version").status_code == 200


# ---- eSputnik: confirmation and webhooks ----------------------------------------------------


def test_esputnik_confirm_adds_the_segment_and_calls_the_workflow_webhook(emu, http,
                                                                         webhook_receiver):
    contact_id = es_subscribe(emu, http).json()["id"]
    emu.set_esputnik_webhooks(ES_KEY, workflow_url=webhook_receiver.url + "/hooks/es",
                              secret="s3cret")
    emu.confirm("esputnik", ES_KEY, "olena@example.com")
    assert emu.contact("esputnik", ES_KEY, "olena@example.com")["confirmed"] is True
    groups = es(emu, http, "GET", f"/contact/{contact_id}").json()["groups"]
    assert [g["name"] for g in groups] == ["Confirmed"]

    [hook] = webhook_receiver.wait(1)
    assert hook.path == "/hooks/es"
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.json == {"email": "olena@example.com", "contactId": str(contact_id),
                         "secret": "s3cret"}
    assert emu.wait_for_webhooks()
    [delivery] = emu.webhooks()
    assert delivery.status == 200 and delivery.ok and delivery.event == "confirmed"


def test_esputnik_confirm_into_a_custom_segment_without_webhook(emu, http):
    contact_id = es_subscribe(emu, http).json()["id"]
    emu.confirm("esputnik", ES_KEY, "olena@example.com", group="Double opt-in done")
    groups = es(emu, http, "GET", f"/contact/{contact_id}").json()["groups"]
    assert [g["name"] for g in groups] == ["Double opt-in done"]
    assert emu.webhooks() == []


def test_esputnik_unsubscribe_calls_the_account_webhook(emu, http, webhook_receiver):
    contact_id = es_subscribe(emu, http).json()["id"]
    emu.set_esputnik_webhooks(ES_KEY, account_url=webhook_receiver.url + "/acct")
    emu.unsubscribe("esputnik", ES_KEY, "olena@example.com")
    [hook] = webhook_receiver.wait(1)
    [event] = hook.json
    assert event["activityStatus"] == "UNSUBSCRIBED" and event["email"] == "olena@example.com"
    assert event["contactId"] == contact_id
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", event["activityDateTime"])
    assert "Authorization" not in hook.headers  # no Basic auth set up
    assert emu.contact("esputnik", ES_KEY, "olena@example.com")["unsubscribed"] is True


def test_confirm_of_unknown_contact_or_key_raises(emu):
    with pytest.raises(LookupError):
        emu.confirm("esputnik", ES_KEY, "nobody@example.com")
    with pytest.raises(LookupError):
        emu.unsubscribe("unisender", "no-such-key", "nobody@example.com")
    with pytest.raises(ValueError):
        emu.confirm("mailchimp", ES_KEY, "a@example.com")
    assert emu.contact("esputnik", ES_KEY, "nobody@example.com") is None


def test_webhook_failures_are_recorded_and_never_break_the_server(emu, http):
    with WebhookReceiver(status=500) as failing:
        es_subscribe(emu, http)
        emu.set_esputnik_webhooks(ES_KEY, workflow_url=failing.url,
                                  account_url="http://127.0.0.1:9/closed-port")
        emu.confirm("esputnik", ES_KEY, "olena@example.com")
        emu.unsubscribe("esputnik", ES_KEY, "olena@example.com")
        assert emu.wait_for_webhooks()
    first, second = emu.webhooks()
    assert first.status == 500 and not first.ok and first.error == "HTTP 500"
    assert second.status is None and second.error and second.done
    assert es(emu, http, "GET", "/version").status_code == 200


def test_send_webhook_on_demand_changes_no_state(emu, http, webhook_receiver):
    es_subscribe(emu, http)
    emu.set_esputnik_webhooks(ES_KEY, workflow_url=webhook_receiver.url, secret="x")
    [delivery] = emu.send_webhook("esputnik", ES_KEY, "confirmed", "olena@example.com")
    assert delivery.status == 200  # sent synchronously
    assert webhook_receiver.received[0].json["email"] == "olena@example.com"
    assert emu.contact("esputnik", ES_KEY, "olena@example.com")["confirmed"] is False
    with pytest.raises(LookupError):  # no account webhook configured
        emu.send_webhook("esputnik", ES_KEY, "unsubscribed", "olena@example.com")


# ---- UniSender: subscribe --------------------------------------------------------------------


def test_unisender_double_optin_3_adds_at_once_without_a_letter(emu, http):
    answer = us_subscribe(emu, http, double_optin=3, **{"fields[Name]": "Ivan"},
                          tags="a,b", overwrite=2, request_ip="203.0.113.7",
                          request_time="2026-01-02 03:04:05", platform="esp_forms test")
    person_id = answer["result"]["person_id"]
    assert set(answer) == {"result"} and person_id > 2**32  # 64-bit ids
    contact = us_contact(emu, http, "ivan@example.com")["result"]
    assert contact["email"]["status"] == "new"
    assert list_ids_of({"result": contact}) == [LETTER_LIST]
    assert contact["fields"] == {"Name": "Ivan"}
    stored = emu.contact("unisender", US_KEY, "ivan@example.com")
    assert stored["letters"] == [] and stored["tags"] == ["a", "b"]
    assert stored["request_ip"] == "203.0.113.7"
    assert stored["request_time"] == "2026-01-02 03:04:05"
    assert stored["platform"] == "esp_forms test"


def test_unisender_double_optin_0_invites_and_keeps_the_contact_out_of_lists(emu, http):
    us_subscribe(emu, http, double_optin=0, list_ids=f"{LETTER_LIST},{NO_LETTER_LIST}")
    contact = us_contact(emu, http, "ivan@example.com")
    assert contact["result"]["email"]["status"] == "invited"
    assert list_ids_of(contact) == []
    stored = emu.contact("unisender", US_KEY, "ivan@example.com")
    assert [letter["list_id"] for letter in stored["letters"]] == [LETTER_LIST]
    assert stored["pending_lists"] == [LETTER_LIST, NO_LETTER_LIST]

    emu.confirm("unisender", US_KEY, "ivan@example.com")
    contact = us_contact(emu, http, "ivan@example.com")
    assert contact["result"]["email"]["status"] == "active"
    assert list_ids_of(contact) == [LETTER_LIST, NO_LETTER_LIST]


def test_unisender_missing_double_optin_behaves_like_0(emu, http):
    us_subscribe(emu, http)
    stored = emu.contact("unisender", US_KEY, "ivan@example.com")
    assert stored["status"] == "invited" and len(stored["letters"]) == 1


def test_unisender_double_optin_4_only_invites_who_is_not_new_or_active(emu, http):
    # A new contact: invited, like 0.
    us_subscribe(emu, http, "fresh@example.com", double_optin=4)
    assert emu.contact("unisender", US_KEY, "fresh@example.com")["status"] == "invited"
    # An invited one (any other status) is invited again.
    us_subscribe(emu, http, "fresh@example.com", double_optin=4)
    assert len(emu.contact("unisender", US_KEY, "fresh@example.com")["letters"]) == 2
    # A "new" contact is simply added to the other list, no letter.
    us_subscribe(emu, http, "known@example.com", double_optin=3)
    us_subscribe(emu, http, "known@example.com", list_ids=str(OTHER_LIST), double_optin=4)
    known = emu.contact("unisender", US_KEY, "known@example.com")
    assert known["letters"] == [] and known["lists"] == [LETTER_LIST, OTHER_LIST]
    assert known["status"] == "new"
    # An active one too, even into a list without an invitation letter.
    emu.confirm("unisender", US_KEY, "known@example.com")
    answer = us_subscribe(emu, http, "known@example.com", list_ids=str(NO_LETTER_LIST),
                          double_optin=4)
    assert "result" in answer
    assert NO_LETTER_LIST in emu.contact("unisender", US_KEY, "known@example.com")["lists"]
    # An unsubscribed one gets the invitation again.
    emu.unsubscribe("unisender", US_KEY, "known@example.com")
    us_subscribe(emu, http, "known@example.com", double_optin=4)
    known = emu.contact("unisender", US_KEY, "known@example.com")
    assert known["status"] == "invited" and len(known["letters"]) == 1


def test_unisender_first_list_without_confirmation_letter(emu, http):
    for optin in (0, 4):
        answer = us_subscribe(emu, http, list_ids=f"{NO_LETTER_LIST},{LETTER_LIST}",
                              double_optin=optin)
        assert answer == {"error": f'These list ids="{NO_LETTER_LIST}" has no confirmation '
                                   "letters", "code": "unspecified"}
    assert emu.contact("unisender", US_KEY, "ivan@example.com") is None
    # Only the first list's letter matters, and 3 sends none.
    assert "result" in us_subscribe(emu, http, list_ids=f"{LETTER_LIST},{NO_LETTER_LIST}")
    assert "result" in us_subscribe(emu, http, "b@example.com", list_ids=str(NO_LETTER_LIST),
                                    double_optin=3)


def test_unisender_email_and_phone_owned_by_different_subscribers(emu, http):
    us_subscribe(emu, http, "one@example.com", double_optin=3, **{"fields[phone]": "+380501111111"})
    us_subscribe(emu, http, "two@example.com", double_optin=3, **{"fields[phone]": "+380502222222"})
    answer = us_subscribe(emu, http, "one@example.com", double_optin=3,
                          **{"fields[phone]": "+380502222222"})
    assert answer == {"error": "Contacts one@example.com and +380502222222 already exist but "
                               "owned by different subscribers",
                      "code": "unspecified", "result": []}


def test_unisender_resubscribe_replaces_a_phone_nobody_else_owns(emu, http):
    first = us_subscribe(emu, http, double_optin=3, **{"fields[phone]": "+380501111111"})
    again = us_subscribe(emu, http, double_optin=3, **{"fields[phone]": "+380509999999"})
    assert again["result"]["person_id"] == first["result"]["person_id"]
    assert emu.contact("unisender", US_KEY, "ivan@example.com")["phone"] == "+380509999999"
    # The old phone is free again.
    third = us_subscribe(emu, http, "other@example.com", double_optin=3,
                         **{"fields[phone]": "+380501111111"})
    assert third["result"]["person_id"] != first["result"]["person_id"]


def test_unisender_overwrite_modes(emu, http):
    us_subscribe(emu, http, double_optin=3, tags="x", **{"fields[A]": "1", "fields[B]": "1"})
    us_subscribe(emu, http, double_optin=3, overwrite=0, tags="y", **{"fields[A]": "2"})
    stored = emu.contact("unisender", US_KEY, "ivan@example.com")
    assert stored["fields"] == {"A": "1", "B": "1"} and stored["tags"] == ["x", "y"]
    us_subscribe(emu, http, double_optin=3, overwrite=2, **{"fields[A]": "3"})
    stored = emu.contact("unisender", US_KEY, "ivan@example.com")
    assert stored["fields"] == {"A": "3", "B": "1"} and stored["tags"] == ["x", "y"]
    us_subscribe(emu, http, double_optin=3, overwrite=1, list_ids=str(OTHER_LIST),
                 **{"fields[C]": "4"})
    stored = emu.contact("unisender", US_KEY, "ivan@example.com")
    assert stored["fields"] == {"C": "4"} and stored["tags"] == []
    assert stored["lists"] == [OTHER_LIST]  # overwrite=1 drops the other lists


@pytest.mark.parametrize("params", [
    {"list_ids": "", "fields[email]": "a@example.com"},
    {"list_ids": "999", "fields[email]": "a@example.com"},
    {"list_ids": f"{LETTER_LIST},abc", "fields[email]": "a@example.com"},
    {"list_ids": str(LETTER_LIST)},
    {"list_ids": str(LETTER_LIST), "fields[email]": "not-an-email"},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com", "fields[phone]": "0501234567"},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com",
     "tags": ",".join(f"t{i}" for i in range(11))},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com", "double_optin": "1"},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com", "double_optin": "2"},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com", "double_optin": "yes"},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com", "overwrite": "3"},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com", "request_ip": "local"},
    {"list_ids": str(LETTER_LIST), "fields[email]": "a@example.com", "request_time": "yesterday"},
])
def test_unisender_subscribe_invalid_arguments(emu, http, params):
    answer = us(emu, http, "subscribe", **params)
    assert answer["code"] == "invalid_arg" and answer["error"]
    assert "result" not in answer


def test_unisender_ten_tags_are_fine(emu, http):
    answer = us_subscribe(emu, http, tags=",".join(f"t{i}" for i in range(10)), double_optin=3)
    assert "result" in answer


def test_unisender_subscribe_rate_limit(emu, http):
    assert UNISENDER_SUBSCRIBE_RATE == (300, 60.0)
    emu.set_rate_limit("unisender", US_KEY, 2, 60)
    answers = [us_subscribe(emu, http, f"r{i}@example.com", double_optin=3) for i in range(3)]
    assert ["result" in a for a in answers] == [True, True, False]
    assert answers[2]["code"] == "api_call_limit_exceeded_for_api_key"
    assert "result" in us(emu, http, "getLists")  # only subscribe is limited


def test_unisender_all_methods_rate_limit(emu, http):
    assert UNISENDER_ALL_METHODS_RATE == (1200, 60.0)
    emu.set_rate_limit("unisender", US_KEY, 1, 60, all_methods=True)
    assert "result" in us(emu, http, "getLists")
    assert us(emu, http, "getContact", email="a@example.com")["code"] == (
        "api_call_limit_exceeded_for_api_key")


# ---- UniSender: transport, auth, reading ------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong"])
def test_unisender_bad_key(emu, http, key):
    answer = us(emu, http, "getLists", key=key)
    assert answer["code"] == "invalid_api_key" and answer["error"]


def test_unisender_unknown_method_and_language(emu, http):
    assert us(emu, http, "frobnicate")["code"] == "unknown_method"
    response = http.post(emu.url + "/de/api/getLists", params={"format": "json"},
                         data={"api_key": US_KEY}, timeout=TIMEOUT)
    assert response.status_code == 404
    for lang in ("ru", "ua"):
        assert "result" in us(emu, http, "getLists", lang=lang)
    for lang in ("uk", "it"):  # not among the official wrapper's languages
        response = http.post(f"{emu.url}/{lang}/api/getLists", params={"format": "json"},
                             data={"api_key": US_KEY}, timeout=TIMEOUT)
        assert response.status_code == 404


def test_unisender_get_with_every_parameter_in_the_query_works(emu, http):
    response = http.get(emu.url + "/en/api/getLists",
                        params={"format": "json", "api_key": US_KEY}, timeout=TIMEOUT)
    assert response.json()["result"][0] == {"id": LETTER_LIST, "title": "News"}


def test_unisender_mixing_query_and_body_gives_the_cryptic_error(emu, http):
    response = http.post(emu.url + "/en/api/getLists",
                         params={"format": "json", "api_key": US_KEY},
                         data={"platform": "x"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"error": "Call to a member function getMessage() on boolean"}


def test_unisender_get_contact(emu, http):
    us_subscribe(emu, http, double_optin=3, **{"fields[Name]": "Ivan"})
    bare = us(emu, http, "getContact", email="IVAN@example.com")["result"]
    assert set(bare) == {"email"}
    assert set(bare["email"]) == {"email", "added_at", "status", "availability"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", bare["email"]["added_at"])
    full = us(emu, http, "getContact", email="ivan@example.com", include_lists=1,
              include_fields=1, include_details=1)["result"]
    assert full["email"]["lists"][0]["title"] == "News"
    assert set(full["email"]["lists"][0]) == {"id", "title", "added_at"}
    assert full["fields"] == {"Name": "Ivan"}
    assert "last_send_datetime" in full["email"]
    assert us(emu, http, "getContact", email="nobody@example.com") == {
        "error": "Contact not found", "code": "unspecified"}
    assert us(emu, http, "getContact")["code"] == "invalid_arg"


def test_unisender_get_lists(emu, http):
    assert us(emu, http, "getLists") == {"result": [
        {"id": LETTER_LIST, "title": "News"}, {"id": NO_LETTER_LIST, "title": "Bare"},
        {"id": OTHER_LIST, "title": "Other"}]}


# ---- UniSender: hooks -----------------------------------------------------------------------


def verify_auth(body: bytes, api_key: str) -> bool:
    """The receiver's check (as django-anymail does for Unisender Go): replace the received
    auth in the raw body with the key, MD5 it, compare."""
    received = json.loads(body)["auth"]
    expected = hashlib.md5(body.replace(received.encode(), api_key.encode(), 1)).hexdigest()
    return received == expected


def test_unisender_single_event_hook_on_confirm(emu, http, webhook_receiver):
    answer = us(emu, http, "setHook", hook_url=webhook_receiver.url + "/u",
                event_format="json_post", **{"events[subscribe]": "*"}, single_event=1,
                status="active")
    assert answer["result"]["hook_url"] == webhook_receiver.url + "/u"
    us_subscribe(emu, http, double_optin=4)
    emu.confirm("unisender", US_KEY, "ivan@example.com")
    [hook] = webhook_receiver.wait(1)
    payload = hook.json
    assert list(payload)[0] == "auth"
    assert {k: v for k, v in payload.items() if k not in ("auth", "event_time")} == {
        "event_name": "subscribe", "email": "ivan@example.com", "list_id": LETTER_LIST}
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", payload["event_time"])
    assert verify_auth(hook.body, US_KEY)
    assert not verify_auth(hook.body, "another-key")


def test_unisender_batched_hook_on_unsubscribe(emu, http, webhook_receiver):
    us(emu, http, "setHook", hook_url=webhook_receiver.url, **{"events[]": "unsubscribe"})
    us_subscribe(emu, http, double_optin=3, list_ids=f"{LETTER_LIST},{OTHER_LIST}")
    emu.confirm("unisender", US_KEY, "ivan@example.com")  # no subscribe hook: nothing sent
    emu.unsubscribe("unisender", US_KEY, "ivan@example.com")
    [hook] = webhook_receiver.wait(1)
    [user] = hook.json["events_by_user"]
    assert user["login"] == "acme"
    assert [(e["event_name"], e["event_data"]) for e in user["events"]] == [
        ("unsubscribe", {"email": "ivan@example.com", "list_id": LETTER_LIST}),
        ("unsubscribe", {"email": "ivan@example.com", "list_id": OTHER_LIST})]
    assert verify_auth(hook.body, US_KEY)
    assert us_contact(emu, http, "ivan@example.com")["result"]["email"]["status"] == "unsubscribed"
    assert emu.wait_for_webhooks() and len(emu.webhooks()) == 1


def test_unisender_set_hook_replaces_by_url_and_remove_hook(emu, http, webhook_receiver):
    url = webhook_receiver.url
    us(emu, http, "setHook", hook_url=url, **{"events[subscribe]": "*"})
    us(emu, http, "setHook", hook_url=url, **{"events[unsubscribe]": "*"})  # replaces
    us_subscribe(emu, http, double_optin=0)
    emu.confirm("unisender", US_KEY, "ivan@example.com")
    assert emu.wait_for_webhooks() and emu.webhooks() == []
    assert us(emu, http, "removeHook", hook_url=url) == {"result": {"hook_url": url}}
    assert us(emu, http, "removeHook", hook_url=url)["code"] == "invalid_arg"
    emu.unsubscribe("unisender", US_KEY, "ivan@example.com")
    assert emu.wait_for_webhooks() and emu.webhooks() == []


@pytest.mark.parametrize("params", [
    {"hook_url": "not a url", "events[subscribe]": "*"},
    {"hook_url": "http://127.0.0.1:1/x"},
    {"hook_url": "http://127.0.0.1:1/x", "events[subscribe]": "*", "event_format": "xml"},
    {"hook_url": "http://127.0.0.1:1/x", "events[subscribe]": "*", "status": "maybe"},
])
def test_unisender_set_hook_invalid(emu, http, params):
    assert us(emu, http, "setHook", **params)["code"] == "invalid_arg"


def test_unisender_send_webhook_on_demand(emu, http, webhook_receiver):
    us(emu, http, "setHook", hook_url=webhook_receiver.url, **{"events[subscribe]": "*"},
       single_event=1)
    [delivery] = emu.send_webhook("unisender", US_KEY, "subscribe", "ghost@example.com",
                                  list_id=LETTER_LIST)
    assert delivery.status == 200
    assert delivery.payload["email"] == "ghost@example.com"
    with pytest.raises(LookupError):
        emu.send_webhook("unisender", US_KEY, "campaign_status", "ghost@example.com")


# ---- faults, latency ------------------------------------------------------------------------


def test_fault_status_and_body_for_the_next_n_matching_requests(emu, http):
    emu.fault("esputnik", status=503, body="upstream down", times=2,
              path_contains="/contact/subscribe")
    assert es(emu, http, "GET", "/version").status_code == 200  # path does not match
    first = es_subscribe(emu, http, "a@example.com")
    assert (first.status_code, first.text) == (503, "upstream down")
    assert es_subscribe(emu, http, "b@example.com").status_code == 503
    assert es_subscribe(emu, http, "c@example.com").status_code == 200
    assert emu.faults() == []
    # A faulted request changed nothing.
    assert emu.contact("esputnik", ES_KEY, "a@example.com") is None


def test_fault_default_body_is_json(emu, http):
    emu.fault("esputnik", status=500)
    response = es(emu, http, "GET", "/version")
    assert response.status_code == 500 and "emulated" in response.json()["message"]


def test_fault_unisender_code(emu, http):
    emu.fault("unisender", unisender_code="retry_later", path_contains="subscribe")
    assert "result" in us(emu, http, "getLists")
    assert us_subscribe(emu, http) == {"error": "Temporary error, please retry later",
                                       "code": "retry_later"}
    emu.fault("unisender", unisender_code="not_enough_money", unisender_message="Pay up")
    assert us_subscribe(emu, http) == {"error": "Pay up", "code": "not_enough_money"}
    assert "result" in us_subscribe(emu, http)


def test_fault_faults_only_its_provider(emu, http):
    emu.fault("unisender", status=502)
    assert es(emu, http, "GET", "/version").status_code == 200
    assert http.post(emu.url + "/en/api/getLists", params={"format": "json"},
                     data={"api_key": US_KEY}, timeout=TIMEOUT).status_code == 502


def test_fault_delay_makes_a_client_time_out(emu, http):
    emu.fault("esputnik", delay=0.6)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        http.get(emu.url + "/api/v1/version", auth=("", ES_KEY), timeout=0.2)
    assert time.monotonic() - started < 0.55
    assert es(emu, http, "GET", "/version").status_code == 200  # the server is fine


def test_fault_delay_then_a_normal_answer(emu, http):
    emu.fault("esputnik", delay=0.3)
    started = time.monotonic()
    assert es(emu, http, "GET", "/version").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fault_reset_connection(emu, http):
    emu.fault("esputnik", reset_connection=True)
    with pytest.raises(requests.ConnectionError):
        es_subscribe(emu, http)
    assert emu.last_request("esputnik").status == 0  # never answered
    assert emu.contact("esputnik", ES_KEY, "olena@example.com") is None
    assert es_subscribe(emu, http).status_code == 200  # the session reconnects


def test_fault_applied_then_lost_answer_makes_the_retry_a_409(emu, http):
    """The request arrived and was handled, the answer got lost: the retry is a duplicate."""
    emu.fault("esputnik", reset_connection=True, apply=True)
    with pytest.raises(requests.ConnectionError):
        es_subscribe(emu, http)
    assert emu.contact("esputnik", ES_KEY, "olena@example.com") is not None
    assert es_subscribe(emu, http).status_code == 409


def test_a_request_held_across_a_reset_is_dropped(emu):
    """A delayed request from one test must not be handled against the next test's state."""
    emu.fault("esputnik", delay=0.4, path_contains="/contact/subscribe")
    outcome: list[BaseException | requests.Response] = []

    def call() -> None:
        with requests.Session() as session:
            try:
                outcome.append(es_subscribe(emu, session))
            except requests.RequestException as err:
                outcome.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.1)
    emu.reset()
    emu.add_esputnik_account(ES_KEY)
    thread.join(5)
    assert isinstance(outcome[0], requests.ConnectionError)
    assert emu.contacts("esputnik", ES_KEY) == []


def test_latency_applies_to_provider_calls_only(emu, http):
    emu.set_latency(0.2)
    started = time.monotonic()
    assert es(emu, http, "GET", "/version").status_code == 200
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    http.get(emu.url + "/_emulator/health", timeout=TIMEOUT)
    assert time.monotonic() - started < 0.2


def test_fault_arguments_are_checked(emu):
    with pytest.raises(ValueError):
        emu.fault("sendgrid", status=500)
    with pytest.raises(ValueError):
        emu.fault("esputnik", status=500, times=0)


# ---- request log ----------------------------------------------------------------------------


def test_request_log_records_what_arrived(emu, http):
    es_subscribe(emu, http)
    us_subscribe(emu, http, double_optin=3)
    http.get(emu.url + "/_emulator/health", timeout=TIMEOUT)  # control: not recorded

    es_req, us_req = emu.requests()
    assert emu.requests("esputnik") == [es_req] and emu.last_request("unisender") is us_req
    assert (es_req.provider, es_req.method, es_req.path) == ("esputnik", "POST",
                                                             "/api/v1/contact/subscribe")
    assert es_req.headers["content-type"] == "application/json"  # case-insensitive
    assert es_req.headers["Authorization"].startswith("Basic ")
    assert es_req.json["contact"]["channels"][0]["value"] == "olena@example.com"
    assert json.loads(es_req.body) == es_req.json and es_req.form is None
    assert es_req.status == 200 and es_req.response_json() == {"id": es_req.response_json()["id"]}
    assert abs(es_req.time - time.time()) < 5

    assert us_req.path == "/en/api/subscribe" and us_req.query == {"format": ["json"]}
    assert us_req.form["api_key"] == [US_KEY] and us_req.form["fields[email]"] == [
        "ivan@example.com"]
    assert us_req.param("double_optin") == "3" and us_req.params["format"] == "json"
    assert us_req.json is None


def test_last_request_without_requests_raises(emu):
    with pytest.raises(LookupError):
        emu.last_request()


def test_access_log_never_prints_the_api_key():
    lines: list[str] = []
    with EmulatorServer(access_log=lines.append) as server:
        seed_demo(server)
        requests.get(server.url + "/en/api/getLists",
                     params={"format": "json", "api_key": DEMO_UNISENDER_KEY}, timeout=TIMEOUT)
        requests.get(server.url + "/api/v1/version", auth=("", DEMO_ESPUTNIK_KEY),
                     timeout=TIMEOUT)
    assert len(lines) == 2 and "getLists" in lines[0] and "-> 200" in lines[1]
    assert not any(DEMO_UNISENDER_KEY in line or DEMO_ESPUTNIK_KEY in line for line in lines)


# ---- control API over HTTP --------------------------------------------------------------------


def control(emu: EmulatorServer, http: requests.Session, method: str, path: str,
            body: Any = None) -> requests.Response:
    return http.request(method, emu.url + "/_emulator" + path, json=body, timeout=TIMEOUT)


def test_control_api_drives_the_emulator(emulator, http, webhook_receiver):
    assert control(emulator, http, "GET", "/health").json()["ok"] is True
    assert control(emulator, http, "POST", "/accounts/esputnik",
                   {"api_key": ES_KEY, "groups": ["G"], "org": "Via HTTP"}).status_code == 200
    assert control(emulator, http, "POST", "/accounts/unisender", {
        "api_key": US_KEY, "lists": [{"id": 5, "title": "L", "confirmation_letter": True}],
    }).status_code == 200
    assert es(emulator, http, "GET", "/account/info").json()["organisationName"] == "Via HTTP"

    control(emulator, http, "POST", "/faults", {"provider": "esputnik", "status": 418, "times": 1})
    assert [f["status"] for f in control(emulator, http, "GET", "/faults").json()] == [418]
    assert es(emulator, http, "GET", "/version").status_code == 418

    es_subscribe(emulator, http)
    control(emulator, http, "POST", "/esputnik/webhooks",
            {"api_key": ES_KEY, "workflow_url": webhook_receiver.url, "secret": "z"})
    assert control(emulator, http, "POST", "/confirm", {
        "provider": "esputnik", "api_key": ES_KEY, "email": "olena@example.com"}).json() == {
        "ok": True}
    assert webhook_receiver.wait(1)[0].json["secret"] == "z"
    found = control(emulator, http, "POST", "/contact", {
        "provider": "esputnik", "api_key": ES_KEY, "email": "olena@example.com"})
    assert found.json()["confirmed"] is True
    missing = control(emulator, http, "POST", "/contact", {
        "provider": "esputnik", "api_key": ES_KEY, "email": "nobody@example.com"})
    assert missing.status_code == 404

    logged = control(emulator, http, "GET", "/requests?provider=esputnik").json()
    assert [r["path"] for r in logged][-1] == "/api/v1/contact/subscribe"
    assert ES_KEY not in json.dumps(logged)  # masked unless ?reveal=1
    assert logged[-1]["headers"]["Authorization"] == "Basic [redacted]"

    us_subscribe(emulator, http, list_ids="5")
    logged = control(emulator, http, "GET", "/requests?provider=unisender").json()
    assert logged[-1]["form"]["api_key"] == ["[redacted]"]
    revealed = control(emulator, http, "GET", "/requests?provider=unisender&reveal=1").json()
    assert revealed[-1]["form"]["api_key"] == [US_KEY]

    control(emulator, http, "POST", "/rate-limits",
            {"provider": "esputnik", "api_key": ES_KEY, "limit": 1, "window": 60})
    assert es(emulator, http, "GET", "/version").status_code == 200
    assert es(emulator, http, "GET", "/version").status_code == 429

    assert control(emulator, http, "POST", "/reset").json() == {"ok": True}
    assert emulator.requests() == []
    assert es(emulator, http, "GET", "/version").status_code == 401  # accounts gone


def test_control_api_errors(emulator, http):
    assert control(emulator, http, "GET", "/nope").status_code == 404
    assert control(emulator, http, "GET", "/reset").status_code == 405
    assert control(emulator, http, "POST", "/faults", {"status": 500}).status_code == 400
    assert control(emulator, http, "POST", "/faults",
                   {"provider": "x", "status": 500}).status_code == 400
    assert control(emulator, http, "POST", "/latency", {"seconds": "slow"}).status_code == 400
    assert control(emulator, http, "POST", "/confirm", {
        "provider": "esputnik", "api_key": "nope", "email": "a@example.com"}).status_code == 404
    bad_json = http.post(emulator.url + "/_emulator/latency", data=b"[1]", timeout=TIMEOUT)
    assert bad_json.status_code == 400


def test_control_api_latency_webhooks_and_send(emulator, http, webhook_receiver):
    seed_demo(emulator)
    us(emulator, http, "setHook", key=DEMO_UNISENDER_KEY, hook_url=webhook_receiver.url,
       **{"events[subscribe]": "*"}, single_event=1)
    sent = control(emulator, http, "POST", "/webhooks/send", {
        "provider": "unisender", "api_key": DEMO_UNISENDER_KEY, "event": "subscribe",
        "email": "a@example.com", "list_id": DEMO_UNISENDER_LIST_ID}).json()
    assert sent[0]["status"] == 200 and sent[0]["payload"]["list_id"] == DEMO_UNISENDER_LIST_ID
    assert len(control(emulator, http, "GET", "/webhooks").json()) == 1
    control(emulator, http, "POST", "/latency", {"seconds": 0.2})
    started = time.monotonic()
    es(emulator, http, "GET", "/version", key=DEMO_ESPUTNIK_KEY)
    assert time.monotonic() - started >= 0.2


# ---- server behaviour -----------------------------------------------------------------------


def test_keep_alive_calls_do_not_stall(emu, http):
    """With Nagle's 40 ms stall 100 keep-alive calls would take 4 s; they take a fraction."""
    started = time.monotonic()
    for _ in range(100):
        assert es(emu, http, "GET", "/version").status_code == 200
    assert time.monotonic() - started < 2.0


def test_head_and_unknown_paths(emu, http):
    assert http.get(emu.url + "/favicon.ico", timeout=TIMEOUT).status_code == 404
    assert emu.last_request().provider == "unknown"
    head = http.head(emu.url + "/api/v1/version", auth=("", ES_KEY), timeout=TIMEOUT)
    assert head.status_code == 405 and head.content == b""


def test_chunked_request_body(emu, http):
    body = json.dumps({"contact": {"channels": [{"type": "email", "value": "chunk@example.com"}]}})
    response = http.post(emu.url + "/api/v1/contact/subscribe", auth=("", ES_KEY),
                         data=iter([body[:10].encode(), body[10:].encode()]),
                         headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert emu.last_request().json["contact"]["channels"][0]["value"] == "chunk@example.com"


def test_reset_forgets_everything(emulator_server, http):
    emulator_server.reset()
    seed_demo(emulator_server)
    emulator_server.fault("esputnik", status=500, times=5)
    emulator_server.set_latency(0.01)
    es(emulator_server, http, "GET", "/version", key=DEMO_ESPUTNIK_KEY)
    emulator_server.reset()
    assert emulator_server.requests() == [] and emulator_server.faults() == []
    assert es(emulator_server, http, "GET", "/version", key=DEMO_ESPUTNIK_KEY).status_code == 401


def test_demo_seed(emulator, http):
    seed_demo(emulator)
    answer = us(emulator, http, "subscribe", key=DEMO_UNISENDER_KEY,
                list_ids=str(DEMO_UNISENDER_LIST_ID), double_optin=4,
                **{"fields[email]": "demo@example.com"})
    assert "result" in answer
    refused = us(emulator, http, "subscribe", key=DEMO_UNISENDER_KEY,
                 list_ids=str(DEMO_UNISENDER_NO_LETTER_LIST_ID), double_optin=4,
                 **{"fields[email]": "other@example.com"})
    assert refused["code"] == "unspecified"
    groups = es(emulator, http, "GET", "/groups", key=DEMO_ESPUTNIK_KEY).json()
    assert [g["name"] for g in groups] == [DEMO_ESPUTNIK_GROUP, DEMO_ESPUTNIK_CONFIRMED_GROUP]


def test_management_command_serves_until_ctrl_c(tmp_path):
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "ESP_FORMS_DEMO_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "esp_forms_emulator", "--port", "0", "--demo"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for line in proc.stdout:  # the banner ends with the Ctrl-C hint
            url = url or (re.search(r"http://\S+", line) or [None])[0]
            if "Ctrl-C" in line:
                break
        assert url, "the command printed no URL"
        response = requests.get(url + "/api/v1/groups", auth=("", DEMO_ESPUTNIK_KEY),
                                timeout=TIMEOUT)
        assert [g["name"] for g in response.json()] == [DEMO_ESPUTNIK_GROUP,
                                                         DEMO_ESPUTNIK_CONFIRMED_GROUP]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "GET /api/v1/groups -> 200" in out  # the access log line...
    assert DEMO_ESPUTNIK_KEY not in out  # ...without the key (out is what followed the banner)


def test_control_api_drops_and_redelivers_webhooks(emu, http, webhook_receiver):
    es_subscribe(emu, http)
    assert control(emu, http, "POST", "/esputnik/webhooks", {
        "api_key": ES_KEY, "account_url": webhook_receiver.url, "account_login": "esp_forms",
        "account_password": "pw"}).status_code == 200
    assert control(emu, http, "POST", "/webhooks/drop", {"rate": 1.5}).status_code == 400
    assert control(emu, http, "POST", "/webhooks/drop", {"rate": 1, "seed": 3}).status_code == 200
    assert control(emu, http, "POST", "/unsubscribe", {
        "provider": "esputnik", "api_key": ES_KEY, "email": "olena@example.com"}).status_code == 200
    assert emu.wait_for_webhooks()
    [lost] = control(emu, http, "GET", "/webhooks").json()
    assert lost["dropped"] is True and webhook_receiver.received == []
    # The provider's retry round, with the fault switched off: it arrives, Basic auth and all.
    control(emu, http, "POST", "/webhooks/drop", {"rate": 0})
    [again] = control(emu, http, "POST", "/webhooks/redeliver").json()
    assert again["status"] == 200 and again["attempts"] == 2
    [hook] = webhook_receiver.wait(1)
    assert hook.json[0]["activityStatus"] == "UNSUBSCRIBED"
    assert hook.headers["Authorization"] == "Basic " + base64.b64encode(b"esp_forms:pw").decode()
    assert control(emu, http, "POST", "/webhooks/redeliver").json() == []  # nothing left


def test_unisender_list_removal_keeps_the_contact_active(emu, http):
    us(emu, http, "subscribe", list_ids=f"{LETTER_LIST},{OTHER_LIST}",
       **{"fields[email]": "olena@example.com"}, double_optin="3")
    emu.unsubscribe("unisender", US_KEY, "olena@example.com", list_id=LETTER_LIST)
    contact = us(emu, http, "getContact", email="olena@example.com", include_lists="1")
    assert contact["result"]["email"]["status"] == "new"
    assert [item["id"] for item in contact["result"]["email"]["lists"]] == [OTHER_LIST]
    with pytest.raises(LookupError):
        emu.unsubscribe("unisender", US_KEY, "olena@example.com", list_id=LETTER_LIST)


def test_esputnik_field_values_must_be_strings(emu, http):
    response = es(emu, http, "POST", "/contact/subscribe", json={"contact": {
        "channels": [{"type": "email", "value": "olena@example.com"}],
        "fields": [{"id": 1, "value": True}]}})
    assert response.status_code == 400 and "must be a string" in response.json()["message"]
