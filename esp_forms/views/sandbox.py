"""The sandbox provider's confirmation link (stands in for the provider's own confirm page)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from esp_forms.models import SandboxContact

logger = logging.getLogger("esp_forms.sandbox")

TEMPLATE_DIR = "esp_forms/sandbox"


# No CSRF token: the unguessable token in the URL is what authorises the confirmation (a forger
# would need it), and a CSRF cookie is often missing in the in-app browsers of mail clients,
# which would turn a genuine click into a 403.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm_contact(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a page whose button (clicked by a person, never by a script) POSTs back here;
    only the POST confirms, so mail scanners that open links, even running scripts, confirm
    nobody."""
    contact = (SandboxContact.objects.select_related("account")
               .filter(token=token, account__provider="sandbox").first())
    if contact is None:
        return render(request, f"{TEMPLATE_DIR}/invalid.html", status=404)
    if request.method != "POST":
        if contact.status == SandboxContact.Status.ACTIVE:
            return render(request, f"{TEMPLATE_DIR}/confirmed.html", {"contact": contact})
        return render(request, f"{TEMPLATE_DIR}/confirm.html", {"contact": contact})
    if contact.status != SandboxContact.Status.ACTIVE:
        contact.status = SandboxContact.Status.ACTIVE
        contact.save(update_fields=["status", "updated_at"])
        logger.info("Sandbox contact %s confirmed", contact.pk)
    # Imported when needed, so loading the URLconf does not pull in the opt-in machinery and its
    # Celery tasks. Called on every POST (it is idempotent), so a second click repeats a lost
    # refresh.
    from esp_forms.optin import request_refresh

    request_refresh(contact.account, contact.email)
    return render(request, f"{TEMPLATE_DIR}/confirmed.html", {"contact": contact})
