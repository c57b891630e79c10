"""Making an interaction and sending it to the bot as INTERACTION_CREATE
(https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object).

The payload carries what discord.py reads: the channel with the invoker's permissions, the member
(in a guild, context 0) or the user (in a DM, context 1), ``app_permissions``, the guild's locale and
features, ``authorizing_integration_owners`` and ``attachment_size_limit``.
"""

from __future__ import annotations

import secrets
from typing import Any

from .. import payloads as P
from ..core import Context
from ..state import Channel, Interaction, Message, User, channel_permissions


async def new_interaction(
    ctx: Context,
    itype: int,
    data: dict[str, Any],
    *,
    user: User,
    channel: Channel,
    message: Message | None = None,
    locale: str = "en-US",
) -> Interaction:
    """Store and dispatch an interaction of type ``itype``; RuntimeError when no bot is connected."""
    state = ctx.state
    guild = state.guild_of(channel)
    member = guild.members.get(user.id) if guild else None
    if guild is not None and member is None:
        raise ValueError(f"{user.username} is not a member of {guild.name}")
    inter = Interaction(
        id=state.new_id(),
        token="aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96),
        type=itype,
        application_id=state.application_id,
        data=data,
        user=user,
        channel_id=channel.id,
        guild_id=guild.id if guild else None,
        created_at=ctx.clock.now(),
        message_id=message.id if message else None,
    )
    ch_payload = P.channel(channel)
    payload: dict[str, Any] = {
        "id": str(inter.id),
        "application_id": str(state.application_id),
        "type": itype,
        "data": data,
        "channel_id": str(channel.id),
        "channel": ch_payload,
        "token": inter.token,
        "version": 1,
        "locale": locale,
        "app_permissions": str(state.bot_permissions(channel)),
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ctx.settings.attachment_size_limit,
    }
    if guild is not None and member is not None:
        perms = channel_permissions(guild, member, channel)
        ch_payload["permissions"] = str(perms)
        payload.update(
            {
                "guild_id": str(guild.id),
                "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": list(guild.features)},
                "guild_locale": guild.preferred_locale,
                "member": P.member(member, permissions=perms),
                "authorizing_integration_owners": {"0": str(guild.id)},
                "context": 0,
            }
        )
    else:
        payload.update({"user": P.user(user), "authorizing_integration_owners": {"0": "0"}, "context": 1})
    if message is not None:
        payload["message"] = P.message(state, message)
    inter.payload = payload
    state.interactions[inter.id] = inter
    state.interactions_by_token[inter.token] = inter
    sent = await ctx.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=inter.guild_id)
    if sent == 0:
        raise RuntimeError("no bot is connected to the fake gateway (start it with fd.running(bot))")
    return inter
