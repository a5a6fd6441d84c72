"""Wagtail integration (``pip install esp-forms[wagtail]``): a StreamField block that puts a
signup form on a page. Nothing to add to INSTALLED_APPS: import the block where it is used,
``from esp_forms.contrib.wagtail.blocks import SignupFormBlock``."""
