"""Application commands, global and per guild
(https://discord.com/developers/docs/interactions/application-commands#endpoints).

Validated as Discord does: names 1–32 characters of ``[-_'\\w]`` (lower case for slash commands),
descriptions 1–100, ≤ 25 options and ≤ 25 choices, unique option names, required options before
optional ones, no duplicate command in a bulk overwrite. A bulk overwrite keeps the id of a command
whose name and type it already had, as Discord does.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .. import payloads as P
from ..errors import DiscordError, form_error
from ..recording import RecordedRequest
from ..routing import Route
from ..state import AppCommand
from .base import Resource

_NAME_RE = re.compile(r"^[-_'\w]{1,32}$", re.UNICODE)


class CommandsResource(Resource):
    def routes(self) -> list[Route]:
        out = []
        for scope in ("/applications/{app_id}", "/applications/{app_id}/guilds/{guild_id}"):
            out += [
                Route("GET", f"{scope}/commands", self.list_commands),
                Route("PUT", f"{scope}/commands", self.bulk_overwrite),
                Route("POST", f"{scope}/commands", self.upsert),
                Route("GET", f"{scope}/commands/{{command_id}}", self.get_command),
                Route("PATCH", f"{scope}/commands/{{command_id}}", self.edit_command),
                Route("DELETE", f"{scope}/commands/{{command_id}}", self.delete_command),
            ]
        return out

    # ------------------------------------------------------------------ storage

    def _store(self, app_id: str, guild_id: str | None) -> dict[int, AppCommand]:
        if int(app_id) != self.state.application_id:
            raise DiscordError(403, "Missing Access", 50001)
        if guild_id is None:
            return self.state.global_commands
        self.guild(guild_id)
        return self.state.guild_commands.setdefault(int(guild_id), {})

    def _command(self, app_id: str, guild_id: str | None, command_id: str) -> tuple[dict[int, AppCommand], AppCommand]:
        store = self._store(app_id, guild_id)
        cmd = store.get(int(command_id))
        if cmd is None:
            raise DiscordError(404, "Unknown application command", 10063)
        return store, cmd

    def _save(self, store: dict[int, AppCommand], body: dict[str, Any], guild_id: str | None) -> AppCommand:
        ctype = body.get("type", 1)
        existing = next((c for c in store.values() if c.name == body["name"] and c.type == ctype), None)
        cmd = AppCommand(
            id=existing.id if existing else self.state.new_id(),
            application_id=self.state.application_id,
            name=body["name"],
            type=ctype,
            data=copy.deepcopy(body),
            guild_id=int(guild_id) if guild_id else None,
            version=self.state.new_id(),
        )
        store[cmd.id] = cmd
        return cmd

    # ------------------------------------------------------------------ validation

    def _validate(self, body: Any, index: str = "0") -> None:
        if not isinstance(body, dict):
            raise form_error(index, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        ctype = body.get("type", 1)
        name = body.get("name")
        if not isinstance(name, str) or not (1 <= len(name) <= 32):
            raise form_error(f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if ctype == 1:
            if not _NAME_RE.match(name) or name != name.lower():
                raise form_error(f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            desc = body.get("description") or ""
            if not (1 <= len(desc) <= 100):
                raise form_error(f"{index}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        self._validate_options(body.get("options") or [], f"{index}.options")

    def _validate_options(self, options: list[dict[str, Any]], where: str) -> None:
        if len(options) > 25:
            raise form_error(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        seen_optional = False
        names = set()
        for i, opt in enumerate(options):
            name = opt.get("name", "")
            if not _NAME_RE.match(name) or name != name.lower():
                raise form_error(f"{where}.{i}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            if name in names:
                raise form_error(
                    f"{where}.{i}.name",
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            names.add(name)
            if not (1 <= len(opt.get("description") or "") <= 100):
                raise form_error(
                    f"{where}.{i}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            if opt.get("type") in (1, 2):
                self._validate_options(opt.get("options") or [], f"{where}.{i}.options")
                continue
            if opt.get("required"):
                if seen_optional:
                    raise form_error(
                        f"{where}.{i}",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                seen_optional = True
            if len(opt.get("choices") or []) > 25:
                raise form_error(f"{where}.{i}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")

    # ------------------------------------------------------------------ handlers

    async def list_commands(self, rec: RecordedRequest, app_id: str, guild_id: str | None = None) -> Any:
        return [P.app_command(c) for c in self._store(app_id, guild_id).values()]

    async def bulk_overwrite(self, rec: RecordedRequest, app_id: str, guild_id: str | None = None) -> Any:
        store = self._store(app_id, guild_id)
        body = rec.json
        if not isinstance(body, list):
            raise form_error("_", "BASE_TYPE_ARRAY", "Must be an array")
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(body):
            self._validate(cmd, str(i))
            key = (cmd["name"], cmd.get("type", 1))
            if key in seen:
                raise form_error(str(i), "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Duplicate command name {key[0]!r}")
            seen.add(key)
        old = list(store.values())
        store.clear()
        result = []
        for cmd_body in body:
            prev = next((c for c in old if c.name == cmd_body["name"] and c.type == cmd_body.get("type", 1)), None)
            if prev is not None:
                store[prev.id] = prev
            result.append(P.app_command(self._save(store, cmd_body, guild_id)))
        return result

    async def upsert(self, rec: RecordedRequest, app_id: str, guild_id: str | None = None) -> Any:
        store = self._store(app_id, guild_id)
        self._validate(rec.json)
        return P.app_command(self._save(store, rec.json, guild_id))

    async def get_command(self, rec: RecordedRequest, app_id: str, command_id: str, guild_id: str | None = None) -> Any:
        return P.app_command(self._command(app_id, guild_id, command_id)[1])

    async def edit_command(
        self, rec: RecordedRequest, app_id: str, command_id: str, guild_id: str | None = None
    ) -> Any:
        _, cmd = self._command(app_id, guild_id, command_id)
        merged = {**cmd.data, **(rec.json or {})}
        self._validate(merged)
        cmd.data = merged
        cmd.name = merged["name"]
        cmd.version = self.state.new_id()
        return P.app_command(cmd)

    async def delete_command(
        self, rec: RecordedRequest, app_id: str, command_id: str, guild_id: str | None = None
    ) -> Any:
        store, cmd = self._command(app_id, guild_id, command_id)
        del store[cmd.id]
        return self.no_content()
