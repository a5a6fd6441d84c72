"""CORS for the JSON API only, and only for the origins each form allows.

django-cors-headers asks the ``check_request_enabled`` signal whether a request's Origin may
read the answer. This receiver says yes only for the esp_forms API routes of one form (its
schema and submissions, and the status of one of its submissions) when the Origin is in that
form's ``allowed_origins``. The host's own ``CORS_*`` settings keep working for its other URLs.
Nothing here ever makes the API use cookies: it authenticates no one, so an allowed origin gets
exactly what a curl command would get.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from corsheaders.signals import check_request_enabled
from django.db import DatabaseError
from django.http import HttpRequest
from django.urls import Resolver404, resolve

from esp_forms import formcache, spam
from esp_forms.models import SignupForm, Submission

logger = logging.getLogger("esp_forms.cors")

_FORM_ROUTES = {"api_form", "api_submit"}
_STATUS_ROUTE = "api_status"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lower-cased, default port dropped; None when not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.path not in ("", "/") or parts.query:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _form_for_request(request: HttpRequest) -> SignupForm | None:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    if "esp_forms" not in match.app_names:
        return None
    if match.url_name in _FORM_ROUTES:
        return formcache.active_form(str(match.kwargs.get("form_type")))
    if match.url_name == _STATUS_ROUTE:
        pk = match.kwargs.get("pk")
        submission = Submission.objects.select_related("form").filter(pk=pk).first()
        if submission is not None:
            return submission.form
        # A decoy id handed to a spam submission: answer as its form would, so CORS does not
        # tell the bot apart either.
        form_pk = spam.decoy_form_pk(pk) if isinstance(pk, uuid.UUID) else None
        return SignupForm.objects.filter(pk=form_pk).first() if form_pk else None
    return None


def origin_allowed_for_form(form: SignupForm, origin: str) -> bool:
    wanted = normalise_origin(origin)
    if wanted is None:
        return False
    return any(normalise_origin(allowed) == wanted for allowed in form.origin_values)


def cors_allow_form_origins(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    """Receiver of ``corsheaders.signals.check_request_enabled``."""
    origin = request.headers.get("origin")
    if not origin:
        return False
    try:
        form = _form_for_request(request)
    except DatabaseError:
        # The view itself will report the problem; CORS just stays closed.
        logger.exception("Could not look up the form for a CORS check of %s", request.path)
        return False
    return form is not None and origin_allowed_for_form(form, origin)


# Connected on import (``EspFormsConfig.ready`` imports this module); the dispatch_uid keeps a
# second import from connecting it twice.
check_request_enabled.connect(cors_allow_form_origins, dispatch_uid="esp_forms.cors")
