"""The abuse gate: who may be sent a confirmation email or a provider invitation, and when.

List bombing signs a victim's address up on many forms (and as ``victim+1@``, ``victim+2@``...)
so that the victim's inbox floods and the sender's reputation burns. Whatever the entry point
(the HTML form, the JSON API), a stored signup reaches :func:`admit` in the transaction that
stored it, just before it is handed on to a confirmation email (local double opt-in) or to the
provider (which sends its own invitation in provider mode). In order:

1. the pre-send hook (the ``pre_send`` signal and the ``PRE_SEND_HOOK`` setting) may deny it;
2. the form's hourly budget (``FORM_HOURLY_BUDGET`` or the form's own): over it, the admins
   get one alert per form per hour;
3. the mailbox's budget (``MAILBOX_BUDGET`` per ``MAILBOX_BUDGET_WINDOW``), counted across all
   forms of the provider account on the normalised mailbox.

A signup that fails a step is *held*: stored as usual (nothing is lost, the visitor reads the
same success message), but nothing is sent until an admin releases it (:func:`release`) or
drops it (:func:`drop`). Every hold is counted per form, reason and day in ``SpamCount``.

The counters live in the database (``AbuseCounter``, one row per budget and fixed window), so
every web process and worker shares them; the row is locked for the rest of the storing
transaction, which serialises concurrent signups of one mailbox or form on that row only.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string

from esp_forms import alerts, prepared, signals, spam
from esp_forms.conf import get_setting
from esp_forms.models import (
    AbuseCounter,
    DeliveryStatus,
    DoubleOptIn,
    EventKind,
    HoldReason,
    OptinStatus,
    SignupForm,
    Submission,
)

logger = logging.getLogger("esp_forms.abuse")

FORM_WINDOW = 3600
# Old counter rows are deleted by about one signup in this many.
PRUNE_CHANCE = 0.01
MAILBOX_SALT = "esp_forms.abuse.mailbox"
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# What is about to be sent for a submission (the ``action`` the hook is given).
CONFIRMATION = "confirmation"  # our own confirmation email (local double opt-in)
INVITATION = "invitation"  # the provider's confirmation email (provider double opt-in)
DELIVERY = "delivery"  # a provider call that sends nothing to the person (opt-in off)


# --- mailboxes --------------------------------------------------------------------------------

def normalise_mailbox(email: str) -> str:
    """The mailbox an address delivers to: ``Ann.Lee+x@GoogleMail.com`` -> ``annlee@gmail.com``.

    Case is dropped everywhere (no real mailbox provider tells ``Ann@`` from ``ann@``), a
    ``+tag`` everywhere (sub-addressing is what bombers vary), and dots only for Gmail, which
    ignores them (other providers treat ``a.b@`` and ``ab@`` as different people).
    """
    local, _sep, domain = email.strip().lower().rpartition("@")
    if not _sep:
        return email.strip().lower()
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def mailbox_key(account_id: int, email: str) -> str:
    """The counter key of a mailbox at one account: a keyed hash, never the address."""
    digest = salted_hmac(MAILBOX_SALT, normalise_mailbox(email), algorithm="sha256").hexdigest()
    return f"mailbox:{account_id}:{digest[:40]}"


def form_key(form: SignupForm) -> str:
    return f"form:{form.pk}"


# --- counters -----------------------------------------------------------------------------------

def window_start(now: datetime, seconds: int) -> datetime:
    """The start of the fixed window (aligned on the epoch, in UTC) that ``now`` falls in."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def _upsert_supported() -> bool:
    """INSERT … ON CONFLICT … RETURNING: PostgreSQL, and SQLite from 3.35."""
    if connection.vendor == "postgresql":
        return True
    if connection.vendor == "sqlite":
        return connection.Database.sqlite_version_info >= (3, 35)
    return False


def bump_statement(key: str, seconds: int, *, now: datetime | None = None
                   ) -> tuple[str, list[Any]] | None:
    """The one statement :func:`bump` runs (an upsert returning the new count), for a caller
    that sends it together with others; None where the database has no such upsert."""
    if not _upsert_supported():
        return None
    now = now or timezone.now()
    if random.random() < PRUNE_CHANCE:
        _prune(now)
    start = window_start(now, seconds)
    expires = start + timedelta(seconds=seconds)
    q = connection.ops.quote_name
    table = q(AbuseCounter._meta.db_table)
    return (f"INSERT INTO {table} ({q('key')}, {q('window_start')}, {q('count')}, "
            f"{q('expires_at')}) VALUES (%s, %s, 1, %s) "
            f"ON CONFLICT ({q('key')}, {q('window_start')}) "
            f"DO UPDATE SET {q('count')} = {table}.{q('count')} + 1 RETURNING {q('count')}",
            [key, connection.ops.adapt_datetimefield_value(start),
             connection.ops.adapt_datetimefield_value(expires)])


def bump(key: str, seconds: int, *, now: datetime | None = None) -> int:
    """Add one to ``key``'s counter in the current window; returns the new count.

    Call inside a transaction: the row stays locked until it ends, so two processes counting
    the same key take turns and each sees the other's count. One statement where the database
    has an upsert with RETURNING (no savepoint, no second read).
    """
    statement = bump_statement(key, seconds, now=now)
    if statement is not None:
        with prepared.cursor() as cursor:
            cursor.execute(*statement)
            return int(cursor.fetchone()[0])
    start = window_start(now or timezone.now(), seconds)
    expires = start + timedelta(seconds=seconds)
    rows = AbuseCounter.objects.filter(key=key, window_start=start)
    if not rows.update(count=F("count") + 1):
        try:
            with transaction.atomic():
                AbuseCounter.objects.create(key=key, window_start=start, count=1,
                                            expires_at=expires)
            return 1
        except IntegrityError:  # another process created it first
            rows.update(count=F("count") + 1)
    return int(rows.values_list("count", flat=True).get())


def _prune(now: datetime) -> None:
    """Forget windows that ended a day ago (now and then, not on every signup)."""
    AbuseCounter.objects.filter(expires_at__lt=now - timedelta(days=1)).delete()


# A large hourly budget (a campaign's) is counted in Redis a batch at a time: each process adds
# up to this many of its signups in one round trip, never more than 1% of the budget and never
# past half of it. The default budget (100) is counted one signup at a time.
FORM_COUNT_BATCH = 16

# form key -> (window, this process's signups not yet added, the shared count last seen)
_unshared: dict[str, tuple[int, int, int]] = {}
_unshared_lock = threading.Lock()


def form_signups(form: SignupForm, limit: int) -> int:
    """Count one more new signup of ``form`` this clock hour; returns the hour's count so far
    (from the database, counted only up to ``limit + 1``).

    Every signup of a form counts in the same place, so this is the gate's hot spot. With the
    rate limiter's Redis (``RATE_LIMIT_REDIS_URL``, or a redis:// broker) it is one INCR,
    shared by every process; for budgets of 200 and more a process adds its signups in
    batches (``FORM_COUNT_BATCH``, at most 1% of the budget) while the count is below half the
    budget, so a form may let through up to that batch per web process more than its budget.
    Without Redis, the submissions themselves are counted (every new signup is a row, held or
    not): no write and no row lock, since a shared counter row would make each signup of the
    form wait for the one before it to commit, but a read of up to ``limit + 1`` rows. Either
    way the count may miss signups being stored at that very moment (and Redis keeps counting
    one whose transaction then failed): the hourly budget is that approximate, unlike the
    mailbox budget.
    """
    now = timezone.now()
    start = window_start(now, FORM_WINDOW)
    client = _shared_redis()
    if client is not None:
        window = int(start.timestamp())
        counted = _count_in_redis(client, form_key(form), window, limit)
        if counted is not None:
            return counted
    return Submission.objects.filter(form=form, created_at__gte=start)[: limit + 1].count()


def _count_in_redis(client: Any, key: str, window: int, limit: int) -> int | None:
    batch = max(1, min(FORM_COUNT_BATCH, limit // 100))
    with _unshared_lock:
        seen, unshared, shared = _unshared.get(key, (window, 0, 0))
        if seen != window:  # a new hour: last hour's count is over
            unshared, shared = 0, 0
        unshared += 1
        if unshared < batch and shared + unshared <= limit // 2:
            _unshared[key] = (window, unshared, shared)
            return shared + unshared
        _unshared[key] = (window, 0, shared)
    try:
        pipe = client.pipeline(transaction=False)  # one round trip; no MULTI needed
        pipe.incrby(f"esp_forms:abuse:{key}:{window}", unshared)
        pipe.expire(f"esp_forms:abuse:{key}:{window}", FORM_WINDOW * 2)
        count = int(pipe.execute()[0])
    except Exception:  # Redis down: the database can answer too
        logger.warning("Redis unavailable for the form budget; counting in the database.",
                       exc_info=True)
        return None
    with _unshared_lock:
        seen, unshared, _old = _unshared.get(key, (window, 0, 0))
        _unshared[key] = (window, unshared if seen == window else 0, count)
    return count


def _shared_redis() -> Any:
    """The rate limiter's Redis client, or None when it runs per process."""
    from esp_forms import ratelimit

    return getattr(ratelimit.get_limiter(), "client", None)


def first_alert(form: SignupForm) -> bool:
    """True for exactly one caller per form and hour: the one that creates the alert marker
    (the unique constraint decides, however many transactions race for it)."""
    return bump(f"alert:{form_key(form)}", FORM_WINDOW) == 1


def count_block(form: SignupForm, reason: str) -> None:
    """One more block of ``reason`` today in ``SpamCount`` (shown in the admin)."""
    spam.bump_count(form, reason)


# --- the gate -----------------------------------------------------------------------------------

def pending_action(submission: Submission, *, created: bool) -> str | None:
    """What handing ``submission`` on would send now, or None when nothing would go out."""
    mode = submission.form.double_opt_in
    if mode == DoubleOptIn.LOCAL:
        if submission.optin_status != OptinStatus.UNCONFIRMED:
            return None
        sent = submission.confirmation_sent_at
        if not created and sent is None:
            return None  # the first signup's email is still on its way: this adds none
        cooldown = timedelta(seconds=float(get_setting("RESEND_COOLDOWN")))
        if sent and timezone.now() - sent < cooldown:
            return None  # the task would skip it (cooldown): nothing to count
        return CONFIRMATION
    if not created:
        return None  # a repeat collapsed into a known submission: no second provider call
    return INVITATION if mode == DoubleOptIn.PROVIDER else DELIVERY


def mailbox_counter(submission: Submission, *, created: bool) -> tuple[str, int] | None:
    """The mailbox counter (key, window) :func:`admit` would count this signup in, if any: the
    store may send that count with the row's INSERT and hand it over (``counted``)."""
    limit = get_setting("MAILBOX_BUDGET")
    if limit is None or submission.held_at is not None:
        return None
    if pending_action(submission, created=created) not in (CONFIRMATION, INVITATION):
        return None
    return (mailbox_key(submission.form.account_id, submission.email),
            int(get_setting("MAILBOX_BUDGET_WINDOW")))


def _uncount(submission: Submission) -> None:
    """Take back a mailbox count made ahead (see ``counted``) for a signup held for another
    reason: only what is sent counts, and a release counts it again."""
    key, window = mailbox_counter(submission, created=True) or (None, 0)
    if key:
        start = window_start(timezone.now(), window)
        AbuseCounter.objects.filter(key=key, window_start=start, count__gt=0).update(
            count=F("count") - 1)


def admit(submission: Submission, *, created: bool, counted: int | None = None) -> bool:
    """Call in the transaction that stored ``submission``, before handing it on.

    True: hand it on. False: nothing may be queued for it; a new signup is then held, while a
    repeat signup (which would only send the confirmation email again) keeps its state and
    simply gets no second email. ``counted``: the mailbox count the caller already took for
    this signup (:func:`mailbox_counter`), sent with the row's INSERT.
    """
    if submission.held_at is not None:
        return False  # a repeat signup collapsed into a held one stays held
    action = pending_action(submission, created=created)
    if action is None:
        return True
    denial = ask_hook(submission, action)
    if denial is not None:
        if counted is not None:
            _uncount(submission)
        return _refuse(submission, HoldReason.HOOK_DENIED, denial, action, created=created)
    form = submission.form
    if created:
        limit = form_budget(form)
        if limit:
            count = form_signups(form, limit)
            if count > limit:
                if first_alert(form):  # exactly one alert per form and window
                    transaction.on_commit(partial(alert_form_budget, form.pk, limit))
                if counted is not None:
                    _uncount(submission)
                return _refuse(submission, HoldReason.FORM_BUDGET,
                               f"More than {limit} signups within the hour; the budget is "
                               f"{limit}.", action, created=created)
    if action in (CONFIRMATION, INVITATION):
        limit = get_setting("MAILBOX_BUDGET")
        if limit is not None:
            window = int(get_setting("MAILBOX_BUDGET_WINDOW"))
            count = counted if counted is not None else bump(
                mailbox_key(form.account_id, submission.email), window)
            if count > int(limit):
                return _refuse(submission, HoldReason.MAILBOX_BUDGET,
                               f"{count} emails asked for this mailbox in the window; the "
                               f"budget is {limit}.", action, created=created)
    return True


def _refuse(submission: Submission, reason: str, detail: str, action: str, *,
            created: bool) -> bool:
    if created:
        hold(submission, reason, detail=detail, action=action)
    else:
        from esp_forms.delivery import log_event

        log_event(submission, EventKind.HELD,
                  f"Confirmation email not sent again: {HoldReason(reason).label}. {detail}",
                  reason=reason, action=action)
        count_block(submission.form, reason)
    return False


def form_budget(form: SignupForm) -> int:
    """Signups per hour this form hands on; 0 means no limit."""
    if form.hourly_budget is not None:
        return int(form.hourly_budget)
    return int(get_setting("FORM_HOURLY_BUDGET") or 0)


def ask_hook(submission: Submission, action: str) -> str | None:
    """The reason the pre-send hook denies sending, or None when it lets it go.

    A hook that fails is treated as a denial: the signup is held for a person to look at,
    which loses nothing, rather than mailed unchecked.
    """
    answers: list[Any] = [answer for _receiver, answer in signals.pre_send.send_robust(
        sender=Submission, submission=submission, action=action)]
    path = get_setting("PRE_SEND_HOOK")
    if path:
        try:
            hook = import_string(str(path)) if isinstance(path, str) else path
            answers.append(hook(submission, action))
        except Exception as err:  # noqa: BLE001 - any failure of site code holds the signup
            answers.append(err)
    for answer in answers:
        if isinstance(answer, Exception):
            logger.error("The pre-send hook failed for submission %s; holding it.",
                         submission.pk, exc_info=answer)
            return f"The pre-send hook failed: {answer!r}"
        if answer is False:
            return "Denied by the pre-send hook."
        if isinstance(answer, str) and answer:
            return answer
    return None


def hold(submission: Submission, reason: str, *, detail: str = "", action: str = "") -> None:
    """Set ``submission`` aside: no email, no provider call, until an admin decides."""
    from esp_forms.delivery import log_event

    now = timezone.now()
    submission.held_at = now
    submission.held_reason = reason
    # The sweeper only looks at rows with a due time: a held row has none.
    submission.next_attempt_at = None
    submission.save(update_fields=["held_at", "held_reason", "next_attempt_at", "updated_at"])
    log_event(submission, EventKind.HELD, f"Held for review: {HoldReason(reason).label}. "
                                          f"{detail}".strip(), reason=reason, action=action)
    count_block(submission.form, reason)
    logger.warning("Held submission %s of form %s (%s).", submission.pk,
                   submission.form.form_type, reason)


# --- admin decisions ------------------------------------------------------------------------

def release(queryset: QuerySet[Submission], *, by: str = "") -> int:
    """Hand held submissions on as if they had just passed the gate. The mailbox's counter
    still counts what is sent, but an admin's decision is never held again."""
    from esp_forms import delivery

    count = 0
    # A held row whose personal data was erased (esp_forms_purge) has no one to send to.
    held = queryset.filter(held_at__isnull=False, purged_at__isnull=True)
    for pk in held.values_list("pk", flat=True):
        with transaction.atomic():
            submission = (Submission.objects.select_for_update().select_related("form")
                          .filter(pk=pk, held_at__isnull=False, purged_at__isnull=True)
                          .first())
            if submission is None:
                continue
            reason = submission.held_reason
            action = pending_action(submission, created=True)
            if action in (CONFIRMATION, INVITATION) and \
                    get_setting("MAILBOX_BUDGET") is not None:
                bump(mailbox_key(submission.form.account_id, submission.email),
                     int(get_setting("MAILBOX_BUDGET_WINDOW")))
            submission.held_at = None
            submission.held_reason = ""
            update = ["held_at", "held_reason", "updated_at"]
            if submission.delivery_status == DeliveryStatus.PENDING:
                submission.next_attempt_at = timezone.now()
                update.append("next_attempt_at")
            submission.save(update_fields=update)
            delivery.log_event(submission, EventKind.RELEASED,
                               f"Released from hold by {by or 'an admin'}.", reason=reason)
            delivery.hand_off(submission, created=True)
        count += 1
    return count


def drop(queryset: QuerySet[Submission], *, by: str = "") -> int:
    """Give held submissions up for good: nothing is sent; they read as failed."""
    from esp_forms import delivery

    count = 0
    for pk in queryset.filter(held_at__isnull=False).values_list("pk", flat=True):
        with transaction.atomic():
            submission = (Submission.objects.select_for_update()
                          .filter(pk=pk, held_at__isnull=False).first())
            if submission is None:
                continue
            reason = submission.held_reason
            submission.held_at = None
            submission.held_reason = ""
            submission.delivery_status = DeliveryStatus.FAILED
            submission.next_attempt_at = None
            submission.last_error = (f"Dropped by {by or 'an admin'} after being held "
                                     f"({HoldReason(reason).label if reason else '?'}).")
            submission.save(update_fields=["held_at", "held_reason", "delivery_status",
                                           "next_attempt_at", "last_error", "updated_at"])
            delivery.log_event(submission, EventKind.DROPPED, submission.last_error,
                               reason=reason)
        count += 1
    return count


# --- alert ----------------------------------------------------------------------------------

def alert_form_budget(form_pk: int, limit: int) -> bool:
    """Email the admins that a form went over its hourly budget (after the commit, once per
    form and window: the caller only calls it for the first signup over the budget)."""
    form = SignupForm.objects.filter(pk=form_pk).first()
    if form is None:
        return False
    subject = f"Signup form '{form.form_type}' is over its hourly budget"
    body = (f"More than {limit} signups arrived at the form '{form.title}' ({form.form_type}) "
            f"within the hour. The rest of this hour's signups are stored but held: no "
            f"confirmation email and no provider call go out for them.\n\n"
            f"If this is an attack (list bombing), drop them in the admin: Submissions, "
            f"filter 'held because'. If it is a real rush, release them and raise the form's "
            f"hourly budget.\n")
    if not alerts.send_alert(subject, body):
        return False
    logger.warning("Form %s is over its hourly budget of %s; alert sent.", form.form_type,
                   limit)
    return True
