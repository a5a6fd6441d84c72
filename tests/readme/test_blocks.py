"""The README's marked blocks are all there and well formed (fast; the real run is in
``test_readme.py``, marker ``readme``)."""

from __future__ import annotations

import ast
import json

from tests.readme.blocks import ACTIONS, commands, one, parse_curl_block, readme_blocks


def test_readme_marks_every_step_of_add_it_to_your_site():
    blocks = readme_blocks()
    assert {b.action for b in blocks} <= ACTIONS
    for path in ("mysite/settings.py", "mysite/urls.py"):
        assert one(blocks, "append", path).lang == "python"
    for path in ("mysite/celery.py", "mysite/__init__.py"):
        assert one(blocks, "create", path).lang == "python"
    for block in blocks:
        if block.lang == "python":
            ast.parse(block.body)  # a syntax error in the README fails here
    install = commands(one(blocks, "install"))
    assert install == ['pip install "esp-forms[postgres]"']
    run = commands(one(blocks, "run"))
    assert run[0] == "python manage.py migrate"
    assert any(line.startswith("celery -A mysite worker") for line in run)
    assert "{% esp_form " in one(blocks, "template").body
    assert "sleep 2" in one(blocks, "curl").body


def test_the_celery_app_uses_the_celery_namespace_the_settings_rely_on():
    blocks = readme_blocks()
    celery = one(blocks, "create", "mysite/celery.py").body
    assert 'config_from_object("django.conf:settings", namespace="CELERY")' in celery
    assert "from .celery import app" in one(blocks, "create", "mysite/__init__.py").body
    settings = one(blocks, "append", "mysite/settings.py").body
    assert "CELERY_BROKER_URL" in settings and "CACHES" in settings
    assert "from django.urls import include" in one(blocks, "append", "mysite/urls.py").body


def test_a_block_needs_its_marker_right_above_it():
    text = ("<!-- readme-test: create a.py -->\n```python\nx = 1\n```\n\n"
            "```python\ny = 2\n```\n")
    blocks = readme_blocks(text)
    assert [(b.action, b.path, b.body) for b in blocks] == [("create", "a.py", "x = 1\n")]


def test_the_curl_example_reads_as_steps():
    """What test_readme does where curl is missing, and what the example must keep saying."""
    steps = parse_curl_block(one(readme_blocks(), "curl").body)
    assert steps.get_url == "http://127.0.0.1:8000/api/esp-forms/forms/newsletter/"
    assert steps.post_url == "http://127.0.0.1:8000/api/esp-forms/forms/newsletter/submissions/"
    assert steps.wait >= 2  # MIN_FILL_SECONDS' default
    assert json.loads(steps.body("tok")) == {
        "email": "olena@example.com", "first_name": "Olena", "form_token": "tok"}
