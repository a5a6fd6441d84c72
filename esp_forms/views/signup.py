"""The HTML signup form: its page, its POST target, and the rendering the template tag shares.

``POST /forms/<form_type>/`` is CSRF-protected. Without JavaScript it re-renders the page with
the errors (400), or shows the success message (or redirects to ``redirect_url``). The bundled
script posts the same form with ``X-Requested-With: XMLHttpRequest`` and gets JSON in the API's
error shape instead: ``{"ok", "message", "errors": {<input name>: [messages]}}``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedRedirect
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.middleware.csrf import get_token
from django.template.loader import render_to_string, select_template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from esp_forms import captcha, formcache, request_body, spam
from esp_forms.api.throttles import SubmitRateThrottle, throttled_message
from esp_forms.conf import get_setting
from esp_forms.forms import NON_FIELD_KEY, TOKEN_FIELD, SignupSubmissionForm
from esp_forms.models import SignupForm
from esp_forms.spam import honeypot_field_name
from esp_forms.submissions import process_signup

logger = logging.getLogger("esp_forms.views")

FORM_TEMPLATE = "esp_forms/form.html"
PAGE_TEMPLATE = "esp_forms/page.html"
ASSETS_TEMPLATE = "esp_forms/includes/assets.html"

_IDS_ATTR = "_esp_forms_ids"
_ASSETS_ATTR = "_esp_forms_assets_done"
_CAPTCHA_ATTR = "_esp_forms_captcha_scripts"


def form_templates(form_type: str) -> list[str]:
    """A per-form override first, then the default template."""
    return [f"esp_forms/forms/{form_type}.html", FORM_TEMPLATE]


def next_uid(request: HttpRequest | None, form_type: str) -> str:
    """A prefix for element ids, unique per form instance on the page.

    Counted per request, so the ids are stable between renders (``esp-newsletter``,
    ``esp-newsletter-2``...); without a request, a random suffix keeps them apart.
    """
    base = f"esp-{form_type}"
    if request is None:
        return f"{base}-{secrets.token_hex(3)}"
    counts: dict[str, int] = getattr(request, _IDS_ATTR, None) or {}
    counts[form_type] = counts.get(form_type, 0) + 1
    setattr(request, _IDS_ATTR, counts)
    return base if counts[form_type] == 1 else f"{base}-{counts[form_type]}"


def render_assets(request: HttpRequest | None, render_state: dict[Any, Any] | None = None
                  ) -> SafeString:
    """The stylesheet and script tags, once per request (or per template render)."""
    if request is not None:
        if getattr(request, _ASSETS_ATTR, False):
            return mark_safe("")
        setattr(request, _ASSETS_ATTR, True)
    elif render_state is not None:
        if render_state.get(_ASSETS_ATTR):
            return mark_safe("")
        render_state[_ASSETS_ATTR] = True
    return mark_safe(formcache.rendered(("assets",), lambda: render_to_string(ASSETS_TEMPLATE, {
        "css_url": static("esp_forms/esp_forms.css"),
        "js_url": static("esp_forms/esp_forms.js"),
    })))


def _captcha_script(request: HttpRequest | None, signup_form: SignupForm,
                    render_state: dict[Any, Any] | None) -> str:
    """The CAPTCHA provider's script URL, with the first form of the page that needs it (the
    script renders every widget of its kind on the page, and must not be loaded twice)."""
    widget = captcha.widget_context(signup_form)
    if widget is None:
        return ""
    done: set[str]
    if request is not None:
        done = getattr(request, _CAPTCHA_ATTR, None) or set()
        setattr(request, _CAPTCHA_ATTR, done)
    elif render_state is not None:
        done = render_state.setdefault(_CAPTCHA_ATTR, set())
    else:
        done = set()
    if widget["provider"] in done:
        return ""
    done.add(widget["provider"])
    return widget["script_url"]


def render_signup_form(request: HttpRequest | None, signup_form: SignupForm, *,
                       form: SignupSubmissionForm | None = None, message: str = "",
                       message_kind: str = "", done: bool = False, heading: str = "h2",
                       assets: bool = True, render_state: dict[Any, Any] | None = None,
                       extra_context: dict[str, Any] | None = None) -> SafeString:
    """The form's HTML (override template first), as the page and the template tag show it."""
    # Not with DEBUG on: a template edited during development shows at once.
    # Nor for a CAPTCHA form: its provider's script goes with the page's first such form only.
    if (form is None and request is not None and not message and not done
            and get_setting("FORM_CACHE_SECONDS") and not settings.DEBUG
            and not signup_form.captcha):
        return _render_from_cache(request, signup_form, heading=heading, assets=assets,
                                  render_state=render_state)
    if form is None:
        form = SignupSubmissionForm(signup_form, uid=next_uid(request, signup_form.form_type))
    context = {
        "signup_form": signup_form,
        "form": form,
        "uid": form.uid,
        "action_url": reverse("esp_forms:form", args=[signup_form.form_type]),
        "schema_url": reverse("esp_forms:api_form", args=[signup_form.form_type]),
        "message": message,
        "message_kind": message_kind,
        "done": done,
        "heading": heading if heading in {"h1", "h2", "h3", "h4"} else "h2",
        "assets": render_assets(request, render_state) if assets else "",
        "captcha": captcha.widget_context(signup_form),
        "captcha_script": _captcha_script(request, signup_form, render_state),
        **(extra_context or {}),
    }
    template = select_template(form_templates(signup_form.form_type))
    return mark_safe(template.render(context, request))


# Placeholders in a cached form skeleton for what differs per request (never in real output).
_UID, _CSRF, _TOKEN, _ASSETS = ("espuid0c4ch3d", "espcsrf0c4ch3d", "esptoken0c4ch3d",
                                "espassets0c4ch3d")
_MEMO_ATTR = "_esp_forms_render_memo"


def _render_from_cache(request: HttpRequest, signup_form: SignupForm, *, heading: str,
                       assets: bool, render_state: dict[Any, Any] | None) -> SafeString:
    """A blank form is the same HTML on every page view but for its element ids, its CSRF and
    anti-spam tokens and the assets: render it once per process and language (the form cache
    drops it when the form changes) and fill those in. The template then sees only the
    context render_signup_form gives it, not the request."""

    def render() -> str:
        form = SignupSubmissionForm(signup_form, uid=_UID)
        token = str(form.fields[TOKEN_FIELD].initial)
        html = str(render_signup_form(None, signup_form, form=form, heading=heading,
                                      assets=False, extra_context={
                                          "csrf_token": _CSRF, "assets": mark_safe(_ASSETS)}))
        return html.replace(token, _TOKEN)

    skeleton = formcache.rendered(
        (signup_form.pk, signup_form.form_type, heading, get_language()), render)
    uid = next_uid(request, signup_form.form_type)
    # One CSRF token and one anti-spam token per form type for the whole page view: masking
    # and signing them again for each form on the page would cost more than the rest.
    memo: dict[str, str] = getattr(request, _MEMO_ATTR, None) or {}
    setattr(request, _MEMO_ATTR, memo)
    if _CSRF not in memo:
        memo[_CSRF] = get_token(request)
    token_key = f"token:{signup_form.form_type}"
    if token_key not in memo:
        memo[token_key] = spam.issue_token(signup_form.form_type)
    return mark_safe(
        skeleton.replace(_UID, uid).replace(_CSRF, memo[_CSRF])
        .replace(_TOKEN, memo[token_key])
        .replace(_ASSETS, render_assets(request, render_state) if assets else ""))


def wants_json(request: HttpRequest) -> bool:
    """The bundled script (or any client that asks for JSON) gets JSON answers."""
    return (request.headers.get("x-requested-with") == "XMLHttpRequest"
            or "application/json" in request.headers.get("accept", ""))


def _page(request: HttpRequest, signup_form: SignupForm, *, status: int = 200,
          **kwargs: Any) -> HttpResponse:
    form_html = render_signup_form(request, signup_form, heading="h1", assets=False, **kwargs)
    html = render_to_string(PAGE_TEMPLATE, {
        "signup_form": signup_form, "form_html": form_html,
        "assets": render_assets(request),
    }, request)
    return HttpResponse(html, status=status)


# CSRF is checked after the body: CsrfViewMiddleware reads request.POST, and a body in a codec
# charset or with invalid UTF-8 must get its 4xx here instead of a 500 (or U+FFFD) there.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def form_page(request: HttpRequest, form_type: str) -> HttpResponse:
    if request.method == "POST":
        rejected = request_body.guard(request_body.check_form_post, request)
        if rejected is not None:
            return rejected
    return _form_page(request, form_type)


@csrf_protect
def _form_page(request: HttpRequest, form_type: str) -> HttpResponse:
    signup_form = formcache.active_form(form_type)
    if signup_form is None:
        raise Http404("No SignupForm matches the given query.")
    if request.method != "POST":
        return _page(request, signup_form)

    as_json = wants_json(request)
    throttle = SubmitRateThrottle()
    if not throttle.allow_request(request, None):
        wait = throttle.wait()
        message = throttled_message(wait)
        headers = {"Retry-After": str(max(1, round(wait)))} if wait else {}
        if as_json:
            return JsonResponse({"ok": False, "message": message,
                                 "errors": {NON_FIELD_KEY: [message]}},
                                status=429, headers=headers)
        # Keep what the visitor typed (not the token, trap or CSRF token) so nothing is lost.
        skip = {TOKEN_FIELD, "csrfmiddlewaretoken", honeypot_field_name()}
        initial = {key: value for key, value in request.POST.items() if key not in skip}
        form = SignupSubmissionForm(signup_form, initial=initial,
                                    uid=next_uid(request, form_type))
        response = _page(request, signup_form, form=form, message=message,
                         message_kind="error", status=429)
        for key, value in headers.items():
            response[key] = value
        return response

    bound = SignupSubmissionForm(signup_form, data=request.POST,
                                 uid=next_uid(request, form_type))
    outcome = process_signup(bound, request)
    if not outcome.ok:
        if as_json:
            return JsonResponse({"ok": False, "message": outcome.message,
                                 "errors": outcome.errors}, status=outcome.status)
        bound.renew_stale_token()
        return _page(request, signup_form, form=bound, message=outcome.message,
                     message_kind="error", status=outcome.status)
    if as_json:
        return JsonResponse({"ok": True, "message": outcome.message, "errors": {}})
    if signup_form.redirect_url:
        try:
            return HttpResponseRedirect(signup_form.redirect_url)
        except DisallowedRedirect:
            logger.warning("Form %s has a redirect URL with a disallowed scheme; showing the "
                           "success message instead.", form_type)
    return _page(request, signup_form, form=bound, message=outcome.message,
                 message_kind="success", done=True)
