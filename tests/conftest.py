"""Shared fixtures: provider accounts and signup forms."""

from __future__ import annotations

import pytest

from esp_forms.models import DoubleOptIn, FieldKind, FormField, ProviderAccount, SignupForm


def make_form(account: ProviderAccount, form_type: str = "newsletter", *,
              fields: list[dict] | None = None, **kwargs) -> SignupForm:
    """A form with an email field (and the given extra fields)."""
    kwargs.setdefault("title", form_type.replace("-", " ").title())
    form = SignupForm.objects.create(account=account, form_type=form_type, **kwargs)
    FormField.objects.create(form=form, name="email", label="Email", kind=FieldKind.EMAIL,
                             required=True, order=0)
    for order, spec in enumerate(fields or [], start=1):
        spec = {"order": order, "label": spec["name"].replace("_", " ").title(), **spec}
        FormField.objects.create(form=form, **spec)
    return form


@pytest.fixture
def sandbox_account(db) -> ProviderAccount:
    return ProviderAccount.objects.create(name="Sandbox", provider="sandbox")


@pytest.fixture
def newsletter(sandbox_account) -> SignupForm:
    """The sandbox 'newsletter' form: email, first name, optional phone, provider opt-in."""
    return make_form(
        sandbox_account, "newsletter", double_opt_in=DoubleOptIn.PROVIDER,
        fields=[{"name": "first_name", "kind": FieldKind.FIRST_NAME},
                {"name": "phone", "kind": FieldKind.PHONE}],
    )
