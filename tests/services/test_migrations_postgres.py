"""Migration 0008 on PostgreSQL: its index changes run CONCURRENTLY (outside a transaction)
and it goes back and forth."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.services


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes "
                       "WHERE tablename = 'esp_forms_submission' AND indexname LIKE %s",
                       ["esp_forms_sub_dupe%"])
        return {f"{name}: {definition.split(' USING ')[1]}" for name, definition in cursor}


def test_the_repeat_lookup_index_migrates_both_ways():
    after = {"esp_forms_sub_dupe_ci: btree (form_id, upper((email)::text), created_at)"}
    assert _indexes() == after
    try:
        call_command("migrate", "esp_forms", "0007", verbosity=0)
        assert _indexes() == {"esp_forms_sub_dupe: btree (form_id, email, created_at)"}
    finally:
        call_command("migrate", "esp_forms", verbosity=0)
    assert _indexes() == after
