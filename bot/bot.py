"""The `commands.Bot` subclass that wires everything together.

`setup_hook` runs after login and before the gateway connects, which is exactly when the
bot can open its database, start the executor and the image checker, load the features (the stylize extension
registers its persistent buttons and re-queues work left by a previous process: editing
messages needs only HTTP) and sync commands. Each feature owns its state and is loaded as a
discord.py extension; the core imports none of an extension's modules, since unloading an
extension drops its modules from `sys.modules` and a reload would make them new objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot import messages
from bot.blocklist import Blocklist
from bot.config import BotConfig
from bot.db import Database
from bot.db.server_styles import ServerStyles
from bot.errors import handle_interaction_error
from bot.guild_settings import GuildSettings
from bot.health import HealthServer
from bot.metrics import Metrics
from stylecore.executors.base import Executor
from stylecore.imageio import IsolatedDecoder

if TYPE_CHECKING:
    from bot.cogs.stylize.service import JobService

log = logging.getLogger(__name__)

# The admin feature owns `/stylebot`: the features after it add their subcommands to it.
COGS: tuple[str, ...] = ("bot.cogs.stylize", "bot.cogs.admin", "bot.cogs.gallery", "bot.cogs.help", "bot.cogs.privacy")
PURGE_EVERY = 3600.0
# Seconds a shutdown may take past STYLEBOT_SHUTDOWN_GRACE: pausing the jobs that did not finish
# (bot.cogs.stylize.service.SETTLE), then closing Discord, the workers and the database.
SHUTDOWN_MARGIN = 5.0
# discord.py runs each interaction's handler (app command, button, form) and each event's listeners
# in a task of its own, named for what it runs: these are the ones that answer members.
HANDLER_TASKS = (
    "CommandTree-invoker",
    "discord-ui-view-dispatch-",
    "discord-ui-modal-dispatch-",
    "discord-ui-dynamic-item-",
    "discord.py: on_message",
)


def answering_tasks() -> set[asyncio.Task[Any]]:
    """The interactions and mentions being handled right now (not the caller's own task)."""
    me = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not me and not t.done() and t.get_name().startswith(HANDLER_TASKS)}


def apply_endpoints(config: BotConfig) -> None:
    """Point discord.py at an API proxy / gateway when configured (process-wide by design:
    the library keeps these as class attributes)."""
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    if config.api_base:
        Route.BASE = config.api_base
    if config.gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


class StyleTree(app_commands.CommandTree["StyleBot"]):
    async def on_error(
        self, interaction: discord.Interaction[StyleBot], error: app_commands.AppCommandError, /
    ) -> None:
        await handle_interaction_error(interaction, error)


def make_executor_from_config(config: BotConfig) -> Executor:
    from stylecore.executors import make_executor

    return make_executor(config.executor, **config.executor_config())


class StyleBot(commands.Bot):
    def __init__(
        self,
        config: BotConfig,
        *,
        executor: Executor | None = None,
        decoder: IsolatedDecoder | None = None,
        **options: Any,
    ) -> None:
        """`executor` and `decoder` are shared ones (tests); by default the bot builds its own from
        `config` in `setup_hook` and closes them on shutdown."""
        intents = discord.Intents.default()
        # Only the reply flow needs it: to read the image of the message a member replies to. Messages
        # that mention the bot carry their content and attachments without it (Discord's developer docs,
        # "Message Content Intent"), so the commands and the two-image mention work either way.
        intents.message_content = config.message_content != "off"
        self.metrics = Metrics(
            counts=lambda: self.jobs.status_counts() if self.jobs else {},
            workers=lambda: self.executor.workers() if self.executor is not None else [],
            message_content=lambda: self.is_ready() and self.intents.message_content,
        )
        super().__init__(
            # No prefix commands: an empty iterable of prefixes matches no message (discord.py's
            # `Bot.command_prefix`), so mentions reach only the stylize feature's listener.
            command_prefix=(),
            intents=intents,
            tree_cls=StyleTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, replied_user=False),
            activity=discord.Activity(type=discord.ActivityType.watching, name="/stylize"),
            http_trace=self.metrics.http_trace(),  # Discord HTTP errors and 429s, for /metrics
            **options,
        )
        apply_endpoints(config)
        self.config = config
        self.base_settings = GuildSettings().with_overrides(config.guild_defaults).check()
        self.ceilings = config.ceilings
        self.blocks = Blocklist(config.blocked_users, config.blocked_guilds)
        self.db = Database(
            config.db_path,
            inputs_max_bytes=config.inputs_max_bytes,
            inputs_max_bytes_per_member=config.inputs_max_bytes_per_member,
            job_history=config.job_history,
        )
        self.styles = ServerStyles(self.db, cap=config.max_server_styles)
        self._own_executor = executor is None
        self.executor: Executor | None = executor
        self._own_decoder = decoder is None
        # Uploads are fully decoded only in its disposable child processes, never in this one.
        self.decoder: IsolatedDecoder | None = decoder
        self.jobs: JobService = None  # type: ignore[assignment]  # the stylize extension sets it when it loads
        self.health: HealthServer | None = None
        self.started_at = time.time()
        self.recovered = 0
        self._purge_task: asyncio.Task[None] | None = None
        self._closing = False

    async def setup_hook(self) -> None:
        await self.db.open()
        await self.blocks.load(self.db)
        if self.executor is None:
            self.executor = await asyncio.to_thread(make_executor_from_config, self.config)
        if self._own_executor:
            await self.executor.start()
        if self.decoder is None:
            config = self.config
            self.decoder = IsolatedDecoder(
                workers=config.decode_workers, memory_limit=config.decode_memory, timeout=config.decode_timeout
            )
        for ext in COGS:
            await self.load_extension(ext)
        if self.config.health_port is not None:
            probes = {"/livez": self.liveness, "/readyz": self.readiness, "/healthz": self.health_status}
            self.health = HealthServer(self.metrics, probes, self.config.health_host, self.config.health_port)
            await self.health.start()
        self._purge_task = asyncio.create_task(self._purge_loop(), name="purge-inputs")
        await self.sync_commands()

    async def connect(self, *, reconnect: bool = True) -> None:
        """With STYLEBOT_MESSAGE_CONTENT=auto, a gateway that refuses the privileged intent (close code
        4014, "Disallowed intent(s)": not enabled for the application in the developer portal) gets a
        second connection without it instead of stopping the bot."""
        try:
            await super().connect(reconnect=reconnect)
        except discord.PrivilegedIntentsRequired:
            if self.config.message_content != "auto" or not self.intents.message_content:
                raise
            log.warning(
                "Discord refused the Message Content intent (it is not enabled for this application in the "
                "developer portal); connecting without it. Slash commands, the context menu and mentions with "
                "two images work; replying to a message with an image does not. Enable the intent and restart, "
                "or set STYLEBOT_MESSAGE_CONTENT=off to silence this."
            )
            # discord.py has no public setter: every IDENTIFY sends the connection state's intents
            # (DiscordWebSocket.identify), and the Message Content bit changes no cache behaviour.
            self._connection._intents.message_content = False
            await super().connect(reconnect=reconnect)

    async def sync_commands(self) -> None:
        """Development: sync to the dev guild (instant). Otherwise sync globally, but only when the
        command definitions or the application changed since the last sync, so restarts don't spend
        the daily quota and a new token (another application, same data directory) gets its commands."""
        if self.config.dev_guild_id:
            guild = discord.Object(self.config.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d command(s) to the development guild %s", len(synced), guild.id)
            return
        if not self.config.sync_commands:
            return
        commands = [c.to_dict(self.tree) for c in self.tree.get_commands()]
        payload = json.dumps({"application_id": self.application_id, "commands": commands}, sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()
        marker = self.config.data_dir / "commands.sha256"
        if marker.is_file() and marker.read_text().strip() == digest:
            return
        synced = await self.tree.sync()
        marker.write_text(digest)
        log.info("synced %d global command(s)", len(synced))

    async def _purge_loop(self) -> None:
        while True:
            try:
                n = await self.db.purge_expired()
                if n:
                    log.info("deleted the stored inputs of %d job(s) past their TTL", n)
            except Exception:
                log.exception("purging expired inputs failed")
            await asyncio.sleep(PURGE_EVERY)

    def health_status(self) -> dict[str, Any]:
        connected = self.is_ready() and not self.is_closed()
        accepting = bool(self.jobs and self.jobs.accepting)
        counts = self.jobs.status_counts() if self.jobs else {}
        return {
            "ok": connected and accepting,
            "connected": connected,
            "accepting": accepting,
            "latency_ms": round(self.latency * 1000) if connected and self.latency == self.latency else None,
            "uptime_s": round(time.time() - self.started_at),
            **counts,
        }

    def liveness(self) -> dict[str, Any]:
        """The process is up: answering at all is the proof."""
        return {"ok": True, "uptime_s": round(time.time() - self.started_at)}

    def readiness(self) -> dict[str, Any]:
        """Able to do work now: connected, taking jobs, and a worker ready; `why` names what is missing."""
        connected = self.is_ready() and not self.is_closed()
        accepting = bool(self.jobs and self.jobs.accepting)
        workers = self.executor.workers() if self.executor is not None else []
        ready = self.executor.ready_workers() if self.executor is not None else 0
        why = []
        if not connected:
            why.append(messages.NOT_CONNECTED)
        if not accepting:
            why.append(messages.SHUTTING_DOWN if self._closing else messages.NOT_STARTED)
        if ready == 0:
            why.append(messages.no_worker_ready(sorted({str(w["error"]) for w in workers if w.get("error")})))
        return {"ok": not why, "connected": connected, "accepting": accepting, "ready_workers": ready, "why": why}

    async def on_ready(self) -> None:
        log.info("logged in as %s (%s) in %d guild(s)", self.user, self.user and self.user.id, len(self.guilds))

    async def close(self) -> None:
        """Stop within `shutdown_grace + SHUTDOWN_MARGIN` seconds, whatever Discord does.

        The extensions are unloaded first, while HTTP still works (the stylize feature drains its
        jobs then: the SIGTERM path, bounded by the grace and its own short settling time); then the
        requests still being answered finish (a request the drain cut short is told the bot is
        restarting); then Discord's connections, the executor, the image checker, the health server
        and the database, each given what is left of the budget. Nothing here waits on an answer
        from Discord for longer than that: a client that cannot reconnect backs off for minutes,
        and a request to a dark network only gives up after aiohttp's five-minute default.
        """
        if self._closing:
            return await super().close()
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace + SHUTDOWN_MARGIN

        def left(reserve: float = 0.0) -> float:
            return max(0.5, deadline - reserve - loop.time())

        if self._purge_task is not None:
            self._purge_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purge_task
        for ext in reversed(COGS):
            try:
                await self.unload_extension(ext)
            except Exception:
                log.exception("unloading %s failed", ext)
        await self._let_answers_finish(lambda: left(reserve=2.0))
        await self._bounded(super().close(), left(reserve=1.5), "closing the Discord connection")
        if self._own_executor and self.executor is not None:
            await self._bounded(self.executor.shutdown(grace=0), left(reserve=0.5), "stopping the workers")
        if self._own_decoder and self.decoder is not None:
            await self._bounded(self.decoder.close(), left(reserve=0.5), "stopping the image checker")
        if self.health is not None:
            await self._bounded(self.health.close(), 0.5, "closing the health server")
        await self.db.close()

    @staticmethod
    async def _let_answers_finish(left: Callable[[], float]) -> None:
        """Requests that came in before or during the drain are still being answered (if only to
        say the bot is restarting), and an answer needs the connection: it closes after them. One
        still going when the budget runs out is stopped, never left to write into a closed session."""
        while handlers := answering_tasks():
            budget = left()
            _, late = await asyncio.wait(handlers, timeout=budget)
            if late:
                log.warning("stopped %d request(s) still being answered at shutdown", len(late))
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=0.5)
            if late or budget <= 0.5:  # the budget is spent (requests still coming in wait no longer)
                return

    @staticmethod
    async def _bounded(step: Awaitable[Any], timeout: float, what: str) -> None:
        try:
            await asyncio.wait_for(step, timeout)
        except TimeoutError:
            log.warning("%s took longer than %.1fs; going on without it", what, timeout)
        except Exception:
            log.exception("%s failed", what)

    async def abort(self) -> None:
        """The end of a shutdown that overran its budget anyway: let go of everything without waiting."""
        if self.jobs is not None:
            for follower in list(self.jobs.followers.values()):
                if follower.task is not None:
                    follower.task.cancel()
        if not self.is_closed():
            await self._bounded(discord.Client.close(self), 1.0, "closing the Discord connection")
        self.db.abort()
