"""Shapes of the JSON API: the submission body (checked here, then validated by
``esp_forms.forms``), and the answers, which also feed the OpenAPI schema.

Every error answer, here and in the HTML form's JSON answers, has one shape::

    {"ok": false, "message": "<a sentence to show>", "errors": {"<key>": ["<message>", ...]}}

where ``<key>`` is the name of what was sent: a top-level JSON key (``email``, ``consent``...),
``fields.<name>`` for a custom field, or ``non_field_errors`` for the request as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from esp_forms import spam
from esp_forms.captcha import verifier_for as captcha_verifier_for
from esp_forms.forms import CONSENT_FIELD, NON_FIELD_KEY, TOKEN_FIELD, FormLayout
from esp_forms.models import DeliveryStatus, FieldKind, OptinStatus
from esp_forms.request_body import shorten

STANDARD_KEYS = ("email", "phone", "first_name", "last_name")

_TEXT_ERRORS = {"invalid": _("Send this as a string."), "null": _("Send this as a string.")}
_BOOL_ERRORS = {"invalid": _("Send true or false.")}
# An error answer names this many unknown keys and counts the rest, so a body with 100k
# unknown keys gets a small answer.
MAX_NAMED_KEYS = 5
_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no", ""}


def _checkbox_value(value: Any) -> bool | None:
    """A JSON checkbox value as a bool, or None when it is not one."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _scalar_text(value: Any) -> str | None:
    """A JSON value for a text-like field as a string, or None when it is a list/object/bool."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value)


def flatten_errors(errors: Mapping[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """DRF's (possibly nested) errors as ``{key: [sentences]}``: nested keys are joined with
    dots (``fields.<name>``), and every message is plain text, never a repr."""
    flat: dict[str, list[str]] = {}
    for key, value in errors.items():
        name = f"{prefix}{shorten(str(key))}"
        if isinstance(value, Mapping):
            flat.update(flatten_errors(value, prefix=f"{name}."))
        else:
            items = value if isinstance(value, (list, tuple)) else [value]
            for item in items:
                if isinstance(item, Mapping):
                    flat.update(flatten_errors(item, prefix=f"{name}."))
                else:
                    flat.setdefault(name, []).append(str(item))
    return flat


def report_unknown(errors: dict[str, Any], keys: list[str], message: str,
                   prefix: str = "") -> None:
    """Name the first few unknown keys (shortened) with ``message``; count the rest."""
    for key in keys[:MAX_NAMED_KEYS]:
        errors[f"{prefix}{shorten(key)}"] = [message]
    rest = len(keys) - MAX_NAMED_KEYS
    if rest > 0:
        errors.setdefault(NON_FIELD_KEY, []).append(
            _("…and %(count)s more unknown keys.") % {"count": f"{rest:,}"})


class StrictCharField(serializers.CharField):
    """A JSON string, as the schema says: DRF's CharField would also take 123 as "123"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false, as the schema says: DRF's BooleanField also takes "yes" or 1."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field({"type": "string", "format": "email", "minLength": 1, "maxLength": 254})
class EmailText(StrictCharField):
    """The email as sent: checked by the form (email-validator), documented as an email."""


class SubmissionInputSerializer(serializers.Serializer):
    """The body of ``POST /api/esp-forms/forms/<form_type>/submissions/``.

    Give it ``context={"layout": FormLayout(form)}``; ``validated_data`` is then the data to
    bind a ``SignupSubmissionForm`` to (HTML input names as keys). All shape errors (unknown
    keys, wrong JSON types, fields this form does not have) are reported together.
    """

    email = EmailText(
        required=True, trim_whitespace=False,
        error_messages={**_TEXT_ERRORS, "required": _("Enter your email address."),
                        "null": _("Enter your email address."),
                        "blank": _("Enter your email address.")},
        help_text="The email address.")
    phone = StrictCharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
        error_messages=_TEXT_ERRORS,
        help_text="Phone number; stored in E.164. Only when the form has a phone field.")
    first_name = StrictCharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
        error_messages=_TEXT_ERRORS, help_text="Only when the form has a first name field.")
    last_name = StrictCharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
        error_messages=_TEXT_ERRORS, help_text="Only when the form has a last name field.")
    fields = serializers.DictField(
        required=False, allow_null=True, child=serializers.JSONField(),
        error_messages={"not_a_dict": _("Send an object of field names and values.")},
        help_text="The form's other fields by FormField name: strings, true/false for "
                  "checkboxes, YYYY-MM-DD for dates, a listed value for choices.")
    consent = StrictBooleanField(
        required=False, allow_null=True, error_messages=_BOOL_ERRORS,
        help_text="true when the visitor ticked the consent checkbox (required when the form "
                  "has consent_text).")
    form_token = StrictCharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
        error_messages=_TEXT_ERRORS,
        help_text="The form_token from GET /api/esp-forms/forms/<form_type>/, sent back "
                  "unchanged.")
    captcha = StrictCharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
        error_messages=_TEXT_ERRORS,
        help_text="The CAPTCHA widget's answer, when the form schema has a captcha (Turnstile: "
                  "cf-turnstile-response; hCaptcha: h-captcha-response).")

    default_error_messages = {
        "invalid": _('The body must be a JSON object, e.g. {"email": "ann@example.com"}.'),
    }

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # The honeypot's name is a setting, so the field is added here rather than declared.
        fields[spam.honeypot_field_name()] = serializers.JSONField(
            required=False, allow_null=True,
            help_text="Anti-spam trap: always leave out or send empty.")
        return fields

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({NON_FIELD_KEY: [self.error_messages["invalid"]]})
        known = set(self.fields)
        errors: dict[str, Any] = {}
        report_unknown(errors, [str(key) for key in data if key not in known],
                       _("Unknown field: this API accepts %(keys)s.") % {
                           "keys": ", ".join(sorted(known))})
        try:
            attrs = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors.update(flatten_errors(exc.detail) if isinstance(exc.detail, Mapping)
                          else {NON_FIELD_KEY: [str(m) for m in exc.detail]})
            attrs = {}
        # Report everything wrong at once: unknown keys, wrong types and what does not fit
        # this form (values of keys that already failed are simply absent here).
        mapped = self._to_form_data(attrs, errors)
        if errors:
            raise serializers.ValidationError(errors)
        return mapped

    def _to_form_data(self, attrs: dict[str, Any], errors: dict[str, Any]) -> dict[str, Any]:
        """Map the JSON onto the form's HTML input names, checking what depends on the form."""
        layout: FormLayout = self.context["layout"]
        data: dict[str, Any] = {}
        for key in STANDARD_KEYS:
            value = attrs.get(key)
            spec = layout.by_api_key.get(key)
            if spec is None:
                if value not in (None, ""):
                    errors[key] = [_("This form has no %(field)s field.") % {
                        "field": FieldKind(key).label.lower()}]
                continue
            data[spec.html_name] = value or ""
        custom_names = sorted(key.split(".", 1)[1] for key in layout.by_api_key
                              if key.startswith("fields."))
        unknown: list[str] = []
        for name, value in (attrs.get("fields") or {}).items():
            key = f"fields.{name}"
            spec = layout.by_api_key.get(key)
            if spec is None:
                standard = next((s for s in layout.specs if s.form_field is not None
                                 and s.form_field.name == name and s.api_key in STANDARD_KEYS),
                                None)
                if standard is not None:
                    errors[key] = [_('Send this at the top level, as "%(key)s".') % {
                        "key": standard.api_key}]
                else:
                    unknown.append(name)
                continue
            if spec.kind == FieldKind.CHECKBOX:
                checked = _checkbox_value(value)
                if checked is None:
                    errors[key] = [str(_BOOL_ERRORS["invalid"])]
                else:
                    data[spec.html_name] = checked
            else:
                text = _scalar_text(value)
                if text is None:
                    errors[key] = [str(_TEXT_ERRORS["invalid"])]
                else:
                    data[spec.html_name] = text
        report_unknown(errors, unknown, _("Unknown field: this form's fields are %(names)s.") % {
            "names": ", ".join(custom_names) or _("(none)")}, prefix="fields.")
        if layout.has_consent:
            data[CONSENT_FIELD] = bool(attrs.get("consent"))
        verifier = captcha_verifier_for(layout.signup_form)
        if verifier is not None:
            data[verifier.response_field] = attrs.get("captcha") or ""
        data[TOKEN_FIELD] = attrs.get("form_token") or ""
        data[layout.honeypot_name] = attrs.get(layout.honeypot_name)
        return data


# --- answers ------------------------------------------------------------------------------

class ChoiceSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField()


class FieldSchemaSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text="The FormField's name: the HTML input name, and the key under \"fields\" "
                  "for kinds other than email, phone, first_name and last_name (those go at "
                  "the top level under the kind).")
    label = serializers.CharField()
    kind = serializers.ChoiceField(choices=FieldKind.choices)
    required = serializers.BooleanField()
    choices = ChoiceSerializer(many=True, help_text="Allowed values of a choice field.")
    help_text = serializers.CharField(allow_blank=True)


class ScriptTextsSerializer(serializers.Serializer):
    """The texts around the fields, in the visitor's language, for forms built from this schema
    (the embed script)."""

    required = serializers.CharField(help_text="The legend explaining the * marks.")
    choose = serializers.CharField(help_text="Empty option of a required choice field.")
    none = serializers.CharField(help_text="Empty option of an optional choice field.")
    network = serializers.CharField(help_text="Shown when the server cannot be reached.")
    failed = serializers.CharField(help_text="Shown when the answer is not the API's JSON.")
    sending = serializers.CharField(help_text="The submit button's label while sending.")
    honeypot = serializers.CharField(help_text="Label of the (hidden) anti-spam trap field.")


class CaptchaSchemaSerializer(serializers.Serializer):
    provider = serializers.ChoiceField(choices=["turnstile", "hcaptcha"])
    site_key = serializers.CharField(allow_blank=True)
    script_url = serializers.CharField()
    response_field = serializers.CharField(
        help_text="The hidden input the widget adds to an HTML form.")
    widget_class = serializers.CharField(
        help_text="The class of the element the provider's script turns into the widget.")


class FormSchemaSerializer(serializers.Serializer):
    form_type = serializers.SlugField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    fields = FieldSchemaSerializer(many=True)
    consent_text = serializers.CharField(
        allow_blank=True, help_text="When not empty, the submission needs \"consent\": true.")
    submit_label = serializers.CharField()
    form_token = serializers.CharField(
        help_text="Signed anti-spam token: send it back as form_token, no sooner than "
                  "MIN_FILL_SECONDS and no later than MAX_FORM_AGE after this answer.")
    honeypot_field = serializers.CharField(
        help_text="Name of the anti-spam trap key: never send a value for it.")
    submit_url = serializers.URLField(help_text="Where to POST the JSON submission.")
    csrf_token = serializers.CharField(
        allow_blank=True,
        help_text="For the bundled script's same-origin HTML form post only; the JSON API "
                  "does not use it. Empty when asked with ?csrf=0 (then no CSRF cookie is "
                  "set either).")
    captcha = CaptchaSchemaSerializer(
        allow_null=True,
        help_text="null, or the CAPTCHA to show: render the provider's widget with site_key "
                  "(script_url loads it) and send its answer as \"captcha\".")
    texts = ScriptTextsSerializer(help_text="Texts for building the form elsewhere (embed.js).")


class SubmissionAcceptedSerializer(serializers.Serializer):
    ok = serializers.BooleanField(default=True)
    message = serializers.CharField(help_text="The form's success (or already subscribed) "
                                              "message, to show to the visitor.")
    id = serializers.UUIDField()
    delivery_status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    optin_status = serializers.ChoiceField(choices=OptinStatus.choices)


class SubmissionStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    form_type = serializers.SlugField()
    delivery_status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    optin_status = serializers.ChoiceField(choices=OptinStatus.choices)


class ErrorSerializer(serializers.Serializer):
    ok = serializers.BooleanField(default=False)
    message = serializers.CharField(help_text="A sentence to show to the visitor.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages by the key that was sent (fields.<name> for custom fields, "
                  "non_field_errors for the request as a whole).")
