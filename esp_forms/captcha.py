"""CAPTCHA, switched on per form (``SignupForm.captcha``): Cloudflare Turnstile or hCaptcha.

The widget is rendered into the HTML form (and described in the JSON API's form schema); the
visitor's answer comes back as the widget's hidden input (HTML form) or as ``"captcha"`` (JSON
API) and is checked here with the provider's siteverify endpoint, after the form's other checks
(the answer is single-use, so a visitor fixing a typo is not made to solve it twice).

Both verifiers take a form-encoded POST of ``secret``, ``response`` and ``remoteip`` and answer
``{"success": bool, "error-codes": [...]}``:
https://developers.cloudflare.com/turnstile/get-started/server-side-validation/ and
https://docs.hcaptcha.com/#verify-the-user-response-server-side. The endpoint is a setting
(``TURNSTILE_VERIFY_URL``, ``HCAPTCHA_VERIFY_URL``) so tests use a local stand-in.

When the verifier cannot be reached (timeout, connection error, 5xx, not JSON) the signup is
refused with a "try again" message (fail closed), unless ``CAPTCHA_FAIL_OPEN`` is True: then it
is accepted and left to the abuse gate's budgets. Fail closed is the default because a CAPTCHA
that switches itself off whenever its verifier is slow protects nothing against a bot that
waits for that; the visitor is told, so nothing is lost silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests
from django.utils.translation import gettext_lazy as _

from esp_forms.conf import get_setting
from esp_forms.models import Captcha, SignupForm

logger = logging.getLogger("esp_forms.captcha")

# The key of the answer in the JSON API, and the error key in both answers.
API_KEY = "captcha"


@dataclass(frozen=True)
class Verifier:
    name: str
    label: str
    settings_prefix: str
    # The hidden input the provider's widget adds to the form.
    response_field: str
    # The widget's placeholder element class.
    widget_class: str

    def setting(self, suffix: str) -> Any:
        return get_setting(f"{self.settings_prefix}_{suffix}")

    @property
    def site_key(self) -> str:
        return str(self.setting("SITE_KEY") or "")

    @property
    def secret_key(self) -> str:
        return str(self.setting("SECRET_KEY") or "")


VERIFIERS = {
    Captcha.TURNSTILE: Verifier("turnstile", "Cloudflare Turnstile", "TURNSTILE",
                                "cf-turnstile-response", "cf-turnstile"),
    Captcha.HCAPTCHA: Verifier("hcaptcha", "hCaptcha", "HCAPTCHA", "h-captcha-response",
                               "h-captcha"),
}

FAILED = _("Please complete the CAPTCHA check and try again.")
UNAVAILABLE = _("We could not check the CAPTCHA just now. Please try again in a moment.")


def verifier_for(form: SignupForm) -> Verifier | None:
    return VERIFIERS.get(form.captcha) if form.captcha else None


def widget_context(form: SignupForm) -> dict[str, str] | None:
    """What the HTML form and the JSON schema show of the form's CAPTCHA, or None."""
    verifier = verifier_for(form)
    if verifier is None:
        return None
    return {"provider": verifier.name, "site_key": verifier.site_key,
            "script_url": str(verifier.setting("SCRIPT_URL")),
            "response_field": verifier.response_field, "widget_class": verifier.widget_class}


@dataclass(frozen=True)
class Result:
    """``ok``: the signup may go on. ``reason``: the SpamCount reason of a refusal (or of a
    verifier outage let through by CAPTCHA_FAIL_OPEN). ``unavailable``: the verifier was down."""

    ok: bool
    reason: str | None = None
    message: str = ""
    unavailable: bool = False


def verify(form: SignupForm, answer: object, *, ip: str | None) -> Result:
    """Check the visitor's CAPTCHA answer for ``form`` (Result(ok=True) when it has none)."""
    from esp_forms.models import SpamCount

    verifier = verifier_for(form)
    if verifier is None:
        return Result(ok=True)
    if not isinstance(answer, str) or not answer.strip() or len(answer) > 4096:
        return Result(ok=False, reason=SpamCount.Reason.CAPTCHA_FAILED, message=str(FAILED))
    payload = {"secret": verifier.secret_key, "response": answer.strip()}
    if ip:
        payload["remoteip"] = ip
    if verifier.name == "hcaptcha" and verifier.site_key:
        payload["sitekey"] = verifier.site_key
    try:
        response = requests.post(str(verifier.setting("VERIFY_URL")), data=payload,
                                 timeout=float(get_setting("CAPTCHA_TIMEOUT")))
        if response.status_code >= 500:
            raise requests.HTTPError(f"HTTP {response.status_code}")
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
            raise ValueError(f"unexpected answer: {response.text[:200]!r}")
    except (requests.RequestException, ValueError) as err:
        logger.warning("%s verifier unreachable for form %s: %s", verifier.label,
                       form.form_type, err)
        if get_setting("CAPTCHA_FAIL_OPEN"):
            return Result(ok=True, reason=SpamCount.Reason.CAPTCHA_UNAVAILABLE,
                          unavailable=True)
        return Result(ok=False, reason=SpamCount.Reason.CAPTCHA_UNAVAILABLE,
                      message=str(UNAVAILABLE), unavailable=True)
    if body["success"]:
        return Result(ok=True)
    codes = body.get("error-codes") or []
    if any(code in ("missing-input-secret", "invalid-input-secret", "sitekey-secret-mismatch")
           for code in codes if isinstance(code, str)):
        # Our configuration, not the visitor: say so in the logs (system check E016 covers
        # missing keys).
        logger.error("%s rejected the site's secret key for form %s: %s", verifier.label,
                     form.form_type, codes)
    return Result(ok=False, reason=SpamCount.Reason.CAPTCHA_FAILED, message=str(FAILED))
