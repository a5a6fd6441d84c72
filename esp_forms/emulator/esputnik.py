"""eSputnik REST API v1, the parts the app uses (``docs/providers/esputnik.md``, sources).

Served under ``/api/v1/``, plus the activity method ``/api/v2/contacts/activity``. HTTP Basic
auth (any user name, the API key as password), JSON bodies, errors as 4xx with a JSON
``message``. Contacts, groups and the emulator-only confirmation state live in
:class:`~esp_forms.emulator.state.EsputnikAccount`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from esp_forms.emulator.state import (
    EmulatorState,
    EsContact,
    EsGroup,
    EsputnikAccount,
    iso_now,
)
from esp_forms.emulator.webhooks import WebhookDelivery, json_body
from esp_forms.emulator.wire import RecordedRequest, Response, json_response

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
SMS_RE = re.compile(r"^\+?\d{7,15}$")
CHANNEL_TYPES = frozenset({"email", "sms", "mobilepush", "webpush", "viber", "telegram"})
# Characters the docs forbid in formType: < ; ’ \ / | " ` ' ^ ? ! , >
FORM_TYPE_FORBIDDEN = frozenset("<;\u2019\\/|\"`'^?!,>")
DEDUPE_ON = frozenset({"email", "sms", "email_or_sms", "id", "externalCustomerId"})
MAX_BULK = 3000
MAX_ROWS = 500


class BadRequest(Exception):
    """Answered as 400 with the message."""


@dataclass
class Call:
    state: EmulatorState
    account: EsputnikAccount
    request: RecordedRequest
    match: re.Match[str]
    now: float


Handler = Callable[[Call], Response]


def error(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"message": message, **extra})


def api_key_from(authorization: str | None) -> str | None:
    """The password of an HTTP Basic header (the user name is ignored, as eSputnik does)."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep and password else None


def handle(state: EmulatorState, request: RecordedRequest, now: float) -> Response:
    path = request.path.rstrip("/") or "/"  # some clients add a trailing slash (pitfall 9)
    found = route(path)
    if found is None:
        return error(404, f"No endpoint {request.method} {request.path}")
    match, methods = found
    handler = methods.get(request.method)
    if handler is None:
        return json_response(
            405, {"message": f"Request method '{request.method}' is not supported"},
            {"Allow": ", ".join(methods)})
    key = api_key_from(request.headers.get("Authorization"))
    request.api_key = key
    with state.lock:
        account = state.esputnik.get(key) if key else None
        if account is None:
            # The official WooCommerce plugin reads "status": 401 from this body.
            return json_response(
                401, {"status": 401, "error": "Unauthorized",
                      "message": "Full authentication is required to access this resource"},
                {"WWW-Authenticate": 'Basic realm="eSputnik API"'})
        if request.method == "POST":
            content_type = request.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                return error(415, f"Content type '{content_type}' not supported")
        if not account.rate.admit(now):
            return error(429, "Too many requests")
        try:
            return handler(Call(state, account, request, match, now))
        except BadRequest as err:
            return error(400, str(err))


def route(path: str) -> tuple[re.Match[str], dict[str, Handler]] | None:
    for pattern, methods in ROUTES:
        match = pattern.match(path)
        if match:
            return match, methods
    return None


# ---- input parsing --------------------------------------------------------------------------


def json_object(request: RecordedRequest) -> dict[str, Any]:
    if request.json is None:
        raise BadRequest("Request body is not valid JSON")
    if not isinstance(request.json, dict):
        raise BadRequest("Request body must be a JSON object")
    return request.json


def string_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name} must be an array of strings")
    return value


def optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"contact.{name} must be a string")
    return value


def parse_channels(value: Any) -> list[dict[str, str]]:
    if value is None:
        raise BadRequest("contact.channels is required")
    if not isinstance(value, list):
        # The JetFormBuilder pitfall: one object instead of a list of them.
        raise BadRequest("contact.channels must be an array of {type, value} objects")
    if not value:
        raise BadRequest("contact.channels must contain at least one channel")
    channels: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    for item in value:
        if not isinstance(item, dict):
            raise BadRequest("contact.channels items must be {type, value} objects")
        kind, channel_value = item.get("type"), item.get("value")
        if kind not in CHANNEL_TYPES:
            raise BadRequest(f"Unknown channel type: {kind!r}")
        if not isinstance(channel_value, str) or not channel_value.strip():
            raise BadRequest(f"Channel {kind} has no value")
        channel_value = channel_value.strip()
        if kind == "email" and not EMAIL_RE.match(channel_value):
            raise BadRequest(f"Invalid email: {channel_value}")
        if kind == "sms" and not SMS_RE.match(channel_value):
            raise BadRequest(f"Invalid phone number: {channel_value}")
        counts[kind] = counts.get(kind, 0) + 1
        if counts[kind] > 2:
            raise BadRequest(f"At most two channels of type {kind}")
        channels.append({"type": kind, "value": channel_value})
    return channels


def parse_fields(value: Any) -> dict[int, Any]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise BadRequest("contact.fields must be an array of {id, value} objects")
    fields: dict[int, Any] = {}
    for item in value:
        if not isinstance(item, dict) or "id" not in item:
            raise BadRequest("contact.fields items must be {id, value} objects")
        field_id = item["id"]
        # The seed shows the id both as a number and as a digit string; both are accepted.
        if isinstance(field_id, bool) or not (
                isinstance(field_id, int) or (isinstance(field_id, str) and field_id.isdigit())):
            raise BadRequest(f"Invalid additional field id: {field_id!r}")
        value = item.get("value")
        if value is not None and not isinstance(value, str):
            # The contactField schema types the value as a string (ESPUTNIK.md pitfall 3a).
            raise BadRequest(f"Additional field {field_id}: value must be a string")
        fields[int(field_id)] = value
    return fields


def parse_contact(data: Any) -> dict[str, Any]:
    """Validate one contact object; returns the normalised values (None where not given)."""
    if not isinstance(data, dict):
        raise BadRequest("contact must be an object")
    address = data.get("address")
    if address is not None and not isinstance(address, dict):
        raise BadRequest("contact.address must be an object")
    external_id = data.get("externalCustomerId")
    if external_id is not None and not isinstance(external_id, str | int):
        raise BadRequest("contact.externalCustomerId must be a string")
    return {
        "channels": parse_channels(data.get("channels")),
        "fields": parse_fields(data.get("fields")),
        "firstName": optional_str(data, "firstName"),
        "lastName": optional_str(data, "lastName"),
        "languageCode": optional_str(data, "languageCode"),
        "timeZone": optional_str(data, "timeZone"),
        "contactKey": optional_str(data, "contactKey"),
        "externalCustomerId": None if external_id is None else str(external_id),
        "address": address,
        "id": data.get("id"),
    }


# ---- contact storage ------------------------------------------------------------------------


def sms_key(value: str) -> str:
    return value.lstrip("+")


def find_contact(account: EsputnikAccount, channels: list[dict[str, str]]) -> EsContact | None:
    """Match by email first, then by phone, as Subscribe contact documents."""
    for kind, index, norm in (("email", account.by_email, str.lower),
                              ("sms", account.by_sms, sms_key)):
        for channel in channels:
            if channel["type"] == kind:
                contact_id = index.get(norm(channel["value"]))
                if contact_id is not None:
                    return account.contacts[contact_id]
    return None


def index_contact(account: EsputnikAccount, contact: EsContact) -> None:
    for channel in contact.channels:
        if channel["type"] == "email":
            account.by_email.setdefault(channel["value"].lower(), contact.id)
        elif channel["type"] == "sms":
            account.by_sms.setdefault(sms_key(channel["value"]), contact.id)


def unindex_channel(account: EsputnikAccount, contact: EsContact, channel: dict[str, str]) -> None:
    if channel["type"] == "email":
        index, key = account.by_email, channel["value"].lower()
    elif channel["type"] == "sms":
        index, key = account.by_sms, sms_key(channel["value"])
    else:
        return
    if index.get(key) == contact.id:
        del index[key]


def new_contact(call: Call, data: dict[str, Any], *, source: str, confirmed: bool) -> EsContact:
    now = iso_now(call.now)
    contact = EsContact(id=call.state.next_contact_id(), channels=data["channels"],
                        source=source, created_at=now, updated_at=now, confirmed=confirmed,
                        confirmed_at=now if confirmed else None)
    update_details(contact, data)
    call.account.contacts[contact.id] = contact
    index_contact(call.account, contact)
    return contact


def update_details(contact: EsContact, data: dict[str, Any]) -> None:
    """Copy the given (non-None) standard and additional fields onto the contact."""
    for attr, name in (("first_name", "firstName"), ("last_name", "lastName"),
                       ("language_code", "languageCode"), ("time_zone", "timeZone"),
                       ("contact_key", "contactKey"),
                       ("external_customer_id", "externalCustomerId"), ("address", "address")):
        if data.get(name) is not None:
            setattr(contact, attr, data[name])
    contact.fields.update(data["fields"])


def group_named(call: Call, name: str) -> EsGroup:
    """The group with that name, created when missing (as Subscribe contact does)."""
    group = call.account.groups.get(name.lower())
    if group is None:
        group = EsGroup(id=call.state.next_group_id(), name=name)
        call.account.groups[name.lower()] = group
    return group


def add_event(account: EsputnikAccount, contact: EsContact, name: str, now: float,
              extra: dict[str, str] | None = None) -> None:
    params = {"ContactId": str(contact.id)}
    if contact.email:  # documented: EmailAddress is missing when only a phone was sent
        params["EmailAddress"] = contact.email
    params.update(extra or {})
    account.events.append({"eventTypeKey": name, "keyValue": str(contact.id),
                           "params": params, "time": iso_now(now)})


def contact_api(account: EsputnikAccount, contact: EsContact) -> dict[str, Any]:
    """The contact object as ``GET /v1/contact/{id}`` returns it (no confirmation flag: the
    real API has none)."""
    groups = [g.as_api() for g in map(account.group_by_id, contact.group_ids) if g]
    return {
        "id": contact.id,
        "firstName": contact.first_name,
        "lastName": contact.last_name,
        "channels": [dict(c) for c in contact.channels],
        "address": contact.address,
        "fields": [{"id": k, "value": v} for k, v in contact.fields.items()],
        "addressBookId": contact.address_book_id,
        "contactKey": contact.contact_key or contact.email or contact.sms,
        "externalCustomerId": contact.external_customer_id,
        "languageCode": contact.language_code,
        "timeZone": contact.time_zone,
        "groups": groups,
    }


def contact_view(account: EsputnikAccount, contact: EsContact) -> dict[str, Any]:
    """The API object plus the emulator-only state, for the control API and tests."""
    events = [e for e in account.events if e["keyValue"] == str(contact.id)]
    return {**contact_api(account, contact), "confirmed": contact.confirmed,
            "confirmedAt": contact.confirmed_at,
            "unsubscribed": contact.unsubscribed_at is not None,
            "unsubscribedAt": contact.unsubscribed_at, "source": contact.source,
            "subscriptions": list(contact.subscriptions), "createdAt": contact.created_at,
            "updatedAt": contact.updated_at, "events": events}


# ---- endpoints ------------------------------------------------------------------------------


def subscribe(call: Call) -> Response:
    data = json_object(call.request)
    groups = string_list(data.get("groups"), "groups")
    subscriptions = string_list(data.get("subscriptions"), "subscriptions")
    form_type = data.get("formType")
    if form_type is not None:
        if not isinstance(form_type, str):
            raise BadRequest("formType must be a string")
        bad = sorted(set(form_type) & FORM_TYPE_FORBIDDEN)
        if bad:
            raise BadRequest(f"formType contains forbidden characters: {''.join(bad)}")
    if "contact" not in data or data["contact"] is None:
        raise BadRequest("contact is required")
    parsed = parse_contact(data["contact"])

    account, now = call.account, call.now
    # The same request repeated within the window is refused (documented 409), counted only
    # from requests that succeeded.
    digest = hashlib.sha256(call.request.path.encode() + b"\0" + call.request.body).hexdigest()
    horizon = now - call.state.duplicate_window
    while account.recent and next(iter(account.recent.values())) <= horizon:
        account.recent.popitem(last=False)
    if digest in account.recent:
        return json_response(409, {"message": "Duplicated request"})

    contact = find_contact(account, parsed["channels"])
    suffix = f"-{form_type}" if form_type else ""
    if contact is None:
        contact = new_contact(call, parsed, source="Subscription form", confirmed=False)
        add_event(account, contact, f"subscribeFromApi{suffix}", now)
    else:
        # Existing contact: fields are updated, existing media channels are not; a channel of
        # a type it lacks is added.
        have = {c["type"] for c in contact.channels}
        for channel in parsed["channels"]:
            if channel["type"] not in have:
                contact.channels.append(channel)
        index_contact(account, contact)
        update_details(contact, parsed)
        contact.updated_at = iso_now(now)
        add_event(account, contact, f"subscribeUpdateFromApi{suffix}", now)
    for name in groups:  # added to groups, never removed
        group = group_named(call, name)
        if group.id not in contact.group_ids:
            contact.group_ids.append(group.id)
    for name in subscriptions:
        if name not in contact.subscriptions:
            contact.subscriptions.append(name)
    account.recent[digest] = now
    return json_response(200, {"id": contact.id})


def bulk_match(account: EsputnikAccount, data: dict[str, Any], dedupe_on: str
               ) -> EsContact | None:
    if data["externalCustomerId"] is not None:  # documented: then dedupeOn is ignored
        for contact in account.contacts.values():
            if contact.external_customer_id == data["externalCustomerId"]:
                return contact
        return None
    if dedupe_on == "id":
        try:
            return account.contacts.get(int(data["id"]))
        except (TypeError, ValueError):
            return None
    kinds = {"email": ["email"], "sms": ["sms"], "email_or_sms": ["email", "sms"],
             "externalCustomerId": []}[dedupe_on]
    return find_contact(account, [c for c in data["channels"] if c["type"] in kinds])


def add_update_contacts(call: Call) -> Response:
    data = json_object(call.request)
    contacts = data.get("contacts")
    if not isinstance(contacts, list) or not 1 <= len(contacts) <= MAX_BULK:
        raise BadRequest(f"contacts must be an array of 1 to {MAX_BULK} contacts")
    dedupe_on = data.get("dedupeOn")
    if dedupe_on not in DEDUPE_ON:
        raise BadRequest(f"dedupeOn is required, one of {', '.join(sorted(DEDUPE_ON))}")
    include = string_list(data.get("groupNames"), "groupNames")
    exclude = string_list(data.get("groupNamesExclude"), "groupNamesExclude")
    event_key = data.get("eventKeyForNewContacts")
    if event_key is not None and not (isinstance(event_key, str)
                                      and re.fullmatch(r"[A-Za-z0-9]+", event_key)):
        raise BadRequest("eventKeyForNewContacts: Latin letters and digits only")

    account, now = call.account, call.now
    failed: list[dict[str, Any]] = []
    mapping: list[dict[str, Any]] = []
    for raw in contacts:
        try:
            parsed = parse_contact(raw)
        except BadRequest as err:
            failed.append({"contact": raw, "errors": str(err)})
            continue
        contact = bulk_match(account, parsed, dedupe_on)
        if contact is None:
            contact = new_contact(call, parsed, source="API", confirmed=True)
            if event_key:
                extra = {"SMS": contact.sms} if contact.sms else {}
                add_event(account, contact, event_key, now, extra)
        else:
            # An import overwrites channels of the types it sends and confirms the contact.
            for channel in parsed["channels"]:
                old = [c for c in contact.channels if c["type"] == channel["type"]]
                for c in old:
                    unindex_channel(account, contact, c)
                    contact.channels.remove(c)
                contact.channels.append(channel)
            index_contact(account, contact)
            update_details(contact, parsed)
            contact.updated_at = iso_now(now)
            if not contact.confirmed:
                contact.confirmed, contact.confirmed_at = True, iso_now(now)
        for name in include:
            group = group_named(call, name)
            if group.id not in contact.group_ids:
                contact.group_ids.append(group.id)
        for name in exclude:
            group = account.groups.get(name.lower())
            if group and group.id in contact.group_ids:
                contact.group_ids.remove(group.id)
        mapping.append({"contactId": contact.id, "email": contact.email, "sms": contact.sms,
                        "externalCustomerId": contact.external_customer_id})
    session_id = str(uuid.uuid4())
    account.imports[session_id] = mapping
    return json_response(200, {"asyncSessionId": session_id, "failedContacts": failed})


def import_status(call: Call) -> Response:
    mapping = call.account.imports.get(call.match["id"])
    if mapping is None:
        return error(404, "Import session not found")
    return json_response(200, {"status": "FINISHED", "mapping": mapping})


def int_param(request: RecordedRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, [str(default)])[0]
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def search_contacts(call: Call) -> Response:
    request, account = call.request, call.account
    start = int_param(request, "startindex", 1, 1, 10**9)
    rows = int_param(request, "maxrows", MAX_ROWS, 1, MAX_ROWS)

    def first(name: str) -> str | None:
        return (request.query.get(name) or [None])[0]

    email, sms = first("email"), first("sms")
    firstname, lastname, external = first("firstname"), first("lastname"), first(
        "externalCustomerId")
    found: list[EsContact] = []
    for contact in account.contacts.values():
        if email and (contact.email or "").lower() != email.lower():
            continue
        if sms and sms_key(contact.sms or "") != sms_key(sms):
            continue
        if firstname and contact.first_name != firstname:
            continue
        if lastname and contact.last_name != lastname:
            continue
        if external and contact.external_customer_id != external:
            continue
        found.append(contact)
    page = found[start - 1:start - 1 + rows]
    return json_response(200, [contact_api(account, c) for c in page],
                         {"TotalCount": str(len(found))})


def get_contact(call: Call) -> Response:
    raw = call.match["id"]
    contact = call.account.contacts.get(int(raw)) if raw.isdigit() else None
    if contact is None:
        return error(404, f"Contact {raw} not found")
    return json_response(200, contact_api(call.account, contact))


def account_info(call: Call) -> Response:
    account = call.account
    return json_response(200, {"userEmail": account.user_email, "organisationName": account.org,
                               "orgId": account.org_id})


def version(call: Call) -> Response:
    return json_response(200, {"version": "1.0-emulator", "protocolVersion": "1.0"})


def groups(call: Call) -> Response:
    start = int_param(call.request, "startindex", 1, 1, 10**9)
    rows = int_param(call.request, "maxrows", MAX_ROWS, 1, MAX_ROWS)
    name = (call.request.query.get("name") or [""])[0].lower()
    found = [g.as_api() for g in call.account.groups.values() if name in g.name.lower()]
    return json_response(200, found[start - 1:start - 1 + rows])


ACTIVITY_MAX_ROWS = 1000


def activity_param(request: RecordedRequest, name: str) -> datetime:
    raw = (request.query.get(name) or [""])[0]
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"{name} must be a date-time like 2026-12-03T10:00:00") from None


def activity_moment(item: dict[str, Any]) -> datetime:
    moment = datetime.fromisoformat(item["activityDateTime"])
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def contacts_activity(call: Call) -> Response:
    """``GET v2/contacts/activity?dateFrom=&dateTo=&maxrows=``: the recorded activity between
    the two moments (both included), as the activity webhook's items plus ``mediaType``, oldest
    first. At most ``maxrows`` (1000, what public clients keep to) items."""
    if not call.account.activity_method_enabled:
        return error(403, "Access denied")
    date_from = activity_param(call.request, "dateFrom")
    date_to = activity_param(call.request, "dateTo")
    rows = int_param(call.request, "maxrows", ACTIVITY_MAX_ROWS, 1, ACTIVITY_MAX_ROWS)
    found = [{**item, "mediaType": "email"} for item in call.account.activity
             if date_from <= activity_moment(item) <= date_to]
    return json_response(200, found[:rows])


# Order matters: "contact/subscribe" must win over "contact/{id}".
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^/api/v1/contact/subscribe$"), {"POST": subscribe}),
    (re.compile(r"^/api/v1/contacts$"), {"GET": search_contacts, "POST": add_update_contacts}),
    (re.compile(r"^/api/v1/contact/(?P<id>[^/]+)$"), {"GET": get_contact}),
    (re.compile(r"^/api/v1/importstatus/(?P<id>[^/]+)$"), {"GET": import_status}),
    (re.compile(r"^/api/v1/account/info$"), {"GET": account_info}),
    (re.compile(r"^/api/v1/version$"), {"GET": version}),
    (re.compile(r"^/api/v1/groups$"), {"GET": groups}),
    (re.compile(r"^/api/v2/contacts/activity$"), {"GET": contacts_activity}),
]


# ---- control operations (called by the server under the state lock) --------------------------


def add_account(state: EmulatorState, api_key: str, *, groups: list[str] | tuple[str, ...] = (),
                org: str = "Demo org") -> EsputnikAccount:
    account = EsputnikAccount(api_key=api_key, org=org, org_id=state.next_org_id())
    for name in groups:
        account.groups[name.lower()] = EsGroup(id=state.next_group_id(), name=name)
    state.esputnik[api_key] = account
    return account


def account_of(state: EmulatorState, api_key: str) -> EsputnikAccount:
    account = state.esputnik.get(api_key)
    if account is None:
        raise LookupError("no eSputnik account with that API key")
    return account


def contact_by_email(account: EsputnikAccount, email: str) -> EsContact:
    contact_id = account.by_email.get(email.lower())
    if contact_id is None:
        raise LookupError(f"no eSputnik contact {email}")
    return account.contacts[contact_id]


def confirm(state: EmulatorState, api_key: str, email: str, group: str, now: float
            ) -> list[WebhookDelivery]:
    """What the owner's confirmation workflow does once the person clicks: Confirm contact, add
    to the segment, then the Webhook block (DESIGN.md section 2)."""
    account = account_of(state, api_key)
    contact = contact_by_email(account, email)
    contact.confirmed, contact.confirmed_at = True, iso_now(now)
    contact.updated_at = contact.confirmed_at
    target = account.groups.get(group.lower())
    if target is None:
        target = EsGroup(id=state.next_group_id(), name=group)
        account.groups[group.lower()] = target
    if target.id not in contact.group_ids:
        contact.group_ids.append(target.id)
    if not account.workflow_url:
        return []
    return [workflow_delivery(account, contact.email or email, contact.id, now)]


def workflow_delivery(account: EsputnikAccount, email: str, contact_id: int | None, now: float
                      ) -> WebhookDelivery:
    # What the documented Webhook block body sends: ${ContactId} is substituted into a JSON
    # string, so the id arrives as a string.
    payload = {"email": email, "contactId": "" if contact_id is None else str(contact_id),
               "secret": account.webhook_secret}
    return WebhookDelivery("esputnik", "confirmed", account.workflow_url or "", payload,
                           json_body(payload), now)


def unsubscribe(state: EmulatorState, api_key: str, email: str, now: float
                ) -> list[WebhookDelivery]:
    """The person clicked "unsubscribe" in a campaign: the activity webhook reports it."""
    account = account_of(state, api_key)
    contact = contact_by_email(account, email)
    contact.unsubscribed_at = iso_now(now)
    item = activity_item(account, contact.email or email, contact.id, now, "UNSUBSCRIBED")
    account.activity.append(item)  # what the activity method reads, webhook lost or not
    if not account.account_url:
        return []
    return [activity_delivery(account, item, now)]


# activityStatus values of the account's activity webhook (esputnik.com/en/support/webhooks).
ACTIVITY_STATUSES = ("DELIVERED", "UNDELIVERED", "READ", "UNSUBSCRIBED", "CLICKED", "SPAM")


def activity_item(account: EsputnikAccount, email: str, contact_id: int | None, now: float,
                  status: str) -> dict[str, Any]:
    """One activity item in the documented array: contactId, email, activityStatus,
    messageId, messageInstanceId, messageTag, activityDateTime, and statusDescription for
    UNDELIVERED only."""
    message_id = account.next_message_id
    account.next_message_id += 1
    item: dict[str, Any] = {"contactId": contact_id, "email": email, "activityStatus": status,
                            "messageId": message_id, "messageInstanceId": message_id * 10 + 1,
                            "messageTag": "newsletter", "activityDateTime": iso_now(now)}
    if status == "UNDELIVERED":
        item["statusDescription"] = "Mailbox unavailable"
    return item


def activity_delivery(account: EsputnikAccount, item: dict[str, Any], now: float
                      ) -> WebhookDelivery:
    """The activity webhook carrying one item, sent with HTTP Basic auth when the owner set a
    login and password."""
    payload = [item]
    headers: dict[str, str] = {}
    if account.account_login is not None and account.account_password is not None:
        token = f"{account.account_login}:{account.account_password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
    return WebhookDelivery("esputnik", item["activityStatus"].lower(), account.account_url or "",
                           payload, json_body(payload), now, headers=headers)


def on_demand(state: EmulatorState, api_key: str, event: str, email: str, now: float
              ) -> WebhookDelivery:
    """A callback without any state change (a forged, repeated or receipt one, as a test
    needs): ``confirmed`` (the workflow block) or an activityStatus such as ``unsubscribed``
    or ``delivered``."""
    account = account_of(state, api_key)
    contact_id = account.by_email.get(email.lower())
    if event == "confirmed":
        if not account.workflow_url:
            raise LookupError("no workflow webhook URL set for that eSputnik key")
        return workflow_delivery(account, email, contact_id, now)
    if event.upper() in ACTIVITY_STATUSES:
        if not account.account_url:
            raise LookupError("no account webhook URL set for that eSputnik key")
        # Not recorded as activity: nothing happened at eSputnik.
        item = activity_item(account, email, contact_id, now, event.upper())
        return activity_delivery(account, item, now)
    raise ValueError("eSputnik webhook event must be 'confirmed' or an activityStatus: "
                     + ", ".join(s.lower() for s in ACTIVITY_STATUSES))
