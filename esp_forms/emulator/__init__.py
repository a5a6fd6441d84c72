"""A provider emulator: a real HTTP server that speaks eSputnik and UniSender on one port.

Tests, benchmarks and curious users point ``ProviderAccount.api_base_url`` at it. See
``docs/emulator.md``; the Python API is :class:`esp_forms.emulator.server.EmulatorServer`.
This package needs only the standard library (no Django), so it also runs as
``python -m esp_forms.emulator``.
"""

from esp_forms.emulator.server import EmulatorServer, Fault
from esp_forms.emulator.webhooks import WebhookDelivery
from esp_forms.emulator.wire import RecordedRequest

__all__ = ["EmulatorServer", "Fault", "RecordedRequest", "WebhookDelivery"]
