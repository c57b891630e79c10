"""Effective permissions, computed the way Discord documents it
(https://discord.com/developers/docs/topics/permissions#permission-overwrites): the guild owner and
Administrator get everything; otherwise @everyone's bits plus every role's, then the channel's
@everyone overwrite, then all role overwrites together, then the member's own overwrite.

Kept separate from discord.py's own model on purpose: if the client and the fake disagree about a
permission, a test should notice rather than share the bug.
"""

from __future__ import annotations

from .flags import Perm
from .models import Channel, Guild, Member


def base_permissions(guild: Guild, member: Member) -> int:
    """Guild-level permissions before any channel overwrite."""
    if member.id == guild.owner_id:
        return Perm.ALL
    perms = guild.everyone.permissions
    for rid in member.role_ids:
        role = guild.roles.get(rid)
        if role is not None:
            perms |= role.permissions
    if perms & Perm.ADMINISTRATOR:
        return Perm.ALL
    return perms


def channel_permissions(guild: Guild, member: Member, channel: Channel | None) -> int:
    """``member``'s permissions in ``channel`` (guild-level when ``channel`` is None); a channel the
    member cannot view grants nothing at all."""
    perms = base_permissions(guild, member)
    if perms == Perm.ALL or channel is None:
        return perms
    ows = channel.overwrites
    everyone = ows.get(guild.id)
    if everyone is not None:
        perms &= ~everyone.deny
        perms |= everyone.allow
    allow = deny = 0
    for rid in member.role_ids:
        ow = ows.get(rid)
        if ow is not None and ow.type == 0:
            allow |= ow.allow
            deny |= ow.deny
    perms &= ~deny
    perms |= allow
    mow = ows.get(member.id)
    if mow is not None and mow.type == 1:
        perms &= ~mow.deny
        perms |= mow.allow
    if not perms & Perm.VIEW_CHANNEL:
        return 0
    return perms
