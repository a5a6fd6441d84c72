"""What a form embedded on another site (``static/esp_forms/embed.js``) needs from the server
besides the form itself: the texts the bundled template renders around the fields, in the
visitor's language. The schema endpoint hands them out as ``texts``."""

from __future__ import annotations

from django.utils.translation import gettext


def script_texts() -> dict[str, str]:
    """The same msgids as esp_forms/form.html and forms.py, so one translation serves both."""
    return {
        "required": gettext("* required"),
        "choose": gettext("Choose…"),
        "none": gettext("(none)"),
        "network": gettext("We could not reach the server. Please check your connection and "
                           "try again."),
        "failed": gettext("Something went wrong on our side. Please try again in a moment."),
        "sending": gettext("Sending…"),
        "honeypot": gettext("Leave this field empty"),
    }
