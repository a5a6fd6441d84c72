"""Celery tasks: thin wrappers that take ids, call plain functions and schedule what's next.

Short waits go back to Celery as a countdown; anything longer than ``MAX_COUNTDOWN`` stays in
``next_attempt_at`` for the sweeper, because Redis redelivers a task that waits longer than the
broker's visibility timeout (``acks_late``) and would run it twice.

The plain functions never import this module (the outbox enqueues tasks by name), so the
imports below go one way only.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError

from esp_forms import delivery, optin, outbox, retention
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


@shared_task(name=outbox.DELIVER_TASK, bind=True, **TASK_OPTIONS)
def deliver_submission(self: Any, submission_id: str, owner: str | None = None) -> str:
    # The lease owner: the sweeper's claim it was handed, else the task id, so that a retry
    # after a database error resumes its own claim.
    outcome = delivery.deliver(submission_id, owner=owner or self.request.id)
    if outcome.retry_in is not None and outcome.status in (delivery.Result.RETRY,
                                                           delivery.Result.THROTTLED):
        if outcome.retry_in <= float(get_setting("MAX_COUNTDOWN")):
            outbox.send_task(deliver_submission, submission_id, countdown=outcome.retry_in)
    return str(outcome)


@shared_task(name=outbox.CONFIRMATION_TASK, **TASK_OPTIONS)
def send_confirmation(submission_id: str) -> str:
    return optin.send_confirmation(submission_id)


@shared_task(name=outbox.REFRESH_TASK, bind=True, **TASK_OPTIONS)
def refresh_optin(self: Any, submission_id: str) -> str:
    return optin.refresh(submission_id, owner=self.request.id)


@shared_task(name="esp_forms.sweep_outbox", **TASK_OPTIONS)
def sweep_outbox() -> dict[str, int]:
    return delivery.dispatch_due(fan_out=True)


@shared_task(name="esp_forms.poll_optin", **TASK_OPTIONS)
def poll_optin() -> dict[str, int]:
    return optin.poll_due()


@shared_task(name="esp_forms.expire_unconfirmed", **TASK_OPTIONS)
def expire_unconfirmed() -> int:
    return optin.expire_unconfirmed()


@shared_task(name="esp_forms.purge", **TASK_OPTIONS)
def purge() -> int:
    return retention.purge()


@shared_task(name="esp_forms.reconcile_optin", **TASK_OPTIONS)
def reconcile_optin() -> list[dict]:
    from esp_forms import reconcile

    return [report.as_dict() for report in reconcile.reconcile()]
