"""``pip install .`` ships the app alone, with its templates, static files and migrations."""

import zipfile
from pathlib import Path

from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_the_app_and_nothing_else(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for expected in [
        "esp_forms/migrations/0001_initial.py",
        "esp_forms/templates/esp_forms/form.html",
        "esp_forms/templates/esp_forms/email/confirm_body.html",
        "esp_forms/static/esp_forms/esp_forms.js",
        "esp_forms/static/esp_forms/esp_forms.css",
        "esp_forms/emulator/server.py",
        "esp_forms/py.typed",
        "esp_forms/locale/uk/LC_MESSAGES/django.po",
        "esp_forms/locale/uk/LC_MESSAGES/django.mo",
    ]:
        assert expected in names, expected
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"project", "tests", "templates", "bench", "docs"}
