"""The offline sandbox provider: contacts live in ``SandboxContact`` rows, no network.

It behaves like a small UniSender: provider double opt-in invites the contact and sends a
confirmation email (through Django's email backend) whose link leads to
``esp_forms:sandbox_confirm``; ``off`` adds it as "new"; a confirmed (local double opt-in)
subscribe makes it active at once. The demo shows the whole loop on a laptop with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from esp_forms.conf import get_setting, site_url
from esp_forms.exceptions import TransientProviderError
from esp_forms.providers.base import (
    AccountCheck,
    BaseProvider,
    ContactStatus,
    SubscribeResult,
    submitted_fields,
    submitted_names,
)

if TYPE_CHECKING:
    from esp_forms.models import SandboxContact, SignupForm, Submission

TEMPLATE_DIR = "esp_forms/sandbox"


def confirm_url(contact: SandboxContact) -> str:
    return site_url() + reverse("esp_forms:sandbox_confirm", args=[contact.token])


class SandboxProvider(BaseProvider):
    name: ClassVar[str] = "sandbox"
    verbose_name: ClassVar[str] = "Sandbox"
    default_base_url: ClassVar[str] = ""
    # Nothing remote to protect; generous so the demo never waits on the limiter.
    default_rate_limit: ClassVar[tuple[int, float]] = (1000, 1.0)

    def subscribe(self, submission: Submission, *, confirmed: bool = False) -> SubscribeResult:
        from esp_forms.models import DoubleOptIn, OptinStatus, SandboxContact

        form = submission.form
        with transaction.atomic():
            # Addresses differ only in case for the same person; match like the providers do.
            contact, created = SandboxContact.objects.select_for_update().get_or_create(
                account=self.account, email__iexact=submission.email.strip(),
                defaults={"email": submission.email.strip()})
            previous = "" if created else contact.status
            if submission.phone:
                contact.phone = submission.phone
            contact.lists = sorted(set(contact.lists or []) | set(form.list_values))
            contact.fields = {**(contact.fields or {}), **self.contact_fields(submission)}
            send_invitation = False
            if confirmed:
                contact.status = SandboxContact.Status.ACTIVE
                optin = OptinStatus.CONFIRMED
            elif form.double_opt_in == DoubleOptIn.OFF:
                if contact.status != SandboxContact.Status.ACTIVE:
                    contact.status = SandboxContact.Status.NEW
                optin = OptinStatus.NOT_REQUIRED
            elif contact.status == SandboxContact.Status.ACTIVE:
                # Like UniSender's double_optin=4: an active contact is just added, no letter.
                optin = OptinStatus.CONFIRMED
            else:
                contact.status = SandboxContact.Status.INVITED
                optin = OptinStatus.UNCONFIRMED
                send_invitation = True
            contact.save()
        if send_invitation:
            self.send_invitation(contact, form)
        return SubscribeResult(
            contact_id=str(contact.pk), is_new=created, optin_status=str(optin),
            raw={"request": {"provider": "sandbox", "confirmed": confirmed,
                             "double_opt_in": form.double_opt_in, "lists": form.list_values},
                 "response": {"contact_id": contact.pk, "status": contact.status,
                              "previous_status": previous, "invited": send_invitation}},
        )

    def contact_fields(self, submission: Submission) -> dict[str, Any]:
        """The names and custom fields as the sandbox stores them (by form field name)."""
        out: dict[str, Any] = {name.kind: name.value for name in submitted_names(submission)}
        for form_field, value in submitted_fields(submission):
            out[form_field.name] = value
        return out

    def send_invitation(self, contact: SandboxContact, form: SignupForm) -> None:
        context = {"contact": contact, "form": form, "confirm_url": confirm_url(contact),
                   "site_url": site_url()}
        # In the site's language (LANGUAGE_CODE), like the local confirmation email.
        with translation.override(settings.LANGUAGE_CODE):
            subject = " ".join(render_to_string(f"{TEMPLATE_DIR}/confirm_email_subject.txt",
                                                context).split())
            message = EmailMultiAlternatives(
                subject=subject,
                body=render_to_string(f"{TEMPLATE_DIR}/confirm_email.txt", context),
                from_email=get_setting("FROM_EMAIL") or settings.DEFAULT_FROM_EMAIL,
                to=[contact.email],
            )
            message.attach_alternative(
                render_to_string(f"{TEMPLATE_DIR}/confirm_email.html", context), "text/html")
        try:
            message.send()
        except OSError as err:  # SMTP down or refused: the contact is stored, retry the mail.
            raise TransientProviderError(
                f"The sandbox could not send the confirmation email: {type(err).__name__}",
                **self.error_context(None, None)) from err

    def get_contact_status(self, submission: Submission) -> ContactStatus:
        from esp_forms.models import OptinStatus, SandboxContact

        contact = SandboxContact.objects.filter(
            account=self.account, email__iexact=submission.email.strip()).first()
        if contact is None:
            return ContactStatus(optin_status=str(OptinStatus.UNCONFIRMED),
                                 raw={"note": "The sandbox has no contact with this email"})
        status = {
            SandboxContact.Status.ACTIVE: OptinStatus.CONFIRMED,
            SandboxContact.Status.UNSUBSCRIBED: OptinStatus.UNSUBSCRIBED,
        }.get(contact.status, OptinStatus.UNCONFIRMED)
        return ContactStatus(optin_status=str(status), contact_id=str(contact.pk),
                             raw={"status": contact.status})

    def check_account(self, forms: list[SignupForm]) -> AccountCheck:
        from esp_forms.models import SandboxContact

        return AccountCheck(ok=True, info={
            "contacts": SandboxContact.objects.filter(account=self.account).count(),
            "note": "The sandbox keeps contacts in this database; nothing leaves the site.",
        })
