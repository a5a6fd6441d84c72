"""Baselines for bench/submit.py and bench/latency.py, built the way a plain DRF site would.

- ``BareView``: the same input validation as the app's JSON endpoint (its own serializer and
  form classes, from the same cached form configuration), nothing stored.
- ``FloorView``: that validation, one committed row and one Redis push after commit: the least
  any "store first, deliver later" endpoint must do.
- ``InlineView``: what many signup plugins do: validate, call the provider in the request,
  then store.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from esp_forms import formcache
from esp_forms.api.serializers import SubmissionInputSerializer
from esp_forms.forms import FormLayout, SignupSubmissionForm
from esp_forms.models import SignupForm, Submission
from esp_forms.providers import get_provider


@functools.cache
def _form(form_type: str) -> SignupForm:
    return SignupForm.objects.select_related("account").get(form_type=form_type)


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


class _Base(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    throttle_classes: list[Any] = []
    form_type = "bench-a"

    def valid(self, request: Request) -> dict[str, Any]:
        """The app's own validation: the JSON shape, then the form's fields and token."""
        form = formcache.active_form(self.form_type)
        layout = FormLayout(form)
        body = SubmissionInputSerializer(data=request.data, context={"layout": layout})
        body.is_valid(raise_exception=True)
        bound = SignupSubmissionForm(form, data=body.validated_data, layout=layout)
        if not bound.is_valid():
            raise ValidationError(bound.errors)
        return dict(bound.submission_values())


class BareView(_Base):
    def post(self, request: Request) -> Response:
        self.valid(request)
        return Response({"ok": True}, status=202)


class FloorView(_Base):
    def post(self, request: Request) -> Response:
        data = self.valid(request)
        with transaction.atomic():
            row = Submission.objects.create(form=_form("bench-a"), email=data["email"],
                                            data=data.get("data") or {})
            transaction.on_commit(lambda: _redis().lpush("bench-floor", str(row.pk)))
        return Response({"ok": True, "id": str(row.pk)}, status=202)


class InlineView(_Base):
    form_type = "bench-inline"

    def post(self, request: Request) -> Response:
        data = self.valid(request)
        form = _form("bench-inline")
        row = Submission(form=form, email=data["email"], data=data.get("data") or {})
        result = get_provider(form.account).subscribe(row)
        row.provider_contact_id = result.contact_id
        row.delivery_status = "delivered"
        row.save()
        return Response({"ok": True, "id": str(row.pk)}, status=202)


def page(request: HttpRequest, template: str) -> HttpResponse:
    return render(request, template)
