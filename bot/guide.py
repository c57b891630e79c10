"""How to use the bot, worded for where it is asked: one text for `/stylebot help` and for a mention
that carries no image, so the two never drift apart.

The ways to start a job are the ones that work for this bot (replying to another message needs
the Message Content intent); the limits shown are the ones that will apply to the asker's next job
(the server's settings within the operator's bounds, or the bot-wide defaults in DMs); and the
storage times are the operator's configuration: what the help says is what the bot does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import messages

if TYPE_CHECKING:
    from bot.bot import StyleBot


async def guide(bot: StyleBot, guild_id: int | None) -> str:
    settings = await bot.db.guild_settings(guild_id, bot.base_settings, bot.ceilings)
    config = bot.config
    return messages.guide(
        in_dm=guild_id is None,
        replies=bot.intents.message_content,
        max_size=settings.max_size,
        default_size=settings.default_size,
        max_steps=settings.max_steps,
        default_steps=settings.default_steps,
        max_jobs=settings.max_jobs_per_user,
        cooldown_seconds=settings.cooldown_seconds,
        channel_ids=settings.allowed_channels,
        max_upload_bytes=config.max_input_bytes,
        inputs_ttl=config.inputs_ttl,
        inputs_per_member_bytes=config.inputs_max_bytes_per_member,
        job_history=config.job_history,
    )
