"""Translations: the app's texts in Ukrainian and Russian, English unchanged by default, full
catalogs."""

from __future__ import annotations

import gettext
import os
import re
import shutil
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.template import RequestContext, Template
from django.test import Client, RequestFactory, override_settings
from django.utils import translation

import esp_forms
from esp_forms import optin
from esp_forms.models import (
    DEFAULT_ALREADY_SUBSCRIBED_MESSAGE,
    DEFAULT_ERROR_MESSAGE,
    DEFAULT_FIELD_LABELS,
    DEFAULT_SUBMIT_LABEL,
    DEFAULT_SUCCESS_MESSAGE,
    KIND_CONTEXT,
    STANDARD_KINDS,
    DoubleOptIn,
    FieldKind,
    OptinStatus,
    visitor_text,
)
from tests.catalog import LANGUAGES, parse_po, po_path, untranslated
from tests.conftest import make_form, make_submission, token

APP_DIR = Path(esp_forms.__file__).resolve().parent
JS_FILE = APP_DIR / "static" / "esp_forms" / "esp_forms.js"

# Where the catalog's visitor-facing strings come from (references are relative to the app).
VISITOR_SOURCES = ("templates/esp_forms/", "forms.py", "api/", "optin.py", "views/",
                   "submissions.py", "spam.py")
UK = {"HTTP_ACCEPT_LANGUAGE": "uk"}


def render_tag(form_type: str = "newsletter") -> str:
    template = Template('{% load esp_forms %}{% esp_form "' + form_type + '" %}')
    return template.render(RequestContext(RequestFactory().get("/page/"), {}))


# --- the form -------------------------------------------------------------------------------

def test_form_in_ukrainian(newsletter):
    with translation.override("uk"):
        html = render_tag()
    assert "* обов’язкові поля" in html
    # The defaults an admin left unchanged (button, standard field labels) follow the language.
    assert ">Підписатися</button>" in html
    assert ">Електронна пошта<" in html and ">Телефон<" in html
    assert "Залиште це поле порожнім" in html
    # The bundled script's own messages.
    assert 'data-esp-text-sending="Надсилання…"' in html
    assert 'data-esp-text-network="Не вдалося зв’язатися із сервером.' in html
    assert "Subscribe" not in html and "* required" not in html


def test_form_in_english_by_default(newsletter):
    html = render_tag()
    assert '<p class="esp-form__legend" aria-hidden="true">* required</p>' in html
    assert ">Subscribe</button>" in html
    assert ">Email<" in html
    assert 'data-esp-text-sending="Sending…"' in html
    assert ('data-esp-text-network="We could not reach the server. Please check your connection '
            'and try again."') in html
    assert ('data-esp-text-expired="This page has expired. Please reload it and try again."'
            in html)
    assert ('data-esp-text-failed="Something went wrong on our side. Please try again in a '
            'moment."') in html


def test_texts_an_admin_wrote_are_shown_as_written(sandbox_account):
    make_form(sandbox_account, "custom", submit_label="Keep me posted",
              fields=[{"name": "city", "label": "Місто"}])
    with translation.override("uk"):
        html = render_tag("custom")
        assert visitor_text("Thanks!") == "Thanks!"
        assert visitor_text("Please correct the errors below.") == \
            "Будь ласка, виправте помилки нижче."
    assert ">Keep me posted</button>" in html and ">Місто<" in html


def test_default_labels_are_the_standard_kinds_labels():
    with translation.override(None):
        labels = {str(FieldKind(kind).label) for kind in STANDARD_KINDS}
    assert labels == set(DEFAULT_FIELD_LABELS)
    with translation.override("uk"):
        assert [visitor_text(label) for label in DEFAULT_FIELD_LABELS] == [
            "Електронна пошта", "Телефон", "Ім’я", "Прізвище"]
        assert str(FieldKind.EMAIL.label) == "Електронна пошта"


def test_every_script_text_has_a_template_attribute_and_an_english_fallback():
    form_html = (APP_DIR / "templates" / "esp_forms" / "form.html").read_text()
    fallbacks = re.search(r"var TEXT = \{(.*?)\};", JS_FILE.read_text(), re.S).group(1)
    keys = re.findall(r"^\s*(\w+):", fallbacks, re.M)
    assert sorted(keys) == ["expired", "failed", "network", "sending"]
    for key in keys:
        assert f"data-esp-text-{key}=" in form_html


def test_form_page_follows_the_browser_language(newsletter):
    html = Client().get("/forms/newsletter/", **UK).content.decode()
    assert '<html lang="uk">' in html and ">Підписатися</button>" in html
    html = Client().get("/forms/newsletter/").content.decode()
    assert ">Subscribe</button>" in html


def test_form_errors_in_ukrainian_without_javascript(newsletter):
    response = Client().post("/forms/newsletter/", {"email": "ann@", "phone": "12",
                                                    "form_token": token()}, **UK)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Будь ласка, виправте помилки нижче." in html
    assert "Введіть коректну адресу електронної пошти.</p>" in html
    assert "Введіть правильний номер телефону, наприклад +380501234567." in html


def test_script_posts_get_ukrainian_json(newsletter):
    response = Client().post("/forms/newsletter/", {"email": "", "form_token": token()},
                             HTTP_X_REQUESTED_WITH="XMLHttpRequest", **UK)
    assert response.status_code == 400
    assert response.json()["errors"] == {"email": ["Введіть свою адресу електронної пошти."]}


# --- the JSON API ---------------------------------------------------------------------------

def api_submit(body: dict, **headers):
    import json

    return Client().post("/api/esp-forms/forms/newsletter/submissions/", json.dumps(body),
                         content_type="application/json", **headers)


def test_api_400_in_ukrainian(newsletter):
    response = api_submit({"email": "ann@", "form_token": token()}, **UK)
    assert response.status_code == 400
    assert response["Content-Language"] == "uk"
    body = response.json()
    assert body["message"] == "Будь ласка, виправте помилки нижче."
    assert body["errors"] == {"email": ["Введіть коректну адресу електронної пошти."]}


def test_api_400_in_english_by_default(newsletter):
    body = api_submit({"email": "ann@", "form_token": token()}).json()
    assert body["message"] == "Please correct the errors below."
    assert body["errors"]["email"][0].startswith("Enter a valid email address. ")
    assert len(body["errors"]["email"][0]) > len("Enter a valid email address. ")


def test_api_shape_errors_and_success_in_ukrainian(newsletter):
    body = api_submit({"email": "ann@example.com", "form_token": token(), "colour": "red"},
                      **UK).json()
    assert body["errors"]["colour"][0].startswith("Невідоме поле: цей API приймає ")
    body = api_submit({"email": "ann@example.com", "form_token": token()}, **UK).json()
    assert body["message"] == ("Дякуємо! Перевірте свою поштову скриньку, щоб підтвердити "
                               "підписку.")
    schema = Client().get("/api/esp-forms/forms/newsletter/", **UK).json()
    assert schema["submit_label"] == "Підписатися"
    assert schema["fields"][0]["label"] == "Електронна пошта"


# --- the confirmation page and email ----------------------------------------------------------

@pytest.fixture
def local_form(sandbox_account):
    return make_form(sandbox_account, "local-news", title="Local news",
                     double_opt_in=DoubleOptIn.LOCAL)


def test_confirmation_page_in_ukrainian(local_form):
    submission = make_submission(local_form, next_attempt_at=None)
    path = f"/confirm/{optin.make_token(submission)}/"
    page = Client().get(path, **UK).content.decode()
    assert '<html lang="uk">' in page
    assert "<h1>Підтвердьте підписку</h1>" in page
    assert ">Підтвердити підписку</button>" in page

    page = Client().post(path, **UK).content.decode()
    assert "<h1>Підписку підтверджено</h1>" in page
    assert "Дякуємо! Тепер ви підписані на <strong>Local news</strong>." in page
    submission.refresh_from_db()
    assert submission.optin_status == OptinStatus.CONFIRMED

    response = Client().get("/confirm/not-a-token/", **UK)
    assert response.status_code == 404
    assert "Це посилання для підтвердження недійсне або термін його дії минув." in \
        response.content.decode()
    other = make_submission(local_form, "ann@example.com", optin_status=OptinStatus.EXPIRED)
    response = Client().post(f"/confirm/{optin.make_token(other)}/", **UK)
    assert response.status_code == 400
    assert "Цю підписку вже неможливо підтвердити." in response.content.decode()


def test_confirmation_page_in_english_by_default(local_form):
    submission = make_submission(local_form, next_attempt_at=None)
    path = f"/confirm/{optin.make_token(submission)}/"
    page = Client().get(path).content.decode()
    assert "<h1>Confirm your subscription</h1>" in page
    assert "<p>Press the button to confirm that you want to receive our emails.</p>" in page
    page = Client().post(path).content.decode()
    assert "<p>Thank you! You are now subscribed to <strong>Local news</strong>.</p>" in page
    assert ">Continue to the site</a>" in page


def send(submission) -> mail.EmailMessage:
    mail.outbox.clear()
    assert optin.send_confirmation(submission.pk) == "sent"
    return mail.outbox[-1]


@pytest.mark.parametrize(("days", "phrase"), [(1, "1 день"), (3, "3 дні"), (7, "7 днів"),
                                              (21, "21 день")])
def test_confirmation_email_in_the_site_language(local_form, days, phrase):
    submission = make_submission(local_form, next_attempt_at=None)
    with override_settings(LANGUAGE_CODE="uk",
                           ESP_FORMS={"CONFIRMATION_MAX_AGE": days * 86400}):
        message = send(submission)
    assert message.subject == "Підтвердьте підписку: Local news"
    assert message.body.startswith("Добрий день!\n\n")
    assert f"Посилання діє {phrase}." in message.body
    assert f"Посилання діє {phrase}." in message.alternatives[0][0]
    assert '<html lang="uk">' in message.alternatives[0][0]


def test_confirmation_email_in_english_whoever_sends_it(local_form):
    # An admin browsing in Ukrainian who resends the email does not change its language.
    submission = make_submission(local_form, next_attempt_at=None)
    with translation.override("uk"):
        message = send(submission)
    assert message.subject == "Please confirm your subscription: Local news"
    assert message.body.startswith(
        'Hello,\n\nSomeone (hopefully you) signed up for "Local news" with this address.\n'
        "To confirm, open this link and press the button:\n\n")
    assert message.body.endswith("The link is valid for 7 days. If you did not sign up, ignore "
                                 "this email:\nyou will not be subscribed.\n")


# --- the catalog ------------------------------------------------------------------------------

def visitor_facing(entries: list[dict]) -> list[dict]:
    """What visitors can read: the forms, the API, the confirmation pages and emails, and the
    model texts a form starts with (admin-only strings may stay untranslated)."""
    defaults = {DEFAULT_SUBMIT_LABEL, DEFAULT_SUCCESS_MESSAGE, DEFAULT_ALREADY_SUBSCRIBED_MESSAGE,
                DEFAULT_ERROR_MESSAGE}
    return [e for e in entries
            if any(ref.startswith(VISITOR_SOURCES) for ref in e["refs"])
            or e["msgid"] in defaults or e["msgctxt"] == KIND_CONTEXT]


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_translates_every_text(language):
    entries = parse_po(po_path(language).read_text(encoding="utf-8"))
    visitor = visitor_facing(entries)
    from_form = {e["msgid"] for e in entries if "templates/esp_forms/form.html" in e["refs"]}
    assert {"* required", "Sending…"} <= from_form
    assert len(visitor) > 70
    # Visitors, emails and the admin alike: nothing is left in English.
    assert untranslated(entries) == []
    assert {"Subscribe", "Email", "Please correct the errors below."} <= {
        e["msgid"] for e in visitor}
    # Plural forms: Ukrainian and Russian have four, and every plural entry fills them all.
    for entry in entries:
        if entry["msgid_plural"]:
            assert len(entry["msgstr"]) == 4, entry["msgid"]
        # A placeholder the translation drops or misspells would break or leak at runtime.
        singular = set(re.findall(r"%\(\w+\)[sd]", entry["msgid"]))
        plural = set(re.findall(r"%\(\w+\)[sd]", entry["msgid_plural"] or entry["msgid"]))
        for text in entry["msgstr"]:
            found = set(re.findall(r"%\(\w+\)[sd]", text))
            # A plural form may name the count the English singular leaves out ("21 people"),
            # but never a placeholder neither English form has, nor drop one both have.
            assert singular & plural <= found <= singular | plural, entry["msgid"]


def test_catalogs_hold_the_same_strings():
    keys = [{(e["msgctxt"], e["msgid"]) for e in parse_po(po_path(lang).read_text("utf-8"))}
            for lang in LANGUAGES]
    assert all(k == keys[0] for k in keys)


def test_untranslated_counts_empty_partial_and_fuzzy_entries():
    entries = parse_po('''
msgid "A"
msgstr "А"

#, fuzzy, python-format
msgid "B %(n)s"
msgstr "Б %(n)s"

msgid "C"
msgstr ""

msgid "D"
msgid_plural "Ds"
msgstr[0] "Д"
msgstr[1] ""
'''.strip())
    assert untranslated(entries) == ["B %(n)s", "C", "D"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_matches_the_po_file(language):
    entries = parse_po(po_path(language).read_text(encoding="utf-8"))
    with po_path(language).with_suffix(".mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in entries:
        if entry["msgid_plural"]:
            assert compiled.ngettext(entry["msgid"], entry["msgid_plural"], 5) == \
                entry["msgstr"][2], entry["msgid"]
        elif entry["msgctxt"]:
            assert compiled.pgettext(entry["msgctxt"], entry["msgid"]) == entry["msgstr"][0]
        elif entry["msgstr"][0]:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"][0], entry["msgid"]


GETTEXT_TOOLS = bool(shutil.which("xgettext") and shutil.which("msgmerge"))


@pytest.mark.skipif(not GETTEXT_TOOLS and os.environ.get("CI") != "true",
                    reason="needs the gettext tools (make gettext)")
def test_makemessages_finds_nothing_left_to_translate(tmp_path, monkeypatch):
    """A string added to the app without a translation (or whose English changed) fails here:
    run ``make messages``, translate what it lists, and run it again."""
    assert GETTEXT_TOOLS, "CI must install the gettext tools (make gettext)"
    copy = tmp_path / "esp_forms"
    shutil.copytree(APP_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=list(LANGUAGES), verbosity=0, no_wrap=True)
    for language in LANGUAGES:
        entries = parse_po(po_path(language, copy / "locale").read_text(encoding="utf-8"))
        assert untranslated(entries) == [], language
        # The committed catalog is up to date: no string was added, changed or removed since.
        assert {(e["msgctxt"], e["msgid"]) for e in entries} == {
            (e["msgctxt"], e["msgid"]) for e in parse_po(po_path(language).read_text("utf-8"))}


# --- Russian ----------------------------------------------------------------------------------

RU = {"HTTP_ACCEPT_LANGUAGE": "ru-RU,ru;q=0.9"}


def test_form_page_in_russian(newsletter):
    html = Client().get("/forms/newsletter/", **RU).content.decode()
    assert '<html lang="ru">' in html
    assert ">Подписаться</button>" in html and "* обязательные поля" in html
    assert ">Электронная почта<" in html and 'data-esp-text-sending="Отправка…"' in html


def test_form_errors_and_api_in_russian(newsletter):
    response = Client().post("/forms/newsletter/", {"email": "ann@", "phone": "12",
                                                    "form_token": token()}, **RU)
    html = response.content.decode()
    assert "Пожалуйста, исправьте ошибки ниже." in html
    assert "Введите правильный адрес электронной почты." in html
    body = api_submit({"email": "ann@example.com", "form_token": token()}, **RU).json()
    assert body["message"] == "Спасибо! Проверьте свой почтовый ящик, чтобы подтвердить подписку."


@pytest.mark.parametrize(("days", "phrase"), [(1, "1 день"), (3, "3 дня"), (7, "7 дней"),
                                              (11, "11 дней"), (21, "21 день")])
def test_confirmation_email_in_russian(local_form, days, phrase):
    submission = make_submission(local_form, next_attempt_at=None)
    with override_settings(LANGUAGE_CODE="ru",
                           ESP_FORMS={"CONFIRMATION_MAX_AGE": days * 86400}):
        message = send(submission)
    assert message.subject == "Подтвердите подписку: Local news"
    assert message.body.startswith("Здравствуйте!\n\n")
    assert f"Ссылка действует {phrase}." in message.body
    assert f"Ссылка действует {phrase}." in message.alternatives[0][0]


def test_confirmation_page_in_russian(local_form):
    submission = make_submission(local_form, next_attempt_at=None)
    path = f"/confirm/{optin.make_token(submission)}/"
    assert "<h1>Подтвердите подписку</h1>" in Client().get(path, **RU).content.decode()
    page = Client().post(path, **RU).content.decode()
    assert "Спасибо! Теперь вы подписаны на <strong>Local news</strong>." in page


def test_admin_in_russian(admin_client):
    page = admin_client.get("/admin/esp_forms/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Формы подписки на рассылку" in page and "Учётные записи провайдеров" in page


def test_confirmation_email_in_the_language_the_visitor_signed_up_in(local_form):
    import json

    response = Client().post("/api/esp-forms/forms/local-news/submissions/",
                             json.dumps({"email": "ira@example.com",
                                         "form_token": token("local-news")}),
                             content_type="application/json", **RU)
    assert response.status_code in (200, 201, 202), response.content
    from esp_forms.models import Submission

    submission = Submission.objects.get(email="ira@example.com")
    assert submission.language == "ru"
    # Sent by a worker (no request), or resent by an admin browsing in Ukrainian: Russian.
    with translation.override("uk"):
        message = send(submission)
    assert message.subject == "Подтвердите подписку: Local news"
    assert message.body.startswith("Здравствуйте!\n\n")
    assert '<html lang="ru">' in message.alternatives[0][0]
    # A signup without a language (stored before the app recorded it) gets the site's.
    Submission.objects.filter(pk=submission.pk).update(language="", confirmation_sent_at=None)
    submission.refresh_from_db()
    assert send(submission).subject == "Please confirm your subscription: Local news"


def test_admin_drag_handle_tooltip_in_russian(admin_client, newsletter):
    page = admin_client.get(f"/admin/esp_forms/signupform/{newsletter.pk}/change/",
                            HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert 'data-esp-drag-label="Перетащите, чтобы изменить порядок"' in page
    assert JS_FILE.with_name("admin.js").read_text().count("data-esp-drag-label") >= 1
