"""``FakeDiscord``: a fake Discord (REST API v10, gateway, CDN) on 127.0.0.1 for end-to-end tests of
discord.py bots. This module owns the lifecycle and wires the parts together; each concern lives in
its own module (see README.md for the map).

Why a fake server rather than mocks: the real discord.py client then does its own HTTP, JSON,
multipart, rate-limit, websocket and cache work, so tests catch wire-level mistakes (wrong callback
type, missing defer, edit after token expiry, files not attached) that mocks would happily accept.

Typical use::

    async with FakeDiscord() as fd:            # starts on an ephemeral port and installs itself
        bot = make_bot()
        async with fd.running(bot):            # bot.start(fd.token) ... ready ... bot.close()
            inter = await fd.slash_command("style", {"image": ("cat.png", png)})
            msg = await fd.wait_for_original(inter, lambda m: m.attachments)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import yarl
from aiohttp import web

from .core import Changes, Clock, Context, Settings
from .drivers import InteractionDriving, ModalSubmitting, Observing, WorldBuilding
from .events import Events
from .faults import Fault, Faults, Hold
from .gateway import Gateway, GatewaySession
from .http import API_PREFIX, HttpFront
from .messages import MessageBuilder
from .ratelimits import RateLimiter, RateLimitReport
from .recording import RecordedRequest, compile_pattern
from .rest import Cdn, build_routes
from .routing import Router
from .state import Channel, FakeState, Guild, Intent, Interaction, Member, Perm, Role, User

log = logging.getLogger("fakediscord")


class _Setting:
    """``fd.<name>`` reads and writes ``fd.settings.<name>``, which the handlers read live."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.settings, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.settings, self.name, value)


class FakeDiscord(Observing, WorldBuilding, InteractionDriving, ModalSubmitting):
    """The fake Discord server plus the test-driver API (mixed in from ``drivers``).

    Constructor knobs reproduce Discord's timing rules quickly (see ``core.Settings``; each is also
    an attribute, changeable while running). ``strict`` makes ``__aexit__`` fail the test if the
    fake hit an internal error or the bot called an endpoint the fake does not implement (so gaps
    are loud, not silent 404s). ``strict_rate_limits`` turns on Discord's per-route rate limits
    (``fd.rate_limits``, see ``ratelimits``); ``rate_limit_report()`` audits them in either mode.
    """

    token = _Setting()
    interaction_ack_timeout = _Setting()
    token_lifetime = _Setting()
    attachment_size_limit = _Setting()
    heartbeat_interval_ms = _Setting()
    enforce_message_content_intent = _Setting()
    require_synced_commands = _Setting()
    privileged_intents = _Setting()

    def __init__(
        self,
        *,
        token: str = "fake.bot.token",
        bot_name: str = "FakeBot",
        guild_name: str = "Fake Guild",
        host: str = "127.0.0.1",
        port: int = 0,
        interaction_ack_timeout: float = 3.0,
        token_lifetime: float = 15 * 60.0,
        attachment_size_limit: int = 10 * 1024 * 1024,
        heartbeat_interval_ms: int = 41250,
        enforce_message_content_intent: bool = True,
        require_synced_commands: bool = False,
        privileged_intents: int = Intent.PRIVILEGED,
        strict: bool = True,
        strict_rate_limits: bool = False,
        auto_install: bool = True,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fake Discord only listens on loopback")
        self.host = host
        self.strict = strict
        self.auto_install = auto_install
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._installed: dict[str, Any] | None = None

        self.settings = Settings(
            token=token,
            interaction_ack_timeout=interaction_ack_timeout,
            token_lifetime=token_lifetime,
            attachment_size_limit=attachment_size_limit,
            heartbeat_interval_ms=heartbeat_interval_ms,
            enforce_message_content_intent=enforce_message_content_intent,
            require_synced_commands=require_synced_commands,
            privileged_intents=privileged_intents,
        )
        self.state = FakeState(bot_name=bot_name)
        self.clock = Clock()
        self.changes = Changes()
        self.gateway = Gateway(self.settings, self.state, self.changes)
        self.events = Events(self.settings, self.state, self.gateway)
        self.messages = MessageBuilder(self.settings, self.state)
        self.ctx = Context(
            self.settings, self.state, self.clock, self.changes, self.gateway, self.events, self.messages
        )
        router = Router(build_routes(self.ctx))
        self.faults = Faults()
        self.rate_limits = RateLimiter(router.keys(), strict=strict_rate_limits)
        self.http = HttpFront(self.settings, router, Cdn(self.state), self.faults, self.rate_limits, self.changes)
        self._build_world(guild_name, bot_name)

    def _build_world(self, guild_name: str, bot_name: str) -> None:
        """One guild with #general and #gallery, its owner, a moderator, a plain member and the bot."""
        st = self.state
        self.owner: User = st.add_user("owner", global_name="Guild Owner")
        st.application_owner = self.owner
        self.guild: Guild = st.add_guild(guild_name, self.owner)
        self.moderator_role: Role = st.add_role(self.guild, "Moderator", Perm.MODERATOR)
        self.bot_role: Role = st.add_role(self.guild, bot_name, Perm.BOT_DEFAULT, bot_id=st.bot_user.id)
        self.bot_member: Member = st.add_member(self.guild, st.bot_user, [self.bot_role])
        self.channel: Channel = st.add_channel("general", guild=self.guild, topic="general chat")
        self.other_channel: Channel = st.add_channel("gallery", guild=self.guild)
        mod_user = st.add_user("mod", global_name="Moderator Mo")
        self.moderator: Member = st.add_member(self.guild, mod_user, [self.moderator_role])
        self.member: Member = st.add_member(self.guild, st.add_user("alice", global_name="Alice"))

    # ------------------------------------------------------------------ what tests read

    @property
    def bot_user(self) -> User:
        return self.state.bot_user

    @property
    def application_id(self) -> int:
        return self.state.application_id

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received, in arrival order (``.done`` once answered)."""
        return self.http.requests

    @property
    def unhandled(self) -> list[RecordedRequest]:
        """Requests to API paths no route knows (``check()`` fails on them)."""
        return self.http.unhandled

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of the fake's own crashes, HTTP and gateway (``check()`` fails on them)."""
        return self.http.server_errors + self.gateway.server_errors

    @property
    def sessions(self) -> dict[str, GatewaySession]:
        return self.gateway.sessions

    @property
    def gateway_log(self) -> list[tuple[str, dict[str, Any]]]:
        """Every gateway frame as ``("send"|"recv", frame)``."""
        return self.gateway.gateway_log

    @property
    def connection_log(self) -> list[dict[str, Any]]:
        """Each websocket connection's ``path`` and ``query``."""
        return self.gateway.connection_log

    @property
    def identify_count(self) -> int:
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self.gateway.resume_count

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/resume/"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        """Bind to ``host:port`` (port 0 = ephemeral) and, with ``auto_install``, redirect discord.py."""
        self.changes.bind()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/", self._socket_or_http)
        app.router.add_route("GET", "/resume/", self._socket_or_http)
        app.router.add_route("*", "/{tail:.*}", self.http.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self.state.base_url = self.base_url
        self.gateway.url = self.gateway_url
        self.gateway.resume_url = self.resume_gateway_url
        if self.auto_install:
            self.install()
        return self

    async def _socket_or_http(self, request: web.Request) -> web.StreamResponse:
        if web.WebSocketResponse().can_prepare(request).ok:
            return await self.gateway.serve(request)
        return await self.http.handle(request)

    async def stop(self) -> None:
        """Release held requests, close every gateway connection, stop the server, and undo ``install()``."""
        for hold in self.faults.holds:
            hold.release()
        self.gateway.come_up()  # let held connection attempts finish
        await self.gateway.drop(1001, reason=b"fake discord stopping", timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.uninstall()

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.stop()
        if exc_type is None and self.strict:
            self.check()

    def check(self) -> None:
        """Fail loudly if the fake itself broke or the bot used endpoints the fake does not know."""
        problems = []
        if self.server_errors:
            problems.append("fake Discord internal errors:\n" + "\n".join(self.server_errors))
        if self.unhandled:
            problems.append(
                "bot called endpoints the fake does not implement: "
                + ", ".join(f"{r.method} {r.path}" for r in self.unhandled)
            )
        if problems:
            raise AssertionError("\n".join(problems))

    def install(self) -> None:
        """Point discord.py's REST base and default gateway at this server (idempotent; undone by stop)."""
        import discord.gateway
        import discord.http

        if self._installed is None:
            self._installed = {
                "base": discord.http.Route.BASE,
                "gateway": discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
            }
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def uninstall(self) -> None:
        """Restore discord.py's real endpoints."""
        if self._installed is None:
            return
        import discord.gateway
        import discord.http

        discord.http.Route.BASE = self._installed["base"]
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._installed["gateway"]
        self._installed = None

    @contextlib.asynccontextmanager
    async def running(self, client: Any, *, ready_timeout: float = 15.0) -> AsyncIterator[Any]:
        """Run a discord.py ``Client``/``Bot`` against the fake until the block exits.

        Waits for the client's ``on_ready`` (pass ``guild_ready_timeout=0.1`` or so to the client to
        make that fast; discord.py waits 2 s after the last GUILD_CREATE by default). On exit the
        client is closed and its task awaited so nothing leaks into the next test.
        """
        self.changes.check_loop()
        self.install()
        await client.__aenter__()
        task = asyncio.create_task(client.start(self.token), name="fakediscord-client")
        ready = asyncio.create_task(client.wait_until_ready(), name="fakediscord-wait-ready")
        try:
            done, _ = await asyncio.wait({task, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()
                    raise RuntimeError("client stopped before becoming ready")
                raise TimeoutError(f"client not ready within {ready_timeout}s")
            yield client
        finally:
            if not ready.done():
                ready.cancel()
            with contextlib.suppress(BaseException):
                await ready
            if not client.is_closed():
                await client.close()
            try:
                await asyncio.wait_for(task, 10.0)
            except asyncio.CancelledError:
                pass
            except Exception:
                log.debug("client task ended with an error", exc_info=True)

    # ------------------------------------------------------------------ time, faults, gateway control

    def advance_clock(self, seconds: float) -> None:
        """Pretend time passed (for interaction ack and token-lifetime rules) without sleeping."""
        self.clock.advance(seconds)

    def fail_next(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        status: int = 500,
        *,
        times: int = 1,
        json: Any = None,
        retry_after: float = 0.05,
        is_global: bool = False,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        predicate: Callable[[RecordedRequest], bool] | None = None,
    ) -> Fault:
        """Make the next ``times`` matching requests fail with ``status`` (body ``json`` or Discord's
        default error for that status; 429 gets retry_after/global plus the Via header).

        Patterns match the path after ``/api/v10`` (or the raw CDN path, e.g. ``/attachments/.*``).
        """
        return self.faults.add(
            Fault(
                method=method,
                pattern=compile_pattern(path_pattern),
                status=status,
                times=times,
                json=json,
                retry_after=retry_after,
                is_global=is_global,
                headers=dict(headers or {}),
                delay=delay,
                predicate=predicate,
            )
        )

    def drop_next(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        *,
        times: int = 1,
        after: bool = False,
        delay: float = 0.0,
        predicate: Callable[[RecordedRequest], bool] | None = None,
    ) -> Fault:
        """A network error for the next ``times`` matching requests: the connection is closed without
        an answer. With ``after`` the request takes effect first (a message is created, an edit made)
        and only the answer is lost, the case a client can only survive by retrying idempotently."""
        return self.faults.add(
            Fault(
                method=method,
                pattern=compile_pattern(path_pattern),
                status=0,
                times=times,
                delay=delay,
                predicate=predicate,
                disconnect="after" if after else "before",
            )
        )

    def rate_limit_report(self) -> RateLimitReport:
        """Per bucket: requests, 429s sent (bucket full / forced) and dishonoured 429s (requests that
        came before a reset a 429 had announced); ``str()`` of it is a table."""
        return self.rate_limits.report()

    def hold(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        *,
        predicate: Callable[[RecordedRequest], bool] | None = None,
    ) -> Hold:
        """Keep matching requests unanswered until ``hold.release()`` (e.g. attachment downloads,
        ``"/(ephemeral-)?attachments/.*"``); ``hold.waiting``, ``hold.peak`` and ``hold.log`` show
        what was in flight. ``clear_faults()`` and stopping the fake release every hold."""
        return self.faults.hold(Hold(method=method, pattern=compile_pattern(path_pattern), predicate=predicate))

    def clear_faults(self) -> None:
        """Drop all pending injected faults and release every hold."""
        self.faults.clear()

    def expire_token(self, token_or_interaction: str | Interaction) -> None:
        """Make an interaction token invalid now (webhook calls get 401 Invalid Webhook Token 50027)."""
        if isinstance(token_or_interaction, Interaction):
            token_or_interaction.expired = True
            return
        inter = self.state.interactions_by_token.get(token_or_interaction)
        if inter is None:
            raise KeyError("unknown interaction token")
        inter.expired = True

    async def reconnect_gateway(self) -> None:
        """Send op 7 RECONNECT: the client should drop the socket and RESUME on resume_gateway_url."""
        await self.gateway.reconnect()

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close every gateway socket from the server side (4000 = resumable, 4004 = fatal auth)."""
        await self.gateway.drop(code)

    async def restart_gateway(self) -> None:
        """A resumable server-side close (what a Discord gateway restart looks like)."""
        await self.gateway.drop(4000)

    async def gateway_unreachable(self, *, hang: bool = False) -> None:
        """Take the gateway down: every socket is closed and new connections fail (``hang``: are never
        answered, so the client's connect times out) until ``gateway_reachable()``. REST still works;
        combine with ``fail_next``/``drop_next`` for a Discord that is unreachable altogether."""
        await self.gateway.go_down("hang" if hang else "refuse")

    def gateway_reachable(self) -> None:
        """Let gateway connections through again (the client reconnects by its own backoff)."""
        self.gateway.come_up()

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; with ``resumable=False`` the client must IDENTIFY again."""
        await self.gateway.invalidate_session(resumable=resumable)
