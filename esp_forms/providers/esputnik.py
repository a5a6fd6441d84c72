"""eSputnik (Yespo) REST API v1: JSON over HTTPS with HTTP Basic auth.

Wire facts (see ``docs/providers/esputnik.md`` and the developer note ``providers/ESPUTNIK.md``):

- Basic auth with any user name and the API key as the password; JSON in UTF-8 both ways.
- Signups use *Subscribe contact* (``POST /api/v1/contact/subscribe``): the contact is created
  unconfirmed and the event ``subscribeFromApi-<formType>`` starts the owner's double opt-in
  workflow. Success is ``200 {"id": <contactId>}``; ``409`` is eSputnik refusing an identical
  request repeated within a minute (a retry after a lost answer), so it means "already done".
- After this site's own confirmation link (local double opt-in), and in "off" mode (where a
  Subscribe-contact contact would stay unconfirmed and get no campaign), we use *Add/update
  contacts* (``POST /api/v1/contacts``), which creates the contact already confirmed.
- Additional field values are strings (the ``contactField`` schema), never JSON booleans.
- The API has no "confirmed" field: the owner's confirmation workflow adds the contact to a
  segment (``SignupForm.confirmed_group``) and we read the contact's ``groups``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from esp_forms.exceptions import (
    PermanentProviderError,
    ProviderConfigurationError,
    ProviderError,
    TransientProviderError,
)
from esp_forms.providers.base import (
    AccountCheck,
    BaseProvider,
    ContactStatus,
    ProviderRequest,
    ProviderResponse,
    SubscribeResult,
    submitted_fields,
    submitted_names,
)

if TYPE_CHECKING:
    from esp_forms.models import SignupForm, Submission

# HTTP Basic needs a user name; eSputnik ignores it and checks only the password (the key).
BASIC_AUTH_USER = "esp_forms"

SUBSCRIBE_PATH = "/api/v1/contact/subscribe"
CONTACTS_PATH = "/api/v1/contacts"
CONTACT_PATH = "/api/v1/contact/{id}"
ACCOUNT_INFO_PATH = "/api/v1/account/info"
GROUPS_PATH = "/api/v1/groups"
# The pull alternative to activity webhooks (eSputnik's webhooks support page); a v2 method.
ACTIVITY_PATH = "/api/v2/contacts/activity"

# eSputnik pages searches by at most 500 rows (startindex is 1-based).
MAX_ROWS = 500
# Public clients of the activity method report that more than 1000 rows or more than a day per
# request misbehave, and split a window that comes back full.
ACTIVITY_MAX_ROWS = 1000
ACTIVITY_MAX_WINDOW = timedelta(days=1)
ACTIVITY_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

# Answers that mean our request itself is wrong (method, content type) or that the base URL
# does not point at eSputnik: a person must look, retrying the same request cannot help.
_CONFIGURATION_STATUSES: dict[int, str] = {
    401: "eSputnik refused the API key (HTTP 401); check the key in the account settings",
    403: "eSputnik refused access (HTTP 403); the API key needs full API access",
    404: "eSputnik has no such endpoint (HTTP 404); check the account's API base URL",
    405: "eSputnik did not accept the HTTP method (HTTP 405); the API base URL is wrong or "
         "this is a bug in esp_forms",
    415: "eSputnik did not accept the content type (HTTP 415); this is a bug in esp_forms or a "
         "proxy rewrote the request",
}


class ESputnikProvider(BaseProvider):
    name: ClassVar[str] = "esputnik"
    verbose_name: ClassVar[str] = "eSputnik"
    default_base_url: ClassVar[str] = "https://esputnik.com"
    # Documented on Subscribe contact: HTTP 429 above 200 requests per second.
    default_rate_limit: ClassVar[tuple[int, float]] = (200, 1.0)

    # ---- requests ----------------------------------------------------------------------
    def api_request(self, method: str, path: str, *, json: Any = None,
                 params: dict[str, Any] | None = None,
                 ok_statuses: tuple[int, ...] = ()) -> ProviderRequest:
        headers = {"Accept": "application/json"}
        if json is not None:
            headers["Content-Type"] = "application/json; charset=UTF-8"
        return ProviderRequest(
            method=method, path=path, json=json, params=params, headers=headers,
            auth=(BASIC_AUTH_USER, self.account.api_key), ok_statuses=ok_statuses,
        )

    def contact_payload(self, submission: Submission) -> dict[str, Any]:
        """The ``contact`` object: channels, names and additional fields; blank keys left out."""
        from esp_forms.models import FieldKind

        channels = [{"type": "email", "value": submission.email}]
        if submission.phone:
            channels.append({"type": "sms", "value": submission.phone})
        contact: dict[str, Any] = {"channels": channels}
        for name in submitted_names(submission):
            key = "firstName" if name.kind == FieldKind.FIRST_NAME else "lastName"
            contact[key] = name.value
        fields = []
        for form_field, value in submitted_fields(submission):
            if not form_field.provider_field.strip():
                continue  # not mapped: kept in our database only
            fields.append({"id": self._field_id(form_field.provider_field),
                           "value": field_value(value)})
        if fields:
            contact["fields"] = fields
        return contact

    def _field_id(self, provider_field: str) -> int:
        # The seed shows string ids once, but the bulk example and clients use integers.
        try:
            return int(provider_field.strip())
        except ValueError:
            raise ProviderConfigurationError(
                f"eSputnik additional fields are addressed by their numeric id, not "
                f"{provider_field!r}; fix the form field's provider field",
                **self.error_context(None, None)) from None

    def build_subscribe_request(self, submission: Submission, *, confirmed: bool
                                ) -> ProviderRequest:
        from esp_forms.models import DoubleOptIn

        form = submission.form
        contact = self.contact_payload(submission)
        if confirmed or form.double_opt_in == DoubleOptIn.OFF:
            # Add/update contacts creates the contact confirmed: after this site's own
            # confirmation, and in "off" mode, where Subscribe contact would leave it
            # unconfirmed at eSputnik (no campaign reaches it) until a workflow confirms it.
            groups = list(form.list_values)
            if confirmed and form.confirmed_group and form.confirmed_group not in groups:
                groups.append(form.confirmed_group)
            body: dict[str, Any] = {"contacts": [contact], "dedupeOn": "email"}
            # Name exactly what is sent (contactFields / customFieldsIDs limit the update), so
            # the import updates our values and leaves the contact's other data alone.
            body["contactFields"] = ["email"] + [
                key for key in ("firstName", "lastName") if key in contact
            ] + (["sms"] if submission.phone else [])
            if contact.get("fields"):
                body["customFieldsIDs"] = [f["id"] for f in contact["fields"]]
            if groups:
                body["groupNames"] = groups
            # 409 (identical request within a minute) means the first one got through.
            return self.api_request("POST", CONTACTS_PATH, json=body, ok_statuses=(409,))
        body = {"contact": contact}
        if form.list_values:
            body["groups"] = form.list_values
        body["formType"] = form.effective_provider_form_type
        return self.api_request("POST", SUBSCRIBE_PATH, json=body, ok_statuses=(409,))

    # ---- answers -----------------------------------------------------------------------
    def parse_subscribe_response(self, submission: Submission, response: ProviderResponse,
                                 *, confirmed: bool) -> SubscribeResult:
        from esp_forms.models import DoubleOptIn, OptinStatus

        if confirmed:
            optin = OptinStatus.CONFIRMED
        elif submission.form.double_opt_in == DoubleOptIn.OFF:
            optin = OptinStatus.NOT_REQUIRED
        else:
            optin = OptinStatus.UNCONFIRMED
        data = response.data
        if response.status_code == 409:
            # eSputnik keeps no answer for the repeat; the contact exists, so read its id.
            return self._result_from_lookup(
                submission, str(optin),
                note="eSputnik answered 409 (the same request within a minute): already "
                     "accepted",
                missing="eSputnik found no contact with this email after the 409; its id is "
                        "read on the first status check")
        if confirmed or submission.form.double_opt_in == DoubleOptIn.OFF:
            if not isinstance(data, dict):
                raise PermanentProviderError(
                    "eSputnik answered Add/update contacts without a JSON object",
                    **self.error_context(response.status_code, self.redact(response)["body"]))
            failed = data.get("failedContacts")
            if failed:
                raise PermanentProviderError(
                    f"eSputnik refused the contact: {self.scrub_value(failed)}",
                    **self.error_context(response.status_code, self.redact(response)["body"]))
            # The import is asynchronous, so the contact may not be searchable yet; an empty
            # id is fine: status reads search by email when no id is stored.
            return self._result_from_lookup(
                submission, str(optin),
                missing="The contact is not searchable yet (eSputnik imports asynchronously); "
                        "its id is read on the first status check")
        contact_id = data.get("id") if isinstance(data, dict) else None
        if contact_id is None or isinstance(contact_id, bool) or str(contact_id).strip() == "":
            # A 200 without an id is not the documented answer (the JetFormBuilder add-on
            # treats it as a failure too). We cannot tell whether the contact was stored or
            # whether the double opt-in event fired, and retrying could fire it twice, so fail
            # loudly with the body for a person to judge and re-send from the admin.
            raise PermanentProviderError(
                "eSputnik answered 200 without a contact id",
                **self.error_context(response.status_code, self.redact(response)["body"]))
        return SubscribeResult(contact_id=str(contact_id), optin_status=str(optin))

    def _result_from_lookup(self, submission: Submission, optin: str, *, missing: str,
                            note: str | None = None) -> SubscribeResult:
        """Success whose answer carries no id: search the contact by email for it."""
        warnings = [note] if note else []
        raw: dict[str, Any] = {}
        try:
            contact, lookup_raw = self.find_contact(submission.email)
        except (TransientProviderError, PermanentProviderError) as err:
            # The write already succeeded; a failed lookup only costs us the id.
            warnings.append(f"Could not look the contact id up: {err}")
            return SubscribeResult(contact_id="", optin_status=optin, warnings=warnings)
        raw["lookup"] = lookup_raw
        contact_id = str(contact["id"]) if contact and contact.get("id") is not None else ""
        if not contact_id:
            warnings.append(missing)
        return SubscribeResult(contact_id=contact_id, optin_status=optin, warnings=warnings,
                               raw=raw)

    configuration_statuses = _CONFIGURATION_STATUSES

    def status_note(self, status: int) -> str:
        return " (more than 200 requests per second)" if status == 429 else ""

    def error_message(self, response: ProviderResponse) -> str:
        """eSputnik error bodies are not standardised: JSON ``message`` when there is one,
        else the status and raw text (as the official Shopify app does)."""
        data = response.data
        if isinstance(data, dict):
            for key in ("message", "error", "errorMessage"):
                if isinstance(data.get(key), str) and data[key].strip():
                    return self.scrub(data[key].strip())
        return super().error_message(response)

    # ---- contacts ----------------------------------------------------------------------
    def find_contact(self, email: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Search a contact by email. Returns (contact or None, redacted exchange)."""
        request = self.api_request("GET", CONTACTS_PATH, params={
            "email": email, "startindex": 1, "maxrows": MAX_ROWS})
        response = self.send(request)
        raw = {"request": self.redact_request(request), "response": self.redact(response)}
        contacts = response.data if isinstance(response.data, list) else []
        wanted = email.strip().lower()
        fallback = None
        for contact in contacts:
            if not isinstance(contact, dict) or contact.get("id") is None:
                continue
            emails = {str(ch.get("value", "")).strip().lower()
                      for ch in contact.get("channels") or []
                      if isinstance(ch, dict) and ch.get("type") == "email"}
            if contact.get("email"):
                emails.add(str(contact["email"]).strip().lower())
            if wanted in emails:
                return contact, raw
            if not emails and fallback is None:
                # No address to compare: trust the search. One with another address is a
                # looser match (another person), never taken.
                fallback = contact
        return fallback, raw

    def get_contact(self, contact_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Read one contact by id; (None, exchange) when eSputnik answers 404."""
        request = self.api_request("GET", CONTACT_PATH.format(id=quote(str(contact_id), safe="")),
                                ok_statuses=(404,))
        response = self.send(request)
        raw = {"request": self.redact_request(request), "response": self.redact(response)}
        if response.status_code == 404 or not isinstance(response.data, dict):
            return None, raw
        return response.data, raw

    def get_contact_status(self, submission: Submission) -> ContactStatus:
        from esp_forms.models import OptinStatus

        form = submission.form
        raw: dict[str, Any] = {}
        contact: dict[str, Any] | None = None
        if submission.provider_contact_id:
            contact, raw["get"] = self.get_contact(submission.provider_contact_id)
        if contact is None:
            # No id yet (async import, lost answer) or the id is gone: search by email.
            found, raw["search"] = self.find_contact(submission.email)
            if found is not None:
                if "groups" in found:
                    contact = found
                else:
                    contact, raw["get_found"] = self.get_contact(str(found["id"]))
        if contact is None:
            # A missing contact is not an error worth failing the poll over: it may still be
            # importing, or was deleted in eSputnik. It stays unconfirmed and expires later.
            raw["note"] = "eSputnik has no contact with this id or email"
            return ContactStatus(optin_status=str(OptinStatus.UNCONFIRMED), raw=raw)
        contact_id = str(contact.get("id")) if contact.get("id") is not None else None
        if not form.confirmed_group:
            # Refused by the form's validation and system check esp_forms.E010.
            raw["note"] = "The form has no confirmed segment, so no read can confirm a contact"
            return ContactStatus(optin_status=str(OptinStatus.UNCONFIRMED),
                                 contact_id=contact_id, raw=raw)
        confirmed = form.confirmed_group in group_names(contact.get("groups"))
        return ContactStatus(
            optin_status=str(OptinStatus.CONFIRMED if confirmed else OptinStatus.UNCONFIRMED),
            contact_id=contact_id, raw=raw)

    # ---- activity (unsubscribes lost in transit) -----------------------------------------
    def read_activity(self, date_from: datetime, date_to: datetime, *,
                      before_call: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        """Activity items (``email``, ``activityStatus``, ``activityDateTime``...) between two
        moments, read a day at most per request; a window that comes back full is split in
        two. ``before_call`` runs before each request (the reconciliation's rate limit).

        eSputnik documents no body for the method, so the answer is read defensively: items
        without ``email`` or ``activityStatus`` are skipped, anything but an array is empty.
        HTTP 403/404 mean the method is not enabled for the account:
        :class:`ProviderConfigurationError`."""
        items: dict[str, dict[str, Any]] = {}
        start = date_from
        while start < date_to:
            end = min(start + ACTIVITY_MAX_WINDOW, date_to)
            for item in self._activity_window(start, end, before_call):
                # Windows meet at a shared second: an item there comes back twice.
                items.setdefault(json.dumps(item, sort_keys=True, default=str), item)
            start = end
        return list(items.values())

    def _activity_window(self, start: datetime, end: datetime,
                         before_call: Callable[[], None] | None) -> list[dict[str, Any]]:
        page = self._activity_page(start, end, before_call)
        middle = (start + (end - start) / 2).replace(microsecond=0)  # the query has seconds
        if len(page) < ACTIVITY_MAX_ROWS or not start < middle < end:
            # Clients disagree on what ``offset`` is (a row number, an item's cursor), so a
            # full single second is kept as it is rather than paged on a guess.
            return page
        return (self._activity_window(start, middle, before_call)
                + self._activity_window(middle, end, before_call))

    def _activity_page(self, start: datetime, end: datetime,
                       before_call: Callable[[], None] | None) -> list[dict[str, Any]]:
        if before_call is not None:
            before_call()
        request = self.api_request("GET", ACTIVITY_PATH, params={
            "dateFrom": activity_time(start), "dateTo": activity_time(end),
            "maxrows": ACTIVITY_MAX_ROWS}, ok_statuses=(403, 404))
        response = self.send(request)
        if response.status_code in (403, 404):
            raise ProviderConfigurationError(
                f"eSputnik answered HTTP {response.status_code} to the activity method "
                f"(GET {ACTIVITY_PATH}): it is not enabled for this account. Ask eSputnik "
                f"support to enable it; until then an unsubscribe whose webhook was lost is "
                f"applied only when eSputnik sends the webhook again",
                **self.error_context(response.status_code, self.redact(response)["body"]))
        data = response.data if isinstance(response.data, list) else []
        return [item for item in data if isinstance(item, dict)
                and isinstance(item.get("email"), str) and item["email"].strip()
                and isinstance(item.get("activityStatus"), str) and item["activityStatus"].strip()]

    # ---- account check -----------------------------------------------------------------
    def check_account(self, forms: list[SignupForm]) -> AccountCheck:
        from esp_forms.models import DoubleOptIn

        check = AccountCheck(ok=True)
        try:
            info = self.send(self.api_request("GET", ACCOUNT_INFO_PATH)).data
        except ProviderConfigurationError as err:
            check.problems.append(
                "API key refused" if err.status_code == 401 else str(err.message))
            check.ok = False
            return check
        except ProviderError as err:
            check.problems.append(f"Could not read the account info: {err.message}")
            check.ok = False
            return check
        if isinstance(info, dict):
            check.info.update({k: info[k] for k in ("organisationName", "orgId", "userEmail")
                               if k in info})
        try:
            groups = self.list_groups()
        except (ProviderError, ProviderConfigurationError) as err:
            check.problems.append(f"Could not list the groups: {err.message}")
            check.ok = False
            return check
        check.info["groups"] = len(groups)
        for form in forms:
            for group in form.list_values:
                if group not in groups:
                    check.warnings.append(
                        f"Form '{form.form_type}': group '{group}' does not exist yet; "
                        f"eSputnik creates it on the first signup")
            if form.double_opt_in != DoubleOptIn.PROVIDER:
                continue
            if not form.confirmed_group:
                check.problems.append(
                    f"Form '{form.form_type}': no confirmed segment is set, so no contact can "
                    f"ever be confirmed (the workflow webhook only asks for a read, and the "
                    f"read needs the segment); set one and add an 'Add to segment' step to "
                    f"the Confirm-contact workflow")
            elif form.confirmed_group not in groups:
                check.problems.append(
                    f"Form '{form.form_type}': the confirmed segment '{form.confirmed_group}' "
                    f"does not exist, so polling can never confirm a contact; create it and "
                    f"add an 'Add to segment' step to the Confirm-contact workflow")
        check.ok = not check.problems
        return check

    def list_groups(self) -> set[str]:
        """Names of all groups (segments), page by page."""
        names: set[str] = set()
        start = 1
        while True:
            data = self.send(self.api_request("GET", GROUPS_PATH, params={
                "startindex": start, "maxrows": MAX_ROWS})).data
            page = data if isinstance(data, list) else []
            names |= group_names(page)
            if len(page) < MAX_ROWS:
                return names
            start += MAX_ROWS


def activity_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC, as the activity method's clients send it."""
    return moment.astimezone(UTC).strftime(ACTIVITY_TIME_FORMAT)


def field_value(value: Any) -> str:
    """An additional field's value as eSputnik's contactField schema wants it: a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def group_names(groups: Any) -> set[str]:
    """Names from a contact's or the account's ``groups``: ``[{id, name, type}]``, or plain
    strings if a variant sends those."""
    names: set[str] = set()
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, dict) and isinstance(group.get("name"), str):
            names.add(group["name"])
        elif isinstance(group, str):
            names.add(group)
    return names
