"""Baselines for bench/submit.py and bench/latency.py, built the way a plain DRF site would.

- ``BareView``: the same input validation as the app's JSON endpoint, nothing stored.
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
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from esp_forms.models import SignupForm, Submission
from esp_forms.providers import get_provider


class SignupSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    first_name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    form_token = serializers.CharField(max_length=500)


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

    def valid(self, request: Request) -> dict[str, Any]:
        serializer = SignupSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class BareView(_Base):
    def post(self, request: Request) -> Response:
        self.valid(request)
        return Response({"ok": True}, status=202)


class FloorView(_Base):
    def post(self, request: Request) -> Response:
        data = self.valid(request)
        with transaction.atomic():
            row = Submission.objects.create(form=_form("bench-a"), email=data["email"],
                                            data={"first_name": data.get("first_name", "")})
            transaction.on_commit(lambda: _redis().lpush("bench-floor", str(row.pk)))
        return Response({"ok": True, "id": str(row.pk)}, status=202)


class InlineView(_Base):
    def post(self, request: Request) -> Response:
        data = self.valid(request)
        form = _form("bench-inline")
        row = Submission(form=form, email=data["email"],
                         data={"first_name": data.get("first_name", "")})
        result = get_provider(form.account).subscribe(row)
        row.provider_contact_id = result.contact_id
        row.delivery_status = "delivered"
        row.save()
        return Response({"ok": True, "id": str(row.pk)}, status=202)


def page(request: HttpRequest, template: str) -> HttpResponse:
    return render(request, template)
