"""{% esp_form %}: rendering on any page, unknown forms, overrides, two forms on one page."""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.test import RequestFactory, override_settings

from tests.conftest import make_form

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def render(source: str, *, request=True, **context) -> str:
    template = Template("{% load esp_forms %}" + source)
    if request:
        from django.template import RequestContext

        req = RequestFactory().get("/some/page/") if request is True else request
        return template.render(RequestContext(req, context))
    return template.render(Context(context))


def ids(html: str) -> list[str]:
    return re.findall(r'\sid="([^"]+)"', html)


def test_tag_renders_the_form_with_csrf_and_assets(newsletter):
    html = render('<main>{% esp_form "newsletter" %}</main>')
    assert 'data-esp-form="newsletter"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert html.count("esp_forms/esp_forms.js") == 1
    assert html.count("esp_forms/esp_forms.css") == 1
    assert '<h2 class="esp-form__title" id="esp-newsletter-title">Newsletter</h2>' in html


def test_form_type_from_a_variable(newsletter):
    html = render("{% esp_form kind %}", kind="newsletter")
    assert 'data-esp-form="newsletter"' in html


def test_two_forms_on_one_page_have_unique_ids(newsletter, sandbox_account):
    make_form(sandbox_account, "events")
    html = render('{% esp_form "newsletter" %}{% esp_form "events" %}{% esp_form "newsletter" %}')
    all_ids = ids(html)
    assert len(all_ids) == len(set(all_ids)), all_ids
    assert 'id="esp-newsletter"' in html and 'id="esp-newsletter-2"' in html
    assert 'id="esp-events"' in html
    # Each label points at its own form's input.
    assert 'for="esp-newsletter-2-email"' in html and 'id="esp-newsletter-2-email"' in html
    # The assets come once.
    assert html.count("esp_forms/esp_forms.js") == 1
    assert len(re.findall(r"<form\b", html)) == 3


def test_assets_tag_in_head_prevents_a_second_copy(newsletter):
    html = render('<head>{% esp_forms_assets %}</head>{% esp_form "newsletter" %}')
    assert html.count("esp_forms/esp_forms.js") == 1
    assert html.index("esp_forms.js") < html.index("<form")


def test_without_request_the_form_renders_and_warns(newsletter, caplog):
    with caplog.at_level(logging.WARNING, logger="esp_forms"):
        html = render('{% esp_form "newsletter" %}{% esp_form "newsletter" %}', request=False)
    assert 'data-esp-form="newsletter"' in html
    assert 'name="csrfmiddlewaretoken"' not in html
    assert "without request in the context" in caplog.text
    assert html.count("esp_forms/esp_forms.js") == 1
    all_ids = ids(html)
    assert len(all_ids) == len(set(all_ids))


@pytest.mark.parametrize("form_type", ["missing", "inactive"])
@override_settings(DEBUG=False)
def test_unknown_or_inactive_form_renders_nothing_and_logs(sandbox_account, caplog, form_type):
    make_form(sandbox_account, "inactive", is_active=False)
    with caplog.at_level(logging.WARNING, logger="esp_forms"):
        html = render(f'<p>before</p>{{% esp_form "{form_type}" %}}<p>after</p>')
    assert html == "<p>before</p><p>after</p>"
    assert f"no active signup form '{form_type}'" in caplog.text


@override_settings(DEBUG=True)
def test_unknown_form_in_debug_is_an_html_comment(db):
    html = render('{% esp_form "missing" %}')
    assert html == '<!-- esp_form: no active signup form "missing" -->'


@override_settings(DEBUG=True)
def test_debug_comment_cannot_be_broken_out_of(db):
    html = render("{% esp_form name %}", name="x--><script>alert(1)</script>")
    assert "<script>" not in html
    assert html.count("-->") == 1


def test_per_form_override_template(sandbox_account):
    make_form(sandbox_account, "special")
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [TEMPLATE_DIR, *templates[0]["DIRS"]]
    with override_settings(TEMPLATES=templates):
        html = render('{% esp_form "special" %}')
    assert '<p class="special-intro">Join the special list (special)</p>' in html
    assert "Count me in" in html
    # The rest of the default template still applies.
    assert 'data-esp-form="special"' in html and 'name="email"' in html


def test_other_forms_keep_the_default_template_when_an_override_exists(newsletter):
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [TEMPLATE_DIR, *templates[0]["DIRS"]]
    with override_settings(TEMPLATES=templates):
        html = render('{% esp_form "newsletter" %}')
    assert "special-intro" not in html
    assert 'class="esp-form__title"' in html
