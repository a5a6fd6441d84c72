"""The abuse gate's rules (tests/test_abuse.py) again on PostgreSQL, where the store sends the
mailbox count with the row's INSERT and the gate only reads it."""

from __future__ import annotations

import pytest

from tests.test_abuse import *  # noqa: F403  (collected again here, on PostgreSQL)

pytestmark = pytest.mark.services
