"""Celery tasks: thin wrappers that take ids, call plain functions and schedule what's next.

Short waits go back to Celery as a countdown; anything longer than ``MAX_COUNTDOWN`` stays in
``next_attempt_at`` for the sweeper, because Redis redelivers a task that waits longer than the
broker's visibility timeout (``acks_late``) and would run it twice.

The plain functions never import this module (the outbox enqueues tasks by name), so the
imports below go one way only.
"""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task
from celery.signals import task_postrun, task_prerun
from django.db import DatabaseError, close_old_connections, connections

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


# A connection a task gave back less than this many seconds ago is reused without the
# CONN_HEALTH_CHECKS query (pgbouncer's server_check_delay, in short): back to back, the
# check would cost one round trip per delivery, for a connection in use a moment ago.
CHECK_AFTER_IDLE = 1.0
_released_at = float("-inf")


def _ours(task: Any) -> bool:
    return (getattr(task, "name", "") or "").startswith("esp_forms.") and \
        not getattr(task.request, "is_eager", False)


@task_prerun.connect
def _before_task(sender: Any = None, **kwargs: Any) -> None:
    """Apply CONN_MAX_AGE and CONN_HEALTH_CHECKS around esp_forms' tasks, as Django does around
    requests. Celery closes the connection around every task unless DB_REUSE_MAX is set
    (check esp_forms.W018), and with it set it never checks a connection: one PostgreSQL
    dropped would fail every later task of the process."""
    if not _ours(sender):
        return
    close_old_connections()
    if time.monotonic() - _released_at < CHECK_AFTER_IDLE:
        for conn in connections.all(initialized_only=True):
            conn.health_check_done = True


@task_postrun.connect
def _after_task(sender: Any = None, **kwargs: Any) -> None:
    global _released_at
    if _ours(sender):
        close_old_connections()  # closes one that failed and is unusable, or is too old
        _released_at = time.monotonic()


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
