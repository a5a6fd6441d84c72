"""``GET /esp-forms/metrics/``: the Prometheus text endpoint, for Prometheus only.

Off unless ``METRICS_TOKEN`` or ``METRICS_ALLOWED_IPS`` is set (404 then, as if it did not
exist). A scrape is allowed with ``Authorization: Bearer <METRICS_TOKEN>`` or from an address
in ``METRICS_ALLOWED_IPS`` (addresses or networks, as the client IP is read with
``TRUSTED_PROXY_COUNT``); anything else gets 401 (with a token configured) or 403.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from esp_forms import metrics
from esp_forms.client_ip import get_client_ip
from esp_forms.conf import get_setting

TEXT = "text/plain; charset=utf-8"


def enabled() -> bool:
    return bool(get_setting("METRICS_TOKEN") or get_setting("METRICS_ALLOWED_IPS"))


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The configured networks; entries that do not parse are skipped (system check E023).
    A single string is taken as one entry."""
    networks = []
    entries = get_setting("METRICS_ALLOWED_IPS") or []
    for entry in [entries] if isinstance(entries, str) else entries:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            continue
    return networks


def token_matches(request: HttpRequest) -> bool:
    token = get_setting("METRICS_TOKEN")
    if not token:
        return False
    scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), str(token).encode())


def ip_allowed(request: HttpRequest) -> bool:
    ip = get_client_ip(request)
    if not ip:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in network for network in allowed_networks())


# Exempt so that a POST gets 405, not a CSRF page: nothing here changes state.
@csrf_exempt
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not enabled():
        raise Http404
    if not (token_matches(request) or ip_allowed(request)):
        if get_setting("METRICS_TOKEN"):
            response = HttpResponse("Send Authorization: Bearer <METRICS_TOKEN>.\n",
                                    status=401, content_type=TEXT)
            response["WWW-Authenticate"] = 'Bearer realm="esp_forms metrics"'
            return response
        return HttpResponse("This address may not read the metrics.\n", status=403,
                            content_type=TEXT)
    if not metrics.AVAILABLE:
        return HttpResponse("prometheus_client is not installed: pip install "
                            "'esp-forms[metrics]'.\n", status=503, content_type=TEXT)
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
