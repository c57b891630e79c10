"""Test-facing observation: what the bot sent and what the world looks like now, and waiting for
either to reach a condition (re-checked on every change, never by sleeping a fixed time)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ..core import Changes
from ..gateway import Gateway, GatewaySession
from ..recording import RecordedRequest, compile_pattern, method_matches
from ..state import Channel, FakeState, Interaction, Message


class Observing:
    """Mixed into ``FakeDiscord``; uses its ``state``, ``changes``, ``gateway`` and ``requests``."""

    state: FakeState
    changes: Changes
    gateway: Gateway
    requests: list[RecordedRequest]

    async def wait_until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """The first truthy ``check()`` (re-checked whenever the fake changes); TimeoutError naming
        ``what`` after ``timeout`` seconds. For conditions no ``wait_for_*`` covers."""
        return await self.changes.wait_until(check, timeout, what)

    _wait_until = wait_until  # the name existing callers use

    # ------------------------------------------------------------------ requests

    def requests_matching(
        self,
        method: str,
        pattern: str | re.Pattern[str],
        predicate: Callable[[RecordedRequest], bool] | None = None,
        *,
        since: int = 0,
    ) -> list[RecordedRequest]:
        """Completed requests whose method and path match (``{name}`` = one segment, rest is regex)."""
        rx = compile_pattern(pattern)
        return [
            r
            for r in self.requests[since:]
            if r.done
            and method_matches(method, r.method)
            and rx.fullmatch(r.path)
            and (predicate is None or predicate(r))
        ]

    async def wait_for_request(
        self,
        method: str,
        pattern: str | re.Pattern[str],
        predicate: Callable[[RecordedRequest], bool] | None = None,
        *,
        timeout: float = 5.0,
        since: int = 0,
    ) -> RecordedRequest:
        """First completed matching request at index >= ``since`` (use ``since=len(fd.requests)``
        to ignore earlier ones). Returns after the fake has answered, so state is already updated."""

        def check() -> RecordedRequest | None:
            found = self.requests_matching(method, pattern, predicate, since=since)
            return found[0] if found else None

        return await self.wait_until(check, timeout, f"{method} {pattern}")

    # ------------------------------------------------------------------ messages and interactions

    async def wait_for_message(
        self,
        channel: Channel | int,
        predicate: Callable[[Message], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> Message:
        """First (oldest) live message in ``channel`` satisfying ``predicate`` (checks current state,
        so a message that is later edited into shape also matches)."""
        cid = channel if isinstance(channel, int) else channel.id
        return await self.wait_until(
            lambda: _first(self.messages_in(cid), predicate), timeout, f"message in channel {cid}"
        )

    async def wait_for_response(self, interaction: Interaction, *, timeout: float = 5.0) -> Interaction:
        """Wait until the bot acknowledged ``interaction`` (any callback type)."""
        return await self.wait_until(
            lambda: interaction if interaction.responded else None, timeout, f"response to {interaction.id}"
        )

    async def wait_for_original(
        self,
        interaction: Interaction,
        predicate: Callable[[Message], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> Message:
        """Wait until the interaction's original response message exists and satisfies ``predicate``."""
        return await self.wait_until(
            lambda: _first([self.original_message(interaction)], predicate),
            timeout,
            f"original response of {interaction.id}",
        )

    async def wait_for_followup(
        self,
        interaction: Interaction,
        predicate: Callable[[Message], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> Message:
        """Wait for a follow-up message (not the original) of ``interaction``."""
        return await self.wait_until(
            lambda: _first(self.followups(interaction), predicate), timeout, f"followup of {interaction.id}"
        )

    async def wait_for_modal(self, interaction: Interaction, *, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the bot answered ``interaction`` with a modal; returns the modal payload."""
        return await self.wait_until(lambda: interaction.modal, timeout, f"modal for {interaction.id}")

    def original_message(self, interaction: Interaction) -> Message | None:
        """The message @original currently refers to (None before a message response or if deleted)."""
        return self.state.original_message(interaction)

    def followups(self, interaction: Interaction) -> list[Message]:
        """Live follow-up messages of ``interaction`` (excluding the original response), oldest first."""
        out = []
        for mid in interaction.followup_ids:
            msg = self.state.messages.get(mid)
            if msg is not None and not msg.deleted and mid != interaction.original_message_id:
                out.append(msg)
        return out

    def messages_in(self, channel: Channel | int) -> list[Message]:
        """Live messages in ``channel`` (ephemeral ones included), oldest first."""
        cid = channel if isinstance(channel, int) else channel.id
        return sorted(self.state.channel_messages(cid), key=lambda m: m.id)

    def get_message(self, message_id: int) -> Message | None:
        """Any stored message by id, deleted ones included (check ``.deleted``)."""
        return self.state.messages.get(message_id)

    # ------------------------------------------------------------------ gateway

    async def wait_until_connected(self, *, timeout: float = 10.0) -> GatewaySession:
        """Wait for a session that got READY and its GUILD_CREATEs (the client's on_ready comes later)."""

        def check() -> GatewaySession | None:
            for s in self.gateway.sessions.values():
                if s.ready and not s.dead and s.conn is not None:
                    return s
            return None

        return await self.wait_until(check, timeout, "a gateway session")

    async def wait_for_identify(self, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until ``count`` IDENTIFYs happened (e.g. a fresh login after INVALID_SESSION)."""
        await self.wait_until(lambda: self.gateway.identify_count >= count, timeout, f"{count} IDENTIFY")

    async def wait_for_resume(self, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until ``count`` successful RESUMEs happened (after drop/reconnect_gateway)."""
        await self.wait_until(lambda: self.gateway.resume_count >= count, timeout, f"{count} RESUME")


def _first(messages: Iterable[Message | None], predicate: Callable[[Message], bool] | None) -> Message | None:
    """The first message that exists and satisfies ``predicate`` (any message, without one)."""
    return next((m for m in messages if m is not None and (predicate is None or predicate(m))), None)
