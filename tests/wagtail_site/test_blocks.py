"""SignupFormBlock on real Wagtail pages: the editor's choices, the rendered page, the API."""

from __future__ import annotations

import re

import pytest
from django.test import RequestFactory
from django.urls import reverse
from wagtail.models import Page

from esp_forms.contrib.wagtail.blocks import SignupFormBlock, active_form_choices
from esp_forms.models import SignupForm, Submission
from tests.conftest import make_form, token
from tests.wagtail_site.models import LandingPage

pytestmark = pytest.mark.django_db


def landing(body: list[tuple[str, object]], title: str = "Join us") -> LandingPage:
    root = Page.objects.get(depth=1).get_children().first()  # Wagtail's default home page
    page = LandingPage(title=title, slug=re.sub(r"\W+", "-", title.lower()), body=body)
    root.add_child(instance=page)
    page.save_revision().publish()
    return page


def test_editor_choices_are_the_active_forms_read_when_asked(newsletter, sandbox_account):
    make_form(sandbox_account, "old-offers", title="Old offers", is_active=False)
    assert active_form_choices() == [("newsletter", "Newsletter (newsletter)")]
    make_form(sandbox_account, "events", title="Events")  # no restart, no migration
    choices = dict(SignupFormBlock().child_blocks["form_type"].field.choices)
    assert set(choices) - {""} == {"newsletter", "events"}


def test_a_deactivated_form_fails_validation_in_the_editor(newsletter):
    from django.core.exceptions import ValidationError

    block = SignupFormBlock()
    value = block.to_python({"form_type": "newsletter", "heading": "h3"})
    block.clean(value)
    SignupForm.objects.filter(pk=newsletter.pk).update(is_active=False)
    with pytest.raises(ValidationError):
        block.clean(value)


def test_page_renders_the_bundled_form_once_per_block(client, newsletter, sandbox_account):
    make_form(sandbox_account, "events", title="Events")
    page = landing([("text", "Hear from us:"),
                    ("signup", {"form_type": "newsletter", "heading": "h3"}),
                    ("signup", {"form_type": "events", "heading": "h2"})])
    html = client.get(page.url).content.decode()

    assert '<h3 class="esp-form__title" id="esp-newsletter-title">Newsletter</h3>' in html
    assert 'data-esp-form="events"' in html
    assert html.count('name="email"') == 2
    # The stylesheet and the script once for the page, as with two {% esp_form %} tags.
    assert html.count("esp_forms/esp_forms.js") == 1
    assert html.count("esp_forms/esp_forms.css") == 1
    assert 'name="csrfmiddlewaretoken"' in html


def test_the_form_on_the_page_posts_like_the_bundled_one(client, newsletter):
    page = landing([("signup", {"form_type": "newsletter", "heading": "h2"})])
    html = client.get(page.url).content.decode()
    action = re.search(r'<form class="esp-form"[^>]* action="([^"]+)"', html).group(1)
    assert action == reverse("esp_forms:form", args=["newsletter"])
    response = client.post(action, {"email": "taras@example.com", "form_token": token()},
                           HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.json()["ok"] is True
    assert Submission.objects.get().email == "taras@example.com"


def test_a_form_switched_off_after_publishing_renders_nothing(client, newsletter, caplog):
    page = landing([("text", "Still here."),
                    ("signup", {"form_type": "newsletter", "heading": "h2"})])
    SignupForm.objects.filter(pk=newsletter.pk).update(is_active=False)
    response = client.get(page.url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Still here." in html and "esp-form" not in html
    assert "no active signup form 'newsletter'" in caplog.text


def test_api_representation_points_at_the_json_schema(newsletter):
    block = SignupFormBlock()
    value = block.to_python({"form_type": "newsletter", "heading": "h3"})
    request = RequestFactory().get("/api/v2/pages/")
    assert block.get_api_representation(value, {"request": request}) == {
        "form_type": "newsletter", "heading": "h3",
        "schema_url": "http://testserver/api/esp-forms/forms/newsletter/",
    }


def test_the_page_editor_offers_the_block_with_the_active_forms(admin_client, newsletter):
    home = Page.objects.get(depth=2)
    url = reverse("wagtailadmin_pages:add", args=["wagtail_site", "landingpage", home.pk])
    html = admin_client.get(url).content.decode()
    assert "Signup form" in html and "Newsletter (newsletter)" in html

    response = admin_client.post(url, {
        "title": "Spring news", "slug": "spring-news",
        "body-count": "1", "body-0-type": "signup", "body-0-deleted": "", "body-0-order": "0",
        "body-0-id": "", "body-0-value-form_type": "newsletter", "body-0-value-heading": "h3",
        "action-publish": "action-publish",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    page = LandingPage.objects.get(slug="spring-news")
    assert page.live
    assert page.body[0].value["form_type"] == "newsletter"
