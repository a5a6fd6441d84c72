"""The outbox: who may work on a stored submission, how that work is recorded, what comes next.

Delivery, opt-in status reads and the retention purge all follow the same three steps, so that
no database lock or transaction is ever held while a provider is being called:

1. **Claim.** One short committed statement gives due rows a lease (``lease_owner``,
   ``lease_until``); on PostgreSQL the candidates are picked with ``FOR UPDATE SKIP LOCKED``, so
   claimers never wait on each other. A row with an unexpired lease belongs to its owner alone.
2. **Work** outside any transaction. Before a provider call that changes something, the attempt
   is committed (:func:`start_attempt`), so a call whose outcome was lost (the worker or the
   database died) is known and resolved by reading the provider before anything is sent again.
3. **Finish** in one short transaction guarded by the lease (:func:`finish`): the row's new
   values and its events together, side effects (signals, alert mails, enqueues) after commit.
   A finish whose lease was lost records nothing.

A lost worker's lease runs out after :func:`lease_seconds` and the row is claimed again. Each
row of a batch is worked on in isolation (:func:`for_each`): one that raises is logged, backed
off and skipped.

This module also owns the event log (:func:`log_event`) and enqueueing (:func:`send_task`,
:func:`enqueue`, :func:`submission_stored`). It imports neither the delivery, the opt-in nor
the task module: tasks are enqueued by name through Celery's registry and pooled producer.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from esp_forms import formcache, prepared
from esp_forms.conf import get_setting
from esp_forms.models import DoubleOptIn, Submission, SubmissionEvent
from esp_forms.statuses import DeliveryStatus, OptinStatus

logger = logging.getLogger("esp_forms.outbox")

_TABLE = Submission._meta.db_table

# Task names (esp_forms.tasks registers them); enqueued by name so that nothing here imports
# the task module, which imports the modules that import this one.
DELIVER_TASK = "esp_forms.deliver_submission"
CONFIRMATION_TASK = "esp_forms.send_confirmation"
REFRESH_TASK = "esp_forms.refresh_optin"

# Errors that mean the database itself is gone: they end a batch instead of being pinned on
# one row (which could not be backed off anyway).
INFRASTRUCTURE_ERRORS = (InterfaceError, OperationalError)


# --- leases -----------------------------------------------------------------------------------

def lease_seconds() -> float:
    """How long a claim lasts. Longer than the slowest provider exchange one claim makes (up to
    three calls, each bounded by the connect and read timeouts) plus a margin, so a live worker
    never loses its row to another one mid-call."""
    configured = get_setting("LEASE_SECONDS")
    if configured:
        return float(configured)
    call = float(get_setting("CONNECT_TIMEOUT")) + float(get_setting("READ_TIMEOUT"))
    return 3 * call + 10


def new_owner() -> str:
    return uuid.uuid4().hex


def _free(now: Any, owner: str) -> Q:
    # The owner may claim its own row again: a task retried by Celery after a database error
    # keeps its task id, so it resumes its lease instead of waiting for it to run out.
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner)


def skip_locked() -> bool:
    return bool(connection.features.has_select_for_update_skip_locked)


def _locked(queryset: QuerySet[Submission]) -> QuerySet[Submission]:
    """Row lock for the short read-modify-write transactions (webhooks, confirmation links)."""
    if skip_locked():
        return queryset.select_for_update(skip_locked=True, of=("self",))
    # SQLite serialises writers itself; the demo runs one worker.
    return queryset.select_for_update()


def claim(queryset: QuerySet[Submission], *, owner: str, limit: int,
          order_by: Iterable[str] = ()) -> list[Any]:
    """Lease up to ``limit`` rows of ``queryset`` to ``owner``; returns their ids, committed."""
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds())
    free = _free(now, owner)
    with transaction.atomic():
        candidates = queryset.filter(free).order_by(*order_by)
        if skip_locked():
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        Submission.objects.filter(free, pk__in=ids).update(lease_owner=owner,
                                                           lease_until=until)
        if not skip_locked():
            # Without row locks another claimer may have won some rows between the two
            # statements (SQLite serialises them, others might not): keep only ours.
            ids = list(Submission.objects.filter(pk__in=ids, lease_owner=owner,
                                                 lease_until=until)
                       .values_list("pk", flat=True))
    return ids


@functools.cache
def _row_columns() -> tuple[str, ...]:
    return tuple(connection.ops.quote_name(f.column) for f in Submission._meta.concrete_fields)


@functools.cache
def _row_converters(vendor: str) -> tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]:
    """What the ORM applies to each column it reads (JSON decoding, ...), per position."""
    found = []
    for index, field in enumerate(Submission._meta.concrete_fields):
        column = field.get_col(_TABLE)
        convert = tuple(connection.ops.get_db_converters(column)
                        + column.get_db_converters(connection))
        if convert:
            found.append((index, convert, column))
    return tuple(found)


def _row_to_submission(row: Sequence[Any]) -> Submission:
    """A Submission from a row of _row_columns(), as the ORM would have loaded it."""
    fields = Submission._meta.concrete_fields
    values = list(row[:len(fields)])
    for index, convert, column in _row_converters(connection.vendor):
        for converter in convert:
            values[index] = converter(values[index], column, connection)
    return Submission.from_db(connection.alias, [f.attname for f in fields], values)


def claim_one(pk: Any, *, owner: str, open_attempt: bool = False) -> Submission | None:
    """Lease one row (one UPDATE) and load it with its form and account; None when another
    owner holds it or it does not exist.

    ``open_attempt`` (delivery, on PostgreSQL): when no earlier attempt is open, the same
    statement also commits the attempt :func:`start_attempt` would (count and time), so that
    a delivery makes one round trip less; :func:`release` takes it back if no call follows.
    The row comes back as it was before the claim, so an earlier attempt whose outcome is
    unknown still shows.
    """
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds())
    if connection.vendor == "postgresql":
        # One round trip: the claim returns the row; its form, account and fields come from
        # the process's form cache.
        free = "(lease_until IS NULL OR lease_until < %s OR lease_owner = %s)"
        columns = ", ".join(f"s.{column}" for column in _row_columns())
        if open_attempt:
            opens = "prior.attempt_started_at IS NULL"
            statement = (
                f"WITH prior AS (SELECT id, attempts, attempt_started_at, last_attempt_at "
                f"FROM {_TABLE} WHERE id = %s AND {free} FOR UPDATE) "
                f"UPDATE {_TABLE} AS s SET lease_owner = %s, lease_until = %s, "
                f"attempts = CASE WHEN {opens} THEN s.attempts + 1 ELSE s.attempts END, "
                f"attempt_started_at = CASE WHEN {opens} THEN %s ELSE s.attempt_started_at END, "
                f"last_attempt_at = CASE WHEN {opens} THEN %s ELSE s.last_attempt_at END "
                f"FROM prior WHERE s.id = prior.id RETURNING {columns}, ({opens}), "
                "prior.attempts, prior.attempt_started_at, prior.last_attempt_at")
            params = [pk, now, owner, owner, until, now, now]
        else:
            statement = (f"UPDATE {_TABLE} AS s SET lease_owner = %s, lease_until = %s "
                         f"WHERE id = %s AND {free} RETURNING {columns}")
            params = [owner, until, pk, now, owner]
        with prepared.cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone()
        if row is None:
            return None
        submission = _row_to_submission(row)
        opened, *prior = row[len(_row_columns()):] or (False,)
        if opened:
            # The instance shows the row as it was; start_attempt or release moves it on.
            submission._opened_attempt = now
            submission.attempts, submission.attempt_started_at, submission.last_attempt_at = prior
        form = formcache.form_by_id(submission.form_id)
        if form is not None:
            submission.form = form
        return submission
    won = Submission.objects.filter(_free(now, owner), pk=pk).update(lease_owner=owner,
                                                                     lease_until=until)
    if not won:
        return None
    return (Submission.objects.select_related("form__account").prefetch_related("form__fields")
            .filter(pk=pk).first())


def start_attempt(submission: Submission, *, owner: str) -> bool:
    """Commit "a provider call starts now" before making it; False when the lease was lost."""
    opened = getattr(submission, "_opened_attempt", None)
    submission._opened_attempt = None
    now = timezone.now()
    if opened is not None and (now - opened).total_seconds() < lease_seconds() / 2:
        # The claim committed it moments ago, under a lease far from running out.
        now, won = opened, 1
    else:
        # Plain SQL: compiling the equivalent ORM update cost more than its round trip. The
        # count is absolute (the lease keeps others off the row); the claim may have
        # counted this attempt already.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_TABLE} SET attempts = %s, attempt_started_at = %s, "
                "last_attempt_at = %s WHERE id = %s AND lease_owner = %s",
                [submission.attempts + 1, now, now,
                 Submission._meta.pk.get_db_prep_value(submission.pk, connection), owner])
            won = cursor.rowcount
    if won:
        submission.attempts += 1
        submission.attempt_started_at = submission.last_attempt_at = now
    return bool(won)


def _if_optin_unchanged(read: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as expressions that write each value only where ``optin_status`` is still
    ``read`` and keep the row's own value otherwise."""
    return {name: Case(When(optin_status=read,
                            then=Value(value, output_field=Submission._meta.get_field(name))),
                       default=F(name)) for name, value in values.items()}


def _guard(submission: Submission, owner: str) -> QuerySet[Submission]:
    """The row while ``owner`` holds its lease and, unless it was erased when read, while
    its personal data has not been erased (an outcome recorded after an erasure would put
    back what the provider quoted of the person)."""
    rows = Submission.objects.filter(pk=submission.pk, lease_owner=owner)
    if submission.purged_at is None:
        rows = rows.filter(purged_at__isnull=True)
    return rows


def finish(submission: Submission, *, owner: str, fields: dict[str, Any] | None = None,
           events: Iterable[tuple[str, str, dict[str, Any]]] = (),
           after_commit: Iterable[Callable[[], Any]] = (),
           optin_fields: dict[str, Any] | None = None) -> bool:
    """Record an outcome: the row's ``fields`` and its ``events`` (kind, message, data) in one
    transaction, releasing the lease and closing the attempt (unless ``fields`` keeps
    ``attempt_started_at``); ``after_commit`` callables run
    once it committed. False (nothing recorded) when ``owner`` no longer holds the lease, or
    the row's personal data was erased meanwhile (the lease is given back then).

    ``optin_fields`` were decided from the ``optin_status`` the worker read: no lock is held
    during the provider call, so a webhook or a click may have moved the row meanwhile. They
    are written only where ``optin_status`` is still the value read, never over a newer one.
    """
    values = {"lease_owner": "", "lease_until": None, "attempt_started_at": None,
              "updated_at": timezone.now(), **(fields or {})}
    events = list(events)
    after_commit = list(after_commit)
    if events and connection.vendor == "postgresql" and not connection.in_atomic_block:
        written = _finish_in_one_statement(submission, owner, values, optin_fields or {},
                                           events)
        if written is None:
            _not_recorded(submission, owner)
            return False
        for name, value in {**values, **written}.items():
            setattr(submission, name, value)
        for callback in after_commit:
            callback()  # the statement committed on its own
        return True
    if optin_fields:
        values.update(_if_optin_unchanged(submission.optin_status, optin_fields))
    with transaction.atomic():
        won = _guard(submission, owner).update(**values)
        if not won:
            _not_recorded(submission, owner)
            return False
        rows = [SubmissionEvent(submission_id=submission.pk, kind=kind, message=message,
                                data=data) for kind, message, data in events]
        if rows:
            SubmissionEvent.objects.bulk_create(rows)
        for callback in after_commit:
            transaction.on_commit(callback)
    _record_values(submission, values)
    return True


def _record_values(submission: Submission, values: dict[str, Any]) -> None:
    """Put what was written on the instance; conditional values are read back."""
    computed = [name for name, value in values.items() if hasattr(value, "resolve_expression")]
    for name, value in values.items():
        if name not in computed:
            setattr(submission, name, value)
    if computed:
        submission.refresh_from_db(fields=computed)


def _not_recorded(submission: Submission, owner: str) -> None:
    # Erased meanwhile: the outcome is dropped, and the lease given back at once.
    if Submission.objects.filter(pk=submission.pk, lease_owner=owner).update(
            lease_owner="", lease_until=None, attempt_started_at=None):
        logger.info("Submission %s: its personal data was erased during the attempt; the "
                    "outcome was not recorded.", submission.pk)
        return
    logger.warning("Submission %s: the lease of %s ran out before its outcome was "
                   "recorded; another claim owns the row now.", submission.pk, owner)


def _finish_in_one_statement(submission: Submission, owner: str, values: dict[str, Any],
                             optin_fields: dict[str, Any],
                             events: list[tuple[str, str, dict[str, Any]]]
                             ) -> dict[str, Any] | None:
    """PostgreSQL: the guarded UPDATE and the event INSERTs as one statement (one round trip,
    atomic on its own): the events are written only for a row the UPDATE matched. Returns
    ``optin_fields`` as written (each kept where ``optin_status`` moved meanwhile), or None
    when no row matched.

    Written out by hand: every delivery records through here, and compiling the same UPDATE
    with the ORM's Case/When cost more than the statement's round trip."""
    meta, quote = Submission._meta, connection.ops.quote_name
    sets, params = [], []
    for name, value in values.items():
        field = meta.get_field(name)
        sets.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, value in optin_fields.items():
        field = meta.get_field(name)
        column = quote(field.column)
        sets.append(f"{column} = CASE WHEN optin_status = %s THEN %s ELSE {column} END")
        params += [submission.optin_status, field.get_db_prep_save(value, connection)]
    where = "id = %s AND lease_owner = %s"
    params += [submission.pk, owner]
    if submission.purged_at is None:
        where += " AND purged_at IS NULL"  # see _guard
    returned = "".join(f", {quote(meta.get_field(name).column)}" for name in optin_fields)
    data_field = SubmissionEvent._meta.get_field("data")
    now = timezone.now()
    rows = []
    params.append(submission.pk)
    for kind, message, data in events:
        rows.append("(%s, %s, %s::jsonb, %s::timestamptz)")
        params += [kind, message, data_field.get_db_prep_value(data, connection), now]
    # A data-modifying WITH runs whether or not the outer query reads it.
    statement = (
        f"WITH won AS (UPDATE {_TABLE} SET {', '.join(sets)} WHERE {where} "
        f"RETURNING 1 AS won{returned}), "
        f"logged AS (INSERT INTO {SubmissionEvent._meta.db_table} "
        "(submission_id, kind, message, data, created_at) "
        "SELECT %s, e.kind, e.message, e.data, e.created_at FROM won, "
        f"(VALUES {', '.join(rows)}) AS e(kind, message, data, created_at)) "
        f"SELECT won{returned} FROM won")
    with prepared.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip(optin_fields, row[1:], strict=True))


def release(submission: Submission, *, owner: str, **fields: Any) -> bool:
    """Give the row back (with ``fields`` changed) without recording an attempt outcome.

    ``next_attempt_at=None`` ("nothing to deliver") was decided on the worker's copy: a row
    confirmed meanwhile (a click while this lease was held, whose own task found the row
    leased) and still pending stays due, so the sweeper delivers it."""
    now = timezone.now()
    values = {**fields, "lease_owner": "", "lease_until": None, "updated_at": now}
    if getattr(submission, "_opened_attempt", None) is not None:
        # The claim opened an attempt and no call followed: take it back, or the next claim
        # would take it for a call whose outcome was lost.
        values.update(attempts=submission.attempts, attempt_started_at=None,
                      last_attempt_at=submission.last_attempt_at)
        submission._opened_attempt = None
    if "next_attempt_at" in values and values["next_attempt_at"] is None:
        values["next_attempt_at"] = Case(
            When(optin_status=OptinStatus.CONFIRMED, delivery_status=DeliveryStatus.PENDING,
                 then=Coalesce(F("next_attempt_at"), Value(now))),
            default=Value(None, output_field=Submission._meta.get_field("next_attempt_at")))
    won = Submission.objects.filter(pk=submission.pk, lease_owner=owner).update(**values)
    _record_values(submission, values)
    return bool(won)


def for_each(ids: Iterable[Any], work: Callable[[Any], str],
             back_off: Callable[[Any, Exception], None], counts: dict[str, int] | None = None,
             *, stop: Callable[[str], bool] | None = None) -> dict[str, int]:
    """Run ``work(pk)`` for each claimed row, in isolation: a row that raises is logged, backed
    off (``back_off(pk, error)``) and counted as ``error``; the others go on. Only a database
    that is gone ends the batch. ``stop(outcome)`` True ends it early (e.g. a rate limit)."""
    counts = {} if counts is None else counts
    for pk in ids:
        try:
            outcome = str(work(pk))
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as err:
            logger.exception("Submission %s raised; backed off, the batch goes on.", pk)
            outcome = "error"
            try:
                back_off(pk, err)
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception:
                logger.exception("Submission %s: could not back off either.", pk)
        counts[outcome] = counts.get(outcome, 0) + 1
        if stop is not None and stop(outcome):
            break
    return counts


# --- events -----------------------------------------------------------------------------------

def log_event(submission: Submission, kind: str, message: str = "", **data: Any
              ) -> SubmissionEvent:
    return SubmissionEvent.objects.create(submission=submission, kind=kind, message=message,
                                          data=data)


# --- enqueueing -------------------------------------------------------------------------------

# Seconds a publish waits for a free producer of the Celery app's pool; past that the row stays
# pending for the sweeper rather than keeping the visitor waiting.
PRODUCER_WAIT = 5.0


def _publish(task: Any, args: tuple[Any, ...], options: dict[str, Any]) -> None:
    """Publish through a producer taken from the Celery app's pool and given back at once.

    A producer kept per thread would be lost with its thread: threaded servers (runserver,
    gunicorn gthread) end threads all the time, and after ``broker_pool_limit`` of them every
    later publish would wait forever for a free producer.
    """
    pool = getattr(getattr(task, "app", None), "producer_pool", None)
    if pool is None:
        task.apply_async(args, **options)
        return
    with pool.acquire(block=True, timeout=PRODUCER_WAIT) as producer:
        task.apply_async(args, producer=producer, **options)


def send_task(task: Any, submission_id: Any, countdown: float | None = None, *,
              owner: str | None = None) -> bool:
    """Queue a task for one submission; False (and a warning) when the broker is unreachable,
    in which case the sweeper finds the row later: nothing is lost.

    ``apply_async`` publishes through the Celery app's producer pool, so a web process reuses
    one broker connection instead of opening one per request.
    """
    # What monitoring (Flower, the worker's log) shows for the arguments, written here: Celery's
    # generic saferepr of them cost a tenth of the whole publish on the submit path.
    options: dict[str, Any] = {"argsrepr": f"('{submission_id}',)", "kwargsrepr": "{}"}
    if owner:
        # The task takes over this claim instead of waiting for it to run out.
        options["kwargs"] = {"owner": owner}
        options["kwargsrepr"] = f"{{'owner': '{owner}'}}"
    if countdown:
        options["countdown"] = countdown
    queue = get_setting("CELERY_QUEUE")
    if queue:
        options["queue"] = queue
    try:
        _publish(task, (str(submission_id),), options)
        return True
    except Exception:
        logger.warning("Could not queue %s for submission %s; the sweeper will pick it up.",
                       getattr(task, "name", task), submission_id, exc_info=True)
        return False


def task_named(name: str) -> Any:
    """The registered task ``name`` (esp_forms.tasks is imported once, when first needed)."""
    from celery import current_app

    if name not in current_app.tasks:
        from importlib import import_module

        import_module("esp_forms.tasks")
    return current_app.tasks[name]


def enqueue(name: str, submission_id: Any, countdown: float | None = None) -> bool:
    return send_task(task_named(name), submission_id, countdown=countdown)


def enqueue_on_commit(name: str, submission_id: Any) -> None:
    transaction.on_commit(partial(enqueue, name, submission_id))


def submission_stored(submission: Submission, *, created: bool,
                      mailbox_count: int | None = None) -> None:
    """Call inside the transaction that stored (or collapsed into) ``submission``.

    Queues the next step after commit: the confirmation email for local double opt-in, the
    provider delivery otherwise. If the broker is down the row stays pending for the sweeper.
    The abuse gate comes first: a held signup gets nothing queued until an admin releases it
    (``mailbox_count``: the gate's mailbox count, when the store took it with the INSERT).
    """
    from esp_forms import abuse

    if abuse.admit(submission, created=created, counted=mailbox_count):
        hand_off(submission, created=created)


def hand_off(submission: Submission, *, created: bool) -> None:
    """Queue the next step for ``submission`` after commit (no gate: see submission_stored)."""
    if submission.form.double_opt_in == DoubleOptIn.LOCAL:
        if submission.optin_status == OptinStatus.UNCONFIRMED:
            enqueue_on_commit(CONFIRMATION_TASK, submission.pk)
    elif created:
        enqueue_on_commit(DELIVER_TASK, submission.pk)

