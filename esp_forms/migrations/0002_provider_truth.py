from django.db import migrations, models

# UniSender's API accepts only these <lang> path segments; "uk" (the ISO code) meant Ukrainian.
LANGUAGES = {"en", "ru", "ua"}
RENAMED = {"uk": "ua"}


def fix_languages(apps, schema_editor):
    ProviderAccount = apps.get_model("esp_forms", "ProviderAccount")
    for account in ProviderAccount.objects.exclude(api_language__in=LANGUAGES):
        code = (account.api_language or "").strip().lower()
        account.api_language = code if code in LANGUAGES else RENAMED.get(code, "en")
        account.save(update_fields=["api_language"])


class Migration(migrations.Migration):

    dependencies = [
        ("esp_forms", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(fix_languages, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="provideraccount",
            name="api_language",
            field=models.CharField(
                choices=[("en", "English (en)"), ("ru", "Русский (ru)"),
                         ("ua", "Українська (ua)")],
                default="en",
                help_text="UniSender: language of the API's messages (en, ru or ua; part of the "
                          "API URL, so a wrong one is refused).",
                max_length=5, verbose_name="API language"),
        ),
    ]
