"""The demo site's own pages: a home page embedding the signup forms, and a mailbox.

The mailbox shows every email the demo "sent" (Django's file-based email backend writes them to
``EMAIL_FILE_PATH``), so a confirmation link can be followed without a mail server. It shows
anyone every address, which is fine for a demo on a laptop and the reason this lives in the demo
project, never in the app.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import strip_tags

from esp_forms.models import SignupForm

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
# The file backend ends every message with a line of 79 dashes (EmailBackend.write_message).
SEPARATOR = b"\n" + b"-" * 79 + b"\n"
MAX_MESSAGES = 50
MAX_FILE_BYTES = 5 * 1024 * 1024

# Shown in this order when they exist; the first two are the sandbox forms every demo has.
SANDBOX_FORMS = ("newsletter", "product-updates")
EMULATOR_FORMS = ("esputnik-news", "unisender-news")


def home(request: HttpRequest) -> HttpResponse:
    active = set(SignupForm.objects.filter(is_active=True, form_type__in=SANDBOX_FORMS +
                                           EMULATOR_FORMS).values_list("form_type", flat=True))
    return render(request, "home.html", {
        "active_forms": active,
        "missing_forms": [form_type for form_type in SANDBOX_FORMS if form_type not in active],
        "emulator_forms": [form_type for form_type in EMULATOR_FORMS if form_type in active],
    })


@dataclass
class Mail:
    id: str
    subject: str
    sender: str
    to: str
    date: str
    body: str


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = part.get_content()
    if part.get_content_type() == "text/html":
        # Only when no plain-text version exists: links stay visible as text and get linked.
        text = strip_tags(text)
    return text.strip()


def read_mailbox(folder: Path, limit: int = MAX_MESSAGES) -> list[Mail]:
    """The newest ``limit`` messages written by the file backend, newest first."""
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix == ".log"),
                   key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    mails: list[Mail] = []
    for path in files:
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        # One file holds every message of one connection, oldest first.
        chunks = [c for c in path.read_bytes().split(SEPARATOR) if c.strip()]
        for index in range(len(chunks) - 1, -1, -1):
            # policy.default makes the parser return EmailMessage (with get_body), not Message.
            message = cast(EmailMessage, email.message_from_bytes(
                chunks[index], policy=email.policy.default))
            mails.append(Mail(
                id=f"{path.stem}-{index}",
                subject=str(message.get("subject", "")),
                sender=str(message.get("from", "")),
                to=str(message.get("to", "")),
                date=str(message.get("date", "")),
                body=_body_text(message),
            ))
            if len(mails) >= limit:
                return mails
    return mails


def mailbox(request: HttpRequest) -> HttpResponse:
    folder = getattr(settings, "EMAIL_FILE_PATH", None)
    uses_files = settings.EMAIL_BACKEND == FILE_BACKEND and folder
    return render(request, "mailbox.html", {
        "uses_files": uses_files,
        "folder": folder,
        "mails": read_mailbox(Path(folder)) if uses_files else [],
        "backend": settings.EMAIL_BACKEND,
    })
