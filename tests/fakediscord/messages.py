"""Building and editing stored messages from request bodies, with Discord's validation
(https://discord.com/developers/docs/resources/message#create-message and #edit-message).

Shared by every route that makes or changes a message: channel messages, interaction responses
and webhook follow-ups/edits. Enforced like Discord: content ≤ 2000 characters, ≤ 10 embeds
(title ≤ 256, description ≤ 4096), ≤ 5 action rows unless IS_COMPONENTS_V2, unique custom ids
≤ 100 characters, ≤ 10 files each within the upload limit (413, 40005), no empty message (50006),
replies to messages that exist (``fail_if_not_exists``).
"""

from __future__ import annotations

import contextlib
import copy
import re
from typing import Any

from . import payloads as P
from .core import Settings
from .errors import DiscordError, form_error
from .recording import RecordedFile
from .state import Attachment, Channel, FakeState, Interaction, Message, MessageFlag, User, iso_now, walk_components

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class MessageBuilder:
    """Turns request bodies into ``Message`` objects in the store (or edits existing ones)."""

    def __init__(self, settings: Settings, state: FakeState) -> None:
        self.settings = settings
        self.state = state

    # ------------------------------------------------------------------ validation

    def assign_component_ids(self, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Copy of ``components`` with the numeric ``id`` Discord gives every component that lacks one."""
        components = copy.deepcopy(components or [])
        for comp in walk_components(components):
            if "id" not in comp:
                comp["id"] = self.state.next_component_id()
        return components

    def _validate_components(self, components: list[dict[str, Any]], flags: int) -> None:
        if not flags & MessageFlag.IS_COMPONENTS_V2 and len(components) > 5:
            raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        seen: set[str] = set()
        for comp in walk_components(components):
            cid = comp.get("custom_id")
            if comp.get("type") == 2 and comp.get("style") not in (5, 6) and not cid:
                raise form_error("components", "COMPONENT_CUSTOM_ID_REQUIRED", "A custom id is required")
            if cid is not None:
                if len(cid) > 100:
                    raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
                if cid in seen:
                    raise form_error(
                        "components",
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                seen.add(cid)

    def _validate_body(self, body: dict[str, Any], files: list[RecordedFile]) -> None:
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            raise form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = body.get("embeds")
        if embeds is not None:
            if len(embeds) > 10:
                raise form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
            for i, e in enumerate(embeds):
                if len(e.get("title") or "") > 256:
                    raise form_error(f"embeds.{i}.title", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
                if len(e.get("description") or "") > 4096:
                    raise form_error(
                        f"embeds.{i}.description", "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length."
                    )
        if body.get("components") is not None:
            self._validate_components(body["components"], int(body.get("flags") or 0))
        if len(files) > 10:
            raise form_error("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        for f in files:
            if f.size > self.settings.attachment_size_limit:
                raise DiscordError(413, "Request entity too large", 40005)

    # ------------------------------------------------------------------ parts

    def _new_attachments(
        self, body: dict[str, Any], files: list[RecordedFile], channel_id: int, *, ephemeral: bool
    ) -> list[Attachment]:
        """Store the uploaded ``files[n]``; the body's ``attachments`` entry with ``id`` n supplies
        filename, description and title (https://discord.com/developers/docs/reference#uploading-files)."""
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

    def set_mentions(self, msg: Message) -> None:
        """Fill ``mentions``/``mention_roles``/``mention_everyone`` from the content's mention syntax
        (https://discord.com/developers/docs/reference#message-formatting)."""
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

    # ------------------------------------------------------------------ create / edit

    def create(
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
        """A new message from a create-message body (``interaction`` marks it as the app's response)."""
        self._validate_body(body, files)
        flags = (int(body.get("flags") or 0) & ~MessageFlag.LOADING) | extra_flags
        ephemeral = bool(flags & MessageFlag.EPHEMERAL)
        attachments = self._new_attachments(body, files, channel.id, ephemeral=ephemeral)
        content = body.get("content") or ""
        embeds = list(body.get("embeds") or ([] if body.get("embed") is None else [body["embed"]]))
        components = self.assign_component_ids(body.get("components") or [])
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
            msg.webhook_id = self.state.application_id
            msg.application_id = self.state.application_id
            msg.interaction_id = interaction.id
        self._reference(msg, body)
        self.set_mentions(msg)
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

    def _reference(self, msg: Message, body: dict[str, Any]) -> None:
        """A ``message_reference`` of type 0 makes the message a reply (type 19)
        (https://discord.com/developers/docs/resources/message#message-reference-structure)."""
        ref = body.get("message_reference")
        if not ref or not ref.get("message_id"):
            return
        target = self.state.messages.get(int(ref["message_id"]))
        if target is None or target.deleted or target.ephemeral:
            if ref.get("fail_if_not_exists", True):
                raise form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            return
        ref_type = int(ref.get("type", 0))
        msg.reference = {
            "type": ref_type,
            "message_id": str(target.id),
            "channel_id": str(target.channel_id),
            "guild_id": str(target.guild_id) if target.guild_id else None,
        }
        if ref_type == 0:
            msg.type = 19

    def edit(self, msg: Message, body: dict[str, Any], files: list[RecordedFile]) -> Message:
        """Apply an edit-message body: fields present replace, ``attachments`` lists the ones to keep,
        new files are added; the previous payload goes to ``msg.revisions``."""
        self._validate_body(body, files)
        msg.revisions.append(P.message(self.state, msg, include_referenced=False))
        if "content" in body:
            msg.content = str(body["content"] or "")
        if "embeds" in body:
            msg.embeds = list(body["embeds"] or [])
        elif "embed" in body:
            msg.embeds = [] if body["embed"] is None else [body["embed"]]
        if "components" in body:
            msg.components = self.assign_component_ids(body["components"] or [])
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
        self.set_mentions(msg)
        msg.edited_timestamp = iso_now()
        return msg
