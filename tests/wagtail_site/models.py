from wagtail import blocks
from wagtail.fields import StreamField
from wagtail.models import Page

from esp_forms.contrib.wagtail.blocks import SignupFormBlock


class LandingPage(Page):
    """A page as a site would build one: some text and signup forms in a StreamField."""

    body = StreamField([
        ("text", blocks.TextBlock()),
        ("signup", SignupFormBlock()),
    ], blank=True)

    content_panels = [*Page.content_panels, "body"]
