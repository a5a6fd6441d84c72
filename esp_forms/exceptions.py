"""Errors raised by the provider layer.

``TransientProviderError`` is retried, ``PermanentProviderError`` fails one submission with the
provider's message, and ``ProviderConfigurationError`` (an ``ImproperlyConfigured``, outside the
retryable tree on purpose) means the account or form must be fixed by a person.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation


class EspFormsError(Exception):
    """Base for provider errors: says which provider, which account, what status, what body."""

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        account_id: int | None = None,
        status_code: int | None = None,
        response: Any = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.account_id = account_id
        self.status_code = status_code
        # Already redacted by the provider layer: never holds an API key.
        self.response = response
        self.code = code

    def describe_response(self) -> str:
        if self.response is None:
            return ""
        if isinstance(self.response, (dict, list)):
            text = json.dumps(self.response, ensure_ascii=False)
        else:
            text = str(self.response)
        return text if len(text) <= 500 else text[:500] + "…"

    def __str__(self) -> str:
        parts = [self.message or self.__class__.__name__]
        where = []
        if self.provider:
            where.append(self.provider)
        if self.status_code is not None:
            where.append(f"HTTP {self.status_code}")
        if self.code:
            where.append(f"code {self.code}")
        if where:
            parts.append(f"({', '.join(where)})")
        body = self.describe_response()
        if body:
            parts.append(f"response: {body}")
        return " ".join(parts)


class ProviderError(EspFormsError):
    """The provider call did not succeed."""


class TransientProviderError(ProviderError):
    """Worth retrying later: network errors, timeouts, 5xx, 429, provider 'retry later' codes."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Seconds the provider asked us to wait, when it said so.
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """The provider refused this contact's data; retrying the same request cannot help."""


class ProviderConfigurationError(EspFormsError, ImproperlyConfigured):
    """The account or form is misconfigured (bad key, unknown list, no invitation letter...)."""


class WebhookValidationFailure(SuspiciousOperation):
    """A webhook failed authentication; Django answers 400."""
