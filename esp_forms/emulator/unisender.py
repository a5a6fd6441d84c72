"""UniSender's classic API, the parts the app uses (``docs/providers/unisender.md``, sources).

``<lang>/api/<method>?format=json``; parameters form-encoded in a POST body (or all in the query
of a GET), ``api_key`` among them. Every API error is an HTTP 200 with ``{"error", "code"}``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from esp_forms.emulator.state import (
    EmulatorState,
    UContact,
    UHook,
    UList,
    UnisenderAccount,
    unisender_time,
)
from esp_forms.emulator.webhooks import WebhookDelivery, unisender_signed_body
from esp_forms.emulator.wire import RecordedRequest, Response, json_response, text_response

# The official wrapper's languages; any other path segment is answered 404.
LANGUAGES = frozenset({"en", "ru", "ua"})
PATH_RE = re.compile(r"^/(?P<lang>[^/]+)/api/(?P<method>[^/]+)/?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PHONE_RE = re.compile(r"^\+\d{7,15}$")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
MAX_TAGS = 10
# The documented answer to parameters split between the query and a POST body (UNISENDER.md 3).
MIXED_PARAMS_ERROR = "Call to a member function getMessage() on boolean"
EVENT_FORMATS = frozenset({"json_post"})
HOOK_STATUSES = frozenset({"active", "disabled", "stopped"})

# Default messages for codes a fault names without a message.
DEFAULT_MESSAGES = {
    "unspecified": "Unspecified error",
    "invalid_api_key": "Wrong API key",
    "access_denied": "Access denied",
    "unknown_method": "Unknown method",
    "invalid_arg": "Invalid argument",
    "not_enough_money": "Not enough money on the account",
    "retry_later": "Temporary error, please retry later",
    "api_call_limit_exceeded_for_api_key": "API call limit exceeded for API key",
    "api_call_limit_exceeded_for_ip": "API call limit exceeded for IP",
    "too_many_double_optins": "Too many double opt-ins",
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, *, with_result: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.with_result = with_result


def error_response(code: str, message: str | None = None, *, with_result: bool = False,
                   status: int = 200) -> Response:
    body: dict[str, Any] = {"error": message or DEFAULT_MESSAGES.get(code, code), "code": code}
    if with_result:
        body["result"] = []
    return json_response(status, body)


@dataclass
class Call:
    state: EmulatorState
    account: UnisenderAccount
    request: RecordedRequest
    params: dict[str, list[str]]
    now: float

    def get(self, name: str, default: str = "") -> str:
        values = self.params.get(name)
        return values[0] if values else default


Handler = Callable[[Call], Response]


def handle(state: EmulatorState, request: RecordedRequest, now: float) -> Response:
    match = PATH_RE.match(request.path)
    if match is None or match["lang"] not in LANGUAGES:
        return text_response(404, "Not Found")
    if request.method not in ("GET", "POST"):
        return text_response(405, "Method Not Allowed")
    query = {k: v for k, v in request.query.items() if k != "format"}
    body = (request.form or {}) if request.method == "POST" else {}
    if query and body:
        return json_response(200, {"error": MIXED_PARAMS_ERROR})
    params = {**request.query, **body}
    fmt = (params.get("format") or ["json"])[0]
    if fmt != "json":
        return error_response("invalid_arg", f'Unsupported format "{fmt}"')
    handler = METHODS.get(match["method"])
    if handler is None:
        return error_response("unknown_method", f'Unknown method "{match["method"]}"')
    key = (params.get("api_key") or [""])[0]
    request.api_key = key or None
    with state.lock:
        account = state.unisender.get(key) if key else None
        if account is None:
            return error_response("invalid_api_key")
        if not account.all_rate.admit(now):
            return error_response("api_call_limit_exceeded_for_api_key")
        try:
            return handler(Call(state, account, request, params, now))
        except ApiError as err:
            return error_response(err.code, err.message, with_result=err.with_result)


# ---- subscribe ------------------------------------------------------------------------------


def invalid(message: str) -> ApiError:
    return ApiError("invalid_arg", message)


def parse_list_ids(call: Call) -> list[int]:
    raw = call.get("list_ids").strip()
    if not raw:
        raise invalid('Required argument "list_ids" is missing')
    ids: list[int] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        if not part.isdigit() or int(part) not in call.account.lists:
            raise invalid(f'Invalid list id "{part}": no such list')
        if int(part) not in ids:
            ids.append(int(part))
    if not ids:
        raise invalid('Required argument "list_ids" is missing')
    return ids


def choice(call: Call, name: str, allowed: tuple[int, ...], default: int) -> int:
    raw = call.get(name).strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) not in allowed:
        raise invalid(f'Invalid value "{raw}" of argument "{name}"')
    return int(raw)


def consent(call: Call) -> dict[str, str]:
    """The legacy request/confirm arguments, checked against their documented formats."""
    out: dict[str, str] = {}
    for name in ("request_ip", "confirm_ip"):
        value = call.get(name).strip()
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise invalid(f'Invalid value "{value}" of argument "{name}"') from None
            out[name] = value
    for name in ("request_time", "confirm_time"):
        value = call.get(name).strip()
        if value:
            for fmt in TIME_FORMATS:
                try:
                    datetime.strptime(value, fmt)
                    break
                except ValueError:
                    continue
            else:
                raise invalid(f'Invalid value "{value}" of argument "{name}"')
            out[name] = value
    return out


def subscribe(call: Call) -> Response:
    account, now = call.account, call.now
    if not account.subscribe_rate.admit(now):
        raise ApiError("api_call_limit_exceeded_for_api_key",
                       DEFAULT_MESSAGES["api_call_limit_exceeded_for_api_key"])
    list_ids = parse_list_ids(call)
    fields = {name[7:-1]: values[0] for name, values in call.params.items()
              if name.startswith("fields[") and name.endswith("]") and values}
    email = fields.pop("email", "").strip()
    if not email:
        raise invalid('Required field "email" is missing in "fields"')
    if not EMAIL_RE.match(email):
        raise invalid(f'Invalid email "{email}"')
    phone = fields.pop("phone", "").strip() or None
    if phone is not None and not PHONE_RE.match(phone):
        raise invalid(f'Invalid phone "{phone}": international format with + expected')
    tags = [t.strip() for t in call.get("tags").split(",") if t.strip()]
    if len(tags) > MAX_TAGS:
        raise invalid(f"Too many tags: at most {MAX_TAGS}")
    optin = choice(call, "double_optin", (0, 3, 4), 0)  # missing behaves like 0 (seed)
    overwrite = choice(call, "overwrite", (0, 1, 2), 0)
    proof = consent(call)

    owner_by_email = account.by_email.get(email.lower())
    owner_by_phone = account.by_phone.get(phone) if phone else None
    if owner_by_email and owner_by_phone and owner_by_email != owner_by_phone:
        raise ApiError("unspecified", f"Contacts {email} and {phone} already exist but owned by "
                       "different subscribers", with_result=True)
    person_id = owner_by_email or owner_by_phone
    contact = account.contacts[person_id] if person_id else None

    if optin == 3:
        letter = False
    elif optin == 4:
        letter = contact is None or contact.status not in ("new", "active")
    else:
        letter = True
    first = account.lists[list_ids[0]]
    if letter and not first.confirmation_letter:
        # Only the first list's letter is ever sent (UNISENDER.md section 6).
        raise ApiError("unspecified", f'These list ids="{first.id}" has no confirmation letters')

    stamp = unisender_time(now)
    if contact is None:
        contact = UContact(person_id=call.state.next_person_id(), email=email, added_at=stamp)
        account.contacts[contact.person_id] = contact
    # Re-subscribing with a new phone (or email) replaces it, as the seed describes; the
    # conflicting case was refused above.
    set_channel(account, contact, "email", email)
    if phone:
        set_channel(account, contact, "phone", phone)

    if overwrite == 1:
        contact.fields = dict(fields)
        contact.tags = list(tags)
        # One doc copy says overwrite=1 also drops every list not named (UNISENDER.md 2).
        for lists in (contact.lists, contact.pending):
            for list_id in [i for i in lists if i not in list_ids]:
                del lists[list_id]
    elif overwrite == 2:
        contact.fields.update(fields)
        if tags:
            contact.tags = list(tags)
    else:
        for name, value in fields.items():
            contact.fields.setdefault(name, value)
        contact.tags.extend(t for t in tags if t not in contact.tags)

    contact.consent.update(proof)
    contact.double_optin = optin
    contact.platform = call.get("platform") or contact.platform
    if letter:
        # 0/4: the invitation goes out; the contact stays outside the lists until it clicks.
        contact.letters.append({"list_id": first.id, "list_ids": list_ids, "time": stamp})
        for list_id in list_ids:
            if list_id not in contact.lists:
                contact.pending.setdefault(list_id, stamp)
        if contact.status not in ("active", "blocked"):
            contact.status = "invited"
    else:
        for list_id in list_ids:
            contact.lists.setdefault(list_id, stamp)
            contact.pending.pop(list_id, None)
        if optin == 3 and contact.status not in ("active", "blocked"):
            contact.status = "new"
    return json_response(200, {"result": {"person_id": contact.person_id}})


def set_channel(account: UnisenderAccount, contact: UContact, kind: str, value: str) -> None:
    index = account.by_email if kind == "email" else account.by_phone
    old = contact.email if kind == "email" else contact.phone
    if old is not None:
        old_key = old.lower() if kind == "email" else old
        if index.get(old_key) == contact.person_id:
            del index[old_key]
    setattr(contact, kind, value)
    index[value.lower() if kind == "email" else value] = contact.person_id


# ---- reading --------------------------------------------------------------------------------


def flag(call: Call, name: str) -> bool:
    return call.get(name).strip().lower() in ("1", "true", "yes")


def get_contact(call: Call) -> Response:
    email = call.get("email").strip()
    if not email:
        raise invalid('Required argument "email" is missing')
    person_id = call.account.by_email.get(email.lower())
    if person_id is None:
        raise ApiError("unspecified", "Contact not found")
    contact = call.account.contacts[person_id]
    info: dict[str, Any] = {"email": contact.email, "added_at": contact.added_at,
                            "status": contact.status, "availability": "available"}
    if flag(call, "include_details"):
        info.update({"last_send_datetime": None, "last_delivery_datetime": None,
                     "last_read_datetime": None, "last_click_datetime": None, "rating": 0})
    if flag(call, "include_lists"):
        lists = call.account.lists
        info["lists"] = [{"id": list_id, "title": lists[list_id].title, "added_at": added}
                         for list_id, added in contact.lists.items() if list_id in lists]
    result: dict[str, Any] = {"email": info}
    if flag(call, "include_fields"):
        result["fields"] = dict(contact.fields)
    return json_response(200, {"result": result})


def get_lists(call: Call) -> Response:
    return json_response(200, {"result": [{"id": lst.id, "title": lst.title}
                                          for lst in call.account.lists.values()]})


# ---- hooks ----------------------------------------------------------------------------------


def set_hook(call: Call) -> Response:
    url = call.get("hook_url").strip()
    if not re.match(r"^https?://[^\s/]+", url):
        raise invalid('Argument "hook_url" must be an http(s) URL')
    events: dict[str, str] = {}
    for name, values in call.params.items():
        if name == "events[]":  # events[]=subscribe (the doc's form)
            events.update({v.strip(): "*" for v in values if v.strip()})
        elif name.startswith("events[") and name.endswith("]"):  # events[subscribe]=*
            events[name[7:-1]] = values[0] if values else "*"
    if not events:
        raise invalid('Argument "events" is missing')
    event_format = call.get("event_format", "json_post")
    if event_format not in EVENT_FORMATS:
        raise invalid(f'Unsupported event_format "{event_format}" (the emulator sends json_post)')
    status = call.get("status", "active")
    if status not in HOOK_STATUSES:
        raise invalid(f'Invalid value "{status}" of argument "status"')
    max_parallel = call.get("max_parallel", "10")
    if not max_parallel.isdigit():
        raise invalid(f'Invalid value "{max_parallel}" of argument "max_parallel"')
    hook = UHook(url=url, events=events, event_format=event_format,
                 single_event=flag(call, "single_event"), status=status,
                 max_parallel=int(max_parallel))
    call.account.hooks[url] = hook  # the URL identifies the hook: same URL replaces
    return json_response(200, {"result": hook.as_api()})


def remove_hook(call: Call) -> Response:
    url = call.get("hook_url").strip()
    if call.account.hooks.pop(url, None) is None:
        raise invalid(f'Hook "{url}" not found')
    return json_response(200, {"result": {"hook_url": url}})


METHODS: dict[str, Handler] = {
    "subscribe": subscribe,
    "getContact": get_contact,
    "getLists": get_lists,
    "setHook": set_hook,
    "removeHook": remove_hook,
}


# ---- control operations (called by the server under the state lock) --------------------------


def add_account(state: EmulatorState, api_key: str, *, lists: list[dict[str, Any]],
                login: str = "demo") -> UnisenderAccount:
    account = UnisenderAccount(api_key=api_key, login=login)
    for spec in lists:
        lst = UList(id=int(spec["id"]), title=str(spec.get("title") or spec["id"]),
                    confirmation_letter=bool(spec.get("confirmation_letter", True)))
        account.lists[lst.id] = lst
    state.unisender[api_key] = account
    return account


def account_of(state: EmulatorState, api_key: str) -> UnisenderAccount:
    account = state.unisender.get(api_key)
    if account is None:
        raise LookupError("no UniSender account with that API key")
    return account


def contact_by_email(account: UnisenderAccount, email: str) -> UContact:
    person_id = account.by_email.get(email.lower())
    if person_id is None:
        raise LookupError(f"no UniSender contact {email}")
    return account.contacts[person_id]


def contact_view(contact: UContact) -> dict[str, Any]:
    return {"person_id": contact.person_id, "email": contact.email, "phone": contact.phone,
            "status": contact.status, "added_at": contact.added_at,
            "lists": list(contact.lists), "pending_lists": list(contact.pending),
            "fields": dict(contact.fields), "tags": list(contact.tags),
            "letters": [dict(letter) for letter in contact.letters],
            "double_optin": contact.double_optin, "platform": contact.platform,
            "confirmed_at": contact.confirmed_at, **contact.consent}


def confirm(state: EmulatorState, api_key: str, email: str, now: float
            ) -> list[WebhookDelivery]:
    """The person clicked the invitation link: active, and in the lists it asked for."""
    account = account_of(state, api_key)
    contact = contact_by_email(account, email)
    stamp = unisender_time(now)
    joined = list(contact.pending) or list(contact.lists)
    for list_id in contact.pending:
        contact.lists.setdefault(list_id, stamp)
    contact.pending.clear()
    contact.status = "active"
    contact.confirmed_at = stamp
    return hook_deliveries(account, "subscribe", contact.email, joined or [None], now)


def unsubscribe(state: EmulatorState, api_key: str, email: str, now: float, *,
                list_id: int | None = None) -> list[WebhookDelivery]:
    """Unsubscribed from everything (status ``unsubscribed``), or with ``list_id`` removed from
    that one list only (the email status stays as it was)."""
    account = account_of(state, api_key)
    contact = contact_by_email(account, email)
    if list_id is not None:
        if contact.lists.pop(list_id, None) is None and contact.pending.pop(list_id, None) is None:
            raise LookupError(f"{email} is not in the list {list_id}")
        return hook_deliveries(account, "unsubscribe", contact.email, [list_id], now)
    contact.status = "unsubscribed"
    contact.pending.clear()
    return hook_deliveries(account, "unsubscribe", contact.email, list(contact.lists) or [None],
                           now)


def on_demand(state: EmulatorState, api_key: str, event: str, email: str,
              list_id: int | None, now: float) -> list[WebhookDelivery]:
    account = account_of(state, api_key)
    deliveries = hook_deliveries(account, event, email, [list_id], now)
    if not deliveries:
        raise LookupError(f"no active UniSender hook for the event {event!r}")
    return deliveries


def hook_deliveries(account: UnisenderAccount, event: str, email: str,
                    list_ids: list[int | None], now: float) -> list[WebhookDelivery]:
    """One signed POST per hook listening to the event (one per list with single_event=1)."""
    stamp = unisender_time(now)
    out: list[WebhookDelivery] = []
    for hook in account.hooks.values():
        if hook.status != "active" or event not in hook.events:
            continue
        if hook.single_event:
            payloads: list[dict[str, Any]] = [
                {"event_name": event, "event_time": stamp, "email": email, "list_id": list_id}
                for list_id in list_ids]
        else:
            events = [{"event_name": event, "event_time": stamp,
                       "event_data": {"email": email, "list_id": list_id}}
                      for list_id in list_ids]
            payloads = [{"events_by_user": [{"login": account.login, "events": events}]}]
        for payload in payloads:
            body = unisender_signed_body(payload, account.api_key)
            out.append(WebhookDelivery("unisender", event, hook.url, json.loads(body), body, now))
    return out
