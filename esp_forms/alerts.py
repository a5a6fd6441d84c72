"""Telling a person when an account's configuration breaks: a warning in the admin and the
system checks, and at most one email per account per ``ALERT_INTERVAL``."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import mail_admins, send_mail
from django.db.models import Q
from django.utils import timezone

from esp_forms.conf import get_setting
from esp_forms.models import ProviderAccount

logger = logging.getLogger("esp_forms.alerts")


def report_configuration_error(account: ProviderAccount, error: Exception) -> bool:
    """Record the error on the account; email the admins unless they were emailed recently.
    Returns True when an email went out."""
    now = timezone.now()
    message = str(error)
    ProviderAccount.objects.filter(pk=account.pk).update(config_error=message,
                                                         config_error_at=now)
    account.config_error, account.config_error_at = message, now
    logger.error("Provider account %s (%s) is misconfigured: %s", account.pk, account.provider,
                 message)
    # The conditional UPDATE is the lock: of all workers hitting the same broken account at
    # once, exactly one wins the right to send the email.
    cutoff = now - timedelta(seconds=float(get_setting("ALERT_INTERVAL")))
    won = ProviderAccount.objects.filter(
        Q(last_alert_at__isnull=True) | Q(last_alert_at__lt=cutoff), pk=account.pk,
    ).update(last_alert_at=now)
    if not won:
        return False
    subject = f"Signup form deliveries are failing for account '{account.name}'"
    body = (f"The provider {account.get_provider_display()} refused a call because of the "
            f"account's configuration:\n\n{message}\n\nFix the account in the admin, then retry "
            f"the failed submissions (admin action) and run "
            f"'manage.py esp_forms_check_accounts'.\n")
    return send_alert(subject, body)


def send_alert(subject: str, body: str) -> bool:
    """Email ``ALERT_EMAILS`` (else ``ADMINS``); False, logged, when mail cannot be sent: an
    SMTP outage must not turn into a failed delivery or a failed signup."""
    recipients = get_setting("ALERT_EMAILS")
    try:
        if recipients:
            send_mail(subject, body, get_setting("FROM_EMAIL") or settings.DEFAULT_FROM_EMAIL,
                      list(recipients))
        else:
            mail_admins(subject, body)
    except Exception:
        logger.exception("Could not send the alert %r", subject)
        return False
    return True


def clear_configuration_error(account: ProviderAccount) -> None:
    ProviderAccount.objects.filter(pk=account.pk).update(config_error="", config_error_at=None)
    account.config_error, account.config_error_at = "", None
