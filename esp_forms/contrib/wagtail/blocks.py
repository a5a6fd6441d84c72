"""``SignupFormBlock``: a StreamField block that renders one of the active signup forms.

Editors pick the form from a list of the active forms, read when the editor opens (a form
added in the Django admin shows up without a restart or a migration: the block stores the
form's ``form_type`` and its choices are a callable). The page renders it exactly as
``{% esp_form %}`` does: the same template (per-form overrides included), the stylesheet and
script once per page, a form that was deactivated since renders as nothing. Headless sites
(Wagtail's API) get the form type and its JSON schema URL to build the form themselves.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from wagtail import blocks

from esp_forms.models import SignupForm
from esp_forms.views.signup import render_signup_form

logger = logging.getLogger("esp_forms.contrib.wagtail")

HEADINGS = [("h2", _("Heading 2")), ("h3", _("Heading 3")), ("h4", _("Heading 4"))]


def active_form_choices() -> list[tuple[str, str]]:
    """The active forms, as (form_type, "Title (form_type)"), for the editor's select."""
    return [(form_type, f"{title} ({form_type})") for form_type, title in
            SignupForm.objects.filter(is_active=True).order_by("title", "form_type")
            .values_list("form_type", "title")]


class SignupFormBlock(blocks.StructBlock):
    form_type = blocks.ChoiceBlock(
        choices=active_form_choices, label=_("Signup form"),
        help_text=_("Forms are set up in the Django admin; only active forms are listed."))
    heading = blocks.ChoiceBlock(
        choices=HEADINGS, default="h2", required=False, label=_("Title level"),
        help_text=_("The HTML heading level of the form's title on this page."))

    class Meta:
        icon = "mail"
        label = _("Signup form")
        form_classname = "esp-forms-signup-block"

    def render_basic(self, value: Any, context: dict[str, Any] | None = None) -> SafeString:
        form_type = str(value.get("form_type") or "")
        signup_form = (SignupForm.objects.select_related("account")
                       .filter(form_type=form_type, is_active=True).first())
        if signup_form is None:
            # A page must not break because a form was switched off after it was published.
            logger.warning("SignupFormBlock: there is no active signup form %r; nothing "
                           "rendered.", form_type)
            if settings.DEBUG:
                safe = escape(form_type).replace("--", "- -")
                return mark_safe(f"<!-- SignupFormBlock: no active signup form \"{safe}\" -->")
            return mark_safe("")
        request = (context or {}).get("request")
        return render_signup_form(request, signup_form, heading=value.get("heading") or "h2")

    def get_api_representation(self, value: Any, context: dict[str, Any] | None = None
                               ) -> dict[str, Any]:
        form_type = str(value.get("form_type") or "")
        schema_url = reverse("esp_forms:api_form", args=[form_type])
        request = (context or {}).get("request")
        return {
            "form_type": form_type,
            "heading": value.get("heading") or "h2",
            "schema_url": request.build_absolute_uri(schema_url) if request else schema_url,
        }
