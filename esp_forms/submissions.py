"""Storing a validated signup, and the one flow both the HTML view and the JSON API run.

The row is committed before the visitor gets an answer, so nothing a visitor was told succeeded
can be lost; the hand-off to Celery happens on commit (``esp_forms.outbox.submission_stored``)
and a broker failure there only leaves the row pending for the sweeper.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save
from django.http import HttpRequest
from django.utils import timezone, translation

from esp_forms import abuse, captcha, outbox, prepared, spam
from esp_forms.client_ip import get_client_ip
from esp_forms.conf import get_setting
from esp_forms.forms import CleanedSubmission, SignupSubmissionForm
from esp_forms.models import (
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    OptinStatus,
    SignupForm,
    Submission,
    SubmissionEvent,
)

logger = logging.getLogger("esp_forms.submissions")

USER_AGENT_MAX_LENGTH = 500


def initial_optin_status(form: SignupForm) -> str:
    return OptinStatus.NOT_REQUIRED if form.double_opt_in == DoubleOptIn.OFF \
        else OptinStatus.UNCONFIRMED


def _lock_key(form: SignupForm, email: str) -> int:
    digest = hashlib.blake2b(f"esp_forms:{form.pk}:{email.lower()}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@functools.cache
def _insert_sql(model: type[Any], vendor: str) -> tuple[str, tuple[Any, ...]]:
    """The INSERT Django would run for a ``model`` row (every column, auto id left to the
    database), and the fields whose values it takes, in order. Built once per process: the
    statement's text never changes, and compiling it cost as much as running it."""
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)
    q = connection.ops.quote_name
    placeholders = ", ".join(["%s"] * len(fields))
    return (f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
            f"VALUES ({placeholders})", fields)


def _insert(obj: Any) -> tuple[str, tuple[Any, ...]]:
    statement, fields = _insert_sql(type(obj), connection.vendor)
    return statement, tuple(f.get_db_prep_save(f.pre_save(obj, True), connection)
                            for f in fields)


# The repeat-signup lookup (see _duplicate_of), written out: it runs on every signup, and
# building it with the ORM cost more than running it. UPPER(email) matches the index
# esp_forms_sub_dupe_ci and Django's own iexact.
_REPEAT_LOOKUP = (
    f"SELECT id FROM {Submission._meta.db_table} "
    "WHERE form_id = %s AND UPPER(email::text) = UPPER(%s) AND created_at >= %s "
    "AND purged_at IS NULL AND delivery_status <> %s AND optin_status NOT IN (%s, %s) "
    "ORDER BY created_at DESC LIMIT 1 FOR UPDATE")


def _duplicate_of(form: SignupForm, email: str, now: Any, window: timedelta) -> Any:
    """Lock (form, email) and find a recent submission to collapse into; returns its id.

    Concurrent signups of one email on one form (a double click, two tabs) are serialised: on
    PostgreSQL a transaction-scoped advisory lock keyed on (form, email) makes the second
    request wait and then find the first one's row. The lock and the lookup go to the server
    in one round trip (two statements, pipelined: the lookup's snapshot is taken after the lock
    is held).
    Other databases: SQLite serialises writers anyway; elsewhere a rare duplicate is harmless
    (the providers deduplicate by email).
    """
    if connection.vendor != "postgresql":
        if not window:
            return None
        return (Submission.objects.select_for_update()
                .filter(form=form, email__iexact=email, created_at__gte=now - window,
                        purged_at__isnull=True)
                .exclude(delivery_status=DeliveryStatus.FAILED)
                .exclude(optin_status__in=[OptinStatus.UNSUBSCRIBED, OptinStatus.EXPIRED])
                .order_by("-created_at").values_list("pk", flat=True).first())
    key = _lock_key(form, email)
    with prepared.cursor(pipeline=True) as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
        if not window:
            return None
        cursor.execute(_REPEAT_LOOKUP, (form.pk, email, now - window, DeliveryStatus.FAILED,
                                        OptinStatus.UNSUBSCRIBED, OptinStatus.EXPIRED))
        row = cursor.fetchone()
    return row[0] if row else None


def _create(submission: Submission, event: SubmissionEvent) -> int | None:
    """INSERT the submission and its first event, on PostgreSQL in one round trip with the
    abuse gate's mailbox count for it (returned; None when the gate is to count itself)."""
    if connection.vendor != "postgresql":
        submission.save(force_insert=True)
        event.save(force_insert=True)
        return None
    counter = abuse.mailbox_counter(submission, created=True)
    bump = abuse.bump_statement(*counter) if counter else None
    pre_save.send(sender=Submission, instance=submission, raw=False, using=connection.alias,
                  update_fields=None)
    with prepared.cursor(pipeline=True) as cursor:
        cursor.execute(*_insert(submission))
        cursor.execute(*_insert(event))
        if bump is not None:
            cursor.execute(*bump)
            count = int(cursor.fetchone()[0])
    submission._state.adding, submission._state.db = False, connection.alias
    post_save.send(sender=Submission, instance=submission, created=True, raw=False,
                   using=connection.alias, update_fields=None)
    return count if bump is not None else None


def store_submission(form: SignupForm, cleaned: CleanedSubmission, *, ip: str | None,
                     user_agent: str) -> tuple[Submission, bool]:
    """Store a validated signup; returns ``(submission, created)``.

    A repeat of the same email on the same form within ``DUPLICATE_WINDOW`` seconds is collapsed
    into the earlier submission (its data and phone updated, ``created`` False), unless that one
    failed, was unsubscribed or expired, or was purged: then the person is signing up afresh.

    On PostgreSQL a new signup costs three round trips to the database (after Django's
    CONN_HEALTH_CHECKS query): BEGIN with the lock and the repeat lookup; the two INSERTs with
    the abuse gate's mailbox count; COMMIT. The row is committed before the visitor is
    answered.
    """
    email = cleaned["email"]
    phone = cleaned.get("phone") or ""
    data: dict[str, Any] = dict(cleaned.get("data") or {})
    now = timezone.now()
    window = timedelta(seconds=int(get_setting("DUPLICATE_WINDOW") or 0))
    with transaction.atomic():
        existing_pk = _duplicate_of(form, email, now, window)
        if existing_pk is not None:
            existing = Submission.objects.select_for_update().get(pk=existing_pk)
            existing.form = form
            changed = sorted(key for key, value in data.items()
                             if existing.data.get(key) != value)
            existing.data = {**existing.data, **data}
            update_fields = ["data", "updated_at"]
            if phone and phone != existing.phone:
                existing.phone = phone
                changed.append("phone")
                update_fields.append("phone")
            # Only these columns: a worker may be updating the statuses at the same time.
            existing.save(update_fields=update_fields)
            # Field names only: the event log keeps no personal data of its own.
            outbox.log_event(existing, EventKind.COLLAPSED,
                             "Repeat signup collapsed into this submission.", changed=changed)
            outbox.submission_stored(existing, created=False)
            return existing, False
        submission = Submission(
            form=form, email=email, phone=phone, data=data,
            delivery_status=DeliveryStatus.PENDING, optin_status=initial_optin_status(form),
            next_attempt_at=now, ip=ip, user_agent=(user_agent or "")[:USER_AGENT_MAX_LENGTH],
            consent_text=form.consent_text, created_at=now,
            language=(translation.get_language() or "")[:15],
        )
        counted = _create(submission, SubmissionEvent(
            submission=submission, kind=EventKind.CREATED, message="Submission stored.",
            data={}, created_at=now))
        outbox.submission_stored(submission, created=True, mailbox_count=counted)
        return submission, True


def success_message(form: SignupForm, submission: Submission | None, created: bool) -> str:
    """What the visitor reads after a signup (or a spam submission, which reads the same)."""
    if (submission is not None and not created
            and submission.delivery_status == DeliveryStatus.DELIVERED
            and submission.optin_status in (OptinStatus.CONFIRMED, OptinStatus.NOT_REQUIRED)):
        return form.localized_already_subscribed_message
    return form.localized_success_message


@dataclass
class SignupOutcome:
    """The result of :func:`process_signup`.

    ``ok`` is True for a stored submission *and* for spam: the two must look alike outside.
    """

    ok: bool
    message: str
    errors: dict[str, list[str]] = field(default_factory=dict)
    submission: Submission | None = None
    created: bool = False
    spam_reason: str | None = None
    # For the JSON API: the real id, or a decoy for spam.
    public_id: uuid.UUID | None = None
    delivery_status: str = DeliveryStatus.PENDING
    optin_status: str = OptinStatus.UNCONFIRMED
    # The HTTP status of a refusal: 400, or 503 when the CAPTCHA verifier was unreachable.
    status: int = 400


def process_signup(bound: SignupSubmissionForm, request: HttpRequest, *,
                   api: bool = False) -> SignupOutcome:
    """Validate, screen for spam, store. ``api`` selects the JSON API's error keys."""
    form = bound.signup_form
    if not bound.is_valid():
        return SignupOutcome(ok=False, message=form.localized_error_message,
                             errors=bound.error_dict(api=api))
    reason = bound.spam_reason()
    if reason is not None:
        spam.count_spam(form, reason)
        return SignupOutcome(
            ok=True, message=success_message(form, None, True), spam_reason=reason,
            public_id=spam.decoy_submission_id(form), optin_status=initial_optin_status(form))
    ip = get_client_ip(request)
    verifier = captcha.verifier_for(form)
    if verifier is not None:
        # Last: the answer is single-use, so a visitor fixing a field error keeps it unspent.
        check = captcha.verify(form, bound.data.get(verifier.response_field), ip=ip)
        if check.reason:
            abuse.count_block(form, check.reason)
        if not check.ok:
            return SignupOutcome(ok=False, message=check.message,
                                 errors={captcha.API_KEY: [check.message]},
                                 status=503 if check.unavailable else 400)
    submission, created = store_submission(
        form, bound.submission_values(), ip=ip,
        user_agent=request.META.get("HTTP_USER_AGENT", "") or "")
    return SignupOutcome(
        ok=True, message=success_message(form, submission, created), submission=submission,
        created=created, public_id=submission.pk, delivery_status=submission.delivery_status,
        optin_status=submission.optin_status)
