"""The local double opt-in link: ``GET`` shows a page, only ``POST`` confirms.

Mail scanners and link prefetchers open every link in an email, and some run the page's
scripts; if a GET (or a script on the page) confirmed, they would confirm people who never
clicked. So the page has a plain button and nothing submits it but a person.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from esp_forms import optin
from esp_forms.client_ip import get_client_ip

TEMPLATE = "esp_forms/confirm.html"


# The signed token in the URL is the proof; there is no session or cookie to forge a request
# with, and webmail in-app browsers often drop the CSRF cookie, so CSRF would only lock people out.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    if request.method == "GET":
        try:
            optin.read_token(token)
        except Exception:
            return render(request, TEMPLATE, {"state": "error",
                          "error": _("This confirmation link is not valid or has expired.")},
                          status=404)
        return render(request, TEMPLATE, {"state": "ask", "token": token})
    try:
        submission = optin.confirm(token, ip=get_client_ip(request))
    except optin.ConfirmationError as err:
        return render(request, TEMPLATE, {"state": "error", "error": str(err)}, status=400)
    return render(request, TEMPLATE, {"state": "done", "form": submission.form})
