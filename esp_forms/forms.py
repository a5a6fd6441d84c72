"""The one validation of a signup: a Django form built from a ``SignupForm``'s ``FormField`` rows.

The HTML view binds it to ``request.POST``; the JSON API first checks the body's shape
(``esp_forms.api.serializers``), maps it onto the same names and binds it too. So every rule
(email syntax, E.164 phones, lengths, choices, consent) lives here once.

Names: each ``FormField`` is a form field named after ``FormField.name`` (its HTML input name).
The app's own inputs are ``consent``, ``form_token`` and the honeypot (``HONEYPOT_FIELD``); a
``FormField`` whose name collides with one of them is renamed ``field:<name>`` in the HTML (a
slug can never contain ``:``, so the renamed input cannot collide with another field). In the
JSON API the standard kinds sit at the top level under their kind (``email``, ``phone``,
``first_name``, ``last_name``) and every other field under ``fields.<name>``.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import Any, TypedDict

import phonenumbers
from django import forms
from django.core.exceptions import ValidationError
from django.forms.forms import NON_FIELD_ERRORS
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _
from email_validator import EmailNotValidError, validate_email

from esp_forms import spam
from esp_forms.conf import get_setting
from esp_forms.models import STANDARD_KINDS, FieldKind, FormField, SignupForm, visitor_text

logger = logging.getLogger("esp_forms.forms")

CONSENT_FIELD = "consent"
TOKEN_FIELD = spam.TOKEN_FIELD
# The key non-field errors are reported under, in the HTML JSON answers and in the API alike.
NON_FIELD_KEY = "non_field_errors"
EMAIL_MAX_LENGTH = 254
# RFC 5321: the part before the @ is at most 64 octets (email-validator 2 no longer checks).
EMAIL_LOCAL_MAX_OCTETS = 64
PHONE_EXAMPLE = "+380501234567"


class CleanedSubmission(TypedDict):
    """What :func:`esp_forms.submissions.store_submission` stores."""

    email: str
    phone: str
    data: dict[str, Any]


# --- widgets and fields ---------------------------------------------------------------------

class TelInput(forms.TextInput):
    input_type = "tel"


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        # The browser's date picker reads and writes ISO dates whatever the page's language.
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class EmailAddressField(forms.CharField):
    """Email syntax checked and normalised by email-validator, without any network lookup."""

    widget = forms.EmailInput

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", EMAIL_MAX_LENGTH)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if not value:
            return ""
        try:
            result = validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            message = gettext("Enter a valid email address.")
            # email-validator explains the problem in English only: other languages get the
            # translated sentence alone rather than half a sentence in English.
            if (get_language() or "en").split("-")[0] == "en":
                message = f"{message} {exc}"
            raise ValidationError(message, code="invalid") from exc
        local, _sep, domain = result.normalized.rpartition("@")
        if len(local.encode("utf-8")) > EMAIL_LOCAL_MAX_OCTETS:
            raise ValidationError(
                _("The part before the @ is too long: at most %(max)s characters."),
                code="max_length", params={"max": EMAIL_LOCAL_MAX_OCTETS})
        # email-validator keeps the local part's case (it can matter) and normalises the
        # domain; lower-casing it makes repeat signups compare equal.
        normalised = f"{local}@{domain.lower()}"
        if len(normalised) > EMAIL_MAX_LENGTH:
            raise ValidationError(_("This email address is too long."), code="max_length")
        return normalised


class PhoneNumberField(forms.CharField):
    """A phone number in any common notation, returned in E.164 (``+380501234567``)."""

    widget = TelInput
    default_error_messages = {
        "invalid": _("Enter a valid phone number, e.g. %(example)s."),
    }

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if not value:
            return ""
        region = get_setting("PHONE_DEFAULT_REGION") or None
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException as exc:
            raise ValidationError(self.error_messages["invalid"], code="invalid",
                                  params={"example": PHONE_EXAMPLE}) from exc
        if not phonenumbers.is_valid_number(number):
            raise ValidationError(self.error_messages["invalid"], code="invalid",
                                  params={"example": PHONE_EXAMPLE})
        if number.extension:
            # E.164 has no extensions: storing the number would silently drop it.
            raise ValidationError(
                _("Phone extensions are not supported: enter the number without the "
                  "extension, e.g. %(example)s."), code="extension",
                params={"example": PHONE_EXAMPLE})
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Joiners that real names need: ZWNJ in Persian and Indic scripts, ZWJ in emoji sequences.
ALLOWED_FORMAT_CHARS = frozenset({"\u200c", "\u200d"})


def forbidden_character(text: str) -> str | None:
    """The first control, invisible formatting (bidi overrides, zero-width spaces, soft
    hyphens...), private-use or surrogate character in ``text``, or U+FFFD (what a broken
    encoding leaves behind), or None."""
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Co", "Cs") or char == "\ufffd" or (
                category == "Cf" and char not in ALLOWED_FORMAT_CHARS):
            return char
    return None


class PlainTextField(forms.CharField):
    """One line of text a person typed (names, custom text): NFC-normalised, runs of spaces
    collapsed, and no control or invisible characters, which could reorder what an admin or
    a provider's email shows (bidi overrides) or hide text (zero-width characters)."""

    def to_python(self, value: Any) -> str:
        value = super().to_python(value)
        if not value:
            return value
        char = forbidden_character(value)
        if char is not None:
            name = unicodedata.name(char, "").title() or _("control character")
            raise ValidationError(
                _("This contains an invisible, control or replacement character (U+%(code)04X "
                  "%(name)s): please type it again without it."),
                code="invisible", params={"code": ord(char), "name": name})
        return " ".join(unicodedata.normalize("NFC", value).split())


class LooseField(forms.Field):
    """Token and honeypot: taken as sent, never a validation error (spam.py judges them)."""

    def clean(self, value: Any) -> Any:
        return value


# --- layout: which input carries which field ------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    html_name: str
    api_key: str
    kind: str
    form_field: FormField | None


class FormLayout:
    """The inputs of one signup form and how HTML names map to JSON API keys."""

    def __init__(self, signup_form: SignupForm, form_fields: list[FormField] | None = None):
        self.signup_form = signup_form
        self.honeypot_name = spam.honeypot_field_name()
        self.has_consent = bool(signup_form.consent_text.strip())
        reserved = {CONSENT_FIELD, TOKEN_FIELD, self.honeypot_name}
        if form_fields is None:
            form_fields = list(signup_form.fields.all())
        self.specs: list[FieldSpec] = []
        seen_standard: set[str] = set()
        for field in form_fields:
            if field.kind in STANDARD_KINDS:
                if field.kind in seen_standard:
                    # The submission has one email, one phone, one first and last name.
                    logger.warning("Form %s has a second %s field (%s); it is not shown.",
                                   signup_form.form_type, field.kind, field.name)
                    continue
                seen_standard.add(field.kind)
                api_key = str(field.kind)
            else:
                api_key = f"fields.{field.name}"
            html_name = f"field:{field.name}" if field.name in reserved else field.name
            self.specs.append(FieldSpec(html_name, api_key, str(field.kind), field))
        if FieldKind.EMAIL not in seen_standard:
            # A misconfigured form (system check esp_forms.E003) still collects the one value
            # a submission cannot do without.
            name = "email" if "email" not in {s.html_name for s in self.specs} else "field:email"
            self.specs.insert(0, FieldSpec(name, "email", FieldKind.EMAIL, None))
        self.by_html_name = {spec.html_name: spec for spec in self.specs}
        self.by_api_key = {spec.api_key: spec for spec in self.specs}

    def api_key(self, html_name: str) -> str:
        if html_name == NON_FIELD_ERRORS:
            return NON_FIELD_KEY
        spec = self.by_html_name.get(html_name)
        return spec.api_key if spec else html_name


def _label(spec: FieldSpec) -> str:
    if spec.form_field is not None and spec.form_field.label:
        return visitor_text(spec.form_field.label)
    return str(FieldKind(spec.kind).label)


def build_field(spec: FieldSpec) -> forms.Field:
    """The Django form field for one ``FormField``, with its accessibility attributes."""
    ff = spec.form_field
    required = True if spec.kind == FieldKind.EMAIL else bool(ff and ff.required)
    common: dict[str, Any] = {
        "required": required,
        "label": _label(spec),
        "help_text": (ff.help_text if ff else ""),
    }
    short = int(get_setting("MAX_FIELD_LENGTH"))
    if spec.kind == FieldKind.EMAIL:
        field: forms.Field = EmailAddressField(
            widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email",
                                           "spellcheck": "false", "autocapitalize": "none"}),
            error_messages={"required": _("Enter your email address.")}, **common)
    elif spec.kind == FieldKind.PHONE:
        field = PhoneNumberField(
            max_length=short,
            widget=TelInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
            error_messages={"required": _("Enter your phone number.")}, **common)
    elif spec.kind in (FieldKind.FIRST_NAME, FieldKind.LAST_NAME):
        autocomplete = "given-name" if spec.kind == FieldKind.FIRST_NAME else "family-name"
        field = PlainTextField(
            max_length=short,
            widget=forms.TextInput(attrs={"autocomplete": autocomplete,
                                          "autocapitalize": "words"}), **common)
    elif spec.kind == FieldKind.CHOICE:
        pairs = ff.choice_pairs if ff else []
        empty_label = _("Choose…") if required else _("(none)")
        field = forms.ChoiceField(choices=[("", empty_label), *pairs], **common)
    elif spec.kind == FieldKind.CHECKBOX:
        field = forms.BooleanField(
            error_messages={"required": _("Please tick this box.")}, **common)
    elif spec.kind == FieldKind.DATE:
        field = forms.DateField(
            input_formats=["%Y-%m-%d"], widget=DateInput(),
            error_messages={"invalid": _("Enter a date as YYYY-MM-DD, e.g. 1990-04-25.")},
            **common)
    else:
        field = PlainTextField(max_length=int(get_setting("MAX_TEXT_LENGTH")),
                               widget=forms.TextInput(), **common)
    # Read by the templates to lay checkboxes out and add per-kind classes.
    field.esp_kind = spec.kind  # type: ignore[attr-defined]
    return field


class SignupSubmissionForm(forms.Form):
    """One signup form's inputs; ``uid`` makes element ids unique per rendered instance."""

    def __init__(self, signup_form: SignupForm, data: Any = None, *, uid: str | None = None,
                 layout: FormLayout | None = None, **kwargs: Any) -> None:
        self.signup_form = signup_form
        self.layout = layout or FormLayout(signup_form)
        self.uid = uid or f"esp-{signup_form.form_type}"
        kwargs.setdefault("auto_id", f"{self.uid}-%s")
        super().__init__(data, **kwargs)
        for spec in self.layout.specs:
            self.fields[spec.html_name] = build_field(spec)
        if self.layout.has_consent:
            consent = forms.BooleanField(
                required=True, label=signup_form.consent_text,
                error_messages={"required": _("Please tick this box to agree.")})
            consent.esp_kind = "consent"  # type: ignore[attr-defined]
            self.fields[CONSENT_FIELD] = consent
        self.fields[TOKEN_FIELD] = LooseField(
            required=False, widget=forms.HiddenInput,
            initial=spam.issue_token(signup_form.form_type))
        # Hidden from people and screen readers by the template (off-screen, aria-hidden
        # wrapper); tabindex keeps keyboards out and autocomplete=off keeps autofill out.
        self.fields[self.layout.honeypot_name] = LooseField(
            required=False, label=_("Leave this field empty"),
            widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}))

    # --- for the templates ---
    @property
    def token_field(self) -> forms.BoundField:
        return self[TOKEN_FIELD]

    @property
    def honeypot_field(self) -> forms.BoundField:
        return self[self.layout.honeypot_name]

    @property
    def input_fields(self) -> list[forms.BoundField]:
        """The fields people fill in (the consent checkbox last), in the form's order."""
        names = [spec.html_name for spec in self.layout.specs]
        if self.layout.has_consent:
            names.append(CONSENT_FIELD)
        return [self[name] for name in names]

    @property
    def has_required_fields(self) -> bool:
        return any(self.fields[bf.name].required for bf in self.input_fields)

    # --- results ---
    def spam_reason(self) -> str | None:
        """Why this (bound) submission is spam, or None. Looks at the raw submitted values."""
        return spam.check_submission(
            self.signup_form,
            honeypot=self.data.get(self.layout.honeypot_name),
            token=self.data.get(TOKEN_FIELD),
        )

    def error_dict(self, *, api: bool = False) -> dict[str, list[str]]:
        """Errors as ``{key: [messages]}``: HTML input names, or JSON API keys with ``api``."""
        result: dict[str, list[str]] = {}
        for name, errors in self.errors.items():
            if name == NON_FIELD_ERRORS:
                key = NON_FIELD_KEY
            else:
                key = self.layout.api_key(name) if api else name
            result[key] = [str(message) for message in errors]
        return result

    def submission_values(self) -> CleanedSubmission:
        """The normalised values to store; call after ``is_valid()``."""
        email = ""
        phone = ""
        data: dict[str, Any] = {}
        for spec in self.layout.specs:
            value = self.cleaned_data.get(spec.html_name)
            if spec.kind == FieldKind.EMAIL:
                email = value or ""
            elif spec.kind == FieldKind.PHONE:
                phone = value or ""
            elif spec.kind in (FieldKind.FIRST_NAME, FieldKind.LAST_NAME):
                # Stored under the kind, whatever the field is called, so providers find them.
                if value:
                    data[spec.kind] = value
            elif spec.form_field is None:
                continue
            elif spec.kind == FieldKind.CHECKBOX:
                data[spec.form_field.name] = bool(value)
            elif spec.kind == FieldKind.DATE:
                if value:
                    data[spec.form_field.name] = value.isoformat()
            elif value not in (None, ""):
                data[spec.form_field.name] = value
        return CleanedSubmission(email=email, phone=phone, data=data)

    def renew_stale_token(self) -> None:
        """Before re-rendering a rejected form: replace a forged or expired token.

        A token that is only "too fast" is kept: by the time the visitor has fixed the errors
        it is old enough, whereas a fresh one could make a quick fix look like a bot.
        """
        if not self.is_bound:
            return
        reason = spam.check_token(self.data.get(TOKEN_FIELD), self.signup_form.form_type)
        if reason in (spam.Reason.BAD_TOKEN, spam.Reason.TOO_OLD):
            data = self.data.copy()
            data[TOKEN_FIELD] = spam.issue_token(self.signup_form.form_type)
            self.data = data
