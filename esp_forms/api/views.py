"""The JSON API: a form's public schema, submissions and their status, and the OpenAPI schema.

The API authenticates no one and reads no cookies or session (``authentication_classes = []``),
so it needs no CSRF protection and can be opened to other origins with CORS: a cross-site page
can do with it exactly what anyone with curl can, and nothing more. What protects it is the
anti-spam token, the honeypot and the per-IP throttle.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.middleware.csrf import get_token
from django.urls import Resolver404, ResolverMatch, resolve, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.renderers import (
    OpenApiJsonRenderer,
    OpenApiJsonRenderer2,
    OpenApiYamlRenderer,
    OpenApiYamlRenderer2,
)
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from esp_forms import captcha, formcache, request_body, spam
from esp_forms.api.serializers import (
    ErrorSerializer,
    FormSchemaSerializer,
    SubmissionAcceptedSerializer,
    SubmissionInputSerializer,
    SubmissionStatusSerializer,
    flatten_errors,
)
from esp_forms.api.throttles import SubmitRateThrottle, throttled_message
from esp_forms.embed import script_texts
from esp_forms.forms import NON_FIELD_KEY, FormLayout, SignupSubmissionForm
from esp_forms.models import DeliveryStatus, FieldKind, SignupForm, Submission, visitor_text
from esp_forms.request_body import error_body
from esp_forms.submissions import initial_optin_status, process_signup

logger = logging.getLogger("esp_forms.api")

# --- plumbing -------------------------------------------------------------------------------

EMPTY_BODY = _lazy('The request body is empty; send a JSON object, e.g. '
                   '{"email": "ann@example.com"}.')


class BodyRejected(exceptions.APIException):
    """A ``request_body.BodyError`` as DRF sees it: its status and sentence."""

    def __init__(self, err: request_body.BodyError) -> None:
        self.status_code = err.status
        super().__init__(err.message)


class SafeJSONParser(BaseParser):
    """JSON only, read through ``esp_forms.request_body``: text charsets only (415), a size
    limit (413), strict decoding, bounded nesting and no lone surrogates (400)."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> Any:
        charset = request_body.content_type_and_charset(media_type)[1]
        try:
            return request_body.read_json(stream, charset)
        except request_body.BodyError as err:
            raise BodyRejected(err) from err


class AlwaysJSON(BaseContentNegotiation):
    """Answer JSON whatever the Accept header says; a 406 would help nobody here."""

    def select_parser(self, request: Request, parsers: list[BaseParser]) -> BaseParser | None:
        for parser in parsers:
            if parser.media_type == request.content_type.split(";")[0].strip():
                return parser
        return None

    def select_renderer(self, request: Request, renderers: list[Any],
                        format_suffix: str | None = None) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exceptions answered in the one error shape, with human messages."""
    headers: dict[str, str] = {}
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    if isinstance(exc, exceptions.Throttled):
        message = throttled_message(exc.wait)
        if exc.wait:
            headers["Retry-After"] = str(max(1, round(exc.wait)))
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        message = _("Send the body as JSON, with the header Content-Type: application/json.")
    elif isinstance(exc, exceptions.MethodNotAllowed):
        message = _("This address does not accept %(method)s requests.") % {
            "method": context["request"].method}
    elif isinstance(exc, exceptions.NotFound):
        message = str(exc.detail) if exc.args else _("Not found.")
    elif isinstance(exc, exceptions.APIException):
        message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else \
            _("The request could not be processed.")
    elif settings.DEBUG:
        return None  # Django's debug page
    else:
        # A bug: still answered in JSON, like everything under the API prefix.
        logger.exception("Unhandled error in %s", context["request"].path)
        set_rollback()
        message = _("Something went wrong on our side; please try again later.")
        return Response(error_body(message), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    set_rollback()
    return Response(error_body(message, {NON_FIELD_KEY: [message]}), status=exc.status_code,
                    headers=headers)


class PublicAPIView(APIView):
    """No authentication (so no session, no CSRF), JSON in and out, one error shape."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [SafeJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AlwaysJSON

    def get_exception_handler(self) -> Any:
        return api_exception_handler


def get_active_form(form_type: str) -> SignupForm:
    form = formcache.active_form(form_type)
    if form is None:
        raise Http404(_("There is no active signup form called “%(form_type)s”.") % {
            "form_type": form_type})
    return form


_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; see errors."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown or inactive form."),
}


# --- endpoints -------------------------------------------------------------------------------

class FormSchemaView(PublicAPIView):
    """``GET /api/esp-forms/forms/<form_type>/``: what to show and a fresh anti-spam token."""

    @extend_schema(
        operation_id="esp_forms_form_schema",
        summary="A form's public schema and a fresh anti-spam token",
        responses={200: FormSchemaSerializer, 404: _ERRORS[404]},
    )
    def get(self, request: Request, form_type: str) -> Response:
        form = get_active_form(form_type)
        layout = FormLayout(form)
        fields = []
        for spec in layout.specs:
            ff = spec.form_field
            fields.append({
                "name": ff.name if ff else spec.api_key,
                "label": visitor_text(ff.label if ff else "") or str(FieldKind(spec.kind).label),
                "kind": spec.kind,
                "required": True if spec.kind == "email" else bool(ff and ff.required),
                "choices": [{"value": v, "label": lbl} for v, lbl in (ff.choice_pairs if ff
                                                                     else [])],
                "help_text": ff.help_text if ff else "",
            })
        data = {
            "form_type": form.form_type,
            "title": form.title,
            "description": form.description,
            "fields": fields,
            "consent_text": form.consent_text,
            "submit_label": form.localized_submit_label,
            "form_token": spam.issue_token(form.form_type),
            "honeypot_field": layout.honeypot_name,
            "submit_url": request.build_absolute_uri(
                reverse("esp_forms:api_submit", args=[form.form_type])),
            # The bundled script posts the HTML form (same origin, CSRF-protected) from pages
            # that may be fully cached; this sets the CSRF cookie if missing and hands it the
            # matching token. Cross-origin callers send no cookies, so it is useless to them.
            # ?csrf=0 leaves the cookie alone: the script asks once per page, because parallel
            # cookie-less fetches would each set a different cookie (only one would survive).
            "csrf_token": "" if request.query_params.get("csrf") == "0"
            else get_token(request._request),
            "captcha": captcha.widget_context(form),
            "texts": script_texts(),
        }
        response = Response(FormSchemaSerializer(data).data)
        # Every answer carries a new token: never cache it anywhere.
        add_never_cache_headers(response)
        return response


class SubmissionCreateView(PublicAPIView):
    """``POST /api/esp-forms/forms/<form_type>/submissions/``."""

    throttle_classes = [SubmitRateThrottle]

    @extend_schema(
        operation_id="esp_forms_submit",
        summary="Submit a signup",
        description=(
            "Stores the signup and queues its delivery. Unknown keys are rejected. Submissions "
            "caught by the anti-spam checks are answered exactly like accepted ones."),
        request=SubmissionInputSerializer,
        responses={
            202: SubmissionAcceptedSerializer,
            400: _ERRORS[400],
            404: _ERRORS[404],
            413: OpenApiResponse(ErrorSerializer, description="The body is too large."),
            415: OpenApiResponse(ErrorSerializer, description="The body is not JSON, or its "
                                                              "charset is no text encoding."),
            429: OpenApiResponse(ErrorSerializer, description="Too many submissions from "
                                                              "this IP address."),
            503: OpenApiResponse(ErrorSerializer, description="The form's CAPTCHA verifier "
                                                              "could not be reached; retry."),
        },
    )
    def post(self, request: Request, form_type: str) -> Response:
        form = get_active_form(form_type)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            # DRF reads an empty body as {}; say what is wrong instead of "email required".
            raise exceptions.ParseError(EMPTY_BODY)
        layout = FormLayout(form)
        body = SubmissionInputSerializer(data=request.data, context={"layout": layout})
        if not body.is_valid():
            errors = flatten_errors(body.errors)
            return Response(error_body(_summary(form, errors), errors),
                            status=status.HTTP_400_BAD_REQUEST)
        bound = SignupSubmissionForm(form, data=body.validated_data, layout=layout)
        outcome = process_signup(bound, request._request, api=True)
        if not outcome.ok:
            return Response(error_body(outcome.message, outcome.errors),
                            status=outcome.status)
        return Response({
            "ok": True,
            "message": outcome.message,
            "id": str(outcome.public_id),
            "delivery_status": outcome.delivery_status,
            "optin_status": outcome.optin_status,
        }, status=status.HTTP_202_ACCEPTED)


def _summary(form: SignupForm, errors: dict[str, list[str]]) -> str:
    """The message of a 400 whose problem is the request's shape rather than a value."""
    if set(errors) == {NON_FIELD_KEY}:
        return errors[NON_FIELD_KEY][0]
    return form.localized_error_message


class SubmissionStatusView(PublicAPIView):
    """``GET /api/esp-forms/submissions/<id>/``: statuses only, never personal data."""

    @extend_schema(
        operation_id="esp_forms_submission_status",
        summary="A submission's delivery and opt-in status",
        responses={200: SubmissionStatusSerializer,
                   404: OpenApiResponse(ErrorSerializer, description="No such submission.")},
    )
    def get(self, request: Request, pk: uuid.UUID) -> Response:
        row = (Submission.objects.filter(pk=pk)
               .values("id", "form__form_type", "delivery_status", "optin_status").first())
        if row is not None:
            data = {"id": row["id"], "form_type": row["form__form_type"],
                    "delivery_status": row["delivery_status"],
                    "optin_status": row["optin_status"]}
        else:
            data = self._decoy(pk)
        response = Response(SubmissionStatusSerializer(data).data)
        add_never_cache_headers(response)
        return response

    @staticmethod
    def _decoy(pk: uuid.UUID) -> dict[str, Any]:
        """The status of an id handed to a dropped spam submission: pending, like a real one
        whose delivery is queued, so the status endpoint does not reveal the drop."""
        form_pk = spam.decoy_form_pk(pk)
        form = SignupForm.objects.filter(pk=form_pk).first() if form_pk else None
        if form is None:
            raise Http404(_("There is no submission with this id."))
        return {"id": pk, "form_type": form.form_type,
                "delivery_status": DeliveryStatus.PENDING,
                "optin_status": initial_optin_status(form)}


@csrf_exempt
def api_not_found(request: HttpRequest) -> HttpResponse:
    """Any other path under ``/api/esp-forms/``: a JSON 404 (a GET without the trailing slash
    is redirected, as Django's APPEND_SLASH would)."""
    path = request.path
    if not path.endswith("/"):
        match = _resolves(f"{path}/")
        if match is not None and match.url_name != "api_not_found":
            if request.method in ("GET", "HEAD"):
                return HttpResponsePermanentRedirect(f"{path}/")
            message = _("No such API endpoint. Did you mean %(path)s (with the trailing "
                        "slash)?") % {"path": request_body.shorten(f"{path}/", 200)}
            return JsonResponse(error_body(message), status=404)
    message = _("No such API endpoint. The API is: GET /api/esp-forms/forms/<form_type>/, "
                "POST /api/esp-forms/forms/<form_type>/submissions/, GET "
                "/api/esp-forms/submissions/<id>/ and the schema at /api/esp-forms/schema/.")
    return JsonResponse(error_body(message), status=404)


def _resolves(path: str) -> ResolverMatch | None:
    try:
        return resolve(path)
    except Resolver404:
        return None


def only_esp_forms_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
    """drf-spectacular preprocessing hook: the app's schema shows the app's API only."""
    ours = (FormSchemaView, SubmissionCreateView, SubmissionStatusView)
    return [endpoint for endpoint in endpoints
            if getattr(endpoint[3], "cls", None) in ours]


# JSON first, like every other answer under the API prefix; ?format=yaml still gives YAML.
schema_view = SpectacularAPIView.as_view(renderer_classes=[
    OpenApiJsonRenderer, OpenApiJsonRenderer2, OpenApiYamlRenderer, OpenApiYamlRenderer2,
], custom_settings={
    "TITLE": "esp_forms API",
    "DESCRIPTION": "Newsletter signup forms: a form's public schema, submissions and their "
                   "status. Errors are {\"ok\": false, \"message\", \"errors\": {key: [...]}}.",
    "VERSION": "1",
    "PREPROCESSING_HOOKS": ["esp_forms.api.views.only_esp_forms_endpoints"],
})
