"""Integrations with other packages, each an optional extra (e.g. ``esp-forms[wagtail]``)."""
