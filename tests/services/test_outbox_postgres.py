"""The outbox's rules (tests/test_outbox.py) again on PostgreSQL, outside any transaction: the
paths only PostgreSQL takes run here (the claim that also opens the attempt, the record written
in one statement), and what a delivery costs in statements."""

from __future__ import annotations

import pytest

from tests.conftest import make_submission
from tests.test_outbox import *  # noqa: F403  (collected again here, on PostgreSQL)

pytestmark = pytest.mark.services


def test_a_delivery_is_two_statements(esputnik_form, emulator, django_assert_num_queries):
    """The claim (which also commits the attempt) and the record (row and events): the form
    comes from the process's cache, the rate limit from Redis."""
    from esp_forms import delivery, formcache
    from esp_forms.models import EventKind, Submission

    formcache.form_by_id(esputnik_form.pk)
    first, second = (make_submission(esputnik_form, f"{n}@example.com") for n in "ab")
    assert delivery.deliver(first.pk).status == "delivered"
    with django_assert_num_queries(2):
        assert delivery.deliver(second.pk).status == "delivered"
    row = Submission.objects.get(pk=second.pk)
    assert (row.attempts, row.attempt_started_at, row.lease_owner) == (1, None, "")
    assert row.last_attempt_at is not None and row.delivered_at >= row.last_attempt_at
    assert list(row.events.order_by("pk").values_list("kind", flat=True)) == [
        EventKind.ATTEMPT, EventKind.DELIVERED]
