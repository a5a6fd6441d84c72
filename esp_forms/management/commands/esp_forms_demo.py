"""``manage.py esp_forms_demo``: seed demo accounts, forms and an admin user. Safe to rerun.

- a sandbox account (works offline) with ``newsletter`` (provider double opt-in) and
  ``product-updates`` (local double opt-in, phone, a choice and a consent checkbox);
- an eSputnik and a UniSender account pointing at the provider emulator
  (``manage.py esp_forms_emulator --demo``) with ``esputnik-news`` and ``unisender-news``;
- a superuser ``admin`` whose password comes from ``ESP_FORMS_DEMO_PASSWORD`` or is generated
  once and kept in ``<demo dir>/admin-password.txt``, so it stays the same across runs.

A rerun creates what is missing, points the emulator accounts at the current emulator port and
leaves forms that already exist as they are (someone may have edited them in the admin).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from esp_forms.emulator.demo import (
    DEMO_ESPUTNIK_GROUP,
    DEMO_ESPUTNIK_KEY,
    DEMO_UNISENDER_KEY,
    DEMO_UNISENDER_LIST_ID,
)
from esp_forms.models import (
    DoubleOptIn,
    FieldKind,
    FormField,
    Provider,
    ProviderAccount,
    SignupForm,
)

ADMIN_USERNAME = "admin"
PASSWORD_ENV = "ESP_FORMS_DEMO_PASSWORD"
PASSWORD_FILE = "admin-password.txt"
DEFAULT_EMULATOR_PORT = 8025

SANDBOX_ACCOUNT = "Demo sandbox"
ESPUTNIK_ACCOUNT = "Demo eSputnik (emulator)"
UNISENDER_ACCOUNT = "Demo UniSender (emulator)"


@dataclass
class FormSpec:
    form_type: str
    account: str
    title: str
    options: dict[str, Any]
    fields: list[dict[str, Any]] = field(default_factory=list)


EMAIL = {"name": "email", "label": "Email", "kind": FieldKind.EMAIL, "required": True}
FIRST_NAME = {"name": "first_name", "label": "First name", "kind": FieldKind.FIRST_NAME}

FORMS = [
    FormSpec("newsletter", SANDBOX_ACCOUNT, "Weekly newsletter", {
        "description": "One email a week with what we wrote and read. No spam.",
        "double_opt_in": DoubleOptIn.PROVIDER,
    }, [EMAIL, FIRST_NAME]),
    FormSpec("product-updates", SANDBOX_ACCOUNT, "Product updates", {
        "description": "Release notes for the products you choose, a few times a year.",
        "double_opt_in": DoubleOptIn.LOCAL,
        "submit_label": "Keep me posted",
        "consent_text": "I agree to receive product update emails and can unsubscribe at any "
                        "time.",
    }, [EMAIL,
        {"name": "phone", "label": "Phone (optional)", "kind": FieldKind.PHONE,
         "help_text": "International format, e.g. +380 44 123 4567."},
        {"name": "product", "label": "Product", "kind": FieldKind.CHOICE, "required": True,
         "choices": "web|Web app\nmobile|Mobile apps\napi|Developer API"}]),
    FormSpec("esputnik-news", ESPUTNIK_ACCOUNT, "eSputnik newsletter (emulator)", {
        "description": "Delivered to the eSputnik emulator; its confirmation is simulated there.",
        "double_opt_in": DoubleOptIn.PROVIDER,
        "lists": DEMO_ESPUTNIK_GROUP,
    }, [EMAIL, FIRST_NAME]),
    FormSpec("unisender-news", UNISENDER_ACCOUNT, "UniSender newsletter (emulator)", {
        "description": "Delivered to the UniSender emulator, which sends the invitation.",
        "double_opt_in": DoubleOptIn.PROVIDER,
        "lists": str(DEMO_UNISENDER_LIST_ID),
    }, [EMAIL, {**FIRST_NAME, "provider_field": "Name"}]),
]


@dataclass
class DemoResult:
    username: str
    password: str
    password_source: str
    created: list[str]
    updated: list[str]


def demo_dir() -> Path:
    """Where the demo keeps its files: the demo project's DEMO_DIR, else ESP_FORMS_DEMO_DIR."""
    configured = getattr(settings, "DEMO_DIR", None) or os.environ.get("ESP_FORMS_DEMO_DIR")
    return Path(configured) if configured else Path.cwd() / ".demo"


def admin_password() -> tuple[str, str]:
    """The admin's password and where it came from; generated and stored on first use."""
    from_env = os.environ.get(PASSWORD_ENV, "")
    if from_env:
        return from_env, f"${PASSWORD_ENV}"
    path = demo_dir() / PASSWORD_FILE
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return stored, str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    # Created readable by the owner only: it unlocks the admin of a running demo.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password, str(path)


def emulator_url() -> str:
    port = os.environ.get("EMULATOR_PORT") or DEFAULT_EMULATOR_PORT
    return f"http://127.0.0.1:{port}"


@transaction.atomic
def seed(emulator_base_url: str | None = None) -> DemoResult:
    created: list[str] = []
    updated: list[str] = []
    base_url = emulator_base_url or emulator_url()

    accounts: dict[str, ProviderAccount] = {}
    account_specs = {
        SANDBOX_ACCOUNT: {"provider": Provider.SANDBOX, "api_key": "", "api_base_url": ""},
        ESPUTNIK_ACCOUNT: {"provider": Provider.ESPUTNIK, "api_key": DEMO_ESPUTNIK_KEY,
                           "api_base_url": base_url},
        UNISENDER_ACCOUNT: {"provider": Provider.UNISENDER, "api_key": DEMO_UNISENDER_KEY,
                            "api_base_url": base_url},
    }
    for name, spec in account_specs.items():
        account = ProviderAccount.objects.filter(name=name, provider=spec["provider"]).first()
        if account is None:
            account = ProviderAccount(name=name, **spec)
            account.full_clean()
            account.save()
            created.append(f"account '{name}'")
        elif (account.api_key, account.api_base_url) != (spec["api_key"], spec["api_base_url"]):
            # The emulator's port can differ between runs (EMULATOR_PORT); keys are public
            # demo constants. Anything else set in the admin is kept.
            account.api_key = spec["api_key"]
            account.api_base_url = spec["api_base_url"]
            account.full_clean()
            account.save(update_fields=["api_key", "api_base_url", "updated_at"])
            updated.append(f"account '{name}' → {spec['api_base_url'] or 'sandbox'}")
        accounts[name] = account

    for spec in FORMS:
        if SignupForm.objects.filter(form_type=spec.form_type).exists():
            continue
        form = SignupForm(form_type=spec.form_type, title=spec.title,
                          account=accounts[spec.account], **spec.options)
        form.full_clean()
        form.save()
        for order, field_spec in enumerate(spec.fields):
            form_field = FormField(form=form, order=order, **field_spec)
            form_field.full_clean()
            form_field.save()
        created.append(f"form '{spec.form_type}'")

    password, source = admin_password()
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: ADMIN_USERNAME}).first()
    if user is None:
        user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
        created.append(f"superuser '{ADMIN_USERNAME}'")
    elif not (user.check_password(password) and user.is_superuser and user.is_active):
        # Keep the printed credentials true, e.g. after ESP_FORMS_DEMO_PASSWORD changed.
        user.set_password(password)
        user.is_superuser = user.is_staff = user.is_active = True
        user.save()
        updated.append(f"superuser '{ADMIN_USERNAME}'")
    return DemoResult(ADMIN_USERNAME, password, source, created, updated)


class Command(BaseCommand):
    help = ("Create the demo accounts, forms and admin user (idempotent). The eSputnik and "
            "UniSender demo accounts point at the provider emulator on EMULATOR_PORT (8025).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--emulator-url", default=None,
                            help="Base URL of the provider emulator (default "
                                 "http://127.0.0.1:$EMULATOR_PORT, port 8025).")

    def handle(self, *args: Any, **options: Any) -> None:
        result = seed(options["emulator_url"])
        for item in result.created:
            self.stdout.write(f"  created {item}")
        for item in result.updated:
            self.stdout.write(f"  updated {item}")
        if not (result.created or result.updated):
            self.stdout.write("  nothing to do: the demo data is in place")
        self.stdout.write(self.style.SUCCESS(
            f"Demo admin: user '{result.username}', password '{result.password}' "
            f"(from {result.password_source})"))
