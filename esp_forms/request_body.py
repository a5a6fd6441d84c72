"""Reading request bodies sent by strangers: charset, size, text, then JSON or form shape.

Every public endpoint that reads a body (the JSON API, the HTML form's POST, the provider
webhooks) goes through here before anything parses it, so one set of rules holds everywhere:

- the declared ``charset`` must be a real text encoding. Python's codec registry also holds
  bytes-to-bytes codecs (``zlib``, ``bz2``, ``base64``, ``hex``, ``uu``, ``quopri``...) and
  text transforms (``rot13``): Django and DRF pass the header's value to it, so a 48 KB
  ``charset=zlib`` body inflated to 50 MB and others raised a 500. They get a 415;
- the body is at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (413), read no further;
- the text is valid in its encoding, never repaired with U+FFFD (400);
- JSON nests at most ``MAX_DEPTH`` levels and holds no lone surrogate (``"\\ud800"`` parses in
  Python but cannot be encoded, stored in PostgreSQL, or echoed in an answer) and no NUL
  (PostgreSQL text cannot hold it) (400).

``BodyError`` carries the status and a sentence for the developer who sent the request;
``BodyError.response()`` is the API's error shape.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import parse_header_parameters
from django.utils.translation import gettext as _

# The key non-field errors are reported under (as esp_forms.forms.NON_FIELD_KEY).
NON_FIELD_KEY = "non_field_errors"
# A signup body nests two levels ("fields": {...}); provider webhooks about six.
MAX_DEPTH = 32
# Text encodings in Python's registry that are no web charset: escape-sequence decoders that
# mint lone surrogates from ASCII, domain-name codecs, the always-failing "undefined", and
# UTF-7, the classic way to smuggle markup past filters.
NOT_CHARSETS = frozenset({
    "unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "utf-7",
})
# Form posts are percent-encoded UTF-8 (what browsers send and Django requires).
FORM_CHARSETS = frozenset({"utf-8", "ascii"})
FORM_MEDIA_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyError(Exception):
    """A body this app will not read, with the HTTP status and a sentence saying why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def response(self) -> JsonResponse:
        return JsonResponse(error_body(self.message), status=self.status)


def error_body(message: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The one error shape of the API, the HTML form's JSON answers and body rejections."""
    message = str(message)
    return {"ok": False, "message": message, "errors": errors or {NON_FIELD_KEY: [message]}}


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, for echoing what a stranger sent."""
    text = _SURROGATE.sub("\ufffd", str(text))
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- charsets -------------------------------------------------------------------------------

def text_encoding(charset: str) -> str:
    """The codec name of ``charset`` when it is a real text encoding; else a 415."""
    name = None
    if charset and charset.isprintable() and len(charset) <= 40:
        try:
            info = codecs.lookup(charset)
        except LookupError:
            info = None
        # Bytes-to-bytes codecs (zlib, base64...) and str-to-str ones (rot13) say so here.
        if info is not None and getattr(info, "_is_text_encoding", True) \
                and info.name not in NOT_CHARSETS:
            name = info.name
    if name is None:
        raise BodyError(_("The charset “%(charset)s” is not a text encoding this site reads: "
                          "send the body as UTF-8 (Content-Type: …; charset=utf-8).")
                        % {"charset": shorten(charset, 40)}, status=415)
    return name


def content_type_and_charset(content_type: str | None) -> tuple[str, str | None]:
    """The media type (lower case) and the declared charset, if any."""
    media_type, params = parse_header_parameters(content_type or "")
    charset = params.get("charset")
    return media_type.strip().lower(), (charset.strip() if charset is not None else None)


# --- size and text --------------------------------------------------------------------------

def size_limit() -> int | None:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large() -> BodyError:
    return BodyError(_("The request body is too large (the limit is %(limit)s bytes).")
                     % {"limit": f"{size_limit():,}"}, status=413)


def read_limited(stream: Any) -> bytes:
    """Read at most the size limit (plus one byte, to know it was exceeded)."""
    limit = size_limit()
    raw = stream.read(limit + 1) if limit is not None else stream.read()
    if limit is not None and len(raw) > limit:
        raise too_large()
    return raw


def request_bytes(request: HttpRequest) -> bytes:
    """``request.body`` within the size limit, as a ``BodyError``."""
    try:
        return request.body
    except RequestDataTooBig as exc:
        raise too_large() from exc


def decode(raw: bytes, charset: str | None) -> str:
    """Bytes to text in a real text encoding (UTF-8 when none is declared), strictly."""
    encoding = text_encoding(charset) if charset is not None else "utf-8"
    try:
        return codecs.decode(raw, encoding)
    except (UnicodeError, ValueError) as exc:
        raise BodyError(_("The request body is not valid %(encoding)s text.")
                        % {"encoding": encoding}) from exc


# --- structure ------------------------------------------------------------------------------

def too_deep(depth: int = MAX_DEPTH) -> BodyError:
    return BodyError(_("The request body is nested too deeply (at most %(depth)s levels).")
                     % {"depth": depth})


def lone_surrogate_error() -> BodyError:
    return BodyError(_("The request contains text that is not valid Unicode (a lone "
                       "surrogate such as \\ud800); send real characters."))


def check_text(text: str) -> None:
    """No lone surrogate (cannot be encoded) and no NUL (PostgreSQL text cannot hold it)."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return
    if found.group() == "\x00":
        raise BodyError(_("The request contains a NUL character (\\u0000), which no text "
                          "field can hold."))
    raise lone_surrogate_error()


def check_structure(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """No deeper than ``max_depth``, no lone surrogate in any key or string. Iterative, so a
    deep value cannot exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise too_deep(max_depth)
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json(text: str) -> Any:
    """JSON text to data: no NaN/Infinity, bounded depth, no lone surrogates."""
    if not text.strip():
        raise BodyError(_('The request body is empty; send a JSON object, e.g. '
                          '{"email": "ann@example.com"}.'))
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise too_deep() from exc
    except ValueError as exc:
        raise BodyError(_("The request body is not valid JSON: %(reason)s.")
                        % {"reason": shorten(str(exc), 120)}) from exc
    check_structure(data)
    return data


def read_json(stream: Any, charset: str | None) -> Any:
    """What the API's parser calls: charset, size, strict decoding, JSON, structure."""
    if charset is not None:
        text_encoding(charset)  # a codec charset is refused before a byte is read
    return parse_json(decode(read_limited(stream), charset))


# --- form posts -----------------------------------------------------------------------------

def check_form_post(request: HttpRequest) -> None:
    """An HTML form POST is UTF-8, within the limits, and decodes without U+FFFD repairs.

    Run before anything reads ``request.POST``: Django decodes percent-escapes with
    ``errors="replace"``, so invalid UTF-8 would reach the form as U+FFFD and be stored.
    """
    media_type, charset = content_type_and_charset(request.META.get("CONTENT_TYPE"))
    if charset is not None and text_encoding(charset) not in FORM_CHARSETS:
        raise BodyError(_("Form posts must be UTF-8 (the charset was “%(charset)s”).")
                        % {"charset": shorten(charset, 40)}, status=415)
    raw = request_bytes(request)
    not_utf8 = BodyError(_("The form data is not valid UTF-8 text."))
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode("ascii" if raw.isascii() else "utf-8"),
                              keep_blank_values=True, encoding="utf-8", errors="strict",
                              max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)
        except UnicodeError as exc:
            raise not_utf8 from exc
        except ValueError as exc:  # max_num_fields
            raise too_many_fields() from exc
        for key, value in pairs:
            check_text(key)
            check_text(value)
    elif media_type == "multipart/form-data":
        # A signup form uploads no files: the whole body is text.
        try:
            raw.decode("utf-8")
        except UnicodeError as exc:
            raise not_utf8 from exc
    try:
        values: Iterable[tuple[str, list[str]]] = request.POST.lists()
        for key, items in values:
            check_text(key)
            for item in items:
                check_text(item)
                # Base64 transfer-encoded parts are decoded with errors="replace".
                if "\ufffd" in item and "\ufffd".encode() not in raw:
                    raise not_utf8
    except TooManyFieldsSent as exc:
        raise too_many_fields() from exc
    except RequestDataTooBig as exc:
        raise too_large() from exc
    except (MultiPartParserError, BadRequest) as exc:
        raise BodyError(_("The form data could not be read: %(reason)s")
                        % {"reason": shorten(str(exc), 120)}) from exc


def too_many_fields() -> BodyError:
    return BodyError(_("The form sent too many fields (the limit is %(limit)s).")
                     % {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})


# --- webhooks -------------------------------------------------------------------------------

def check_webhook_body(request: HttpRequest) -> None:
    """A provider callback: text charset, size limit, valid text, and (when it is JSON) sane
    structure. The webhook classes parse the body themselves; this makes sure what they parse
    cannot crash them or the database."""
    media_type, charset = content_type_and_charset(request.META.get("CONTENT_TYPE"))
    if charset is not None:
        text_encoding(charset)
    raw = request_bytes(request)
    if media_type in FORM_MEDIA_TYPES:
        check_form_post(request)
    if not raw.strip():
        return
    text = decode(raw, charset)  # the webhook classes try JSON whatever the Content-Type says
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise too_deep() from exc
    except ValueError:
        return  # not JSON: nothing the webhook classes will read as data
    check_structure(data)


def guard(check: Callable[[HttpRequest], None], request: HttpRequest) -> JsonResponse | None:
    """Run ``check``; a ``BodyError`` becomes its JSON answer."""
    try:
        check(request)
    except BodyError as err:
        return err.response()
    return None


# --- the WSGI entry point -------------------------------------------------------------------

def reject_codec_charsets(application: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a WSGI application so a request declaring a non-text ``charset`` gets a 415.

    Django hands the ``Content-Type`` charset to Python's codec registry while it builds the
    request (decoding the query string), before any middleware or view can answer, so
    ``?a=1`` with ``charset=zlib`` is an unhandled error. Form posts in another charset than
    UTF-8 are refused here too (any view's, the admin's included). Wrap your ``application`` in
    ``wsgi.py`` with this (see docs/security.md).
    """

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        media_type, charset = content_type_and_charset(environ.get("CONTENT_TYPE"))
        if charset is not None:
            try:
                encoding = text_encoding(charset)
                if media_type in FORM_MEDIA_TYPES and encoding not in FORM_CHARSETS:
                    # Django refuses these too, but from inside CsrfViewMiddleware, whose
                    # error page reads the body again: a 500 instead of a 400.
                    raise BodyError(_("Form posts must be UTF-8 (the charset was "
                                      "“%(charset)s”).") % {"charset": shorten(charset, 40)},
                                    status=415)
            except BodyError as err:
                payload = json.dumps(error_body(err.message)).encode()
                start_response(f"{err.status} Unsupported Media Type", [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(payload))),
                ])
                return [payload]
        return application(environ, start_response)

    return guarded
