"""UniSender (classic API at api.unisender.com): one form-encoded POST per method.

Wire facts (see ``docs/providers/unisender.md`` and the developer note ``providers/UNISENDER.md``):

- ``POST <base>/<lang>/api/<method>?format=json``; every other parameter, ``api_key`` included,
  travels in the ``application/x-www-form-urlencoded`` body, never in the URL (proxy logs), and
  mixing GET and POST parameters gives a cryptic error.
- Errors come back as HTTP 200 with ``{"error": <HTML-encoded message>, "code": <code>}``: we
  branch on ``code``. HTTP 4xx/5xx or a body that is not JSON is transport trouble.
- ``person_id`` is a 64-bit integer: kept as a string.
"""

from __future__ import annotations

import html
import ipaddress
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.utils import timezone

from esp_forms import __version__, metrics
from esp_forms.exceptions import (
    EspFormsError,
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
    retry_after_seconds,
    submitted_fields,
    submitted_names,
)

if TYPE_CHECKING:
    from esp_forms.models import SignupForm, Submission

PLATFORM = f"esp_forms {__version__}"
# The <lang> path segments the official PHP wrapper allows ("uk" is not one of them).
LANGUAGES = ("en", "ru", "ua")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_TAGS = 10
# UniSender answers rate-limit errors without saying for how long; its window is 60 s.
RATE_LIMIT_BACKOFF = 60.0

# double_optin values (subscribe): 3 = consent already given, add as "new" without a letter;
# 4 = send the list's invitation letter unless the contact is already new/active there.
OPTIN_NO_LETTER = 3
OPTIN_INVITE = 4

TRANSIENT_CODES = {"retry_later"}
RATE_LIMIT_CODES = {"api_call_limit_exceeded_for_api_key", "api_call_limit_exceeded_for_ip"}
CONFIGURATION_CODES: dict[str, str] = {
    "invalid_api_key": "UniSender refused the API key",
    "access_denied": "UniSender denied access: API access is off or the key may not call "
                     "this method",
    "not_enough_money": "The UniSender account has not enough money",
    "unknown_method": "UniSender does not know the method (a bug in esp_forms, or the API "
                      "base URL points elsewhere)",
}
PERMANENT_CODES: dict[str, str] = {
    "invalid_arg": "UniSender refused an argument",
    "unspecified": "UniSender refused the request",
}
# Codes whose message is the only clue; the note lists these frequent messages.
UNSPECIFIED_CODES = {"", "unspecified"}
_NO_LETTER = re.compile(r"has no confirmation letters?", re.IGNORECASE)
_MIXED_METHODS = re.compile(r"Call to a member function getMessage\(\) on boolean",
                            re.IGNORECASE)
_OWNED_BY_OTHERS = re.compile(r"already exist but owned by different subscribers",
                              re.IGNORECASE)

# Email statuses from getContact. "active", or "new" (a contact double_optin=4 or 3 added to
# the list without a letter: it receives mail), with the form's list present is subscribed;
# "invited" (and inactive, activation_requested...) is still waiting.
SUBSCRIBED_STATUSES = {"active", "new"}
UNSUBSCRIBED_STATUSES = {"unsubscribed", "blocked"}
# No source shows a per-list status; if one is present, these mean "not (yet) in the list".
NOT_IN_LIST_STATUSES = UNSUBSCRIBED_STATUSES | {"invited", "excluded", "deleted"}
# HTTP statuses that are an outage, not our configuration: retried like network trouble.
TRANSIENT_HTTP = {408, 429}


def format_time(value: datetime | None) -> str:
    """UniSender's ``YYYY-MM-DD hh:mm:ss`` in UTC."""
    value = value or timezone.now()
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value.astimezone(UTC).strftime(TIME_FORMAT)


def public_ipv4(value: str | None) -> str | None:
    """The address when it is a public IPv4 one (UniSender's documented format; private
    addresses are ignored there anyway), else None."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address
    if isinstance(address, ipaddress.IPv4Address) and address.is_global:
        return str(address)
    return None


def field_value(value: Any) -> str:
    """A form value as UniSender expects it in ``fields[...]``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


class UniSenderProvider(BaseProvider):
    name: ClassVar[str] = "unisender"
    verbose_name: ClassVar[str] = "UniSender"
    default_base_url: ClassVar[str] = "https://api.unisender.com"
    # subscribe: 300 requests per 60 s per key or IP.
    default_rate_limit: ClassVar[tuple[int, float]] = (300, 60.0)

    # ---- requests ----------------------------------------------------------------------
    @property
    def language(self) -> str:
        lang = (self.account.api_language or "").strip().lower()
        # The language is a path segment; the official wrapper allows en, ru and ua only.
        return lang if lang in LANGUAGES else "en"

    def api_request(self, method: str, params: list[tuple[str, str]]) -> ProviderRequest:
        """One API call: ``format=json`` in the URL, everything else in the form body."""
        body = [("api_key", self.account.api_key), *params, ("platform", PLATFORM)]
        return ProviderRequest(
            method="POST", path=f"/{self.language}/api/{method}", params={"format": "json"},
            data=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                "Accept": "application/json"},
        )

    def call(self, method: str, params: list[tuple[str, str]]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send, map errors, return (the JSON answer, the redacted exchange)."""
        request = self.api_request(method, params)
        response = self.send(request)
        self.raise_for_api_error(response)
        return response.data, {"request": self.redact_request(request),
                               "response": self.redact(response)}

    def build_subscribe_request(self, submission: Submission, *, confirmed: bool
                                ) -> ProviderRequest:
        from esp_forms.models import DoubleOptIn

        form = submission.form
        params: list[tuple[str, str]] = [("list_ids", ",".join(form.list_values)),
                                         ("fields[email]", submission.email)]
        if submission.phone:
            phone = submission.phone if submission.phone.startswith("+") else (
                "+" + submission.phone)
            params.append(("fields[phone]", phone))
        params.extend(self._name_fields(submission))
        for form_field, value in submitted_fields(submission):
            if form_field.provider_field.strip():
                params.append((f"fields[{form_field.provider_field.strip()}]",
                               field_value(value)))
        if form.tag_values:
            params.append(("tags", ",".join(form.tag_values[:MAX_TAGS])))
        if confirmed or form.double_opt_in == DoubleOptIn.OFF:
            params.append(("double_optin", str(OPTIN_NO_LETTER)))
        else:
            # Provider mode, and (defensively) a local-mode submission that was not confirmed
            # yet: never add an unconfirmed address without the provider's invitation.
            params.append(("double_optin", str(OPTIN_INVITE)))
        params.append(("overwrite", str(form.overwrite)))
        request_ip = public_ipv4(submission.ip)
        if request_ip:
            params.append(("request_ip", request_ip))
        params.append(("request_time", format_time(submission.created_at)))
        if confirmed:
            confirm_ip = public_ipv4(submission.confirm_ip)
            if confirm_ip:
                params.append(("confirm_ip", confirm_ip))
            params.append(("confirm_time", format_time(submission.confirmed_at)))
        return self.api_request("subscribe", params)

    def _name_fields(self, submission: Submission) -> list[tuple[str, str]]:
        """Unmapped first/last names go together into UniSender's standard ``Name`` field;
        names whose form field has a provider field go to that field."""
        joined: list[str] = []
        out: list[tuple[str, str]] = []
        for name in submitted_names(submission):
            if name.provider_field:
                out.append((f"fields[{name.provider_field}]", name.value))
            else:
                joined.append(name.value)
        if joined:
            out.insert(0, ("fields[Name]", " ".join(joined)))
        return out

    # ---- answers -----------------------------------------------------------------------
    def raise_for_status(self, request: ProviderRequest, response: ProviderResponse) -> None:
        # UniSender reports every API error in an HTTP 200 answer. Another status from the API
        # host means the request went to the wrong place (a wrong base URL or language gives
        # 404): a configuration error, reported at once instead of retried for a day. Only
        # server errors and explicit "too many requests"/timeouts are an outage worth retrying.
        status = response.status_code
        body = self.redact(response)["body"]
        if status >= 500 or status in TRANSIENT_HTTP:
            raise TransientProviderError(
                f"UniSender answered HTTP {status}", **self.error_context(status, body),
                retry_after=retry_after_seconds(response))
        if status != 200:
            raise ProviderConfigurationError(
                f"UniSender answered HTTP {status} instead of 200 (its API answers every call "
                f"with 200); check the account's API base URL and language (en, ru or ua)",
                **self.error_context(status, body))
        if not isinstance(response.data, dict):
            raise ProviderConfigurationError(
                "UniSender answered with something that is not a JSON object; check the "
                "account's API base URL", **self.error_context(status, body))

    def api_error(self, response: ProviderResponse) -> EspFormsError | None:
        """The exception for an ``{"error", "code"}`` answer, or None on success."""
        data = response.data
        if "error" not in data:
            return None
        code = str(data.get("code") or "").strip()
        message = self.scrub(html.unescape(str(data.get("error") or ""))).strip()
        context = self.error_context(response.status_code, self.redact(response)["body"],
                                     code or None)
        if code in TRANSIENT_CODES:
            return TransientProviderError(f"UniSender asks to retry later: {message}",
                                          **context)
        if code in RATE_LIMIT_CODES:
            return TransientProviderError(
                f"UniSender rate limit reached: {message}", **context,
                retry_after=max(RATE_LIMIT_BACKOFF, retry_after_seconds(response) or 0.0))
        if code in CONFIGURATION_CODES:
            return ProviderConfigurationError(f"{CONFIGURATION_CODES[code]}: {message}",
                                              **context)
        if code in UNSPECIFIED_CODES:
            if _NO_LETTER.search(message):
                return ProviderConfigurationError(
                    f"A UniSender list has no invitation letter, so double opt-in cannot "
                    f"work; add one to the list (or use the first list that has one): "
                    f"{message}", **context)
            if _MIXED_METHODS.search(message):
                return ProviderConfigurationError(
                    f"UniSender could not read the request (GET and POST parameters mixed; "
                    f"a bug in esp_forms or a proxy rewrote the request): {message}",
                    **context)
            if _OWNED_BY_OTHERS.search(message):
                return PermanentProviderError(
                    f"This email and phone already belong to two different UniSender "
                    f"contacts; subscribe with the email only or fix the contacts in "
                    f"UniSender ({message})", **context)
        prefix = PERMANENT_CODES.get(code, "UniSender refused the request")
        return PermanentProviderError(f"{prefix}: {message}", **context)

    def raise_for_api_error(self, response: ProviderResponse) -> None:
        error = self.api_error(response)
        if error is not None:
            metrics.count_provider_error(self.name, error)
            raise error

    def parse_subscribe_response(self, submission: Submission, response: ProviderResponse,
                                 *, confirmed: bool) -> SubscribeResult:
        from esp_forms.models import DoubleOptIn, OptinStatus

        self.raise_for_api_error(response)
        data = response.data
        result = data.get("result")
        person_id = result.get("person_id") if isinstance(result, dict) else None
        if person_id is None or isinstance(person_id, bool) or str(person_id).strip() == "":
            raise PermanentProviderError(
                "UniSender answered without a person_id",
                **self.error_context(response.status_code, self.redact(response)["body"]))
        if confirmed:
            optin = OptinStatus.CONFIRMED
        elif submission.form.double_opt_in == DoubleOptIn.OFF:
            optin = OptinStatus.NOT_REQUIRED
        else:
            optin = OptinStatus.UNCONFIRMED
        return SubscribeResult(contact_id=str(person_id), optin_status=str(optin),
                               warnings=collect_warnings(data))

    # ---- contacts ----------------------------------------------------------------------
    def get_contact_status(self, submission: Submission) -> ContactStatus:
        from esp_forms.models import OptinStatus

        request = self.api_request("getContact", [("email", submission.email),
                                                  ("include_lists", "1")])
        response = self.send(request)
        raw = {"request": self.redact_request(request), "response": self.redact(response)}
        data = response.data
        code = str(data.get("code") or "").strip()
        if "error" in data and code in (UNSPECIFIED_CODES | {"invalid_arg"}):
            # No documented text for an unknown email; like production clients, any such error
            # from getContact means "no such contact" (not yet, or deleted in UniSender):
            # waiting, and expiry settles it. Key and access errors still raise below.
            raw["note"] = "UniSender has no contact with this email"
            return ContactStatus(optin_status=str(OptinStatus.UNCONFIRMED), raw=raw)
        self.raise_for_api_error(response)
        status, list_states = contact_state(data.get("result"))
        optin = optin_from_contact(status, list_states, submission.form.list_values,
                                   was_confirmed=submission.optin_status == OptinStatus.CONFIRMED)
        return ContactStatus(optin_status=str(optin), contact_id=None, raw=raw)

    # ---- account check -----------------------------------------------------------------
    def check_account(self, forms: list[SignupForm]) -> AccountCheck:
        from esp_forms.models import DoubleOptIn

        check = AccountCheck(ok=True)
        try:
            data, _raw = self.call("getLists", [])
        except ProviderConfigurationError as err:
            label = "API key refused" if err.code == "invalid_api_key" else "Access refused"
            check.problems.append(f"{label}: {err.message}")
            check.ok = False
            return check
        except ProviderError as err:
            check.problems.append(f"Could not list the lists: {err.message}")
            check.ok = False
            return check
        lists: dict[str, str] = {}
        for item in data.get("result") or []:
            if isinstance(item, dict) and item.get("id") is not None:
                lists[str(item["id"])] = str(item.get("title", ""))
        check.info["lists"] = lists
        notes: list[str] = []
        for form in forms:
            if not form.list_values:
                check.problems.append(f"Form '{form.form_type}': no list ids are set")
            for list_id in form.list_values:
                if list_id not in lists:
                    check.problems.append(
                        f"Form '{form.form_type}': list {list_id} does not exist in this "
                        f"account")
            if form.double_opt_in == DoubleOptIn.PROVIDER and form.list_values:
                first = form.list_values[0]
                notes.append(
                    f"Form '{form.form_type}': UniSender sends the invitation letter of list "
                    f"{first}; the API cannot show whether that list has one, so check it in "
                    f"UniSender (the list's subscribe tools) or subscribe a test address")
        if notes:
            check.info["invitation_letters"] = notes
            check.warnings.extend(notes)
        check.ok = not check.problems
        return check


def collect_warnings(data: dict[str, Any]) -> list[str]:
    """``warnings`` may sit at the top level or inside ``result``: ``[{"warning": text}]``."""
    found: list[str] = []
    result = data.get("result")
    sources = [data.get("warnings"), result.get("warnings") if isinstance(result, dict) else None]
    for warnings in sources:
        for item in warnings if isinstance(warnings, list) else []:
            text = item.get("warning") if isinstance(item, dict) else item
            if text:
                found.append(html.unescape(str(text)))
    return found


def optin_from_contact(status: str, list_states: dict[str, str], wanted: list[str], *,
                       was_confirmed: bool) -> str:
    """The opt-in status a getContact answer means for a form with the lists ``wanted``."""
    from esp_forms.models import OptinStatus

    in_list = any(list_id in list_states and list_states[list_id] not in NOT_IN_LIST_STATUSES
                  for list_id in wanted)
    if status in UNSUBSCRIBED_STATUSES or any(
            list_states.get(list_id) in UNSUBSCRIBED_STATUSES for list_id in wanted):
        return str(OptinStatus.UNSUBSCRIBED)
    if status in SUBSCRIBED_STATUSES and in_list:
        return str(OptinStatus.CONFIRMED)
    if was_confirmed and status and status != "invited" and not in_list:
        # Confirmed before and the form's lists are gone now: removed from (or unsubscribed
        # from) the list, while the address stays subscribed to others.
        return str(OptinStatus.UNSUBSCRIBED)
    return str(OptinStatus.UNCONFIRMED)


def contact_state(result: Any) -> tuple[str, dict[str, str]]:
    """(email status, {list id: per-list status or ""}) from a getContact ``result``.

    The list memberships are documented inside the ``email`` object by one client and at the
    top of ``result`` by others, so both places are read; list items may be objects with
    ``id`` (or ``list_id``) or bare ids.
    """
    if not isinstance(result, dict):
        return "", {}
    email = result.get("email")
    status = ""
    if isinstance(email, dict):
        status = str(email.get("status") or "").strip().lower()
    elif isinstance(result.get("status"), str):
        status = result["status"].strip().lower()
    lists: dict[str, str] = {}
    for source in (email.get("lists") if isinstance(email, dict) else None, result.get("lists")):
        items: list[Any]
        if isinstance(source, dict):
            # {"<id>": {...}} keyed by list id.
            items = [dict(v, id=k) if isinstance(v, dict) else k for k, v in source.items()]
        elif isinstance(source, list):
            items = source
        else:
            continue
        for item in items:
            if isinstance(item, dict):
                list_id = item.get("id", item.get("list_id"))
                state = str(item.get("status") or "").strip().lower()
            else:
                list_id, state = item, ""
            if list_id is not None and str(list_id).strip():
                lists.setdefault(str(list_id).strip(), state)
    return status, lists
