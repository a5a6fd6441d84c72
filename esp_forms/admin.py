"""Admin for provider accounts, signup forms and what visitors submitted.

Submissions hold personal data and a consent proof, so they are read-only here: staff can look,
retry, poll and resend, but never edit what a person typed or add a submission by hand.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Case, Count, F, FloatField, Q, QuerySet, Sum, When
from django.db.models.functions import Cast
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.timezone import localdate, localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from esp_forms import dashboard
from esp_forms.conf import site_url
from esp_forms.models import (
    DEFAULT_FIELD_LABELS,
    DeliveryStatus,
    FieldKind,
    FormField,
    HoldReason,
    OptinStatus,
    Provider,
    ProviderAccount,
    SandboxContact,
    SignupForm,
    SpamCount,
    Submission,
    SubmissionEvent,
)
from esp_forms.views.signup import render_signup_form

# The form page sums its spam counts over this many days (today included).
SPAM_SUMMARY_DAYS = 7
ADMIN_MEDIA = forms.Media(css={"all": ["esp_forms/admin.css"]}, js=["esp_forms/admin.js"])


def _warning(text: Any) -> SafeString:
    return format_html('<div class="esp-forms-warning" role="alert">{}</div>', text)


def _badge(value: str, label: str) -> SafeString:
    return format_html('<span class="esp-forms-badge esp-forms-badge--{}">{}</span>', value, label)


# --- provider accounts -----------------------------------------------------------------------


class WriteOnlyField(forms.CharField):
    """A secret typed in but never sent back to the browser.

    Blank means "keep what is stored", so the field only counts as changed when something was
    typed; otherwise every save would log "Changed API key" without a change.
    """

    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


def _https_by_default(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    # Django 6 assumes https for URLs typed without a scheme; opt in now (and stay quiet).
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class ProviderAccountForm(forms.ModelForm):
    api_key = WriteOnlyField(
        label=_("API key"), required=False, max_length=255,
        help_text=ProviderAccount._meta.get_field("api_key").help_text,
    )

    class Meta:
        model = ProviderAccount
        fields = ["name", "provider", "api_key", "api_base_url", "api_language",
                  "rate_limit_per_minute", "is_active"]
        formfield_callback = _https_by_default

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.api_key:
            self.fields["api_key"].help_text = format_html(
                "{} <strong>{}</strong>. {}",
                _("Stored key:"), self.instance.masked_api_key,
                _("Leave blank to keep it; type a new key to replace it."),
            )

    def clean_api_key(self) -> str:
        key = self.cleaned_data["api_key"]
        # The instance still holds the stored key here: the form's values are copied onto it
        # only after clean(), so a blank field keeps the old key and the model's own clean()
        # still sees a key for eSputnik/UniSender.
        if not key and self.instance.pk:
            return self.instance.api_key
        return key


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "provider", "is_active", "rate_limit", "form_count",
                    "masked_api_key", "has_problem"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name"]
    readonly_fields = ["masked_api_key", "config_problem", "webhook_setup", "created_at",
                       "updated_at"]

    @property
    def media(self) -> forms.Media:
        return super().media + ADMIN_MEDIA

    def get_fieldsets(self, request: HttpRequest, obj: ProviderAccount | None = None) -> list:
        fieldsets: list = []
        if obj is not None and obj.config_error:
            fieldsets.append((_("Configuration problem"), {"fields": ["config_problem"]}))
        fieldsets.append((None, {"fields": ["name", "provider", "is_active"]}))
        fieldsets.append((_("API access"), {"fields": ["api_key", "api_base_url", "api_language",
                                                       "rate_limit_per_minute"]}))
        if obj is not None:
            fieldsets.append((_("Webhook"), {"fields": ["webhook_setup"]}))
            fieldsets.append((_("History"), {"fields": ["created_at", "updated_at"],
                                            "classes": ["collapse"]}))
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProviderAccount]:
        return super().get_queryset(request).annotate(n_forms=Count("forms"))

    @admin.display(description=_("rate limit per minute"), ordering="rate_limit_per_minute")
    def rate_limit(self, obj: ProviderAccount) -> str:
        if obj.rate_limit_per_minute is None:
            return str(_("provider default"))
        return str(obj.rate_limit_per_minute)

    @admin.display(description=_("forms"), ordering="n_forms")
    def form_count(self, obj: ProviderAccount) -> int:
        return obj.n_forms

    @admin.display(description=_("API key"))
    def masked_api_key(self, obj: ProviderAccount) -> str:
        return obj.masked_api_key or "—"

    @admin.display(description=_("problem"))
    def has_problem(self, obj: ProviderAccount) -> SafeString | str:
        if not obj.config_error:
            return "—"
        return _badge("failed", _("failing"))

    @admin.display(description=_("configuration error"))
    def config_problem(self, obj: ProviderAccount) -> SafeString:
        when = (date_format(localtime(obj.config_error_at), "DATETIME_FORMAT")
                if obj.config_error_at else "")
        return _warning(format_html(
            "{}<br><small>{} {}</small>", obj.config_error,
            _("Forms on this account fail until it is fixed. Since:"), when,
        ))

    @admin.display(description=_("webhook URL and secret"))
    def webhook_setup(self, obj: ProviderAccount) -> SafeString:
        if obj.provider == Provider.SANDBOX:
            return format_html("<p>{}</p>", _("The sandbox needs no webhook: its confirmation "
                                              "page updates submissions directly."))
        # No secret in the URL (it would end up in access logs): eSputnik authenticates with
        # HTTP Basic auth or the body's secret, UniSender signs the body with the API key.
        # Older setups with ?secret= in the URL keep working.
        url = site_url() + reverse("esp_forms:webhook", args=[obj.provider, obj.pk])
        rows = [(_("Webhook URL"), url)]
        if obj.provider == Provider.ESPUTNIK:
            from esp_forms.webhooks import BASIC_AUTH_USER

            rows += [(_("Authentication login"), BASIC_AUTH_USER),
                     (_("Authentication password"), obj.webhook_secret)]
            body = json.dumps({"email": "${EmailAddress}", "contactId": "${ContactId}",
                               "secret": obj.webhook_secret})
            rows.append((_("Workflow Webhook block body"), body))
            where = _("eSputnik: Settings → Data export → New data export → Webhook with the URL, "
                      "Authentication on (login and password above) and the statuses "
                      "Unsubscribed and Spam; and the confirmation workflow's Webhook block "
                      "(POST, JSON body above). See docs/providers/esputnik.md.")
        else:
            where = _("UniSender: register the URL once with setHook (events subscribe and "
                      "unsubscribe, event_format=json_post). UniSender signs each call with "
                      "your API key; there is no secret to paste. See "
                      "docs/providers/unisender.md.")
        return format_html(
            '<dl class="esp-forms-copy-list">{}</dl><p class="help">{} {}</p>',
            format_html_join("", "<dt>{}</dt><dd>{}</dd>",
                             ((label, _copyable(text)) for label, text in rows)),
            where,
            _("Confirmation callbacks are only hints: the app reads the contact's status from "
              "the provider before changing anything."),
        )


def _embed_tag(form: SignupForm, base: str) -> str:
    """The one-tag embed (static/esp_forms/embed.js) of a form, with an absolute URL."""
    from django.templatetags.static import static

    script = static("esp_forms/embed.js")
    if "://" not in script:
        script = base + script
    return f'<script src="{script}" data-form="{form.form_type}" async></script>'


def _copyable(text: str) -> SafeString:
    return format_html(
        '<span class="esp-forms-copy"><code>{}</code>'
        ' <button type="button" class="button esp-forms-copy__button" data-esp-copy="{}">{}'
        "</button></span>",
        text, text, _("Copy"),
    )


# --- signup forms ----------------------------------------------------------------------------


class FormFieldFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        emails = [f for f in self.forms
                  if getattr(f, "cleaned_data", None) and not f.cleaned_data.get("DELETE")
                  and f.cleaned_data.get("kind") == FieldKind.EMAIL]
        # A submission has exactly one email address; a missing email field is added on save
        # (SignupFormAdmin.save_related), a second one could never be stored.
        if len(emails) > 1:
            raise ValidationError(_("A form has exactly one field of kind Email."))


class FormFieldInline(admin.TabularInline):
    model = FormField
    formset = FormFieldFormSet
    extra = 0
    fields = ["order", "name", "label", "kind", "required", "provider_field", "choices",
              "help_text"]
    ordering = ["order", "id"]
    # The bundled admin.js adds drag handles that renumber "order"; typing numbers still works.
    classes = ["esp-forms-sortable"]
    # Eight columns must fit the change page without scrolling sideways.
    formfield_overrides = {
        models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 14})},
        models.CharField: {"widget": forms.TextInput(attrs={"size": 11})},
    }


STATUS_COUNTS = {
    "n_pending": Q(submissions__delivery_status=DeliveryStatus.PENDING),
    "n_delivered": Q(submissions__delivery_status=DeliveryStatus.DELIVERED),
    "n_failed": Q(submissions__delivery_status=DeliveryStatus.FAILED),
    "n_unconfirmed": Q(submissions__optin_status=OptinStatus.UNCONFIRMED),
    "n_confirmed": Q(submissions__optin_status=OptinStatus.CONFIRMED),
    "n_expired": Q(submissions__optin_status=OptinStatus.EXPIRED),
}


def annotate_counts(queryset: QuerySet[SignupForm]) -> QuerySet[SignupForm]:
    """Per-form submission counts and confirmation rate, in the same single query.

    Every count filters the one join to submissions, so adding a column never multiplies rows
    (counting over two joins, e.g. fields and submissions, would).
    """
    qs = queryset.annotate(**{name: Count("submissions", filter=cond)
                              for name, cond in STATUS_COUNTS.items()})
    asked = F("n_confirmed") + F("n_unconfirmed") + F("n_expired")
    return qs.annotate(confirmation_rate=Case(
        When(Q(n_confirmed__gt=0) | Q(n_unconfirmed__gt=0) | Q(n_expired__gt=0),
             then=Cast("n_confirmed", FloatField()) / Cast(asked, FloatField())),
        default=None, output_field=FloatField(),
    ))


def _count_column(name: str, label: Any, status_filter: str) -> Any:
    """A list column showing one annotated count, linked to the matching submissions."""

    @admin.display(description=label, ordering=name)
    def column(self: SignupFormAdmin, obj: SignupForm) -> Any:
        value = getattr(obj, name)
        if not value:
            return value
        url = reverse("admin:esp_forms_submission_changelist")
        return format_html('<a href="{}?form__id__exact={}&amp;{}">{}</a>',
                           url, obj.pk, status_filter, value)

    column.__name__ = name
    return column


@admin.register(SignupForm)
class SignupFormAdmin(admin.ModelAdmin):
    inlines = [FormFieldInline]
    list_display = ["form_type", "account_name", "optin_mode", "is_active", "n_pending",
                    "n_delivered", "n_failed", "n_unconfirmed", "n_confirmed", "rate"]
    # No filter sidebar: sites have a handful of forms, and the eleven columns need the width.
    list_select_related = ["account"]
    search_fields = ["form_type", "title", "account__name"]
    readonly_fields = ["provider_note", "overwrite_warning", "embed_snippet", "spam_summary",
                       "preview"]

    n_pending = _count_column("n_pending", _("pending"), "delivery_status__exact=pending")
    n_delivered = _count_column("n_delivered", _("delivered"),
                                "delivery_status__exact=delivered")
    n_failed = _count_column("n_failed", _("failed"), "delivery_status__exact=failed")
    n_unconfirmed = _count_column("n_unconfirmed", _("unconfirmed"),
                                  "optin_status__exact=unconfirmed")
    n_confirmed = _count_column("n_confirmed", _("confirmed"), "optin_status__exact=confirmed")

    @property
    def media(self) -> forms.Media:
        return super().media + ADMIN_MEDIA

    def get_fieldsets(self, request: HttpRequest, obj: SignupForm | None = None) -> list:
        fieldsets: list = [
            (None, {"fields": ["provider_note", "form_type", "title", "description", "account",
                               "is_active", "double_opt_in", "lists"]}),
            (_("eSputnik options"), {
                "fields": ["provider_form_type", "confirmed_group"],
                "description": _("Used only when the form's account is an eSputnik account. "
                                 "Lists above are eSputnik segment (group) names."),
            }),
            (_("UniSender options"), {
                "fields": ["overwrite_warning", "tags", "overwrite"],
                "description": _("Used only when the form's account is a UniSender account. "
                                 "Lists above are UniSender list ids."),
            }),
            (_("Texts"), {"fields": ["submit_label", "success_message",
                                     "already_subscribed_message", "error_message",
                                     "consent_text", "redirect_url"]}),
            (_("Embedding"), {"fields": ["allowed_origins"]}),
        ]
        # Abuse protection (esp_forms.abuse, esp_forms.captcha), before the embedding section
        # whose fields change once the form is saved.
        fieldsets.insert(-1, (_("Abuse protection"), {"fields": ["captcha", "hourly_budget"]}))
        if obj is not None:
            # Both need the saved form_type: the snippet names it and the preview renders it.
            fieldsets[-1][1]["fields"] = ["embed_snippet", "spam_summary", "preview",
                                          "allowed_origins"]
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[SignupForm]:
        return annotate_counts(super().get_queryset(request))

    @admin.display(description=_("account"), ordering="account__name")
    def account_name(self, obj: SignupForm) -> str:
        return obj.account.name

    @admin.display(description=_("double opt-in"), ordering="double_opt_in")
    def optin_mode(self, obj: SignupForm) -> SafeString:
        # The short value, with the long label as a tooltip: the list has many columns.
        return format_html('<span title="{}">{}</span>', obj.get_double_opt_in_display(),
                           obj.double_opt_in)

    @admin.display(description=_("confirm rate"), ordering="confirmation_rate")
    def rate(self, obj: SignupForm) -> str:
        if obj.confirmation_rate is None:
            return "—"
        return f"{obj.confirmation_rate:.0%}"

    @admin.display(description=_("provider"))
    def provider_note(self, obj: SignupForm | None) -> SafeString:
        if obj is None or not obj.pk:
            return format_html("<p>{}</p>", _(
                "Options marked eSputnik or UniSender apply only to forms whose account uses "
                "that provider. Leave the other provider's options at their defaults: saving "
                "refuses UniSender tags or overwrite mode, or an eSputnik formType, on a form "
                "of another provider."))
        account = obj.account
        if account.provider == Provider.SANDBOX:
            text = _("This form delivers to %(account)s, the offline sandbox: it uses none of "
                     "the eSputnik and UniSender options below; leave them at their defaults "
                     "(saving refuses UniSender tags or overwrite mode, or an eSputnik formType).")
        else:
            text = _("This form delivers to %(account)s: the %(provider)s options below "
                     "apply. It uses none of the other provider's options; leave them at their "
                     "defaults (saving refuses UniSender tags or overwrite mode, or an eSputnik "
                     "formType, on a form of another provider).")
        parts = [format_html("<p>{}</p>", text % {
            "account": account.name, "provider": account.get_provider_display()})]
        if not account.is_active:
            parts.append(_warning(_("The account is inactive: nothing is delivered.")))
        if account.config_error:
            parts.append(_warning(format_html("{} {}", _("The account is failing:"),
                                              account.config_error)))
        return format_html_join("", "{}", ((p,) for p in parts))

    @admin.display(description=_("warning"))
    def overwrite_warning(self, obj: SignupForm | None) -> SafeString:
        return _warning(_(
            "Overwrite mode 1 replaces the whole contact: a person already on your other "
            "UniSender lists is removed from them when they sign up here. Keep 2 unless you "
            "really mean it."))

    @admin.display(description=_("embed"))
    def embed_snippet(self, obj: SignupForm) -> SafeString:
        base = site_url()
        tag = '{% load esp_forms %}{% esp_form "' + obj.form_type + '" %}'
        rows = [
            (_("Django template"), tag),
            (_("Form page"), base + reverse("esp_forms:form", args=[obj.form_type])),
            (_("JSON schema (GET)"), base + reverse("esp_forms:api_form", args=[obj.form_type])),
            (_("JSON submit (POST)"),
             base + reverse("esp_forms:api_submit", args=[obj.form_type])),
            (_("Any other site (add its origin to the allowed origins)"), _embed_tag(obj, base)),
        ]
        return format_html('<dl class="esp-forms-copy-list">{}</dl>', format_html_join(
            "", "<dt>{}</dt><dd>{}</dd>", ((label, _copyable(text)) for label, text in rows)))

    @admin.display(description=_("dropped as spam"))
    def spam_summary(self, obj: SignupForm) -> SafeString:
        """Spam is answered like a success and never stored: this is where it shows."""
        since = localdate() - timedelta(days=SPAM_SUMMARY_DAYS - 1)
        rows = (SpamCount.objects.filter(form=obj, day__gte=since).values("reason")
                .annotate(total=Sum("count")).order_by("-total", "reason"))
        labels = dict(SpamCount.Reason.choices)
        parts = [f"{labels.get(row['reason'], row['reason'])}: {row['total']}" for row in rows]
        url = reverse("admin:esp_forms_spamcount_changelist") + "?" + urlencode(
            {"form__id__exact": obj.pk})
        text = (_("In the last %(days)s days: %(counts)s.") % {
                    "days": SPAM_SUMMARY_DAYS, "counts": ", ".join(parts)} if parts
                else _("Nothing in the last %(days)s days.") % {"days": SPAM_SUMMARY_DAYS})
        return format_html(
            '<p>{} <a href="{}">{}</a></p><p class="help">{}</p>', text, url,
            capfirst(SpamCount._meta.verbose_name_plural),
            _("Submissions caught by the honeypot or the form token (missing, forged, too old, "
              "or sent sooner than MIN_FILL_SECONDS after it was issued) are answered like a "
              "success but not stored, and each is logged at INFO by esp_forms.spam."))

    @admin.display(description=_("live preview"))
    def preview(self, obj: SignupForm) -> SafeString:
        url = reverse("admin:esp_forms_signupform_preview", args=[obj.pk])
        note = _("As visitors see it, from the saved settings. Submitting it stores a real "
                 "submission.")
        if not obj.is_active:
            note = _("This form is inactive: visitors get a 404 and the template tag renders "
                     "nothing. The preview shows it as it will look once active.")
        return format_html(
            '<p class="help">{}</p><iframe class="esp-forms-preview" src="{}" title="{}" '
            'loading="lazy"></iframe>', note, url, _("Form preview"))

    def get_urls(self) -> list[URLPattern]:
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view),
                 name="esp_forms_dashboard"),
            path("<path:object_id>/preview/", preview, name="esp_forms_signupform_preview"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        submissions = reverse("admin:esp_forms_submission_changelist")
        urls = {
            "pending": f"{submissions}?delivery_status__exact=pending",
            "failed": f"{submissions}?delivery_status__exact=failed",
            "unconfirmed": f"{submissions}?optin_status__exact=unconfirmed",
            "accounts": reverse("admin:esp_forms_provideraccount_changelist"),
        }
        return TemplateResponse(request, "admin/esp_forms/dashboard.html", {
            **self.admin_site.each_context(request),
            "title": _("Signups dashboard"),
            "opts": self.model._meta,
            **dashboard.context(request, urls),
        })

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        # The renderer behind {% esp_form %}, called directly: the tag renders nothing for an
        # inactive form, and staff still want to see it before switching it on.
        response = TemplateResponse(request, "admin/esp_forms/signupform/preview.html",
                                    {"form": obj, "form_html": render_signup_form(request, obj)})
        # The site answers X-Frame-Options: DENY by default (the middleware leaves a header
        # that is already set alone); this page exists to be framed by the change page.
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response

    def save_model(self, request: HttpRequest, obj: SignupForm, form: forms.ModelForm,
                   change: bool) -> None:
        super().save_model(request, obj, form, change)
        if obj.overwrite == 1 and obj.account.provider == Provider.UNISENDER:
            self.message_user(request, _(
                "“%(form)s” uses UniSender overwrite mode 1: signups replace the contact's "
                "lists.") % {"form": obj}, messages.WARNING)

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: list,
                     change: bool) -> None:
        super().save_related(request, form, formsets, change)
        signup_form: SignupForm = form.instance
        if not signup_form.fields.filter(kind=FieldKind.EMAIL).exists():
            taken = set(signup_form.fields.values_list("name", flat=True))
            name = next(n for n in ("email", "email_address", "e-mail", "contact_email")
                        if n not in taken)
            # Stored in English, shown to visitors in their language (see visitor_text).
            FormField.objects.create(form=signup_form, name=name, label=DEFAULT_FIELD_LABELS[0],
                                     kind=FieldKind.EMAIL, required=True, order=0)
            self.message_user(request, _("Added the required email field."), messages.INFO)


# --- submissions -----------------------------------------------------------------------------


class SubmissionEventInline(admin.TabularInline):
    model = SubmissionEvent
    fields = ["created_at", "kind", "message", "pretty_data"]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    classes = ["esp-forms-log"]
    verbose_name_plural = _("event log")
    # The log is the audit trail of a consent: append-only, from code only.

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("data"))
    def pretty_data(self, obj: SubmissionEvent) -> SafeString | str:
        return _pretty_json(obj.data)


def _pretty_json(data: Any) -> SafeString | str:
    if not data:
        return "—"
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="esp-forms-json">{}</pre>', text)


class HeldFilter(admin.SimpleListFilter):
    """Signups the abuse gate held aside (esp_forms.abuse), by reason."""

    title = _("held because")
    parameter_name = "held"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("any", _("Held (any reason)")), *HoldReason.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Submission]
                 ) -> QuerySet[Submission]:
        value = self.value()
        if value == "any":
            return queryset.filter(held_at__isnull=False)
        if value in HoldReason.values:
            return queryset.filter(held_at__isnull=False, held_reason=value)
        return queryset


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    inlines = [SubmissionEventInline]
    list_display = ["email", "form", "delivery", "optin", "held", "attempts", "created_at"]
    list_filter = ["form", "delivery_status", "optin_status", HeldFilter, "created_at"]
    list_select_related = ["form"]
    search_fields = ["email"]
    date_hierarchy = "created_at"
    actions = ["retry_failed", "refresh_optin", "resend_confirmation", "release_held",
               "drop_held", "export_consent_records", "erase_personal_data"]
    fieldsets = [
        (_("Contact"), {"fields": ["email", "phone", "form", "pretty_data"]}),
        (_("Delivery"), {"fields": ["delivery", "attempts", "next_attempt_at",
                                    "last_attempt_at", "delivered_at", "last_error",
                                    "provider_contact_id"]}),
        (_("Double opt-in"), {"fields": ["optin", "confirmation_sent_at", "confirmed_at",
                                         "confirm_ip", "unsubscribed_at", "optin_checked_at",
                                         "next_optin_check_at"]}),
        (_("Consent proof"), {"fields": ["created_at", "ip", "user_agent", "language",
                                         "consent_text", "purged_at"]}),
        (_("Abuse gate"), {"fields": ["held_at", "held_reason"]}),
    ]

    @property
    def media(self) -> forms.Media:
        return super().media + ADMIN_MEDIA

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [name for _title, opts in self.fieldsets for name in opts["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Submissions come from visitors only; one typed in by staff would carry no consent.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The detail page is view-only (no save buttons); the list keeps the change permission
        # so the actions below, which need it, stay available.
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description=_("delivery status"), ordering="delivery_status")
    def delivery(self, obj: Submission) -> SafeString:
        return _badge(obj.delivery_status, obj.get_delivery_status_display())

    @admin.display(description=_("opt-in status"), ordering="optin_status")
    def optin(self, obj: Submission) -> SafeString:
        return _badge(obj.optin_status, obj.get_optin_status_display())

    @admin.display(description=_("held"), ordering="held_at")
    def held(self, obj: Submission) -> SafeString | str:
        if obj.held_at is None:
            return ""
        return _badge("held", obj.get_held_reason_display() or str(_("held")))

    @admin.display(description=_("data"))
    def pretty_data(self, obj: Submission) -> SafeString | str:
        return _pretty_json(obj.data)

    @admin.action(description=_("Retry delivery of the failed submissions"),
                  permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        # Imported when used: delivery pulls in the provider layer and Celery.
        from esp_forms.delivery import retry_submissions

        count = retry_submissions(queryset)
        self.message_user(request, ngettext(
            "%(count)d submission queued for another delivery attempt.",
            "%(count)d submissions queued for another delivery attempt.", count,
        ) % {"count": count}, messages.SUCCESS if count else messages.WARNING)

    @admin.action(description=_("Check double opt-in status with the provider now"),
                  permissions=["change"])
    def refresh_optin(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        from esp_forms.optin import refresh_now

        count = refresh_now(queryset)
        self.message_user(request, ngettext(
            "%(count)d submission checked with the provider.",
            "%(count)d submissions checked with the provider.", count,
        ) % {"count": count}, messages.SUCCESS if count else messages.WARNING)

    @admin.action(description=_("Resend the confirmation email (local double opt-in)"),
                  permissions=["change"])
    def resend_confirmation(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        from esp_forms.optin import resend_confirmations

        # A held signup is released (which sends it), never mailed around the gate.
        count = resend_confirmations(queryset.filter(held_at__isnull=True))
        self.message_user(request, ngettext(
            "%(count)d confirmation email queued.",
            "%(count)d confirmation emails queued.", count,
        ) % {"count": count}, messages.SUCCESS if count else messages.WARNING)


    @admin.action(description=_("Release the held submissions (send them on)"),
                  permissions=["change"])
    def release_held(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        from esp_forms.abuse import release

        count = release(queryset, by=request.user.get_username())
        self.message_user(request, ngettext(
            "%(count)d held submission released.",
            "%(count)d held submissions released.", count,
        ) % {"count": count}, messages.SUCCESS if count else messages.WARNING)

    @admin.action(description=_("Drop the held submissions (send nothing)"),
                  permissions=["change"])
    def drop_held(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        from esp_forms.abuse import drop

        count = drop(queryset, by=request.user.get_username())
        self.message_user(request, ngettext(
            "%(count)d held submission dropped.",
            "%(count)d held submissions dropped.", count,
        ) % {"count": count}, messages.SUCCESS if count else messages.WARNING)

    # --- consent records (esp_forms.consent): per person, not per selected row ---

    @staticmethod
    def _people(queryset: QuerySet[Submission]) -> list[str]:
        emails = queryset.exclude(email="").values_list("email", flat=True)
        return sorted({email.lower() for email in emails})

    @admin.action(description=_("Export the personal data of these people (JSON)"),
                  permissions=["view"])
    def export_consent_records(self, request: HttpRequest,
                               queryset: QuerySet[Submission]) -> HttpResponse | None:
        from esp_forms import consent

        people = self._people(queryset)
        if not people:
            self.message_user(request, _("The selected submissions hold no email address "
                                         "(their personal data was erased)."),
                              messages.WARNING)
            return None
        response = HttpResponse(consent.export_json(people),
                                content_type="application/json; charset=utf-8")
        stamp = localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = (
            f'attachment; filename="esp-forms-consent-{stamp}.json"')
        return response

    @admin.action(description=_("Erase the personal data of these people…"),
                  permissions=["delete"])
    def erase_personal_data(self, request: HttpRequest,
                            queryset: QuerySet[Submission]) -> TemplateResponse | None:
        from esp_forms import consent

        people = self._people(queryset)
        if not people:
            self.message_user(request, _("The selected submissions hold no email address "
                                         "(their personal data was erased)."),
                              messages.WARNING)
            return None
        if request.POST.get("confirm") == "yes":
            erased = sum(consent.erase(email, by=request.user.get_username()).submissions
                         for email in people)
            self.message_user(request, ngettext(
                "The personal data of %(people)d person was erased (%(count)d submissions; "
                "their statuses and counts are kept).",
                "The personal data of %(people)d people was erased (%(count)d submissions; "
                "their statuses and counts are kept).", len(people),
            ) % {"people": len(people), "count": erased}, messages.SUCCESS)
            return None
        held = {email: consent.submissions_of(email).count() for email in people}
        return TemplateResponse(request, "admin/esp_forms/submission/erase_confirmation.html", {
            **self.admin_site.each_context(request),
            "title": _("Erase personal data"),
            "opts": self.model._meta,
            "people": sorted(held.items()),
            "total": sum(held.values()),
            "selected": queryset.values_list("pk", flat=True),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })


# --- read-only lists -------------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the app itself; the admin only shows them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SpamCount)
class SpamCountAdmin(ReadOnlyAdmin):
    list_display = ["day", "form", "reason", "count"]
    list_filter = ["reason", "form", "day"]
    list_select_related = ["form"]
    date_hierarchy = "day"


@admin.register(SandboxContact)
class SandboxContactAdmin(ReadOnlyAdmin):
    list_display = ["email", "account", "status", "list_names", "created_at", "updated_at"]
    list_filter = ["status", "account"]
    list_select_related = ["account"]
    search_fields = ["email"]
    # The token is the contact's confirmation secret: it stays out of the admin.
    fields = ["account", "email", "phone", "status", "lists", "fields", "created_at",
              "updated_at"]

    @admin.display(description=_("lists"))
    def list_names(self, obj: SandboxContact) -> str:
        return ", ".join(str(name) for name in obj.lists) or "—"
