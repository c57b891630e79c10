"""Discord's per-route rate limits, an opt-in strict mode, and an audit of how the client honours them
(https://discord.com/developers/docs/topics/rate-limits).

Discord limits each route per top-level resource (channel, guild, webhook id + token), announces the
state of the request's bucket in ``X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket`` headers, and
answers a request over the limit with 429, a JSON body ``{"message", "retry_after", "global"}`` and
``Retry-After``/``X-RateLimit-Scope`` headers. A client must not send to that bucket again before the
announced reset.

Strict mode (off by default, so tests that do not need it keep their speed) enforces fixed windows
per bucket: the first request after a reset opens a window of ``window`` seconds in which ``limit``
requests pass. Every answer from a known route, errors included, then carries the bucket headers.
Routes without a rule of their own get a generous per-route bucket (``default_limit`` per
``default_window``). The ``uploads`` rule is a sub-limit: it counts only requests that carry files,
on top of the route's own bucket, and its 429s show the route's headers with requests still
remaining — what Discord does when a hidden sub-limit is hit (discord.py then waits ``retry_after``).

The audit works in either mode: every 429 the limiter sends is counted, and so is every request
that reaches a bucket before the reset that bucket's last 429 announced ("dishonoured"). Such a
request is answered 429 again. ``force_429`` makes the next requests of a route fail with a 429 that
carries the route's bucket headers, to test that a client waits even when the headers gave no warning.

What zero dishonoured proves depends on concurrency. discord.py sends one interaction token's webhook
requests one at a time and waits out every 429 and every exhausted bucket it is told about, so there
the count is exactly "did the bot ignore a 429". Its HTTP client for bot-token routes applies a 429
only to the request that received it: when several requests to one channel bucket are in flight and
one is refused (a hidden sub-limit, or a full bucket after its own estimate went wrong), another can
still reach the bucket before the announced reset. That is counted here, as Discord would count it
as an invalid request; the server cannot tell it from a request sent after the 429 was read.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .recording import RecordedRequest, compile_pattern, method_matches
from .routing import MAJOR_PARAMS, Route

# A client that sleeps exactly the announced time arrives at or after the reset; the grace only
# absorbs float rounding between the fake's clock and the value it sent.
EARLY_GRACE = 0.001

_CHANNEL_MESSAGES = "/channels/{channel_id}/messages"
_HOOK = "/webhooks/{app_id}/{token}"


@dataclass
class BucketRule:
    """A rate limit shared by ``routes`` (route keys as ``routing.Route.key`` spells them)."""

    name: str
    routes: tuple[str, ...]
    limit: int
    window: float
    uploads_only: bool = False


def default_rules() -> list[BucketRule]:
    """Limits in the range Discord announces for these routes; tests tighten them with ``set_limit``."""
    return [
        BucketRule("message_create", (f"POST {_CHANNEL_MESSAGES}",), 5, 5.0),
        BucketRule("message_edit", (f"PATCH {_CHANNEL_MESSAGES}/{{message_id}}",), 5, 5.0),
        BucketRule("interaction_edit", (f"PATCH {_HOOK}/messages/{{message_id}}",), 5, 2.0),
        BucketRule("interaction_followup", (f"POST {_HOOK}",), 5, 2.0),
        BucketRule(
            "uploads",
            (
                f"POST {_CHANNEL_MESSAGES}",
                f"PATCH {_CHANNEL_MESSAGES}/{{message_id}}",
                f"POST {_HOOK}",
                f"PATCH {_HOOK}/messages/{{message_id}}",
                "POST /interactions/{interaction_id}/{token}/callback",
            ),
            10,
            10.0,
            uploads_only=True,
        ),
    ]


@dataclass
class BucketStats:
    """Per bucket: requests that reached it, 429s because it was exhausted, 429s forced by a test,
    and requests that arrived before a reset it had announced in a 429."""

    requests: int = 0
    exhausted: int = 0
    forced: int = 0
    dishonoured: int = 0

    @property
    def sent_429(self) -> int:
        return self.exhausted + self.forced + self.dishonoured


@dataclass
class RateLimitEvent:
    """One 429 the limiter sent."""

    at: float
    bucket: str
    key: tuple[str, ...]
    method: str
    path: str
    retry_after: float
    reason: str  # "exhausted" | "forced" | "dishonoured"


@dataclass
class RateLimitReport:
    """What ``FakeDiscord.rate_limit_report()`` returns; ``str()`` is a table for soak-test logs."""

    strict: bool
    buckets: dict[str, BucketStats]
    events: list[RateLimitEvent]

    @property
    def sent_429(self) -> int:
        return sum(b.sent_429 for b in self.buckets.values())

    @property
    def dishonoured(self) -> int:
        return sum(b.dishonoured for b in self.buckets.values())

    def __str__(self) -> str:
        head = f"{'bucket':<58} {'requests':>8} {'429 full':>8} {'forced':>6} {'dishonoured':>11}"
        rows = [head, "-" * len(head)]
        for name, b in sorted(self.buckets.items()):
            rows.append(f"{name:<58} {b.requests:>8} {b.exhausted:>8} {b.forced:>6} {b.dishonoured:>11}")
        rows.append(f"{'total 429s sent':<58} {self.sent_429:>8}   dishonoured {self.dishonoured}")
        return "\n".join(rows)


@dataclass(frozen=True, eq=False)
class _Bucket:
    name: str
    limit: int
    window: float


@dataclass
class _Window:
    """One bucket for one top-level resource (``key``): the current fixed window and the latest
    reset a 429 announced."""

    key: tuple[str, ...]
    count: int = 0
    reset_at: float = 0.0
    blocked_until: float = 0.0


@dataclass
class _Refusal:
    bucket: _Bucket
    retry_after: float


@dataclass
class _Forced:
    method: str
    pattern: re.Pattern[str]
    times: int
    retry_after: float


@dataclass
class Admission:
    """The limiter's verdict for one request: headers to add and, when refused, the 429 to send."""

    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    bucket: str | None = None

    def body(self) -> dict[str, Any]:
        return {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False}


def _ceil_ms(seconds: float) -> float:
    """Round up to Discord's millisecond precision, so a client waiting the announced time is never early."""
    return max(0.001, math.ceil(seconds * 1000) / 1000)


class RateLimiter:
    """Buckets, windows and the audit. Times are real monotonic seconds (not the fake's ``Clock``):
    clients really sleep on rate limits."""

    def __init__(
        self,
        known_routes: Iterable[str],
        *,
        strict: bool = False,
        rules: Iterable[BucketRule] | None = None,
        default_limit: int = 50,
        default_window: float = 1.0,
    ) -> None:
        self.known_routes = set(known_routes)
        self.strict = strict
        self.default_limit = default_limit
        self.default_window = default_window
        self.rules: list[BucketRule] = []
        for rule in default_rules() if rules is None else rules:
            self.add_rule(rule)
        self.stats: dict[str, BucketStats] = {}
        self.events: list[RateLimitEvent] = []
        self._windows: dict[tuple[str, tuple[str, ...]], _Window] = {}
        self._forced: list[_Forced] = []

    # ------------------------------------------------------------------ configuration

    def add_rule(self, rule: BucketRule) -> None:
        """Add ``rule``, or replace the rule of the same name. A route has at most one bucket of its
        own; upload sub-limits may share routes with it."""
        unknown = [r for r in rule.routes if r not in self.known_routes]
        if unknown:
            raise ValueError(f"rate-limit rule {rule.name!r} names routes the fake does not have: {unknown}")
        if rule.limit < 1 or rule.window <= 0:
            raise ValueError(f"rate-limit rule {rule.name!r} needs limit >= 1 and window > 0")
        others = [r for r in self.rules if r.name != rule.name]
        if not rule.uploads_only:
            taken = {route for r in others if not r.uploads_only for route in r.routes} & set(rule.routes)
            if taken:
                raise ValueError(f"routes {sorted(taken)} already have a bucket of their own")
        names = [r.name for r in self.rules]
        if rule.name in names:
            self.rules[names.index(rule.name)] = rule
        else:
            self.rules.append(rule)

    def rule(self, name: str) -> BucketRule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"no rate-limit rule {name!r} (have {[r.name for r in self.rules]})")

    def set_limit(self, name: str, limit: int | None = None, window: float | None = None) -> BucketRule:
        """Change a rule's ``limit`` (at once) and/or ``window`` (seconds, from its next window)."""
        r = self.rule(name)
        self.add_rule(
            dataclasses.replace(
                r, limit=r.limit if limit is None else limit, window=r.window if window is None else window
            )
        )
        return self.rule(name)

    def force_429(
        self, method: str, path_pattern: str | re.Pattern[str], *, times: int = 1, retry_after: float = 1.0
    ) -> None:
        """Answer the next ``times`` requests matching ``method``/``path_pattern`` (as in ``fail_next``)
        with a 429 for their bucket and ``retry_after`` seconds. A request that arrives while the
        bucket is still blocked counts as dishonoured and does not use up a forced 429."""
        self._forced.append(_Forced(method, compile_pattern(path_pattern), times, retry_after))

    # ------------------------------------------------------------------ per request

    def _buckets(self, route: Route, rec: RecordedRequest) -> list[_Bucket]:
        """Every bucket ``rec`` counts against, the route's own first (a configured rule or the
        route's default bucket), then the upload sub-limits when it carries files."""
        own = next((r for r in self.rules if not r.uploads_only and route.key in r.routes), None)
        out = [
            _Bucket(own.name, own.limit, own.window)
            if own
            else _Bucket(route.key, self.default_limit, self.default_window)
        ]
        if rec.files:
            out += [_Bucket(r.name, r.limit, r.window) for r in self.rules if r.uploads_only and route.key in r.routes]
        return out

    def _refuse(
        self, reason: str, bucket: _Bucket, win: _Window, rec: RecordedRequest, now: float, wait: float
    ) -> _Refusal:
        announced = _ceil_ms(wait)
        win.blocked_until = max(win.blocked_until, now + announced)
        stats = self.stats[bucket.name]
        setattr(stats, reason, getattr(stats, reason) + 1)
        self.events.append(RateLimitEvent(now, bucket.name, win.key, rec.method, rec.path, announced, reason))
        return _Refusal(bucket, announced)

    def admit(self, route: Route, params: dict[str, str], rec: RecordedRequest, now: float) -> Admission:
        """Count ``rec`` (which arrived at ``now``) against its buckets and decide whether it passes:
        refused if it comes before a reset a 429 announced, if a forced 429 is pending for it, or (in
        strict mode) if one of its buckets is full; otherwise it uses one request of each bucket."""
        key = tuple(params[p] for p in MAJOR_PARAMS if p in params)
        buckets = self._buckets(route, rec)
        wins = []
        for b in buckets:
            self.stats.setdefault(b.name, BucketStats()).requests += 1
            win = self._windows.setdefault((b.name, key), _Window(key))
            if now >= win.reset_at:
                win.count, win.reset_at = 0, now + b.window
            wins.append(win)

        refused = next(
            (
                self._refuse("dishonoured", b, w, rec, now, w.blocked_until - now)
                for b, w in zip(buckets, wins, strict=True)
                if now < w.blocked_until - EARLY_GRACE
            ),
            None,
        )
        forced = next((f for f in self._forced if f.times > 0 and self._matches(f, rec)), None)
        if refused is None and forced is not None:
            forced.times -= 1
            refused = self._refuse("forced", buckets[0], wins[0], rec, now, forced.retry_after)
        if refused is None and self.strict:
            refused = next(
                (
                    self._refuse("exhausted", b, w, rec, now, w.reset_at - now)
                    for b, w in zip(buckets, wins, strict=True)
                    if w.count >= b.limit
                ),
                None,
            )
            if refused is None:
                for w in wins:
                    w.count += 1
        return self._answer(buckets[0], wins[0], refused, now)

    def _answer(self, own: _Bucket, win: _Window, refused: _Refusal | None, now: float) -> Admission:
        """Headers describe the route's own bucket; a 429 from a sub-limit shows that bucket with
        requests still left, as Discord shows a hidden sub-limit."""
        if refused is None:
            if not self.strict:
                return Admission()
            return Admission(self._headers(own, own.limit - win.count, win.reset_at - now))
        if refused.bucket is own:
            headers = self._headers(own, 0, refused.retry_after)
        else:
            headers = self._headers(own, own.limit - win.count, win.reset_at - now)
        headers["Retry-After"] = str(math.ceil(refused.retry_after))
        headers["X-RateLimit-Scope"] = "user"
        # discord.py treats a 429 without Via as a Cloudflare ban rather than a rate limit.
        headers["Via"] = "1.1 google"
        return Admission(headers, refused.retry_after, refused.bucket.name)

    @staticmethod
    def _matches(forced: _Forced, rec: RecordedRequest) -> bool:
        return method_matches(forced.method, rec.method) and bool(forced.pattern.fullmatch(rec.path))

    @staticmethod
    def _headers(bucket: _Bucket, remaining: int, reset_after: float) -> dict[str, str]:
        reset_after = _ceil_ms(reset_after)
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket.name,
        }

    def report(self) -> RateLimitReport:
        return RateLimitReport(
            strict=self.strict,
            buckets={k: BucketStats(**vars(v)) for k, v in self.stats.items()},
            events=list(self.events),
        )
