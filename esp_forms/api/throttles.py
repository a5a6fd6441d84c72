"""Per-IP throttling of signups, shared by the JSON API and the HTML form.

DRF's ``SimpleRateThrottle`` keeps its history in Django's default cache (locmem works; use a
shared cache such as Redis when several processes serve the site, or each counts alone). The
rate is ``ESP_FORMS["SUBMIT_THROTTLE"]`` (e.g. ``"20/min"``; ``None`` turns throttling off),
read when the throttle is created, i.e. on every request.
"""

from __future__ import annotations

import math
from typing import Any

from django.utils.translation import gettext as _
from rest_framework.throttling import SimpleRateThrottle

from esp_forms.client_ip import get_client_ip
from esp_forms.conf import get_setting


class SubmitRateThrottle(SimpleRateThrottle):
    # One bucket per client IP for every submission path (API and HTML), so a bot cannot
    # double its allowance by alternating between them.
    scope = "esp_forms_submit"

    def get_rate(self) -> str | None:
        return get_setting("SUBMIT_THROTTLE") or None

    def get_cache_key(self, request: Any, view: Any) -> str:
        # Never the raw X-Forwarded-For (anyone could rotate it); see esp_forms.client_ip.
        return self.cache_format % {"scope": self.scope,
                                    "ident": get_client_ip(request) or "unknown"}


def throttled_message(wait: float | None) -> str:
    """The human answer to a throttled visitor."""
    if wait is None or wait <= 0:
        return _("Too many signups from your network. Please try again in a minute.")
    seconds = max(1, math.ceil(wait))
    return _("Too many signups from your network. Please try again in %(seconds)d seconds.") % {
        "seconds": seconds}
