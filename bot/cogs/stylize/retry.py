"""When and how often a request to Discord is tried again.

discord.py itself retries a 429 (after `retry_after`) and a 500/502/504 a few times, then raises;
a dropped connection, a timeout or a 503 reaches the caller at once. For the one message a member
waits for (a job's result) that is not enough: a minute's network trouble must not throw a finished
picture away. `with_retries` retries what may well work a moment later (Discord's 5xx, a 429 it
did not absorb, network errors and timeouts), with exponential backoff and jitter (as in AWS's
"Exponential Backoff And Jitter"), and re-raises anything else at once (403, 404, 413: asking
again gives the same answer). Each attempt is bounded too: aiohttp's own default is five minutes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import discord

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[object]]


def is_transient(exc: BaseException) -> bool:
    """Worth asking again: the same request may succeed in a moment."""
    if isinstance(exc, discord.HTTPException):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, (discord.RateLimited, aiohttp.ClientError, asyncio.TimeoutError, OSError))


def too_large(exc: BaseException) -> bool:
    """Discord refused the upload's size (413, or its JSON code 40005)."""
    return isinstance(exc, discord.HTTPException) and (exc.status == 413 or exc.code == 40005)


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free description of a failed request for logs and job rows."""
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}" + (f" ({exc.code})" if exc.code else "")
    return type(exc).__name__


@dataclass(frozen=True)
class Retry:
    """`attempts` tries in all; waits of `backoff` × 2^n seconds (±25 %, at most `max_delay`) between
    them; each attempt given up after `timeout` seconds."""

    attempts: int = 4
    backoff: float = 2.0
    max_delay: float = 30.0
    timeout: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.backoff * 2**attempt) * random.uniform(0.75, 1.25)


async def with_retries(
    request: Callable[[], Awaitable[T]],
    retry: Retry,
    *,
    what: str,
    job_id: str = "-",
    sleep: Sleep = asyncio.sleep,
) -> T:
    """`request()` until it succeeds, fails for good, or the attempts run out (the last error is raised)."""
    attempts = max(1, retry.attempts)
    for attempt in range(attempts):
        try:
            return await asyncio.wait_for(request(), retry.timeout)
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            delay = retry.delay(attempt)
            log.warning(
                "job %s: %s failed (%s, attempt %d of %d); retrying in %.1fs",
                job_id,
                what,
                describe_failure(exc),
                attempt + 1,
                attempts,
                delay,
            )
            await sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")
