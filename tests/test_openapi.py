"""The OpenAPI schema generates without a single warning and validates."""

from __future__ import annotations

from io import StringIO

import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import reverse


def test_spectacular_command_has_no_warnings(db):
    out = StringIO()
    # --fail-on-warn turns any warning or error of the generator into a failure.
    call_command("spectacular", "--fail-on-warn", "--validate", stdout=out, stderr=StringIO())
    schema = yaml.safe_load(out.getvalue())
    assert "/api/esp-forms/forms/{form_type}/submissions/" in schema["paths"]


def test_schema_endpoint_shows_the_app_api_only(db):
    response = Client().get(reverse("esp_forms:api_schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "esp_forms API"
    assert set(schema["paths"]) == {
        "/api/esp-forms/forms/{form_type}/",
        "/api/esp-forms/forms/{form_type}/submissions/",
        "/api/esp-forms/submissions/{id}/",
    }
    submit = schema["paths"]["/api/esp-forms/forms/{form_type}/submissions/"]["post"]
    assert set(submit["responses"]) == {"202", "400", "404", "413", "415", "429", "503"}
    body = schema["components"]["schemas"]["SubmissionInput"]["properties"]
    assert {"email", "phone", "first_name", "last_name", "fields", "consent", "form_token",
            "website"} <= set(body)
    status = schema["paths"]["/api/esp-forms/submissions/{id}/"]["get"]
    assert status["parameters"][0]["schema"]["format"] == "uuid"
