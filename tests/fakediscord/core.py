"""What every part of the fake shares: its settings, its clock, the change signal that waits use,
and the ``Context`` bundle handed to each REST resource and driver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .state import FakeState, Intent, Interaction

if TYPE_CHECKING:
    from .events import Events
    from .gateway import Gateway
    from .messages import MessageBuilder


@dataclass
class Settings:
    """Discord's rules that tests want to shorten or tighten, all changeable while the fake runs.

    ``interaction_ack_timeout``: an interaction must be acknowledged within 3 s, later callbacks get
    404 Unknown interaction (10062); ``token_lifetime``: interaction tokens are valid for 15 minutes,
    webhook calls after that get 401 Invalid Webhook Token (50027)
    (https://discord.com/developers/docs/interactions/receiving-and-responding#responding-to-an-interaction);
    ``attachment_size_limit``: the upload cap (413, 40005), also sent to the bot in every interaction;
    ``heartbeat_interval_ms``: sent in HELLO; ``enforce_message_content_intent``: hide message content
    from bots without the MESSAGE_CONTENT intent
    (https://discord.com/developers/docs/events/gateway#message-content-intent);
    ``require_synced_commands``: drivers refuse commands the bot never registered;
    ``privileged_intents``: the privileged intents enabled for the application in the developer portal
    (an IDENTIFY asking for another is closed with 4014, and REST reads hide message content without
    MESSAGE_CONTENT here).
    """

    token: str = "fake.bot.token"
    interaction_ack_timeout: float = 3.0
    token_lifetime: float = 15 * 60.0
    attachment_size_limit: int = 10 * 1024 * 1024
    heartbeat_interval_ms: int = 41250
    enforce_message_content_intent: bool = True
    require_synced_commands: bool = False
    privileged_intents: int = Intent.PRIVILEGED


class Clock:
    """Monotonic seconds that a test can move forward (``advance``) to reach Discord's time rules —
    the ack window, token lifetime — without sleeping. Rate limits use real time instead: clients
    really sleep on them."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Changes:
    """Wakes every waiter whenever the fake's state may have changed (a request answered, a gateway
    frame sent or received), so tests wait on conditions instead of sleeping."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Attach to the running event loop (the one the server is started in)."""
        self.loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def check_loop(self) -> None:
        """A fake started in another event loop (e.g. a session-scoped fixture loop) cannot serve
        this one; say so instead of letting the client time out."""
        if self.loop is None:
            raise RuntimeError("FakeDiscord is not started (use `async with FakeDiscord() as fd`)")
        if self.loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "FakeDiscord was started in a different event loop than the one running now; "
                "give its fixture the same loop_scope as the test (see fakediscord.fixtures)"
            )

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    async def wait_until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """The first truthy value of ``check()``, re-checked after every change (and every 0.25 s, for
        conditions outside the fake); TimeoutError naming ``what`` after ``timeout`` seconds."""
        self.check_loop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None and result is not False:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            if self._event is None:
                self._event = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(remaining, 0.25))


@dataclass
class Context:
    """The shared parts a REST resource or driver works with (composition, not a base class)."""

    settings: Settings
    state: FakeState
    clock: Clock
    changes: Changes
    gateway: Gateway
    events: Events
    messages: MessageBuilder

    def token_expired(self, inter: Interaction) -> bool:
        """Interaction tokens stop working after ``token_lifetime`` (or when a test expired one)."""
        return inter.expired or (self.clock.now() - inter.created_at) > self.settings.token_lifetime
