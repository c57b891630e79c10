"""The gateway: the websocket a bot keeps open to receive events
(https://discord.com/developers/docs/events/gateway).

Implemented: HELLO (op 10) on connect; HEARTBEAT (op 1) answered by HEARTBEAT_ACK (op 11); IDENTIFY
(op 2) answered by READY and one GUILD_CREATE per guild of the shard, or closed with 4014 when it asks for a
privileged intent the application has not enabled (``Settings.privileged_intents``); RESUME (op 6) replaying the
missed dispatches and then RESUMED, or INVALID_SESSION (op 9) when the session cannot be resumed;
REQUEST_GUILD_MEMBERS (op 8) answered by one GUILD_MEMBERS_CHUNK; PRESENCE_UPDATE (op 3) stored;
VOICE_STATE_UPDATE (op 4) ignored. Dispatches (op 0) carry increasing sequence numbers, are filtered
by the session's intents and shard, and are buffered so a RESUME can replay them. Close codes follow
https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes.
Not implemented: zlib/zstd transport compression, ETF encoding, voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from . import payloads as P
from .core import Changes, Settings
from .state import FakeState, Intent

log = logging.getLogger("fakediscord")

_TRACE = ['["fake-gateway",{"micros":1}]']


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
        """Sharding formula: ``shard_id = (guild_id >> 22) % num_shards``
        (https://discord.com/developers/docs/events/gateway#sharding)."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        gid = guild_id or 0
        return (gid >> 22) % count == shard_id


class Gateway:
    """Connections, sessions and dispatching; ``url``/``resume_url`` are set once the server knows its port."""

    def __init__(self, settings: Settings, state: FakeState, changes: Changes) -> None:
        self.settings = settings
        self.state = state
        self.changes = changes
        self.url = ""
        self.resume_url = ""
        self.sessions: dict[str, GatewaySession] = {}
        self.conns: set[GatewayConnection] = set()
        self.gateway_log: list[tuple[str, dict[str, Any]]] = []
        self.connection_log: list[dict[str, Any]] = []
        self.server_errors: list[str] = []
        self.identify_count = 0
        self.resume_count = 0
        # None: reachable. "refuse": connections are refused (HTTP 503 instead of the upgrade);
        # "hang": they are never answered (the client's connect times out), as a black hole does.
        self.down: str | None = None
        self.refused = 0  # connection attempts while down
        self._up = asyncio.Event()

    # ------------------------------------------------------------------ the socket

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Run one client connection until it closes."""
        if self.down is not None:
            self.refused += 1
            self.changes.notify()
            if self.down == "hang":
                await self._up.wait()  # until it is reachable again (or the server stops)
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(ws=ws, query=dict(request.query), path=request.path)
        self.connection_log.append({"path": request.path, "query": dict(request.query)})
        self.conns.add(conn)
        try:
            await self.send(
                conn, {"op": 10, "d": {"heartbeat_interval": self.settings.heartbeat_interval_ms, "_trace": []}}
            )
            async for raw in ws:
                if raw.type == WSMsgType.TEXT:
                    try:
                        frame = json.loads(raw.data)
                    except ValueError:
                        await self._close(conn, 4002, b"Error while decoding payload.")
                        break
                    await self._on_frame(conn, frame)
                elif raw.type == WSMsgType.BINARY:
                    await self._close(conn, 4002, b"Error while decoding payload.")
                    break
                else:
                    break
        except Exception:
            tb = traceback.format_exc()
            self.server_errors.append(f"gateway:\n{tb}")
            log.error("fake gateway crashed\n%s", tb)
        finally:
            self.conns.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A client that closes with 1000/1001 ends its session; any other code may resume.
                if not conn.server_closed and ws.close_code in (1000, 1001):
                    session.dead = True
            self.changes.notify()
        return ws

    async def _close(self, conn: GatewayConnection, code: int, reason: bytes) -> None:
        conn.server_closed = True
        await conn.ws.close(code=code, message=reason)

    async def send(self, conn: GatewayConnection, frame: dict[str, Any]) -> bool:
        self.gateway_log.append(("send", frame))
        return await conn.send(frame)

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        self.gateway_log.append(("recv", frame))
        op = frame.get("op")
        d = frame.get("d")
        if op == 1:
            await self.send(conn, {"op": 11})
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
            await self._close(conn, 4001, b"Unknown opcode.")
        self.changes.notify()

    # ------------------------------------------------------------------ opcodes

    async def _identify(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        if conn.session is not None:
            await self._close(conn, 4005, b"Already authenticated.")
            return
        if d.get("token") != self.settings.token:
            await self._close(conn, 4004, b"Authentication failed.")
            return
        if int(d.get("intents", 0)) & Intent.PRIVILEGED & ~self.settings.privileged_intents:
            await self._close(conn, 4014, b"Disallowed intent(s).")
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
        bot = self.state.bot_user
        guilds = [g for g in self.state.guilds.values() if session.owns_guild(g.id) and bot.id in g.members]
        ready: dict[str, Any] = {
            "v": 10,
            "user": P.current_user(bot),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": {
                "id": str(self.state.application_id),
                "flags": P.application_flags(self.settings.privileged_intents),
            },
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["us-east"],
            "auth": {},
            "user_settings": {},
            "_trace": _TRACE,
        }
        if session.shard is not None:
            ready["shard"] = list(session.shard)
        async with session.lock:
            await self._session_send(session, "READY", ready)
            for g in guilds:
                data = P.guild_create(g)
                if not session.intents & Intent.GUILD_PRESENCES:
                    # Without the presences intent Discord only includes the bot's own member (and
                    # voice members); clients with the members intent then chunk via op 8
                    # (https://discord.com/developers/docs/events/gateway-events#guild-create).
                    data["members"] = [m for m in data["members"] if m["user"]["id"] == str(bot.id)]
                await self._session_send(session, "GUILD_CREATE", data)
        session.ready = True

    async def _resume(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        session = self.sessions.get(str(d.get("session_id")))
        seq = int(d.get("seq") or 0)
        replay: list[dict[str, Any]] = []
        if session is not None and not session.dead and d.get("token") == self.settings.token:
            replay = [f for f in session.buffer if f["s"] > seq]
            oldest = session.buffer[0]["s"] if session.buffer else session.seq + 1
            if seq + 1 < oldest:
                session = None
        else:
            session = None
        if session is None:
            await self.send(conn, {"op": 9, "d": False})
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
                await self.send(conn, frame)
            await self._session_send(session, "RESUMED", {"_trace": _TRACE})
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

    # ------------------------------------------------------------------ dispatching

    async def _session_send(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        """Assign the next sequence number and send (caller holds ``session.lock``)."""
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append(frame)
        if session.conn is not None:
            await self.send(session.conn, frame)

    def live_sessions(self, guild_id: int | None = None) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.ready and not s.dead and s.owns_guild(guild_id)]

    async def dispatch(
        self,
        event: str,
        data: dict[str, Any] | Callable[[GatewaySession], dict[str, Any] | None],
        *,
        intent: int | None = None,
        guild_id: int | None = None,
    ) -> int:
        """Send a DISPATCH to every live session that has ``intent`` (buffered for RESUME when the
        socket is down); ``data`` may be built per session. Returns how many sessions got it."""
        self.changes.check_loop()
        sent = 0
        for session in self.live_sessions(guild_id):
            if intent is not None and not session.intents & intent:
                continue
            payload = data(session) if callable(data) else data
            if payload is None:
                continue
            async with session.lock:
                await self._session_send(session, event, payload)
            sent += 1
        self.changes.notify()
        return sent

    # ------------------------------------------------------------------ server-side control

    async def go_down(self, mode: str = "refuse") -> None:
        """Make the gateway unreachable: current sockets close (resumably) and new ones fail."""
        if mode not in ("refuse", "hang"):
            raise ValueError("mode is 'refuse' or 'hang'")
        self.down = mode
        self._up.clear()
        await self.drop(4000, reason=b"gateway unavailable")

    def come_up(self) -> None:
        self.down = None
        self._up.set()

    async def reconnect(self) -> None:
        """op 7 RECONNECT: the client should drop the socket and RESUME on resume_gateway_url."""
        for conn in list(self.conns):
            await self.send(conn, {"op": 7, "d": None})

    async def drop(self, code: int = 4000, *, reason: bytes = b"fake discord closed", timeout: float = 5.0) -> None:
        """Close every socket from the server side (4000 = resumable, 4004 = fatal auth)."""
        for conn in list(self.conns):
            conn.server_closed = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=code, message=reason), timeout)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """op 9 INVALID_SESSION; with ``resumable=False`` the client must IDENTIFY again."""
        for conn in list(self.conns):
            if conn.session is not None and not resumable:
                conn.session.dead = True
            await self.send(conn, {"op": 9, "d": resumable})
