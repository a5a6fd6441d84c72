"""Provider registry: an explicit dict, no import-order magic."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from esp_forms.models import ProviderAccount
    from esp_forms.providers.base import BaseProvider

PROVIDERS: dict[str, str] = {
    "esputnik": "esp_forms.providers.esputnik.ESputnikProvider",
    "unisender": "esp_forms.providers.unisender.UniSenderProvider",
    "sandbox": "esp_forms.providers.sandbox.SandboxProvider",
}


def get_provider_class(name: str) -> type[BaseProvider]:
    try:
        dotted = PROVIDERS[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"Unknown esp_forms provider {name!r}; known: {', '.join(PROVIDERS)}.") from None
    module, _, cls = dotted.rpartition(".")
    return getattr(import_module(module), cls)


def get_provider(account: ProviderAccount) -> BaseProvider:
    return get_provider_class(account.provider)(account)
