"""Where a submission stands: its delivery and double opt-in statuses.

A module of their own so that the outbox, delivery, opt-in and the models can all import them
without importing each other. ``esp_forms.models`` re-exports them under the same names.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class OptinStatus(models.TextChoices):
    UNCONFIRMED = "unconfirmed", _("Unconfirmed")
    CONFIRMED = "confirmed", _("Confirmed")
    NOT_REQUIRED = "not_required", _("Not required")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    EXPIRED = "expired", _("Expired")


# Opt-in states that never change again by polling.
SETTLED_OPTIN = {OptinStatus.CONFIRMED, OptinStatus.NOT_REQUIRED, OptinStatus.UNSUBSCRIBED,
                 OptinStatus.EXPIRED}
