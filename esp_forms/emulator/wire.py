"""The emulator's request and response objects, shared by the HTTP layer and the provider modules.

A provider module gets a :class:`RecordedRequest` (the same object the request log keeps, so what
a test inspects is exactly what the handler saw) and returns a :class:`Response`; it never touches
sockets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json;charset=UTF-8"
REDACTED = "[redacted]"
# The control API lives under this prefix, which no provider path uses.
CONTROL_PREFIX = "/_emulator"


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive header mapping that keeps the names as the client sent them.

    A repeated header keeps its last value, like ``requests``' own mapping; the emulator never
    needs the repeats.
    """

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items or ():
            self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass
class RecordedRequest:
    """One request as received. ``status`` is 0 until answered, and stays 0 when the emulator
    dropped the connection on purpose (the ``reset_connection`` fault)."""

    provider: str  # "esputnik", "unisender", "control" or "unknown"
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    json: Any = None
    form: dict[str, list[str]] | None = None
    time: float = 0.0
    status: int = 0
    response_body: bytes = b""
    # What the provider module found out while handling it (the account key, the UniSender
    # method...): lets the log redact keys without parsing the request again.
    api_key: str | None = field(default=None, repr=False)

    def param(self, name: str, default: str | None = None) -> str | None:
        """First value of a UniSender-style parameter, from the form body or else the query."""
        for source in (self.form or {}, self.query):
            values = source.get(name)
            if values:
                return values[0]
        return default

    @property
    def params(self) -> dict[str, str]:
        """Query and form parameters merged (form wins), first value each."""
        merged = {name: values[0] for name, values in self.query.items() if values}
        merged.update({name: values[0] for name, values in (self.form or {}).items() if values})
        return merged

    def response_json(self) -> Any:
        """The answer as JSON, or None when it was not JSON."""
        try:
            return json.loads(self.response_body) if self.response_body else None
        except ValueError:
            return None

    def as_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        """JSON-friendly form for the control API; the API key is masked unless ``reveal``."""
        def scrub(text: str) -> str:
            if reveal or not self.api_key:
                return text
            return text.replace(self.api_key, REDACTED)

        headers = {}
        for name, value in self.headers.items():
            if name.lower() == "authorization" and not reveal:
                value = value.split(" ", 1)[0] + " " + REDACTED
            headers[name] = scrub(value)
        body_text = self.body.decode("utf-8", "replace")
        return {
            "provider": self.provider,
            "method": self.method,
            "path": self.path,
            "query": {k: [scrub(v) for v in vs] for k, vs in self.query.items()},
            "headers": headers,
            "body": scrub(body_text),
            "json": json.loads(scrub(json.dumps(self.json))) if self.json is not None else None,
            "form": ({k: [scrub(v) for v in vs] for k, vs in self.form.items()}
                     if self.form is not None else None),
            "time": self.time,
            "status": self.status,
            "response": self.response_body.decode("utf-8", "replace"),
        }


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, JSON_TYPE, dict(headers or {}))


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode("utf-8"), "text/plain;charset=UTF-8")
