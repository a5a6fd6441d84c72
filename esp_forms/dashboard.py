"""The admin dashboard: signups per day by outcome, the confirmation rate, and queue health.

Served by ``SignupFormAdmin`` at ``/admin/esp_forms/signupform/dashboard/`` (linked from the
app's admin index and the form list) to staff who may view signup forms. A bounded number of
queries whatever the number of forms, days or submissions (see ``esp_forms.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from esp_forms import charts, stats
from esp_forms.models import SignupForm

PERIODS = (7, 14, 30, 90)
DEFAULT_PERIOD = 14
# Oldest pending submission older than this: something is not moving (no worker, no beat,
# a provider down). Matches the alert suggested in docs/operations.md.
STALE_PENDING = timedelta(minutes=10)
RATE_COLOUR = "#009E73"


@dataclass
class HealthItem:
    key: str
    label: str
    value: str
    ok: bool
    note: str
    url: str = ""


def human_age(seconds: float) -> str:
    if seconds < 120:
        return ngettext("%(n)d second", "%(n)d seconds", int(seconds)) % {"n": int(seconds)}
    if seconds < 2 * 3600:
        minutes = int(seconds // 60)
        return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
    if seconds < 2 * 86400:
        hours = int(seconds // 3600)
        return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    days = int(seconds // 86400)
    return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}


def health_items(health: stats.QueueHealth, urls: dict[str, str]) -> list[HealthItem]:
    age = health.oldest_pending_seconds
    accounts = health.failing_accounts
    return [
        HealthItem("oldest_pending", _("Oldest pending"),
                   human_age(age) if health.pending else "—",
                   age < STALE_PENDING.total_seconds(),
                   ngettext("%(n)d submission waiting", "%(n)d submissions waiting",
                            health.pending) % {"n": health.pending}, urls["pending"]),
        HealthItem("retries_due", _("Retries due"), str(health.retries_due),
                   health.retries_due == 0,
                   _("Waiting for a worker") if health.retries_due else _("None waiting"),
                   urls["pending"]),
        HealthItem("failures_last_hour", _("Failures in the last hour"),
                   str(health.failures_last_hour), health.failures_last_hour == 0,
                   _("See each submission's last error") if health.failures_last_hour
                   else _("No failures"), urls["failed"]),
        HealthItem("failing_accounts", _("Accounts with configuration errors"),
                   str(len(accounts)), not accounts,
                   ", ".join(a.name for a in accounts) if accounts else _("All accounts work"),
                   urls["accounts"]),
        HealthItem("poll_backlog", _("Opt-in polling backlog"), str(health.poll_backlog),
                   health.poll_backlog == 0,
                   _("Status reads overdue") if health.poll_backlog else _("Up to date"),
                   urls["unconfirmed"]),
    ]


def form_panel(series: stats.FormSeries) -> dict[str, Any]:
    form = series.form
    outcomes = [charts.Series(str(o.label), o.colour, series.counts[o.key])
                for o in stats.OUTCOMES]
    totals = series.totals
    first, last = charts.day_label(series.days[0]), charts.day_label(series.days[-1])
    summary = ", ".join(f"{totals[o.key]} {o.label}" for o in stats.OUTCOMES)
    bars = charts.stacked_bars(
        series.days, outcomes,
        title=_("Signups per day for %(form)s") % {"form": form.form_type},
        desc=_("%(first)s to %(last)s: %(summary)s.") % {"first": first, "last": last,
                                                           "summary": summary})
    rate = series.confirmation_rate
    rate_chart = None
    if rate is not None:
        rate_chart = charts.line(
            series.days, series.daily_confirmation_rate(),
            title=_("Confirmation rate per day for %(form)s") % {"form": form.form_type},
            desc=_("%(first)s to %(last)s: %(rate)s of the people asked confirmed.") % {
                "first": first, "last": last, "rate": f"{rate:.0%}"},
            colour=RATE_COLOUR, label=_("confirmed"))
    return {
        "form": form,
        "bars": bars,
        "rate": rate,
        "rate_percent": None if rate is None else round(rate * 100),
        "rate_chart": rate_chart,
        "asked": sum(series.asked),
        "confirmed": sum(series.confirmed),
        "total": series.total,
        "legend": [{"key": o.key, "label": o.label, "colour": o.colour, "total": totals[o.key]}
                   for o in stats.OUTCOMES],
        "rows": [{"day": day, "values": [series.counts[o.key][i] for o in stats.OUTCOMES],
                  "total": day_total}
                 for i, (day, day_total) in enumerate(zip(series.days, series.day_totals(),
                                                          strict=True))],
    }


def context(request: HttpRequest, urls: dict[str, str]) -> dict[str, Any]:
    try:
        days = int(request.GET.get("days", DEFAULT_PERIOD))
    except ValueError:
        days = DEFAULT_PERIOD
    if days not in PERIODS:
        days = DEFAULT_PERIOD
    forms = SignupForm.objects.order_by("-is_active", "form_type")
    health = stats.queue_health()
    return {
        "days": days,
        "periods": PERIODS,
        "outcomes": stats.OUTCOMES,
        "health": health_items(health, urls),
        "panels": [form_panel(s) for s in stats.signups_per_day(forms, days)],
    }
