"""The emulator's HTTP server and its Python API (:class:`EmulatorServer`).

One port answers three families of paths:

- ``/api/v1/...``: eSputnik (:mod:`esp_forms.emulator.esputnik`);
- ``/<lang>/api/<method>``: UniSender (:mod:`esp_forms.emulator.unisender`);
- ``/_emulator/...``: the control API (:mod:`esp_forms.emulator.control`), never recorded.

Every answer is written in one ``send`` and accepted sockets get ``TCP_NODELAY``: a
standard-library handler that writes headers and body separately stalls about 40 ms per
keep-alive request (Nagle's algorithm waiting for the client's delayed ACK), which would cap a
client at about 25 calls/s. ``bench/emulator_throughput.py`` measures both.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from esp_forms import __version__
from esp_forms.emulator import control, esputnik, unisender
from esp_forms.emulator.state import EmulatorState, SlidingWindow
from esp_forms.emulator.webhooks import DEFAULT_TIMEOUT, WebhookDelivery, WebhookSender
from esp_forms.emulator.wire import (
    CONTROL_PREFIX,
    REDACTED,
    Headers,
    RecordedRequest,
    Response,
    json_response,
    text_response,
)

__all__ = ["EmulatorServer", "Fault", "RecordedRequest", "WebhookDelivery"]

logger = logging.getLogger("esp_forms.emulator")

PROVIDERS = ("esputnik", "unisender")
MAX_BODY = 10 * 1024 * 1024


@dataclass
class Fault:
    """What the next ``times`` matching provider requests get instead of a normal answer."""

    provider: str
    status: int | None = None
    body: str | None = None
    unisender_code: str | None = None
    unisender_message: str | None = None
    delay: float = 0.0
    reset_connection: bool = False
    times: int = 1
    path_contains: str | None = None
    # Handle the request normally first (state changes), then fault the answer: the "request
    # arrived, answer lost" case behind eSputnik's 409 on a retry.
    apply: bool = False

    def matches(self, request: RecordedRequest) -> bool:
        return (self.provider == request.provider
                and (self.path_contains is None or self.path_contains in request.path))

    @property
    def replaces_answer(self) -> bool:
        return self.status is not None or self.body is not None or bool(self.unisender_code)

    def response(self) -> Response:
        if self.unisender_code:
            return unisender.error_response(self.unisender_code, self.unisender_message,
                                            status=self.status or 200)
        status = self.status or 500
        if self.body is None:
            phrase = _phrase(status) or "Error"
            return json_response(status, {"message": f"{phrase} (emulated fault)"})
        try:
            json.loads(self.body)
        except ValueError:
            return text_response(status, self.body)
        return Response(status, self.body.encode("utf-8"))

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "status": self.status, "body": self.body,
                "unisender_code": self.unisender_code,
                "unisender_message": self.unisender_message, "delay": self.delay,
                "reset_connection": self.reset_connection, "times": self.times,
                "path_contains": self.path_contains, "apply": self.apply}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def classify(path: str) -> str:
    if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
        return "control"
    if path == "/api" or path.startswith("/api/"):
        return "esputnik"
    if unisender.PATH_RE.match(path):
        return "unisender"
    return "unknown"


class _Drop(Exception):
    """Raised by the dispatcher to close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a client's pooled session is exercised
    server_version = f"esp-forms-emulator/{__version__}"
    sys_version = ""
    # Idle keep-alive connections are closed after this long, so abandoned ones free their
    # thread; clients' pools notice and reconnect.
    timeout = 120
    server: _HTTPServer

    # BaseHTTPRequestHandler dispatches on do_<METHOD>; every method goes through one router.
    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        started = time.perf_counter()
        try:
            body = self._read_body()
        except ValueError as err:
            self.close_connection = True
            self._send(text_response(400, str(err)))
            return
        request = self._recorded(body)
        try:
            response = emulator._answer(request)
        except _Drop:
            self._abort()
            emulator._access(request, started)
            return
        except Exception:  # a bug in a handler answers 500; the server keeps serving
            logger.exception("emulator: error handling %s %s", request.method, request.path)
            response = json_response(500, {"message": "Emulator internal error"})
        request.response_body = response.body
        request.status = response.status
        self._send(response)
        emulator._access(request, started)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                length = int(line, 16)
                if length == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY:
                    raise ValueError("Request body too large")
                chunks.append(self.rfile.read(length))
                self.rfile.readline(1024)
        raw = self.headers.get("Content-Length")
        if not raw:
            return b""
        length = int(raw)
        if not 0 <= length <= MAX_BODY:
            raise ValueError("Bad Content-Length")
        return self.rfile.read(length)

    def _recorded(self, body: bytes) -> RecordedRequest:
        split = urlsplit(self.path)
        path = unquote(split.path) or "/"
        headers = Headers(list(self.headers.items()))
        parsed_json: Any = None
        if body:
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
        form = None
        content_type = headers.get("Content-Type", "").lower()
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return RecordedRequest(
            provider=classify(path), method=self.command, path=path,
            query=parse_qs(split.query, keep_blank_values=True), headers=headers, body=body,
            json=parsed_json, form=form, time=time.time())

    def _send(self, response: Response) -> None:
        body = b"" if self.command == "HEAD" else response.body
        lines = [f"HTTP/1.1 {response.status} {_phrase(response.status)}",
                 f"Server: {self.server_version}",
                 f"Date: {self.date_time_string()}",
                 f"Content-Type: {response.content_type}",
                 f"Content-Length: {len(response.body)}"]
        lines += [f"{name}: {value}" for name, value in response.headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.server.split_writes:
            # The standard library's pattern (end_headers, then the body): kept only so the
            # benchmark can show what it costs.
            self.wfile.write(head)
            self.wfile.write(body)
        else:
            self.wfile.write(head + body)

    def _abort(self) -> None:
        """Drop the connection with a TCP reset and no answer at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.server.aborted.add(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib would print the request line, query string (and a UniSender GET's
        # api_key) included, to stderr; the emulator's own access log is redacted instead.
        logger.debug("emulator http: %s", format % args if "%" in format else format)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer, *,
                 tcp_nodelay: bool, split_writes: bool) -> None:
        self.emulator = emulator
        self.tcp_nodelay = tcp_nodelay
        self.split_writes = split_writes
        self.connections: set[socket.socket] = set()
        self.aborted: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host with getfqdn(), which can hang for seconds
        # on a machine without working DNS; the name is never used here.
        TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tcp_nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conn_lock:
            self.connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self.connections.discard(request)
        if request in self.aborted:
            # No FIN first: with SO_LINGER 0, close() sends the reset the fault asked for.
            self.aborted.discard(request)
            self.close_request(request)
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, reset) while a delayed answer was pending is normal
        # here; anything else is a bug worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.debug("emulator: client %s went away: %s", client_address, exc)
            return
        logger.exception("emulator: error on connection from %s", client_address)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self.connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class _Settings:
    latency: float = 0.0
    faults: list[Fault] = field(default_factory=list)


class EmulatorServer:
    """A real HTTP server speaking eSputnik and UniSender on one port, with a Python API.

    ``tcp_nodelay`` and ``split_writes`` exist for the benchmark's baseline; leave them alone.
    ``access_log`` receives one redacted line per provider request (the management command
    prints them); by default they go to the ``esp_forms.emulator`` logger at DEBUG.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0,
                 tcp_nodelay: bool = True, split_writes: bool = False,
                 access_log: Callable[[str], None] | None = None, max_log: int = 10_000,
                 webhook_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.state = EmulatorState()
        self._tcp_nodelay = tcp_nodelay
        self._split_writes = split_writes
        self._access_log = access_log
        self._log: deque[RecordedRequest] = deque(maxlen=max_log)
        self._lock = threading.Lock()  # guards _log and _settings (state has its own lock)
        self._settings = _Settings(latency=latency)
        self._generation = 0  # bumped by reset()
        self._webhooks = WebhookSender(timeout=webhook_timeout)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("EmulatorServer is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _bind(self) -> _HTTPServer:
        if self._httpd is not None:
            raise RuntimeError("EmulatorServer is already started")
        self._httpd = _HTTPServer((self.host, self.port), self, tcp_nodelay=self._tcp_nodelay,
                                  split_writes=self._split_writes)
        self.port = int(self._httpd.server_address[1])
        self._webhooks.start()
        return self._httpd

    def start(self) -> EmulatorServer:
        """Bind and serve from a daemon thread; returns self."""
        httpd = self._bind()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"emulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind (unless started) and serve in the calling thread until :meth:`stop` or an
        exception such as KeyboardInterrupt."""
        httpd = self._httpd or self._bind()
        httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._webhooks.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget accounts, contacts, the request log, faults, latency, limits and webhooks."""
        self.state.reset()
        with self._lock:
            self._log.clear()
            self._settings = _Settings()
            self._generation += 1
        self._webhooks.reset()

    # ---- accounts ----------------------------------------------------------------------------
    def add_esputnik_account(self, api_key: str, *, groups: list[str] | tuple[str, ...] = (),
                             org: str = "Demo org") -> None:
        with self.state.lock:
            esputnik.add_account(self.state, api_key, groups=list(groups), org=org)

    def add_unisender_account(self, api_key: str, *, lists: list[dict[str, Any]],
                              login: str = "demo") -> None:
        """``lists``: ``[{"id": int, "title": str, "confirmation_letter": bool}]``."""
        with self.state.lock:
            unisender.add_account(self.state, api_key, lists=lists, login=login)

    # ---- request log -------------------------------------------------------------------------
    def requests(self, provider: str | None = None) -> list[RecordedRequest]:
        """Provider requests received, oldest first (control calls are never recorded)."""
        with self._lock:
            return [r for r in self._log if provider is None or r.provider == provider]

    def last_request(self, provider: str | None = None) -> RecordedRequest:
        found = self.requests(provider)
        if not found:
            raise LookupError(f"the emulator received no {provider or 'provider'} request")
        return found[-1]

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # ---- faults, latency, limits ---------------------------------------------------------------
    def fault(self, provider: str, *, status: int | None = None, body: str | None = None,
              unisender_code: str | None = None, unisender_message: str | None = None,
              delay: float = 0.0, reset_connection: bool = False, times: int = 1,
              path_contains: str | None = None, apply: bool = False) -> None:
        """Make the next ``times`` requests of ``provider`` (whose path contains
        ``path_contains``) answer ``status``/``body``, or a UniSender error ``unisender_code``,
        or wait ``delay`` seconds first, or drop the connection (``reset_connection``).
        Faults queue up in the order they were added; the first matching one is used."""
        _check_provider(provider)
        if times < 1:
            raise ValueError("times must be at least 1")
        if delay < 0:
            raise ValueError("delay must not be negative")
        with self._lock:
            self._settings.faults.append(Fault(
                provider=provider, status=status, body=body, unisender_code=unisender_code,
                unisender_message=unisender_message, delay=delay,
                reset_connection=reset_connection, times=times, path_contains=path_contains,
                apply=apply))

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._settings.faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._settings.faults.clear()

    def set_latency(self, seconds: float) -> None:
        """Delay every provider answer by this long (control calls are never delayed)."""
        if seconds < 0:
            raise ValueError("latency must not be negative")
        with self._lock:
            self._settings.latency = seconds

    def set_rate_limit(self, provider: str, api_key: str, limit: int, window: float, *,
                       all_methods: bool = False) -> None:
        """eSputnik: every call of that key (documented 200 per 1 s). UniSender: ``subscribe``
        calls of that key (documented 300 per 60 s), or with ``all_methods`` the limit on all
        its calls together (documented 1200 per 60 s). A limit <= 0 switches it off."""
        _check_provider(provider)
        window_limit = SlidingWindow(limit, window)
        with self.state.lock:
            if provider == "esputnik":
                esputnik.account_of(self.state, api_key).rate = window_limit
            elif all_methods:
                unisender.account_of(self.state, api_key).all_rate = window_limit
            else:
                unisender.account_of(self.state, api_key).subscribe_rate = window_limit

    def set_duplicate_window(self, seconds: float) -> None:
        """How long eSputnik answers 409 to a repeated identical subscribe (documented 60 s)."""
        with self.state.lock:
            self.state.duplicate_window = seconds

    # ---- contacts ----------------------------------------------------------------------------
    def confirm(self, provider: str, api_key: str, email: str, *, group: str = "Confirmed"
                ) -> None:
        """The person clicked the confirmation link. eSputnik: confirmed, added to ``group``,
        workflow webhook sent. UniSender: ``active`` and in the lists it asked for, ``subscribe``
        hooks sent. Raises LookupError for an unknown key or email."""
        _check_provider(provider)
        now = time.time()
        with self.state.lock:
            if provider == "esputnik":
                deliveries = esputnik.confirm(self.state, api_key, email, group, now)
            else:
                deliveries = unisender.confirm(self.state, api_key, email, now)
        for delivery in deliveries:
            self._webhooks.submit(delivery)

    def unsubscribe(self, provider: str, api_key: str, email: str, *,
                    list_id: int | None = None) -> None:
        """The person unsubscribed; the account webhook (eSputnik) or ``unsubscribe`` hooks
        (UniSender) are sent. UniSender ``list_id``: from that list only (the contact stays
        subscribed to its others). Raises LookupError for an unknown key or email."""
        _check_provider(provider)
        now = time.time()
        with self.state.lock:
            if provider == "esputnik":
                deliveries = esputnik.unsubscribe(self.state, api_key, email, now)
            else:
                deliveries = unisender.unsubscribe(self.state, api_key, email, now,
                                                   list_id=list_id)
        for delivery in deliveries:
            self._webhooks.submit(delivery)

    def contact(self, provider: str, api_key: str, email: str) -> dict[str, Any] | None:
        """The contact with the emulator-only state (eSputnik ``confirmed``, UniSender
        ``pending_lists`` and ``letters``...), or None."""
        _check_provider(provider)
        with self.state.lock:
            try:
                if provider == "esputnik":
                    account = esputnik.account_of(self.state, api_key)
                    return esputnik.contact_view(account,
                                                 esputnik.contact_by_email(account, email))
                account_u = unisender.account_of(self.state, api_key)
                return unisender.contact_view(unisender.contact_by_email(account_u, email))
            except LookupError:
                return None

    def contacts(self, provider: str, api_key: str) -> list[dict[str, Any]]:
        _check_provider(provider)
        with self.state.lock:
            if provider == "esputnik":
                account = esputnik.account_of(self.state, api_key)
                return [esputnik.contact_view(account, c) for c in account.contacts.values()]
            account_u = unisender.account_of(self.state, api_key)
            return [unisender.contact_view(c) for c in account_u.contacts.values()]

    def esputnik_events(self, api_key: str) -> list[dict[str, Any]]:
        """Events raised for the account (``subscribeFromApi-<formType>``...), oldest first."""
        with self.state.lock:
            return [dict(e) for e in esputnik.account_of(self.state, api_key).events]

    # ---- webhooks ----------------------------------------------------------------------------
    def set_esputnik_webhooks(self, api_key: str, *, workflow_url: str | None = None,
                              account_url: str | None = None, secret: str = "",
                              account_login: str | None = None,
                              account_password: str | None = None) -> None:
        """Where confirmations (the workflow's Webhook block, whose body carries ``secret``)
        and activity (the account webhook: unsubscribes, receipts) are POSTed; None switches
        one off. ``account_login``/``account_password``: the activity webhook's optional HTTP
        Basic auth."""
        with self.state.lock:
            account = esputnik.account_of(self.state, api_key)
            account.workflow_url = workflow_url
            account.account_url = account_url
            account.webhook_secret = secret
            account.account_login = account_login
            account.account_password = account_password

    def drop_webhooks(self, rate: float, *, seed: int = 0) -> None:
        """Lose this share (0 to 1) of the webhooks sent from now on (until reset)."""
        self._webhooks.set_drop_rate(rate, seed)

    def redeliver_webhooks(self) -> list[WebhookDelivery]:
        """The providers' retry round: send again every webhook that was dropped or not
        answered 2xx; returns them."""
        return self._webhooks.redeliver()

    def send_webhook(self, provider: str, api_key: str, event: str, email: str, *,
                     list_id: int | None = None) -> list[WebhookDelivery]:
        """Send a provider-style callback now, without changing any state, and wait for the
        answer. eSputnik ``event``: ``confirmed`` or ``unsubscribed``; UniSender: a hook event
        name such as ``subscribe``. Raises LookupError when nothing listens to it."""
        _check_provider(provider)
        now = time.time()
        with self.state.lock:
            if provider == "esputnik":
                deliveries = [esputnik.on_demand(self.state, api_key, event, email, now)]
            else:
                deliveries = unisender.on_demand(self.state, api_key, event, email, list_id,
                                                 now)
        return [self._webhooks.send_now(d) for d in deliveries]

    def webhooks(self) -> list[WebhookDelivery]:
        """Every callback queued or sent since the last reset, oldest first."""
        return self._webhooks.deliveries()

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until every queued callback has been attempted; False on timeout."""
        return self._webhooks.wait(timeout)

    # ---- request handling (called from the handler threads) ------------------------------------
    def _answer(self, request: RecordedRequest) -> Response:
        if request.provider == "control":
            return control.handle(self, request)
        with self._lock:
            self._log.append(request)
            latency = self._settings.latency
            fault = self._take_fault(request)
            generation = self._generation
        if fault is None:
            if latency:
                self._sleep(latency, generation)
            return self._provider_answer(request)
        response = self._provider_answer(request) if fault.apply else None
        if latency + fault.delay:
            self._sleep(latency + fault.delay, generation)
        if fault.reset_connection:
            raise _Drop
        if fault.replaces_answer:
            return fault.response()
        return response if response is not None else self._provider_answer(request)

    def _sleep(self, seconds: float, generation: int) -> None:
        """Wait, then drop the request if a reset happened meanwhile: a request held by one
        test's delay fault must never be handled against the next test's accounts."""
        time.sleep(seconds)
        if generation != self._generation:
            raise _Drop

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        for index, fault in enumerate(self._settings.faults):
            if fault.matches(request):
                fault.times -= 1
                if fault.times <= 0:
                    del self._settings.faults[index]
                return fault
        return None

    def _provider_answer(self, request: RecordedRequest) -> Response:
        now = time.time()
        if request.provider == "esputnik":
            return esputnik.handle(self.state, request, now)
        if request.provider == "unisender":
            return unisender.handle(self.state, request, now)
        return json_response(404, {"message": f"No emulated endpoint at {request.path}"})

    def _access(self, request: RecordedRequest, started: float) -> None:
        if request.provider == "control" and self._access_log is None:
            return
        query = {k: [REDACTED] if k == "api_key" else v for k, v in request.query.items()}
        target = request.path + ("?" + urlencode(query, doseq=True, safe="[]") if query else "")
        if request.api_key:
            target = target.replace(request.api_key, REDACTED)
        status = request.status or "reset"
        line = (f"{request.method} {target} -> {status} "
                f"({request.provider}, {(time.perf_counter() - started) * 1000:.1f} ms)")
        if self._access_log is not None:
            self._access_log(line)
        else:
            logger.debug("emulator: %s", line)


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
