"""Model drift fails the suite; the host's DEFAULT_AUTO_FIELD never creates migrations."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings


@pytest.mark.django_db
@pytest.mark.parametrize("auto_field", ["django.db.models.BigAutoField",
                                        "django.db.models.AutoField"])
def test_no_missing_migrations(auto_field):
    with override_settings(DEFAULT_AUTO_FIELD=auto_field):
        call_command("makemigrations", "esp_forms", "--check", "--dry-run", stdout=StringIO())


def test_migration_numbers_are_unique():
    folder = Path(__file__).resolve().parent.parent / "esp_forms" / "migrations"
    numbers = [p.name[:4] for p in folder.glob("[0-9]*.py")]
    assert numbers and len(numbers) == len(set(numbers))
