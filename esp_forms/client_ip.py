"""The visitor's IP address, as far as it can be trusted.

``X-Forwarded-For`` is a list anyone can start: a client may send ``X-Forwarded-For: 1.2.3.4``
itself, and every proxy on the way appends the address it received the request from. Only the
entries appended by *our* proxies are trustworthy, so with ``TRUSTED_PROXY_COUNT = n`` the client
is the n-th entry from the right, and everything to its left is ignored. With ``0`` (the default)
the header is never read and ``REMOTE_ADDR`` is the client.
"""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest

from esp_forms.conf import get_setting


def _parse_ip(value: str) -> str | None:
    """A normalised IP address from a header entry, or None when it is not one.

    Some proxies append the port (``1.2.3.4:5678``, ``[2001:db8::1]:443``), so that is removed.
    """
    value = value.strip().strip('"')
    if not value:
        return None
    candidates = [value]
    if value.startswith("[") and "]" in value:
        candidates.append(value[1:value.index("]")])
    elif value.count(":") == 1:
        candidates.append(value.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def get_client_ip(request: HttpRequest) -> str | None:
    """The client's IP address, or None when there is no valid one to record."""
    remote = _parse_ip(request.META.get("REMOTE_ADDR", "") or "")
    try:
        proxies = int(get_setting("TRUSTED_PROXY_COUNT") or 0)
    except (TypeError, ValueError):
        proxies = 0
    if proxies <= 0:
        return remote
    header = request.META.get("HTTP_X_FORWARDED_FOR", "") or ""
    entries = [entry for entry in header.split(",") if entry.strip()]
    if len(entries) < proxies:
        # The request did not pass through all our proxies (someone reached an inner one
        # directly), so none of the entries is known to come from a proxy of ours.
        return remote
    return _parse_ip(entries[-proxies]) or remote
