"""esp_forms_purge: personal data of old settled submissions is erased, statistics stay."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from esp_forms.models import DeliveryStatus, EventKind, Submission
from tests.conftest import make_submission

pytestmark = pytest.mark.django_db


def test_purge_erases_old_settled_submissions_only(newsletter):
    old = timezone.now() - timedelta(days=400)
    done = make_submission(newsletter, "old@example.com", created_at=old,
                           delivery_status=DeliveryStatus.DELIVERED, phone="+380501234567")
    done.events.create(kind=EventKind.ATTEMPT, data={"request": {"email": "old@example.com"}})
    waiting = make_submission(newsletter, "waiting@example.com", created_at=old)
    recent = make_submission(newsletter, "new@example.com",
                             delivery_status=DeliveryStatus.DELIVERED)

    out = StringIO()
    call_command("esp_forms_purge", "--dry-run", stdout=out)
    assert "1 submission(s) older than 365 days would be erased" in out.getvalue()
    assert Submission.objects.get(pk=done.pk).email == "old@example.com"

    call_command("esp_forms_purge", stdout=StringIO())
    done.refresh_from_db()
    assert (done.email, done.phone, done.data, done.ip) == ("", "", {}, None)
    assert done.purged_at and done.delivery_status == DeliveryStatus.DELIVERED
    assert "old@example.com" not in str(list(done.events.values_list("data", flat=True)))
    assert done.events.filter(kind=EventKind.PURGED).exists()
    assert Submission.objects.get(pk=waiting.pk).email == "waiting@example.com"
    assert Submission.objects.get(pk=recent.pk).email == "new@example.com"


def test_purge_rejects_negative_days(newsletter):
    with pytest.raises(CommandError):
        call_command("esp_forms_purge", "--days", "-1", stdout=StringIO())
