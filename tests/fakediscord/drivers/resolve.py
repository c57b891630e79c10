"""Turning test values into what an interaction carries: option values typed as the synced command
declares them, and users, members, roles, channels and attachments put into ``data.resolved``
(https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object-resolved-data-structure).

Option type numbers are Discord's
(https://discord.com/developers/docs/interactions/application-commands#application-command-object-application-command-option-type):
3 string, 4 integer, 5 boolean, 6 user, 7 channel, 8 role, 9 mentionable, 10 number, 11 attachment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import payloads as P
from ..state import Attachment, Channel, FakeState, Guild, Member, Role, User, channel_permissions


def as_user(who: User | Member | None, default: User | Member | None = None) -> User:
    """The user behind ``who``, or behind ``default`` when a test names nobody."""
    who = default if who is None else who
    if who is None:
        raise TypeError("no user given and no default")
    return who.user if isinstance(who, Member) else who


def is_file_tuple(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) in (2, 3) and isinstance(v[0], str) and isinstance(v[1], (bytes, bytearray))


def coerce_attachment(state: FakeState, value: Any, *, ephemeral: bool, channel: Channel) -> Attachment:
    """An ``Attachment`` as is; ``bytes`` or ``(filename, bytes[, content_type])`` stored as a new one."""
    if isinstance(value, Attachment):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return state.add_attachment(data, _sniff_filename(data), channel_id=channel.id, ephemeral=ephemeral)
    if isinstance(value, tuple) and len(value) in (2, 3):
        filename, data = value[0], bytes(value[1])
        ctype = value[2] if len(value) == 3 else None
        return state.add_attachment(data, filename, content_type=ctype, channel_id=channel.id, ephemeral=ephemeral)
    raise TypeError(f"cannot use {value!r} as an attachment (pass Attachment, bytes or (filename, bytes))")


def resolve(
    state: FakeState, value: Any, kind: int, resolved: dict[str, Any], guild: Guild | None, channel: Channel
) -> str:
    """Add ``value`` to an interaction's ``resolved`` map and return its id string. Slash-command
    uploads are ephemeral attachments, as on Discord; members carry their channel permissions."""
    if kind == 11:
        att = coerce_attachment(state, value, ephemeral=True, channel=channel)
        resolved.setdefault("attachments", {})[str(att.id)] = P.attachment(state, att)
        return str(att.id)
    if isinstance(value, (Member, User)):
        user = as_user(value)
        resolved.setdefault("users", {})[str(user.id)] = P.user(user)
        member = guild.members.get(user.id) if guild else None
        if guild is not None and member is not None:
            resolved.setdefault("members", {})[str(user.id)] = P.member(
                member, with_user=False, permissions=channel_permissions(guild, member, channel)
            )
        return str(user.id)
    if isinstance(value, Role):
        resolved.setdefault("roles", {})[str(value.id)] = P.role(value)
        return str(value.id)
    if isinstance(value, Channel):
        data = P.channel(value)
        bot = guild.members.get(state.bot_user.id) if guild else None
        if guild is not None and bot is not None:
            data["permissions"] = str(channel_permissions(guild, bot, value))
        resolved.setdefault("channels", {})[str(value.id)] = data
        return str(value.id)
    return str(value)


def make_options(
    state: FakeState,
    values: Mapping[str, Any],
    defs: list[dict[str, Any]],
    resolved: dict[str, Any],
    guild: Guild | None,
    channel: Channel,
    *,
    check_required: bool,
) -> list[dict[str, Any]]:
    """Option payloads for ``values``, typed by the command's option ``defs`` (inferred without
    them); values outside declared choices, unknown options and missing required ones raise, as the
    Discord client would not send them."""
    by_name = {d["name"]: d for d in defs}
    out = []
    for name, value in values.items():
        d = by_name.get(name)
        if d is None and defs:
            raise ValueError(f"option {name!r} is not defined by the registered command")
        kind = d["type"] if d else infer_option_type(value)
        if kind == 11 or kind in (6, 7, 8, 9):
            v: Any = resolve(state, value, kind, resolved, guild, channel)
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


def infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    if isinstance(value, (Attachment, bytes, bytearray)) or is_file_tuple(value):
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
