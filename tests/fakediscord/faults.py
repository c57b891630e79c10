"""Injected failures: make the next matching requests fail the way Discord fails — an HTTP status
with Discord's JSON error body (https://discord.com/developers/docs/reference#error-messages), a 429
with ``retry_after`` (https://discord.com/developers/docs/topics/rate-limits#exceeding-a-rate-limit),
or a slow answer, or a network error (the connection closed without an answer, before or after the
request took effect) — without touching the bot. A ``Hold`` keeps matching requests waiting until the
test releases them, so a test can see how many a client has in flight at once.

Faults are checked before routing, so they also apply to CDN downloads and unknown paths. They are
not rate-limit buckets: a 429 from here carries no X-RateLimit headers and is not audited; for
bucket-aware 429s use ``FakeDiscord.rate_limits.force_429``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .recording import RecordedRequest, method_matches


@dataclass
class Fault:
    """An injected failure for the next ``times`` requests matching ``method``/``pattern``.

    For 429 the fake sends what Discord sends: a JSON body with ``retry_after``/``global`` and a
    ``Via`` header (discord.py treats a 429 without ``Via`` as a Cloudflare ban and gives up).
    ``delay`` holds the response back, to exercise client timeouts. ``disconnect`` closes the
    connection instead of answering (the client sees a network error, e.g. aiohttp's
    ``ServerDisconnectedError``): ``"before"`` the request is handled, so it had no effect, or
    ``"after"``, so it took effect and the client cannot know (a message was created, an edit made).
    """

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int = 1
    json: Any = None
    retry_after: float = 0.05
    is_global: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    predicate: Callable[[RecordedRequest], bool] | None = None
    disconnect: Literal["before", "after"] | None = None
    hits: int = 0

    def matches(self, req: RecordedRequest) -> bool:
        if self.times <= 0 or not method_matches(self.method, req.method):
            return False
        if not self.pattern.fullmatch(req.path):
            return False
        return self.predicate is None or bool(self.predicate(req))

    def body(self) -> Any:
        if self.json is not None:
            return self.json
        if self.status == 429:
            return {
                "message": "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.is_global,
            }
        return default_error_body(self.status)

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.status == 429:
            headers.setdefault("Via", "1.1 google")
            headers.setdefault("Retry-After", str(max(1, round(self.retry_after))))
            headers.setdefault("X-RateLimit-Scope", "shared" if not self.is_global else "global")
            if self.is_global:
                headers.setdefault("X-RateLimit-Global", "true")
        return headers


_DEFAULT_ERRORS: dict[int, tuple[str, int]] = {
    400: ("400: Bad Request", 0),
    401: ("401: Unauthorized", 0),
    403: ("Missing Permissions", 50013),
    404: ("404: Not Found", 0),
    405: ("405: Method Not Allowed", 0),
    413: ("Request entity too large", 40005),
    500: ("500: Internal Server Error", 0),
    502: ("502: Bad Gateway", 0),
    503: ("503: Service Unavailable", 0),
}


def default_error_body(status: int) -> dict[str, Any]:
    message, code = _DEFAULT_ERRORS.get(status, (f"{status}: Error", 0))
    return {"message": message, "code": code}


@dataclass
class Hold:
    """Matching requests are recorded, then wait unanswered until the test lets them through
    (then they are answered as any other, injected faults included).

    ``let_through(n)`` answers the ``n`` longest-held requests and keeps holding new ones;
    ``release()`` answers every one and holds no more. ``waiting`` are the requests held now;
    ``log`` has ``("held" | "released", request)`` in order, so a test can work out how many of
    any kind were in flight at once; ``peak`` is the most held together.
    """

    method: str
    pattern: re.Pattern[str]
    predicate: Callable[[RecordedRequest], bool] | None = None
    waiting: list[RecordedRequest] = field(default_factory=list)
    log: list[tuple[str, RecordedRequest]] = field(default_factory=list)
    peak: int = 0
    released: bool = False
    _gates: list[asyncio.Future[None]] = field(default_factory=list)

    def matches(self, req: RecordedRequest) -> bool:
        if self.released or not method_matches(self.method, req.method):
            return False
        return bool(self.pattern.fullmatch(req.path)) and (self.predicate is None or bool(self.predicate(req)))

    def let_through(self, n: int = 1) -> None:
        """Answer the `n` requests held longest (fewer if fewer wait)."""
        for gate in [g for g in self._gates if not g.done()][:n]:
            gate.set_result(None)

    def release(self) -> None:
        """Answer every held request, and hold no more."""
        self.released = True
        self.let_through(len(self._gates))

    async def wait(self, req: RecordedRequest, notify: Callable[[], None]) -> None:
        gate = asyncio.get_running_loop().create_future()
        self._gates.append(gate)
        self.waiting.append(req)
        self.log.append(("held", req))
        self.peak = max(self.peak, len(self.waiting))
        notify()
        try:
            await gate
        finally:
            self._gates.remove(gate)
            self.waiting.remove(req)
            self.log.append(("released", req))


class Faults:
    """The pending faults, first match wins; each fault is used up after ``times`` hits. Holds
    come first: a held request meets its fault once released."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self.holds: list[Hold] = []

    def hold(self, hold: Hold) -> Hold:
        self.holds.append(hold)
        return hold

    async def wait_if_held(self, rec: RecordedRequest, notify: Callable[[], None]) -> None:
        """Keep ``rec`` until every hold it matches lets it through."""
        for hold in list(self.holds):
            if hold.matches(rec):
                await hold.wait(rec, notify)

    def add(self, fault: Fault) -> Fault:
        self.pending.append(fault)
        return fault

    def take(self, rec: RecordedRequest) -> Fault | None:
        """The fault that answers ``rec`` (counted as used), or None."""
        fault = next((f for f in self.pending if f.matches(rec)), None)
        if fault is not None:
            fault.times -= 1
            fault.hits += 1
        return fault

    def clear(self) -> None:
        self.pending.clear()
        for hold in self.holds:
            hold.release()
        self.holds.clear()
