"""Celery tasks: thin wrappers that take ids and call plain functions."""

from celery import shared_task


@shared_task(name="esp_forms.deliver_submission", acks_late=True, ignore_result=True)
def deliver_submission(submission_id: str) -> str:
    from esp_forms import delivery

    return delivery.deliver(submission_id)


@shared_task(name="esp_forms.send_confirmation", acks_late=True, ignore_result=True)
def send_confirmation(submission_id: str) -> str:
    from esp_forms import optin

    return optin.send_confirmation(submission_id)
