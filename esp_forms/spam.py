"""Anti-spam: a honeypot field and a signed render-time token, and counting what they catch.

A submission caught here is answered exactly like a success (a bot that is told it failed just
tries something else) but never stored; it only increments ``SpamCount(form, reason, day)``.

The token is ``django.core.signing`` data ``{"f": form_type, "t": issued_at}``, salted so it
cannot be swapped with any other signed value of the site. It proves that the page (or the
schema endpoint) was served by us, for this form, at least ``MIN_FILL_SECONDS`` and at most
``MAX_FORM_AGE`` seconds before the submission.
"""

from __future__ import annotations

import logging
import math
import time
import uuid

from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from esp_forms.conf import get_setting
from esp_forms.models import SignupForm, SpamCount

logger = logging.getLogger("esp_forms.spam")

TOKEN_SALT = "esp_forms.spam.form_token"
DECOY_SALT = "esp_forms.spam.decoy_id"
TOKEN_FIELD = "form_token"

Reason = SpamCount.Reason


def honeypot_field_name() -> str:
    return str(get_setting("HONEYPOT_FIELD"))


def issue_token(form_type: str, *, issued_at: float | None = None) -> str:
    """A fresh signed token for ``form_type``; ``issued_at`` (epoch seconds) is for tests."""
    when = time.time() if issued_at is None else issued_at
    # Milliseconds, rounded down so a token never looks younger than it is.
    issued = math.floor(when * 1000) / 1000
    return signing.dumps({"f": form_type, "t": issued}, salt=TOKEN_SALT, compress=False)


def check_token(token: object, form_type: str, *, now: float | None = None) -> str | None:
    """The spam reason for this token, or None when it is acceptable."""
    if not isinstance(token, str) or not token:
        return Reason.BAD_TOKEN
    try:
        payload = signing.loads(token, salt=TOKEN_SALT)
    except (signing.BadSignature, ValueError):
        return Reason.BAD_TOKEN
    if not isinstance(payload, dict) or payload.get("f") != form_type:
        # A genuine token of another form: reused by a bot across forms.
        return Reason.BAD_TOKEN
    issued = payload.get("t")
    if not isinstance(issued, (int, float)) or isinstance(issued, bool):
        return Reason.BAD_TOKEN
    age = (time.time() if now is None else now) - issued
    # A token from the future (clock skew between servers) counts as too fast, not forged.
    if age < float(get_setting("MIN_FILL_SECONDS")):
        return Reason.TOO_FAST
    if age > float(get_setting("MAX_FORM_AGE")):
        return Reason.TOO_OLD
    return None


def check_submission(form: SignupForm, *, honeypot: object, token: object) -> str | None:
    """The spam reason for a submission of ``form``, or None when it looks human."""
    # People never see the honeypot; anything in it (a JSON client may send any type) is a bot.
    if honeypot is not None and honeypot is not False and str(honeypot).strip():
        return Reason.HONEYPOT
    return check_token(token, form.form_type)


# Why each reason drops a submission, for the log line a developer reads when a test signup
# "succeeded" but never arrived.
WHY = {
    Reason.HONEYPOT: "the honeypot field had a value",
    Reason.TOO_FAST: ("its form_token was younger than MIN_FILL_SECONDS ({min_fill:g} s); "
                      "an API client must wait that long between fetching the token and "
                      "posting"),
    Reason.TOO_OLD: "its form_token was older than MAX_FORM_AGE ({max_age:g} s)",
    Reason.BAD_TOKEN: "its form_token was missing, forged or issued for another form",
}


def count_spam(form: SignupForm, reason: str) -> None:
    """Add one to today's counter for ``form`` and ``reason``, safely under concurrency.

    The UPDATE with F() is atomic in the database; when today's row does not exist yet two
    requests may both try to create it, and the loser of that race (IntegrityError on the unique
    constraint) falls back to the UPDATE.
    """
    why = WHY.get(reason, reason).format(min_fill=float(get_setting("MIN_FILL_SECONDS")),
                                         max_age=float(get_setting("MAX_FORM_AGE")))
    logger.info("Dropped a submission to form %s as spam (%s): %s. It was answered like a "
                "success and not stored.", form.form_type, reason, why)
    bump_count(form, reason)


def bump_count(form: SignupForm, reason: str) -> None:
    """One more today in ``SpamCount`` for ``form`` and ``reason`` (spam drops, and the abuse
    gate's and the CAPTCHA's blocks), safe under concurrency as count_spam explains."""
    day = timezone.localdate()
    rows = SpamCount.objects.filter(form=form, reason=reason, day=day)
    if rows.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            SpamCount.objects.create(form=form, reason=reason, day=day, count=1)
    except IntegrityError:
        rows.update(count=F("count") + 1)


# --- decoy submission ids ------------------------------------------------------------------
# The JSON API answers spam with 202 and an id, like a success. If that id were random, the
# status endpoint's 404 for it would tell a bot that it was caught. So the decoy id is a
# version-4-looking UUID that carries the form's pk (masked) and a MAC, and the status endpoint
# recognises it and answers "pending" without any row existing.
#
# Byte layout (16 bytes, the UUID version and variant bits left as in uuid4):
#   0-5 nonce | 6 version nibble + 4 random bits | 7 MAC | 8 variant + 6 random bits
#   | 9-12 form pk XOR a keyed pad | 13-15 MAC
_PK_LIMIT = 2**32


def _decoy_mac(head: bytes) -> bytes:
    return salted_hmac(DECOY_SALT, head, algorithm="sha256").digest()[:4]


def _decoy_pad(nonce: bytes) -> bytes:
    return salted_hmac(DECOY_SALT + ".pad", nonce, algorithm="sha256").digest()[:4]


def decoy_submission_id(form: SignupForm) -> uuid.UUID:
    """A fake submission id for a dropped spam submission of ``form``."""
    raw = bytearray(uuid.uuid4().bytes)
    if not 0 < int(form.pk) < _PK_LIMIT:
        return uuid.UUID(bytes=bytes(raw))
    nonce = bytes(raw[0:6])
    masked = bytes(a ^ b for a, b in zip(form.pk.to_bytes(4, "big"), _decoy_pad(nonce),
                                          strict=True))
    raw[9:13] = masked
    head = bytes(raw[0:7]) + bytes(raw[8:13])
    mac = _decoy_mac(head)
    raw[7] = mac[0]
    raw[13:16] = mac[1:4]
    return uuid.UUID(bytes=bytes(raw))


def decoy_form_pk(value: uuid.UUID) -> int | None:
    """The form pk carried by a decoy id made by :func:`decoy_submission_id`, else None."""
    raw = value.bytes
    head = raw[0:7] + raw[8:13]
    mac = _decoy_mac(head)
    if not constant_time_compare(bytes([raw[7]]) + raw[13:16], mac):
        return None
    pad = _decoy_pad(raw[0:6])
    return int.from_bytes(bytes(a ^ b for a, b in zip(raw[9:13], pad, strict=True)), "big")

