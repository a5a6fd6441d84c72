"""esp_forms.prepared on PostgreSQL: the hot statements are prepared by psycopg once they ran
``prepare_threshold`` times, errors are Django's, and the query log still sees them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from esp_forms import prepared, submissions

pytestmark = pytest.mark.services


def _prepared_lookups() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                       ["%UPPER(email::text) = UPPER($2)%"])
        return cursor.fetchone()[0]


def test_the_repeat_lookup_is_prepared_after_the_threshold(esputnik_form, settings):
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == 5
    assert prepared.server_binding()
    connection.close()  # a fresh connection: nothing prepared yet
    now = timezone.now()
    for run in range(7):
        with transaction.atomic():
            submissions._duplicate_of(esputnik_form, "ann@example.com", now, timedelta(days=1))
        assert _prepared_lookups() == (1 if run >= 5 else 0), run  # the 6th run prepares it


def test_errors_are_djangos_and_the_query_log_sees_the_statements():
    with CaptureQueriesContext(connection) as queries:
        with prepared.cursor() as cursor:
            cursor.execute("SELECT %s + 1", [41])
            assert cursor.fetchone() == (42,)
    # Logged as the server saw it (Django shows server-side binding this way too).
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT $1 + 1"]
    with pytest.raises(ProgrammingError), prepared.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
