"""A fake Discord (REST API v10, gateway, CDN) on 127.0.0.1 for end-to-end tests of discord.py bots.

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
import copy
import json
import logging
import re
import secrets
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yarl
from aiohttp import WSMsgType, web

from . import payloads as P
from .recording import (
    Fault,
    RecordedFile,
    RecordedRequest,
    compile_pattern,
    method_matches,
    parse_body,
)
from .state import (
    AppCommand,
    Attachment,
    Channel,
    ChannelType,
    FakeState,
    Guild,
    Intent,
    Interaction,
    InteractionType,
    Member,
    Message,
    MessageFlag,
    Overwrite,
    Perm,
    Role,
    User,
    iso_now,
    walk_components,
)

log = logging.getLogger("fakediscord")

API_PREFIX = "/api/v10"
_MISSING: Any = object()
_NAME_RE = re.compile(r"^[-_'\w]{1,32}$", re.UNICODE)
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class DiscordError(Exception):
    """Raised inside handlers to answer with Discord's JSON error shape."""

    def __init__(self, status: int, message: str, code: int = 0, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


def _form_error(field_name: str, code: str, message: str) -> DiscordError:
    return DiscordError(
        400, "Invalid Form Body", 50035, {field_name: {"_errors": [{"code": code, "message": message}]}}
    )


@dataclass(eq=False)
class GatewayConnection:
    """One websocket connection from a client."""

    ws: web.WebSocketResponse
    query: dict[str, str]
    path: str
    session: GatewaySession | None = None
    server_closed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, frame: dict[str, Any]) -> bool:
        if self.ws.closed:
            return False
        try:
            async with self.lock:
                await self.ws.send_str(json.dumps(frame))
        except (ConnectionError, RuntimeError):
            return False
        return True


@dataclass(eq=False)
class GatewaySession:
    """A gateway session (survives reconnects; RESUME replays ``buffer`` frames after ``seq``)."""

    id: str
    intents: int
    identify: dict[str, Any]
    shard: tuple[int, int] | None = None
    seq: int = 0
    buffer: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5000))
    conn: GatewayConnection | None = None
    ready: bool = False
    dead: bool = False
    presence: dict[str, Any] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def owns_guild(self, guild_id: int | None) -> bool:
        if self.shard is None:
            return True
        shard_id, count = self.shard
        gid = guild_id or 0
        return (gid >> 22) % count == shard_id


Handler = Callable[..., Any]


class FakeDiscord:
    """The fake Discord server plus test-driver helpers.

    Constructor knobs exist so tests can reproduce Discord's timing rules quickly:
    ``interaction_ack_timeout`` (3 s: callbacks after that get 404 Unknown interaction),
    ``token_lifetime`` (15 min: webhook calls after that get 401 Invalid Webhook Token, code 50027),
    ``attachment_size_limit`` (upload cap, sent to the bot in INTERACTION_CREATE too).
    ``strict`` makes ``__aexit__`` fail the test if the fake hit an internal error or the bot called
    an endpoint the fake does not implement (so gaps are loud, not silent 404s).
    """

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
        strict: bool = True,
        auto_install: bool = True,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fake Discord only listens on loopback")
        self.token = token
        self.host = host
        self._requested_port = port
        self.interaction_ack_timeout = interaction_ack_timeout
        self.token_lifetime = token_lifetime
        self.attachment_size_limit = attachment_size_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.enforce_message_content_intent = enforce_message_content_intent
        self.require_synced_commands = require_synced_commands
        self.strict = strict
        self.auto_install = auto_install

        self.state = FakeState(bot_name=bot_name)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.unhandled: list[RecordedRequest] = []
        self.server_errors: list[str] = []
        self.gateway_log: list[tuple[str, dict[str, Any]]] = []
        self.connection_log: list[dict[str, Any]] = []
        self.sessions: dict[str, GatewaySession] = {}
        self.identify_count = 0
        self.resume_count = 0

        self._conns: set[GatewayConnection] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._changed: asyncio.Event | None = None
        self._clock_offset = 0.0
        self._installed: dict[str, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._routes = self._build_routes()

        st = self.state
        self.owner: User = st.add_user("owner", global_name="Guild Owner")
        self.guild: Guild = st.add_guild(guild_name, self.owner)
        self.moderator_role: Role = st.add_role(self.guild, "Moderator", Perm.MODERATOR)
        self.bot_role: Role = st.add_role(self.guild, bot_name, Perm.BOT_DEFAULT, bot_id=st.bot_user.id)
        self.bot_member: Member = st.add_member(self.guild, st.bot_user, [self.bot_role])
        self.channel: Channel = st.add_channel("general", guild=self.guild, topic="general chat")
        self.other_channel: Channel = st.add_channel("gallery", guild=self.guild)
        mod_user = st.add_user("mod", global_name="Moderator Mo")
        self.moderator: Member = st.add_member(self.guild, mod_user, [self.moderator_role])
        self.member: Member = st.add_member(self.guild, st.add_user("alice", global_name="Alice"))

    # ------------------------------------------------------------------ properties

    @property
    def bot_user(self) -> User:
        return self.state.bot_user

    @property
    def application_id(self) -> int:
        return self.state.application_id

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
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/", self._ws_handler)
        app.router.add_route("GET", "/resume/", self._ws_handler)
        app.router.add_route("*", "/{tail:.*}", self._http_handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        addrs = self._runner.addresses
        self._port = int(addrs[0][1])
        self.state.base_url = self.base_url
        if self.auto_install:
            self.install()
        return self

    async def stop(self) -> None:
        """Close every gateway connection, stop the server, and undo ``install()``."""
        for conn in list(self._conns):
            conn.server_closed = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"fake discord stopping"), 2.0)
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
        self._check_loop()
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

    # ------------------------------------------------------------------ clock / waiting

    def _check_loop(self) -> None:
        """A fake started in another event loop (e.g. a session-scoped fixture loop) cannot serve
        this one; say so instead of letting the client time out."""
        if self._loop is None:
            raise RuntimeError("FakeDiscord is not started (use `async with FakeDiscord() as fd`)")
        if self._loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "FakeDiscord was started in a different event loop than the one running now; "
                "give its fixture the same loop_scope as the test (see fakediscord.fixtures)"
            )

    def _now(self) -> float:
        return time.monotonic() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Pretend time passed (for interaction ack and token-lifetime rules) without sleeping."""
        self._clock_offset += seconds

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def _wait_until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        self._check_loop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None and result is not False:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.25))

    # ------------------------------------------------------------------ recording helpers

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

        return await self._wait_until(check, timeout, f"{method} {pattern}")

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

        def check() -> Message | None:
            for m in sorted(self.state.channel_messages(cid), key=lambda m: m.id):
                if predicate is None or predicate(m):
                    return m
            return None

        return await self._wait_until(check, timeout, f"message in channel {cid}")

    async def wait_for_response(self, interaction: Interaction, *, timeout: float = 5.0) -> Interaction:
        """Wait until the bot acknowledged ``interaction`` (any callback type)."""
        return await self._wait_until(
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

        def check() -> Message | None:
            msg = self.original_message(interaction)
            if msg is not None and (predicate is None or predicate(msg)):
                return msg
            return None

        return await self._wait_until(check, timeout, f"original response of {interaction.id}")

    async def wait_for_followup(
        self,
        interaction: Interaction,
        predicate: Callable[[Message], bool] | None = None,
        *,
        timeout: float = 5.0,
    ) -> Message:
        """Wait for a follow-up message (not the original) of ``interaction``."""

        def check() -> Message | None:
            for m in self.followups(interaction):
                if predicate is None or predicate(m):
                    return m
            return None

        return await self._wait_until(check, timeout, f"followup of {interaction.id}")

    async def wait_for_modal(self, interaction: Interaction, *, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the bot answered ``interaction`` with a modal; returns the modal payload."""
        return await self._wait_until(lambda: interaction.modal, timeout, f"modal for {interaction.id}")

    async def wait_until_connected(self, *, timeout: float = 10.0) -> GatewaySession:
        """Wait for a session that got READY and its GUILD_CREATEs (the client's on_ready comes later)."""

        def check() -> GatewaySession | None:
            for s in self.sessions.values():
                if s.ready and not s.dead and s.conn is not None:
                    return s
            return None

        return await self._wait_until(check, timeout, "a gateway session")

    async def wait_for_identify(self, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until ``count`` IDENTIFYs happened (e.g. a fresh login after INVALID_SESSION)."""
        await self._wait_until(lambda: self.identify_count >= count, timeout, f"{count} IDENTIFY")

    async def wait_for_resume(self, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until ``count`` successful RESUMEs happened (after drop/reconnect_gateway)."""
        await self._wait_until(lambda: self.resume_count >= count, timeout, f"{count} RESUME")

    def original_message(self, interaction: Interaction) -> Message | None:
        """The message @original currently refers to (None before a message response or if deleted)."""
        mid = interaction.original_message_id
        if mid is None:
            return None
        msg = self.state.messages.get(mid)
        return None if msg is None or msg.deleted else msg

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

    # ------------------------------------------------------------------ fault injection

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
        fault = Fault(
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
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Drop all pending injected faults."""
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

    def _token_expired(self, inter: Interaction) -> bool:
        return inter.expired or (self._now() - inter.created_at) > self.token_lifetime

    # ------------------------------------------------------------------ HTTP plumbing

    def _json(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
        # discord.py only decodes bodies whose Content-Type is exactly "application/json".
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        return web.Response(body=json.dumps(data).encode(), status=status, headers=hdrs)

    def _no_content(self) -> web.Response:
        return web.Response(status=204)

    async def _http_handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        api = path.startswith(API_PREFIX + "/") or path == API_PREFIX
        rel = path[len(API_PREFIX) :] if api else path
        body = await request.read()
        parsed, files, form = parse_body(request.headers.get("Content-Type", ""), body)
        rec = RecordedRequest(
            method=request.method,
            path=rel,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            api=api,
            json=parsed,
            files=files,
            form=form,
        )
        self.requests.append(rec)
        try:
            fault = next((f for f in self.faults if f.matches(rec)), None)
            if fault is not None:
                fault.times -= 1
                fault.hits += 1
                rec.fault = True
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                resp: web.StreamResponse = self._json(fault.body(), fault.status, fault.response_headers())
                rec.response = fault.body()
            elif api:
                resp = await self._dispatch_api(request, rec)
            else:
                resp = await self._serve_cdn(request, rec)
        except DiscordError as err:
            rec.response = err.body()
            resp = self._json(err.body(), err.status)
        except Exception:
            tb = traceback.format_exc()
            self.server_errors.append(f"{rec.method} {rec.path}:\n{tb}")
            log.error("fake discord handler crashed on %s %s\n%s", rec.method, rec.path, tb)
            rec.response = {"message": "500: Internal Server Error (fake)", "code": 0}
            resp = self._json(rec.response, 500)
        rec.status = resp.status
        self._notify()
        return resp

    async def _dispatch_api(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        path_known = False
        for method, rx, handler, needs_auth in self._routes:
            m = rx.fullmatch(rec.path)
            if m is None:
                continue
            path_known = True
            if method != rec.method:
                continue
            if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise DiscordError(401, "401: Unauthorized", 0)
            result = await handler(rec, **m.groupdict())
            if isinstance(result, web.StreamResponse):
                return result
            rec.response = result
            return self._json(result)
        if path_known:
            raise DiscordError(405, "405: Method Not Allowed", 0)
        self.unhandled.append(rec)
        raise DiscordError(404, "404: Not Found", 0)

    async def _serve_cdn(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        m = re.fullmatch(r"(?:/media-proxy)?/(?:ephemeral-)?attachments/\d+/(\d+)/([^/]+)", rec.path)
        if m is None or request.method not in ("GET", "HEAD"):
            return web.Response(status=404, text="404: Not Found")
        att = self.state.attachments.get(int(m.group(1)))
        if att is None or att.deleted or att.filename != m.group(2):
            return web.Response(status=404, text="This content is no longer available.")
        body = b"" if request.method == "HEAD" else att.data
        return web.Response(
            body=body,
            headers={
                "Content-Type": att.content_type or "application/octet-stream",
                "Content-Length": str(att.size),
                "Cache-Control": "public, max-age=31536000",
            },
        )

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler, bool]]:
        app = r"(?P<app_id>\d+)"
        g = r"(?P<guild_id>\d+)"
        c = r"(?P<channel_id>\d+)"
        msg = r"(?P<message_id>\d+)"
        tok = r"(?P<token>[^/]+)"
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/gateway", self._h_gateway, False),
            ("GET", "/gateway/bot", self._h_gateway_bot, True),
            ("GET", "/users/@me", self._h_me, True),
            ("GET", r"/users/(?P<user_id>\d+)", self._h_get_user, True),
            ("POST", "/users/@me/channels", self._h_create_dm, True),
            ("GET", "/oauth2/applications/@me", self._h_application, True),
            ("GET", "/applications/@me", self._h_application, True),
            ("GET", f"/applications/{app}/commands", self._h_list_commands, True),
            ("PUT", f"/applications/{app}/commands", self._h_bulk_commands, True),
            ("POST", f"/applications/{app}/commands", self._h_upsert_command, True),
            ("GET", rf"/applications/{app}/commands/(?P<command_id>\d+)", self._h_get_command, True),
            ("PATCH", rf"/applications/{app}/commands/(?P<command_id>\d+)", self._h_edit_command, True),
            ("DELETE", rf"/applications/{app}/commands/(?P<command_id>\d+)", self._h_delete_command, True),
            ("GET", f"/applications/{app}/guilds/{g}/commands", self._h_list_commands, True),
            ("PUT", f"/applications/{app}/guilds/{g}/commands", self._h_bulk_commands, True),
            ("POST", f"/applications/{app}/guilds/{g}/commands", self._h_upsert_command, True),
            (
                "GET",
                rf"/applications/{app}/guilds/{g}/commands/(?P<command_id>\d+)",
                self._h_get_command,
                True,
            ),
            (
                "PATCH",
                rf"/applications/{app}/guilds/{g}/commands/(?P<command_id>\d+)",
                self._h_edit_command,
                True,
            ),
            (
                "DELETE",
                rf"/applications/{app}/guilds/{g}/commands/(?P<command_id>\d+)",
                self._h_delete_command,
                True,
            ),
            ("POST", rf"/interactions/(?P<interaction_id>\d+)/{tok}/callback", self._h_callback, False),
            ("POST", f"/webhooks/{app}/{tok}", self._h_followup, False),
            ("GET", rf"/webhooks/{app}/{tok}/messages/(?P<message_id>@original|\d+)", self._h_wh_get, False),
            (
                "PATCH",
                rf"/webhooks/{app}/{tok}/messages/(?P<message_id>@original|\d+)",
                self._h_wh_edit,
                False,
            ),
            (
                "DELETE",
                rf"/webhooks/{app}/{tok}/messages/(?P<message_id>@original|\d+)",
                self._h_wh_delete,
                False,
            ),
            ("GET", f"/channels/{c}", self._h_get_channel, True),
            ("GET", f"/channels/{c}/messages", self._h_history, True),
            ("POST", f"/channels/{c}/messages", self._h_create_message, True),
            ("GET", f"/channels/{c}/messages/{msg}", self._h_get_message, True),
            ("PATCH", f"/channels/{c}/messages/{msg}", self._h_edit_message, True),
            ("DELETE", f"/channels/{c}/messages/{msg}", self._h_delete_message, True),
            ("POST", f"/channels/{c}/typing", self._h_typing, True),
            ("PUT", rf"/channels/{c}/messages/{msg}/reactions/(?P<emoji>[^/]+)/@me", self._h_react, True),
            (
                "DELETE",
                rf"/channels/{c}/messages/{msg}/reactions/(?P<emoji>[^/]+)/@me",
                self._h_unreact,
                True,
            ),
            (
                "DELETE",
                rf"/channels/{c}/messages/{msg}/reactions/(?P<emoji>[^/]+)/(?P<user_id>\d+)",
                self._h_unreact,
                True,
            ),
            ("DELETE", rf"/channels/{c}/messages/{msg}/reactions", self._h_clear_reactions, True),
            ("GET", f"/guilds/{g}", self._h_get_guild, True),
            ("GET", f"/guilds/{g}/channels", self._h_guild_channels, True),
            ("GET", f"/guilds/{g}/roles", self._h_guild_roles, True),
            ("GET", rf"/guilds/{g}/members/(?P<user_id>\d+)", self._h_guild_member, True),
            ("GET", f"/guilds/{g}/members", self._h_guild_members, True),
        ]
        return [(m, re.compile(p), h, a) for m, p, h, a in table]

    # ------------------------------------------------------------------ REST: misc

    async def _h_gateway(self, rec: RecordedRequest) -> Any:
        return {"url": self.gateway_url.rstrip("/")}

    async def _h_gateway_bot(self, rec: RecordedRequest) -> Any:
        return {
            "url": self.gateway_url.rstrip("/"),
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14400000,
                "max_concurrency": 1,
            },
        }

    async def _h_me(self, rec: RecordedRequest) -> Any:
        return P.current_user(self.bot_user)

    async def _h_get_user(self, rec: RecordedRequest, user_id: str) -> Any:
        u = self.state.users.get(int(user_id))
        if u is None:
            raise DiscordError(404, "Unknown User", 10013)
        return P.user(u)

    async def _h_create_dm(self, rec: RecordedRequest) -> Any:
        rid = int((rec.json or {}).get("recipient_id", 0))
        u = self.state.users.get(rid)
        if u is None:
            raise DiscordError(400, "Invalid Recipient(s)", 50033)
        if u.bot:
            raise DiscordError(403, "Cannot send messages to this user", 50007)
        return P.channel(self.state.dm_channel(u))

    async def _h_application(self, rec: RecordedRequest) -> Any:
        return P.application(self.state, self.owner)

    async def _h_get_guild(self, rec: RecordedRequest, guild_id: str) -> Any:
        return P.partial_guild(self._guild(guild_id))

    async def _h_guild_channels(self, rec: RecordedRequest, guild_id: str) -> Any:
        return [P.channel(c) for c in self._guild(guild_id).channels.values()]

    async def _h_guild_roles(self, rec: RecordedRequest, guild_id: str) -> Any:
        return [P.role(r) for r in self._guild(guild_id).roles.values()]

    async def _h_guild_member(self, rec: RecordedRequest, guild_id: str, user_id: str) -> Any:
        member = self._guild(guild_id).members.get(int(user_id))
        if member is None:
            raise DiscordError(404, "Unknown Member", 10007)
        return P.member(member)

    async def _h_guild_members(self, rec: RecordedRequest, guild_id: str) -> Any:
        limit = int(rec.query.get("limit", 1))
        after = int(rec.query.get("after", 0))
        members = sorted(self._guild(guild_id).members.values(), key=lambda m: m.id)
        return [P.member(m) for m in members if m.id > after][:limit]

    def _guild(self, guild_id: str | int) -> Guild:
        guild = self.state.guilds.get(int(guild_id))
        if guild is None:
            raise DiscordError(404, "Unknown Guild", 10004)
        return guild

    def _channel(self, channel_id: str | int) -> Channel:
        ch = self.state.channels.get(int(channel_id))
        if ch is None:
            raise DiscordError(404, "Unknown Channel", 10003)
        return ch

    def _require(self, channel: Channel, needed: int) -> None:
        perms = self.state.bot_permissions(channel)
        if not perms & Perm.VIEW_CHANNEL:
            raise DiscordError(403, "Missing Access", 50001)
        if perms & needed != needed:
            raise DiscordError(403, "Missing Permissions", 50013)

    # ------------------------------------------------------------------ REST: application commands

    def _command_store(self, app_id: str, guild_id: str | None) -> dict[int, AppCommand]:
        if int(app_id) != self.application_id:
            raise DiscordError(403, "Missing Access", 50001)
        if guild_id is None:
            return self.state.global_commands
        self._guild(guild_id)
        return self.state.guild_commands.setdefault(int(guild_id), {})

    def _validate_command(self, body: Any, index: str = "0") -> None:
        if not isinstance(body, dict):
            raise _form_error(index, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        ctype = body.get("type", 1)
        name = body.get("name")
        if not isinstance(name, str) or not (1 <= len(name) <= 32):
            raise _form_error(f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if ctype == 1:
            if not _NAME_RE.match(name) or name != name.lower():
                raise _form_error(f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            desc = body.get("description") or ""
            if not (1 <= len(desc) <= 100):
                raise _form_error(
                    f"{index}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
        self._validate_options(body.get("options") or [], f"{index}.options")

    def _validate_options(self, options: list[dict[str, Any]], where: str) -> None:
        if len(options) > 25:
            raise _form_error(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        seen_optional = False
        names = set()
        for i, opt in enumerate(options):
            name = opt.get("name", "")
            if not _NAME_RE.match(name) or name != name.lower():
                raise _form_error(f"{where}.{i}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            if name in names:
                raise _form_error(
                    f"{where}.{i}.name",
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            names.add(name)
            if not (1 <= len(opt.get("description") or "") <= 100):
                raise _form_error(
                    f"{where}.{i}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            if opt.get("type") in (1, 2):
                self._validate_options(opt.get("options") or [], f"{where}.{i}.options")
                continue
            if opt.get("required"):
                if seen_optional:
                    raise _form_error(
                        f"{where}.{i}",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                seen_optional = True
            if len(opt.get("choices") or []) > 25:
                raise _form_error(f"{where}.{i}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")

    def _store_command(self, store: dict[int, AppCommand], body: dict[str, Any], guild_id: str | None) -> AppCommand:
        ctype = body.get("type", 1)
        existing = next((c for c in store.values() if c.name == body["name"] and c.type == ctype), None)
        cmd = AppCommand(
            id=existing.id if existing else self.state.new_id(),
            application_id=self.application_id,
            name=body["name"],
            type=ctype,
            data=copy.deepcopy(body),
            guild_id=int(guild_id) if guild_id else None,
            version=self.state.new_id(),
        )
        store[cmd.id] = cmd
        return cmd

    async def _h_list_commands(self, rec: RecordedRequest, app_id: str, guild_id: str | None = None) -> Any:
        return [P.app_command(c) for c in self._command_store(app_id, guild_id).values()]

    async def _h_bulk_commands(self, rec: RecordedRequest, app_id: str, guild_id: str | None = None) -> Any:
        store = self._command_store(app_id, guild_id)
        body = rec.json
        if not isinstance(body, list):
            raise _form_error("_", "BASE_TYPE_ARRAY", "Must be an array")
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(body):
            self._validate_command(cmd, str(i))
            key = (cmd["name"], cmd.get("type", 1))
            if key in seen:
                raise _form_error(str(i), "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Duplicate command name {key[0]!r}")
            seen.add(key)
        old = list(store.values())
        store.clear()
        result = []
        for cmd_body in body:
            prev = next((c for c in old if c.name == cmd_body["name"] and c.type == cmd_body.get("type", 1)), None)
            if prev is not None:
                store[prev.id] = prev
            result.append(P.app_command(self._store_command(store, cmd_body, guild_id)))
        return result

    async def _h_upsert_command(self, rec: RecordedRequest, app_id: str, guild_id: str | None = None) -> Any:
        store = self._command_store(app_id, guild_id)
        self._validate_command(rec.json)
        return P.app_command(self._store_command(store, rec.json, guild_id))

    def _command(self, app_id: str, guild_id: str | None, command_id: str) -> tuple[dict[int, AppCommand], AppCommand]:
        store = self._command_store(app_id, guild_id)
        cmd = store.get(int(command_id))
        if cmd is None:
            raise DiscordError(404, "Unknown application command", 10063)
        return store, cmd

    async def _h_get_command(
        self, rec: RecordedRequest, app_id: str, command_id: str, guild_id: str | None = None
    ) -> Any:
        return P.app_command(self._command(app_id, guild_id, command_id)[1])

    async def _h_edit_command(
        self, rec: RecordedRequest, app_id: str, command_id: str, guild_id: str | None = None
    ) -> Any:
        _, cmd = self._command(app_id, guild_id, command_id)
        merged = {**cmd.data, **(rec.json or {})}
        self._validate_command(merged)
        cmd.data = merged
        cmd.name = merged["name"]
        cmd.version = self.state.new_id()
        return P.app_command(cmd)

    async def _h_delete_command(
        self, rec: RecordedRequest, app_id: str, command_id: str, guild_id: str | None = None
    ) -> Any:
        store, cmd = self._command(app_id, guild_id, command_id)
        del store[cmd.id]
        return self._no_content()

    # ------------------------------------------------------------------ messages: build / edit

    def _assign_component_ids(self, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        components = copy.deepcopy(components or [])
        for comp in walk_components(components):
            if "id" not in comp:
                comp["id"] = self.state.next_component_id()
        return components

    def _validate_components(self, components: list[dict[str, Any]], flags: int) -> None:
        if not flags & MessageFlag.IS_COMPONENTS_V2 and len(components) > 5:
            raise _form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        seen: set[str] = set()
        for comp in walk_components(components):
            cid = comp.get("custom_id")
            if comp.get("type") == 2 and comp.get("style") not in (5, 6) and not cid:
                raise _form_error("components", "COMPONENT_CUSTOM_ID_REQUIRED", "A custom id is required")
            if cid is not None:
                if len(cid) > 100:
                    raise _form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
                if cid in seen:
                    raise _form_error(
                        "components",
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                seen.add(cid)

    def _validate_body(self, body: dict[str, Any], files: list[RecordedFile]) -> None:
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = body.get("embeds")
        if embeds is not None:
            if len(embeds) > 10:
                raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
            for i, e in enumerate(embeds):
                if len(e.get("title") or "") > 256:
                    raise _form_error(f"embeds.{i}.title", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
                if len(e.get("description") or "") > 4096:
                    raise _form_error(
                        f"embeds.{i}.description", "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length."
                    )
        if body.get("components") is not None:
            self._validate_components(body["components"], int(body.get("flags") or 0))
        if len(files) > 10:
            raise _form_error("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        for f in files:
            if f.size > self.attachment_size_limit:
                raise DiscordError(413, "Request entity too large", 40005)

    def _new_attachments(
        self, body: dict[str, Any], files: list[RecordedFile], channel_id: int, *, ephemeral: bool
    ) -> list[Attachment]:
        meta_by_index: dict[int, dict[str, Any]] = {}
        for entry in body.get("attachments") or []:
            with contextlib.suppress(TypeError, ValueError):
                idx = int(entry.get("id"))
                if idx < len(files):
                    meta_by_index[idx] = entry
        out = []
        for i, f in enumerate(files):
            meta = meta_by_index.get(i, {})
            filename = meta.get("filename") or f.filename or f"file{i}"
            ctype = f.content_type
            if not ctype or ctype == "application/octet-stream":
                ctype = None
            att = self.state.add_attachment(
                f.data,
                filename,
                content_type=ctype,
                channel_id=channel_id,
                description=meta.get("description"),
            )
            att.ephemeral = ephemeral
            if meta.get("title"):
                att.title = meta["title"]
            out.append(att)
        return out

    def _mentions(self, msg: Message) -> None:
        users = []
        for uid in _USER_MENTION.findall(msg.content or ""):
            u = self.state.users.get(int(uid))
            if u is not None and u not in users:
                users.append(u)
        msg.mentions = users
        guild = self.state.guilds.get(msg.guild_id) if msg.guild_id else None
        msg.mention_roles = [
            int(r) for r in _ROLE_MENTION.findall(msg.content or "") if guild and int(r) in guild.roles
        ]
        msg.mention_everyone = "@everyone" in (msg.content or "") or "@here" in (msg.content or "")

    def _create_message(
        self,
        channel: Channel,
        author: User,
        body: dict[str, Any],
        files: list[RecordedFile],
        *,
        interaction: Interaction | None = None,
        type: int = 0,
        extra_flags: int = 0,
        allow_empty: bool = False,
    ) -> Message:
        self._validate_body(body, files)
        flags = (int(body.get("flags") or 0) & ~MessageFlag.LOADING) | extra_flags
        ephemeral = bool(flags & MessageFlag.EPHEMERAL)
        attachments = self._new_attachments(body, files, channel.id, ephemeral=ephemeral)
        content = body.get("content") or ""
        embeds = list(body.get("embeds") or ([] if body.get("embed") is None else [body["embed"]]))
        components = self._assign_component_ids(body.get("components") or [])
        if not allow_empty and not (
            content or embeds or attachments or components or body.get("sticker_ids") or body.get("poll")
        ):
            raise DiscordError(400, "Cannot send an empty message", 50006)
        msg = Message(
            id=self.state.new_id(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            content=str(content),
            type=type,
            attachments=attachments,
            embeds=embeds,
            components=components,
            flags=flags,
            tts=bool(body.get("tts")),
            nonce=body.get("nonce"),
            poll=body.get("poll"),
        )
        if interaction is not None:
            msg.webhook_id = self.application_id
            msg.application_id = self.application_id
            msg.interaction_id = interaction.id
        ref = body.get("message_reference")
        if ref and ref.get("message_id"):
            target = self.state.messages.get(int(ref["message_id"]))
            if target is None or target.deleted or target.ephemeral:
                if ref.get("fail_if_not_exists", True):
                    raise _form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            else:
                ref_type = int(ref.get("type", 0))
                msg.reference = {
                    "type": ref_type,
                    "message_id": str(target.id),
                    "channel_id": str(target.channel_id),
                    "guild_id": str(target.guild_id) if target.guild_id else None,
                }
                if ref_type == 0:
                    msg.type = 19
        self._mentions(msg)
        if msg.reference and msg.type == 19:
            allowed = body.get("allowed_mentions") or {}
            if allowed.get("replied_user", True):
                target = self.state.messages[int(msg.reference["message_id"])]
                if target.author not in msg.mentions:
                    msg.mentions.append(target.author)
        self.state.messages[msg.id] = msg
        if not ephemeral:
            channel.last_message_id = msg.id
        return msg

    def _edit_message(self, msg: Message, body: dict[str, Any], files: list[RecordedFile]) -> Message:
        self._validate_body(body, files)
        msg.revisions.append(P.message(self.state, msg, include_referenced=False))
        if "content" in body:
            msg.content = str(body["content"] or "")
        if "embeds" in body:
            msg.embeds = list(body["embeds"] or [])
        elif "embed" in body:
            msg.embeds = [] if body["embed"] is None else [body["embed"]]
        if "components" in body:
            msg.components = self._assign_component_ids(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            keep = msg.flags & (MessageFlag.EPHEMERAL | MessageFlag.IS_COMPONENTS_V2)
            msg.flags = (int(body["flags"]) & ~(MessageFlag.LOADING | MessageFlag.EPHEMERAL)) | keep
        new = self._new_attachments(body, files, msg.channel_id, ephemeral=msg.ephemeral)
        if "attachments" in body:
            keep_ids = {str(a.get("id")) for a in body["attachments"] or []}
            kept = [a for a in msg.attachments if str(a.id) in keep_ids]
            msg.attachments = kept + new
        else:
            msg.attachments = msg.attachments + new
        if msg.flags & MessageFlag.LOADING:
            msg.flags &= ~MessageFlag.LOADING
        if "poll" in body:
            msg.poll = body["poll"]
        self._mentions(msg)
        msg.edited_timestamp = iso_now()
        return msg

    # ------------------------------------------------------------------ REST: channels

    async def _h_get_channel(self, rec: RecordedRequest, channel_id: str) -> Any:
        ch = self._channel(channel_id)
        if ch.guild_id is not None:
            self._require(ch, Perm.VIEW_CHANNEL)
        return P.channel(ch)

    async def _h_history(self, rec: RecordedRequest, channel_id: str) -> Any:
        ch = self._channel(channel_id)
        self._require(ch, Perm.VIEW_CHANNEL)
        if not self.state.bot_permissions(ch) & Perm.READ_MESSAGE_HISTORY:
            return []
        limit = max(1, min(100, int(rec.query.get("limit", 50))))
        msgs = [m for m in self.state.channel_messages(ch.id) if not m.ephemeral]
        msgs.sort(key=lambda m: m.id, reverse=True)
        if "before" in rec.query:
            msgs = [m for m in msgs if m.id < int(rec.query["before"])]
        if "after" in rec.query:
            msgs = [m for m in msgs if m.id > int(rec.query["after"])]
            msgs.sort(key=lambda m: m.id)
            msgs = msgs[:limit]
            msgs.sort(key=lambda m: m.id, reverse=True)
        if "around" in rec.query:
            around = int(rec.query["around"])
            msgs.sort(key=lambda m: abs(m.id - around))
            msgs = sorted(msgs[:limit], key=lambda m: m.id, reverse=True)
        return [P.message(self.state, m) for m in msgs[:limit]]

    def _channel_message(self, channel_id: str, message_id: str) -> tuple[Channel, Message]:
        ch = self._channel(channel_id)
        msg = self.state.messages.get(int(message_id))
        if msg is None or msg.deleted or msg.channel_id != ch.id or msg.ephemeral:
            raise DiscordError(404, "Unknown Message", 10008)
        return ch, msg

    async def _h_create_message(self, rec: RecordedRequest, channel_id: str) -> Any:
        ch = self._channel(channel_id)
        body = rec.json if isinstance(rec.json, dict) else {}
        needed = Perm.SEND_MESSAGES
        if rec.files:
            needed |= Perm.ATTACH_FILES
        if body.get("message_reference"):
            needed |= Perm.READ_MESSAGE_HISTORY
        self._require(ch, needed)
        if int(body.get("flags") or 0) & MessageFlag.EPHEMERAL:
            raise _form_error("flags", "MESSAGE_FLAGS_INVALID", "Ephemeral messages need an interaction")
        msg = self._create_message(ch, self.bot_user, body, rec.files)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return P.message(self.state, msg)

    async def _h_get_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._channel_message(channel_id, message_id)
        self._require(ch, Perm.READ_MESSAGE_HISTORY)
        return P.message(self.state, msg)

    async def _h_edit_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._channel_message(channel_id, message_id)
        self._require(ch, Perm.VIEW_CHANNEL)
        body = rec.json if isinstance(rec.json, dict) else {}
        if msg.author.id != self.bot_user.id:
            if set(body) - {"flags"}:
                raise DiscordError(403, "Cannot edit a message authored by another user", 50005)
            self._require(ch, Perm.MANAGE_MESSAGES)
        self._edit_message(msg, body, rec.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return P.message(self.state, msg)

    async def _h_delete_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._channel_message(channel_id, message_id)
        if msg.author.id != self.bot_user.id:
            self._require(ch, Perm.MANAGE_MESSAGES)
        await self._delete(msg)
        return self._no_content()

    async def _h_typing(self, rec: RecordedRequest, channel_id: str) -> Any:
        ch = self._channel(channel_id)
        self._require(ch, Perm.SEND_MESSAGES)
        return self._no_content()

    async def _h_react(self, rec: RecordedRequest, channel_id: str, message_id: str, emoji: str) -> Any:
        ch, msg = self._channel_message(channel_id, message_id)
        self._require(ch, Perm.READ_MESSAGE_HISTORY)
        if emoji not in msg.reactions:
            self._require(ch, Perm.ADD_REACTIONS)
        await self._add_reaction(msg, self.bot_user, emoji)
        return self._no_content()

    async def _h_unreact(
        self, rec: RecordedRequest, channel_id: str, message_id: str, emoji: str, user_id: str | None = None
    ) -> Any:
        ch, msg = self._channel_message(channel_id, message_id)
        uid = int(user_id) if user_id else self.bot_user.id
        if uid != self.bot_user.id:
            self._require(ch, Perm.MANAGE_MESSAGES)
        users = msg.reactions.get(emoji, set())
        if uid in users:
            users.discard(uid)
            await self._dispatch(
                "MESSAGE_REACTION_REMOVE",
                {
                    "user_id": str(uid),
                    "channel_id": str(msg.channel_id),
                    "message_id": str(msg.id),
                    "guild_id": P.s(msg.guild_id),
                    "emoji": P.emoji_from_key(emoji),
                    "burst": False,
                    "type": 0,
                },
                intent=Intent.GUILD_MESSAGE_REACTIONS,
                guild_id=msg.guild_id,
            )
        return self._no_content()

    async def _h_clear_reactions(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._channel_message(channel_id, message_id)
        self._require(ch, Perm.MANAGE_MESSAGES)
        msg.reactions.clear()
        return self._no_content()

    # ------------------------------------------------------------------ REST: interactions & webhooks

    def _callback_response(self, inter: Interaction, cb_type: int, msg: Message | None) -> dict[str, Any]:
        info: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        if msg is not None:
            info["response_message_id"] = str(msg.id)
            info["response_message_loading"] = msg.loading
            info["response_message_ephemeral"] = msg.ephemeral
        resource: dict[str, Any] = {"type": cb_type}
        if msg is not None and cb_type in (4, 7):
            resource["message"] = P.message(self.state, msg)
        return {"interaction": info, "resource": resource}

    async def _h_callback(self, rec: RecordedRequest, interaction_id: str, token: str) -> Any:
        inter = self.state.interactions.get(int(interaction_id))
        if inter is None or inter.token != token or self._token_expired(inter):
            raise DiscordError(404, "Unknown interaction", 10062)
        body = rec.json if isinstance(rec.json, dict) else {}
        inter.callbacks.append(body)
        if inter.responded:
            raise DiscordError(400, "Interaction has already been acknowledged.", 40060)
        if self._now() - inter.created_at > self.interaction_ack_timeout:
            raise DiscordError(404, "Unknown interaction", 10062)
        cb_type = body.get("type")
        data = body.get("data") or {}
        channel = self.state.channels.get(inter.channel_id or 0)
        msg: Message | None = None
        if cb_type == 4:
            if inter.type == InteractionType.AUTOCOMPLETE:
                raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid response type")
            assert channel is not None
            msg = self._create_message(
                channel,
                self.bot_user,
                data,
                rec.files,
                interaction=inter,
                type=self._response_message_type(inter),
            )
            inter.original_message_id = msg.id
        elif cb_type == 5:
            if inter.type == InteractionType.AUTOCOMPLETE:
                raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid response type")
            assert channel is not None
            flags = int(data.get("flags") or 0) & MessageFlag.EPHEMERAL
            msg = self._create_message(
                channel,
                self.bot_user,
                {"flags": flags},
                [],
                interaction=inter,
                type=self._response_message_type(inter),
                extra_flags=MessageFlag.LOADING,
                allow_empty=True,
            )
            inter.original_message_id = msg.id
        elif cb_type in (6, 7):
            if inter.message_id is None:
                raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction has no message to update")
            msg = self.state.messages.get(inter.message_id)
            if msg is None or msg.deleted:
                raise DiscordError(404, "Unknown Message", 10008)
            inter.original_message_id = msg.id
            if cb_type == 7:
                self._edit_message(msg, data, rec.files)
        elif cb_type == 8:
            if inter.type != InteractionType.AUTOCOMPLETE:
                raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid response type")
            inter.autocomplete_choices = list(data.get("choices") or [])
        elif cb_type == 9:
            if inter.type in (InteractionType.MODAL_SUBMIT, InteractionType.AUTOCOMPLETE):
                raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Cannot respond with a modal")
            self._validate_modal(data)
            modal = copy.deepcopy(data)
            modal["components"] = self._assign_component_ids(modal.get("components") or [])
            inter.modal = modal
        else:
            raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid response type {cb_type!r}")
        inter.response_type = cb_type
        inter.responded_at = self._now()
        inter.ephemeral = bool(msg and msg.ephemeral)
        if msg is not None and cb_type in (4, 5):
            await self._dispatch_message("MESSAGE_CREATE", msg)
        elif msg is not None and cb_type == 7:
            await self._dispatch_message("MESSAGE_UPDATE", msg)
        if rec.query.get("with_response") in ("1", "true", "True"):
            return self._callback_response(inter, cb_type, msg)
        return self._no_content()

    def _validate_modal(self, data: dict[str, Any]) -> None:
        if not data.get("custom_id"):
            raise _form_error("data.custom_id", "BASE_TYPE_REQUIRED", "This field is required")
        if not (1 <= len(data.get("title") or "") <= 45):
            raise _form_error("data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
        comps = data.get("components") or []
        if not (1 <= len(comps) <= 5):
            raise _form_error("data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
        for comp in walk_components(comps):
            if comp.get("type") == 18 and not (1 <= len(comp.get("label") or "") <= 45):
                raise _form_error("data.components", "BASE_TYPE_BAD_LENGTH", "Label must be 1-45 characters.")

    def _response_message_type(self, inter: Interaction) -> int:
        if inter.type == InteractionType.APPLICATION_COMMAND:
            return 20 if inter.data.get("type", 1) == 1 else 23
        return 0

    def _webhook_interaction(self, app_id: str, token: str) -> Interaction:
        inter = self.state.interactions_by_token.get(token)
        if inter is None or int(app_id) != inter.application_id:
            raise DiscordError(404, "Unknown Webhook", 10015)
        if self._token_expired(inter):
            raise DiscordError(401, "Invalid Webhook Token", 50027)
        return inter

    def _webhook_message(self, inter: Interaction, message_id: str) -> Message:
        if message_id == "@original":
            mid = inter.original_message_id
        else:
            mid = int(message_id)
            if mid != inter.original_message_id and mid not in inter.followup_ids:
                mid = None
        msg = self.state.messages.get(mid) if mid is not None else None
        if msg is None or msg.deleted:
            raise DiscordError(404, "Unknown Message", 10008)
        return msg

    async def _h_followup(self, rec: RecordedRequest, app_id: str, token: str) -> Any:
        inter = self._webhook_interaction(app_id, token)
        if not inter.responded or inter.response_type in (8, 9):
            raise DiscordError(404, "Unknown Webhook", 10015)
        body = rec.json if isinstance(rec.json, dict) else {}
        original = self.original_message(inter)
        if inter.response_type == 5 and original is not None and original.loading:
            # Discord turns the first follow-up after a "thinking" defer into the original response.
            self._edit_message(original, body, rec.files)
            msg = original
            await self._dispatch_message("MESSAGE_UPDATE", msg)
        else:
            channel = self._channel(inter.channel_id or 0)
            msg = self._create_message(channel, self.bot_user, body, rec.files, interaction=inter)
            inter.followup_ids.append(msg.id)
            await self._dispatch_message("MESSAGE_CREATE", msg)
        if rec.query.get("wait") in ("1", "true", "True"):
            return P.message(self.state, msg)
        return self._no_content()

    async def _h_wh_get(self, rec: RecordedRequest, app_id: str, token: str, message_id: str) -> Any:
        inter = self._webhook_interaction(app_id, token)
        return P.message(self.state, self._webhook_message(inter, message_id))

    async def _h_wh_edit(self, rec: RecordedRequest, app_id: str, token: str, message_id: str) -> Any:
        inter = self._webhook_interaction(app_id, token)
        msg = self._webhook_message(inter, message_id)
        body = rec.json if isinstance(rec.json, dict) else {}
        self._edit_message(msg, body, rec.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return P.message(self.state, msg)

    async def _h_wh_delete(self, rec: RecordedRequest, app_id: str, token: str, message_id: str) -> Any:
        inter = self._webhook_interaction(app_id, token)
        msg = self._webhook_message(inter, message_id)
        await self._delete(msg)
        return self._no_content()

    async def _delete(self, msg: Message) -> None:
        msg.deleted = True
        await self._dispatch_message_delete(msg)

    # ------------------------------------------------------------------ gateway

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        if not ws.can_prepare(request).ok:
            return await self._http_handler(request)
        await ws.prepare(request)
        conn = GatewayConnection(ws=ws, query=dict(request.query), path=request.path)
        self.connection_log.append({"path": request.path, "query": dict(request.query)})
        self._conns.add(conn)
        try:
            await self._send(conn, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": []}})
            async for raw in ws:
                if raw.type == WSMsgType.TEXT:
                    try:
                        frame = json.loads(raw.data)
                    except ValueError:
                        conn.server_closed = True
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                        break
                    await self._on_frame(conn, frame)
                elif raw.type == WSMsgType.BINARY:
                    conn.server_closed = True
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                else:
                    break
        except Exception:
            tb = traceback.format_exc()
            self.server_errors.append(f"gateway:\n{tb}")
            log.error("fake gateway crashed\n%s", tb)
        finally:
            self._conns.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                if not conn.server_closed and ws.close_code in (1000, 1001):
                    session.dead = True
            self._notify()
        return ws

    async def _send(self, conn: GatewayConnection, frame: dict[str, Any]) -> bool:
        self.gateway_log.append(("send", frame))
        return await conn.send(frame)

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        self.gateway_log.append(("recv", frame))
        op = frame.get("op")
        d = frame.get("d")
        if op == 1:
            await self._send(conn, {"op": 11})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif op == 8:
            await self._request_members(conn, d or {})
        elif op == 3:
            if conn.session is not None:
                conn.session.presence = d
        elif op == 4:
            pass
        else:
            conn.server_closed = True
            await conn.ws.close(code=4001, message=b"Unknown opcode.")
        self._notify()

    async def _identify(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        if conn.session is not None:
            conn.server_closed = True
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if d.get("token") != self.token:
            conn.server_closed = True
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = d.get("shard")
        session = GatewaySession(
            id=secrets.token_hex(16),
            intents=int(d.get("intents", (1 << 26) - 1)),
            identify=d,
            shard=(int(shard[0]), int(shard[1])) if shard else None,
            presence=d.get("presence"),
        )
        self.sessions[session.id] = session
        conn.session = session
        session.conn = conn
        self.identify_count += 1
        guilds = [g for g in self.state.guilds.values() if session.owns_guild(g.id)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": P.current_user(self.bot_user),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": (1 << 19) | (1 << 15)},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east"],
            "auth": {},
            "user_settings": {},
            "_trace": ['["fake-gateway",{"micros":1}]'],
        }
        if session.shard is not None:
            ready["shard"] = list(session.shard)
        async with session.lock:
            await self._session_send(session, "READY", ready)
            for g in guilds:
                data = P.guild_create(g)
                if not session.intents & Intent.GUILD_PRESENCES:
                    # Without the presences intent Discord only includes the bot's own member (and
                    # voice members); clients with the members intent then chunk via op 8.
                    data["members"] = [m for m in data["members"] if m["user"]["id"] == str(self.bot_user.id)]
                await self._session_send(session, "GUILD_CREATE", data)
        session.ready = True

    async def _resume(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        session = self.sessions.get(str(d.get("session_id")))
        seq = int(d.get("seq") or 0)
        replay: list[dict[str, Any]] = []
        if session is not None and not session.dead and d.get("token") == self.token:
            replay = [f for f in session.buffer if f["s"] > seq]
            oldest = session.buffer[0]["s"] if session.buffer else session.seq + 1
            if seq + 1 < oldest:
                session = None
        else:
            session = None
        if session is None:
            await self._send(conn, {"op": 9, "d": False})
            return
        old = session.conn
        if old is not None and old is not conn:
            old.server_closed = True
            with contextlib.suppress(Exception):
                await old.ws.close(code=4000, message=b"Session resumed elsewhere")
        conn.session = session
        async with session.lock:
            session.conn = conn
            for frame in replay:
                await self._send(conn, frame)
            await self._session_send(session, "RESUMED", {"_trace": ['["fake-gateway",{"micros":1}]']})
        self.resume_count += 1

    async def _request_members(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        session = conn.session
        if session is None:
            return
        guild = self.state.guilds.get(int(d.get("guild_id", 0)))
        if guild is None:
            return
        members = list(guild.members.values())
        query = d.get("query")
        user_ids = d.get("user_ids")
        not_found: list[str] = []
        if user_ids:
            ids = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m.id in ids]
            not_found = [str(i) for i in ids - {m.id for m in members}]
        elif query:
            q = str(query).lower()
            members = [
                m for m in members if m.user.username.lower().startswith(q) or (m.nick or "").lower().startswith(q)
            ]
        limit = int(d.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [P.member(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if d.get("presences"):
            chunk["presences"] = []
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        async with session.lock:
            await self._session_send(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _session_send(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        """Assign the next sequence number and send (caller holds ``session.lock``)."""
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append(frame)
        if session.conn is not None:
            await self._send(session.conn, frame)

    def _live_sessions(self, guild_id: int | None = None) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.ready and not s.dead and s.owns_guild(guild_id)]

    async def _dispatch(
        self,
        event: str,
        data: dict[str, Any] | Callable[[GatewaySession], dict[str, Any] | None],
        *,
        intent: int | None = None,
        guild_id: int | None = None,
    ) -> int:
        """Send a DISPATCH to every live session (buffered for RESUME when the socket is down)."""
        self._check_loop()
        sent = 0
        for session in self._live_sessions(guild_id):
            if intent is not None and not session.intents & intent:
                continue
            payload = data(session) if callable(data) else data
            if payload is None:
                continue
            async with session.lock:
                await self._session_send(session, event, payload)
            sent += 1
        self._notify()
        return sent

    def _hide_content(self, session: GatewaySession, msg: Message) -> bool:
        if not self.enforce_message_content_intent or session.intents & Intent.MESSAGE_CONTENT:
            return False
        if msg.guild_id is None or msg.author.id == self.bot_user.id:
            return False
        return not any(u.id == self.bot_user.id for u in msg.mentions)

    def _message_event(self, msg: Message, session: GatewaySession) -> dict[str, Any]:
        data = P.message(self.state, msg, hide_content=self._hide_content(session, msg))
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            guild = self.state.guilds.get(msg.guild_id)
            member = guild.members.get(msg.author.id) if guild else None
            if member is not None and msg.webhook_id is None:
                data["member"] = P.member(member, with_user=False)
        return data

    async def _dispatch_message(self, event: str, msg: Message) -> int:
        if msg.ephemeral:
            return 0
        intent = Intent.GUILD_MESSAGES if msg.guild_id is not None else Intent.DIRECT_MESSAGES
        return await self._dispatch(event, lambda s: self._message_event(msg, s), intent=intent, guild_id=msg.guild_id)

    async def _dispatch_message_delete(self, msg: Message) -> int:
        if msg.ephemeral:
            return 0
        data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        intent = Intent.GUILD_MESSAGES if msg.guild_id is not None else Intent.DIRECT_MESSAGES
        return await self._dispatch("MESSAGE_DELETE", data, intent=intent, guild_id=msg.guild_id)

    # ------------------------------------------------------------------ gateway control

    async def reconnect_gateway(self) -> None:
        """Send op 7 RECONNECT: the client should drop the socket and RESUME on resume_gateway_url."""
        for conn in list(self._conns):
            await self._send(conn, {"op": 7, "d": None})

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close every gateway socket from the server side (4000 = resumable, 4004 = fatal auth)."""
        for conn in list(self._conns):
            conn.server_closed = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=code, message=b"fake discord closed"), 5.0)

    async def restart_gateway(self) -> None:
        """Alias for a resumable server-side close (what a Discord gateway restart looks like)."""
        await self.drop_gateway(4000)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; with ``resumable=False`` the client must IDENTIFY again."""
        for conn in list(self._conns):
            if conn.session is not None and not resumable:
                conn.session.dead = True
            await self._send(conn, {"op": 9, "d": resumable})

    # ------------------------------------------------------------------ driver: world setup

    async def add_member(
        self,
        username: str,
        *,
        permissions: Any = None,
        roles: Sequence[Role] = (),
        nick: str | None = None,
        guild: Guild | None = None,
    ) -> Member:
        """Add a user to the guild. ``permissions`` creates a dedicated role with exactly those bits
        (e.g. ``Perm.MANAGE_GUILD`` or ``discord.Permissions(manage_messages=True)``)."""
        guild = guild or self.guild
        user = self.state.add_user(username)
        role_list = list(roles)
        if permissions is not None:
            role = await self.add_role(f"{username}-perms", permissions, guild=guild)
            role_list.append(role)
        member = self.state.add_member(guild, user, role_list, nick=nick)
        data = P.member(member)
        data["guild_id"] = str(guild.id)
        await self._dispatch("GUILD_MEMBER_ADD", data, intent=Intent.GUILD_MEMBERS, guild_id=guild.id)
        return member

    async def add_role(self, name: str, permissions: Any = 0, *, guild: Guild | None = None) -> Role:
        """Create a role (GUILD_ROLE_CREATE is dispatched so the client cache stays in sync)."""
        guild = guild or self.guild
        role = self.state.add_role(guild, name, permissions)
        await self._dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild.id), "role": P.role(role)},
            intent=Intent.GUILDS,
            guild_id=guild.id,
        )
        return role

    async def set_member_roles(self, member: Member, roles: Sequence[Role]) -> None:
        """Replace a member's roles (GUILD_MEMBER_UPDATE, seen by clients with the members intent)."""
        member.role_ids = [r.id for r in roles]
        data = P.member(member)
        data["guild_id"] = str(member.guild_id)
        await self._dispatch("GUILD_MEMBER_UPDATE", data, intent=Intent.GUILD_MEMBERS, guild_id=member.guild_id)

    async def add_channel(
        self, name: str, *, type: int = ChannelType.TEXT, guild: Guild | None = None, topic: str | None = None
    ) -> Channel:
        """Create a guild channel (CHANNEL_CREATE)."""
        guild = guild or self.guild
        ch = self.state.add_channel(name, guild=guild, type=type, topic=topic)
        await self._dispatch("CHANNEL_CREATE", P.channel(ch), intent=Intent.GUILDS, guild_id=guild.id)
        return ch

    async def set_overwrite(
        self, channel: Channel, target: Role | Member | User, *, allow: Any = 0, deny: Any = 0
    ) -> None:
        """Set a channel permission overwrite (e.g. deny the bot SEND_MESSAGES) and tell the client."""
        kind = 0 if isinstance(target, Role) else 1
        tid = target.id
        channel.overwrites[tid] = Overwrite(id=tid, type=kind, allow=_bits(allow), deny=_bits(deny))
        await self._dispatch("CHANNEL_UPDATE", P.channel(channel), intent=Intent.GUILDS, guild_id=channel.guild_id)

    def add_attachment(
        self,
        data: bytes,
        filename: str = "image.png",
        *,
        content_type: str | None = None,
        channel: Channel | None = None,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> Attachment:
        """Register bytes as an attachment served by the fake CDN (use it in options/messages/modals)."""
        return self.state.add_attachment(
            data,
            filename,
            content_type=content_type,
            channel_id=(channel or self.channel).id,
            description=description,
            ephemeral=ephemeral,
        )

    def attachment_url(self, att: Attachment) -> str:
        """A fresh CDN URL for ``att`` on this server."""
        return self.state.attachment_url(att)

    # ------------------------------------------------------------------ driver: interactions

    def _as_user(self, who: User | Member | None) -> User:
        if who is None:
            return self.member.user
        return who.user if isinstance(who, Member) else who

    def _coerce_attachment(self, value: Any, *, ephemeral: bool, channel: Channel) -> Attachment:
        if isinstance(value, Attachment):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            return self.state.add_attachment(data, _sniff_filename(data), channel_id=channel.id, ephemeral=ephemeral)
        if isinstance(value, tuple) and len(value) in (2, 3):
            filename, data = value[0], bytes(value[1])
            ctype = value[2] if len(value) == 3 else None
            return self.state.add_attachment(
                data, filename, content_type=ctype, channel_id=channel.id, ephemeral=ephemeral
            )
        raise TypeError(f"cannot use {value!r} as an attachment (pass Attachment, bytes or (filename, bytes))")

    def _resolve(self, value: Any, kind: int, resolved: dict[str, Any], guild: Guild | None, channel: Channel) -> str:
        """Add ``value`` to an interaction's ``resolved`` map and return its id string."""
        if kind == 11:
            att = self._coerce_attachment(value, ephemeral=True, channel=channel)
            resolved.setdefault("attachments", {})[str(att.id)] = P.attachment(self.state, att)
            return str(att.id)
        if isinstance(value, (Member, User)):
            user = value.user if isinstance(value, Member) else value
            resolved.setdefault("users", {})[str(user.id)] = P.user(user)
            member = guild.members.get(user.id) if guild else None
            if member is not None:
                resolved.setdefault("members", {})[str(user.id)] = P.member(
                    member,
                    with_user=False,
                    permissions=self.state.channel_permissions(guild, member, channel),  # type: ignore[arg-type]
                )
            return str(user.id)
        if isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = P.role(value)
            return str(value.id)
        if isinstance(value, Channel):
            data = P.channel(value)
            member = guild.members.get(self.bot_user.id) if guild else None
            if guild is not None and member is not None:
                data["permissions"] = str(self.state.channel_permissions(guild, member, value))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        return str(value)

    def _make_options(
        self,
        values: Mapping[str, Any],
        defs: list[dict[str, Any]],
        resolved: dict[str, Any],
        guild: Guild | None,
        channel: Channel,
        *,
        check_required: bool,
    ) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in defs}
        out = []
        for name, value in values.items():
            d = by_name.get(name)
            if d is None and defs:
                raise ValueError(f"option {name!r} is not defined by the registered command")
            kind = d["type"] if d else _infer_option_type(value)
            if kind == 11 or kind in (6, 7, 8, 9):
                v: Any = self._resolve(value, kind, resolved, guild, channel)
            elif kind == 4:
                v = int(value)
            elif kind == 10:
                v = float(value)
            elif kind == 5:
                v = bool(value)
            else:
                v = str(value)
            if d and d.get("choices") and v not in [c["value"] for c in d["choices"]]:
                raise ValueError(f"{v!r} is not one of the choices for option {name!r}")
            out.append({"name": name, "type": kind, "value": v})
        if check_required:
            missing = [d["name"] for d in defs if d.get("required") and d["name"] not in values]
            if missing:
                raise ValueError(f"missing required options: {missing}")
        return out

    async def _create_interaction(
        self,
        itype: int,
        data: dict[str, Any],
        *,
        user: User | Member | None,
        channel: Channel,
        message: Message | None = None,
        locale: str = "en-US",
    ) -> Interaction:
        u = self._as_user(user)
        guild = self.state.guild_of(channel)
        member = guild.members.get(u.id) if guild else None
        if guild is not None and member is None:
            raise ValueError(f"{u.username} is not a member of {guild.name}")
        inter = Interaction(
            id=self.state.new_id(),
            token="aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96),
            type=itype,
            application_id=self.application_id,
            data=data,
            user=u,
            channel_id=channel.id,
            guild_id=guild.id if guild else None,
            created_at=self._now(),
            message_id=message.id if message else None,
        )
        ch_payload = P.channel(channel)
        payload: dict[str, Any] = {
            "id": str(inter.id),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "channel_id": str(channel.id),
            "channel": ch_payload,
            "token": inter.token,
            "version": 1,
            "locale": locale,
            "app_permissions": str(self.state.bot_permissions(channel)),
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": self.attachment_size_limit,
        }
        if guild is not None and member is not None:
            perms = self.state.channel_permissions(guild, member, channel)
            ch_payload["permissions"] = str(perms)
            payload.update(
                {
                    "guild_id": str(guild.id),
                    "guild": {
                        "id": str(guild.id),
                        "locale": guild.preferred_locale,
                        "features": list(guild.features),
                    },
                    "guild_locale": guild.preferred_locale,
                    "member": P.member(member, permissions=perms),
                    "authorizing_integration_owners": {"0": str(guild.id)},
                    "context": 0,
                }
            )
        else:
            payload.update({"user": P.user(u), "authorizing_integration_owners": {"0": "0"}, "context": 1})
        if message is not None:
            payload["message"] = P.message(self.state, message)
        inter.payload = payload
        self.state.interactions[inter.id] = inter
        self.state.interactions_by_token[inter.token] = inter
        sent = await self._dispatch("INTERACTION_CREATE", payload, guild_id=inter.guild_id)
        if sent == 0:
            raise RuntimeError("no bot is connected to the fake gateway (start it with fd.running(bot))")
        return inter

    def _command_for(
        self, name: str, ctype: int, channel: Channel, user: User | Member | None, *, force: bool = False
    ) -> AppCommand | None:
        guild = self.state.guild_of(channel)
        cmd = self.state.find_command(name, ctype, guild.id if guild else None)
        if cmd is None and self.require_synced_commands:
            raise LookupError(f"command {name!r} (type {ctype}) was never synced by the bot")
        if cmd is not None and not force:
            self._check_command_access(cmd, self._as_user(user), channel)
        return cmd

    def _check_command_access(self, cmd: AppCommand, user: User, channel: Channel) -> None:
        """The Discord client hides commands a user may not run; mirror that instead of dispatching."""
        contexts = cmd.data.get("contexts")
        guild = self.state.guild_of(channel)
        if guild is None:
            if (contexts is not None and 1 not in contexts) or cmd.data.get("dm_permission") is False:
                raise PermissionError(f"{cmd.name!r} is not available in DMs")
            return
        if contexts is not None and 0 not in contexts:
            raise PermissionError(f"{cmd.name!r} is not available in guilds")
        required = cmd.data.get("default_member_permissions")
        member = guild.members.get(user.id)
        if required is None or member is None:
            return
        perms = self.state.channel_permissions(guild, member, channel)
        needed = int(required)
        if perms != Perm.ALL and (needed == 0 or perms & needed != needed):
            raise PermissionError(
                f"{user.username} lacks default_member_permissions={needed} for {cmd.name!r} "
                "(pass force=True to dispatch anyway)"
            )

    async def slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | list[dict[str, Any]] | None = None,
        *,
        user: User | Member | None = None,
        channel: Channel | None = None,
        guild: Guild | None = None,
        attachments: Mapping[str, Any] | None = None,
        locale: str = "en-US",
        force: bool = False,
    ) -> Interaction:
        """Dispatch a CHAT_INPUT interaction as if ``user`` ran ``/name`` in ``channel``.

        ``name`` may include subcommands (``"style apply"``). ``options`` maps option name to value:
        str/int/float/bool, ``Attachment`` or ``(filename, bytes)`` for attachment options, ``User``/
        ``Member``/``Role``/``Channel`` for those types (types come from the synced command when the
        bot registered it, otherwise they are inferred). ``attachments`` is the same as putting
        ``(filename, bytes)``/``Attachment`` values into ``options``. A list of raw option dicts is
        sent verbatim. Like the Discord client, a synced command's ``default_member_permissions``
        and ``contexts`` are honoured: a user who could not see the command gets PermissionError
        (``force=True`` dispatches anyway). Returns the dispatched interaction.
        """
        channel = channel or (next(iter(guild.channels.values())) if guild else self.channel)
        g = self.state.guild_of(channel)
        root, *subs = name.split()
        cmd = self._command_for(root, 1, channel, user, force=force)
        resolved: dict[str, Any] = {}
        if isinstance(options, list):
            opts = options
        else:
            values = dict(options or {})
            values.update(attachments or {})
            defs = cmd.options if cmd else []
            node_defs = defs
            for sub in subs:
                node = next((d for d in node_defs if d["name"] == sub), None)
                if cmd is not None and node is None:
                    raise ValueError(f"unknown subcommand {sub!r} of /{root}")
                node_defs = (node or {}).get("options") or []
            opts = self._make_options(values, node_defs, resolved, g, channel, check_required=cmd is not None)
            for depth, sub in reversed(list(enumerate(subs))):
                kind = 1 if depth == len(subs) - 1 else 2
                opts = [{"name": sub, "type": kind, "options": opts}]
        data: dict[str, Any] = {
            "id": str(cmd.id if cmd else self.state.new_id()),
            "name": root,
            "type": 1,
        }
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        if cmd is not None and cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return await self._create_interaction(2, data, user=user, channel=channel, locale=locale)

    async def autocomplete(
        self,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        user: User | Member | None = None,
        channel: Channel | None = None,
    ) -> Interaction:
        """Dispatch an autocomplete interaction; the bot's choices land in ``autocomplete_choices``."""
        channel = channel or self.channel
        root, *subs = name.split()
        cmd = self._command_for(root, 1, channel, user)
        opts = []
        defs = {d["name"]: d for d in (cmd.options if cmd else [])}
        for key, value in options.items():
            kind = defs[key]["type"] if key in defs else _infer_option_type(value)
            opt: dict[str, Any] = {"name": key, "type": kind, "value": value}
            if key == focused:
                opt["focused"] = True
            opts.append(opt)
        for depth, sub in reversed(list(enumerate(subs))):
            opts = [{"name": sub, "type": 1 if depth == len(subs) - 1 else 2, "options": opts}]
        data: dict[str, Any] = {
            "id": str(cmd.id if cmd else self.state.new_id()),
            "name": root,
            "type": 1,
            "options": opts,
        }
        if cmd is not None and cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return await self._create_interaction(4, data, user=user, channel=channel)

    async def context_menu(
        self,
        name: str,
        target: Message | User | Member,
        *,
        user: User | Member | None = None,
        channel: Channel | None = None,
        force: bool = False,
    ) -> Interaction:
        """Dispatch a message (target ``Message``) or user (``User``/``Member``) context-menu command."""
        if isinstance(target, Message):
            channel = channel or self.state.channels[target.channel_id]
            ctype = 3
        else:
            channel = channel or self.channel
            ctype = 2
        cmd = self._command_for(name, ctype, channel, user, force=force)
        g = self.state.guild_of(channel)
        resolved: dict[str, Any] = {}
        if isinstance(target, Message):
            resolved["messages"] = {str(target.id): P.message(self.state, target)}
            target_id = str(target.id)
        else:
            target_id = self._resolve(target, 6, resolved, g, channel)
        data: dict[str, Any] = {
            "id": str(cmd.id if cmd else self.state.new_id()),
            "name": name,
            "type": ctype,
            "target_id": target_id,
            "resolved": resolved,
        }
        if cmd is not None and cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return await self._create_interaction(2, data, user=user, channel=channel)

    async def click_button(self, message: Message, custom_id: str, *, user: User | Member | None = None) -> Interaction:
        """Click a button on ``message`` (must exist and be enabled, as in the real client)."""
        comp = message.find_component(custom_id)
        if comp is None:
            raise ValueError(f"message {message.id} has no component {custom_id!r} (has {message.custom_ids})")
        if comp.get("type") != 2:
            raise ValueError(f"component {custom_id!r} is not a button")
        if comp.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled")
        data = {"custom_id": custom_id, "component_type": 2, "id": comp.get("id")}
        channel = self.state.channels[message.channel_id]
        return await self._create_interaction(3, data, user=user, channel=channel, message=message)

    async def select_menu(
        self,
        message: Message,
        custom_id: str,
        values: Sequence[Any],
        *,
        user: User | Member | None = None,
    ) -> Interaction:
        """Choose ``values`` in a select on ``message`` (strings, or entities for entity selects)."""
        comp = message.find_component(custom_id)
        if comp is None or comp.get("type") not in (3, 5, 6, 7, 8):
            raise ValueError(f"message {message.id} has no select menu {custom_id!r}")
        if comp.get("disabled"):
            raise ValueError(f"select {custom_id!r} is disabled")
        channel = self.state.channels[message.channel_id]
        guild = self.state.guild_of(channel)
        resolved: dict[str, Any] = {}
        if comp["type"] == 3:
            allowed = [o["value"] for o in comp.get("options", [])]
            for v in values:
                if v not in allowed:
                    raise ValueError(f"{v!r} is not an option of select {custom_id!r}")
            ids = [str(v) for v in values]
        else:
            ids = [
                self._resolve(v, 6 if isinstance(v, (User, Member)) else 0, resolved, guild, channel) for v in values
            ]
        data: dict[str, Any] = {
            "custom_id": custom_id,
            "component_type": comp["type"],
            "values": ids,
            "id": comp.get("id"),
        }
        if resolved:
            data["resolved"] = resolved
        return await self._create_interaction(3, data, user=user, channel=channel, message=message)

    async def submit_modal(
        self,
        source: Interaction,
        values: Mapping[str, Any] | None = None,
        *,
        user: User | Member | None = None,
        components: list[dict[str, Any]] | None = None,
        attachments: Sequence[Any] = (),
    ) -> Interaction:
        """Submit the modal the bot opened in response to ``source``.

        ``values`` maps each field's custom_id to: a str (text input, radio), a list of str (selects,
        checkbox group), a bool (checkbox), or a list of ``Attachment``/``(filename, bytes)`` (file
        upload; they are put in ``resolved.attachments`` as Discord does). Unfilled text inputs use
        their prefilled value; a required field left empty raises ValueError (the client would block
        it). ``components`` sends a raw component list instead; ``attachments`` then seeds resolved.
        """
        if source.modal is None:
            raise ValueError(f"interaction {source.id} did not open a modal")
        channel = self.state.channels[source.channel_id or 0]
        guild = self.state.guild_of(channel)
        resolved: dict[str, Any] = {}
        for att in attachments:
            self._resolve(att, 11, resolved, guild, channel)
        if components is None:
            components = self._modal_components(
                source.modal.get("components") or [], dict(values or {}), resolved, guild, channel
            )
        data: dict[str, Any] = {"custom_id": source.modal["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        message = self.state.messages.get(source.message_id) if source.message_id else None
        return await self._create_interaction(5, data, user=user or source.user, channel=channel, message=message)

    def _modal_components(
        self,
        comps: list[dict[str, Any]],
        values: dict[str, Any],
        resolved: dict[str, Any],
        guild: Guild | None,
        channel: Channel,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for comp in comps:
            t = comp.get("type")
            if t == 1:
                out.append(
                    {
                        "type": 1,
                        "id": comp.get("id"),
                        "components": self._modal_components(
                            comp.get("components") or [], values, resolved, guild, channel
                        ),
                    }
                )
            elif t == 18:
                inner = self._modal_components([comp["component"]], values, resolved, guild, channel)
                out.append({"type": 18, "id": comp.get("id"), "component": inner[0]})
            elif "custom_id" in comp:
                out.append(self._modal_field(comp, values, resolved, guild, channel))
            else:
                out.append({"type": t, "id": comp.get("id")})
        return out

    def _modal_field(
        self,
        comp: dict[str, Any],
        values: dict[str, Any],
        resolved: dict[str, Any],
        guild: Guild | None,
        channel: Channel,
    ) -> dict[str, Any]:
        cid = comp["custom_id"]
        t = comp["type"]
        v = values.get(cid, _MISSING)
        base: dict[str, Any] = {"type": t, "id": comp.get("id"), "custom_id": cid}
        required = comp.get("required", True)
        if t == 4:
            text = (comp.get("value") or "") if v is _MISSING else str(v)
            if required and not text:
                raise ValueError(f"required text input {cid!r} was left empty")
            if text and comp.get("min_length") and len(text) < comp["min_length"]:
                raise ValueError(f"text input {cid!r} is shorter than min_length")
            if comp.get("max_length") and len(text) > comp["max_length"]:
                raise ValueError(f"text input {cid!r} is longer than max_length")
            base["value"] = text
        elif t == 19:
            items = [] if v is _MISSING else list(v if isinstance(v, (list, tuple)) and not _is_file_tuple(v) else [v])
            if required and not items:
                raise ValueError(f"required file upload {cid!r} has no files")
            max_values = comp.get("max_values") or 1
            if len(items) > max_values:
                raise ValueError(f"file upload {cid!r} takes at most {max_values} files")
            base["values"] = [self._resolve(a, 11, resolved, guild, channel) for a in items]
        elif t in (3, 5, 6, 7, 8, 22):
            items = [] if v is _MISSING else list(v)
            if required and t != 22 and not items and (1 if comp.get("min_values") is None else comp["min_values"]) > 0:
                raise ValueError(f"required select {cid!r} has no values")
            if t == 3:
                allowed = [o["value"] for o in comp.get("options", [])]
                bad = [x for x in items if x not in allowed]
                if bad:
                    raise ValueError(f"{bad} are not options of {cid!r}")
                base["values"] = [str(x) for x in items]
            elif t == 22:
                base["values"] = [str(x) for x in items]
            else:
                base["values"] = [self._resolve(x, 0, resolved, guild, channel) for x in items]
        elif t == 21:
            base["value"] = None if v is _MISSING else str(v)
        elif t == 23:
            base["value"] = False if v is _MISSING else bool(v)
        return base

    # ------------------------------------------------------------------ driver: messages

    async def post_message(
        self,
        channel: Channel | None = None,
        author: User | Member | None = None,
        content: str = "",
        *,
        attachments: Sequence[Any] = (),
        reference: Message | None = None,
        mention_author: bool = True,
        embeds: list[dict[str, Any]] | None = None,
    ) -> Message:
        """A user posts a message (MESSAGE_CREATE). ``reference`` makes it a reply (type 19, with
        ``message_reference`` and ``referenced_message``); mentions are parsed from ``<@id>`` in content."""
        channel = channel or self.channel
        user = self._as_user(author)
        atts = [self._coerce_attachment(a, ephemeral=False, channel=channel) for a in attachments]
        msg = Message(
            id=self.state.new_id(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=user,
            content=content,
            attachments=atts,
            embeds=list(embeds or []),
        )
        if reference is not None:
            msg.type = 19
            msg.reference = {
                "type": 0,
                "message_id": str(reference.id),
                "channel_id": str(reference.channel_id),
                "guild_id": P.s(reference.guild_id),
            }
        self._mentions(msg)
        if reference is not None and mention_author and reference.author not in msg.mentions:
            msg.mentions.append(reference.author)
        self.state.messages[msg.id] = msg
        channel.last_message_id = msg.id
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return msg

    async def edit_user_message(self, message: Message, content: str) -> Message:
        """A user edits their message (MESSAGE_UPDATE)."""
        message.revisions.append(P.message(self.state, message, include_referenced=False))
        message.content = content
        message.edited_timestamp = iso_now()
        self._mentions(message)
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return message

    async def delete_message(self, message: Message) -> None:
        """Someone deletes ``message`` (MESSAGE_DELETE)."""
        await self._delete(message)

    async def react(self, message: Message, emoji: str, *, user: User | Member | None = None) -> None:
        """A user adds a reaction (MESSAGE_REACTION_ADD); ``emoji`` is a unicode char or ``name:id``."""
        await self._add_reaction(message, self._as_user(user), emoji)

    async def _add_reaction(self, msg: Message, user: User, emoji: str) -> None:
        users = msg.reactions.setdefault(emoji, set())
        if user.id in users:
            return
        users.add(user.id)
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": P.emoji_from_key(emoji),
            "burst": False,
            "type": 0,
            "message_author_id": str(msg.author.id),
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            guild = self.state.guilds[msg.guild_id]
            member = guild.members.get(user.id)
            if member is not None:
                data["member"] = P.member(member)
        await self._dispatch("MESSAGE_REACTION_ADD", data, intent=Intent.GUILD_MESSAGE_REACTIONS, guild_id=msg.guild_id)


def _bits(value: Any) -> int:
    if value is None:
        return 0
    return int(value.value) if hasattr(value, "value") else int(value)


def _is_file_tuple(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) in (2, 3) and isinstance(v[0], str) and isinstance(v[1], (bytes, bytearray))


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    if isinstance(value, (Attachment, bytes, bytearray)) or _is_file_tuple(value):
        return 11
    if isinstance(value, (User, Member)):
        return 6
    if isinstance(value, Role):
        return 8
    if isinstance(value, Channel):
        return 7
    return 3


def _sniff_filename(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image.png"
    if data.startswith(b"\xff\xd8"):
        return "image.jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image.gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image.webp"
    return "file.bin"
