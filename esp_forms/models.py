"""Signup form configuration, stored submissions and their event log."""

from __future__ import annotations

import re
import secrets
import uuid

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

# Re-exported: the statuses live in their own module (imported by the outbox without models
# importing anything else).
from esp_forms.statuses import SETTLED_OPTIN, DeliveryStatus, OptinStatus  # noqa: F401


def _new_webhook_secret() -> str:
    return secrets.token_urlsafe(24)


# The visitor-facing texts a form starts with. They are stored in English whatever language the
# admin works in, and shown in the visitor's language for as long as they are left unchanged
# (see visitor_text); a text the admin has edited is shown as written.
DEFAULT_SUBMIT_LABEL = gettext_noop("Subscribe")
DEFAULT_SUCCESS_MESSAGE = gettext_noop("Thank you! Please check your inbox to confirm.")
DEFAULT_ALREADY_SUBSCRIBED_MESSAGE = gettext_noop("You are already subscribed. Thank you!")
DEFAULT_ERROR_MESSAGE = gettext_noop("Please correct the errors below.")
_DEFAULT_TEXTS = frozenset({DEFAULT_SUBMIT_LABEL, DEFAULT_SUCCESS_MESSAGE,
                            DEFAULT_ALREADY_SUBSCRIBED_MESSAGE, DEFAULT_ERROR_MESSAGE})
# The labels of the standard field kinds in English (FieldKind below; the admin labels the email
# field it adds "Email"). Translated with the "field kind" context: other apps' catalogs (e.g.
# django.contrib.auth's) have a plain "Email" of their own, which would win.
KIND_CONTEXT = "field kind"
DEFAULT_FIELD_LABELS = ("Email", "Phone", "First name", "Last name")


def visitor_text(value: object) -> str:
    """A text stored by an admin, in the active language if it is one of the app's defaults."""
    text = str(value)
    if text in _DEFAULT_TEXTS:
        return gettext(text)
    if text in DEFAULT_FIELD_LABELS:
        return pgettext(KIND_CONTEXT, text)
    return text


def split_csv(value: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']"""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Provider(models.TextChoices):
    ESPUTNIK = "esputnik", "eSputnik"
    UNISENDER = "unisender", "UniSender"
    SANDBOX = "sandbox", _("Sandbox (offline, no account)")


# UniSender's <lang> path segments (the official wrapper allows these three; "uk" is not one).
API_LANGUAGES = [("en", "English (en)"), ("ru", "Русский (ru)"), ("ua", "Українська (ua)")]


class DoubleOptIn(models.TextChoices):
    PROVIDER = "provider", _("Provider sends the confirmation email")
    LOCAL = "local", _("This site sends the confirmation email")
    OFF = "off", _("Off (no confirmation)")


class Captcha(models.TextChoices):
    OFF = "", _("Off")
    TURNSTILE = "turnstile", "Cloudflare Turnstile"
    HCAPTCHA = "hcaptcha", "hCaptcha"


class HoldReason(models.TextChoices):
    """Why a stored signup was held aside instead of mailed or delivered (esp_forms.abuse)."""

    MAILBOX_BUDGET = "mailbox_budget", _("Mailbox over its daily budget")
    FORM_BUDGET = "form_budget", _("Form over its hourly budget")
    HOOK_DENIED = "hook_denied", _("Denied by the pre-send hook")


class ProviderAccount(models.Model):
    name = models.CharField(_("name"), max_length=100)
    provider = models.CharField(_("provider"), max_length=20, choices=Provider.choices)
    api_key = models.CharField(
        _("API key"), max_length=255, blank=True,
        help_text=_("eSputnik: Settings → API → New key. UniSender: Settings → Integration and "
                    "API. Not needed for the sandbox."),
    )
    api_base_url = models.URLField(
        _("API base URL"), blank=True,
        help_text=_("Scheme, host and port only, e.g. http://127.0.0.1:8025 for the emulator. "
                    "Blank: the provider's real host."),
    )
    api_language = models.CharField(
        _("API language"), max_length=5, default="en", choices=API_LANGUAGES,
        help_text=_("UniSender: language of the API's messages (en, ru or ua; part of the API "
                    "URL, so a wrong one is refused)."),
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        _("rate limit per minute"), null=True, blank=True,
        help_text=_("Blank: the provider's documented limit (UniSender subscribe: 300 per 60 s; "
                    "eSputnik: 200 per second)."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    webhook_secret = models.CharField(
        _("webhook secret"), max_length=100, default=_new_webhook_secret,
        help_text=_("Shared secret the provider's callbacks must carry."),
    )
    # Set when a call failed because of the account's configuration; cleared on success.
    config_error = models.TextField(_("configuration error"), blank=True, editable=False)
    config_error_at = models.DateTimeField(_("configuration error since"), null=True,
                                           blank=True, editable=False)
    last_alert_at = models.DateTimeField(_("last alert sent at"), null=True, blank=True,
                                         editable=False)
    # eSputnik: the end of the last activity window reconciliation read completely.
    activity_read_until = models.DateTimeField(_("activity read until"), null=True,
                                               blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("provider account")
        verbose_name_plural = _("provider accounts")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()})"

    @property
    def masked_api_key(self) -> str:
        key = self.api_key or ""
        if not key:
            return ""
        return "•" * 8 + (key[-4:] if len(key) >= 12 else "")

    def clean(self) -> None:
        if self.provider in (Provider.ESPUTNIK, Provider.UNISENDER) and not self.api_key:
            raise ValidationError({"api_key": _("This provider needs an API key.")})
        if self.api_base_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.api_base_url)
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValidationError({"api_base_url": _(
                    "Give the scheme, host and port only (e.g. http://127.0.0.1:8025); the "
                    "provider's API path is added automatically.")})


class SignupForm(models.Model):
    form_type = models.SlugField(
        _("form type"), max_length=64, unique=True,
        help_text=_("Identifier used in the template tag, URLs and the API."),
    )
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    account = models.ForeignKey(
        ProviderAccount, on_delete=models.PROTECT, related_name="forms", verbose_name=_("account"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    double_opt_in = models.CharField(
        _("double opt-in"), max_length=10, choices=DoubleOptIn.choices,
        default=DoubleOptIn.PROVIDER,
    )
    lists = models.CharField(
        _("lists / groups"), max_length=500, blank=True,
        help_text=_("eSputnik: segment (group) names; UniSender: list ids. Comma-separated."),
    )
    tags = models.CharField(
        _("tags"), max_length=500, blank=True,
        help_text=_("UniSender only: at most 10, comma-separated."),
    )
    provider_form_type = models.CharField(
        _("eSputnik formType"), max_length=100, blank=True,
        validators=[RegexValidator(r"^[^<;’\\/|\"`'^?!,>]*$",
                                   _("eSputnik does not allow < ; ’ \\ / | \" ` ' ^ ? ! , > "
                                     "in formType."))],
        help_text=_("eSputnik only: raises the event subscribeFromApi-<formType>. Blank: the "
                    "form type."),
    )
    confirmed_group = models.CharField(
        _("confirmed segment"), max_length=100, blank=True, default="Confirmed",
        help_text=_("eSputnik only: the segment your confirmation workflow adds confirmed "
                    "contacts to."),
    )
    overwrite = models.PositiveSmallIntegerField(
        _("overwrite mode"), default=2,
        choices=[(0, _("0: only add new fields and tags")),
                 (1, _("1: replace everything (can remove the contact from other lists!)")),
                 (2, _("2: replace the fields sent, keep the others"))],
        help_text=_("UniSender only."),
    )
    submit_label = models.CharField(_("button label"), max_length=100,
                                    default=DEFAULT_SUBMIT_LABEL)
    success_message = models.TextField(_("success message"), default=DEFAULT_SUCCESS_MESSAGE)
    already_subscribed_message = models.TextField(
        _("already subscribed message"), default=DEFAULT_ALREADY_SUBSCRIBED_MESSAGE,
    )
    error_message = models.TextField(_("error message"), default=DEFAULT_ERROR_MESSAGE)
    redirect_url = models.CharField(
        _("redirect URL"), max_length=500, blank=True,
        help_text=_("Where the browser goes after a successful signup without JavaScript. "
                    "Blank: show the success message."),
    )
    consent_text = models.TextField(
        _("consent text"), blank=True,
        help_text=_("When set, visitors must tick a checkbox with this text; a snapshot is "
                    "stored with each submission."),
    )
    allowed_origins = models.TextField(
        _("allowed origins"), blank=True,
        help_text=_("Other sites allowed to post to the JSON API (CORS), one origin per line, "
                    "e.g. https://shop.example.com."),
    )
    captcha = models.CharField(
        _("CAPTCHA"), max_length=20, choices=Captcha.choices, blank=True, default=Captcha.OFF,
        help_text=_("Ask visitors to pass a CAPTCHA before the signup is stored. Needs the "
                    "provider's site and secret keys in the ESP_FORMS settings."),
    )
    hourly_budget = models.PositiveIntegerField(
        _("hourly budget"), null=True, blank=True,
        help_text=_("Signups per hour handed on to a confirmation email or the provider; more "
                    "are held for review and the admins are alerted. Blank: the "
                    "FORM_HOURLY_BUDGET setting; 0: no limit."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("signup form")
        verbose_name_plural = _("signup forms")
        ordering = ["form_type"]

    def __str__(self) -> str:
        return self.title or self.form_type

    @property
    def provider(self) -> str:
        return self.account.provider

    # The texts as visitors see them: a default left unchanged is in the visitor's language.
    @property
    def localized_submit_label(self) -> str:
        return visitor_text(self.submit_label)

    @property
    def localized_success_message(self) -> str:
        return visitor_text(self.success_message)

    @property
    def localized_already_subscribed_message(self) -> str:
        return visitor_text(self.already_subscribed_message)

    @property
    def localized_error_message(self) -> str:
        return visitor_text(self.error_message)

    @property
    def list_values(self) -> list[str]:
        return split_csv(self.lists)

    @property
    def tag_values(self) -> list[str]:
        return split_csv(self.tags)

    @property
    def effective_provider_form_type(self) -> str:
        return self.provider_form_type or self.form_type

    @property
    def origin_values(self) -> list[str]:
        return [line.strip().rstrip("/") for line in self.allowed_origins.splitlines()
                if line.strip()]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        provider = self.account.provider if self.account_id else None
        if provider == Provider.UNISENDER:
            bad = [v for v in self.list_values if not v.isdigit()]
            if bad:
                errors["lists"] = _("UniSender list ids are numbers; not: %(bad)s") % {
                    "bad": ", ".join(bad)}
            elif not self.list_values:
                errors["lists"] = _("UniSender needs at least one list id.")
            if len(self.tag_values) > 10:
                errors["tags"] = _("UniSender accepts at most 10 tags.")
        elif provider is not None:
            if self.tags.strip():
                errors["tags"] = _("Tags are a UniSender option.")
            if self.overwrite != 2:
                errors["overwrite"] = _("The overwrite mode is a UniSender option.")
        if (provider == Provider.ESPUTNIK and self.double_opt_in == DoubleOptIn.PROVIDER
                and not self.confirmed_group.strip()):
            errors["confirmed_group"] = _(
                "eSputnik has no API field that says a contact confirmed: the confirmation "
                "workflow must add confirmed contacts to a segment, and this site reads it. Name "
                "that segment (e.g. Confirmed), or choose another double opt-in mode.")
        if provider not in (Provider.ESPUTNIK, None) and self.provider_form_type:
            errors["provider_form_type"] = _("formType is an eSputnik option.")
        for origin in self.origin_values:
            if not re.match(r"^https?://[^/\s]+$", origin):
                errors["allowed_origins"] = _(
                    "Each line must be an origin like https://example.com (no path): %(o)s"
                ) % {"o": origin}
                break
        if errors:
            raise ValidationError(errors)


class FieldKind(models.TextChoices):
    EMAIL = "email", pgettext_lazy("field kind", "Email")
    PHONE = "phone", pgettext_lazy("field kind", "Phone")
    FIRST_NAME = "first_name", pgettext_lazy("field kind", "First name")
    LAST_NAME = "last_name", pgettext_lazy("field kind", "Last name")
    TEXT = "text", pgettext_lazy("field kind", "Text")
    CHOICE = "choice", pgettext_lazy("field kind", "Choice")
    CHECKBOX = "checkbox", pgettext_lazy("field kind", "Checkbox")
    DATE = "date", pgettext_lazy("field kind", "Date")


# Kinds that map onto the provider's own contact attributes, not custom fields.
STANDARD_KINDS = {FieldKind.EMAIL, FieldKind.PHONE, FieldKind.FIRST_NAME, FieldKind.LAST_NAME}


class FormField(models.Model):
    form = models.ForeignKey(SignupForm, on_delete=models.CASCADE, related_name="fields")
    name = models.SlugField(
        _("name"), max_length=64,
        help_text=_("Key in the JSON API and the HTML form (letters, digits, _ and -)."),
    )
    label = models.CharField(_("label"), max_length=200)
    kind = models.CharField(_("kind"), max_length=20, choices=FieldKind.choices,
                            default=FieldKind.TEXT)
    required = models.BooleanField(_("required"), default=False)
    provider_field = models.CharField(
        _("provider field"), max_length=100, blank=True,
        help_text=_("eSputnik: the additional field's numeric id. UniSender: the field's name "
                    "(e.g. Name). Blank: not sent, except for the standard kinds."),
    )
    choices = models.TextField(
        _("choices"), blank=True,
        help_text=_("For the choice kind: one per line, as value or value|label."),
    )
    help_text = models.CharField(_("help text"), max_length=300, blank=True)
    order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("field")
        verbose_name_plural = _("fields")
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["form", "name"], name="esp_forms_field_unique_name"),
        ]

    def __str__(self) -> str:
        return self.label or self.name

    @property
    def choice_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        for line in self.choices.splitlines():
            if not line.strip():
                continue
            value, _sep, label = line.partition("|")
            pairs.append((value.strip(), (label or value).strip()))
        return pairs

    def clean(self) -> None:
        if self.kind == FieldKind.CHOICE and not self.choice_pairs:
            raise ValidationError({"choices": _("A choice field needs at least one choice.")})
        if self.kind == FieldKind.EMAIL:
            self.required = True
        if (self.provider_field and self.form_id and self.form.account.provider == Provider.ESPUTNIK
                and self.kind not in STANDARD_KINDS and not self.provider_field.isdigit()):
            raise ValidationError({"provider_field": _(
                "eSputnik additional fields are addressed by their numeric id.")})


class Submission(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    form = models.ForeignKey(SignupForm, on_delete=models.PROTECT, related_name="submissions",
                             verbose_name=_("form"))
    email = models.EmailField(_("email"), max_length=254, db_index=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, help_text="E.164")
    # Normalised values of the form's other fields, by FormField.name (first/last name too).
    data = models.JSONField(_("data"), default=dict, blank=True)

    delivery_status = models.CharField(
        _("delivery status"), max_length=10, choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING, db_index=True,
    )
    optin_status = models.CharField(
        _("opt-in status"), max_length=15, choices=OptinStatus.choices,
        default=OptinStatus.UNCONFIRMED, db_index=True,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    provider_contact_id = models.CharField(_("provider contact id"), max_length=64, blank=True)

    # Consent proof.
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=500, blank=True)
    consent_text = models.TextField(_("consent text shown"), blank=True)
    # The language the visitor read the form in (Django's active language at signup): the
    # confirmation email is written in it, whoever sends it. Blank: the site's LANGUAGE_CODE.
    language = models.CharField(_("language"), max_length=15, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    confirm_ip = models.GenericIPAddressField(_("confirmation IP"), null=True, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)

    # Double opt-in bookkeeping.
    confirmation_sent_at = models.DateTimeField(_("confirmation email sent at"), null=True,
                                                blank=True)
    optin_checked_at = models.DateTimeField(_("opt-in status read at"), null=True, blank=True)
    next_optin_check_at = models.DateTimeField(_("next opt-in status read at"), null=True,
                                               blank=True)
    # Set by esp_forms_purge when personal data was erased.
    purged_at = models.DateTimeField(_("personal data erased at"), null=True, blank=True)
    # Held aside by the abuse gate (esp_forms.abuse): stored, but no email and no provider
    # call until an admin releases it. Delivery status stays pending, so outside nothing shows.
    held_at = models.DateTimeField(_("held since"), null=True, blank=True, db_index=True)
    held_reason = models.CharField(_("held because"), max_length=20, blank=True,
                                   choices=HoldReason.choices)

    # The outbox's claim (esp_forms.outbox): whoever holds an unexpired lease is the only one
    # working on the row (delivering, reading its status, purging it); a dead worker's lease
    # simply runs out. ``attempt_started_at`` is committed before a provider call and cleared
    # with its outcome, so a set value on a free row means "called, outcome unknown".
    lease_owner = models.CharField("claimed by", max_length=64, blank=True, editable=False)
    lease_until = models.DateTimeField("claimed until", null=True, blank=True,
                                       editable=False)
    attempt_started_at = models.DateTimeField("unfinished attempt started at", null=True,
                                              blank=True, editable=False)

    class Meta:
        verbose_name = _("submission")
        verbose_name_plural = _("submissions")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["delivery_status", "next_attempt_at"],
                         name="esp_forms_sub_due"),
            models.Index(fields=["optin_status", "next_optin_check_at"],
                         name="esp_forms_sub_poll"),
            # The repeat-signup lookup compares emails case-insensitively (UPPER): an index on
            # the plain column would leave it scanning every signup of the form in the window.
            models.Index(models.F("form"), Upper("email"), models.F("created_at"),
                         name="esp_forms_sub_dupe_ci"),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.form.form_type}"

    @property
    def first_name(self) -> str:
        return str(self.data.get("first_name", "") or "")

    @property
    def last_name(self) -> str:
        return str(self.data.get("last_name", "") or "")


class EventKind(models.TextChoices):
    CREATED = "created", _("Stored")
    COLLAPSED = "collapsed", _("Repeat signup collapsed")
    ENQUEUED = "enqueued", _("Queued")
    ATTEMPT = "attempt", _("Provider call")
    DELIVERED = "delivered", _("Delivered")
    RETRY = "retry", _("Retry scheduled")
    THROTTLED = "throttled", _("Waiting for rate limit")
    FAILED = "failed", _("Failed")
    CONFIRMATION_SENT = "confirmation_sent", _("Confirmation email sent")
    WEBHOOK = "webhook", _("Webhook received")
    STATUS_CHECKED = "status_checked", _("Status checked")
    CONFIRMED = "confirmed", _("Confirmed")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    EXPIRED = "expired", _("Expired")
    ADMIN = "admin", _("Admin action")
    PURGED = "purged", _("Personal data erased")
    HELD = "held", _("Held for review")
    RELEASED = "released", _("Released from hold")
    DROPPED = "dropped", _("Dropped")


class SubmissionEvent(models.Model):
    """Append-only log of what happened to a submission. Never holds an API key."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("kind"), max_length=20, choices=EventKind.choices)
    message = models.TextField(_("message"), blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("submission event")
        verbose_name_plural = _("submission events")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:60]}"


class SpamCount(models.Model):
    """Submissions answered like a success but dropped as spam, counted per form, reason, day."""

    class Reason(models.TextChoices):
        HONEYPOT = "honeypot", _("Honeypot field filled")
        TOO_FAST = "too_fast", _("Submitted too fast")
        TOO_OLD = "too_old", _("Form token too old")
        BAD_TOKEN = "bad_token", _("Missing or forged form token")
        # Blocks of the abuse gate (esp_forms.abuse): the first three are held, not dropped.
        MAILBOX_BUDGET = "mailbox_budget", _("Held: mailbox over its daily budget")
        FORM_BUDGET = "form_budget", _("Held: form over its hourly budget")
        HOOK_DENIED = "hook_denied", _("Held: denied by the pre-send hook")
        CAPTCHA_FAILED = "captcha_failed", _("Rejected: CAPTCHA not passed")
        CAPTCHA_UNAVAILABLE = "captcha_down", _("CAPTCHA verifier unreachable")

    # Reasons that mean "answered like a success but dropped": spam in charts and metrics. Holds
    # are stored submissions (counted as held), CAPTCHA refusals were told so (a 400).
    SPAM_REASONS = ("honeypot", "too_fast", "too_old", "bad_token")

    form = models.ForeignKey(SignupForm, on_delete=models.CASCADE, related_name="spam_counts",
                             verbose_name=_("form"))
    reason = models.CharField(_("reason"), max_length=20, choices=Reason.choices)
    day = models.DateField(_("day"), default=timezone.localdate)
    count = models.PositiveIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("spam count")
        verbose_name_plural = _("spam counts")
        ordering = ["-day", "form"]
        constraints = [
            models.UniqueConstraint(fields=["form", "reason", "day"],
                                    name="esp_forms_spam_unique_day"),
        ]

    def __str__(self) -> str:
        return f"{self.form_id} {self.reason} {self.day}: {self.count}"


class AbuseCounter(models.Model):
    """One budget's count in one fixed time window, shared by every process (esp_forms.abuse).

    ``key`` names the budget and never holds an address: a mailbox is keyed by a keyed hash.
    """

    key = models.CharField(max_length=100)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("abuse counter")
        verbose_name_plural = _("abuse counters")
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"],
                                    name="esp_forms_abuse_unique_window"),
        ]

    def __str__(self) -> str:
        return f"{self.key} @ {self.window_start:%Y-%m-%d %H:%M}: {self.count}"


class SandboxContact(models.Model):
    """A contact held by the offline sandbox provider (stands in for the provider's database)."""

    class Status(models.TextChoices):
        INVITED = "invited", _("Invited (waiting for confirmation)")
        ACTIVE = "active", _("Active (confirmed)")
        NEW = "new", _("New (added without confirmation)")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE,
                                related_name="sandbox_contacts")
    email = models.EmailField(max_length=254)
    phone = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INVITED)
    lists = models.JSONField(default=list, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    token = models.CharField(max_length=64, unique=True, default=_new_webhook_secret)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("sandbox contact")
        verbose_name_plural = _("sandbox contacts")
        constraints = [
            models.UniqueConstraint(fields=["account", "email"],
                                    name="esp_forms_sandbox_unique_email"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.status})"
