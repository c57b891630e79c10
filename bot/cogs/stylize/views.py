"""Buttons and the context menu's form.

Both kinds of button are `DynamicItem`s whose custom_id carries the job id, so they keep
working after a restart without any in-memory view (discord.py's `Client.add_dynamic_items`):
Cancel on progress messages, More style / Less style / Re-run and Delete on results. Their callbacks
only parse and delegate to the service or the requests module; errors go through the same
handler as slash commands.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import discord
from discord import ui

from bot import messages, style_sources
from bot.cogs.stylize import requests
from bot.errors import BadInput, handle_interaction_error
from stylecore import gallery
from stylecore.option_specs import OPTION_SPECS, OptionsError

if TYPE_CHECKING:
    from bot.bot import StyleBot

JOB_ID = r"[0-9a-f]{6,32}"
AGAIN_ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "more": ("More style", "➕", discord.ButtonStyle.primary),
    "less": ("Less style", "➖", discord.ButtonStyle.secondary),
    "rerun": ("Re-run", "🔁", discord.ButtonStyle.secondary),
}


def again_custom_id(action: str, job_id: str) -> str:
    return f"stylebot:again:{action}:{job_id}"


class CancelButton(ui.DynamicItem[ui.Button[Any]], template=rf"stylebot:cancel:(?P<job>{JOB_ID})"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            ui.Button(
                label="Cancel",
                emoji="✖️",
                style=discord.ButtonStyle.danger,
                custom_id=f"stylebot:cancel:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:  # type: ignore[override]
        try:
            interaction.extras["job_id"] = self.job_id
            await interaction.client.jobs.cancel_by(self.job_id, interaction.user)
            await interaction.response.send_message(messages.cancelling(self.job_id), ephemeral=True)
        except Exception as exc:
            await handle_interaction_error(interaction, exc)


class AgainButton(
    ui.DynamicItem[ui.Button[Any]], template=rf"stylebot:again:(?P<action>more|less|rerun):(?P<job>{JOB_ID})"
):
    def __init__(self, action: str, job_id: str) -> None:
        label, emoji, style = AGAIN_ACTIONS[action]
        super().__init__(ui.Button(label=label, emoji=emoji, style=style, custom_id=again_custom_id(action, job_id)))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> AgainButton:
        return cls(match["action"], match["job"])

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:  # type: ignore[override]
        try:
            await requests.run_again(interaction.client.jobs, interaction, self.job_id, self.action)
        except Exception as exc:
            await handle_interaction_error(interaction, exc)


class DeleteButton(ui.DynamicItem[ui.Button[Any]], template=rf"stylebot:delete:(?P<job>{JOB_ID})"):
    """🗑️ on a result: the result and the images it was made from, gone at once (see
    `JobService.delete_result` for who may)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            ui.Button(
                label="Delete", emoji="🗑️", style=discord.ButtonStyle.secondary, custom_id=f"stylebot:delete:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> DeleteButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[StyleBot]) -> None:  # type: ignore[override]
        try:
            interaction.extras["job_id"] = self.job_id
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.client.jobs.delete_result(self.job_id, interaction.user, interaction.message)
            await interaction.followup.send(messages.RESULT_DELETED, ephemeral=True)
        except Exception as exc:
            await handle_interaction_error(interaction, exc)


def is_result_message(message: discord.Message, job_id: str) -> bool:
    """Whether `message` shows `job_id`'s result: an attachment and the job's result buttons."""
    wanted = {again_custom_id(action, job_id) for action in AGAIN_ACTIONS}
    ids = {getattr(child, "custom_id", None) for row in message.components for child in getattr(row, "children", ())}
    return bool(message.attachments) and wanted <= ids


def progress_view(job_id: str) -> ui.View:
    view = ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: str) -> ui.View:
    view = ui.View(timeout=None)
    for action in AGAIN_ACTIONS:
        view.add_item(AgainButton(action, job_id))
    view.add_item(DeleteButton(job_id))
    return view


class QueuePager(ui.View):
    """Previous / Next under a /queue answer that needs more than one page. Each click lists the
    queue afresh (it moves while someone reads it) and keeps the page in range; only the member
    who ran /queue can page (the answer is private to them anyway)."""

    def __init__(self, owner_id: int, pages: Callable[[], list[str]], *, count: int, timeout: float = 300.0) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.pages = pages
        self.page = 0
        self.interaction: discord.Interaction[Any] | None = None  # the /queue command, to tidy up on timeout
        self._sync(count)

    def _sync(self, count: int) -> None:
        self.page = max(0, min(self.page, count - 1))
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= count - 1

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(messages.NOT_YOUR_LISTING, ephemeral=True)
        return False

    async def _turn(self, interaction: discord.Interaction[Any], by: int) -> None:
        pages = self.pages()
        self.page += by
        self._sync(len(pages))
        await interaction.response.edit_message(content=pages[self.page], view=self)

    @ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction[Any], button: ui.Button[Any]) -> None:
        await self._turn(interaction, -1)

    @ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction[Any], button: ui.Button[Any]) -> None:
        await self._turn(interaction, +1)

    async def on_timeout(self) -> None:
        if self.interaction is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.interaction.edit_original_response(view=None)

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, item: ui.Item[Any], /) -> None:
        await handle_interaction_error(interaction, error)


class StyleModal(ui.Modal, title="Stylize this image"):
    """The context menu's form: a style image (a file upload) and/or up to three named styles (the
    gallery's paintings, then the server's own styles, as /stylize's `painting` offers them), and
    the options in `OPTIONS`, each a text field built from its declaration and prefilled with this
    server's default. Discord's selects hold 25 options, so a server with many styles shows its
    first ones here (all of them in /stylize)."""

    OPTIONS: tuple[str, ...] = ("strength",)

    def __init__(self, content: discord.Attachment, defaults: Mapping[str, Any], server_styles: list[str]) -> None:
        super().__init__(timeout=600)
        self.content = content
        self.style_file: ui.FileUpload[Any] = ui.FileUpload(
            custom_id="stylebot:modal:style", required=False, min_values=0, max_values=1
        )
        self.add_item(
            ui.Label(text="Style image", description="The picture whose style to apply", component=self.style_file)
        )
        named = [(p.label, f"{style_sources.PAINTING}{p.key}") for p in gallery.paintings()]
        named += [(messages.server_style_choice(n), f"{style_sources.SERVER}{n}") for n in server_styles]
        options = [discord.SelectOption(label=label[:100], value=value[:100]) for label, value in named[:25]]
        self.named: ui.Select[Any] = ui.Select(
            custom_id="stylebot:modal:painting",
            options=options,
            required=False,
            min_values=0,
            max_values=min(requests.MAX_STYLES, len(options)),
        )
        self.add_item(ui.Label(text="Or a painting", description=messages.MODAL_PAINTING_HELP, component=self.named))
        self.fields: dict[str, ui.TextInput[Any]] = {}
        for name in self.OPTIONS:
            spec = OPTION_SPECS[name]
            default = defaults.get(name)
            field: ui.TextInput[Any] = ui.TextInput(
                custom_id=f"stylebot:modal:{name}",
                required=False,
                default=None if default is None else spec.fmt(default),
                max_length=20,
            )
            description = f"{spec.help[:1].upper()}{spec.help[1:]}; {spec.bounds()}"
            self.add_item(ui.Label(text=_label(name), description=description[:100], component=field))
            self.fields[name] = field

    def choices(self) -> dict[str, Any]:
        """The typed values, checked against their declarations; empty fields are left out."""
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            raw = (field.value or "").strip()
            if not raw:
                continue
            try:
                out[name] = OPTION_SPECS[name].parse(raw)
            except OptionsError as exc:
                raise BadInput(messages.bad_field(_label(name), str(exc))) from None
        return out

    async def on_submit(self, interaction: discord.Interaction[StyleBot]) -> None:  # type: ignore[override]
        choices = self.choices()
        styles = [style_sources.StyleSource.upload(a) for a in self.style_file.values]
        for value in self.named.values:
            styles.append(await style_sources.resolve(interaction.client.styles, interaction.guild_id, value))
        await requests.from_interaction(
            interaction.client.jobs, interaction, self.content, styles, source="menu", choices=choices
        )

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:
        await handle_interaction_error(interaction, error)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()
