from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('esp_forms', '0005_outbox_lease'),
    ]

    operations = [
        migrations.AddField(
            model_name='provideraccount',
            name='activity_read_until',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='activity read until'),
        ),
    ]
