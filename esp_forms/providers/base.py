"""The shared provider base: one pooled ``requests.Session``, timeouts, error mapping, redaction.

A provider module subclasses :class:`BaseProvider`, sets ``name``, ``default_base_url`` and
``default_rate_limit``, and fills in the hooks: ``build_subscribe_request`` /
``parse_subscribe_response``, ``get_contact_status`` and ``check_account``. The base runs the
steps, so every provider times out, redacts and classifies errors the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import requests

from esp_forms import __version__, metrics
from esp_forms.conf import get_setting
from esp_forms.exceptions import (
    EspFormsError,
    PermanentProviderError,
    ProviderConfigurationError,
    TransientProviderError,
)

if TYPE_CHECKING:
    from esp_forms.models import FormField, ProviderAccount, SignupForm, Submission

logger = logging.getLogger("esp_forms.providers")

REDACTED = "[redacted]"


@dataclass
class ProviderRequest:
    """One HTTP call, before it is sent. ``path`` is appended to the account's base URL."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | list[tuple[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    # HTTP statuses the caller maps itself (e.g. eSputnik's 409 "duplicated request" on
    # subscribe, 404 when reading a contact): ``send`` returns them instead of raising.
    ok_statuses: tuple[int, ...] = ()


@dataclass
class ProviderResponse:
    status_code: int
    text: str
    headers: dict[str, str]
    data: Any = None  # parsed JSON, when the body was JSON


@dataclass
class SubscribeResult:
    """What the provider said about one accepted contact."""

    contact_id: str
    # True/False where the provider tells a new contact from an update; None when it does not.
    is_new: bool | None = None
    # The opt-in state the answer implies right away (an OptinStatus value), or None.
    optin_status: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Redacted request and response, for the event log.
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class ContactStatus:
    """A contact's double opt-in state as read from the provider."""

    optin_status: str  # OptinStatus: unconfirmed, confirmed or unsubscribed
    contact_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class AccountCheck:
    """Result of validating an account (key works, lists exist...)."""

    ok: bool
    # Each makes the check fail: one human-readable line per problem.
    problems: list[str] = field(default_factory=list)
    # Worth reading but not failing (e.g. an eSputnik group that subscribe will create).
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


_sessions = threading.local()


class BaseProvider:
    name: ClassVar[str] = ""
    verbose_name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    # (requests, window seconds) documented by the provider for the subscribe call.
    default_rate_limit: ClassVar[tuple[int, float]] = (60, 60.0)
    # HTTP statuses that mean the account or our setup is wrong, with the message to show.
    configuration_statuses: ClassVar[dict[int, str]] = {
        401: "The provider refused the API key (HTTP 401)",
        403: "The provider refused access (HTTP 403)",
    }

    def __init__(self, account: ProviderAccount) -> None:
        self.account = account

    # ---- public API --------------------------------------------------------------------
    def subscribe(self, submission: Submission, *, confirmed: bool = False) -> SubscribeResult:
        """Send one submission. ``confirmed``: the person already confirmed through this
        site's own link (local double opt-in), so the provider must not ask again."""
        request = self.build_subscribe_request(submission, confirmed=confirmed)
        response = self.send(request)
        result = self.parse_subscribe_response(submission, response, confirmed=confirmed)
        # Keep what the parser added (e.g. a follow-up lookup) beside the main exchange.
        result.raw = {"request": self.redact_request(request), "response": self.redact(response),
                      **result.raw}
        return result

    def get_contact_status(self, submission: Submission) -> ContactStatus:
        raise NotImplementedError

    def check_account(self, forms: list[SignupForm]) -> AccountCheck:
        raise NotImplementedError

    @property
    def rate_limit(self) -> tuple[int, float]:
        """(limit, window seconds) for this account: its override or the documented default."""
        if self.account.rate_limit_per_minute:
            return (self.account.rate_limit_per_minute, 60.0)
        return self.default_rate_limit

    # ---- hooks -------------------------------------------------------------------------
    def build_subscribe_request(self, submission: Submission, *, confirmed: bool
                                ) -> ProviderRequest:
        raise NotImplementedError

    def parse_subscribe_response(self, submission: Submission, response: ProviderResponse,
                                 *, confirmed: bool) -> SubscribeResult:
        raise NotImplementedError

    def raise_for_status(self, request: ProviderRequest, response: ProviderResponse) -> None:
        """HTTP error mapping: 429/5xx transient, ``configuration_statuses`` configuration, the
        rest refused. Providers with their own error scheme override it."""
        status = response.status_code
        if status < 400:
            return
        body = self.redact(response)["body"]
        if status == 429 or status >= 500:
            raise TransientProviderError(
                f"{self.verbose_name} answered HTTP {status}{self.status_note(status)}",
                **self.error_context(status, body), retry_after=retry_after_seconds(response),
            )
        if status in self.configuration_statuses:
            raise ProviderConfigurationError(
                self.configuration_statuses[status], **self.error_context(status, body))
        raise PermanentProviderError(
            f"{self.verbose_name} refused the request: {self.error_message(response)}",
            **self.error_context(status, body))

    def status_note(self, status: int) -> str:
        """Extra words for a transient status, e.g. which documented limit a 429 means."""
        return ""

    def error_message(self, response: ProviderResponse) -> str:
        """The human part of an error answer: the status and the (scrubbed) raw text."""
        text = self.scrub(response.text.strip())[:500]
        return f"HTTP {response.status_code}" + (f": {text}" if text else "")

    # ---- plumbing ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return (self.account.api_base_url or self.default_base_url).rstrip("/")

    def session(self) -> requests.Session:
        """One pooled session per thread and provider: keep-alive across calls."""
        key = self.name
        sessions = getattr(_sessions, "by_provider", None)
        if sessions is None:
            sessions = _sessions.by_provider = {}
        if key not in sessions:
            s = requests.Session()
            s.headers["User-Agent"] = f"esp_forms/{__version__}-{self.name}"
            sessions[key] = s
        return sessions[key]

    def error_context(self, status: int | None, body: Any, code: str | None = None
                      ) -> dict[str, Any]:
        return {"provider": self.name, "account_id": self.account.pk, "status_code": status,
                "response": body, "code": code}

    def send(self, request: ProviderRequest) -> ProviderResponse:
        """Send over HTTP; network trouble becomes TransientProviderError, HTTP errors are mapped
        by ``raise_for_status``."""
        url = self.base_url + request.path
        timeout = (float(get_setting("CONNECT_TIMEOUT")), float(get_setting("READ_TIMEOUT")))
        headers = dict(request.headers)
        data: Any = request.data
        if request.json is not None:
            # Serialise ourselves: requests would \u-escape every non-ASCII character, while
            # the providers document plain UTF-8 JSON (Cyrillic names are common).
            data = json.dumps(request.json, ensure_ascii=False).encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json; charset=UTF-8"
        started = time.perf_counter()
        try:
            raw = self.session().request(
                request.method, url, params=request.params, data=data, headers=headers,
                auth=request.auth, timeout=timeout,
            )
        except requests.Timeout as err:
            error = TransientProviderError(
                f"{self.verbose_name} did not answer in time ({type(err).__name__})",
                **self.error_context(None, None))
            self.record_call("timeout", started, error)
            raise error from err
        except requests.RequestException as err:
            # str(err) of a connection error may carry the URL; our URLs never hold a key.
            error = TransientProviderError(
                f"Could not reach {self.verbose_name}: {type(err).__name__}",
                **self.error_context(None, self.scrub(str(err))))
            self.record_call("network", started, error)
            raise error from err
        self.record_call(str(raw.status_code), started)
        response = ProviderResponse(
            status_code=raw.status_code, text=raw.text, headers=dict(raw.headers))
        try:
            response.data = raw.json() if raw.content else None
        except ValueError:
            response.data = None
        logger.debug("%s %s %s -> %s", self.name, request.method, request.path,
                     response.status_code)
        if response.status_code not in request.ok_statuses:
            try:
                self.raise_for_status(request, response)
            except EspFormsError as error:
                metrics.count_provider_error(self.name, error)
                raise
        return response

    def record_call(self, status: str, started: float, error: EspFormsError | None = None
                    ) -> None:
        """Metrics of one HTTP call: its latency by status, and the error it became."""
        metrics.observe_provider_call(self.name, status, time.perf_counter() - started)
        if error is not None:
            metrics.count_provider_error(self.name, error, default_code=status)

    def scrub(self, text: str) -> str:
        key = self.account.api_key
        if not key:
            return text
        return scrub_encoded_secret(text.replace(key, REDACTED), key)

    def scrub_value(self, value: Any) -> Any:
        """``value`` with the API key removed from every string in it, at any depth.

        Walks the structure instead of scrubbing its JSON text, so a key containing characters
        that JSON escapes is still found and the result is always valid data.
        """
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub_value(v) for v in value]
        return value

    def redact(self, response: ProviderResponse) -> dict[str, Any]:
        body: Any = response.data if response.data is not None else response.text[:2000]
        return {"status": response.status_code, "body": self.scrub_value(body)}

    def redact_request(self, request: ProviderRequest) -> dict[str, Any]:
        """The request as the event log keeps it: no auth, no api_key."""
        def clean(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, list):
                value = dict(value) if all(isinstance(v, tuple) for v in value) else value
            if isinstance(value, dict):
                return {k: (REDACTED if k in ("api_key", "password", "secret") else v)
                        for k, v in value.items()}
            return value

        out: dict[str, Any] = {"method": request.method, "path": request.path}
        for name in ("params", "json", "data"):
            value = getattr(request, name)
            if value is not None:
                out[name] = clean(value)
        # Round trip through JSON so dates and the like become strings the event log can store.
        return self.scrub_value(json.loads(json.dumps(out, ensure_ascii=False, default=str)))


# Base64 (standard or URL-safe, padding possibly percent-encoded) long enough to hold a
# credential: an echoed "Authorization: Basic <user:key in base64>" header, say.
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}(?:=|%3[Dd]){0,2}")


def scrub_encoded_secret(text: str, secret: str) -> str:
    """``text`` with every base64 token that decodes to something containing ``secret``
    replaced: providers that echo the request's headers quote the Basic-auth credential."""
    if len(text) < 16:
        return text
    needle = secret.encode()

    def replace(match: re.Match[str]) -> str:
        token = match.group(0).replace("%3D", "").replace("%3d", "").rstrip("=")
        # The token may start mid-word ("%20" before it leaves "20"): try each alignment.
        for start in range(4):
            part = token[start:]
            padded = part + "=" * (-len(part) % 4)
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    if needle in decode(padded):
                        return REDACTED
                except (ValueError, binascii.Error):
                    continue
        return match.group(0)

    return _BASE64_TOKEN.sub(replace, text)


def retry_after_seconds(response: ProviderResponse) -> float | None:
    """The ``Retry-After`` header in seconds, when the provider sent a number."""
    value = response.headers.get("Retry-After") or response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def is_blank(value: Any) -> bool:
    """True for values a provider should not receive: None, "", whitespace, empty containers.

    ``False`` and ``0`` are real answers (an unticked checkbox), so they are kept.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set)):
        return not value
    return False


def submitted_fields(submission: Submission) -> list[tuple[FormField, Any]]:
    """The form's custom fields (not email, phone or names), each with its submitted value.

    In form order; blank values are left out, so providers never overwrite stored data with
    emptiness. Email and phone are read from the submission itself, names through
    :func:`submitted_names`.
    """
    from esp_forms.models import STANDARD_KINDS

    out: list[tuple[FormField, Any]] = []
    for form_field in submission.form.fields.all():
        if form_field.kind in STANDARD_KINDS:
            continue
        value = submission.data.get(form_field.name)
        if not is_blank(value):
            out.append((form_field, value.strip() if isinstance(value, str) else value))
    return out


@dataclass
class SubmittedName:
    kind: str  # FieldKind.FIRST_NAME or FieldKind.LAST_NAME
    value: str
    provider_field: str = ""  # the form field's provider_field, "" when unmapped


def submitted_names(submission: Submission) -> list[SubmittedName]:
    """First name, then last name, when given.

    The value is read under the form field's own name, falling back to the ``first_name`` /
    ``last_name`` keys (the JSON API's top-level keys, stored there even when the form field
    has another name).
    """
    from esp_forms.models import FieldKind

    by_kind = {f.kind: f for f in submission.form.fields.all()
               if f.kind in (FieldKind.FIRST_NAME, FieldKind.LAST_NAME)}
    out: list[SubmittedName] = []
    for kind in (FieldKind.FIRST_NAME, FieldKind.LAST_NAME):
        form_field = by_kind.get(kind)
        value: Any = submission.data.get(form_field.name) if form_field else None
        if is_blank(value):
            value = submission.data.get(str(kind))
        if not is_blank(value):
            out.append(SubmittedName(kind=str(kind), value=str(value).strip(),
                                     provider_field=form_field.provider_field.strip()
                                     if form_field else ""))
    return out
