"""What happened to signups over time and how healthy the queue is, in a few aggregate queries.

Read by the admin dashboard (``esp_forms.dashboard``) and the Prometheus endpoint
(``esp_forms.metrics``): both show the same numbers, computed from the database when asked, so
they are right however many web and worker processes there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Case, CharField, Count, Min, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from esp_forms.models import (
    DeliveryStatus,
    EventKind,
    OptinStatus,
    ProviderAccount,
    SignupForm,
    SpamCount,
    Submission,
    SubmissionEvent,
)


@dataclass(frozen=True)
class Outcome:
    """Where a signup ended up. ``when`` selects its submissions; the first match wins."""

    key: str
    label: Promise
    colour: str
    when: Q | None  # None: not a submission state (spam is counted in SpamCount)


# The outcomes in the order they are tested (and stacked, bottom up). A new state is one more
# line here: the dashboard's charts, legends and tables and the metrics endpoint follow it.
# Colours come from the Okabe-Ito palette, distinguishable with the common colour-vision
# deficiencies; every chart also names each outcome in text.
OUTCOMES: tuple[Outcome, ...] = (
    Outcome("failed", _("failed"), "#D55E00", Q(delivery_status=DeliveryStatus.FAILED)),
    Outcome("confirmed", _("confirmed"), "#009E73", Q(optin_status=OptinStatus.CONFIRMED)),
    Outcome("delivered", _("delivered"), "#0072B2", Q(delivery_status=DeliveryStatus.DELIVERED)),
    # Held by the abuse gate (esp_forms.abuse): pending, but waiting for an admin, not a worker.
    Outcome("held", _("held"), "#E69F00",
            Q(delivery_status=DeliveryStatus.PENDING, held_at__isnull=False)),
    Outcome("pending", _("pending"), "#8A94A3", Q(delivery_status=DeliveryStatus.PENDING)),
    Outcome("spam", _("spam"), "#CC79A7", None),
)
SUBMISSION_OUTCOMES = tuple(o for o in OUTCOMES if o.when is not None)
# A submission matching none of the above (a state added without an outcome) still counts.
OTHER = "pending"


def outcome_expression() -> Case:
    return Case(*[When(o.when, then=Value(o.key)) for o in SUBMISSION_OUTCOMES],
                default=Value(OTHER), output_field=CharField())


@dataclass
class FormSeries:
    """One form's signups per day and outcome over the period."""

    form: SignupForm
    days: list[date]
    counts: dict[str, list[int]]  # outcome key -> one count per day
    # Confirmation rate over the period: confirmed / (confirmed + unconfirmed + expired), as
    # in the form list; None when nobody was asked to confirm.
    asked: list[int] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {key: sum(values) for key, values in self.counts.items()}

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def confirmation_rate(self) -> float | None:
        asked = sum(self.asked)
        return sum(self.confirmed) / asked if asked else None

    def daily_confirmation_rate(self) -> list[float | None]:
        return [c / a if a else None for c, a in zip(self.confirmed, self.asked, strict=True)]

    def day_totals(self) -> list[int]:
        return [sum(values[i] for values in self.counts.values()) for i in range(len(self.days))]


def period(days: int, today: date | None = None) -> list[date]:
    """The last ``days`` local dates, oldest first, today included."""
    today = today or timezone.localdate()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def signups_per_day(forms: QuerySet[SignupForm] | list[SignupForm], days: int = 14,
                    today: date | None = None) -> list[FormSeries]:
    """Per form, signups per day by outcome: three queries whatever the number of forms/days
    (submissions grouped by form, day and outcome; spam grouped by form and day; the opt-in
    counts behind the confirmation rate)."""
    forms = list(forms)
    dates = period(days, today)
    index = {day: i for i, day in enumerate(dates)}
    series = {f.pk: FormSeries(f, dates, {o.key: [0] * days for o in OUTCOMES},
                               asked=[0] * days, confirmed=[0] * days) for f in forms}
    since = _start_of(dates[0])
    ids = list(series)

    rows = (Submission.objects.filter(form_id__in=ids, created_at__gte=since)
            .annotate(day=TruncDate("created_at"), outcome=outcome_expression())
            .values("form_id", "day", "outcome").annotate(n=Count("pk")).order_by())
    for row in rows:
        if row["day"] in index:
            series[row["form_id"]].counts[row["outcome"]][index[row["day"]]] += row["n"]

    spam = (SpamCount.objects.filter(form_id__in=ids, day__gte=dates[0],
                                     reason__in=SpamCount.SPAM_REASONS)
            .values("form_id", "day").annotate(n=Sum("count")).order_by())
    for row in spam:
        if row["day"] in index:
            series[row["form_id"]].counts["spam"][index[row["day"]]] += row["n"]

    optin = (Submission.objects.filter(form_id__in=ids, created_at__gte=since)
             .annotate(day=TruncDate("created_at")).values("form_id", "day").order_by()
             .annotate(confirmed=Count("pk", filter=Q(optin_status=OptinStatus.CONFIRMED)),
                       asked=Count("pk", filter=Q(optin_status__in=[
                           OptinStatus.CONFIRMED, OptinStatus.UNCONFIRMED,
                           OptinStatus.EXPIRED]))))
    for row in optin:
        if row["day"] in index:
            series[row["form_id"]].confirmed[index[row["day"]]] += row["confirmed"]
            series[row["form_id"]].asked[index[row["day"]]] += row["asked"]
    return [series[f.pk] for f in forms]


@dataclass
class QueueHealth:
    now: datetime
    pending: int = 0
    oldest_pending_at: datetime | None = None
    retries_due: int = 0
    failures_last_hour: int = 0
    poll_backlog: int = 0
    failing_accounts: list[ProviderAccount] = field(default_factory=list)

    @property
    def oldest_pending_seconds(self) -> float:
        if self.oldest_pending_at is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_pending_at).total_seconds())


def queue_health(now: datetime | None = None) -> QueueHealth:
    """Three queries: the pending/polling aggregates, last hour's failures, failing accounts."""
    now = now or timezone.now()
    # Held signups wait for an admin, not for a worker: they are no delivery backlog.
    pending = Q(delivery_status=DeliveryStatus.PENDING, held_at__isnull=True)
    agg = Submission.objects.aggregate(
        pending=Count("pk", filter=pending),
        oldest=Min("created_at", filter=pending),
        # Retries whose time has come but that no worker has taken yet.
        retries_due=Count("pk", filter=pending & Q(attempts__gt=0, next_attempt_at__lte=now)),
        # Delivered contacts whose opt-in status read is overdue.
        poll_backlog=Count("pk", filter=Q(optin_status=OptinStatus.UNCONFIRMED,
                                          delivery_status=DeliveryStatus.DELIVERED,
                                          next_optin_check_at__lte=now)),
    )
    failures = SubmissionEvent.objects.filter(kind=EventKind.FAILED,
                                              created_at__gte=now - timedelta(hours=1)).count()
    failing = list(ProviderAccount.objects.exclude(config_error="").order_by("name"))
    return QueueHealth(now=now, pending=agg["pending"], oldest_pending_at=agg["oldest"],
                       retries_due=agg["retries_due"], failures_last_hour=failures,
                       poll_backlog=agg["poll_backlog"], failing_accounts=failing)
