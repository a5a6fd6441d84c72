"""Provider callbacks at ``/webhooks/<provider>/<account_id>/``.

One base view, one small class per provider. Every callback is authenticated against the
account's ``webhook_secret`` (constant-time compare) and answered at once; the work it asks for
is a *status read* queued for later (``optin.request_refresh``), so a forged, replayed or
malformed callback can at most cause an extra read of the provider, never a status change.
The one exception is eSputnik's unsubscribe activity: eSputnik has no API that reads an
unsubscribe back, so an authenticated unsubscribe event is applied directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from esp_forms import optin, request_body
from esp_forms.delivery import _locked
from esp_forms.models import DeliveryStatus, OptinStatus, ProviderAccount, Submission

logger = logging.getLogger("esp_forms.webhooks")


@dataclass
class WebhookEvent:
    email: str
    kind: str  # "subscribe", "unsubscribe", "confirmed" or the provider's own name
    data: dict[str, Any]


class WebhookError(Exception):
    status = 400


class BaseWebhook:
    provider: ClassVar[str] = ""

    def __init__(self, account: ProviderAccount, request: HttpRequest) -> None:
        self.account = account
        self.request = request

    def body_json(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except ValueError:
            # Some providers post form-encoded payloads; fall back to the POST dict.
            return {k: v for k, v in self.request.POST.items()} or None

    def secret_matches(self, candidate: str | None) -> bool:
        secret = self.account.webhook_secret
        return bool(secret and candidate) and constant_time_compare(str(candidate), secret)

    def authenticate(self, payload: Any) -> None:
        if not self.secret_matches(self.request.GET.get("secret")):
            raise WebhookError("Webhook authentication failed.")

    def parse_events(self, payload: Any) -> list[WebhookEvent]:
        raise NotImplementedError

    def handle(self, event: WebhookEvent) -> str:
        count = optin.request_refresh(self.account, event.email,
                                      reason=f"{self.provider} webhook ({event.kind})",
                                      data=event.data)
        return f"refresh:{count}"


class ESputnikWebhook(BaseWebhook):
    """Two sources: the confirmation workflow's Webhook block
    (``{"email", "contactId", "secret"}``) and the account's message-activity webhook, whose
    schema eSputnik does not publish: read it defensively."""

    provider = "esputnik"

    def authenticate(self, payload: Any) -> None:
        candidate = self.request.GET.get("secret")
        if candidate is None and isinstance(payload, dict):
            candidate = payload.get("secret")
        if not self.secret_matches(candidate):
            raise WebhookError("Webhook authentication failed.")

    def parse_events(self, payload: Any) -> list[WebhookEvent]:
        items = payload if isinstance(payload, list) else [payload]
        events = []
        for item in items:
            if not isinstance(item, dict):
                continue
            email = item.get("email") or item.get("EmailAddress") or item.get("emailAddress")
            if not email:
                continue
            activity = str(item.get("activity") or item.get("status") or item.get("event")
                           or item.get("type") or "").lower()
            kind = "unsubscribe" if "unsubscri" in activity else (activity or "confirmed")
            events.append(WebhookEvent(email=str(email), kind=kind,
                                       data={k: v for k, v in item.items() if k != "secret"}))
        return events

    def handle(self, event: WebhookEvent) -> str:
        if event.kind != "unsubscribe":
            return super().handle(event)
        changed = 0
        ids = Submission.objects.filter(
            form__account=self.account, email__iexact=event.email,
            delivery_status=DeliveryStatus.DELIVERED,
        ).exclude(optin_status=OptinStatus.UNSUBSCRIBED).values_list("pk", flat=True)
        for pk in list(ids):
            submission = _locked(Submission.objects.filter(pk=pk)).first()
            if submission is not None:
                changed += optin.apply_status(submission, OptinStatus.UNSUBSCRIBED,
                                              source="webhook", data=event.data)
        return f"unsubscribed:{changed}"


class UniSenderWebhook(BaseWebhook):
    """``setHook`` with ``event_format=json_post``. The hook URL we give carries
    ``?secret=``; the MD5 ``auth`` scheme (body hashed with the API key in place of ``auth``)
    is accepted too."""

    provider = "unisender"

    def authenticate(self, payload: Any) -> None:
        if self.secret_matches(self.request.GET.get("secret")):
            return
        received = payload.get("auth") if isinstance(payload, dict) else None
        key = self.account.api_key
        if received and key:
            raw = self.request.body.replace(str(received).encode(), key.encode(), 1)
            if constant_time_compare(hashlib.md5(raw).hexdigest(), str(received)):
                return
        raise WebhookError("Webhook authentication failed.")

    def parse_events(self, payload: Any) -> list[WebhookEvent]:
        if not isinstance(payload, dict):
            return []
        flat: list[dict[str, Any]] = []
        if "events_by_user" in payload:
            for user in payload.get("events_by_user") or []:
                for event in (user or {}).get("events") or []:
                    if isinstance(event, dict):
                        flat.append({"event_name": event.get("event_name"),
                                     **(event.get("event_data") or {})})
        else:
            flat.append(payload)
        return [WebhookEvent(email=str(item["email"]), kind=str(item.get("event_name") or ""),
                             data={k: v for k, v in item.items() if k != "auth"})
                for item in flat if item.get("email")]


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
    results = []
    with transaction.atomic():
        for event in events:
            results.append(handler.handle(event))
    if not results:
        logger.info("%s webhook for account %s had no event we use: %.300s", provider,
                    account.pk, request.body.decode(errors="replace"))
    return JsonResponse({"ok": True, "handled": results})
