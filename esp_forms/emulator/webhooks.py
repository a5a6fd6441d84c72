"""Webhooks the emulated providers send back, and the background thread that sends them.

Deliveries run on one worker thread, in the order they were queued (a confirmation is never
overtaken by the unsubscribe that followed it), each with a short timeout. A receiver that is
down, slow or answers an error is recorded on the :class:`WebhookDelivery`; it never reaches the
request that caused it and never stops the server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from esp_forms import __version__

logger = logging.getLogger("esp_forms.emulator")

# UniSender retries a hook that does not answer 200 within 3 s; the emulator gives up at once
# instead (a test wants to know, not to wait).
DEFAULT_TIMEOUT = 3.0


@dataclass
class WebhookDelivery:
    """One callback: what was (or will be) POSTed where, and how the receiver answered."""

    provider: str
    event: str  # "confirmed", "unsubscribed" (eSputnik) or the UniSender event name
    url: str
    payload: Any  # the JSON that was sent, parsed
    body: bytes  # the exact bytes sent (UniSender's auth is computed over them)
    time: float
    status: int | None = None  # the receiver's HTTP status; None when it never answered
    error: str | None = None
    response: bytes = b""
    done: bool = False
    # Extra request headers (eSputnik's optional HTTP Basic auth of the activity webhook).
    headers: dict[str, str] = field(default_factory=dict)
    # Lost on the way by the drop fault: never reached the receiver.
    dropped: bool = False
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "event": self.event, "url": self.url,
                "payload": self.payload, "time": self.time, "status": self.status,
                "error": self.error, "done": self.done, "dropped": self.dropped,
                "attempts": self.attempts}


def json_body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def unisender_signed_body(payload: dict[str, Any], api_key: str) -> bytes:
    """The body with ``auth`` first, signed the Unisender Go way (UNISENDER.md section 5).

    ``auth`` is the MD5 of the very bytes sent, with the auth value replaced by the API key.
    A receiver checks it by replacing the received ``auth`` in the raw body with its key and
    hashing (as django-anymail does), so the signature is computed over the serialisation that
    is sent, never over a re-serialisation that could order or space things differently.
    """
    placeholder = uuid.uuid4().hex  # needs no JSON escaping and cannot occur elsewhere
    text = json.dumps({"auth": placeholder, **payload}, ensure_ascii=False,
                      separators=(",", ":"))
    auth = hashlib.md5(text.replace(placeholder, api_key, 1).encode("utf-8")).hexdigest()
    return text.replace(placeholder, auth, 1).encode("utf-8")


class WebhookSender:
    """Queues deliveries and posts them from a daemon thread."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._queue: queue.Queue[tuple[int, WebhookDelivery] | None] = queue.Queue()
        self._deliveries: list[WebhookDelivery] = []
        self._cond = threading.Condition()
        self._pending = 0
        self._generation = 0
        self._thread: threading.Thread | None = None
        # The drop fault: this share of deliveries is lost (never sent), decided by a seeded
        # generator so a test run is repeatable.
        self._drop_rate = 0.0
        self._random = random.Random(0)
        # Proxies from the environment must never catch a callback to a local receiver.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="emulator-webhooks",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None

    def reset(self) -> None:
        """Forget the record and drop what is still queued: a callback caused by one test must
        never land in the next test's receiver."""
        with self._cond:
            self._generation += 1
            self._deliveries.clear()
            self._drop_rate = 0.0

    def set_drop_rate(self, rate: float, seed: int = 0) -> None:
        """Lose this share (0 to 1) of the deliveries from now on, chosen at random."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._cond:
            self._drop_rate = rate
            self._random = random.Random(seed)

    def redeliver(self) -> list[WebhookDelivery]:
        """The providers' retry round (eSputnik repeats a POST not answered 200; UniSender every
        10 minutes for 24 hours): send again, now, every delivery that was dropped or not
        answered 2xx. The drop fault applies to these attempts too."""
        with self._cond:
            failed = [d for d in self._deliveries if d.done and not d.ok]
        for delivery in failed:
            delivery.status, delivery.error, delivery.dropped = None, None, False
            self._post(delivery)
        return failed

    def _drops(self) -> bool:
        with self._cond:
            return self._drop_rate > 0 and self._random.random() < self._drop_rate

    def submit(self, delivery: WebhookDelivery) -> WebhookDelivery:
        with self._cond:
            self._deliveries.append(delivery)
            self._pending += 1
            generation = self._generation
        self._queue.put((generation, delivery))
        return delivery

    def send_now(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Deliver in the calling thread (the on-demand control call waits for the answer)."""
        with self._cond:
            self._deliveries.append(delivery)
        self._post(delivery)
        return delivery

    def deliveries(self) -> list[WebhookDelivery]:
        with self._cond:
            return list(self._deliveries)

    def wait(self, timeout: float = 5.0) -> bool:
        """Block until every queued delivery has been attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            generation, delivery = item
            try:
                if generation == self._generation:
                    self._post(delivery)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _post(self, delivery: WebhookDelivery) -> None:
        delivery.attempts += 1
        if self._drops():
            delivery.dropped, delivery.done = True, True
            delivery.error = "dropped by the emulator's drop fault"
            return
        request = urllib.request.Request(
            delivery.url, data=delivery.body, method="POST",
            headers={"Content-Type": "application/json",
                     "User-Agent": f"esp-forms-emulator/{__version__} ({delivery.provider})",
                     **delivery.headers},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                delivery.status = answer.status
                delivery.response = answer.read(65536)
        except urllib.error.HTTPError as err:  # the receiver answered, with an error status
            delivery.status = err.code
            delivery.response = err.read(65536) if err.fp else b""
            delivery.error = f"HTTP {err.code}"
        except Exception as err:  # any failure is recorded, never raised
            delivery.error = f"{type(err).__name__}: {err}"
        finally:
            delivery.done = True
        if delivery.error:
            logger.info("webhook %s %s to %s failed: %s", delivery.provider, delivery.event,
                        delivery.url, delivery.error)
