"""Provider callbacks at ``/webhooks/<provider>/<account_id>/``.

One base view, one small class per provider: authenticate, parse the provider's documented body
into :class:`WebhookEvent` items, apply them in the order of their own timestamps.

- UniSender (``setHook``, ``event_format=json_post``): the ``events_by_user`` envelope, or one
  flat event with ``single_event=1``; signed with ``auth`` = MD5 of the raw body with the API key
  in place of ``auth``. Every event is a *hint*: it queues a ``getContact`` read
  (``optin.request_refresh``), so a forged, replayed or stale callback changes nothing by itself.
- eSputnik, two sources on one URL: the account's activity webhook (a JSON array of items with
  ``activityStatus``, optionally sent with HTTP Basic auth) and the confirmation workflow's
  Webhook block (``{"email", "contactId", "secret"}``: a hint, verified through the confirmed
  segment). eSputnik's contact shows no unsubscribe (only the activity method, if enabled for
  the account, can be asked later), so an ``UNSUBSCRIBED``/``SPAM`` item is applied directly
  (``apply_unsubscribe``, shared with reconciliation's activity read), but only to submissions
  made before it happened (``activityDateTime``), and it waits for a locked row (or answers 503
  so eSputnik retries) instead of being dropped.
  Delivery receipts (``DELIVERED``, ``READ``...) confirm nobody and trigger no read.

The ``?secret=`` query string of older setups is still accepted, but no longer shown: it ends up
in access logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db import OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from esp_forms import optin, request_body
from esp_forms.conf import get_setting
from esp_forms.models import DeliveryStatus, OptinStatus, ProviderAccount, Submission

logger = logging.getLogger("esp_forms.webhooks")

# The user name shown for eSputnik's Basic auth; only the password (the secret) is checked.
BASIC_AUTH_USER = "esp_forms"
SECRET_HEADER = "X-Esp-Forms-Secret"

# eSputnik activityStatus values (upper case on the wire).
ESPUTNIK_UNSUBSCRIBE = {"UNSUBSCRIBED", "SPAM"}
ESPUTNIK_RECEIPTS = {"DELIVERED", "UNDELIVERED", "READ", "CLICKED"}
# UniSender events that may mean a list membership changed: each is checked with getContact.
UNISENDER_HINTS = {"subscribe", "unsubscribe"}


@dataclass
class WebhookEvent:
    email: str
    # "unsubscribe" (applied), "hint" (a status read is queued) or "receipt" (nothing to do).
    kind: str
    name: str  # the provider's own name for it, for the event log
    at: datetime | None  # when it happened, from the provider's timestamp
    data: dict[str, Any]


class WebhookError(Exception):
    status = 400


def provider_time(value: Any) -> datetime | None:
    """A provider's timestamp as an aware datetime (naive ones in the site's time zone), or
    None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        return None
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def latest_moment(value: Any) -> datetime | None:
    """When an item happened at the latest: its timestamp plus what its precision hides
    (eSputnik's dates may stop at seconds or minutes), so an unsubscribe in the same second as
    a signup is never mistaken for an older one."""
    parsed = provider_time(value)
    if parsed is None:
        return None
    text = str(value)
    if re.search(r"\d:\d\d:\d\d[.,]\d", text):
        return parsed  # fractional seconds: exact enough
    if re.search(r"\d:\d\d:\d\d", text):
        return parsed + timedelta(seconds=1) - timedelta(microseconds=1)
    return parsed + timedelta(minutes=1) - timedelta(microseconds=1)


def _by_time(events: list[WebhookEvent]) -> list[WebhookEvent]:
    """Oldest first; items without a timestamp keep their place after the dated ones."""
    dated = sorted((e for e in events if e.at is not None), key=lambda e: e.at)
    return dated + [e for e in events if e.at is None]


class BaseWebhook:
    provider: ClassVar[str] = ""

    def __init__(self, account: ProviderAccount, request: HttpRequest) -> None:
        self.account = account
        self.request = request
        self.hinted: set[str] = set()  # one status read per person and callback is enough

    def body_json(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            # Some providers post form-encoded payloads; fall back to the POST dict.
            return {k: v for k, v in self.request.POST.items()} or None

    def secret_matches(self, candidate: Any) -> bool:
        secret = self.account.webhook_secret
        return bool(secret and isinstance(candidate, str) and candidate) and \
            constant_time_compare(candidate, secret)

    def legacy_query_secret(self) -> bool:
        """``?secret=`` in the URL: what older setups were told to paste."""
        return self.secret_matches(self.request.GET.get("secret"))

    def authenticate(self, payload: Any) -> None:
        raise NotImplementedError

    def parse_events(self, payload: Any) -> list[WebhookEvent]:
        raise NotImplementedError

    def handle(self, event: WebhookEvent) -> str:
        if event.kind != "hint":
            return f"ignored:{event.name or '?'}"
        if event.email.lower() in self.hinted:
            return "refresh:already-queued"
        self.hinted.add(event.email.lower())
        count = optin.request_refresh(self.account, event.email,
                                      reason=f"{self.provider} webhook ({event.name or '?'})",
                                      data=event.data)
        return f"refresh:{count}"


def basic_auth_password(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


class ESputnikWebhook(BaseWebhook):
    provider = "esputnik"

    def authenticate(self, payload: Any) -> None:
        candidates = [basic_auth_password(self.request), self.request.headers.get(SECRET_HEADER)]
        if isinstance(payload, dict):
            candidates.append(payload.get("secret"))
        if any(self.secret_matches(c) for c in candidates) or self.legacy_query_secret():
            return
        raise WebhookError("Webhook authentication failed.")

    def parse_events(self, payload: Any) -> list[WebhookEvent]:
        # The activity webhook posts an array; the workflow Webhook block posts one object.
        return esputnik_events(payload if isinstance(payload, list) else [payload])

    def handle(self, event: WebhookEvent) -> str:
        if event.kind == "unsubscribe":
            return self.unsubscribe(event)
        return super().handle(event)

    def unsubscribe(self, event: WebhookEvent) -> str:
        changed, stale = apply_unsubscribe(self.account, event, source="webhook")
        return f"unsubscribed:{len(changed)}" + (f",newer-signup:{stale}" if stale else "")


def esputnik_events(items: list[Any]) -> list[WebhookEvent]:
    """eSputnik activity items (the webhook's array, the activity method's answer) and the
    workflow block's object as events, oldest first."""
    events: list[WebhookEvent] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        email = item.get("email") or item.get("EmailAddress")
        if not isinstance(email, str) or not email.strip():
            continue
        data = {k: v for k, v in item.items() if k != "secret"}
        status = item.get("activityStatus")
        if status is None:
            # The workflow block after "Confirm contact": a hint, verified by a read.
            events.append(WebhookEvent(email.strip(), "hint", "workflow", None, data))
            continue
        status = str(status).strip().upper()
        kind = ("unsubscribe" if status in ESPUTNIK_UNSUBSCRIBE
                else "receipt" if status in ESPUTNIK_RECEIPTS else "unknown")
        events.append(WebhookEvent(email.strip(), kind, status,
                                   latest_moment(item.get("activityDateTime")), data))
    return _by_time(events)


def apply_unsubscribe(account: ProviderAccount, event: WebhookEvent, *, source: str,
                      dry_run: bool = False) -> tuple[list[tuple[Submission, str]], int]:
    """Apply an eSputnik unsubscribe to every submission of this person made before it
    happened; a later signup is a newer wish and stays as it is. Idempotent. Returns the
    submissions changed (with their status before) and how many newer signups were left.
    Call inside a transaction: a locked row is waited for (``lock_waiting``)."""
    happened = event.at or timezone.now()
    rows = list(Submission.objects.filter(
        form__account=account, email__iexact=event.email,
        delivery_status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.PENDING],
    ).exclude(optin_status=OptinStatus.UNSUBSCRIBED).values_list("pk", "created_at"))
    changed: list[tuple[Submission, str]] = []
    stale = 0
    for pk, created_at in rows:
        if created_at >= happened:
            stale += 1
            continue
        if dry_run:
            submission = Submission.objects.select_related("form").filter(pk=pk).first()
            if submission is not None:
                changed.append((submission, submission.optin_status))
            continue
        submission = lock_waiting(pk)
        if submission is None:
            continue
        before = submission.optin_status
        if optin.apply_status(submission, OptinStatus.UNSUBSCRIBED, source=source,
                              data=event.data):
            changed.append((submission, before))
    return changed, stale


def lock_waiting(pk: Any) -> Submission | None:
    """Lock one submission, waiting for a worker that holds it (at most
    ``WEBHOOK_LOCK_TIMEOUT`` seconds). A timeout raises ``OperationalError``, which the view
    answers with 503 so the provider sends the item again: it is never skipped."""
    if connection.vendor == "postgresql":
        timeout_ms = int(float(get_setting("WEBHOOK_LOCK_TIMEOUT")) * 1000)
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{timeout_ms}ms"])
    # SQLite serialises writers itself; select_for_update is a no-op there.
    return Submission.objects.select_for_update().filter(pk=pk).first()


class UniSenderWebhook(BaseWebhook):
    """``setHook`` with ``event_format=json_post``."""

    provider = "unisender"

    def authenticate(self, payload: Any) -> None:
        received = payload.get("auth") if isinstance(payload, dict) else None
        key = self.account.api_key
        if isinstance(received, str) and received and key:
            # Hash the bytes exactly as received: re-serialising would change escapes such as
            # "\/" and break the signature.
            raw = self.request.body.replace(received.encode(), key.encode(), 1)
            if constant_time_compare(hashlib.md5(raw).hexdigest(), received):
                return
        if self.legacy_query_secret():
            return
        raise WebhookError("Webhook authentication failed.")

    def parse_events(self, payload: Any) -> list[WebhookEvent]:
        if not isinstance(payload, dict):
            return []
        flat: list[dict[str, Any]] = []
        if "events_by_user" in payload:
            users = payload.get("events_by_user")
            for user in users if isinstance(users, list) else []:
                events = user.get("events") if isinstance(user, dict) else None
                for item in events if isinstance(events, list) else []:
                    if not isinstance(item, dict):
                        continue
                    data = item.get("event_data")
                    flat.append({**(data if isinstance(data, dict) else {}),
                                 "event_name": item.get("event_name"),
                                 "event_time": item.get("event_time")})
        else:
            # single_event=1: one flat event (email, event_time, auth at the top level).
            flat.append({k: v for k, v in payload.items() if k != "auth"})
        events: list[WebhookEvent] = []
        for item in flat:
            email = item.get("email")
            if not isinstance(email, str) or not email.strip():
                continue
            name = str(item.get("event_name") or "")
            events.append(WebhookEvent(email.strip(), unisender_kind(name, item), name,
                                       provider_time(item.get("event_time")), item))
        return _by_time(events)


def unisender_kind(name: str, data: dict[str, Any]) -> str:
    """A hint for list changes (and a flat event without a name: Pipedream's sources read only
    email, event_time and auth); an ``email_status`` only when its status speaks of an
    unsubscribe or a complaint; anything else is ignored."""
    if not name or name in UNISENDER_HINTS:
        return "hint"
    if name == "email_status":
        status = f"{data.get('status', '')} {data.get('status_group', '')}".lower()
        if "unsubscrib" in status or "spam" in status or "complain" in status:
            return "hint"
    return "receipt"


WEBHOOKS: dict[str, type[BaseWebhook]] = {
    "esputnik": ESputnikWebhook,
    "unisender": UniSenderWebhook,
}


@csrf_exempt
def webhook_view(request: HttpRequest, provider: str, account_id: int) -> HttpResponse:
    handler_class = WEBHOOKS.get(provider)
    account = ProviderAccount.objects.filter(pk=account_id, provider=provider,
                                             is_active=True).first()
    if handler_class is None or account is None:
        return JsonResponse({"error": "Unknown webhook."}, status=404)
    if request.method in ("GET", "HEAD"):
        # Both providers check a URL with a GET when it is saved.
        return JsonResponse({"ok": True})
    if request.method != "POST":
        return JsonResponse({"error": "Use POST."}, status=405)
    rejected = request_body.guard(request_body.check_webhook_body, request)
    if rejected is not None:
        return rejected
    handler = handler_class(account, request)
    payload = handler.body_json()
    try:
        handler.authenticate(payload)
    except WebhookError as err:
        logger.warning("Rejected %s webhook for account %s: %s", provider, account.pk, err)
        return JsonResponse({"error": str(err)}, status=err.status)
    try:
        events = handler.parse_events(payload)
    except (AttributeError, TypeError, KeyError, ValueError):
        # A body of the wrong shape (a string where a list belongs...): the sender's mistake.
        logger.warning("Unreadable %s webhook for account %s", provider, account.pk)
        return JsonResponse({"ok": False, "message": "The webhook body does not have the "
                             "shape this provider sends."}, status=400)
    try:
        with transaction.atomic():
            results = [handler.handle(event) for event in events]
    except OperationalError:
        # A row stayed locked past WEBHOOK_LOCK_TIMEOUT: nothing was applied (the transaction
        # rolled back), and a non-2xx answer makes the provider send the whole batch again.
        logger.warning("%s webhook for account %s found a submission locked; asked the "
                       "provider to retry", provider, account.pk)
        return JsonResponse({"error": "Busy, please retry."}, status=503,
                            headers={"Retry-After": "10"})
    if not events:
        logger.info("%s webhook for account %s had no event we use: %.300s", provider,
                    account.pk, request.body.decode(errors="replace"))
    return JsonResponse({"ok": True, "handled": results})
