"""Test-facing interactions: what a user does in the Discord client — run a slash command, type into
an autocompleted option, use a context menu, click a button, pick from a select menu.

Like the client, the drivers refuse what a user could not do: options a synced command does not
declare, values outside its choices, missing required options, disabled components, and commands
hidden by ``default_member_permissions`` or ``contexts``
(https://discord.com/developers/docs/interactions/application-commands#permissions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import payloads as P
from ..core import Context
from ..state import AppCommand, Channel, FakeState, Guild, Interaction, Member, Message, Perm, User, channel_permissions
from .create import new_interaction
from .resolve import as_user, infer_option_type, make_options, resolve


class InteractionDriving:
    """Mixed into ``FakeDiscord``; uses its ``ctx``, ``state`` and the default ``channel``/``member``."""

    ctx: Context
    state: FakeState
    channel: Channel
    member: Member

    def _command_for(
        self, name: str, ctype: int, channel: Channel, user: User | Member | None, *, force: bool = False
    ) -> AppCommand | None:
        guild = self.state.guild_of(channel)
        cmd = self.state.find_command(name, ctype, guild.id if guild else None)
        if cmd is None and self.ctx.settings.require_synced_commands:
            raise LookupError(f"command {name!r} (type {ctype}) was never synced by the bot")
        if cmd is not None and not force:
            self._check_command_access(cmd, as_user(user, self.member), channel)
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
        perms = channel_permissions(guild, member, channel)
        needed = int(required)
        if perms != Perm.ALL and (needed == 0 or perms & needed != needed):
            raise PermissionError(
                f"{user.username} lacks default_member_permissions={needed} for {cmd.name!r} "
                "(pass force=True to dispatch anyway)"
            )

    @staticmethod
    def _command_data(cmd: AppCommand | None, fallback_id: int, **fields: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"id": str(cmd.id if cmd else fallback_id), **fields}
        if cmd is not None and cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return data

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
            node_defs = cmd.options if cmd else []
            for sub in subs:
                node = next((d for d in node_defs if d["name"] == sub), None)
                if cmd is not None and node is None:
                    raise ValueError(f"unknown subcommand {sub!r} of /{root}")
                node_defs = (node or {}).get("options") or []
            opts = make_options(self.state, values, node_defs, resolved, g, channel, check_required=cmd is not None)
            for depth, sub in reversed(list(enumerate(subs))):
                opts = [{"name": sub, "type": 1 if depth == len(subs) - 1 else 2, "options": opts}]
        data = self._command_data(cmd, self.state.new_id(), name=root, type=1)
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        return await new_interaction(self.ctx, 2, data, user=as_user(user, self.member), channel=channel, locale=locale)

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
            kind = defs[key]["type"] if key in defs else infer_option_type(value)
            opt: dict[str, Any] = {"name": key, "type": kind, "value": value}
            if key == focused:
                opt["focused"] = True
            opts.append(opt)
        for depth, sub in reversed(list(enumerate(subs))):
            opts = [{"name": sub, "type": 1 if depth == len(subs) - 1 else 2, "options": opts}]
        data = self._command_data(cmd, self.state.new_id(), name=root, type=1, options=opts)
        return await new_interaction(self.ctx, 4, data, user=as_user(user, self.member), channel=channel)

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
        resolved: dict[str, Any] = {}
        if isinstance(target, Message):
            resolved["messages"] = {str(target.id): P.message(self.state, target)}
            target_id = str(target.id)
        else:
            target_id = resolve(self.state, target, 6, resolved, self.state.guild_of(channel), channel)
        data = self._command_data(
            cmd, self.state.new_id(), name=name, type=ctype, target_id=target_id, resolved=resolved
        )
        return await new_interaction(self.ctx, 2, data, user=as_user(user, self.member), channel=channel)

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
        return await new_interaction(
            self.ctx, 3, data, user=as_user(user, self.member), channel=channel, message=message
        )

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
                resolve(self.state, v, 6 if isinstance(v, (User, Member)) else 0, resolved, guild, channel)
                for v in values
            ]
        data: dict[str, Any] = {
            "custom_id": custom_id,
            "component_type": comp["type"],
            "values": ids,
            "id": comp.get("id"),
        }
        if resolved:
            data["resolved"] = resolved
        return await new_interaction(
            self.ctx, 3, data, user=as_user(user, self.member), channel=channel, message=message
        )
