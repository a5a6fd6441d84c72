"""Pytest fixtures for the provider emulator (registered from the root ``conftest.py``).

- ``emulator_server`` (session): one :class:`EmulatorServer` on a free port for the whole run.
- ``emulator`` (function): that server, reset (no accounts, empty log, no faults) for the test.
- ``webhook_receiver`` (function): a :class:`WebhookReceiver` to point webhook URLs at.

One server per session keeps the suite fast (no bind per test); ``reset`` is what isolates
tests. Point ``ProviderAccount.api_base_url`` at ``emulator.url``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from esp_forms.emulator.receiver import WebhookReceiver
from esp_forms.emulator.server import EmulatorServer


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    emulator_server.reset()
    return emulator_server


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
