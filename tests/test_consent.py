"""Consent records: one person's export, and an erase that keeps every count."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from esp_forms import consent
from esp_forms.admin import annotate_counts
from esp_forms.models import (
    DeliveryStatus,
    EventKind,
    OptinStatus,
    SandboxContact,
    SignupForm,
    Submission,
)
from tests.conftest import make_form, make_submission

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def olena(newsletter, sandbox_account):
    """Olena signed up twice (two spellings of her address, two forms); Petro once."""
    other = make_form(sandbox_account, "offers", consent_text="I agree to receive offers.")
    first = make_submission(newsletter, "Olena@example.com", user_agent="Firefox/130",
                            delivery_status=DeliveryStatus.DELIVERED, provider_contact_id="77",
                            optin_status=OptinStatus.CONFIRMED, phone="+380501234567")
    first.events.create(kind=EventKind.ATTEMPT, message="Subscribe contact",
                        data={"request": {"email": "Olena@example.com", "api_key": "[redacted]"},
                              "response": {"status": 200, "body": {"id": 77}}})
    first.events.create(kind=EventKind.FAILED, message="Provider said: olena@EXAMPLE.com is bad")
    second = make_submission(other, "olena@example.com", consent_text=other.consent_text,
                             delivery_status=DeliveryStatus.FAILED,
                             last_error="Invalid contact olena@example.com")
    petro = make_submission(newsletter, "petro@example.com",
                            delivery_status=DeliveryStatus.DELIVERED)
    SandboxContact.objects.create(account=sandbox_account, email="olena@example.com",
                                  status=SandboxContact.Status.ACTIVE)
    return first, second, petro


def test_export_lists_everything_held_about_one_address(olena):
    first, second, petro = olena
    doc = json.loads(consent.export_json(["  OLENA@Example.COM "]))

    assert (doc["format"], doc["version"]) == ("esp_forms.consent_export", 1)
    [person] = doc["people"]
    assert person["email"] == "olena@example.com"
    by_id = {s["id"]: s for s in person["submissions"]}
    assert set(by_id) == {str(first.pk), str(second.pk)}  # not Petro's
    one = by_id[str(first.pk)]
    assert one["form"] == {"form_type": "newsletter", "title": "Newsletter"}
    assert (one["email"], one["phone"], one["ip"], one["user_agent"]) == (
        "Olena@example.com", "+380501234567", "203.0.113.7", "Firefox/130")
    assert (one["delivery_status"], one["optin_status"]) == ("delivered", "confirmed")
    assert one["provider"] == "sandbox" and one["provider_contact_id"] == "77"
    assert one["created_at"] and one["data"] == {"first_name": "Olena"}
    assert [e["kind"] for e in one["events"]] == ["attempt", "failed"]
    assert one["events"][0]["data"]["request"]["api_key"] == "[redacted]"
    assert by_id[str(second.pk)]["consent_text"] == "I agree to receive offers."
    assert [c["status"] for c in person["sandbox_contacts"]] == ["active"]


def test_export_of_an_unknown_address_is_an_empty_record(db):
    doc = consent.export(["nobody@example.com"])
    assert doc["people"] == [{"email": "nobody@example.com", "submissions": [],
                              "sandbox_contacts": []}]


def test_erase_removes_personal_data_and_keeps_counts(olena, caplog):
    first, second, petro = olena
    waiting = make_submission(first.form, "OLENA@example.com")  # pending: never delivered now
    before = {f.form_type: (f.n_delivered, f.n_failed, f.n_confirmed)
              for f in annotate_counts(SignupForm.objects.all())}
    rows_before = Submission.objects.count()

    with caplog.at_level(logging.INFO, logger="esp_forms.consent"):
        result = consent.erase("olena@EXAMPLE.com", by="tester")

    assert (result.submissions, result.sandbox_contacts) == (3, 1)
    assert result.reference == consent.email_reference("Olena@example.com")
    assert Submission.objects.count() == rows_before
    for row in (first, second, waiting):
        row.refresh_from_db()
        assert (row.email, row.phone, row.data, row.ip, row.user_agent) == ("", "", {}, None, "")
        assert row.purged_at is not None
        assert row.events.filter(kind=EventKind.PURGED,
                                 message__contains=result.reference).exists()
        text = json.dumps(list(row.events.values("message", "data"))) + row.last_error
        assert "olena" not in text.lower()
    assert first.delivery_status == DeliveryStatus.DELIVERED
    assert first.optin_status == OptinStatus.CONFIRMED
    assert first.provider_contact_id == "77"  # the provider's id, kept to erase there too
    assert waiting.delivery_status == DeliveryStatus.FAILED and waiting.next_attempt_at is None
    after = {f.form_type: (f.n_delivered, f.n_failed, f.n_confirmed)
             for f in annotate_counts(SignupForm.objects.all())}
    before["newsletter"] = (before["newsletter"][0], before["newsletter"][1] + 1,
                            before["newsletter"][2])  # the pending one is now failed
    assert after == before
    petro.refresh_from_db()
    assert petro.email == "petro@example.com"
    assert not SandboxContact.objects.filter(email__iexact="olena@example.com").exists()
    # The log names the reference, never the address.
    assert result.reference in caplog.text and "olena" not in caplog.text.lower()
    # Nothing is left to find.
    assert consent.erase("olena@example.com").submissions == 0
    assert consent.export(["olena@example.com"])["people"][0]["submissions"] == []


def test_command_exports_to_a_file_and_erases_with_yes(olena, tmp_path):
    out = tmp_path / "olena.json"
    call_command("esp_forms_consent", "export", "OLENA@example.com", "-o", str(out),
                 stderr=StringIO())
    assert len(json.loads(out.read_text())["people"][0]["submissions"]) == 2

    stdout = StringIO()
    call_command("esp_forms_consent", "erase", "olena@example.com", "--yes", stdout=stdout)
    assert "Erased 2 submission(s) and 1 sandbox contact(s)" in stdout.getvalue()
    reference = StringIO()
    call_command("esp_forms_consent", "reference", "Olena@Example.com", stdout=reference)
    assert reference.getvalue().strip() == consent.email_reference("olena@example.com")
    assert f"reference {reference.getvalue().strip()}" in stdout.getvalue()
    assert len(reference.getvalue().strip()) == 16 and "olena" not in reference.getvalue()
    assert not Submission.objects.filter(email__iexact="olena@example.com").exists()


def test_command_refuses_without_confirmation_and_bad_addresses(olena, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt="": "no")
    with pytest.raises(CommandError, match="Nothing erased"):
        call_command("esp_forms_consent", "erase", "olena@example.com", stdout=StringIO())
    assert Submission.objects.filter(email__iexact="olena@example.com").count() == 2
    with pytest.raises(CommandError, match="not an email address"):
        call_command("esp_forms_consent", "export", "olena", stdout=StringIO())


def _manage(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_command_through_manage_py(tmp_path):
    """As an operator runs it: its own process, its own database."""
    env = {**os.environ, "ESP_FORMS_DEMO_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "DJANGO_SETTINGS_MODULE": "project.settings"}
    assert _manage(env, "migrate", "-v", "0").returncode == 0
    seed = ("from esp_forms.models import *; a = ProviderAccount.objects.create(name='S', "
            "provider='sandbox'); f = SignupForm.objects.create(form_type='news', title='N', "
            "account=a); Submission.objects.create(form=f, email='Ann@example.com', "
            "ip='198.51.100.4', delivery_status='delivered')")
    assert _manage(env, "shell", "-c", seed).returncode == 0

    exported = _manage(env, "esp_forms_consent", "export", "ann@EXAMPLE.com")
    assert exported.returncode == 0, exported.stderr
    [sub] = json.loads(exported.stdout)["people"][0]["submissions"]
    assert (sub["email"], sub["ip"]) == ("Ann@example.com", "198.51.100.4")

    refused = _manage(env, "esp_forms_consent", "erase", "ann@example.com", stdin="no\n")
    assert refused.returncode != 0 and "Nothing erased" in refused.stderr
    no_tty = _manage(env, "esp_forms_consent", "erase", "ann@example.com")  # stdin at EOF
    assert no_tty.returncode != 0 and "--yes" in no_tty.stderr

    erased = _manage(env, "esp_forms_consent", "erase", "ann@example.com", stdin="yes\n")
    assert erased.returncode == 0, erased.stderr
    assert "Erased 1 submission(s)" in erased.stdout
    again = _manage(env, "esp_forms_consent", "export", "ann@example.com")
    assert json.loads(again.stdout)["people"][0]["submissions"] == []


def _action(admin_client, action: str, rows, **extra):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.urls import reverse

    return admin_client.post(reverse("admin:esp_forms_submission_changelist"), {
        "action": action, ACTION_CHECKBOX_NAME: [str(r.pk) for r in rows], **extra})


def test_admin_export_action_downloads_the_selected_people(admin_client, olena):
    first, second, petro = olena
    response = _action(admin_client, "export_consent_records", [first, petro])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="esp-forms-consent-')
    doc = json.loads(response.content)
    people = {p["email"]: len(p["submissions"]) for p in doc["people"]}
    # Olena's other submission comes too: the export is per person, not per row.
    assert people == {"olena@example.com": 2, "petro@example.com": 1}


def test_admin_erase_action_asks_first_then_erases(admin_client, olena):
    first, second, petro = olena
    page = _action(admin_client, "erase_personal_data", [second])
    assert page.status_code == 200
    text = page.content.decode()
    assert "olena@example.com (2 submissions)" in text and "petro" not in text
    assert Submission.objects.filter(email__iexact="olena@example.com").count() == 2

    done = _action(admin_client, "erase_personal_data", [second], confirm="yes")
    assert done.status_code == 302
    assert not Submission.objects.filter(email__iexact="olena@example.com").exists()
    assert Submission.objects.get(pk=petro.pk).email == "petro@example.com"


def test_admin_erase_needs_the_delete_permission(client, olena, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(
        codename__in=["view_submission", "change_submission"]))
    client.force_login(staff)
    _action(client, "erase_personal_data", [olena[0]], confirm="yes")
    assert Submission.objects.filter(email__iexact="olena@example.com").count() == 2
