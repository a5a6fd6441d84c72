"""Delivery of stored submissions to the provider. Plain functions: tasks and commands call them."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

from esp_forms.models import DoubleOptIn, EventKind, Submission, SubmissionEvent

logger = logging.getLogger("esp_forms.delivery")


def log_event(submission: Submission, kind: str, message: str = "", **data) -> SubmissionEvent:
    return SubmissionEvent.objects.create(submission=submission, kind=kind, message=message,
                                          data=data)


def submission_stored(submission: Submission, *, created: bool) -> None:
    """Call inside the transaction that stored (or collapsed into) ``submission``.

    Queues the next step after commit: the confirmation email for local double opt-in, the
    provider delivery otherwise. If the broker is down the row stays pending for the sweeper.
    """
    from esp_forms import tasks

    if submission.form.double_opt_in == DoubleOptIn.LOCAL:
        transaction.on_commit(partial(_send_task, tasks.send_confirmation, submission.pk))
    elif created:
        transaction.on_commit(partial(_send_task, tasks.deliver_submission, submission.pk))


def _send_task(task, submission_id, **options) -> bool:
    try:
        task.apply_async((str(submission_id),), **options)
        return True
    except Exception:  # broker down: nothing is lost, the sweeper picks the row up.
        logger.warning("Could not queue %s for submission %s; the sweeper will retry.",
                       task.name, submission_id, exc_info=True)
        return False
