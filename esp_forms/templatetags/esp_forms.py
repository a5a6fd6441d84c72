"""``{% load esp_forms %}{% esp_form "newsletter" %}`` renders a signup form on any page.

The form needs ``request`` in the template context (the ``request`` context processor, or
``render(request, ...)``) for its CSRF token. The stylesheet and script are emitted with the
first form of a request; ``{% esp_forms_assets %}`` puts them elsewhere (e.g. in ``<head>``).

An unknown or inactive form never breaks the page: it renders as nothing and logs a warning, or
as an HTML comment that says why when ``DEBUG`` is on.
"""

from __future__ import annotations

import logging
from typing import Any

from django import template
from django.conf import settings
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from esp_forms import formcache
from esp_forms.views.signup import render_assets, render_signup_form

logger = logging.getLogger("esp_forms.templatetags")

register = template.Library()


def _render_state(context: template.Context) -> dict[Any, Any]:
    # The RenderContext object is shared by every tag of one template render, includes too:
    # the place to remember that the assets were emitted when there is no request.
    state = getattr(context.render_context, "_esp_forms_state", None)
    if state is None:
        state = {}
        context.render_context._esp_forms_state = state  # type: ignore[attr-defined]
    return state


@register.simple_tag(takes_context=True)
def esp_form(context: template.Context, form_type: str) -> SafeString:
    request = context.get("request")
    signup_form = formcache.active_form(str(form_type))
    if signup_form is None:
        logger.warning("{%% esp_form %%}: there is no active signup form %r; nothing rendered.",
                       form_type)
        if settings.DEBUG:
            # escape() leaves dashes alone; break up "--" so the comment cannot be closed
            # early by whatever the template passed as the form type.
            safe = escape(str(form_type)).replace("--", "- -")
            return mark_safe(f"<!-- esp_form: no active signup form \"{safe}\" -->")
        return mark_safe("")
    if request is None:
        logger.warning("{%% esp_form %r %%} rendered without request in the context: the form "
                       "has no CSRF token, so it only works with JavaScript. Add the 'request' "
                       "context processor.", form_type)
    return render_signup_form(request, signup_form, render_state=_render_state(context))


@register.simple_tag(takes_context=True)
def esp_forms_assets(context: template.Context) -> SafeString:
    """The stylesheet and script tags, if no form on this page has emitted them yet."""
    return render_assets(context.get("request"), _render_state(context))
