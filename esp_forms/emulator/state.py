"""The emulator's in-memory world: accounts, contacts, groups, lists, hooks and counters.

Everything lives behind one re-entrant lock (:attr:`EmulatorState.lock`). Handlers hold it only
while they read or change state, never while sleeping or doing network I/O, so one coarse lock is
simpler than fine-grained ones and costs nothing measurable at the request rates a test or a
benchmark produces.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Real ids are large; starting there makes a client that stores them in a small integer column
# fail against the emulator too. UniSender's person_id is documented as 64-bit: starting above
# 2**32 catches both signed and unsigned 32-bit truncation (the seed's example, 2500767342, is
# itself above 2**31).
ESPUTNIK_FIRST_CONTACT_ID = 564_407_320
ESPUTNIK_FIRST_GROUP_ID = 3_000_001
UNISENDER_FIRST_PERSON_ID = 2**32 + 2_500_767_342

# Documented limits: eSputnik answers 429 above 200 requests per second; UniSender allows 300
# subscribe calls per 60 s per key, and 1200 calls per minute for all methods together.
ESPUTNIK_DEFAULT_RATE = (200, 1.0)
UNISENDER_SUBSCRIBE_RATE = (300, 60.0)
UNISENDER_ALL_METHODS_RATE = (1200, 60.0)
# eSputnik answers 409 to the same request repeated within a minute.
DUPLICATE_WINDOW = 60.0


def iso_now(now: float | None = None) -> str:
    """eSputnik-style ISO 8601 timestamp (UTC, seconds)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return stamp.isoformat(timespec="seconds")


def unisender_time(now: float | None = None) -> str:
    """UniSender's ``YYYY-MM-DD hh:mm:ss`` in UTC."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S")


class SlidingWindow:
    """Admits at most ``limit`` events per ``window`` seconds (a limit <= 0 admits everything).

    Only admitted events are counted, so a client that keeps hammering after a refusal is let in
    again as soon as the window has room, like the providers' own limits.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: deque[float] = deque()

    def admit(self, now: float) -> bool:
        if self.limit <= 0:
            return True
        horizon = now - self.window
        hits = self._hits
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True


# ---- eSputnik -------------------------------------------------------------------------------


@dataclass
class EsGroup:
    id: int
    name: str
    type: str = "Static"

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.type}


@dataclass
class EsContact:
    id: int
    channels: list[dict[str, str]]
    first_name: str | None = None
    last_name: str | None = None
    fields: dict[int, Any] = field(default_factory=dict)
    group_ids: list[int] = field(default_factory=list)
    address: dict[str, Any] | None = None
    address_book_id: int | None = None
    contact_key: str | None = None
    external_customer_id: str | None = None
    language_code: str | None = None
    time_zone: str | None = None
    # Emulator-only state: the real API exposes none of it (see ESPUTNIK.md section 4).
    confirmed: bool = False
    confirmed_at: str | None = None
    unsubscribed_at: str | None = None
    source: str = "Subscription form"
    created_at: str = ""
    updated_at: str = ""
    subscriptions: list[str] = field(default_factory=list)

    def channel(self, kind: str) -> str | None:
        for channel in self.channels:
            if channel.get("type") == kind:
                return channel.get("value")
        return None

    @property
    def email(self) -> str | None:
        return self.channel("email")

    @property
    def sms(self) -> str | None:
        return self.channel("sms")


@dataclass
class EsputnikAccount:
    api_key: str
    org: str
    org_id: int
    groups: dict[str, EsGroup] = field(default_factory=dict)  # lower-cased name -> group
    contacts: dict[int, EsContact] = field(default_factory=dict)
    by_email: dict[str, int] = field(default_factory=dict)  # lower-cased email -> id
    by_sms: dict[str, int] = field(default_factory=dict)  # digits only -> id
    events: list[dict[str, Any]] = field(default_factory=list)
    imports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # sha256 of (path, body) -> time first seen, oldest first: cheap expiry from the front.
    recent: OrderedDict[str, float] = field(default_factory=OrderedDict)
    rate: SlidingWindow = field(default_factory=lambda: SlidingWindow(*ESPUTNIK_DEFAULT_RATE))
    workflow_url: str | None = None
    account_url: str | None = None
    webhook_secret: str = ""
    # The activity webhook's optional HTTP Basic auth, as the owner types it in eSputnik.
    account_login: str | None = None
    account_password: str | None = None
    # messageId / messageInstanceId of the (emulated) campaign messages activity refers to.
    next_message_id: int = 90_000_001
    # Activity items as they happened (what GET v2/contacts/activity reads), oldest first.
    activity: list[dict[str, Any]] = field(default_factory=list)
    # eSputnik support may have to enable the activity method for an account: False -> 403.
    activity_method_enabled: bool = True

    @property
    def user_email(self) -> str:
        return f"owner{self.org_id}@example.com"

    def group_by_id(self, group_id: int) -> EsGroup | None:
        for group in self.groups.values():
            if group.id == group_id:
                return group
        return None


# ---- UniSender ------------------------------------------------------------------------------


@dataclass
class UList:
    id: int
    title: str
    confirmation_letter: bool = True


@dataclass
class UContact:
    person_id: int
    email: str
    added_at: str
    status: str = "new"
    phone: str | None = None
    lists: dict[int, str] = field(default_factory=dict)  # list id -> added_at
    # Lists asked for with double opt-in, joined when the contact confirms: list id -> asked at.
    pending: dict[int, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)  # invitation letters "sent"
    consent: dict[str, str] = field(default_factory=dict)  # request_ip, request_time, ...
    double_optin: int | None = None  # the last value received
    platform: str | None = None
    confirmed_at: str | None = None


@dataclass
class UHook:
    url: str
    events: dict[str, str]  # event name -> "*" (or a filter)
    event_format: str = "json_post"
    single_event: bool = False
    status: str = "active"
    max_parallel: int = 10

    def as_api(self) -> dict[str, Any]:
        return {"hook_url": self.url, "event_format": self.event_format,
                "events": dict(self.events), "single_event": int(self.single_event),
                "max_parallel": self.max_parallel, "status": self.status}


@dataclass
class UnisenderAccount:
    api_key: str
    login: str
    lists: dict[int, UList] = field(default_factory=dict)
    contacts: dict[int, UContact] = field(default_factory=dict)
    by_email: dict[str, int] = field(default_factory=dict)  # lower-cased email -> person_id
    by_phone: dict[str, int] = field(default_factory=dict)
    hooks: dict[str, UHook] = field(default_factory=dict)
    subscribe_rate: SlidingWindow = field(
        default_factory=lambda: SlidingWindow(*UNISENDER_SUBSCRIBE_RATE))
    all_rate: SlidingWindow = field(
        default_factory=lambda: SlidingWindow(*UNISENDER_ALL_METHODS_RATE))


class EmulatorState:
    """All accounts of both providers, plus the id counters, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.esputnik: dict[str, EsputnikAccount] = {}
        self.unisender: dict[str, UnisenderAccount] = {}
        self.duplicate_window = DUPLICATE_WINDOW
        self._contact_ids = itertools.count(ESPUTNIK_FIRST_CONTACT_ID)
        self._group_ids = itertools.count(ESPUTNIK_FIRST_GROUP_ID)
        self._org_ids = itertools.count(1001)
        self._person_ids = itertools.count(UNISENDER_FIRST_PERSON_ID)

    def reset(self) -> None:
        """Forget every account. The id counters keep running, so an id seen in one test never
        names a different contact in the next."""
        with self.lock:
            self.esputnik.clear()
            self.unisender.clear()
            self.duplicate_window = DUPLICATE_WINDOW

    def next_contact_id(self) -> int:
        return next(self._contact_ids)

    def next_group_id(self) -> int:
        return next(self._group_ids)

    def next_org_id(self) -> int:
        return next(self._org_ids)

    def next_person_id(self) -> int:
        return next(self._person_ids)
