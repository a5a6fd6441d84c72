"""Playwright (sync API) against pytest-django's live server, driving Debian's chromium.

Playwright's own browser download is not used: ``make browser`` installs the distribution's
chromium and the tests launch it by path. Without it the tests skip with a loud reason, except on
CI (``CI=true``), where a missing browser must fail the run instead of silently testing nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ESP_FORMS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_PASSWORD = "browser-test-password"


# Per module, not per session: the loop must be gone before the rest of the suite runs, where
# DJANGO_ALLOW_ASYNC_UNSAFE is not set.
@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        reason = (f"BROWSER TESTS NOT RUN: no chromium at {CHROMIUM}. Install it with "
                  "'apt-get install -y chromium' (make browser) or set ESP_FORMS_CHROMIUM.")
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in the test's thread, and Django refuses
    # database access (the tests' own, and pytest-django's setup and flush) from a thread with a
    # running loop unless told it is safe. It is: nothing else runs on that loop. Set for as
    # long as the loop lives, and only then: elsewhere the check stays on.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                  args=["--no-sandbox", "--headless"])
            yield launched
            launched.close()


@pytest.fixture
def demo_site(transactional_db, settings, tmp_path, monkeypatch) -> None:
    """The demo's accounts and forms, as ``make run`` seeds them."""
    from django.core.cache import cache
    from django.core.management import call_command

    settings.DEMO_DIR = tmp_path
    monkeypatch.setenv("ESP_FORMS_DEMO_PASSWORD", ADMIN_PASSWORD)
    # A person types for more than the anti-spam minimum; a test does not. Throttle counters
    # live in the cache and must not carry over from earlier tests.
    settings.ESP_FORMS = {**settings.ESP_FORMS, "MIN_FILL_SECONDS": 0}
    cache.clear()
    call_command("esp_forms_demo", stdout=StringIO())


def _context(browser, live_server, **options):
    return browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900},
                               **options)


@pytest.fixture
def page(browser, live_server, demo_site) -> Iterator:
    context = _context(browser, live_server)
    yield context.new_page()
    context.close()


@pytest.fixture
def uk_page(browser, live_server, demo_site) -> Iterator:
    """A browser set to Ukrainian: it sends Accept-Language: uk-UA."""
    context = _context(browser, live_server, locale="uk-UA")
    yield context.new_page()
    context.close()


@pytest.fixture
def nojs_page(browser, live_server, demo_site) -> Iterator:
    context = _context(browser, live_server, java_script_enabled=False)
    yield context.new_page()
    context.close()


@pytest.fixture
def shot():
    """``shot(page, "name")`` saves a full-page screenshot to test-artifacts/name.png;
    ``shot(locator, "name")`` saves just that element."""
    from playwright.sync_api import Page

    ARTIFACTS.mkdir(exist_ok=True)

    def take(target, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        if isinstance(target, Page):
            target.screenshot(path=str(path), full_page=True)
        else:
            target.screenshot(path=str(path))
        return path

    return take
