"""Fixed demo accounts, so a demo site and the emulator agree without any setup.

``manage.py esp_forms_emulator --demo`` (or ``python -m esp_forms.emulator --demo``) seeds them;
point a ``ProviderAccount`` at the emulator's URL with these keys. They are public test values,
never real keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from esp_forms.emulator.server import EmulatorServer

DEMO_ESPUTNIK_KEY = "demo-esputnik-key"
DEMO_ESPUTNIK_GROUP = "Newsletter"
# The segment a new eSputnik form expects its confirmation workflow to fill (the form's
# default "confirmed segment"), so ``esp_forms_check_accounts`` passes on the first try.
DEMO_ESPUTNIK_CONFIRMED_GROUP = "Confirmed"
DEMO_ESPUTNIK_ORG = "Demo shop"
DEMO_UNISENDER_KEY = "demo-unisender-key"
DEMO_UNISENDER_LIST_ID = 1001  # has an invitation letter: double opt-in 0/4 work
DEMO_UNISENDER_NO_LETTER_LIST_ID = 1002  # no letter: 0/4 fail, as on a fresh real list


def seed_demo(server: EmulatorServer) -> None:
    """Create the demo eSputnik and UniSender accounts (replacing them if present)."""
    server.add_esputnik_account(DEMO_ESPUTNIK_KEY, groups=[DEMO_ESPUTNIK_GROUP,
                                                         DEMO_ESPUTNIK_CONFIRMED_GROUP],
                                org=DEMO_ESPUTNIK_ORG)
    server.add_unisender_account(DEMO_UNISENDER_KEY, lists=[
        {"id": DEMO_UNISENDER_LIST_ID, "title": "Newsletter", "confirmation_letter": True},
        {"id": DEMO_UNISENDER_NO_LETTER_LIST_ID, "title": "No invitation letter",
         "confirmation_letter": False},
    ])
