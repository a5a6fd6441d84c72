"""The repeat-signup lookup's index on UPPER(email), which the lookup compares.

On PostgreSQL both index changes run CONCURRENTLY (so a large submissions table keeps taking
signups while the index builds), which is why this migration is not atomic; elsewhere they are
ordinary index changes.
"""

import django.db.models.functions.text
from django.db import migrations, models


def _concurrently(schema_editor):
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


class AddIndexConcurrentlyWherePossible(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, **_concurrently(schema_editor))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, **_concurrently(schema_editor))


class RemoveIndexConcurrentlyWherePossible(migrations.RemoveIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(
                self.name)
            schema_editor.remove_index(model, index, **_concurrently(schema_editor))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(
                self.name)
            schema_editor.add_index(model, index, **_concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('esp_forms', '0007_verbose_names'),
    ]

    operations = [
        AddIndexConcurrentlyWherePossible(
            model_name='submission',
            index=models.Index(models.F('form'), django.db.models.functions.text.Upper('email'),
                               models.F('created_at'), name='esp_forms_sub_dupe_ci'),
        ),
        RemoveIndexConcurrentlyWherePossible(
            model_name='submission',
            name='esp_forms_sub_dupe',
        ),
    ]
