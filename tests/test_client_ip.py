"""The client IP: REMOTE_ADDR unless trusted proxies say otherwise; never a raw X-Forwarded-For."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from esp_forms.client_ip import get_client_ip


def request(remote: str = "10.0.0.1", xff: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_the_header_is_ignored():
    assert get_client_ip(request("203.0.113.5", "1.2.3.4")) == "203.0.113.5"


@override_settings(ESP_FORMS={"TRUSTED_PROXY_COUNT": 1})
def test_one_proxy_takes_the_last_entry():
    # The client forged "1.2.3.4"; our proxy appended the real address.
    assert get_client_ip(request("10.0.0.1", "1.2.3.4, 198.51.100.7")) == "198.51.100.7"


@override_settings(ESP_FORMS={"TRUSTED_PROXY_COUNT": 2})
def test_two_proxies_take_the_second_from_the_right():
    assert get_client_ip(request("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.1")) == \
        "198.51.100.7"


@override_settings(ESP_FORMS={"TRUSTED_PROXY_COUNT": 2})
def test_too_few_entries_fall_back_to_remote_addr():
    assert get_client_ip(request("10.0.0.2", "1.2.3.4")) == "10.0.0.2"
    assert get_client_ip(request("10.0.0.2")) == "10.0.0.2"


@override_settings(ESP_FORMS={"TRUSTED_PROXY_COUNT": 1})
@pytest.mark.parametrize("entry, expected", [
    ("198.51.100.7:5123", "198.51.100.7"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("unknown", "10.0.0.1"),
    ("", "10.0.0.1"),
])
def test_entries_are_parsed_and_validated(entry, expected):
    assert get_client_ip(request("10.0.0.1", f"5.5.5.5, {entry}" if entry else "")) == expected


def test_invalid_remote_addr_is_none():
    assert get_client_ip(request("not-an-ip")) is None
