"""`python -m bot`: read the configuration, run until SIGTERM/SIGINT, shut down gracefully.

On SIGTERM the bot stops taking jobs, lets running ones finish for up to
STYLEBOT_SHUTDOWN_GRACE seconds and leaves the rest queued in SQLite, where the next
start picks them up (see JobService.drain / recover). The process exits within the grace
plus `SHUTDOWN_MARGIN` seconds whatever Discord does (see StyleBot.close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import discord

from bot.config import BotConfig, ConfigError
from bot.logs import setup_logging

log = logging.getLogger("bot")


async def run(config: BotConfig) -> None:
    from bot.bot import SHUTDOWN_MARGIN, StyleBot

    bot = StyleBot(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows has no signal handlers
            loop.add_signal_handler(sig, stop.set)

    async with bot:
        runner = asyncio.create_task(bot.start(config.require_token()), name="discord")
        stopper = asyncio.create_task(stop.wait(), name="signals")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("shutdown requested; finishing running jobs (grace %.0fs)", config.shutdown_grace)
            budget = config.shutdown_grace + SHUTDOWN_MARGIN
            try:
                # close() keeps to this budget by itself; this is the safety net if a step does not.
                await asyncio.wait_for(bot.close(), budget + 1.0)
            except TimeoutError:
                log.error("shutdown overran %.0fs; stopping what is left without waiting", budget)
                await bot.abort()
            # discord.py's reconnect loop may still be backing off (for minutes when Discord is
            # unreachable): it has nothing left to do.
            runner.cancel()
            await asyncio.wait({runner}, timeout=1.0)
        else:
            stopper.cancel()
            try:
                runner.result()  # re-raise a login/connection failure
            except discord.PrivilegedIntentsRequired:
                raise ConfigError(
                    "Discord refused the Message Content intent, which STYLEBOT_MESSAGE_CONTENT=on requires: "
                    "enable it for this application (developer portal, Bot tab), or set "
                    "STYLEBOT_MESSAGE_CONTENT=auto to run without the reply flow"
                ) from None


def main() -> int:
    try:
        config = BotConfig.from_env()
        config.require_token()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, [config.token.get_secret_value()])
    log.info(
        "starting StyleBot (executor=%s, workers=%s, data=%s)",
        config.executor,
        config.workers,
        config.data_dir,
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(config))
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
