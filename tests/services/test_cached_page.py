"""A cached page with four forms, all four submitted at the same moment, on PostgreSQL: every
submit succeeds (one CSRF token per page load, shared by the four forms)."""

from __future__ import annotations

import pytest

from esp_forms.models import Submission
from tests.browser.conftest import browser, demo_site  # noqa: F401 (fixtures)
from tests.browser.test_cached_page import add_forms, submit_cached_page

pytestmark = [pytest.mark.services, pytest.mark.browser]


def test_four_forms_submitted_at_once_from_a_cached_page(browser, demo_site,  # noqa: F811
                                                         live_server):
    add_forms()
    for round_ in range(5):
        submit_cached_page(browser, live_server, round_, together=True)
    assert Submission.objects.count() == 20
