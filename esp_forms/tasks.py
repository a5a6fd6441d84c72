"""Celery tasks: thin wrappers that take ids, call plain functions and schedule what's next.

Short waits go back to Celery as a countdown; anything longer than ``MAX_COUNTDOWN`` stays in
``next_attempt_at`` for the sweeper, because Redis redelivers a task that waits longer than the
broker's visibility timeout (``acks_late``) and would run it twice.
"""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from esp_forms.conf import get_setting

# Shared by every task: redelivered if a worker dies mid-task, results not stored, and a
# database hiccup retried by Celery (provider errors are handled in the plain functions).
TASK_OPTIONS = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(name="esp_forms.deliver_submission", **TASK_OPTIONS)
def deliver_submission(submission_id: str) -> str:
    from esp_forms import delivery

    outcome = delivery.deliver(submission_id)
    if outcome.retry_in is not None and outcome.status in ("retry", "throttled"):
        if outcome.retry_in <= float(get_setting("MAX_COUNTDOWN")):
            delivery.send_task(deliver_submission, submission_id, countdown=outcome.retry_in)
    return str(outcome)


@shared_task(name="esp_forms.send_confirmation", **TASK_OPTIONS)
def send_confirmation(submission_id: str) -> str:
    from esp_forms import optin

    return optin.send_confirmation(submission_id)


@shared_task(name="esp_forms.refresh_optin", **TASK_OPTIONS)
def refresh_optin(submission_id: str) -> str:
    from esp_forms import optin

    return optin.refresh(submission_id)


@shared_task(name="esp_forms.sweep_outbox", **TASK_OPTIONS)
def sweep_outbox() -> dict[str, int]:
    from esp_forms import delivery

    return delivery.dispatch_due()


@shared_task(name="esp_forms.poll_optin", **TASK_OPTIONS)
def poll_optin() -> dict[str, int]:
    from esp_forms import optin

    return optin.poll_due()


@shared_task(name="esp_forms.expire_unconfirmed", **TASK_OPTIONS)
def expire_unconfirmed() -> int:
    from esp_forms import optin

    return optin.expire_unconfirmed()


@shared_task(name="esp_forms.purge", **TASK_OPTIONS)
def purge() -> int:
    from esp_forms import retention

    return retention.purge()


@shared_task(name="esp_forms.reconcile_optin", **TASK_OPTIONS)
def reconcile_optin() -> list[dict]:
    from esp_forms import reconcile

    return [report.as_dict() for report in reconcile.reconcile()]
