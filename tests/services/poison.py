"""A Celery app for test workers in which one submission raises wherever it is worked on.

``celery -A tests.services.poison worker`` runs the demo's app with the row whose email is
``ESP_FORMS_POISON_EMAIL`` raising in delivery, in the status read and in the purge, the way a
bug or an outage tied to one row would. The batch loops must log it, back it off and go on.
"""

from __future__ import annotations

import os
from typing import Any

from project.celery import app  # noqa: F401  (the app this module stands for)

POISON = os.environ["ESP_FORMS_POISON_EMAIL"]


class PoisonedRow(RuntimeError):
    pass


def _install() -> None:
    import django

    django.setup()
    from esp_forms import delivery, optin, retention
    from esp_forms.models import Submission

    deliver_claimed, refresh_claimed, erase = (delivery.deliver_claimed,
                                               optin.refresh_claimed, retention.erase_personal_data)

    def poisoned_deliver(submission: Any, **kwargs: Any) -> Any:
        if submission.email == POISON:
            raise PoisonedRow("delivery of the poisoned row")
        return deliver_claimed(submission, **kwargs)

    def poisoned_refresh(submission: Any, owner: str) -> Any:
        if submission.email == POISON:
            raise PoisonedRow("status read of the poisoned row")
        return refresh_claimed(submission, owner)

    def poisoned_erase(ids: list[Any], **kwargs: Any) -> int:
        if Submission.objects.filter(pk__in=ids, email=POISON).exists():
            raise PoisonedRow("purge of a batch holding the poisoned row")
        return erase(ids, **kwargs)

    delivery.deliver_claimed = poisoned_deliver
    optin.refresh_claimed = poisoned_refresh
    retention.erase_personal_data = poisoned_erase


_install()
